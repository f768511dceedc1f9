#!/usr/bin/env bash
# Run the core tests (tests/test_core_*.py: frames, codec, spool, diode link)
# against an arm64 wheel under qemu-user, with Debian bookworm's arm64
# Python 3.11 (the Python of Raspberry Pi OS bookworm) and arm64 numpy and
# pytest wheels from PyPI:
#   deploy/test-arm64.sh [WHEEL] [PYTEST ARGS...]   (default: build it first)
# Nothing runs on the host's Python: the wheel is unpacked into a fresh
# directory, and the tests are copied away from the source tree so the
# source edge/ (which has no arm64 _core) cannot shadow it.
set -euo pipefail
cd "$(dirname "$0")/.."
C="$(bash deploy/cross-toolchain.sh)"
if [[ $# -gt 0 && "$1" == *.whl ]]; then wheel="$(realpath "$1")"; shift; else wheel="$(bash deploy/build-arm64-wheel.sh)"; fi
ARM_DEPS=(numpy msgpack pytest)
site="$C/arm64-site"  # third-party wheels, fetched once
if [[ ! -f "$site/.complete" ]]; then
    rm -rf "$site"
    python3 -m pip install -q --target "$site" --only-binary=:all: --implementation cp \
        --python-version 3.11 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux_2_28_aarch64 "${ARM_DEPS[@]}"
    touch "$site/.complete"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m zipfile -e "$wheel" "$work/wheel"
mkdir "$work/tests"
cp tests/test_core_*.py "$work/tests/"
cd "$work/tests"
PYTHONPATH="$work/wheel:$site" PYTHONDONTWRITEBYTECODE=1 \
    "$C/host/usr/bin/qemu-aarch64-static" -L "$C/arm64" "$C/arm64/usr/bin/python3.11" -P -c \
    'import platform, sys; from edge import _core; print("arm64 check:", platform.machine(), sys.version.split()[0], _core.__file__, file=sys.stderr)'
PYTHONPATH="$work/wheel:$site" PYTHONDONTWRITEBYTECODE=1 \
    "$C/host/usr/bin/qemu-aarch64-static" -L "$C/arm64" "$C/arm64/usr/bin/python3.11" -P \
    -m pytest -q -p no:cacheprovider "$@" .

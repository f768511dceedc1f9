#!/usr/bin/env bash
# Rehearse the offline install on arm64 under qemu-user: Debian's arm64
# Python 3.11 installs tidegate[bench] from a wheelhouse (deploy/wheelhouse.sh)
# with `pip --no-index`, then checks the shipped configs, imports every
# package (agent, receiver, datasets, TUI, bench report), lists the bench stages
# and runs the datasets and config tests on the result.
#   deploy/test-arm64-install.sh WHEELHOUSE
# About 5 minutes on 2 cores (pip under emulation), so not part of tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
WH="$(realpath "${1:?usage: test-arm64-install.sh WHEELHOUSE}")"
C="$(bash deploy/cross-toolchain.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" pip
PY=("$C/host/usr/bin/qemu-aarch64-static" -L "$C/arm64" "$C/arm64/usr/bin/python3.11")
"${PY[@]}" "$(ls "$work"/pip-*.whl)/pip" install -q --root-user-action=ignore --no-index \
    --find-links "$WH" --target "$work/site" "tidegate[bench]"
export PYTHONPATH="$work/site" PYTHONDONTWRITEBYTECODE=1
"${PY[@]}" -P -m edge.cli check deploy/etc/agent.toml
"${PY[@]}" -P -m edge.cli check --receiver deploy/etc/receiver.toml
"${PY[@]}" -P -c 'import platform, edge.agent, edge.receiver, edge.datasets, tui.app, edge.bench.report, matplotlib
print("arm64 install:", platform.machine(), platform.python_version(), "imports ok")'
"${PY[@]}" -P -m edge.cli bench --list
mkdir "$work/tests"
cp tests/test_datasets.py tests/test_config.py "$work/tests/"
cd "$work/tests"
# Tests that start a child Python are left out: without binfmt_misc, qemu-user
# cannot exec an arm64 binary from inside the emulated process.
PYTHONPATH="$work/site:$C/arm64-site" "${PY[@]}" -P -m pytest -q -p no:cacheprovider -k "not crash_leaves" .

#!/usr/bin/env bash
# Everything the Pi needs to install tidegate without internet, in one directory:
#   deploy/wheelhouse.sh WHEEL OUT_DIR [PYPI EXTRAS e.g. bench]
# WHEEL is the arm64 wheel (deploy/build-arm64-wheel.sh); its dependencies are
# fetched from PyPI as aarch64 / CPython 3.11 binary wheels (glibc 2.17-2.28
# builds, all of which run on Raspberry Pi OS bookworm's glibc 2.36). Copy
# OUT_DIR to the box and run: sudo deploy/install.sh --wheel OUT_DIR/tidegate-*.whl --wheelhouse OUT_DIR
set -euo pipefail
WHEEL="${1:?usage: wheelhouse.sh WHEEL OUT_DIR [EXTRA]}"
OUT="${2:?usage: wheelhouse.sh WHEEL OUT_DIR [EXTRA]}"
EXTRA="${3:-}"
[[ -f "$WHEEL" ]] || { echo "wheelhouse.sh: no file $WHEEL" >&2; exit 2; }
[[ "$WHEEL" == *aarch64*.whl ]] || { echo "wheelhouse.sh: $WHEEL is not an aarch64 wheel" >&2; exit 2; }
mkdir -p "$OUT"
cp "$WHEEL" "$OUT/"
req="$(realpath "$OUT/$(basename "$WHEEL")")${EXTRA:+[$EXTRA]}"
python3 -m pip download --quiet --dest "$OUT" --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
    --platform linux_aarch64 "$req"
echo "wheelhouse.sh: $(ls "$OUT"/*.whl | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT" >&2

#!/usr/bin/env bash
# Build the arm64 (aarch64) abi3 wheel for Python 3.11+ on this x86_64 box:
#   deploy/build-arm64-wheel.sh [OUT_DIR]        (default dist/)
# Uses the toolchain deploy/cross-toolchain.sh fetches (Debian's rustc 1.96
# with its aarch64 std, zig from PyPI as C compiler and linker), so it needs
# no root and nothing from the Rust dist server. The wheel is tagged
# manylinux2014_aarch64 (glibc 2.17+): Raspberry Pi OS bookworm 64-bit has 2.36.
# The Rust target directory lives in the toolchain directory, so rebuilds are
# incremental across clones. Prints the wheel's path.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-dist}")"
C="$(bash deploy/cross-toolchain.sh)"
export RUSTC="$C/host/usr/bin/rustc"
export LD_LIBRARY_PATH="$C/host/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$C/target}"
export PATH="$C/venv/bin:$PATH"
mkdir -p "$OUT"
before="$(date +%s)"
"$C/venv/bin/maturin" build --release --zig --target aarch64-unknown-linux-gnu \
    --compatibility manylinux2014 --out "$OUT" --quiet >&2
wheel="$(ls -t "$OUT"/tidegate-*-cp311-abi3-manylinux*_aarch64.whl | head -1)"
echo "build-arm64-wheel: $(basename "$wheel") in $(( $(date +%s) - before ))s" >&2
echo "$wheel"

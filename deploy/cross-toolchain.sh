#!/usr/bin/env bash
# Fetch what building and checking the arm64 wheel on an x86_64 Debian 12 box
# needs, into a private directory (default ~/.cache/tidegate-cross), without
# installing anything system-wide and without root:
#   - Debian's rustc-web 1.96 with its std for x86_64 and aarch64 (rustup's
#     aarch64 std comes from the Rust dist server, which a build box behind a
#     registry-only proxy cannot reach; Debian's std must run with Debian's
#     rustc of the same release, so both come from here);
#   - qemu-user-static and a minimal arm64 root with Python 3.11 (the Python of
#     Raspberry Pi OS bookworm) to run the tests on the built wheel;
#   - maturin and zig (the PyPI `ziglang` wheel) in a venv: zig is the C
#     cross-compiler and linker, and targets glibc 2.17 (manylinux2014).
# Packages come through apt with a private state directory (no
# `dpkg --add-architecture` on the host) and are unpacked with `dpkg -x`.
# Idempotent: a second run only checks. Prints the directory on success.
set -euo pipefail
C="${TIDEGATE_CROSS_DIR:-$HOME/.cache/tidegate-cross}"
RUST_PKGS=(rustc-web libstd-rust-web-1.96 libstd-rust-web-dev libllvm22
           libz3-4 libedit2 libxml2 libicu72 libbsd0 libmd0
           libstd-rust-web-1.96:arm64 libstd-rust-web-dev:arm64 qemu-user-static)
# The arm64 Python's dependency closure is computed; these are the roots.
PY_ROOTS=(python3.11-minimal:arm64 libpython3.11-stdlib:arm64 libstdc++6:arm64)
PY_TOOLS=("maturin>=1.9.4,<2" "ziglang>=0.13")

if [[ -f "$C/.complete" ]]; then echo "$C"; exit 0; fi
command -v apt-get >/dev/null || { echo "cross-toolchain.sh: needs apt-get (Debian 12 or later)" >&2; exit 2; }
mkdir -p "$C"/apt/state/lists/partial "$C"/apt/cache/archives/partial "$C"/debs "$C"/host "$C"/arm64
touch "$C/apt/state/status"
APT=(-o "Dir::State=$C/apt/state" -o "Dir::State::status=$C/apt/state/status"
     -o "Dir::Cache=$C/apt/cache" -o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64"
     -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -q)
echo "cross-toolchain: apt index (private state in $C/apt)" >&2
apt-get "${APT[@]}" update >/dev/null
mapfile -t PY_PKGS < <(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances "${PY_ROOTS[@]}" \
    | grep -E '^[a-z0-9][^ <]*:arm64$' | sort -u)
PY_PKGS+=(media-types)
echo "cross-toolchain: downloading ${#RUST_PKGS[@]} toolchain and ${#PY_PKGS[@]} arm64 Python packages" >&2
(cd "$C/debs" && apt-get "${APT[@]}" download "${RUST_PKGS[@]}" "${PY_PKGS[@]}" >/dev/null)
for deb in "$C"/debs/*.deb; do
    case "$deb" in
        *_arm64.deb) if [[ "$(basename "$deb")" == libstd-rust* ]]; then dpkg -x "$deb" "$C/host"; else dpkg -x "$deb" "$C/arm64"; fi ;;
        *) dpkg -x "$deb" "$C/host" ;;
    esac
done
# dpkg -x runs no maintainer scripts: give the arm64 Python its usual names.
ln -sf python3.11 "$C/arm64/usr/bin/python3"

echo "cross-toolchain: maturin and zig into $C/venv" >&2
python3 -m venv "$C/venv"
"$C/venv/bin/pip" install -q --upgrade pip
"$C/venv/bin/pip" install -q "${PY_TOOLS[@]}"

RUSTC="$C/host/usr/bin/rustc"
LD_LIBRARY_PATH="$C/host/usr/lib/x86_64-linux-gnu:$C/host/usr/lib" "$RUSTC" --print target-libdir \
    --target aarch64-unknown-linux-gnu >/dev/null
"$C/host/usr/bin/qemu-aarch64-static" -L "$C/arm64" "$C/arm64/usr/bin/python3.11" -c 'import sys; print(sys.version)' >/dev/null
touch "$C/.complete"
echo "$C"

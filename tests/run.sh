#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv, the Rust core built and
# installed in place (maturin develop), then cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the tests use, installed only when missing (CI runs as root):
# tmux, the terminal the TUI's end-to-end test runs `tidegate demo` in;
# systemd-sysusers and systemd-analyze for tests/test_deploy*.py (install.sh --root, units);
# ip and nft for the link's loss scenarios in a network namespace (tests/test_link_netns.py).
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
{ command -v systemd-analyze >/dev/null && command -v systemd-sysusers >/dev/null; } || need+=(systemd)
if (( ${#need[@]} )) && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.9.4,<2"
maturin develop --release --extras test -q
cargo test --workspace --quiet
python -m mypy.stubtest edge._core
python -m mypy
python -m pytest -q "$@"

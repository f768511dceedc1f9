#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv, the Rust core built and
# installed in place (maturin develop), then cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/test_deploy*.py: systemd-sysusers (install.sh --root) and systemd-analyze (units).
if ! command -v systemd-analyze >/dev/null || ! command -v systemd-sysusers >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd
    fi
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

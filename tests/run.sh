#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv, the Rust core built and
# installed in place (maturin develop), then cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.9.4,<2"
maturin develop --release --extras test -q
cargo test --workspace --quiet
python -m mypy.stubtest edge._core
python -m mypy
python -m pytest -q "$@"

#!/usr/bin/env bash
# Sets up and runs every Maru test (run as root: the tests mount FUSE filesystems
# and switch to an unprivileged user). This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust tests"
# Includes maru-fs's capacity fault suite (maru-fs/tests/faults.rs), which prints
# its own "N passed, M failed" line.
cargo test --workspace --locked

echo "== C ABI test"
./tests/c/run.sh

echo "== Python package (maru, maru_lmcache)"
cargo build --locked -p libmaru -p maru-devd
[ -x .venv-test/bin/python ] || python3 -m venv .venv-test
.venv-test/bin/pip install -q --disable-pip-version-check pytest ./python
.venv-test/bin/python -m pytest -q -rs -p no:cacheprovider python/tests

#!/usr/bin/env bash
# Sets up and runs every Maru test. This is the README's test command.
#
# Run it as yourself or as root. As the caller it checks formatting and lints, the
# dependency policy (cargo deny, when installed), that the docs name no missing file, runs the
# C ABI test (tests/c/run.sh: header/exports check, SONAME, install with pkg-config),
# builds every test, and installs the Python package into .venv-test with
# `pip install ./python` (which compiles and bundles libmaru). The Rust and Python tests
# then run as root (they mount FUSE filesystems and switch to an unprivileged user): a
# user is asked through sudo; root needs no sudo.
set -euo pipefail
me=test.sh
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh
venv=.venv-test

if [ -z "${MARU_ELEVATED:-}" ]; then
    ./scripts/setup.sh
    maru_find_cargo

    echo "== format and lints"
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

    echo "== dependency policy: cargo deny check bans licenses sources (deny.toml)"
    if cargo deny --version >/dev/null 2>&1; then
        # The advisories check needs the RustSec database from GitHub; a CI with network
        # access adds `cargo deny check advisories`.
        cargo deny --locked check bans licenses sources
    else
        echo "   SKIPPED: cargo-deny is not installed; MARU_INSTALL_CARGO_DENY=1 ./scripts/setup.sh installs it"
    fi

    echo "== docs: every repository path they name exists"
    python3 scripts/check-doc-paths.py

    echo "== C ABI test"
    ./tests/c/run.sh

    echo "== build the tests"
    cargo test --workspace --locked --no-run
    cargo build --locked -p libmaru -p maru-devd

    echo "== Python package: pip install ./python (builds and bundles libmaru)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # The dev profile reuses the debug libmaru built above; a user's install builds release.
    MARU_CARGO_PROFILE=dev "$venv/bin/pip" install -q --disable-pip-version-check pytest numpy ./python
    bundled="$("$venv/bin/python" -c 'import maru._lib as l; print(l.path)')"
    case "$bundled" in
        "$(realpath "$venv")"/*/site-packages/maru/_native/libmaru.so) echo "   the package loads its bundled $bundled" ;;
        *) echo "$me: the installed package loads $bundled, not the libmaru bundled in it" >&2; exit 1 ;;
    esac
fi
maru_reexec_as_root "the Rust and Python tests (they mount FUSE filesystems and switch users)" "$@"
# Nothing root writes (bytecode) should land in a user's checkout.
if [ -n "${MARU_ELEVATED:-}" ]; then export PYTHONDONTWRITEBYTECODE=1; fi

echo "== Rust tests"
# As root every test runs: the root gate (maru-testkit's need::root) only skips when
# not root and MARU_TEST_SKIP_ROOT=1. Tests that could not run print "SKIPPED (...)"
# (a GPU test without a GPU). Includes the fault suites (maru-fs/tests/faults.rs,
# maru-devd/tests/daemon_faults.rs), which print their own "N passed, M failed" line.
cargo test --workspace --locked

echo "== Python package (maru, maru_lmcache)"
"$venv/bin/python" -m pytest -q -rs -p no:cacheprovider python/tests

#!/usr/bin/env bash
# Runs the fuzz properties (the `fuzz_` tests of maru-devd and maru-fs: config
# parser, sysfs attribute readers, control-socket requests, devdax header/record/
# lease decoders, KeyRef) with a much larger case budget than `cargo test` uses.
#
#   scripts/fuzz.sh                 # 100,000 cases per property, fixed seed
#   PROPTEST_CASES=1000000 scripts/fuzz.sh
#   PROPTEST_RNG_SEED=42 scripts/fuzz.sh   # another (still reproducible) seed
#
# A failing property prints the minimal failing input (proptest shrinks it) and the
# seed; rerun with the same PROPTEST_RNG_SEED to reproduce, then add a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-1835102837}"
echo "fuzz: PROPTEST_CASES=$PROPTEST_CASES PROPTEST_RNG_SEED=$PROPTEST_RNG_SEED"
# Release build with overflow checks, so arithmetic overflows still fail loudly.
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
cargo test --release -p maru-fs --lib -- fuzz_ --test-threads "${FUZZ_THREADS:-2}"
cargo test --release -p maru-devd --bin maru-devd -- fuzz_ --test-threads "${FUZZ_THREADS:-2}"

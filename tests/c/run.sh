#!/usr/bin/env bash
# Builds libmaru.so (if needed), compiles the C ABI test and the C example against
# libmaru/include/maru.h with gcc, and runs the test on a fresh pool directory.
#   tests/c/run.sh [POOL_DIR]   (default: a temporary directory under /dev/shm)
# Honours CARGO_TARGET_DIR; extra cargo flags (e.g. --features cuda) in CARGO_FLAGS.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
target="${CARGO_TARGET_DIR:-$root/target}"
# shellcheck disable=SC2086
cargo build -p libmaru --locked ${CARGO_FLAGS:-}
libdir="$target/debug"
[ -f "$libdir/libmaru.so" ] || { echo "tests/c: $libdir/libmaru.so was not built" >&2; exit 1; }

work="$(mktemp -d /dev/shm/maru-ctest-XXXXXX)"
trap 'rm -rf "$work"' EXIT
cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I "$root/libmaru/include")
ldflags=(-L "$libdir" -Wl,-rpath,"$libdir" -lmaru)
gcc "${cflags[@]}" tests/c/test_maru.c -o "$work/test_maru" "${ldflags[@]}"
gcc "${cflags[@]}" examples/c/example.c -o "$work/example" "${ldflags[@]}"
# The header must also be valid C++.
if command -v g++ >/dev/null 2>&1; then
    g++ -fsyntax-only -x c++ -I "$root/libmaru/include" - <<<'#include "maru.h"'
fi

pool="${1:-$work/pool}"
mkdir -p "$pool"
"$work/test_maru" "$pool"
# The example: one process publishes, another reads.
"$work/example" "$pool" put "example/key" "hello from C"
out="$("$work/example" "$pool" get "example/key")"
[ "$out" = "hello from C" ] || { echo "tests/c: example read back '$out'" >&2; exit 1; }
echo "tests/c: ok"

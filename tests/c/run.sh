#!/usr/bin/env bash
# Builds libmaru.so (if needed), checks that maru.h declares exactly the functions it
# exports (check-header.sh) and that its SONAME is libmaru.so.0, compiles the C ABI
# test and the C example against libmaru/include/maru.h with gcc, and runs the test on
# a fresh pool directory.
# Then installs the library into a DESTDIR (scripts/install-libmaru.sh), builds the
# example from the installed files with pkg-config, as a user of the library would,
# and runs that build too.
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

# The header cannot drift from the library.
./tests/c/check-header.sh "$libdir/libmaru.so"
soname_of() { readelf -d "$1" | sed -n "s/.*($2).*\[\(libmaru[^]]*\)\]/\1/p"; }
[ "$(soname_of "$libdir/libmaru.so" SONAME)" = libmaru.so.0 ] ||
    { echo "tests/c: $libdir/libmaru.so: SONAME is '$(soname_of "$libdir/libmaru.so" SONAME)', expected libmaru.so.0" >&2; exit 1; }
# Programs linked with -lmaru load the SONAME; cargo leaves only libmaru.so.
ln -sfn libmaru.so "$libdir/libmaru.so.0"

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

# Installed: the layout, pkg-config, and a program linked against the SONAME.
stage="$work/destdir"
./scripts/install-libmaru.sh DESTDIR="$stage" PREFIX=/usr/local LIBMARU_SO="$libdir/libmaru.so" 2>/dev/null >/dev/null
inst="$stage/usr/local"
version="$(pkg-config --modversion "$inst/lib/pkgconfig/maru.pc")"
for f in "lib/libmaru.so.$version" lib/libmaru.so.0 lib/libmaru.so include/maru.h lib/pkgconfig/maru.pc; do
    [ -e "$inst/$f" ] || { echo "tests/c: install did not create $inst/$f" >&2; exit 1; }
done
[ "$(readlink "$inst/lib/libmaru.so")" = libmaru.so.0 ] && [ "$(readlink "$inst/lib/libmaru.so.0")" = "libmaru.so.$version" ] ||
    { echo "tests/c: wrong symlinks: $(ls -l "$inst/lib" | tr '\n' ' ')" >&2; exit 1; }
# The docs' line, with pkg-config looking into the DESTDIR (SYSROOT prefixes its -I/-L).
(
    export PKG_CONFIG_PATH="$inst/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
    cd "$work"
    # shellcheck disable=SC2046
    cc "$root/examples/c/example.c" $(pkg-config --cflags --libs maru) -o example-pc
)
[ "$(soname_of "$work/example-pc" NEEDED)" = libmaru.so.0 ] ||
    { echo "tests/c: the example built with pkg-config does not need libmaru.so.0: $(readelf -d "$work/example-pc" | grep NEEDED)" >&2; exit 1; }
resolved="$(LD_LIBRARY_PATH="$inst/lib" ldd "$work/example-pc" | awk '$1 == "libmaru.so.0" { print $3 }')"
[ "$resolved" = "$inst/lib/libmaru.so.0" ] || { echo "tests/c: libmaru.so.0 resolved to '$resolved', not the installed one" >&2; exit 1; }
LD_LIBRARY_PATH="$inst/lib" "$work/example-pc" "$pool" put "example/installed" "hello from pkg-config"
out="$(LD_LIBRARY_PATH="$inst/lib" "$work/example-pc" "$pool" get "example/installed")"
[ "$out" = "hello from pkg-config" ] || { echo "tests/c: installed example read back '$out'" >&2; exit 1; }
echo "tests/c: ok (header matches the exports; SONAME libmaru.so.0; installed with pkg-config)"

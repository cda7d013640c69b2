#!/usr/bin/env bash
# Installs libmaru for C and C++ programs: the shared library with its SONAME links,
# the header and a pkg-config file.
#
#   scripts/install-libmaru.sh [--uninstall] [VAR=value ...]
#
#   PREFIX=/usr/local        where the files go at run time (recorded in maru.pc)
#   DESTDIR=                 staging root prepended to every path (packaging); empty: none
#   LIBDIR=$PREFIX/lib       e.g. /usr/lib/x86_64-linux-gnu on Debian with PREFIX=/usr
#   INCLUDEDIR=$PREFIX/include
#   PKGCONFIGDIR=$LIBDIR/pkgconfig
#   LIBMARU_SO=              install this already built libmaru.so instead of building
#                            (default: cargo build --release -p libmaru, as the caller)
#   CARGO_FLAGS=             extra cargo flags for the build, e.g. --features cuda
#
# Variables may also come from the environment. Installs (VERSION from Cargo.toml):
#   $LIBDIR/libmaru.so.VERSION, libmaru.so.0 -> it, libmaru.so -> libmaru.so.0
#   $INCLUDEDIR/maru.h, $PKGCONFIGDIR/maru.pc
# then `cc app.c $(pkg-config --cflags --libs maru)` builds against it.
#
# It builds as the caller; when the destination is not writable (e.g. /usr/local as a
# user) only the copying runs through sudo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
me="install-libmaru"
self="$root/scripts/install-libmaru.sh"
# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh"

uninstall=0
for arg in "$@"; do
    case "$arg" in
        --uninstall) uninstall=1 ;;
        PREFIX=* | DESTDIR=* | LIBDIR=* | INCLUDEDIR=* | PKGCONFIGDIR=* | LIBMARU_SO=* | CARGO_FLAGS=*)
            export "${arg?}" ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "$me: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
PREFIX="${PREFIX:-/usr/local}"
PREFIX="${PREFIX%/}"
DESTDIR="${DESTDIR:-}"
LIBDIR="${LIBDIR:-$PREFIX/lib}"
INCLUDEDIR="${INCLUDEDIR:-$PREFIX/include}"
PKGCONFIGDIR="${PKGCONFIGDIR:-$LIBDIR/pkgconfig}"
for v in PREFIX LIBDIR INCLUDEDIR PKGCONFIGDIR; do
    case "${!v}" in
        /*) ;;
        *) echo "$me: $v must be an absolute path (got '${!v}')" >&2; exit 2 ;;
    esac
done

# The version is the workspace's ([workspace.package] version in Cargo.toml).
version="$(awk '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 }
                p && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "$me: cannot read the version from $root/Cargo.toml" >&2; exit 1; }
soname="libmaru.so.0" # libmaru/build.rs sets it; checked against the built library below
real="libmaru.so.$version"

d_lib="$DESTDIR$LIBDIR"
d_inc="$DESTDIR$INCLUDEDIR"
d_pc="$DESTDIR$PKGCONFIGDIR"

# as_root: empty when the caller can write every destination, else sudo (asked once).
writable() { # the directory, or its nearest existing parent, is writable
    local d="$1"
    while [ ! -e "$d" ]; do d="$(dirname "$d")"; done
    [ -w "$d" ]
}
as_root=()
if ! maru_is_root; then
    for d in "$d_lib" "$d_inc" "$d_pc"; do
        if ! writable "$d"; then
            command -v sudo >/dev/null 2>&1 || {
                echo "$me: $d is not writable and sudo is not installed: run this as root, or choose PREFIX= (or DESTDIR=) you can write" >&2
                exit 1
            }
            echo "$me: $d is not writable by $(id -un): installing through sudo" >&2
            as_root=(sudo)
            break
        fi
    done
fi

if [ "$uninstall" -eq 1 ]; then
    "${as_root[@]}" rm -fv "$d_lib/$real" "$d_lib/$soname" "$d_lib/libmaru.so" "$d_inc/maru.h" "$d_pc/maru.pc"
    exit 0
fi

if [ -z "${LIBMARU_SO:-}" ]; then
    maru_find_cargo
    command -v cargo >/dev/null || {
        echo "$me: cargo not found: install Rust >= 1.85 (https://rustup.rs), or build elsewhere and pass LIBMARU_SO=path/to/libmaru.so" >&2
        exit 1
    }
    echo "$me: building libmaru (cargo build --release -p libmaru ${CARGO_FLAGS:-})" >&2
    # shellcheck disable=SC2086
    (cd "$root" && cargo build --release --locked -p libmaru ${CARGO_FLAGS:-})
    LIBMARU_SO="${CARGO_TARGET_DIR:-$root/target}/release/libmaru.so"
    case "$LIBMARU_SO" in /*) ;; *) LIBMARU_SO="$root/$LIBMARU_SO" ;; esac
fi
[ -f "$LIBMARU_SO" ] || { echo "$me: $LIBMARU_SO: no such file" >&2; exit 1; }
if command -v readelf >/dev/null; then
    got="$(readelf -d "$LIBMARU_SO" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
    [ "$got" = "$soname" ] || {
        echo "$me: $LIBMARU_SO has SONAME '${got:-none}', expected $soname (built without libmaru/build.rs? rebuild it)" >&2
        exit 1
    }
fi

echo "$me: installing libmaru $version into ${DESTDIR:+$DESTDIR (staging) }$PREFIX" >&2
"${as_root[@]}" install -d -m 0755 "$d_lib" "$d_inc" "$d_pc"
"${as_root[@]}" install -m 0755 "$LIBMARU_SO" "$d_lib/$real"
"${as_root[@]}" ln -sfn "$real" "$d_lib/$soname"
"${as_root[@]}" ln -sfn "$soname" "$d_lib/libmaru.so"
"${as_root[@]}" install -m 0644 "$root/libmaru/include/maru.h" "$d_inc/maru.h"

# Paths below the prefix are written relative to it, so the file stays relocatable
# with pkg-config --define-prefix.
rel() { case "$1" in "$PREFIX"/*) echo "\${prefix}${1#"$PREFIX"}" ;; *) echo "$1" ;; esac; }
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<PC
prefix=$PREFIX
libdir=$(rel "$LIBDIR")
includedir=$(rel "$INCLUDEDIR")

Name: maru
Description: Maru client library: share KV-cache chunks through CXL memory (maru-fs pools)
Version: $version
Libs: -L\${libdir} -lmaru
Cflags: -I\${includedir}
PC
"${as_root[@]}" install -m 0644 "$tmp" "$d_pc/maru.pc"

for f in "$d_lib/$real" "$d_lib/$soname" "$d_lib/libmaru.so" "$d_inc/maru.h" "$d_pc/maru.pc"; do
    echo "  $f"
done
# A real install (no DESTDIR) as root: refresh the loader's cache for the new SONAME.
if [ -z "$DESTDIR" ] && { maru_is_root || [ "${#as_root[@]}" -gt 0 ]; }; then
    ldconfig_bin="$(PATH="$PATH:/sbin:/usr/sbin" command -v ldconfig || true)"
    [ -z "$ldconfig_bin" ] || "${as_root[@]}" "$ldconfig_bin"
fi
if [ -z "$DESTDIR" ] && ! pkg-config --variable=pc_path pkg-config 2>/dev/null | tr ':' '\n' | grep -qx "$PKGCONFIGDIR"; then
    echo "$me: note: $PKGCONFIGDIR is not on pkg-config's default path; use PKG_CONFIG_PATH=$PKGCONFIGDIR" >&2
fi

#!/usr/bin/env bash
# Checks that maru.h declares exactly the functions libmaru.so exports.
#   tests/c/check-header.sh LIBMARU_SO [MARU_H]   (default header: libmaru/include/maru.h)
# Exported: the dynamic symbols `T maru_*` of the library (nm -D --defined-only).
# Declared: every `maru_<name>(` in the header after the C preprocessor has removed the
# comments (so a name mentioned in a doc comment does not count). Fails listing the
# names found on one side only; run by tests/c/run.sh. The signatures (parameter and
# return types, constants, struct layout) are checked by libmaru/tests/header.rs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lib="${1:?usage: tests/c/check-header.sh LIBMARU_SO [MARU_H]}"
header="${2:-$root/libmaru/include/maru.h}"
[ -f "$lib" ] || { echo "check-header: $lib: no such library (build it: cargo build -p libmaru)" >&2; exit 1; }
[ -f "$header" ] || { echo "check-header: $header: no such header" >&2; exit 1; }
for tool in nm cc; do
    command -v "$tool" >/dev/null || { echo "check-header: '$tool' is missing (Debian: apt-get install binutils gcc)" >&2; exit 1; }
done

exported="$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^maru_/ { print $3 }' | sort -u)"
[ -n "$exported" ] || { echo "check-header: $lib exports no maru_* function (not libmaru, or stripped of its dynamic symbols?)" >&2; exit 1; }
# -P: no line markers; a function declaration is its name followed by '('.
declared="$(cc -E -P -x c "$header" | grep -oE '\bmaru_[A-Za-z0-9_]+[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' | sort -u)"

only_lib="$(comm -23 <(printf '%s\n' "$exported") <(printf '%s\n' "$declared"))"
only_h="$(comm -13 <(printf '%s\n' "$exported") <(printf '%s\n' "$declared"))"
if [ -n "$only_lib" ] || [ -n "$only_h" ]; then
    echo "check-header: $header and $lib disagree:" >&2
    [ -z "$only_lib" ] || echo "  exported by the library but not declared in the header: $(paste -sd" " <<<"$only_lib")" >&2
    [ -z "$only_h" ] || echo "  declared in the header but not exported by the library: $(paste -sd" " <<<"$only_h")" >&2
    echo "  (declare each #[no_mangle] extern \"C\" function of libmaru/src/ffi in maru.h, with its doc comment, or remove the stale declaration)" >&2
    exit 1
fi
echo "check-header: maru.h declares the $(printf '%s\n' "$exported" | wc -l) functions libmaru exports"

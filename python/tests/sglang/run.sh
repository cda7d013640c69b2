#!/usr/bin/env bash
# Runs python/tests/test_sglang_storage.py against the REAL SGLang HiCacheStorage (no
# harness stand-in: sglang_harness.install() finds sglang installed and stubs nothing),
# on a private maru-devd mount.
#
#   sudo python/tests/sglang/run.sh         # extra args go to pytest
#
# Knobs: MARU_SGLANG_VENV (default <repo>/.venv-sglang, reused), SGLANG_VERSION (default:
# the newest release), CARGO_TARGET_DIR. SGLang pulls torch (~5 GiB of CUDA wheels from
# PyPI); a GPU is not needed for these tests.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
venv=${MARU_SGLANG_VENV:-$repo/.venv-sglang}
spec=sglang${SGLANG_VERSION:+==$SGLANG_VERSION}
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== build libmaru and maru-devd"
(cd "$repo" && cargo build --release -p libmaru -p maru-devd)

echo "== venv $venv: $spec, maru"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" "$spec" numpy pytest
"${pip[@]}" "$repo/python"
"$venv/bin/python" -c "import sglang.srt.mem_cache.hicache_storage as m; print('SGLang HiCacheStorage:', m.__file__)"

cd "$repo"
echo "== MaruStorage on the real HiCacheStorage"
"$venv/bin/python" -m pytest -v -rs -p no:cacheprovider python/tests/test_sglang_storage.py "$@"

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
. "$(dirname "$0")/../engine-venv.sh"
engine_venv "${MARU_SGLANG_VENV:-$repo/.venv-sglang}" "sglang${SGLANG_VERSION:+==$SGLANG_VERSION}"
"$py" -c "import sglang.srt.mem_cache.hicache_storage as m; print('SGLang HiCacheStorage:', m.__file__)"

cd "$repo"
echo "== MaruStorage on the real HiCacheStorage"
"$py" -m pytest -v -rs -p no:cacheprovider python/tests/test_sglang_storage.py "$@"

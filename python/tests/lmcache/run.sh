#!/usr/bin/env bash
# Runs LMCache's real MaruBackend against this package on a private maru-devd mount
# (python/tests/test_lmcache_backend.py), after installing torch and LMCache into a venv;
# then LMCache's own MaruBackend tests (tests/v1/storage_backend/test_maru_backend.py of
# the LMCache release, unmodified) against this package's maru_handler/maru_lmcache.
#
#   sudo python/tests/lmcache/run.sh            # from anywhere; extra args go to pytest
#
# Knobs: MARU_LMCACHE_VENV (default <repo>/.venv-lmcache, reused when present),
# LMCACHE_VERSION (default 0.5.6, the release whose maru_backend.py this package targets),
# CARGO_TARGET_DIR (where the Rust binaries are built and then looked up),
# LMCACHE_SRC (an LMCache source tree of that release; default: the release's sdist from
# PyPI, which carries tests/, unpacked into <venv>/src/lmcache-<version>).
#
# torch comes from PyPI, whose Linux wheels are CUDA builds: with the nvidia-* wheels about
# 5 GiB installed; they run on CPU, which is all this test needs. LMCache is installed
# without its dependency list (that list pulls CUDA-only packages such as cupy-cuda13x,
# cuda-python and nixl) plus the packages its MaruBackend import chain needs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
venv=${MARU_LMCACHE_VENV:-$repo/.venv-lmcache}
lmcache_version=${LMCACHE_VERSION:-0.5.6}
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== build libmaru and maru-devd"
(cd "$repo" && cargo build --release -p libmaru -p maru-devd)

echo "== venv $venv: torch, lmcache $lmcache_version, maru"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" torch numpy numba pyyaml requests cachetools sortedcontainers prometheus_client \
    py-cpuinfo psutil aiohttp aiofile msgspec pyzmq transformers cryptography pytest
"${pip[@]}" --no-deps "lmcache==$lmcache_version"
"${pip[@]}" "$repo/python"

echo "== LMCache MaruBackend on maru-fs"
cd "$repo"
"$venv/bin/python" -m pytest -v -p no:cacheprovider python/tests/test_lmcache_backend.py "$@"

echo "== LMCache $lmcache_version's own tests/v1/storage_backend/test_maru_backend.py"
src=${LMCACHE_SRC:-$venv/src/lmcache-$lmcache_version}
if [ ! -f "$src/tests/v1/storage_backend/test_maru_backend.py" ]; then
    # The sdist on PyPI is the release's source, tests included; PyPI is reachable where
    # GitHub may not be. Its address comes from the simple index (PEP 503).
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    "$venv/bin/python" - "$lmcache_version" "$(dirname "$src")" <<'PY'
import re, sys, tarfile, urllib.request, io
version, dest = sys.argv[1], sys.argv[2]
index = urllib.request.urlopen("https://pypi.org/simple/lmcache/").read().decode()
urls = [u for u in re.findall(r'href="([^"#]+)', index) if u.endswith(f"/lmcache-{version}.tar.gz")]
if not urls:
    sys.exit(f"run.sh: PyPI has no sdist lmcache-{version}.tar.gz; set LMCACHE_SRC to a source tree")
with tarfile.open(fileobj=io.BytesIO(urllib.request.urlopen(urls[0]).read())) as tar:
    tar.extractall(dest, filter="data")
PY
fi
# The test imports `tests.v1.utils` and the *installed* lmcache (the wheel, with its
# compiled parts), so it runs from a directory holding only the test file, the helpers
# it imports and the package markers (copied as they are; missing markers are empty),
# not from the source root, whose lmcache/ would shadow the wheel.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for f in tests/__init__.py tests/v1/__init__.py tests/v1/storage_backend/__init__.py \
    tests/v1/utils.py tests/v1/storage_backend/test_maru_backend.py; do
    mkdir -p "$stage/$(dirname "$f")"
    if [ -f "$src/$f" ]; then cp "$src/$f" "$stage/$f"; else : >"$stage/$f"; fi
done
cd "$stage"
exec "$venv/bin/python" -m pytest -v -p no:cacheprovider --rootdir "$stage" \
    tests/v1/storage_backend/test_maru_backend.py "$@"

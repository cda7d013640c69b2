#!/usr/bin/env bash
# Runs python/tests/test_vllm_connector.py against the REAL vLLM classes (no harness
# stand-in: vllm_harness.install() finds vllm installed and stubs nothing), on a private
# maru-devd mount, twice: numpy KV caches, then torch CPU tensors (MARU_TEST_TORCH=1).
#
#   sudo python/tests/vllm/run.sh           # extra args go to pytest
#
# Knobs: MARU_VLLM_VENV (default <repo>/.venv-vllm, reused), VLLM_VERSION (default: the
# newest release; the connector targets KVConnectorBase_V1 of vLLM >= 0.14),
# CARGO_TARGET_DIR. vLLM pulls torch (PyPI's Linux wheels are CUDA builds, ~5 GiB with
# the nvidia-* wheels); a GPU is not needed for these tests.
set -euo pipefail
. "$(dirname "$0")/../engine-venv.sh"
engine_venv "${MARU_VLLM_VENV:-$repo/.venv-vllm}" "vllm${VLLM_VERSION:+==$VLLM_VERSION}"
"$py" -c "import vllm.distributed.kv_transfer.kv_connector.v1.base as b; print('vLLM base:', b.__file__)"

cd "$repo"
echo "== MaruKVConnector on the real KVConnectorBase_V1 (numpy caches)"
"$py" -m pytest -v -rs -p no:cacheprovider python/tests/test_vllm_connector.py "$@"
echo "== same, torch CPU caches"
MARU_TEST_TORCH=1 "$py" -m pytest -v -rs -p no:cacheprovider python/tests/test_vllm_connector.py "$@"

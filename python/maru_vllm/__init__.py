"""maru_vllm: a vLLM KV connector (``KVConnectorBase_V1``) over Maru on CXL.

Enable it with::

    vllm serve <model> --kv-transfer-config '{"kv_connector": "MaruKVConnector",
        "kv_connector_module_path": "maru_vllm.connector", "kv_role": "kv_both",
        "kv_connector_extra_config": {"maru_path": "maru:///mnt/maru/<pool>"}}'

See ``docs/vllm.md``. Importing the connector needs vLLM (``maru_vllm.connector``);
the key scheme (``maru_vllm.keys``) and copy layer (``maru_vllm.tensors``) do not.
"""

from .keys import KeyScheme, chunk_hashes

__all__ = ["KeyScheme", "chunk_hashes"]

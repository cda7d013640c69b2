"""A minimal, faithful harness of vLLM's KV connector interface, and a fake engine.

vLLM cannot be installed on the development machines (it needs torch, a 5 GiB CUDA
wheel, and the CPU wheel index is unreachable), so the connector tests run against:

* ``install()``: when ``import vllm`` fails, a stand-in module
  ``vllm.distributed.kv_transfer.kv_connector.v1.base`` with ``KVConnectorRole``,
  ``KVConnectorMetadata`` and ``KVConnectorBase_V1``: the abstract methods' signatures
  and the base's own behaviour (``__init__`` keeps ``kv_transfer_config``,
  ``bind_connector_metadata`` / ``clear_connector_metadata`` /
  ``_get_connector_metadata``, defaults of ``get_finished``,
  ``get_block_ids_with_load_errors``, ``request_finished``) copied from
  vllm-project/vllm ``vllm/distributed/kv_transfer/kv_connector/v1/base.py`` at commit
  003df2961dd8830c317a61f9745ccd557da9fa06. With vLLM installed (tests/vllm/run.sh)
  the real module is used and nothing is stubbed.
* ``Engine``: drives one scheduler-side and one worker-side connector in the order
  vLLM's v1 scheduler and GPU model runner call them (per
  ``vllm/v1/core/sched/scheduler.py`` and
  ``vllm/distributed/kv_transfer/kv_connector/v1/example_connector.py`` at that
  commit): ``get_num_new_matched_tokens`` -> block allocation ->
  ``update_state_after_alloc`` -> ``build_connector_meta`` -> (worker)
  ``bind_connector_metadata``, ``start_load_kv``, per layer ``wait_for_layer_load`` /
  attention / ``save_kv_layer``, ``wait_for_save``, ``clear_connector_metadata`` ->
  ... -> ``request_finished``. Scheduler data (``NewRequestData``,
  ``CachedRequestData``, ``SchedulerOutput``) have the upstream field names. The KV
  cache is FlashAttention's layout ``[2, num_blocks, block_size, heads, head_dim]``,
  numpy (or torch CPU with ``MARU_TEST_TORCH=1``); "attention" writes a deterministic
  function of (token, position, layer) into the slots it computes.
"""

from __future__ import annotations

import enum
import os
import random
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

UPSTREAM = "vllm-project/vllm@003df2961dd8830c317a61f9745ccd557da9fa06"


def install() -> bool:
    """Makes ``vllm...v1.base`` importable; True when the real vLLM is used."""
    if os.environ.get("MARU_HARNESS_FORCE") != "1":
        try:
            import vllm.distributed.kv_transfer.kv_connector.v1.base  # noqa: F401

            return True
        except Exception:
            pass
    if "vllm.distributed.kv_transfer.kv_connector.v1.base" in sys.modules:
        return False
    base = types.ModuleType("vllm.distributed.kv_transfer.kv_connector.v1.base")

    class KVConnectorRole(enum.Enum):
        SCHEDULER = 0
        WORKER = 1

    class KVConnectorMetadata(ABC):  # noqa: B024
        pass

    class KVConnectorBase_V1(ABC):
        def __init__(self, vllm_config, role, kv_cache_config=None):
            self._connector_metadata = None
            self._vllm_config = vllm_config
            if vllm_config.kv_transfer_config is None:
                raise ValueError("kv_transfer_config must be set for KVConnectorBase_V1")
            self._kv_transfer_config = vllm_config.kv_transfer_config
            self._kv_cache_config = kv_cache_config
            self._role = role

        @property
        def role(self):
            return self._role

        def bind_connector_metadata(self, connector_metadata):
            self._connector_metadata = connector_metadata

        def clear_connector_metadata(self):
            self._connector_metadata = None

        def _get_connector_metadata(self):
            assert self._connector_metadata is not None
            return self._connector_metadata

        def has_connector_metadata(self):
            return self._connector_metadata is not None

        def register_kv_caches(self, kv_caches):
            return

        @abstractmethod
        def start_load_kv(self, forward_context, **kwargs: Any) -> None: ...

        @abstractmethod
        def wait_for_layer_load(self, layer_name: str) -> None: ...

        @abstractmethod
        def save_kv_layer(self, layer_name: str, kv_layer, attn_metadata, **kwargs: Any) -> None: ...

        @abstractmethod
        def wait_for_save(self): ...

        def get_finished(self, finished_req_ids):
            return None, None

        def get_block_ids_with_load_errors(self):
            return set()

        def shutdown(self):
            return None

        @abstractmethod
        def get_num_new_matched_tokens(self, request, num_computed_tokens: int): ...

        @abstractmethod
        def update_state_after_alloc(self, request, blocks, num_external_tokens: int): ...

        @abstractmethod
        def build_connector_meta(self, scheduler_output): ...

        def request_finished(self, request, block_ids):
            return False, None

    for cls in (KVConnectorRole, KVConnectorMetadata, KVConnectorBase_V1):
        cls.__module__ = base.__name__
    base.KVConnectorRole = KVConnectorRole
    base.KVConnectorMetadata = KVConnectorMetadata
    base.KVConnectorBase_V1 = KVConnectorBase_V1
    base.__harness__ = UPSTREAM
    names = ["vllm", "vllm.distributed", "vllm.distributed.kv_transfer", "vllm.distributed.kv_transfer.kv_connector"]
    names.append("vllm.distributed.kv_transfer.kv_connector.v1")
    for n in names:
        sys.modules.setdefault(n, types.ModuleType(n))
    sys.modules[base.__name__] = base
    return False


# ------------------------------------------------------------------ vLLM's data shapes


@dataclass
class KVTransferConfig:
    kv_connector: str = "MaruKVConnector"
    kv_role: str = "kv_both"
    kv_connector_extra_config: dict = field(default_factory=dict)
    kv_connector_module_path: str = "maru_vllm.connector"

    def get_from_extra_config(self, key, default):
        return self.kv_connector_extra_config.get(key, default)

    @property
    def is_kv_producer(self):
        return self.kv_role in ("kv_producer", "kv_both")


@dataclass
class CacheConfig:
    block_size: int
    cache_dtype: str = "auto"


@dataclass
class ModelConfig:
    model: str
    dtype: str = "float16"


@dataclass
class ParallelConfig:
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1


@dataclass
class VllmConfig:
    cache_config: CacheConfig
    model_config: ModelConfig
    parallel_config: ParallelConfig
    kv_transfer_config: KVTransferConfig


@dataclass
class KVCacheConfig:
    num_blocks: int


@dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]

    @property
    def all_token_ids(self):
        return self.prompt_token_ids

    @property
    def num_tokens(self):
        return len(self.prompt_token_ids)


@dataclass
class KVCacheBlocks:
    blocks: tuple[list[int], ...]

    def get_block_ids(self):
        return self.blocks


@dataclass
class NewRequestData:
    req_id: str
    prompt_token_ids: list[int]
    block_ids: tuple[list[int], ...]
    num_computed_tokens: int


@dataclass
class CachedRequestData:
    req_ids: list[str] = field(default_factory=list)
    resumed_req_ids: set[str] = field(default_factory=set)
    new_token_ids: list[list[int]] = field(default_factory=list)
    new_block_ids: list[tuple[list[int], ...] | None] = field(default_factory=list)
    num_computed_tokens: list[int] = field(default_factory=list)


@dataclass
class SchedulerOutput:
    scheduled_new_reqs: list[NewRequestData]
    scheduled_cached_reqs: CachedRequestData
    num_scheduled_tokens: dict[str, int]
    finished_req_ids: set[str] = field(default_factory=set)


@dataclass
class ForwardContext:
    attn_metadata: Any = None
    no_compile_layers: dict = field(default_factory=dict)


# ------------------------------------------------------------------ fake engine


def kv_value(token: int, pos: int, layer: int, kv: int, i: int) -> float:
    """What "attention" writes for one element: exact in float16."""
    return float(((token * 31 + pos * 7 + layer * 13 + kv * 5 + i) % 1021) - 510)


class Engine:
    """One scheduler + one worker connector over a KV cache of ``num_blocks`` blocks."""

    def __init__(
        self,
        pool_url: str,
        *,
        num_layers: int = 3,
        num_blocks: int = 64,
        block_size: int = 4,
        chunk_tokens: int = 8,
        heads: int = 2,
        head_dim: int = 4,
        tp_rank: int = 0,
        tp_size: int = 1,
        seed: int = 0,
        model: str = "meta-llama/Llama-3.1-8B",
        extra: dict | None = None,
        kv_role: str = "kv_both",
        with_scheduler: bool = True,
    ):
        install()
        from maru_vllm.connector import MaruKVConnector
        from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole

        self.block_size = block_size
        self.num_layers = num_layers
        self.shape = (2, num_blocks, block_size, heads, head_dim)
        ex = {"maru_path": pool_url, "maru_chunk_tokens": chunk_tokens, "maru_tp_rank": tp_rank}
        ex.update(extra or {})
        self.config = VllmConfig(
            CacheConfig(block_size),
            ModelConfig(model),
            ParallelConfig(tensor_parallel_size=tp_size),
            KVTransferConfig(kv_role=kv_role, kv_connector_extra_config=ex),
        )
        kvc = KVCacheConfig(num_blocks)
        self.scheduler = MaruKVConnector(self.config, KVConnectorRole.SCHEDULER, kvc) if with_scheduler else None
        self.worker = MaruKVConnector(self.config, KVConnectorRole.WORKER, kvc)
        self.caches = {f"model.layers.{i}.self_attn.attn": self._zeros() for i in range(num_layers)}
        self.worker.register_kv_caches(self.caches)
        self.rng = random.Random(seed)
        self.free = list(range(num_blocks))
        self.rng.shuffle(self.free)
        self.blocks: dict[str, list[int]] = {}
        self.computed: dict[str, int] = {}
        self.loaded: dict[str, int] = {}

    def _zeros(self):
        if os.environ.get("MARU_TEST_TORCH") == "1":
            import torch

            return torch.zeros(self.shape, dtype=torch.float16)
        import numpy as np

        return np.zeros(self.shape, dtype=np.float16)

    # -- the scheduler's part for a new request
    def admit(self, req: Request) -> int:
        """get_num_new_matched_tokens + allocation + update_state_after_alloc."""
        ext, is_async = self.scheduler.get_num_new_matched_tokens(req, 0)
        assert ext is not None and not is_async
        n = -(-len(req.prompt_token_ids) // self.block_size)
        bids = [self.free.pop() for _ in range(n)]
        self.blocks[req.request_id] = bids
        self.scheduler.update_state_after_alloc(req, KVCacheBlocks((bids,)), ext)
        self.computed[req.request_id] = ext
        self.loaded[req.request_id] = ext
        return ext

    def step(self, req: Request, budget: int | None = None, first: bool = True) -> Any:
        """One engine step of ``req``: build metadata, run the worker through all layers."""
        rid = req.request_id
        done = self.computed[rid]
        n = len(req.prompt_token_ids) - done
        if budget is not None:
            n = min(n, budget)
        if first:
            so = SchedulerOutput(
                [NewRequestData(rid, list(req.prompt_token_ids), (list(self.blocks[rid]),), done)],
                CachedRequestData(),
                {rid: n},
            )
        else:
            so = SchedulerOutput(
                [], CachedRequestData([rid], set(), [[]], [([],)], [done]), {rid: n}
            )
        meta = self.scheduler.build_connector_meta(so)
        self.run_worker(meta, req, done, n)
        self.computed[rid] = done + n
        return meta

    def run_worker(self, meta, req: Request | None, start: int, n: int) -> None:
        w = self.worker
        w.bind_connector_metadata(meta)
        w.start_load_kv(ForwardContext())
        for li, (name, cache) in enumerate(self.caches.items()):
            w.wait_for_layer_load(name)
            if req is not None:
                self._attend(cache, li, req, start, n)
            w.save_kv_layer(name, cache, None)
        w.wait_for_save()
        w.clear_connector_metadata()

    def _attend(self, cache, layer: int, req: Request, start: int, n: int) -> None:
        bids = self.blocks[req.request_id]
        for p in range(start, start + n):
            b, off = bids[p // self.block_size], p % self.block_size
            tok = req.prompt_token_ids[p]
            for kv in range(2):
                row = [kv_value(tok, p, layer, kv, i) for i in range(self.shape[3] * self.shape[4])]
                for h in range(self.shape[3]):
                    for d in range(self.shape[4]):
                        cache[kv, b, off, h, d] = row[h * self.shape[4] + d]

    def run(self, req: Request, budget: int | None = None) -> int:
        """A whole prefill: admit, steps until the prompt is computed, finish."""
        ext = self.admit(req)
        first = True
        while self.computed[req.request_id] < len(req.prompt_token_ids):
            self.step(req, budget, first)
            first = False
        self.finish(req)
        return ext

    def finish(self, req: Request) -> None:
        self.scheduler.request_finished(req, self.blocks[req.request_id])

    def flush(self) -> None:
        self.worker._worker.flush()

    def token_kv(self, req: Request, p: int, layer: int) -> list[float]:
        """The cache's contents for position ``p`` of ``req`` (K then V, flattened)."""
        bids = self.blocks[req.request_id]
        b, off = bids[p // self.block_size], p % self.block_size
        cache = self.caches[f"model.layers.{layer}.self_attn.attn"]
        return [float(x) for kv in range(2) for x in cache[kv, b, off].reshape(-1).tolist()]

    def expected_kv(self, req: Request, p: int, layer: int) -> list[float]:
        n = self.shape[3] * self.shape[4]
        return [kv_value(req.prompt_token_ids[p], p, layer, kv, i) for kv in range(2) for i in range(n)]

    def close(self) -> None:
        self.worker.shutdown()
        if self.scheduler is not None:
            self.scheduler.shutdown()

"""A minimal, faithful harness of SGLang HiCache's storage interface.

SGLang cannot be installed on the development machines (it needs torch), so the
backend tests run against:

* ``install()``: when ``import sglang`` fails, a stand-in module
  ``sglang.srt.mem_cache.hicache_storage`` with ``HiCacheStorageConfig`` (the upstream
  fields) and ``HiCacheStorage`` (abstract ``get``/``batch_get``/``set``/``batch_set``/
  ``exists``; ``register_mem_pool_host``; ``batch_exists`` defaulting to a prefix count
  of ``exists``; ``batch_get_v1``/``batch_set_v1`` raising NotImplementedError), copied
  from sgl-project/sglang ``python/sglang/srt/mem_cache/hicache_storage.py`` at commit
  001067fffe33427bee0ed2f007fb7551a1d76b44. With SGLang installed (tests/sglang/run.sh)
  nothing is stubbed.
* ``HostPool``: the page-first MHA host pool's ``get_page_buffer_meta`` (K and V part
  per page, ``v_offset`` between them) and flat-page helpers, after
  ``python/sglang/srt/mem_cache/memory_pool_host.py`` (``MHATokenToKVPoolHost``),
  over a numpy buffer ``[2, size, layer_num, head_num, head_dim]``.
* ``make_backend``: what ``StorageBackendFactory._create_dynamic_backend`` does
  (``backend_class(storage_config, kwargs)``), then ``register_mem_pool_host`` as
  HiCacheController does; ``page_keys``: HiCache's page hash chain (sha256 over the
  previous hash and the page's token ids, hex).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

UPSTREAM = "sgl-project/sglang@001067fffe33427bee0ed2f007fb7551a1d76b44"


def install() -> bool:
    if os.environ.get("MARU_HARNESS_FORCE") != "1":
        try:
            import sglang.srt.mem_cache.hicache_storage  # noqa: F401

            return True
        except Exception:
            pass
    name = "sglang.srt.mem_cache.hicache_storage"
    if name in sys.modules:
        return False
    mod = types.ModuleType(name)

    @dataclass
    class HiCacheStorageConfig:
        tp_rank: int
        tp_size: int
        pp_rank: int
        pp_size: int
        attn_cp_rank: int
        attn_cp_size: int
        is_mla_model: bool
        enable_storage_metrics: bool
        is_page_first_layout: bool
        model_name: str | None
        dp_rank: int = 0
        dp_size: int = 1
        tp_lcm_size: int | None = None
        should_split_heads: bool = False
        extra_config: dict | None = None

    class HiCacheStorage(ABC):
        def register_mem_pool_host(self, mem_pool_host):
            self.mem_pool_host = mem_pool_host

        def batch_get_v1(self, keys, host_indices, extra_info=None):
            raise NotImplementedError()

        def batch_set_v1(self, keys, host_indices, extra_info=None):
            raise NotImplementedError()

        @abstractmethod
        def get(self, key, target_location=None, target_sizes=None): ...

        @abstractmethod
        def batch_get(self, keys, target_locations=None, target_sizes=None): ...

        @abstractmethod
        def set(self, key, value=None, target_location=None, target_sizes=None): ...

        @abstractmethod
        def batch_set(self, keys, values=None, target_locations=None, target_sizes=None): ...

        @abstractmethod
        def exists(self, key): ...

        def batch_exists(self, keys, extra_info=None):
            for i in range(len(keys)):
                if not self.exists(keys[i]):
                    return i
            return len(keys)

        def clear(self):
            pass

        def get_stats(self):
            return None

    for cls in (HiCacheStorageConfig, HiCacheStorage):
        cls.__module__ = name
    mod.HiCacheStorageConfig = HiCacheStorageConfig
    mod.HiCacheStorage = HiCacheStorage
    mod.__harness__ = UPSTREAM
    for n in ("sglang", "sglang.srt", "sglang.srt.mem_cache"):
        sys.modules.setdefault(n, types.ModuleType(n))
    sys.modules[name] = mod
    return False


class HostPool:
    """Page-first MHA host KV pool (numpy), the parts HiCache's storage path uses."""

    def __init__(self, num_pages=32, page_size=4, layer_num=3, head_num=2, head_dim=8, layout="page_first"):
        import numpy as np

        self.np = np
        self.layout = layout
        self.page_size = page_size
        self.layer_num, self.head_num, self.head_dim = layer_num, head_num, head_dim
        self.size = num_pages * page_size
        self.dtype = np.dtype(np.float16)
        self.kv_buffer = np.zeros((2, self.size, layer_num, head_num, head_dim), dtype=np.float16)

    def get_page_buffer_meta(self, indices):
        idx = [int(i) for i in indices]
        assert len(idx) % self.page_size == 0
        base = self.kv_buffer.ctypes.data
        tok = self.layer_num * self.head_num * self.head_dim * self.dtype.itemsize
        v_offset = self.size * tok
        ptrs = []
        for i in range(0, len(idx), self.page_size):
            k = base + idx[i] * tok
            ptrs += [k, k + v_offset]
        return ptrs, [tok * self.page_size] * len(ptrs)

    def page(self, index: int):
        return self.kv_buffer[:, index : index + self.page_size]

    def get_dummy_flat_data_page(self):
        return self.np.zeros(self.page(0).size, dtype=self.kv_buffer.dtype)

    def get_data_page(self, index, flat=True):
        p = self.np.ascontiguousarray(self.page(index))
        return p.reshape(-1) if flat else p

    def set_from_flat_data_page(self, index, data_page):
        self.page(index)[...] = data_page.reshape(self.page(index).shape)


def page_keys(tokens: list[int], page_size: int, salt: str = "") -> list[str]:
    out, prior = [], salt
    for i in range(len(tokens) // page_size):
        h = hashlib.sha256()
        h.update(prior.encode())
        for t in tokens[i * page_size : (i + 1) * page_size]:
            h.update(int(t).to_bytes(4, "little", signed=False))
        prior = h.hexdigest()
        out.append(prior)
    return out


def make_backend(pool_url: str, pool: HostPool | None, *, tp_rank=0, tp_size=1, mla=False, extra=None) -> Any:
    install()
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig

    cfg = HiCacheStorageConfig(
        tp_rank=tp_rank,
        tp_size=tp_size,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=mla,
        enable_storage_metrics=False,
        is_page_first_layout=True,
        model_name="Qwen/Qwen3-8B",
        extra_config={
            "backend_name": "maru",
            "module_path": "maru_sglang.storage",
            "class_name": "MaruStorage",
            "maru_path": pool_url,
            **(extra or {}),
        },
    )
    ec = cfg.extra_config
    backend = getattr(importlib.import_module(ec["module_path"]), ec["class_name"])(cfg, {})
    if pool is not None:
        backend.register_mem_pool_host(pool)
    return backend


def fill(pool: HostPool, page_index: int, seed: int) -> None:
    np = pool.np
    p = pool.page(page_index)
    p[...] = (np.arange(p.size, dtype=np.float32).reshape(p.shape) * 0.5 + seed * 3) % 2000

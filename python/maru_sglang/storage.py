"""MaruStorage: SGLang HiCache's L3 storage backend (``HiCacheStorage``) over Maru.

HiCache moves KV pages L1 (GPU) -> L2 (host memory pool) -> L3 (storage) and back.
With this backend L3 is a Maru pool on CXL memory: one chunk file per page and rank,
shared by every SGLang instance on the host (and any other Maru client).

* Zero-copy interface (``batch_exists`` / ``batch_get_v1`` / ``batch_set_v1``, used by
  HiCache with ``--hicache-mem-layout page_first`` or ``page_first_direct``): the host
  pool hands out the addresses of each page's parts (K and V, or one part for MLA);
  ``batch_set_v1`` copies them with one ``memmove`` each straight into a staging chunk
  (``MaruHandler.alloc``: a mapping of the new pool file) and publishes it;
  ``batch_get_v1`` maps the stored chunks read-only and copies each part straight into
  the host page. No intermediate buffer either way.
* Legacy interface (``get`` / ``set`` / ``batch_get`` / ``batch_set``, layer-first
  layouts): values are flat page tensors; ``get`` without a target returns a read-only,
  zero-copy view of the chunk.
* ``batch_exists`` answers the present *prefix* (HiCache's contract) from the pool's
  in-memory index, with no mapping.

The L2 <-> GPU hop is HiCache's own; this backend never touches GPU memory, so no CUDA
registration is involved (that is the vLLM connector's business).

Keys: HiCache's page hash (hex) + ``_<model>_<tp_rank>_<tp_size>`` (MLA models: no TP
part, every rank holds the whole page; pipeline and context-parallel ranks are added
when used), as SGLang's own file backend does, prefixed ``sgl.<namespace>.``.

Configuration: ``--hicache-storage-backend dynamic`` and
``--hicache-storage-backend-extra-config`` (JSON), see ``docs/sglang.md``.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from sglang.srt.mem_cache.hicache_storage import HiCacheStorage

logger = logging.getLogger("maru_sglang")

ZERO_COPY_LAYOUTS = ("page_first", "page_first_direct")


def _addr(mv: memoryview) -> int:
    """The address of a contiguous buffer (writable or read-only)."""
    if not mv.readonly:
        return ctypes.addressof(ctypes.c_char.from_buffer(mv))
    try:
        import numpy as np

        return int(np.frombuffer(mv, dtype=np.uint8).ctypes.data)
    except ImportError:
        import torch

        return torch.frombuffer(mv, dtype=torch.uint8).data_ptr()


def _bytes_view(value: Any) -> memoryview:
    """A flat byte view of a tensor / array / buffer (CPU memory, no copy)."""
    if type(value).__module__.startswith("torch"):
        t = value.detach().contiguous()
        if t.device.type != "cpu":
            raise ValueError("MaruStorage stores host (L2) pages; got a tensor on " + str(t.device))
        import torch  # torch tensors expose no buffer protocol: through numpy (a torch dependency), no copy

        return memoryview(t.view(-1).view(torch.uint8).numpy()).cast("B")
    if hasattr(value, "__array_interface__"):
        import numpy as np

        return memoryview(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    return memoryview(value).cast("B")


def _zero_copy_out(view: memoryview):
    try:
        import torch

        return torch.frombuffer(view, dtype=torch.uint8)
    except ImportError:
        return view


class MaruStorage(HiCacheStorage):
    """HiCache L3 storage in a Maru pool. Constructed by SGLang's dynamic backend
    factory as ``MaruStorage(storage_config, kwargs)``."""

    def __init__(self, storage_config, kwargs: dict | None = None):
        from maru import MaruConfig, MaruHandler

        self.storage_config = storage_config
        extra = dict(getattr(storage_config, "extra_config", None) or {})
        url = extra.get("maru_path") or extra.get("maru_server_url")
        if not url:
            raise ValueError("MaruStorage: set maru_path (maru:///mnt/maru/<pool>) in the extra config")
        self.url = str(url)
        self.max_page_bytes = int(extra.get("maru_max_page_bytes", 64 << 20))
        self.reserve_chunks = int(extra.get("maru_reserve_chunks", 4))
        self.suffix = self._suffix(storage_config)
        self.prefix = f"sgl.{extra.get('maru_namespace', '')}."
        cfg = MaruConfig(
            server_url=self.url, chunk_size_bytes=self.max_page_bytes, pool_size=0, reserve_chunks=0, auto_connect=False
        )
        self.h = MaruHandler(cfg)
        if not self.h.connect():
            raise RuntimeError(f"MaruStorage: cannot open pool {self.url}: {self.h.last_error}")
        self.w = self.h  # the writer: replaced by one with a reserve once the page size is known
        self.zero_copy = False
        self.stats = {"set_pages": 0, "set_present": 0, "set_failed": 0, "get_hits": 0, "get_misses": 0}

    @staticmethod
    def _suffix(c) -> str:
        model = "-".join((getattr(c, "model_name", None) or "").split("/"))[:80]
        s = f"_{model}"
        if not getattr(c, "is_mla_model", False):
            s += f"_{c.tp_rank}_{c.tp_size}"
        if getattr(c, "pp_size", 1) > 1:
            s += f"_{c.pp_size}_{c.pp_rank}"
        if getattr(c, "attn_cp_size", 1) > 1:
            s += f"_cp{c.attn_cp_rank}_{c.attn_cp_size}"
        return s

    def _k(self, key: str) -> str:
        return f"{self.prefix}{key}{self.suffix}"

    # ------------------------------------------------------------------ host pool

    def register_mem_pool_host(self, mem_pool_host) -> None:
        super().register_mem_pool_host(mem_pool_host)
        layout = getattr(mem_pool_host, "layout", "")
        self.zero_copy = layout in ZERO_COPY_LAYOUTS
        page = self._page_bytes(mem_pool_host)
        if page and self.reserve_chunks > 0 and page <= self.max_page_bytes:
            from maru import MaruConfig, MaruHandler

            w = MaruHandler(
                MaruConfig(
                    server_url=self.url,
                    chunk_size_bytes=page,
                    pool_size=page * self.reserve_chunks,
                    reserve_chunks=self.reserve_chunks,
                    auto_connect=False,
                )
            )
            if w.connect():
                self.w = w
        logger.info("maru: HiCache L3 on %s, layout %s (zero-copy %s), page %s bytes", self.url, layout, self.zero_copy, page)

    @staticmethod
    def _page_bytes(pool) -> int | None:
        try:
            idx = _arange(pool.page_size)
            _, sizes = pool.get_page_buffer_meta(idx)
            return int(sum(sizes))
        except Exception:
            return None

    # ------------------------------------------------------------------ lookups

    def exists(self, key: str) -> bool:
        return self.h.exists(self._k(key))

    def batch_exists(self, keys: list[str], extra_info=None) -> int:
        if not keys:
            return 0
        return self.h.prefix_exists([self._k(k) for k in keys])

    # ------------------------------------------------------------------ zero-copy (v1)

    def _parts(self, keys, host_indices):
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        n = len(keys)
        if n == 0 or len(ptrs) % n:
            raise ValueError(f"MaruStorage: {len(ptrs)} page parts for {n} keys")
        per = len(ptrs) // n
        return [(ptrs[i * per : (i + 1) * per], sizes[i * per : (i + 1) * per]) for i in range(n)]

    def batch_get_v1(self, keys: list[str], host_indices, extra_info=None) -> list[bool]:
        if not keys:
            return []
        parts = self._parts(keys, host_indices)
        infos = self.h.batch_retrieve([self._k(k) for k in keys])
        out = []
        for info, (ptrs, sizes) in zip(infos, parts):
            if info is None or len(info.view) != sum(sizes):
                if info is not None:
                    logger.error("maru: page of %d bytes, host page %d bytes", len(info.view), sum(sizes))
                self.stats["get_misses"] += 1
                out.append(False)
                continue
            src = _addr(info.view)
            off = 0
            for p, s in zip(ptrs, sizes):
                ctypes.memmove(p, src + off, s)
                off += s
            self.stats["get_hits"] += 1
            out.append(True)
        return out

    def batch_set_v1(self, keys: list[str], host_indices, extra_info=None) -> list[bool]:
        if not keys:
            return []
        parts = self._parts(keys, host_indices)
        full = [self._k(k) for k in keys]
        present = self.h.batch_exists(full)
        out = [True] * len(keys)
        todo_keys, todo_handles = [], []
        for i, ((ptrs, sizes), there) in enumerate(zip(parts, present)):
            if there:
                self.stats["set_present"] += 1
                continue
            try:
                handle = self.w.alloc(sum(sizes))
            except Exception as e:  # pool full, page too large: a cache may refuse
                logger.warning("maru: cannot stage page %s: %s", keys[i], e)
                out[i] = False
                continue
            dst = _addr(handle.buf)
            off = 0
            for p, s in zip(ptrs, sizes):
                ctypes.memmove(dst + off, p, s)
                off += s
            todo_keys.append((i, full[i]))
            todo_handles.append(handle)
        if todo_handles:
            res = self.w.batch_store([k for _, k in todo_keys], todo_handles)
            for (i, _), ok in zip(todo_keys, res):
                out[i] = bool(ok)
                self.stats["set_pages" if ok else "set_failed"] += 1
        return out

    # ------------------------------------------------------------------ legacy

    def get(self, key: str, target_location: Any | None = None, target_sizes: Any | None = None):
        info = self.h.retrieve(self._k(key))
        if info is None:
            self.stats["get_misses"] += 1
            return None
        self.stats["get_hits"] += 1
        if target_location is None:
            return _zero_copy_out(info.view)
        dst = _bytes_view(target_location)
        if len(dst) != len(info.view):
            logger.error("maru: page %s has %d bytes, target %d", key, len(info.view), len(dst))
            return None
        dst[:] = info.view
        return target_location

    def batch_get(self, keys: list[str], target_locations: Any | None = None, target_sizes: Any | None = None):
        targets = target_locations if target_locations is not None else [None] * len(keys)
        return [self.get(k, t) for k, t in zip(keys, targets)]

    def set(self, key: str, value: Any | None = None, target_location: Any | None = None, target_sizes=None) -> bool:
        if value is None:
            return False
        full = self._k(key)
        if self.h.exists(full):
            self.stats["set_present"] += 1
            return True
        src = _bytes_view(value)
        try:
            handle = self.w.alloc(len(src))
        except Exception as e:
            logger.warning("maru: cannot stage page %s: %s", key, e)
            return False
        handle.buf[:] = src
        ok = self.w.store(full, handle)
        self.stats["set_pages" if ok else "set_failed"] += 1
        return ok

    def batch_set(self, keys: list[str], values: Any | None = None, target_locations=None, target_sizes=None) -> bool:
        if values is None:
            return False
        return all([self.set(k, v) for k, v in zip(keys, values)])

    # ------------------------------------------------------------------ misc

    def clear(self) -> None:
        """Not supported: the pool is shared with other instances (use ``delete`` /
        the pool's LRU eviction)."""
        logger.warning("maru: HiCache clear() ignored: the Maru pool is shared")

    def get_stats(self):
        return dict(self.stats)

    def close(self) -> None:
        if self.w is not self.h:
            self.w.close()
        self.h.close()


def _arange(n: int):
    try:
        import torch

        return torch.arange(n, dtype=torch.int64)
    except ImportError:
        import numpy as np

        return np.arange(n, dtype=np.int64)

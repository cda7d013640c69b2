"""MaruKVConnector: a vLLM KV connector (``KVConnectorBase_V1``) over Maru on CXL.

No LMCache in between: the scheduler side asks the pool which prefix of a prompt is
stored (chunk by chunk, one index lookup per key, no mapping) and pins it; the worker
side moves KV per chunk and per layer between vLLM's paged cache and Maru chunks:

* **store** (``save_kv_layer`` / ``wait_for_save``): for each chunk to store, one
  staging chunk from ``MaruHandler.alloc`` (a writable mapping of a new pool file);
  each layer's blocks are gathered straight into it (on a GPU: one device-to-host DMA
  into the registered mapping); when every layer is in, the chunk is published under
  its key (atomic rename, first writer wins) -- by a background thread unless
  ``maru_async_save`` is false. A key never names a partial chunk.
* **load** (``start_load_kv`` / ``wait_for_layer_load``): each chunk is mapped
  read-only (``retrieve``; the pool's own pages) and its blocks are copied into the
  request's blocks (on a GPU: one host-to-device DMA from the registered view, per
  layer on a side stream, waited for per layer).
* **pins**: the prefix found by ``get_num_new_matched_tokens`` is pinned (pool-wide) so
  it can be neither evicted nor deleted before the worker loads it, and unpinned in
  ``request_finished`` (or at once when nothing will be loaded).

Chunking and keys: :mod:`maru_vllm.keys`. Tensor copies: :mod:`maru_vllm.tensors`.
Configuration (``kv_transfer_config.kv_connector_extra_config``): see
:class:`MaruConnectorConfig` and ``docs/vllm.md``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)

from .keys import KeyScheme
from .tensors import Copier, copier_for, uses_cuda

logger = logging.getLogger("maru_vllm")

DEFAULT_CHUNK_TOKENS = 256


def _parse_size(v: Any) -> int:
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(v).upper())
    if not m:
        raise ValueError(f"not a size: {v!r} (e.g. 4096, '64M', '1GiB')")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))


def _bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


@dataclass
class MaruConnectorConfig:
    """``kv_connector_extra_config`` keys (all optional except the pool).

    * ``maru_path`` (or ``maru_server_url``): the pool, ``maru:///mnt/maru/<pool>``;
    * ``maru_chunk_tokens``: tokens per chunk, a multiple of the block size (256);
    * ``maru_namespace``: a string mixed into every key (separates deployments);
    * ``maru_async_save``: publish from a background thread (true);
    * ``maru_reserve_chunks``: staging chunks kept ready by the worker (4);
    * ``maru_view_cache_chunks``: read-only chunk views kept mapped (and registered with
      CUDA) between loads (256 with a GPU, 0 without: on the CPU a mapping is cheap,
      and a cached view keeps its chunk from being evicted);
    * ``maru_block_dim``: the block dimension of a layer's cache (auto);
    * ``maru_tp_rank``: override the worker's tensor-parallel rank (tests, tools).
    """

    pool_url: str
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    namespace: str = ""
    async_save: bool = True
    reserve_chunks: int = 4
    view_cache_chunks: int | None = None
    block_dim: int | None = None
    tp_rank: int | None = None

    @classmethod
    def from_extra(cls, extra: dict | None) -> MaruConnectorConfig:
        extra = dict(extra or {})
        url = extra.get("maru_path") or extra.get("maru_server_url")
        if not url:
            raise ValueError("MaruKVConnector: set kv_connector_extra_config.maru_path to maru:///mnt/maru/<pool>")

        def opt(name, conv, default=None):
            v = extra.get(name)
            return default if v is None else conv(v)

        return cls(
            pool_url=str(url),
            chunk_tokens=opt("maru_chunk_tokens", int, DEFAULT_CHUNK_TOKENS),
            namespace=opt("maru_namespace", str, ""),
            async_save=opt("maru_async_save", _bool, True),
            reserve_chunks=opt("maru_reserve_chunks", int, 4),
            view_cache_chunks=opt("maru_view_cache_chunks", int),
            block_dim=opt("maru_block_dim", int),
            tp_rank=opt("maru_tp_rank", int),
        )


# ---------------------------------------------------------------------------- metadata


@dataclass
class LoadOp:
    """Load tokens ``[tok_lo, tok_hi)`` (block-aligned) of a request from Maru."""

    req_id: str
    first_chunk: int
    hashes: list[bytes]  # chunks first_chunk .. first_chunk + len - 1
    block_ids: list[int]  # all of the request's blocks (group 0)
    tok_lo: int
    tok_hi: int


@dataclass
class SaveOp:
    """Store chunks ``(index, hash)`` of a request; its blocks cover them."""

    req_id: str
    chunks: list[tuple[int, bytes]]
    block_ids: list[int]


@dataclass
class MaruConnectorMetadata(KVConnectorMetadata):
    loads: list[LoadOp] = field(default_factory=list)
    saves: list[SaveOp] = field(default_factory=list)


@dataclass
class _Lookup:
    hashes: list[bytes]
    matched_chunks: int
    matched_tokens: int


@dataclass
class _Track:
    hashes: list[bytes]
    block_ids: list[int]
    next_chunk: int
    prompt_len: int


def _scheme(vllm_config, cfg: MaruConnectorConfig) -> KeyScheme:
    block_size = vllm_config.cache_config.block_size
    model_config = getattr(vllm_config, "model_config", None)
    model = str(getattr(model_config, "model", "") or "")
    dtype = f"{getattr(vllm_config.cache_config, 'cache_dtype', 'auto')}/{getattr(model_config, 'dtype', '')}"
    par = getattr(vllm_config, "parallel_config", None)
    tp = int(getattr(par, "tensor_parallel_size", 1) or 1)
    pp = int(getattr(par, "pipeline_parallel_size", 1) or 1)
    if pp != 1:
        raise ValueError("MaruKVConnector does not support pipeline parallelism yet (pipeline_parallel_size must be 1)")
    return KeyScheme(model, dtype, block_size, cfg.chunk_tokens, tp, "pp0of1", cfg.namespace)


def _connect(url: str, **kw):
    from maru import MaruConfig, MaruHandler

    h = MaruHandler(MaruConfig(server_url=url, auto_connect=False, **kw))
    if not h.connect():
        raise RuntimeError(f"MaruKVConnector: cannot open pool {url}: {h.last_error}")
    return h


# ---------------------------------------------------------------------------- connector


class MaruKVConnector(KVConnectorBase_V1):
    """vLLM KV connector storing KV chunks in a Maru pool (see the module docstring)."""

    def __init__(self, vllm_config, role, kv_cache_config=None):
        super().__init__(vllm_config, role, kv_cache_config)
        kvt = vllm_config.kv_transfer_config
        self.cfg = MaruConnectorConfig.from_extra(getattr(kvt, "kv_connector_extra_config", None))
        self.scheme = _scheme(vllm_config, self.cfg)
        kv_role = str(getattr(kvt, "kv_role", "kv_both") or "kv_both")
        self._do_load = kv_role != "kv_producer"
        self._do_save = kv_role != "kv_consumer"
        self._sched: _Scheduler | None = None
        self._worker: _Worker | None = None
        if role == KVConnectorRole.SCHEDULER:
            self._sched = _Scheduler(self.cfg, self.scheme, self._do_load, self._do_save)
        else:
            self._worker = _Worker(self.cfg, self.scheme, kv_cache_config)

    # -- scheduler side
    def get_num_new_matched_tokens(self, request, num_computed_tokens: int) -> tuple[int | None, bool]:
        return self._sched.get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request, blocks, num_external_tokens: int):
        self._sched.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output) -> KVConnectorMetadata:
        return self._sched.build_connector_meta(scheduler_output)

    def request_finished(self, request, block_ids) -> tuple[bool, dict[str, Any] | None]:
        self._sched.release(request.request_id)
        return False, None

    # -- worker side
    def register_kv_caches(self, kv_caches: dict[str, Any]):
        self._worker.register(kv_caches)

    def start_load_kv(self, forward_context, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, MaruConnectorMetadata)
        self._worker.start_load(meta)

    def wait_for_layer_load(self, layer_name: str) -> None:
        self._worker.wait_layer(layer_name)

    def save_kv_layer(self, layer_name: str, kv_layer, attn_metadata, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, MaruConnectorMetadata)
        self._worker.save_layer(layer_name, kv_layer, meta)

    def wait_for_save(self):
        self._worker.finish_saves()

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        return None, None

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self._worker.take_load_errors() if self._worker else set()

    def shutdown(self):
        if self._worker is not None:
            self._worker.close()
        if self._sched is not None:
            self._sched.close()

    @property
    def stats(self) -> dict:
        part = self._worker or self._sched
        return dict(part.stats)


# ---------------------------------------------------------------------------- scheduler


class _Scheduler:
    def __init__(self, cfg: MaruConnectorConfig, scheme: KeyScheme, do_load: bool, do_save: bool):
        self.cfg = cfg
        self.scheme = scheme
        self.C = scheme.chunk_tokens
        self.bs = scheme.block_size
        self.do_load = do_load
        self.do_save = do_save
        # Lookups only: no staging chunks.
        self.h = _connect(cfg.pool_url, chunk_size_bytes=1, pool_size=0, reserve_chunks=0, cuda_register=False)
        self._lookups: dict[str, _Lookup] = {}
        self._pins: dict[str, list[str]] = {}
        self._pending_load: dict[str, tuple[int, int]] = {}
        self._tracks: dict[str, _Track] = {}
        self.stats = {"lookups": 0, "hit_tokens": 0, "pinned": 0, "unpinned": 0, "save_chunks": 0, "load_tokens": 0}

    def _unpin(self, req_id: str) -> None:
        keys = self._pins.pop(req_id, None)
        if keys:
            self.h.batch_unpin(keys)
            self.stats["unpinned"] += len(keys)

    def _match_and_pin(self, req_id: str, hashes: list[bytes]) -> int:
        """Pins the prefix present for every TP rank; returns its length in chunks."""
        ranks = range(self.scheme.tp_size)
        keys = [self.scheme.keys(hashes, r) for r in ranks]
        m = min(self.h.prefix_exists(k) for k in keys)
        if m == 0:
            return 0
        got = m
        per_rank = []
        for k in keys:
            n = sum(self.h.batch_pin(k[:m]))
            per_rank.append((k, n))
            got = min(got, n)  # a chunk removed between the lookup and the pin
        extra = [x for k, n in per_rank for x in k[got:n]]
        if extra:
            self.h.batch_unpin(extra)
        pinned = [x for k, _ in per_rank for x in k[:got]]
        if pinned:
            self._pins[req_id] = pinned
            self.stats["pinned"] += len(pinned)
        return got

    def get_num_new_matched_tokens(self, request, num_computed_tokens: int):
        req_id = request.request_id
        tokens = list(request.prompt_token_ids or [])
        hashes = self.scheme.hashes(tokens)
        self._unpin(req_id)  # called again for the same request (e.g. after preemption)
        self.stats["lookups"] += 1
        m = self._match_and_pin(req_id, hashes) if (self.do_load and hashes) else 0
        # vLLM must compute at least the last prompt token; block-aligned.
        limit = ((len(tokens) - 1) // self.bs) * self.bs
        matched = min(m * self.C, max(limit, 0))
        self._lookups[req_id] = _Lookup(hashes, m, matched)
        new = matched - num_computed_tokens
        if new <= 0:
            self._unpin(req_id)
            return 0, False
        self.stats["hit_tokens"] += new
        logger.debug("maru: request %s: %d chunks in Maru, %d new tokens to load", req_id, m, new)
        return new, False

    def update_state_after_alloc(self, request, blocks, num_external_tokens: int):
        req_id = request.request_id
        lk = self._lookups.get(req_id)
        if num_external_tokens > 0 and lk is not None:
            self._pending_load[req_id] = (lk.matched_tokens - num_external_tokens, lk.matched_tokens)
        else:
            self._unpin(req_id)

    def _load_op(self, req_id: str, block_ids: list[int], hashes: list[bytes]) -> LoadOp | None:
        rng = self._pending_load.pop(req_id, None)
        if rng is None:
            return None
        lo, hi = rng
        c0, c1 = lo // self.C, -(-hi // self.C)
        self.stats["load_tokens"] += hi - lo
        return LoadOp(req_id, c0, hashes[c0:c1], list(block_ids), lo, hi)

    def _emit_saves(self, meta: MaruConnectorMetadata, req_id: str, t: _Track, computed_after: int) -> None:
        upto = min(computed_after, t.prompt_len) // self.C
        upto = min(upto, len(t.hashes), len(t.block_ids) * self.bs // self.C)
        if upto > t.next_chunk:
            chunks = [(i, t.hashes[i]) for i in range(t.next_chunk, upto)]
            meta.saves.append(SaveOp(req_id, chunks, t.block_ids[: upto * self.C // self.bs]))
            self.stats["save_chunks"] += len(chunks)
            t.next_chunk = upto
        if t.next_chunk >= len(t.hashes):
            self._tracks.pop(req_id, None)

    def build_connector_meta(self, so) -> MaruConnectorMetadata:
        meta = MaruConnectorMetadata()
        for new in so.scheduled_new_reqs:
            req_id = new.req_id
            tokens = list(new.prompt_token_ids or [])
            block_ids = list(new.block_ids[0])
            lk = self._lookups.pop(req_id, None)
            hashes = lk.hashes if lk is not None else self.scheme.hashes(tokens)
            op = self._load_op(req_id, block_ids, hashes)
            if op is not None:
                meta.loads.append(op)
            if self.do_save and hashes:
                t = _Track(hashes, block_ids, lk.matched_chunks if lk else 0, len(tokens))
                self._tracks[req_id] = t
                computed = new.num_computed_tokens + so.num_scheduled_tokens.get(req_id, 0)
                self._emit_saves(meta, req_id, t, computed)
        cached = so.scheduled_cached_reqs
        resumed = set(getattr(cached, "resumed_req_ids", ()) or ())
        for i, req_id in enumerate(cached.req_ids):
            new_blocks = cached.new_block_ids[i]
            t = self._tracks.get(req_id)
            if req_id in resumed and new_blocks is not None:
                lk = self._lookups.pop(req_id, None)
                if lk is not None:
                    op = self._load_op(req_id, list(new_blocks[0]), lk.hashes)
                    if op is not None:
                        meta.loads.append(op)
            if t is None:
                continue
            if new_blocks is not None:
                if req_id in resumed:
                    t.block_ids = list(new_blocks[0])
                else:
                    t.block_ids.extend(new_blocks[0])
            computed = cached.num_computed_tokens[i] + so.num_scheduled_tokens.get(req_id, 0)
            self._emit_saves(meta, req_id, t, computed)
        for req_id in set(getattr(so, "finished_req_ids", ()) or ()):
            self.release(req_id)
        return meta

    def release(self, req_id: str) -> None:
        """Request finished: drop its pins and state."""
        self._unpin(req_id)
        self._lookups.pop(req_id, None)
        self._pending_load.pop(req_id, None)
        self._tracks.pop(req_id, None)

    def close(self):
        for req_id in list(self._pins):
            self._unpin(req_id)
        self.h.close()


# ---------------------------------------------------------------------------- worker


@dataclass
class _Layer:
    name: str
    offset: int
    seg_bytes: int  # bytes of this layer in one chunk
    block_dim: int


@dataclass
class _Staging:
    key: str
    handle: Any
    block_ids: list[int]
    layers_done: int = 0


def _layer_index(name: str, pos: int) -> tuple[int, int]:
    m = re.search(r"layers\.(\d+)", name)
    return (int(m.group(1)) if m else 1 << 30, pos)


class _Worker:
    def __init__(self, cfg: MaruConnectorConfig, scheme: KeyScheme, kv_cache_config):
        self.cfg = cfg
        self.scheme = scheme
        self.C = scheme.chunk_tokens
        self.bpc = scheme.chunk_tokens // scheme.block_size  # blocks per chunk
        self.num_blocks = getattr(kv_cache_config, "num_blocks", None)
        self.tp_rank = cfg.tp_rank if cfg.tp_rank is not None else self._vllm_tp_rank()
        self.h = None
        self.copier: Copier | None = None
        self.layers: dict[str, _Layer] = {}
        self.caches: dict[str, Any] = {}
        self.chunk_bytes = 0
        self._staging: list[_Staging] | None = None
        self._load_errors: set[int] = set()
        self._views: OrderedDict[str, Any] = OrderedDict()
        self._view_cap = 0
        self._pool: ThreadPoolExecutor | None = None
        self._publishing: list = []
        self._lock = threading.Lock()
        self.stats = {
            "saved_chunks": 0,
            "save_skipped_present": 0,
            "publish_failures": 0,
            "loaded_chunks": 0,
            "load_misses": 0,
            "view_cache_hits": 0,
            "views_mapped": 0,
        }

    @staticmethod
    def _vllm_tp_rank() -> int:
        try:
            from vllm.distributed.parallel_state import get_tensor_model_parallel_rank

            return int(get_tensor_model_parallel_rank())
        except Exception:  # no vLLM distributed state (tools, tests): rank 0
            return 0

    def _block_dim(self, shape: tuple[int, ...]) -> int:
        if self.cfg.block_dim is not None:
            return self.cfg.block_dim
        nb = self.num_blocks
        if nb:
            if len(shape) > 1 and shape[0] == 2 and shape[1] == nb:
                return 1  # FlashAttention: [2, num_blocks, block_size, heads, head_dim]
            if nb in shape:
                return shape.index(nb)
        return 1 if shape[0] == 2 else 0

    def register(self, kv_caches: dict[str, Any]) -> None:
        names = sorted(kv_caches, key=lambda n: _layer_index(n, list(kv_caches).index(n)))
        first = kv_caches[names[0]]
        self.copier = copier_for(first)
        offset = 0
        for name in names:
            t = kv_caches[name]
            shape = self.copier.shape(t)
            bd = self._block_dim(shape)
            per_block = self.copier.nbytes(t) // shape[bd]
            self.layers[name] = _Layer(name, offset, per_block * self.bpc, bd)
            offset += per_block * self.bpc
        self.caches = dict(kv_caches)
        self.chunk_bytes = offset
        cuda = uses_cuda(self.copier)
        cap = self.cfg.view_cache_chunks
        self._view_cap = (256 if cuda else 0) if cap is None else cap
        reserve = self.cfg.reserve_chunks
        self.h = _connect(
            self.cfg.pool_url,
            chunk_size_bytes=self.chunk_bytes,
            pool_size=max(reserve, 1) * self.chunk_bytes,
            reserve_chunks=reserve,
            cuda_register=cuda,
            cuda_register_views=cuda,
        )
        if self.cfg.async_save:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maru-publish")
        logger.info(
            "maru: worker tp%d: %d layers, chunk %d tokens = %d bytes, copier %s",
            self.tp_rank,
            len(self.layers),
            self.C,
            self.chunk_bytes,
            self.copier.name,
        )

    # -- load
    def _views_for(self, keys: list[str]) -> list[Any]:
        out: list[Any] = [None] * len(keys)
        missing = []
        for i, k in enumerate(keys):
            v = self._views.get(k)
            if v is not None:
                self._views.move_to_end(k)
                out[i] = v
                self.stats["view_cache_hits"] += 1
            else:
                missing.append(i)
        if missing:
            infos = self.h.batch_retrieve([keys[i] for i in missing])
            for i, info in zip(missing, infos):
                if info is None:
                    continue
                self.stats["views_mapped"] += 1
                out[i] = info.view
                if self._view_cap > 0:
                    self._views[keys[i]] = info.view
                    while len(self._views) > self._view_cap:
                        self._views.popitem(last=False)
        return out

    def start_load(self, meta: MaruConnectorMetadata) -> None:
        if not meta.loads or self.h is None:
            return
        bs = self.scheme.block_size
        for op in meta.loads:
            keys = self.scheme.keys(op.hashes, self.tp_rank)
            views = self._views_for(keys)
            plan = []  # (view, lo block in chunk, hi block in chunk, destination block ids)
            failed_from = None
            for j, v in enumerate(views):
                c = op.first_chunk + j
                b_lo = max(op.tok_lo, c * self.C) // bs
                b_hi = min(op.tok_hi, (c + 1) * self.C) // bs
                if v is None or len(v) != self.chunk_bytes:
                    if v is not None:
                        logger.error("maru: %s has %d bytes, this worker's layout %d", keys[j], len(v), self.chunk_bytes)
                    self.stats["load_misses"] += 1
                    failed_from = b_lo
                    break
                plan.append((v, b_lo - c * self.bpc, b_hi - c * self.bpc, op.block_ids[b_lo:b_hi]))
            if failed_from is not None:
                self._load_errors.update(op.block_ids[failed_from : op.tok_hi // bs])
            for name, lay in self.layers.items():
                cache = self.caches[name]
                for v, lo, hi, dst in plan:
                    seg = v[lay.offset : lay.offset + lay.seg_bytes]
                    self.copier.scatter(seg, self.bpc, lo, hi, cache, lay.block_dim, dst)
                self.copier.mark_layer(name)
            self.stats["loaded_chunks"] += len(plan)

    def wait_layer(self, layer_name: str) -> None:
        if self.copier is not None:
            self.copier.layer_loaded(layer_name)

    def take_load_errors(self) -> set[int]:
        out, self._load_errors = self._load_errors, set()
        return out

    # -- save
    def _begin_step(self, meta: MaruConnectorMetadata) -> list[_Staging]:
        want: list[tuple[str, list[int]]] = []
        for op in meta.saves:
            for i, h in op.chunks:
                b0 = i * self.bpc
                want.append((self.scheme.key(h, self.tp_rank), op.block_ids[b0 : b0 + self.bpc]))
        if not want:
            return []
        present = self.h.batch_exists([k for k, _ in want])
        out = []
        for (key, bids), there in zip(want, present):
            if there or len(bids) < self.bpc:
                self.stats["save_skipped_present"] += int(there)
                continue
            try:
                handle = self.h.alloc(self.chunk_bytes)
            except Exception as e:  # pool full and nothing evictable: skip, it is a cache
                logger.warning("maru: cannot stage chunk %s: %s", key, e)
                break
            out.append(_Staging(key, handle, bids))
        return out

    def save_layer(self, layer_name: str, kv_layer, meta: MaruConnectorMetadata) -> None:
        if not meta.saves or self.h is None:
            return
        lay = self.layers.get(layer_name)
        if lay is None:
            return
        if self._staging is None:
            self._staging = self._begin_step(meta)
        for st in self._staging:
            dst = st.handle.buf[lay.offset : lay.offset + lay.seg_bytes]
            self.copier.gather(kv_layer, lay.block_dim, st.block_ids, dst)
            st.layers_done += 1

    def _publish(self, batch: list[_Staging]) -> None:
        for st in batch:
            if self.h.store(st.key, st.handle):
                self.stats["saved_chunks"] += 1
            else:
                self.stats["publish_failures"] += 1

    def finish_saves(self) -> None:
        staging, self._staging = self._staging, None
        if not staging:
            return
        self.copier.sync_save()  # every chunk's bytes have landed
        ready = []
        for st in staging:
            if st.layers_done == len(self.layers):
                ready.append(st)
            else:  # a layer never came: never publish a partial chunk
                self.h.free(st.handle)
        if self._pool is not None:
            with self._lock:
                self._publishing = [f for f in self._publishing if not f.done()]
                self._publishing.append(self._pool.submit(self._publish, ready))
        else:
            self._publish(ready)

    def flush(self) -> None:
        """Waits for the background publishes issued so far."""
        with self._lock:
            pending, self._publishing = self._publishing, []
        for f in pending:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self.flush()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._views.clear()
        if self.h is not None:
            self.h.close()

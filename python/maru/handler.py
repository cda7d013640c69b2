"""MaruHandler: the original Maru handler's interface over a maru-fs pool directory.

How the original's model maps onto Maru on CXL (one file per chunk):

* The original handler asks a metadata server for an *owned region* (a slab of CXL
  memory cut into pages of ``chunk_size``), writes into free pages and registers
  ``key -> (region, page)`` with the server over RPC. Here a pool is a directory of the
  maru-fs mount: a chunk is one file, ``store`` publishes it under the key with one
  atomic rename, and ``retrieve`` maps it read-only. There is no server and no RPC.
* A *region* is one mapping of one chunk, numbered in this process; ``page_index`` is
  always 0 and ``get_region_page_count`` is 1. Staging chunks handed out by ``alloc``
  (and not yet stored or freed) are the *owned* regions.
* Lifetimes follow Python references: a mapping stays (and pins its chunk) while any
  memoryview, slice, array or tensor made from it is alive, then it is released. So
  nothing ever points into an unmapped chunk, and ``close`` never invalidates a view a
  caller still holds.
* Pins are pool-wide, as the original's server-side pin counts were: ``pin`` maps the
  chunk and holds it in this process (maru-fs never evicts a chunk that any process has
  open) and counts the pin in the pool's pin table (``maru._pins``), so any handler of
  any process can ``unpin`` it. ``batch_pin`` pins the present prefix and stops at the
  first miss. ``delete`` is refused (False) exactly while the key's pool-wide pin count
  is above zero; readers' live views do not block it (their mappings stay valid, the
  space returns when the last one goes).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import weakref
from array import array
from collections.abc import Callable, Iterable, Sequence
from ctypes import byref, c_size_t, c_void_p

from . import _lib
from ._pins import Holds, Keys, holds_for
from ._regions import PoolRef, RegionTable, Staging, View, _next_region_id, fork_generation
from ._reserve import Reserve
from .config import MaruConfig
from .errors import MaruError
from .types import AllocHandle, MemoryInfo

logger = logging.getLogger("maru")

# array typecode of size_t / pointer arrays passed to batch calls.
_SZ = next(t for t in ("Q", "L", "I") if array(t).itemsize == ctypes.sizeof(c_size_t))
_PTR = next(t for t in ("Q", "L", "I") if array(t).itemsize == ctypes.sizeof(c_void_p))
_SZ_SIZE = ctypes.sizeof(c_size_t)
_PTR_SIZE = ctypes.sizeof(c_void_p)

Key = str | bytes | int


def _kb(key: Key) -> bytes:
    """A key as the bytes libmaru stores: UTF-8 for str keys, decimal for int keys (the
    original handler's examples use ints), bytes as they are."""
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise TypeError(f"a Maru key is a str, bytes or int, not {type(key).__name__}")


def _pool_capacity(lib: ctypes.CDLL, pool: int, path: str) -> int | None:
    """The pool's capacity in bytes (what maru-fs shows through libmaru, else statvfs)."""
    try:
        capacity = _lib.pool_info(lib, pool, path).get("capacity")
    except MaruError:
        capacity = None
    if capacity is not None:
        return capacity
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize or None


class _Packed(Keys):
    """Keys (any :data:`Key`) packed for a libmaru batch call."""

    __slots__ = ()

    def __init__(self, keys: Iterable[Key]):
        super().__init__([_kb(k) for k in keys])


class MaruHandler:
    """Stores and retrieves KV-cache chunks in one Maru pool, with no copy.

    Thread-safe: LMCache calls ``store`` from worker threads while other threads look
    keys up. Usage::

        with MaruHandler(MaruConfig(server_url="maru:///mnt/maru/llama")) as h:
            handle = h.alloc(len(data))
            handle.buf[:] = data
            h.store("model@1@0@abc/def", handle)
            info = h.retrieve("model@1@0@abc/def")   # info.view: read-only, zero-copy
    """

    def __init__(self, config: MaruConfig | None = None):
        self._config = config or MaruConfig()
        self._lib: ctypes.CDLL | None = None
        self._pool: PoolRef | None = None
        self._pin_pool: PoolRef | None = None
        self._closing = False
        self._generation = -1  # fork_generation at connect
        self._lock = threading.Lock()
        self._reserve: Reserve | None = None
        self._cuda = False
        self._cuda_views = False  # cuda_register_views and CUDA is in use
        #: Mappings libmaru's view cache keeps for reuse (set at connect).
        self.view_cache = 0
        # region id -> Staging/View; weak: a region lives as long as its users.
        self._regions = RegionTable()
        # Staging chunks handed out by alloc and not yet stored or freed (weak: a
        # chunk nobody references any more is aborted and its space returned).
        self._owned: weakref.WeakValueDictionary[int, Staging] = weakref.WeakValueDictionary()
        # This process's holds of pinned keys in the pool (shared by its handlers).
        self._holds: Holds | None = None
        self._on_region_added: Callable[[int, int], None] | None = None
        self._stats = dict.fromkeys(
            (
                "allocs",
                "allocs_from_reserve",
                "frees",
                "stores",
                "store_duplicates",
                "store_failures",
                "retrieve_hits",
                "retrieve_misses",
                "exists_calls",
                "pins",
                "pin_misses",
                "unpins",
                "unpin_misses",
                "deletes",
                "deletes_refused",
                "pin_table_full",
            ),
            0,
        )
        #: Why the last ``connect`` failed (None after a success).
        self.last_error: str | None = None

    # ------------------------------------------------------------------ connection

    def connect(self) -> bool:
        """Opens the pool directory named by ``server_url`` and starts the reserve.

        Returns False (and logs the reason, also kept in ``last_error``) when the
        library cannot be loaded or the pool cannot be opened (absent, no permission).
        """
        if self._pool is not None:
            return True
        try:
            lib = _lib.load()
            path = self._config.pool_path
            out = c_void_p()
            _lib.check(lib, lib.maru_pool_open(path.encode(), byref(out)), f"open pool {path}")
        except (MaruError, ValueError) as e:
            self.last_error = str(e)
            logger.error("maru: cannot connect to %s: %s", self._config.server_url, e)
            return False
        try:
            holds = holds_for(path)
        except OSError as e:
            lib.maru_pool_close(out.value)
            self.last_error = f"pin directory for pool {path}: {e} (set MARU_PIN_DIR to a shared, writable directory)"
            logger.error("maru: cannot connect to %s: %s", self._config.server_url, self.last_error)
            return False
        # Pins map through a second handle without view cache: a pin's hold is let go
        # (and the chunk evictable again) when the last pin goes, not when a cache
        # ages it out.
        pin_out = c_void_p()
        rc = lib.maru_pool_open(path.encode(), byref(pin_out))
        if rc < 0:
            lib.maru_pool_close(out.value)
            self.last_error = str(MaruError.from_errno(-rc, f"open pool {path}", _lib.last_error(lib)))
            logger.error("maru: cannot connect to %s: %s", self._config.server_url, self.last_error)
            return False
        self._lib = lib
        self._holds = holds
        self._pool = PoolRef(lib, out.value, path)
        self._pin_pool = PoolRef(lib, pin_out.value, path)
        self._closing = False
        self._generation = fork_generation[0]
        self.last_error = None
        want_cuda = self._config.cuda_register
        self._cuda = bool(lib.maru_cuda_available()) if want_cuda is None else want_cuda
        if self._cuda and not lib.maru_cuda_available():
            logger.warning("maru: cuda_register=True but CUDA is unavailable: %s", _lib.last_error(lib))
            self._cuda = False
        self._cuda_views = self._cuda and self._config.cuda_register_views
        self.view_cache = self._config.view_cache_target(_pool_capacity(lib, out.value, path))
        lib.maru_pool_set_view_cache(out.value, self.view_cache)
        self._reserve = Reserve(self._create_full, self._config.reserve_target, os.path.basename(path))
        self._reserve.start()
        logger.info(
            "maru: connected to pool %s (chunk %d bytes, reserve %d, view cache %d, cuda %s)",
            path,
            self._config.chunk_size_bytes,
            self._config.reserve_target,
            self.view_cache,
            self._cuda,
        )
        return True

    def close(self) -> None:
        """Stops the reserve, drops owned staging chunks, closes the pool.

        Mappings that callers still reference (views, tensors) stay valid until they
        are dropped; unpublished staging chunks are aborted once unreferenced. Pins are
        the pool's, not the handler's (as on the original's server): they stay until
        some handler unpins them or this process exits.
        """
        if self._pool is None:
            return
        self._closing = True
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None
        with self._lock:
            self._owned.clear()
        self._pool = None  # closed once in-flight calls drop their reference
        self._pin_pool = None

    def __enter__(self) -> MaruHandler:
        if self._config.auto_connect and not self.connect():
            raise MaruError(f"cannot connect to {self._config.server_url}: {self.last_error}")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def _p(self) -> PoolRef:
        """The open pool, or RuntimeError (same as the original handler)."""
        pool = self._pool
        if pool is None or self._closing:
            raise RuntimeError("Not connected. Call connect() first.")
        if self._generation != fork_generation[0]:
            raise RuntimeError(
                f"this MaruHandler (pool {pool.path}) was connected before fork(): "
                "connect a new MaruHandler in the child process"
            )
        return pool

    @property
    def connected(self) -> bool:
        """Whether the handler is connected."""
        return self._pool is not None and not self._closing

    @property
    def instance_id(self) -> str:
        """This client's instance id (logs and stats only)."""
        return str(self._config.instance_id)

    @property
    def pool_path(self) -> str:
        """The pool directory this handler uses."""
        return self._config.pool_path

    def get_chunk_size(self) -> int:
        """The configured chunk size in bytes."""
        return self._config.chunk_size_bytes

    # ------------------------------------------------------------------ staging

    def _create(self, size: int) -> Staging:
        pool = self._p()
        lib = pool.lib
        out, data, ln = c_void_p(), c_void_p(), c_size_t()
        rc = lib.maru_chunk_create(pool.ptr, size, byref(out), byref(data), byref(ln))
        _lib.check(lib, rc, f"create a {size}-byte chunk in pool {pool.path}")
        st = Staging(lib, out.value, data.value, ln.value)
        return st

    def _create_full(self) -> Staging:
        st = self._create(self._config.chunk_size_bytes)
        if self._cuda:
            rc = st.lib.maru_chunk_cuda_register(st.ptr)
            if rc < 0:
                logger.warning("maru: CUDA registration of a staging chunk failed: %s", _lib.last_error(st.lib))
        return st

    def alloc(self, size: int) -> AllocHandle:
        """A writable staging chunk of ``size`` bytes (``<= chunk_size``).

        Full-size chunks come from the reserve (no system call); a smaller size (the
        last, partial chunk of a sequence) creates a chunk of exactly that size, so a
        reader's view has the stored length. Raises ValueError for a bad size and
        :class:`MaruError` (a RuntimeError) when the pool refuses (full, no permission).
        """
        chunk_size = self._config.chunk_size_bytes
        if size <= 0 or size > chunk_size:
            raise ValueError(f"alloc size {size} must be in 1..{chunk_size} (chunk_size_bytes)")
        self._p()
        st = None
        if size == chunk_size and self._reserve is not None:
            st = self._reserve.take()
        if st is None:
            st = self._create_full() if size == chunk_size else self._create(size)
        else:
            self._stats["allocs_from_reserve"] += 1
        self._stats["allocs"] += 1
        rid = st.region_id
        self._regions.add(st)
        self._owned[rid] = st
        cb = self._on_region_added
        if cb is not None:
            cb(rid, 1)
        return AllocHandle(st.export(), rid, 0, size)

    def free(self, handle: AllocHandle) -> None:
        """Gives back a staging chunk from ``alloc`` that will not be stored.

        A full-size chunk goes back to the reserve (reused: do not touch ``handle.buf``
        afterwards); others are aborted once unreferenced. After ``store`` this only
        drops the handler's reference (the key stays; use ``delete``).
        """
        with self._lock:
            st = self._owned.pop(handle._region_id, None)
        if st is None:
            return
        self._stats["frees"] += 1
        reserve = self._reserve
        if st.size == self._config.chunk_size_bytes and reserve is not None:
            # Reused under a new region id: the freed handle no longer names it.
            self._regions.pop(st.region_id)
            st.region_id = _next_region_id()
            reserve.give_back(st)

    def store(self, key: Key, handle: AllocHandle) -> bool:
        """Publishes the chunk written through ``handle.buf`` under ``key``.

        Returns True when the key now holds a chunk: published by this call, or already
        present (first writer wins; this chunk is then discarded). Returns False (and
        logs why) when the pool refused. ValueError if ``handle`` is not a staging chunk
        of this handler (already stored or freed).
        """
        pool = self._p()
        with self._lock:
            st = self._owned.pop(handle._region_id, None)
        if st is None:
            raise ValueError(
                f"store {key!r}: region {handle._region_id} is not a staging chunk of this handler "
                "(already stored or freed, or allocated by another handler)"
            )
        return self._publish(pool, _kb(key), st)

    def _publish(self, pool: PoolRef, kb: bytes, st: Staging) -> bool:
        lib = pool.lib
        rc = lib.maru_chunk_publish(st.ptr, kb, len(kb))
        if rc == 0:
            self._stats["stores"] += 1
            return True
        if rc == -errno.EEXIST:
            self._stats["store_duplicates"] += 1
            return True
        self._stats["store_failures"] += 1
        logger.error(
            "maru: store of key %r in pool %s failed: %s",
            kb.decode(errors="replace"),
            pool.path,
            MaruError.from_errno(-rc, "publish", _lib.last_error(lib)),
        )
        return False

    def batch_store(self, keys: Sequence[Key], handles: Sequence[AllocHandle]) -> list[bool]:
        """``store`` for each (key, handle) pair; results in order."""
        if len(keys) != len(handles):
            raise ValueError(f"batch_store: {len(keys)} keys but {len(handles)} handles")
        pool = self._p()
        with self._lock:
            sts = [self._owned.pop(h._region_id, None) for h in handles]
        results = []
        for key, h, st in zip(keys, handles, sts):
            if st is None:
                logger.error(
                    "maru: batch_store %r: region %d is not a staging chunk of this handler", key, h._region_id
                )
                results.append(False)
                continue
            results.append(self._publish(pool, _kb(key), st))
        return results

    # ------------------------------------------------------------------ reading

    def _view(self, pool: PoolRef, kb: bytes) -> View | None:
        lib = pool.lib
        out, data, ln = c_void_p(), c_void_p(), c_size_t()
        rc = lib.maru_get(pool.ptr, kb, len(kb), byref(out), byref(data), byref(ln))
        if rc < 0:
            if rc == -errno.ENOENT:
                return None
            raise MaruError.from_errno(-rc, f"map key {kb!r} in pool {pool.path}", _lib.last_error(lib))
        return self._track(View(lib, out.value, data.value, ln.value))

    def _track(self, v: View) -> View:
        """Registers a new view with CUDA (when configured) and as a live region."""
        if self._cuda_views and v.lib.maru_view_cuda_register(v.ptr) < 0:
            logger.warning("maru: CUDA registration of a view failed: %s", _lib.last_error(v.lib))
        self._regions.add(v)
        return v

    def _batch_views(self, pool: PoolRef, packed: _Packed) -> list[View | None]:
        """Maps the packed keys with one libmaru call (``maru_batch_get``)."""
        n = packed.n
        lib = pool.lib
        views = array(_PTR, bytes(n * _PTR_SIZE))
        data = array(_PTR, bytes(n * _PTR_SIZE))
        lens = array(_SZ, bytes(n * _SZ_SIZE))
        rc = lib.maru_batch_get(
            pool.ptr,
            packed.buf,
            packed.lens.buffer_info()[0],
            n,
            views.buffer_info()[0],
            data.buffer_info()[0],
            lens.buffer_info()[0],
        )
        _lib.check(lib, rc, f"map {n} keys in pool {pool.path}")
        if self._cuda_views:
            track = self._track
            return [track(View(lib, v, d, ln)) if v else None for v, d, ln in zip(views, data, lens)]
        add = self._regions.add
        out: list[View | None] = []
        append = out.append
        for v, d, ln in zip(views, data, lens):
            if v:
                view = View(lib, v, d, ln)
                add(view)
                append(view)
            else:
                append(None)
        return out

    def retrieve(self, key: Key) -> MemoryInfo | None:
        """Maps the chunk published under ``key``; None when absent.

        ``.view`` is a read-only memoryview over the pool's pages (no copy); the chunk
        stays mapped (open, so never evicted) while the view, or anything made from it,
        is alive. Mappings of one chunk are shared through libmaru's view cache.
        """
        pool = self._p()
        v = self._view(pool, _kb(key))
        if v is None:
            self._stats["retrieve_misses"] += 1
            return None
        self._stats["retrieve_hits"] += 1
        return MemoryInfo(v.export(), v.region_id, 0)

    def batch_retrieve(self, keys: Sequence[Key]) -> list[MemoryInfo | None]:
        """``retrieve`` for each key with one libmaru call; results in order. A batch of
        more keys than the view cache holds bypasses it (a scan would flush it)."""
        pool = self._p()
        packed = _Packed(keys)
        if packed.n == 0:
            return []
        # A batch larger than the view cache would only cycle it (each key evicting
        # one the next batch needs, a stat per key for no hit): map it uncached.
        found = self._batch_views(pool if packed.n <= self.view_cache else self._pp(), packed)
        out = [None if v is None else MemoryInfo(v.export(), v.region_id, 0) for v in found]
        hits = packed.n - out.count(None)
        self._stats["retrieve_hits"] += hits
        self._stats["retrieve_misses"] += packed.n - hits
        return out

    def exists(self, key: Key) -> bool:
        """Whether ``key`` is published (one cached lookup; no mapping, no pin)."""
        pool = self._p()
        kb = _kb(key)
        self._stats["exists_calls"] += 1
        return _lib.check(pool.lib, pool.lib.maru_contains(pool.ptr, kb, len(kb)), f"look up key {kb!r}") == 1

    def batch_exists(self, keys: Sequence[Key]) -> list[bool]:
        """``exists`` for each key with one libmaru call; results in order."""
        pool = self._p()
        packed = _Packed(keys)
        if packed.n == 0:
            return []
        present = array("B", bytes(packed.n))
        rc = pool.lib.maru_batch_contains(
            pool.ptr, packed.buf, packed.lens.buffer_info()[0], packed.n, present.buffer_info()[0]
        )
        _lib.check(pool.lib, rc, f"look up {packed.n} keys in pool {pool.path}")
        self._stats["exists_calls"] += 1
        return [b != 0 for b in present]

    def prefix_exists(self, keys: Sequence[Key]) -> int:
        """How many of ``keys`` are present from the first on (stops at the first miss)."""
        pool = self._p()
        packed = _Packed(keys)
        if packed.n == 0:
            return 0
        rc = pool.lib.maru_prefix_contains(pool.ptr, packed.buf, packed.lens.buffer_info()[0], packed.n, None)
        return _lib.check(pool.lib, rc, f"look up {packed.n} keys in pool {pool.path}")

    # ------------------------------------------------------------------ pins

    def _pp(self) -> PoolRef:
        """The pool handle pins map through (no view cache); call after ``_p()``."""
        pool = self._pin_pool
        if pool is None:
            raise RuntimeError("Not connected. Call connect() first.")
        return pool

    def _h(self) -> Holds:
        holds = self._holds
        assert holds is not None  # set by connect() before _p() succeeds
        return holds

    def _pin(self, packed: _Packed) -> list[bool]:
        """Pins the present prefix of ``packed``: one libmaru call counts the pins in
        the pool's pin table (checking each key under the table's lock, so a
        concurrent ``delete`` either sees the pin or removes the key first), a second
        maps the keys this process does not hold yet."""
        pool = self._p()
        pin_pool = self._pp()
        holds = self._h()
        holds.maybe_sweep()
        out = [False] * packed.n
        if packed.n == 0:
            return out
        with holds.lock:
            n, before, full = holds.table.pin_prefix(pool.ptr, packed, packed.n)
            if full:
                self._stats["pin_table_full"] += 1
                logger.warning(
                    "maru: pin table %s is full: %d of %d keys pinned (set MARU_PIN_SLOTS larger "
                    "and recreate it, or unpin)",
                    holds.table.path,
                    n,
                    packed.n,
                )
            views = holds.views
            need = [i for i in range(n) if before[i] == 0 or packed.keys[i] not in views]
            try:
                got = self._batch_views(pin_pool, _Packed(packed.keys[i] for i in need)) if need else []
            except BaseException:
                self._unpin_locked(holds, _Packed(packed.keys[:n]))  # no pin without its hold
                raise
            end = n
            for i, view in zip(need, got):
                if view is None:  # evicted between the count and the map: the prefix ends
                    end = i
                    break
                views[packed.keys[i]] = view
            if end < n:
                self._unpin_locked(holds, _Packed(packed.keys[end:n]))
        out[:end] = [True] * end
        self._stats["pins"] += end
        self._stats["pin_misses"] += packed.n - end
        return out

    def pin(self, key: Key) -> bool:
        """Pins ``key`` if it exists (True), so it is neither evicted nor deleted.

        Pins are counted pool-wide, as on the original's server: each ``pin`` needs an
        ``unpin``, from any handler of any process. The chunk stays open in this process
        while this process has pins on it (maru-fs never evicts an open chunk). False
        when the key is absent (or the pool's pin table is full, logged).
        """
        return self._pin(_Packed([key]))[0]

    def batch_pin(self, keys: Sequence[Key]) -> list[bool]:
        """Pins the present prefix of ``keys``: stops at the first missing key.

        Returns True for each key pinned, then False for the first miss and every key
        after it (they are not pinned even when present), as the original's server did:
        LMCache unpins exactly the prefix it matched, so nothing after a gap may stay
        pinned. One libmaru call counts the pins, one maps the keys.
        """
        return self._pin(_Packed(keys))

    @staticmethod
    def _unpin_locked(holds: Holds, packed: _Packed) -> list[bool]:
        released, mine = holds.table.unpin(packed)
        views = holds.views
        for kb, m in zip(packed.keys, mine):
            if m == 0:
                views.pop(kb, None)
        return [r != 0 for r in released]

    def batch_unpin(self, keys: Sequence[Key]) -> list[bool]:
        """Drops one pin of each key, whoever pinned it (False where it has none); one
        libmaru call for the batch.

        The caller's own pins go first. When this process has no pin left on a key,
        its hold (open chunk) is released; a process whose last pin was dropped by
        another lets go at its next pin/unpin/delete (or its sweep, once a second).
        """
        self._p()
        holds = self._h()
        packed = _Packed(keys)
        if packed.n == 0:
            return []
        with holds.lock:
            out = self._unpin_locked(holds, packed)
        ok = sum(out)
        self._stats["unpins"] += ok
        self._stats["unpin_misses"] += packed.n - ok
        holds.maybe_sweep()
        return out

    def unpin(self, key: Key) -> bool:
        """Drops one pin of ``key``, whoever pinned it; False when it has no pin (see
        ``batch_unpin``)."""
        return self.batch_unpin([key])[0]

    def pin_count(self, key: Key) -> int:
        """The pool-wide pin count of ``key`` (all processes); 0 when absent or unpinned.

        Not in the original handler (its count lived on the server); here for tools and
        tests.
        """
        self._p()
        return self._h().table.count(_kb(key))

    # ------------------------------------------------------------------ delete

    def delete(self, key: Key) -> bool:
        """Removes ``key`` from the pool. True if removed; False if absent or pinned.

        Refused exactly while the key's pool-wide pin count is above zero (any handler,
        any process), as the original's server refused. Readers' live views do not
        block it: their mappings stay valid and the space returns when the last goes.
        """
        pool = self._p()
        holds = self._h()
        kb = _kb(key)
        with holds.lock:
            rc = holds.table.remove(pool.ptr, kb)
            if rc != -errno.EBUSY:
                holds.views.pop(kb, None)  # a hold whose pin another process dropped
        if rc == 0:
            self._stats["deletes"] += 1
            return True
        if rc == -errno.EBUSY:
            self._stats["deletes_refused"] += 1
            logger.debug("maru: delete %r refused: pinned", key)
        return False

    # ------------------------------------------------------------------ regions

    def get_buffer_view(self, region_id: int, offset: int, size: int) -> memoryview | None:
        """A memoryview of ``size`` bytes at ``offset`` in a live region, else None.

        Writable for staging chunks, read-only for retrieved chunks; it keeps the
        region alive.
        """
        r = self._regions.get(region_id)
        if r is None or offset < 0 or size < 0 or offset + size > r.size:
            return None
        mv = r.export()
        return mv if offset == 0 and size == r.size else mv[offset : offset + size]

    def get_region_page_count(self, region_id: int) -> int | None:
        """1 for a live region (one chunk per region), None otherwise."""
        return 1 if region_id in self._regions else None

    def get_owned_region_ids(self) -> list[int]:
        """Region ids of staging chunks handed out by ``alloc`` and not yet stored/freed."""
        return list(self._owned.keys())

    def set_on_region_added(self, callback: Callable[[int, int], None] | None) -> None:
        """Calls ``callback(region_id, 1)`` for each owned region now and on each ``alloc``."""
        self._on_region_added = callback
        if callback is not None:
            for rid in self.get_owned_region_ids():
                callback(rid, 1)

    # ------------------------------------------------------------------ health, stats

    def healthcheck(self) -> bool:
        """True when connected and the pool directory is reachable and online."""
        pool = self._pool
        if pool is None or self._closing or self._generation != fork_generation[0]:
            return False
        try:
            online = _lib.pool_info(pool.lib, pool.ptr, pool.path).get("online")
        except MaruError:
            return False
        if online is None:  # not maru-fs: a plain directory
            return os.path.isdir(pool.path)
        return online == "online"

    def _pool_usage(self, pool: PoolRef) -> dict:
        """Capacity, used, online and node as the pool shows them (libmaru's
        ``maru_pool_info``); capacity and used from statvfs where it shows none."""
        try:
            out = _lib.pool_info(pool.lib, pool.ptr, pool.path)
        except MaruError:
            out = {}
        if "capacity" not in out:
            path = pool.path
            st = os.statvfs(path)
            out["capacity"] = st.f_blocks * st.f_frsize
            out["used"] = (st.f_blocks - st.f_bfree) * st.f_frsize
        return out

    def _region_stats(self) -> dict:
        """The original's ``store_regions``: this handler's staging chunks as regions of
        one page each: allocated (handed out by ``alloc``, not yet stored) or free
        (ready in the reserve)."""
        with self._lock:
            owned = list(self._owned.values())
        reserve = self._reserve
        ready = reserve.ready() if reserve is not None else []
        regions = [
            {
                "pool_size": st.size,
                "chunk_size": st.size,
                "page_count": 1,
                "free_pages": int(free),
                "allocated_pages": int(not free),
                "utilization": float(not free),
                "region_id": st.region_id,
            }
            for free, group in ((False, owned), (True, ready))
            for st in group
        ]
        allocated = len(owned)
        return {
            "num_regions": len(regions),
            "total_pool_size": sum(r["pool_size"] for r in regions),
            "total_page_count": len(regions),
            "total_free_pages": len(regions) - allocated,
            "total_allocated_pages": allocated,
            "utilization": allocated / len(regions) if regions else 0.0,
            "regions": regions,
        }

    def get_stats(self) -> dict:
        """Statistics under the original's keys, plus this package's.

        * ``kv_manager``: ``total_entries`` (keys published in the pool) and
          ``total_size`` (bytes the pool has in use, from the mount);
        * ``allocation_manager``: ``num_allocations``/``total_allocated`` (this handler's
          staging chunks and their bytes), ``active_clients`` (processes holding pins in
          the pool, plus this one: there is no server that registers clients);
        * ``stats_manager``: this handler's operation counters;
        * ``store_regions`` and ``allocator`` (its first region): see ``_region_stats``;
        * ``pool`` (capacity, used, online, node from the mount) and ``handler``.
        """
        pool = self._p()
        lib = pool.lib
        lst = c_void_p()
        n = _lib.check(lib, lib.maru_list_keys(pool.ptr, byref(lst)), f"list pool {pool.path}")
        lib.maru_key_list_free(lst)
        usage = self._pool_usage(pool)
        reserve = self._reserve
        holds = self._h()
        regions = self._region_stats()
        out = {
            "kv_manager": {"total_entries": n, "total_size": usage.get("used", 0)},
            "allocation_manager": {
                "num_allocations": regions["num_regions"],
                "total_allocated": regions["total_pool_size"],
                "active_clients": len(holds.table.holders() | {os.getpid()}),
            },
            "stats_manager": dict(self._stats),
            "store_regions": regions,
            "pool": {"path": pool.path, **usage},
            "handler": {
                "instance_id": self.instance_id,
                "chunk_size": self._config.chunk_size_bytes,
                "reserve_ready": len(reserve) if reserve is not None else 0,
                "reserve_target": self._config.reserve_target,
                "reserve_error": reserve.last_error if reserve is not None else None,
                "owned_regions": len(self._owned),
                "live_regions": len(self._regions),
                "pinned_keys": len(holds.views),
                "cuda_registered": self._cuda,
                **self._stats,
            },
        }
        if regions["regions"]:
            out["allocator"] = regions["regions"][0]
        return out

"""Owners of libmaru handles and the zero-copy memoryviews exported over them.

A *region* is one mapping of one chunk: a staging chunk (read-write) or a view of a
published chunk (read-only). Its libmaru handle is released (unmapped, unpinned) when
the last Python reference goes: every memoryview made by :func:`export` holds the
region through a ctypes array, so slices, numpy arrays and torch tensors made from it
keep the mapping alive, and nothing can outlive the mapping it points into.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import weakref

# ctypes builds a new type for each `c_ubyte * n`; chunk sizes are few, so keep them.
_ARRAY_TYPES: dict[int, type] = {}
_ARRAY_TYPES_MAX = 4096

#: Process-wide region ids (never reused, so a stale id cannot name a new mapping).
_next_region_id = itertools.count(1).__next__

#: Every staging chunk of this process, for the fork handler below.
_LIVE_STAGING: weakref.WeakSet = weakref.WeakSet()

#: Incremented in a forked child: handlers connected before the fork refuse to work.
fork_generation = [0]


def _disown_after_fork() -> None:
    """In a forked child, forget the parent's staging chunks.

    The child inherits the parent's ``maru_chunk`` handles; freeing one there would
    remove the parent's staging file. The child leaves them alone (its copies of the
    mappings go when it exits) and must connect its own handler.
    """
    fork_generation[0] += 1
    for st in list(_LIVE_STAGING):
        st.ptr = None  # maru_chunk_free(NULL) does nothing


os.register_at_fork(after_in_child=_disown_after_fork)


def _array_type(n: int) -> type:
    t = _ARRAY_TYPES.get(n)
    if t is None:
        t = ctypes.c_ubyte * n
        if len(_ARRAY_TYPES) < _ARRAY_TYPES_MAX:
            _ARRAY_TYPES[n] = t
    return t


class PoolRef:
    """Owns a ``maru_pool*``; closed when the handler and every in-flight call let go."""

    __slots__ = ("lib", "ptr", "path")

    def __init__(self, lib: ctypes.CDLL, ptr: int, path: str):
        self.lib = lib
        self.ptr = ptr
        self.path = path

    def __del__(self) -> None:
        try:
            self.lib.maru_pool_close(self.ptr)
        except Exception:  # interpreter shutdown: the process is going anyway
            pass


class RegionTable:
    """Live regions by id, held weakly: a region removes itself when it is freed.

    A plain dict of ``weakref.ref`` (no callback) plus removal in the region's
    ``__del__``: about a third of the cost of a ``WeakValueDictionary`` entry, which
    matters when ``batch_retrieve`` registers hundreds of views per call.
    """

    __slots__ = ("refs",)

    def __init__(self) -> None:
        self.refs: dict[int, weakref.ref] = {}

    def add(self, region: _Region) -> None:
        self.refs[region.region_id] = weakref.ref(region)
        region.table = self

    def get(self, region_id: int) -> _Region | None:
        ref = self.refs.get(region_id)
        return None if ref is None else ref()

    def pop(self, region_id: int) -> None:
        self.refs.pop(region_id, None)

    def __contains__(self, region_id: int) -> bool:
        return self.get(region_id) is not None

    def __len__(self) -> int:
        return len(self.refs)


class _Region:
    """One libmaru mapping handle (``ptr``) of ``size`` bytes at ``addr``, with its region id."""

    __slots__ = ("lib", "ptr", "addr", "size", "region_id", "table", "__weakref__")
    #: Whether :meth:`export` gives read-only memoryviews.
    READONLY = True

    def __init__(self, lib: ctypes.CDLL, ptr: int, addr: int, size: int):
        self.lib = lib
        self.ptr = ptr
        self.addr = addr
        self.size = size
        self.region_id = _next_region_id()
        self.table: RegionTable | None = None

    def export(self) -> memoryview:
        """A memoryview over the whole mapping that keeps this region alive."""
        return export(self, self.addr, self.size, self.READONLY)

    def _untrack(self) -> None:
        table = self.table
        if table is not None:
            table.refs.pop(self.region_id, None)  # ids are never reused


class Staging(_Region):
    """A staging chunk (``maru_chunk*``) and its read-write mapping."""

    __slots__ = ()
    READONLY = False

    def __init__(self, lib: ctypes.CDLL, ptr: int, addr: int, size: int):
        super().__init__(lib, ptr, addr, size)
        _LIVE_STAGING.add(self)

    def __del__(self) -> None:
        # Unmaps; an unpublished chunk is aborted (staging file removed, space returned).
        try:
            self._untrack()
            self.lib.maru_chunk_free(self.ptr)
        except Exception:
            pass


class View(_Region):
    """A read-only mapping (``maru_view*``) of a published chunk; pins it while alive."""

    __slots__ = ()

    def __del__(self) -> None:
        try:
            self._untrack()
            self.lib.maru_view_release(self.ptr)
        except Exception:
            pass


def export(owner: object, addr: int, size: int, readonly: bool) -> memoryview:
    """A byte memoryview over ``size`` bytes at ``addr`` that keeps ``owner`` alive."""
    arr = _array_type(size).from_address(addr)
    arr._owner = owner  # the memoryview holds arr, arr holds the owner: no cycle
    mv = memoryview(arr).cast("B")
    return mv.toreadonly() if readonly else mv

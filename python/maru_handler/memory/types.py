"""``maru_handler.memory.types`` as in the original Maru package.

``AllocHandle`` and ``MemoryInfo`` are :mod:`maru.types`'s. ``MappedRegion`` is a
region mapped from an ``mmap`` object with the original's fields and methods; the
handler of this package does not use it (its regions are libmaru mappings), but code
that builds regions itself (LMCache's MaruBackend tests do) imports it from here.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from typing import Any

from maru.types import AllocHandle, MemoryInfo

__all__ = ["AllocHandle", "MappedRegion", "MemoryInfo", "OwnedRegion"]


@dataclass
class MappedRegion:
    """A region of ``size`` bytes over an ``mmap`` object (``_mmap_obj``).

    ``handle`` is whatever named the mapping for its creator (the original's
    ``MaruHandle``); it is kept, not used.
    """

    region_id: int
    handle: Any
    size: int
    _mmap_obj: mmap.mmap | None = field(default=None, repr=False)
    _buffer_view: memoryview | None = field(default=None, repr=False, init=False)

    def __post_init__(self) -> None:
        if self._mmap_obj is not None:
            self._buffer_view = memoryview(self._mmap_obj)

    @property
    def is_mapped(self) -> bool:
        """Whether the region still has its mapping."""
        return self._mmap_obj is not None

    def get_buffer_view(self, offset: int, size: int) -> memoryview | None:
        """A memoryview of ``size`` bytes at ``offset`` (no copy); None when unmapped or
        out of range."""
        view = self._buffer_view
        if view is None or offset < 0 or size < 0 or offset + size > len(view):
            return None
        return view[offset : offset + size]

    def read_bytes(self, offset: int, size: int) -> bytes:
        """A copy of ``size`` bytes at ``offset``; RuntimeError when unmapped."""
        if self._buffer_view is None:
            raise RuntimeError(f"Region {self.region_id} is not mapped")
        return bytes(self._buffer_view[offset : offset + size])

    def release(self) -> None:
        """Drops the memoryview and the mmap reference (the caller closes the mmap)."""
        if self._buffer_view is not None:
            try:
                self._buffer_view.release()
            except ValueError:  # slices of it are still exported
                pass
            self._buffer_view = None
        self._mmap_obj = None


@dataclass
class OwnedRegion:
    """A writable region and the allocator that hands out its pages (original's fields)."""

    region_id: int
    allocator: Any

"""Result types of MaruHandler: the original Maru handler's dataclasses, same fields.

``AllocHandle`` compares by identity (``eq=False``, as in the original: two handles are
two allocations even when their fields match); ``MemoryInfo`` compares by value
(``view`` contents, ``region_id``, ``page_index``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class AllocHandle:
    """A writable staging chunk returned by :meth:`MaruHandler.alloc`.

    Write the data into ``buf`` (a memoryview over the chunk's read-write mapping),
    then pass the handle to :meth:`MaruHandler.store`. In Maru on CXL every chunk is a
    file of its own, mapped as a region of one page: ``region_id`` names the mapping,
    ``page_index`` is always 0.
    """

    buf: memoryview
    _region_id: int
    _page_index: int = 0
    _size: int = 0

    @property
    def region_id(self) -> int:
        """The staging chunk's region id (unique in this process)."""
        return self._region_id

    @property
    def page_index(self) -> int:
        """Always 0 for chunks of this package: a region holds one chunk."""
        return self._page_index

    @property
    def size(self) -> int:
        """Requested size in bytes (the chunk's size)."""
        return self._size


@dataclass(slots=True)
class MemoryInfo:
    """A published chunk mapped read-only, returned by :meth:`MaruHandler.retrieve`.

    ``view`` is a read-only memoryview over the chunk's mapping: the pool's own pages,
    no copy (``numpy.frombuffer(info.view, ...)``, ``torch.frombuffer(info.view, ...)``).
    The mapping, and so the chunk's open handle in the pool, lives as long as ``view``
    or anything made from it (slices, arrays, tensors) is referenced. Its length is
    the stored size.
    """

    view: memoryview
    region_id: int = 0
    page_index: int = 0

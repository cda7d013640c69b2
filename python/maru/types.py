"""Result types of MaruHandler (same names and fields as the original Maru handler)."""

from __future__ import annotations


class AllocHandle:
    """A writable staging chunk returned by :meth:`MaruHandler.alloc`.

    Write the data into ``buf`` (a memoryview over the chunk's read-write mapping),
    then pass the handle to :meth:`MaruHandler.store`. In Maru on CXL every chunk is a
    file of its own, mapped as a region of one page: ``region_id`` names the mapping,
    ``page_index`` is always 0.
    """

    __slots__ = ("buf", "_region_id", "_page_index", "_size")

    def __init__(self, buf: memoryview, _region_id: int, _page_index: int = 0, _size: int = 0):
        self.buf = buf
        self._region_id = _region_id
        self._page_index = _page_index
        self._size = _size

    @property
    def region_id(self) -> int:
        """The staging chunk's region id (unique in this process)."""
        return self._region_id

    @property
    def page_index(self) -> int:
        """Always 0: a region holds one chunk."""
        return self._page_index

    @property
    def size(self) -> int:
        """Requested size in bytes (the chunk's size)."""
        return self._size

    def __repr__(self) -> str:
        return f"AllocHandle(region_id={self._region_id}, page_index={self._page_index}, size={self._size})"


class MemoryInfo:
    """A published chunk mapped read-only, returned by :meth:`MaruHandler.retrieve`.

    ``view`` is a read-only memoryview over the chunk's mapping: the pool's own pages,
    no copy (``numpy.frombuffer(info.view, ...)``, ``torch.frombuffer(info.view, ...)``).
    The mapping, and so the chunk's pin, lives as long as ``view`` or anything made
    from it (slices, arrays, tensors) is referenced.
    """

    __slots__ = ("view", "region_id", "page_index")

    def __init__(self, view: memoryview, region_id: int, page_index: int = 0):
        self.view = view
        self.region_id = region_id
        self.page_index = page_index

    def __repr__(self) -> str:
        return f"MemoryInfo(region_id={self.region_id}, page_index={self.page_index}, size={len(self.view)})"

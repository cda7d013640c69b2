"""CxlMemoryAdapter: LMCache's MemoryAllocatorInterface over a MaruHandler.

Every MemoryObj is a torch tensor made with ``torch.frombuffer`` over a chunk's own
mapping in the pool (no copy):

* ``allocate`` takes a staging chunk from the handler (from its reserve: no system
  call) and wraps its writable mapping. ``MaruBackend`` then writes the KV data into
  it and stores it: ``create_store_handle`` names the chunk by its region id, and
  ``MaruHandler.store`` publishes it under the key.
* ``get_by_location`` wraps the read-only mapping ``MaruHandler.retrieve`` returned
  (region id from ``MemoryInfo``); a chunk shorter than a full one (the last chunk of
  a sequence) gets a MemoryObj whose token dimension is cut to what was stored.

Address encoding as in the original: ``(region_id << 32) | page_index``, and
``page_index`` is always 0 (one chunk per region).

Lifetimes follow Python references, not LMCache's ref counts: a MemoryObj's tensor
holds the chunk's mapping, so the mapping (and the chunk's pin in the pool) is released
when the MemoryObj is garbage-collected; an allocated chunk that was never stored is
then discarded and its space returned. ``free`` has nothing left to do.
"""

from __future__ import annotations

import logging
import warnings

import torch
from lmcache.v1.memory_management import (
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    MemoryObjMetadata,
    TensorMemoryObj,
)

from maru import AllocHandle, MaruHandler

logger = logging.getLogger("maru_lmcache")

# Retrieved chunks are mapped read-only (PROT_READ) and LMCache only reads them; torch
# warns about every non-writable buffer. Silence that warning for this module only.
warnings.filterwarnings(
    "ignore",
    message="The given buffer is not writable",
    category=UserWarning,
    module=r"maru_lmcache\.adapter",
)


class CxlMemoryAdapter(MemoryAllocatorInterface):
    """LMCache allocator whose MemoryObjs live in Maru pool chunks (CXL memory).

    Args:
        handler: a connected :class:`maru.MaruHandler`.
        shapes, dtypes, fmt: the full chunk's layout (from LMCache's metadata).
        chunk_size: bytes of a full chunk (``handler.get_chunk_size()``).
    """

    def __init__(
        self,
        handler: MaruHandler,
        shapes: list[torch.Size],
        dtypes: list[torch.dtype],
        fmt: MemoryFormat,
        chunk_size: int,
    ):
        self._handler = handler
        self._shapes = list(shapes)
        self._dtypes = list(dtypes)
        self._fmt = fmt
        self._chunk_size = chunk_size

    # ------------------------------------------------------------------ addresses

    @staticmethod
    def encode_address(region_id: int, page_index: int) -> int:
        """``(region_id << 32) | page_index``."""
        return (region_id << 32) | page_index

    @staticmethod
    def decode_address(address: int) -> tuple[int, int]:
        """``(region_id, page_index)`` of an encoded address."""
        return address >> 32, address & 0xFFFFFFFF

    # ------------------------------------------------------------------ objects

    def _wrap(
        self,
        buf: memoryview,
        region_id: int,
        page_index: int,
        shapes: list[torch.Size],
        dtypes: list[torch.dtype],
        fmt: MemoryFormat,
    ) -> TensorMemoryObj:
        dtype = dtypes[0]
        flat = dtype if len(buf) % dtype.itemsize == 0 else torch.uint8
        raw = torch.frombuffer(buf, dtype=flat)
        meta = MemoryObjMetadata(
            shape=shapes[0],
            dtype=dtype,
            address=self.encode_address(region_id, page_index),
            phy_size=len(buf),
            ref_count=1,
            fmt=fmt,
            shapes=shapes if len(shapes) > 1 else None,
            dtypes=dtypes if len(dtypes) > 1 else None,
        )
        return TensorMemoryObj(raw, meta, parent_allocator=None)

    def allocate(
        self,
        shapes: torch.Size | list[torch.Size],
        dtypes: torch.dtype | list[torch.dtype],
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: str | None = None,
    ) -> MemoryObj | None:
        """A MemoryObj over a fresh staging chunk of the layout's size; None on failure
        (pool full, no permission: the reason is logged)."""
        shapes_list, dtypes_list = self._adapt_shapes_and_dtypes(shapes, dtypes)
        size = sum(s.numel() * d.itemsize for s, d in zip(shapes_list, dtypes_list))
        if size == 0:
            return None
        try:
            handle = self._handler.alloc(size)
        except (ValueError, RuntimeError) as e:
            logger.warning("maru: allocate %d bytes failed: %s", size, e)
            return None
        if fmt == MemoryFormat.UNDEFINED:
            fmt = self._fmt
        return self._wrap(handle.buf, handle.region_id, handle.page_index, list(shapes_list), list(dtypes_list), fmt)

    def batched_allocate(
        self,
        shapes: torch.Size | list[torch.Size],
        dtypes: torch.dtype | list[torch.dtype],
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: str | None = None,
    ) -> list[MemoryObj] | None:
        """``batch_size`` MemoryObjs, or None if any allocation fails (none are kept)."""
        out = []
        for _ in range(batch_size):
            obj = self.allocate(shapes, dtypes, fmt, allocator_type)
            if obj is None:
                return None  # the ones made so far are discarded when dropped
            out.append(obj)
        return out

    def free(self, memory_obj: MemoryObj, allocator_type: str | None = None) -> None:
        """Nothing to do: the chunk's mapping goes with the MemoryObj (see module doc)."""

    def batched_free(
        self,
        memory_objs: list[MemoryObj],
        allocator_type: str | None = None,
        update_stats: bool = True,
    ) -> None:
        """Nothing to do (see :meth:`free`)."""

    def close(self) -> None:
        """Nothing to release: the handler owns the pool; MaruBackend closes it."""

    # ------------------------------------------------------------------ store/retrieve

    def create_store_handle(self, memory_obj: MemoryObj) -> AllocHandle:
        """The handle ``MaruHandler.store`` needs for an allocated MemoryObj."""
        rid, pid = self.decode_address(memory_obj.metadata.address)
        return AllocHandle(memoryview(b""), rid, pid, memory_obj.metadata.phy_size)

    def get_by_location(
        self,
        region_id: int,
        page_index: int,
        actual_size: int,
        single_token_size: int,
    ) -> MemoryObj | None:
        """A MemoryObj over a retrieved chunk (region from ``MemoryInfo``), or None.

        A chunk of ``actual_size < chunk_size`` holds ``actual_size //
        single_token_size`` tokens: its shapes' token dimension is cut to that.
        """
        # A region of this package holds one chunk (page 0); a handler with paged
        # regions (the original's) keeps page ``i`` at ``i * chunk_size``.
        buf = self._handler.get_buffer_view(region_id, page_index * self._chunk_size, actual_size)
        if buf is None:
            logger.warning("maru: region %d is not mapped (page %d)", region_id, page_index)
            return None
        shapes = self._shapes
        if actual_size != self._chunk_size:
            if single_token_size <= 0 or actual_size % single_token_size:
                logger.error(
                    "maru: chunk of %d bytes in region %d is not a whole number of %d-byte tokens",
                    actual_size,
                    region_id,
                    single_token_size,
                )
                return None
            tokens = actual_size // single_token_size
            dim = self._fmt.token_dim()
            shapes = []
            for s in self._shapes:
                dims = list(s)
                dims[dim] = tokens
                shapes.append(torch.Size(dims))
        return self._wrap(buf, region_id, page_index, shapes, self._dtypes, self._fmt)

"""The copy layer between vLLM's paged KV cache and Maru chunks.

Everything the connector does to a tensor goes through one :class:`Copier`, picked by
the type of the KV cache it was given:

* :class:`CudaCopier` (torch tensors on a CUDA device): the store gathers a chunk's
  blocks on the GPU and copies them with one device-to-host DMA into the mapped staging
  chunk (registered with CUDA by ``MaruHandler``), on a side stream; the load copies
  from the registered read-only chunk view straight into the GPU (one host-to-device
  DMA) and scatters into the blocks. No bounce buffer in host DRAM. Kept small and
  separate: it is the only part that needs a GPU.
* :class:`TorchCpuCopier` (torch CPU tensors) and :class:`NumpyCopier` (numpy
  arrays): the same operations on the CPU, ``index_select(..., out=chunk)`` /
  ``np.take(..., out=chunk)`` writing straight into the chunk's mapping. They are what
  runs (and is tested) on machines without a GPU or without torch.

A layer's cache has one *block dimension* (vLLM's FlashAttention layout is
``[2, num_blocks, block_size, heads, head_dim]``: dimension 1; MLA and the standardised
``[blocks, heads, block_size, dim]`` view: dimension 0). A chunk's segment for a layer
is ``cache.index_select(block_dim, block_ids)`` laid out contiguously: the same shape
as the cache with ``num_blocks`` replaced by the chunk's blocks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def _is_torch(t: Any) -> bool:
    mod = type(t).__module__
    return mod.startswith("torch")


class Copier:
    """Moves blocks between one layer's paged cache and a chunk segment (a memoryview)."""

    name = "abstract"

    def nbytes(self, layer: Any) -> int:
        raise NotImplementedError

    def shape(self, layer: Any) -> tuple[int, ...]:
        return tuple(layer.shape)

    def dtype_tag(self, layer: Any) -> str:
        return str(layer.dtype).replace("torch.", "")

    def gather(self, layer: Any, block_dim: int, block_ids: Sequence[int], dst: memoryview) -> None:
        """Writes ``layer``'s blocks ``block_ids`` into ``dst`` (the segment, writable)."""
        raise NotImplementedError

    def scatter(
        self, src: memoryview, nblocks: int, lo: int, hi: int, layer: Any, block_dim: int, block_ids: Sequence[int]
    ) -> None:
        """Copies blocks ``lo:hi`` of the segment ``src`` (``nblocks`` blocks) into
        ``layer``'s blocks ``block_ids`` (``hi - lo`` of them)."""
        raise NotImplementedError

    def sync_save(self) -> None:
        """Blocks until every gather issued so far has landed in its chunk."""

    def layer_loaded(self, layer_name: str) -> None:
        """Blocks until the scatters issued for ``layer_name`` are done."""

    def mark_layer(self, layer_name: str) -> None:
        """Called after the scatters of one layer were issued."""


class NumpyCopier(Copier):
    name = "numpy"

    def __init__(self):
        import numpy as np

        self.np = np

    def nbytes(self, layer):
        return int(layer.nbytes)

    def _seg(self, buf: memoryview, layer, block_dim: int, nblocks: int):
        shape = list(layer.shape)
        shape[block_dim] = nblocks
        return self.np.frombuffer(buf, dtype=layer.dtype).reshape(shape)

    def gather(self, layer, block_dim, block_ids, dst):
        out = self._seg(dst, layer, block_dim, len(block_ids))
        self.np.take(layer, self.np.asarray(block_ids, dtype=self.np.int64), axis=block_dim, out=out)

    def scatter(self, src, nblocks, lo, hi, layer, block_dim, block_ids):
        seg = self._seg(src, layer, block_dim, nblocks)
        pre = (slice(None),) * block_dim
        layer[pre + (self.np.asarray(block_ids, dtype=self.np.int64),)] = seg[pre + (slice(lo, hi),)]


class TorchCpuCopier(Copier):
    name = "torch-cpu"

    def __init__(self):
        import torch

        self.torch = torch

    def nbytes(self, layer):
        return layer.numel() * layer.element_size()

    def _seg(self, buf: memoryview, layer, block_dim: int, nblocks: int):
        shape = list(layer.shape)
        shape[block_dim] = nblocks
        return self.torch.frombuffer(buf, dtype=self.torch.uint8).view(layer.dtype).view(shape)

    def _ids(self, block_ids, device):
        return self.torch.as_tensor(list(block_ids), dtype=self.torch.long, device=device)

    def gather(self, layer, block_dim, block_ids, dst):
        out = self._seg(dst, layer, block_dim, len(block_ids))
        self.torch.index_select(layer, block_dim, self._ids(block_ids, layer.device), out=out)

    def scatter(self, src, nblocks, lo, hi, layer, block_dim, block_ids):
        seg = self._seg(src, layer, block_dim, nblocks).narrow(block_dim, lo, hi - lo)
        layer.index_copy_(block_dim, self._ids(block_ids, layer.device), seg)


class CudaCopier(TorchCpuCopier):
    """GPU <-> CXL with one DMA each way, on side streams (see the module docstring).

    Needs the staging chunks and the retrieved views registered with CUDA
    (``MaruConfig(cuda_register=True, cuda_register_views=True)``, which the connector
    sets when it sees CUDA tensors): a DMA from or to unregistered memory would be
    staged by the driver through its own pinned buffer.
    """

    name = "cuda"

    def __init__(self, device):
        super().__init__()
        torch = self.torch
        self.device = device
        self.save_stream = torch.cuda.Stream(device=device)
        self.load_stream = torch.cuda.Stream(device=device)
        self._layer_events: dict[str, Any] = {}
        self._save_pending = False

    def gather(self, layer, block_dim, block_ids, dst):
        torch = self.torch
        out = self._seg(dst, layer, block_dim, len(block_ids))  # pinned (registered) host memory
        self.save_stream.wait_stream(torch.cuda.current_stream(layer.device))
        with torch.cuda.stream(self.save_stream):
            packed = torch.index_select(layer, block_dim, self._ids(block_ids, layer.device))
            out.copy_(packed, non_blocking=True)  # the one device -> CXL copy
            packed.record_stream(self.save_stream)
        self._save_pending = True

    def sync_save(self):
        if self._save_pending:
            self.save_stream.synchronize()
            self._save_pending = False

    def scatter(self, src, nblocks, lo, hi, layer, block_dim, block_ids):
        torch = self.torch
        seg = self._seg(src, layer, block_dim, nblocks).narrow(block_dim, lo, hi - lo)
        with torch.cuda.stream(self.load_stream):
            on_gpu = seg.to(layer.device, non_blocking=True)  # the one CXL -> device copy
            layer.index_copy_(block_dim, self._ids(block_ids, layer.device), on_gpu)

    def mark_layer(self, layer_name):
        ev = self.torch.cuda.Event()
        ev.record(self.load_stream)
        self._layer_events[layer_name] = ev

    def layer_loaded(self, layer_name):
        ev = self._layer_events.pop(layer_name, None)
        if ev is not None:
            self.torch.cuda.current_stream(self.device).wait_event(ev)


def copier_for(layer: Any) -> Copier:
    """The copier for a KV cache tensor (torch CUDA, torch CPU, or numpy)."""
    if _is_torch(layer):
        if layer.device.type == "cuda":
            return CudaCopier(layer.device)
        return TorchCpuCopier()
    if type(layer).__module__ == "numpy":
        return NumpyCopier()
    raise TypeError(f"maru_vllm: unsupported KV cache type {type(layer).__module__}.{type(layer).__name__}")


def uses_cuda(copier: Copier) -> bool:
    return isinstance(copier, CudaCopier)


LITTLE = sys.byteorder == "little"

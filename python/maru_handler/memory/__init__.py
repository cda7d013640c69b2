"""``maru_handler.memory`` as in the original Maru package.

``AllocHandle`` and ``MemoryInfo`` are the handler's result types (the same classes as
``maru.AllocHandle``/``maru.MemoryInfo``); ``MappedRegion`` and ``OwnedRegion`` keep the
original's fields for code (and tests, such as LMCache's) that builds regions itself.
"""

from .._missing import missing_attribute
from .types import AllocHandle, MappedRegion, MemoryInfo, OwnedRegion

__all__ = ["AllocHandle", "MappedRegion", "MemoryInfo", "OwnedRegion"]

_NOT_PROVIDED = {
    "DaxMapper": "chunks are mapped by libmaru (one mapping per chunk file)",
    "OwnedRegionManager": "a chunk is a file of its own; MaruHandler.get_owned_region_ids() lists staging chunks",
    "PagedMemoryAllocator": "there are no pages to hand out: MaruHandler.alloc creates a chunk file",
}


def __getattr__(name: str):
    raise missing_attribute(__name__, name, _NOT_PROVIDED)

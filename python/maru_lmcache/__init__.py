"""LMCache integration for Maru on CXL.

``from maru_lmcache import CxlMemoryAdapter`` is what LMCache's ``MaruBackend`` imports.
The adapter needs torch and lmcache; they are imported when it is first used, so
``import maru_lmcache`` works without them.
"""

__all__ = ["CxlMemoryAdapter"]


def __getattr__(name: str):
    if name in ("CxlMemoryAdapter", "CxlMemoryAllocator"):
        from .adapter import CxlMemoryAdapter

        return CxlMemoryAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

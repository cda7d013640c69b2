"""Maru on CXL: share LLM KV-cache chunks between processes with no copy.

A drop-in for the original Maru client used by LMCache's ``MaruBackend``: the same
``MaruConfig``/``MaruHandler`` interface, over a pool directory of the maru-fs mount
(``maru:///mnt/maru/<pool>``) through libmaru's C ABI. No metadata server, no resource
manager, no RPC. See docs/lmcache.md in the Maru repository.
"""

from .config import MaruConfig
from .errors import MaruError, MaruLibraryError
from .handler import MaruHandler
from .types import AllocHandle, MemoryInfo

__all__ = [
    "AllocHandle",
    "MaruConfig",
    "MaruError",
    "MaruHandler",
    "MaruLibraryError",
    "MemoryInfo",
]
__version__ = "0.1.0"

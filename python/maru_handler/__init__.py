"""``maru_handler`` as in the original Maru package: ``from maru_handler import MaruHandler``.

The handler is :class:`maru.MaruHandler` (a pool directory of the maru-fs mount, through
libmaru); the types are in :mod:`maru_handler.memory`.
"""

from maru.handler import MaruHandler

from ._missing import missing_attribute

__all__ = ["MaruHandler"]

#: Names of the original that belong to its server/RPC/DAX-region model.
_NOT_PROVIDED = {
    "RpcClient": "there is no metadata server to call",
    "RpcAsyncClient": "there is no metadata server to call",
    "OwnedRegionManager": "a chunk is a file of its own; MaruHandler.get_owned_region_ids() lists staging chunks",
}


def __getattr__(name: str):
    raise missing_attribute(__name__, name, _NOT_PROVIDED)

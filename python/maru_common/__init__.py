"""``maru_common`` as in the original Maru package: ``from maru_common import MaruConfig``.

The original's wire protocol and serializer (``maru_common.protocol``,
``maru_common.serializer``) talked to its metadata server; Maru on CXL has none, so
those modules are not provided.
"""

from maru.config import MaruConfig

__all__ = ["MaruConfig"]

"""Exceptions raised by the maru package."""

from __future__ import annotations

import errno as _errno
import os

# What a user can do about the errors libmaru reports most often.
_HINTS = {
    _errno.EACCES: "check the pool directory's owner, group and mode (maru.yaml: group/mode) "
    "and that this user is in the pool's group",
    _errno.EPERM: "published chunks are read-only and keys are only made by publishing",
    _errno.ENOENT: "check that maru-devd is running and the pool exists (ls <mount>)",
    _errno.ENOSPC: "the pool is full of pinned or staging chunks: release views, free handles, "
    "or give the pool more memory (maru.yaml: size) or eviction: lru",
    _errno.EFBIG: "the chunk is larger than the pool's max_chunk_size (maru.yaml)",
    _errno.ENODEV: "the pool is offline (see `maru-devd status`)",
    _errno.ENAMETOOLONG: "keys are limited to 4000 bytes",
}


class MaruError(RuntimeError):
    """A libmaru call failed. ``errno`` holds the error number when there is one.

    Subclass of :class:`RuntimeError` so callers written for the original Maru
    handler (which catch ``RuntimeError``/``ValueError`` around ``alloc``) keep working.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        #: The errno value libmaru returned (``None`` for errors of this package).
        self.errno = errno

    @classmethod
    def from_errno(cls, errno: int, what: str, detail: str) -> MaruError:
        """Builds the error for ``-errno`` returned by libmaru while doing ``what``."""
        text = detail or os.strerror(errno)
        msg = f"{what}: {text}"
        hint = _HINTS.get(errno)
        if hint:
            msg += f" ({hint})"
        return cls(msg, errno)


class MaruLibraryError(MaruError):
    """libmaru.so could not be found or loaded (the message says where it looked)."""

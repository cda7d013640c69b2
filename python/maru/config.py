"""MaruConfig: what a MaruHandler connects to and how it allocates."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

#: URL schemes that name a pool. ``tcp`` is what LMCache's MaruBackend hands over after
#: rewriting ``maru://`` (it was a ZeroMQ address in the original Maru).
SCHEMES = ("maru", "tcp", "file")

DEFAULT_URL = "maru:///mnt/maru/default"

#: The maru-fs mount a pool *name* is looked up under (``$MARU_MOUNT`` overrides).
DEFAULT_MOUNT = "/mnt/maru"
#: The pool a ``host:port`` URL without a path names (``$MARU_POOL`` overrides).
DEFAULT_POOL = "default"

_FORMS = (
    "maru:///mnt/maru/<pool> (or tcp:///..., file:///..., an absolute path, "
    "or maru://host:port[/<pool>] with the pool from $MARU_POOL)"
)


def _pool_by_name(name: str, url: str) -> str:
    """A pool name (under ``$MARU_MOUNT``) or an absolute pool directory."""
    if name.startswith("/"):
        return name
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"server_url {url!r}: {name!r} is not a pool name; use {_FORMS}")
    return str(PurePosixPath(os.environ.get("MARU_MOUNT") or DEFAULT_MOUNT) / name)


def pool_path_from_url(url: str) -> str:
    """The pool directory a ``server_url`` (LMCache's ``maru_path``) names.

    * ``maru:///mnt/maru/<pool>`` (also ``tcp://``, ``file://``, a plain absolute path):
      that directory.
    * ``maru://host:port``, ``tcp://host:port`` (the original's server address, e.g.
      LMCache's documented ``maru://localhost:5555``): there is no server; the address
      is accepted and names the local pool ``$MARU_POOL`` (a pool name under
      ``$MARU_MOUNT``, default ``/mnt/maru``, or an absolute directory; default pool
      ``default``). With a path, ``maru://host:port/<pool>`` names pool ``<pool>``
      under the mount and ``maru://host:port/abs/dir`` (two or more components) that
      directory. The host and port are not contacted.

    Raises :class:`ValueError` with the accepted forms otherwise.
    """
    if url.startswith("/"):
        path = url
    else:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"server_url {url!r}: unknown scheme {parts.scheme!r}; use {_FORMS}")
        if parts.query or parts.fragment:
            raise ValueError(f"server_url {url!r}: no query or fragment allowed; use {_FORMS}")
        path = unquote(parts.path)
        if parts.netloc:
            try:
                parts.port  # noqa: B018  (validates the port)
            except ValueError as e:
                raise ValueError(f"server_url {url!r}: {e}; use {_FORMS}") from None
            rel = path.strip("/")
            if not rel:
                path = _pool_by_name(os.environ.get("MARU_POOL") or DEFAULT_POOL, url)
            elif "/" not in rel:
                path = _pool_by_name(rel, url)
    p = PurePosixPath(path)
    if not p.is_absolute() or p == PurePosixPath("/"):
        raise ValueError(f"server_url {url!r}: the pool directory must be an absolute path; use {_FORMS}")
    return str(p)


def _env_override(name: str, parse):
    """The parsed value of environment variable ``name``, or None when unset."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        return parse(raw.strip())
    except ValueError as e:
        raise ValueError(f"environment variable {name}={raw!r}: {e}") from None


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


#: Bytes of staging chunks the default reserve holds (see ``MaruConfig.reserve_chunks``).
RESERVE_BYTES = 32 << 20
#: Fewest and most chunks of the default reserve.
RESERVE_MIN, RESERVE_MAX = 8, 128
#: Bytes of chunks the default view cache may keep mapped (see ``MaruConfig.view_cache``).
VIEW_CACHE_BYTES = 256 << 20
#: Most mappings the default view cache keeps.
VIEW_CACHE_MAX = 1024


@dataclass
class MaruConfig:
    """Configuration of a :class:`maru.MaruHandler`.

    The fields LMCache's ``MaruBackend`` passes are all accepted. Those that configured
    the original Maru's RPC to a metadata server (``timeout_ms``, ``use_async_rpc``,
    ``max_inflight``, ``eager_map``, ``auto_expand``, ``expand_size``, ``rm_address``,
    ``enable_stats``) are accepted and ignored: there is no server.

    Attributes:
        server_url: the pool: ``maru:///mnt/maru/<pool>`` (or ``tcp:///...``), or the
            original's ``maru://host:port`` naming the pool ``$MARU_POOL`` (see
            :func:`pool_path_from_url`).
        instance_id: a name for this client (logs and stats only); generated when None.
        pool_size: bytes of staging chunks this handler may hold ready at once (caps the
            reserve; the pool's capacity itself is the administrator's, in maru.yaml).
        chunk_size_bytes: size of a full chunk; ``alloc`` refuses more.
        auto_connect: whether ``with MaruHandler(cfg)`` connects on entry.
        reserve_chunks: how many ready (created, sized, mapped, pre-faulted) staging
            chunks the handler keeps so that ``alloc`` costs no system call; 0 disables.
            None (the default) sizes it for the chunk size: as many chunks as fit in
            ``RESERVE_BYTES``, at least ``RESERVE_MIN`` and at most ``RESERVE_MAX``
            (8 chunks of 4 MiB, 32 of 1 MiB, 128 of 256 KiB), so a batch of small
            chunks does not drain it.
        cuda_register: register staging chunks in the reserve with CUDA (off the hot
            path): None = when libmaru was built with CUDA and a GPU is present.
        cuda_register_views: also register every retrieved chunk's read-only mapping
            with CUDA (costly per call; off by default).
        view_cache: how many mappings of published chunks libmaru keeps after their
            views are released, so that retrieving the key again (or pinning, then
            retrieving it, as LMCache does) costs one cached ``stat`` instead of an
            open and a mapping. Published chunks are immutable and a removed and
            republished key is never served stale. Cached chunks stay open, so they
            are not evictable while cached: None (the default) keeps as many as fit
            in ``VIEW_CACHE_BYTES`` and in 1/32 of the pool's capacity, at most
            ``VIEW_CACHE_MAX``; 0 disables it.

    Environment overrides (for engines such as LMCache that build the config
    themselves): ``MARU_RESERVE_CHUNKS`` (an integer), ``MARU_CUDA_REGISTER`` (1/0),
    ``MARU_VIEW_CACHE`` (an integer).
    """

    server_url: str = DEFAULT_URL
    instance_id: str | None = None
    pool_size: int = 1024 * 1024 * 100
    chunk_size_bytes: int = 1024 * 1024
    auto_connect: bool = True
    timeout_ms: int = 2000
    use_async_rpc: bool = True
    max_inflight: int = 64
    eager_map: bool = True
    auto_expand: bool = True
    expand_size: int | None = None
    rm_address: str | None = None
    enable_stats: bool = False
    reserve_chunks: int | None = None
    cuda_register: bool | None = None
    cuda_register_views: bool = False
    view_cache: int | None = None

    def __post_init__(self) -> None:
        if self.instance_id is None:
            self.instance_id = str(uuid.uuid4())
        reserve = _env_override("MARU_RESERVE_CHUNKS", int)
        if reserve is not None:
            self.reserve_chunks = reserve
        view_cache = _env_override("MARU_VIEW_CACHE", int)
        if view_cache is not None:
            self.view_cache = view_cache
        if self.view_cache is not None and self.view_cache < 0:
            raise ValueError(f"view_cache must be >= 0, got {self.view_cache}")
        cuda = _env_override("MARU_CUDA_REGISTER", _parse_bool)
        if cuda is not None:
            self.cuda_register = cuda
        if self.chunk_size_bytes <= 0:
            raise ValueError(f"chunk_size_bytes must be positive, got {self.chunk_size_bytes}")
        if self.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {self.pool_size}")
        if self.reserve_chunks is not None and self.reserve_chunks < 0:
            raise ValueError(f"reserve_chunks must be >= 0, got {self.reserve_chunks}")
        # Validate now so a bad URL fails where it is written, not at connect().
        pool_path_from_url(self.server_url)

    @property
    def pool_path(self) -> str:
        """The pool directory ``server_url`` names."""
        return pool_path_from_url(self.server_url)

    def view_cache_target(self, pool_capacity: int | None) -> int:
        """Mappings to keep in libmaru's view cache: ``view_cache``, or when None as
        many chunks as fit in ``VIEW_CACHE_BYTES`` and in 1/32 of
        ``pool_capacity`` (so cached chunks never keep most of a pool from eviction),
        at most ``VIEW_CACHE_MAX``."""
        if self.view_cache is not None:
            return self.view_cache
        budget = VIEW_CACHE_BYTES if pool_capacity is None else min(VIEW_CACHE_BYTES, pool_capacity // 32)
        return min(VIEW_CACHE_MAX, budget // self.chunk_size_bytes)

    @property
    def reserve_target(self) -> int:
        """Ready staging chunks to keep: ``reserve_chunks`` (or the default for the
        chunk size), capped by ``pool_size``."""
        want = self.reserve_chunks
        if want is None:
            want = min(RESERVE_MAX, max(RESERVE_MIN, RESERVE_BYTES // self.chunk_size_bytes))
        return min(want, self.pool_size // self.chunk_size_bytes)

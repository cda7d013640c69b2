"""Locating and loading libmaru.so, and the C prototypes of its ABI (include/maru.h).

The library is looked up, in order, at:

1. ``maru/_native/libmaru.so`` inside this package: ``pip install ./python`` compiles
   libmaru and bundles it there (``python/setup.py``), so the package and its library
   always match;
2. ``$MARU_LIBRARY`` (a path to ``libmaru.so``), for a package installed without one
   (``MARU_BUILD_LIBMARU=0``) or run from the source tree;
3. the Cargo target directories of a Maru checkout: ``$CARGO_TARGET_DIR``, then ``target/``
   of the workspace found above the current directory or above this package's source
   (``release`` or ``debug``, whichever was built last).

A candidate that is absent, fails to load or has another ABI version is skipped. Every
failure names the places that were tried and how to build the library. ``maru._lib.path``
is the library loaded (loading it on first use).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from array import array
from ctypes import (
    POINTER,
    Structure,
    byref,
    c_char_p,
    c_int,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from .errors import MaruError, MaruLibraryError

#: The ABI version (``MARU_ABI_VERSION`` in maru.h) this package was written against.
ABI_VERSION = 1
#: Longest key libmaru accepts, in bytes (``MARU_KEY_MAX``).
KEY_MAX = 4000
#: Longest escaped file name (``MARU_NAME_MAX``).
NAME_MAX = 255
#: ``array`` typecode of ``size_t`` (length arrays of batch calls).
SIZE_T = next(t for t in ("Q", "L", "I") if array(t).itemsize == ctypes.sizeof(c_size_t))



class MaruInfo(Structure):
    """``maru_info``: what maru-fs shows about a pool (``fields`` says which members are set)."""

    _fields_ = [
        ("capacity", c_uint64),
        ("used", c_uint64),
        ("fields", c_uint32),
        ("online", c_int32),
        ("node", c_int32),
    ]


#: ``maru_info.fields`` bits (``MARU_INFO_*``).
INFO_CAPACITY, INFO_USED, INFO_ONLINE, INFO_NODE = 1, 2, 4, 8

_LIB_NAME = "libmaru.so"
_BUILD_HINT = (
    "reinstall the package from the Maru checkout with `pip install ./python` (it bundles libmaru), "
    "or build it with `cargo build --release -p libmaru` in the checkout, or set MARU_LIBRARY=/path/to/libmaru.so"
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_path: Path | None = None


def __getattr__(name: str) -> Path:
    """``path``: the file of the loaded libmaru (loads it first; raises like :func:`load`)."""
    if name == "path":
        load()
        assert _path is not None
        return _path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _workspace_roots() -> list[Path]:
    """Cargo workspaces above the current directory and above this package's source."""
    roots: list[Path] = []
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for d in (start, *start.parents):
            cargo = d / "Cargo.toml"
            try:
                if cargo.is_file() and "[workspace]" in cargo.read_text(errors="replace"):
                    if d not in roots:
                        roots.append(d)
                    break
            except OSError:
                continue
    return roots


def candidates() -> list[Path]:
    """Every path :func:`load` tries, in order."""
    out: list[Path] = [Path(__file__).resolve().parent / "_native" / _LIB_NAME]
    env = os.environ.get("MARU_LIBRARY")
    if env:
        out.append(Path(env))
    target_dirs: list[Path] = []
    cargo_target = os.environ.get("CARGO_TARGET_DIR")
    if cargo_target:
        target_dirs.append(Path(cargo_target))
    target_dirs.extend(root / "target" for root in _workspace_roots())
    for t in target_dirs:
        out.extend(newest_first([t / profile / _LIB_NAME for profile in ("release", "debug")]))
    return list(dict.fromkeys(out))  # each place once ($MARU_LIBRARY may name a target dir's)


def newest_first(paths: list[Path]) -> list[Path]:
    """``paths`` with the most recently built existing file first (absent ones last, in order)."""

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return float("-inf")

    return sorted(paths, key=mtime, reverse=True)


def _declare(lib: ctypes.CDLL) -> None:
    """Sets argtypes/restype of every function the package calls."""
    vp = c_void_p
    pvp = POINTER(c_void_p)
    psz = POINTER(c_size_t)
    protos = {
        "maru_abi_version": ([], c_uint32),
        "maru_last_error": ([], c_char_p),
        "maru_pool_open": ([c_char_p, pvp], c_int),
        "maru_pool_close": ([vp], None),
        "maru_pool_set_view_cache": ([vp, c_size_t], c_int),
        "maru_pool_info": ([vp, POINTER(MaruInfo)], c_int),
        "maru_pins": ([vp, c_char_p, c_size_t], c_int),
        "maru_chunk_create": ([vp, c_size_t, pvp, pvp, psz], c_int),
        "maru_chunk_publish": ([vp, c_char_p, c_size_t], c_int),
        "maru_chunk_free": ([vp], None),
        "maru_get": ([vp, c_char_p, c_size_t, pvp, pvp, psz], c_int),
        "maru_view_release": ([vp], None),
        "maru_contains": ([vp, c_char_p, c_size_t], c_int),
        "maru_remove": ([vp, c_char_p, c_size_t], c_int),
        "maru_store": ([vp, c_char_p, c_size_t, c_char_p, c_size_t], c_int),
        # Batch calls: the arrays are passed as raw addresses (array.array buffers).
        "maru_batch_contains": ([vp, c_char_p, vp, c_size_t, vp], c_int),
        "maru_batch_get": ([vp, c_char_p, vp, c_size_t, vp, vp, vp], c_int),
        "maru_prefix_contains": ([vp, c_char_p, vp, c_size_t, vp], c_int),
        "maru_list_keys": ([vp, pvp], c_int),
        "maru_key_list_count": ([vp], c_size_t),
        "maru_key_list_key": ([vp, c_size_t, psz], vp),
        "maru_key_list_free": ([vp], None),
        "maru_key_escape": ([c_char_p, c_size_t, c_char_p, c_size_t], c_int),
        "maru_pin_table_open": ([c_char_p, c_size_t, pvp], c_int),
        "maru_pin_table_close": ([vp], None),
        "maru_pin_table_slots": ([vp], c_size_t),
        "maru_pin_table_pin": ([vp, vp, c_char_p, vp, c_size_t, vp, POINTER(c_int)], c_int),
        "maru_pin_table_unpin": ([vp, c_char_p, vp, c_size_t, vp, vp], c_int),
        "maru_pin_table_counts": ([vp, c_char_p, vp, c_size_t, vp, vp], c_int),
        "maru_pin_table_remove": ([vp, vp, c_char_p, c_size_t], c_int),
        "maru_pin_table_holders": ([vp, vp, c_size_t], c_int),
        "maru_cuda_available": ([], c_int),
        "maru_chunk_cuda_register": ([vp], c_int),
        "maru_view_cuda_register": ([vp], c_int),
    }
    for name, (args, res) in protos.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res


def load() -> ctypes.CDLL:
    """Loads libmaru once per process (thread-safe) and checks its ABI version.

    Raises :class:`MaruLibraryError` naming every place tried when it cannot be found,
    loaded, or has another ABI version.
    """
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried: list[str] = []
        for path in candidates():
            if not path.is_file():
                tried.append(f"{path} (absent)")
                continue
            try:
                lib = ctypes.CDLL(str(path))
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append(f"{path} ({e})")
                continue
            version = lib.maru_abi_version()
            if version != ABI_VERSION:
                tried.append(f"{path} (ABI version {version}, this package needs {ABI_VERSION})")
                continue
            _lib, _path = lib, path
            return lib
        raise MaruLibraryError(
            "cannot load libmaru (the Maru client library); looked at: "
            + "; ".join(tried)
            + f". To fix: {_BUILD_HINT}."
        )


def last_error(lib: ctypes.CDLL) -> str:
    """The calling thread's libmaru error message."""
    msg = lib.maru_last_error()
    return msg.decode(errors="replace") if msg else ""


def check(lib: ctypes.CDLL, rc: int, what: str) -> int:
    """Returns ``rc`` when >= 0, else raises :class:`MaruError` with libmaru's message."""
    if rc >= 0:
        return rc
    raise MaruError.from_errno(-rc, what, last_error(lib))


def pool_info(lib: ctypes.CDLL, pool: int, path: str) -> dict:
    """What the pool at handle ``pool`` (opened from ``path``) shows: a dict with the keys
    it shows of ``capacity``, ``used`` (ints), ``online`` (``"online"``/``"offline"``) and
    ``node`` (the node number as text, or ``"unknown"``); empty for a plain directory.
    Raises :class:`MaruError` when the pool cannot be read (e.g. removed)."""
    info = MaruInfo()
    check(lib, lib.maru_pool_info(pool, byref(info)), f"read pool {path}")
    out: dict = {}
    if info.fields & INFO_CAPACITY:
        out["capacity"] = info.capacity
    if info.fields & INFO_USED:
        out["used"] = info.used
    if info.fields & INFO_ONLINE:
        out["online"] = "online" if info.online else "offline"
    if info.fields & INFO_NODE:
        out["node"] = "unknown" if info.node < 0 else str(info.node)
    return out


def pins(lib: ctypes.CDLL, pool: int, key: bytes) -> int | None:
    """maru-fs's count of open descriptors (all processes) of the chunk of ``key``;
    None if there is no such key. Raises :class:`MaruError` where the pool counts none."""
    rc = lib.maru_pins(pool, key, len(key))
    if rc == -errno.ENOENT:
        return None
    return check(lib, rc, f"read the pin count of key {key!r}")

"""Pool-wide pins: a pin count per key that every process using the pool shares.

The original Maru kept one ``pin_count`` per key on its metadata server: any client's
``unpin`` released any client's ``pin``, ``batch_pin`` pinned the present prefix, and
``delete`` was refused while the count was above zero. Maru on CXL has no server, so a
pin has two parts:

* **the hold** — the pinning process keeps the chunk open and mapped (a libmaru view,
  one open descriptor). maru-fs never evicts a chunk that any process has open, and the
  kernel closes it when the process dies. This is what protects the data.
* **the record** — a small file per pinned key in a directory shared by every process
  of the pool (the *pin directory*, ``$MARU_PIN_DIR``, default ``/dev/shm/maru-pins``,
  one sub-directory per pool), holding ``<pid> <start time> <count>`` per pinning
  process. It is updated under ``flock`` and is what ``pin``/``unpin``/``delete`` and
  :meth:`PinRegistry.count` read: the pool-wide count is the sum over the processes
  that are still alive (a record of a dead process is ignored and pruned, since its
  hold went with it).

``unpin`` decrements the caller's own count when it has one, else another process's.
A process whose count another process brought to zero lets its hold go the next time
it looks (every pin/unpin/delete of that key, and a sweep over all its holds at most
once a second): until then the chunk is only kept a little longer, never lost early.

Record files are named by a hash of the key, so any bytes key works and key names do
not show in the pin directory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable

#: Where pool pin directories live unless ``$MARU_PIN_DIR`` says otherwise.
DEFAULT_PIN_DIR = "/dev/shm/maru-pins"

#: Seconds between sweeps of a process's holds (see :meth:`PinRegistry.sweep`).
SWEEP_INTERVAL_S = 1.0


def _start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    try:
        return int(data[data.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


_me_cache: list = [None, None]  # [pid, (pid, start time)]


def _me() -> tuple[int, int]:
    """This process as recorded in pin files: (pid, start time)."""
    pid = os.getpid()
    if _me_cache[0] != pid:
        _me_cache[1] = (pid, _start_time(pid) or 0)
        _me_cache[0] = pid
    return _me_cache[1]


class Record:
    """The pin counts of one key, read under the key's lock (see :meth:`PinRegistry.locked`)."""

    __slots__ = ("counts", "dirty")

    def __init__(self, counts: dict[tuple[int, int], int]):
        #: (pid, start time) -> pins of that process (live processes only).
        self.counts = counts
        self.dirty = False

    @property
    def total(self) -> int:
        """The key's pool-wide pin count."""
        return sum(self.counts.values())

    @property
    def mine(self) -> int:
        """Pins of the calling process."""
        return self.counts.get(_me(), 0)

    def add(self, n: int = 1) -> None:
        """Adds ``n`` pins of the calling process."""
        me = _me()
        self.counts[me] = self.counts.get(me, 0) + n
        self.dirty = True

    def release(self) -> bool:
        """Drops one pin: the caller's own if it has one, else another process's (the
        oldest record first). False when the key has no pin."""
        me = _me()
        who = me if self.counts.get(me, 0) > 0 else next((h for h, c in self.counts.items() if c > 0), None)
        if who is None:
            return False
        self.counts[who] -= 1
        if self.counts[who] == 0:
            del self.counts[who]
        self.dirty = True
        return True


def _parse(data: bytes) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for line in data.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # a torn or foreign line: ignore it rather than fail every pin
        try:
            pid, start, n = (int(p) for p in parts)
        except ValueError:
            continue
        if n > 0:
            counts[(pid, start)] = counts.get((pid, start), 0) + n
    return counts


def _alive(holder: tuple[int, int]) -> bool:
    # This process is alive: no need to read /proc for it (the common case: a
    # record holding only the caller's own pins).
    if holder == _me():
        return True
    pid, start = holder
    return _start_time(pid) == start


class _Locked:
    """Context manager: the key's record file, locked; writes the record back on exit."""

    __slots__ = ("path", "fd", "record", "pruned")

    def __init__(self, path: str):
        self.path = path
        self.fd = -1
        self.record: Record | None = None
        self.pruned = False

    def __enter__(self) -> Record:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except FileNotFoundError:  # the pool's pin directory was removed meanwhile
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A writer that emptied the record unlinked it while we waited: retry on
                # the file that is there now, so no update lands in an unlinked inode.
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        self.fd = fd
        data = os.pread(fd, 1 << 16, 0)
        raw = _parse(data)
        live = {h: n for h, n in raw.items() if _alive(h)}
        self.pruned = len(live) != len(raw)
        self.record = Record(live)
        return self.record

    def __exit__(self, exc_type, exc, tb) -> None:
        fd, rec = self.fd, self.record
        try:
            if exc_type is None and rec is not None and (rec.dirty or self.pruned):
                if rec.counts:
                    data = b"".join(b"%d %d %d\n" % (p, s, n) for (p, s), n in rec.counts.items())
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
                else:
                    os.unlink(self.path)  # under the lock: waiters see the inode change
            elif rec is not None and not rec.counts and os.fstat(fd).st_size == 0:
                os.unlink(self.path)  # created by this look-up only
        finally:
            os.close(fd)


class PinRegistry:
    """The pin records of one pool (its sub-directory of the pin directory)."""

    def __init__(self, pool_path: str):
        real = os.path.realpath(pool_path)
        base = os.environ.get("MARU_PIN_DIR") or DEFAULT_PIN_DIR
        tag = hashlib.blake2b(real.encode(errors="surrogateescape"), digest_size=8).hexdigest()
        self.pool_path = real
        self.dir = os.path.join(base, f"{os.path.basename(real)}-{tag}")
        self._ensure_dirs(base, real)

    def _ensure_dirs(self, base: str, pool: str) -> None:
        """Creates the pin directory (sticky, world-writable, like /tmp) and the pool's
        sub-directory with the pool directory's group and mode, so exactly the users who
        may use the pool may pin in it."""
        if not os.path.isdir(base):
            try:
                os.makedirs(base, exist_ok=True)
                os.chmod(base, 0o1777)
            except PermissionError:
                pass  # made by someone else meanwhile, or not ours to change
        if os.path.isdir(self.dir):
            return
        st = os.stat(pool)
        mode = stat.S_IMODE(st.st_mode) & 0o1777
        if mode & 0o070:
            mode |= stat.S_ISGID  # record files take the pool's group
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            return
        try:
            os.chown(self.dir, -1, st.st_gid)
        except PermissionError:
            pass  # not in the pool's group: keep ours (the mode still applies)
        os.chmod(self.dir, mode | 0o700)

    def path(self, kb: bytes) -> str:
        """The record file of key ``kb``."""
        return os.path.join(self.dir, hashlib.blake2b(kb, digest_size=16).hexdigest())

    def locked(self, kb: bytes) -> _Locked:
        """``with registry.locked(kb) as rec:`` — the key's record, locked against every
        other process's pin/unpin/delete of the key; changes are written back on exit."""
        return _Locked(self.path(kb))

    def count(self, kb: bytes) -> int:
        """The key's pool-wide pin count (live processes only)."""
        try:
            fd = os.open(self.path(kb), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            counts = _parse(os.pread(fd, 1 << 16, 0))
        finally:
            os.close(fd)
        return sum(n for h, n in counts.items() if _alive(h))

    def holders(self) -> set[int]:
        """Pids of the live processes that hold a pin in this pool."""
        out: set[int] = set()
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for name in names:
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    counts = _parse(f.read())
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EACCES):
                    continue
                raise
            out.update(h[0] for h in counts if _alive(h))
        return out


class Holds:
    """This process's holds (views) of pinned keys, shared by all its handlers of a pool.

    ``views`` maps key bytes to the held view. :meth:`sweep` lets go of the holds whose
    record no longer counts a pin of this process (another process unpinned them).
    """

    def __init__(self, registry: PinRegistry):
        self.registry = registry
        self.lock = threading.Lock()
        self.views: dict[bytes, object] = {}
        self._last_sweep = time.monotonic()

    def drop(self, kb: bytes) -> None:
        with self.lock:
            self.views.pop(kb, None)

    def maybe_sweep(self) -> None:
        """:meth:`sweep` when the last one is more than a second old."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_INTERVAL_S:
            self._last_sweep = now
            self.sweep()

    def sweep(self) -> int:
        """Lets go of holds no longer backed by a pin of this process; how many."""
        with self.lock:
            keys = list(self.views)
        gone = 0
        for kb in keys:
            with self.registry.locked(kb) as rec:
                if rec.mine == 0:
                    self.drop(kb)
                    gone += 1
        return gone


_HOLDS: dict[str, Holds] = {}
_HOLDS_LOCK = threading.Lock()


def holds_for(pool_path: str, make_registry: Callable[[str], PinRegistry] = PinRegistry) -> Holds:
    """The process-wide :class:`Holds` of the pool at ``pool_path``."""
    real = os.path.realpath(pool_path)
    with _HOLDS_LOCK:
        h = _HOLDS.get(real)
        if h is None:
            h = _HOLDS[real] = Holds(make_registry(real))
        return h


def _forget_after_fork() -> None:
    # The child is another process: the parent's pins are not its pins. Its copies of
    # the held mappings are released with the (copied) views.
    _HOLDS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)

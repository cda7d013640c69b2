"""Pool-wide pins: a pin count per key that every process using the pool shares.

The original Maru kept one ``pin_count`` per key on its metadata server: any client's
``unpin`` released any client's ``pin``, ``batch_pin`` pinned the present prefix, and
``delete`` was refused while the count was above zero. Maru on CXL has no server, so a
pin has two parts:

* **the hold** — the pinning process keeps the chunk open and mapped (a libmaru view,
  one open descriptor). maru-fs never evicts a chunk that any process has open, and the
  kernel closes it when the process dies. This is what protects the data.
* **the record** — the pool's *pin table*: one shared-memory file per pool in a
  directory shared by every process of the pool (the *pin directory*,
  ``$MARU_PIN_DIR``, default ``/dev/shm/maru-pins``, one sub-directory per pool),
  mapped by each process. It holds ``(key hash, pid, start time, count)`` entries,
  open-addressed by key hash, and is kept by libmaru (``maru_pin_table_*``): each batch
  call takes the table's lock once. The pool-wide count of a key is the sum over
  the processes that are still alive (a dead process's entries are ignored and
  pruned, since its hold went with it). ``$MARU_PIN_SLOTS`` sizes a table when it is
  created (default 65 536 entries, 2 MiB, sparse); a full table refuses new pins
  (``pin`` returns False) until pins are dropped or their processes exit.

``unpin`` drops the caller's own pin when it has one, else another process's.
A process whose count another process brought to zero lets its hold go the next time
it looks (every pin/unpin/delete of that key, and a sweep over all its holds at most
once a second): until then the chunk is only kept a little longer, never lost early.

Entries are named by a hash of the key, so any bytes key works and key names do not
show in the pin directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from array import array
from ctypes import byref, c_int, c_void_p

from . import _lib
from .errors import MaruError

#: Where pool pin directories live unless ``$MARU_PIN_DIR`` says otherwise.
DEFAULT_PIN_DIR = "/dev/shm/maru-pins"

#: Seconds between sweeps of a process's holds (see :meth:`Holds.sweep`).
SWEEP_INTERVAL_S = 1.0

#: Name of the pin table file in a pool's pin directory.
TABLE_NAME = "table"


class Keys:
    """Keys packed for a libmaru batch call: one buffer plus a length array."""

    __slots__ = ("keys", "buf", "lens", "n")

    def __init__(self, keys: list[bytes]):
        self.keys = keys
        self.buf = b"".join(keys)
        self.lens = array(_lib.SIZE_T, map(len, keys))
        self.n = len(keys)

    def addr(self) -> int:
        """Address of the length array."""
        return self.lens.buffer_info()[0]


def _out(typecode: str, n: int) -> array:
    return array(typecode, bytes(n * array(typecode).itemsize))


class PinTable:
    """The pin table of one pool (``maru_pin_table``), mapped in this process."""

    def __init__(self, pool_path: str):
        real = os.path.realpath(pool_path)
        base = os.environ.get("MARU_PIN_DIR") or DEFAULT_PIN_DIR
        tag = hashlib.blake2b(real.encode(errors="surrogateescape"), digest_size=8).hexdigest()
        self.pool_path = real
        self.dir = os.path.join(base, f"{os.path.basename(real)}-{tag}")
        self._ensure_dirs(base, real)
        self.path = os.path.join(self.dir, TABLE_NAME)
        slots = int(os.environ.get("MARU_PIN_SLOTS") or 0)
        self.lib = _lib.load()
        out = c_void_p()
        rc = self.lib.maru_pin_table_open(self.path.encode(errors="surrogateescape"), slots, byref(out))
        if rc < 0:
            raise OSError(-rc, _lib.last_error(self.lib), self.path)
        self.ptr = out.value

    def __del__(self) -> None:
        try:
            self.lib.maru_pin_table_close(self.ptr)
        except Exception:  # interpreter shutdown, or a failed __init__
            pass

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
            mode |= stat.S_ISGID  # the table takes the pool's group
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            return
        try:
            os.chown(self.dir, -1, st.st_gid)
        except PermissionError:
            pass  # not in the pool's group: keep ours (the mode still applies)
        os.chmod(self.dir, mode | 0o700)

    def _check(self, rc: int, what: str) -> int:
        if rc < 0:
            raise MaruError.from_errno(-rc, f"{what} (pin table {self.path})", _lib.last_error(self.lib))
        return rc

    @property
    def slots(self) -> int:
        """Entries the table holds."""
        return self.lib.maru_pin_table_slots(self.ptr)

    def pin_prefix(self, pool_ptr: int, keys: Keys, n: int) -> tuple[int, array, bool]:
        """Pins the present prefix of the first ``n`` keys (checked in the pool under
        the table's lock): (keys pinned, this process's count of each before, whether
        it stopped because the table is full)."""
        before = _out("I", n)
        full = c_int()
        rc = self.lib.maru_pin_table_pin(self.ptr, pool_ptr, keys.buf, keys.addr(), n, before.buffer_info()[0], byref(full))
        return self._check(rc, f"pin {n} keys"), before, bool(full.value)

    def unpin(self, keys: Keys) -> tuple[array, array]:
        """Drops one pin of each key: (whether one was dropped, this process's count
        after), per key."""
        released, mine = _out("B", keys.n), _out("I", keys.n)
        rc = self.lib.maru_pin_table_unpin(
            self.ptr, keys.buf, keys.addr(), keys.n, released.buffer_info()[0], mine.buffer_info()[0]
        )
        self._check(rc, f"unpin {keys.n} keys")
        return released, mine

    def counts(self, keys: Keys) -> tuple[array, array]:
        """(pool-wide count, this process's count) of each key."""
        total, mine = _out("Q", keys.n), _out("I", keys.n)
        rc = self.lib.maru_pin_table_counts(
            self.ptr, keys.buf, keys.addr(), keys.n, total.buffer_info()[0], mine.buffer_info()[0]
        )
        self._check(rc, f"count pins of {keys.n} keys")
        return total, mine

    def count(self, kb: bytes) -> int:
        """The key's pool-wide pin count (live processes only)."""
        return self.counts(Keys([kb]))[0][0]

    def remove(self, pool_ptr: int, kb: bytes) -> int:
        """Removes ``kb`` from the pool unless pinned: 0, ``-ENOENT`` or ``-EBUSY``
        (other failures raise)."""
        rc = self.lib.maru_pin_table_remove(self.ptr, pool_ptr, kb, len(kb))
        if rc in (0, -errno.ENOENT, -errno.EBUSY):
            return rc
        return self._check(rc, f"delete key {kb!r}")

    def holders(self) -> set[int]:
        """Pids of the live processes that hold a pin in this pool."""
        cap = 64
        while True:
            pids = _out("I", cap)
            n = self._check(self.lib.maru_pin_table_holders(self.ptr, pids.buffer_info()[0], cap), "list pin holders")
            if n <= cap:
                return set(pids[:n])
            cap = n


class Holds:
    """This process's holds (views) of pinned keys, shared by all its handlers of a pool.

    ``views`` maps key bytes to the held view; ``lock`` is held across each pin,
    unpin, delete and sweep (table call plus hold update), so threads of this process
    see holds that match the table. :meth:`sweep` lets go of the holds whose entry no
    longer counts a pin of this process (another process unpinned them).
    """

    def __init__(self, table: PinTable):
        self.table = table
        self.lock = threading.Lock()
        self.views: dict[bytes, object] = {}
        self._last_sweep = time.monotonic()

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
            if not keys:
                return 0
            _, mine = self.table.counts(Keys(keys))
            gone = [kb for kb, m in zip(keys, mine) if m == 0]
            for kb in gone:
                del self.views[kb]
        return len(gone)


_HOLDS: dict[str, Holds] = {}
_HOLDS_LOCK = threading.Lock()


def holds_for(pool_path: str) -> Holds:
    """The process-wide :class:`Holds` of the pool at ``pool_path`` (opens its pin
    table on first use; OSError when the pin directory cannot be made or opened)."""
    real = os.path.realpath(pool_path)
    with _HOLDS_LOCK:
        h = _HOLDS.get(real)
        if h is None:
            h = _HOLDS[real] = Holds(PinTable(real))
        return h


def _forget_after_fork() -> None:
    # The child is another process: the parent's pins are not its pins, and it opens
    # the table again (the parent's descriptor shares the parent's lock). Its copies
    # of the held mappings are released with the (copied) views.
    _HOLDS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)

"""The original Maru package's import paths and the semantics LMCache relies on, on a
real maru-fs mount: prefix pins, pool-wide pins across processes, delete refused only
while pinned, dataclass types, any-bytes keys, the original's URL forms and stats keys."""

from __future__ import annotations

import dataclasses
import mmap
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from maru import MaruConfig, MaruHandler

MiB = 1 << 20


def put(h: MaruHandler, key, data: bytes) -> bool:
    handle = h.alloc(len(data))
    handle.buf[:] = data
    return h.store(key, handle)


class Peer:
    """A MaruHandler in another process, driven one expression at a time.

    Each ``call(expr)`` sends a Python expression (``h`` is the peer's handler) and
    returns the peer's ``repr`` of its value, evaluated here.
    """

    CODE = (
        "import sys\n"
        "from maru import MaruConfig, MaruHandler\n"
        "h = MaruHandler(MaruConfig(server_url=sys.argv[1], reserve_chunks=0))\n"
        "assert h.connect(), h.last_error\n"
        "from maru._pins import holds_for\n"
        "holds = holds_for(h.pool_path)\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    print(repr(eval(line)), flush=True)\n"
    )

    def __init__(self, world, url: str):
        import maru

        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(maru.__file__))
        self.p = subprocess.Popen(
            [sys.executable, "-c", self.CODE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.p.stdout.readline().strip()
        assert line == "ready", f"peer did not start: {line!r} {self.p.stderr.read() if not line else ''}"

    def call(self, expr: str):
        self.p.stdin.write(expr + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, f"peer died on {expr!r}: {self.p.stderr.read()}"
        return eval(line)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=30)

    def kill(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=30)


@pytest.fixture
def peer(world):
    peers = []

    def start(pool: str = "kv") -> Peer:
        p = Peer(world, world.url(pool))
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.close()


def pins_xattr(world, h: MaruHandler, key: str) -> int:
    """maru-fs's count of open descriptors of the key's chunk (all processes)."""
    from maru import _lib

    lib = _lib.load()
    kb = key.encode() if isinstance(key, str) else key
    n = _lib.pins(lib, h._p().ptr, kb)
    assert n is not None, f"no key {key!r}"
    return n


def wait_for(cond, what: str, timeout: float = 30) -> None:
    """Polls ``cond`` (FUSE RELEASE reaches the daemon asynchronously after a close)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------- import paths, types


def test_original_import_paths_name_this_package(world):
    # The lines LMCache's own tests and MaruBackend use, in a fresh interpreter (no torch).
    code = (
        "from maru_handler.memory import AllocHandle\n"
        "from maru_handler.memory.types import MappedRegion, MemoryInfo\n"
        "from maru_handler import MaruHandler\n"
        "from maru_handler.handler import MaruHandler as H2\n"
        "from maru_common import MaruConfig\n"
        "from maru_common.config import MaruConfig as C2\n"
        "from maru import MaruConfig as C3, MaruHandler as H3, AllocHandle as A3\n"
        "import maru, maru_lmcache\n"
        "assert MaruHandler is H2 is H3 and MaruConfig is C2 is C3 and AllocHandle is A3\n"
        "assert MemoryInfo is maru.MemoryInfo\n"
        "assert maru_lmcache.__all__ == ['CxlMemoryAdapter']\n"
        "print('ok')\n"
    )
    r = world.run_py(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_names_of_the_server_design_fail_with_a_reason():
    import maru_handler
    import maru_handler.memory

    with pytest.raises(AttributeError, match="server-based design.*libmaru"):
        maru_handler.memory.DaxMapper  # noqa: B018
    with pytest.raises(AttributeError, match="no metadata server"):
        maru_handler.RpcClient  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        maru_handler.memory.Nope  # noqa: B018


def test_types_are_the_originals_dataclasses():
    from maru_handler.memory import AllocHandle, MemoryInfo
    from maru_handler.memory.types import MappedRegion

    assert [f.name for f in dataclasses.fields(AllocHandle)] == ["buf", "_region_id", "_page_index", "_size"]
    assert [f.name for f in dataclasses.fields(MemoryInfo)] == ["view", "region_id", "page_index"]
    info = MemoryInfo(view=memoryview(b"abc"))
    assert (info.region_id, info.page_index) == (0, 0)
    assert info == MemoryInfo(memoryview(bytearray(b"abc")), 0, 0)  # by value
    assert info != MemoryInfo(memoryview(b"abd"))
    assert info != MemoryInfo(memoryview(b"abc"), region_id=1)
    buf = memoryview(bytearray(4))
    a = AllocHandle(buf=buf, _region_id=7, _page_index=2, _size=4)
    assert (a.region_id, a.page_index, a.size) == (7, 2, 4)
    assert a != AllocHandle(buf, 7, 2, 4) and a == a  # identity, as the original (eq=False)

    m = mmap.mmap(-1, 4096)
    region = MappedRegion(region_id=3, handle=None, size=4096, _mmap_obj=m)
    page = region.get_buffer_view(1024, 1024)
    page[:3] = b"xyz"
    assert m[1024:1027] == b"xyz" and region.read_bytes(1024, 3) == b"xyz"  # no copy
    assert region.get_buffer_view(4000, 200) is None
    del page
    region.release()
    assert not region.is_mapped and region.get_buffer_view(0, 1) is None


def test_handler_results_are_those_types(handler, key):
    from maru_handler.memory import AllocHandle, MemoryInfo

    h = handler.alloc(10)
    assert type(h) is AllocHandle
    h.buf[:] = b"0123456789"
    assert handler.store(key(), h)
    info = handler.retrieve(key())
    assert type(info) is MemoryInfo
    assert info == MemoryInfo(memoryview(b"0123456789"), info.region_id, 0)


# ---------------------------------------------------------------- prefix pins


def test_batch_pin_pins_the_prefix_only(handler, key):
    a, b, c, d = key(0), key(1), key(2), key(3)
    for k in (a, b, d):
        assert put(handler, k, k.encode())
    assert handler.batch_pin([a, b, c, d]) == [True, True, False, False]
    assert [handler.pin_count(k) for k in (a, b, c, d)] == [1, 1, 0, 0]
    # LMCache unpins the prefix it matched: nothing stays pinned.
    assert handler.batch_unpin([a, b]) == [True, True]
    assert [handler.pin_count(k) for k in (a, b, d)] == [0, 0, 0]
    assert handler.delete(d) is True and handler.delete(a) is True
    assert handler.batch_pin([c, b]) == [False, False] and handler.pin_count(b) == 0
    assert handler.batch_pin([]) == []


# ---------------------------------------------------------------- delete


def test_delete_refused_only_while_pinned(handler, key, world):
    # The writer's staging mapping and a reader's view stay alive: neither blocks it.
    w = handler.alloc(4096)
    w.buf[:] = b"w" * 4096
    assert handler.store(key(), w)
    info = handler.retrieve(key())
    assert pins_xattr(world, handler, key()) >= 1  # open in this process
    assert handler.pin(key()) and handler.pin(key())
    assert handler.delete(key()) is False and handler.exists(key())
    assert handler.unpin(key())
    assert handler.delete(key()) is False  # one pin left
    assert handler.unpin(key())
    assert handler.delete(key()) is True
    assert not handler.exists(key()) and handler.pin(key()) is False
    assert bytes(info.view) == b"w" * 4096 and bytes(w.buf[:1]) == b"w"  # mappings stay valid
    assert handler.delete(key()) is False  # absent


# ---------------------------------------------------------------- pool-wide pins


def test_pin_is_pool_wide_between_handlers_of_one_process(config_for, key):
    h1, h2 = MaruHandler(config_for()), MaruHandler(config_for())
    assert h1.connect() and h2.connect()
    try:
        assert put(h1, key(), b"p")
        assert h1.pin(key())
        assert h2.pin_count(key()) == 1 and h2.delete(key()) is False
        assert h2.unpin(key()) is True  # the original's pins were the server's, not a handler's
        assert h1.unpin(key()) is False
        h1.close()  # pins outlive a handler's close, as on the original's server
        assert h2.pin(key())
        h2.close()
        h3 = MaruHandler(config_for())
        assert h3.connect()
        assert h3.pin_count(key()) == 1 and h3.unpin(key()) and h3.delete(key())
        h3.close()
    finally:
        h1.close()
        h2.close()


def test_pin_visible_and_released_across_processes(handler, key, peer, world):
    assert put(handler, key(), b"q" * 100)
    wait_for(lambda: pins_xattr(world, handler, key()) == 0, "the writer's descriptor to close")
    before = 0
    other = peer()
    assert other.call(f"h.pin({key()!r})") is True
    assert handler.pin_count(key()) == 1
    # The peer holds the chunk open (what keeps maru-fs from evicting it).
    wait_for(lambda: pins_xattr(world, handler, key()) == before + 1, "the peer's hold")
    assert handler.delete(key()) is False

    assert handler.unpin(key()) is True  # another process's pin
    assert handler.pin_count(key()) == 0 and other.call(f"h.pin_count({key()!r})") == 0
    assert handler.unpin(key()) is False
    # The peer lets its hold go when it next looks at the key's pins.
    assert other.call(f"h.unpin({key()!r})") is False
    assert other.call("len(holds.views)") == 0
    wait_for(lambda: pins_xattr(world, handler, key()) == before, "the peer's hold to go")
    assert handler.delete(key()) is True

    # And the other way round: this process pins, the peer unpins, the peer deletes.
    assert put(handler, key(1), b"r" * 100)
    assert handler.pin(key(1))
    assert other.call(f"h.delete({key(1)!r})") is False
    assert other.call(f"h.unpin({key(1)!r})") is True
    assert other.call(f"h.delete({key(1)!r})") is True
    assert handler.pin_count(key(1)) == 0 and not handler.exists(key(1))


def test_pins_of_a_killed_process_are_gone(handler, key, peer):
    assert put(handler, key(), b"k")
    other = peer()
    assert other.call(f"h.batch_pin([{key()!r}, {key()!r}])") == [True, True]
    assert handler.pin_count(key()) == 2
    other.kill()
    assert handler.pin_count(key()) == 0  # the record of a dead process is not counted
    assert handler.unpin(key()) is False
    assert handler.delete(key()) is True


def test_concurrent_pins_from_processes_are_all_counted(handler, key, world):
    assert put(handler, key(), b"c")
    code = (
        "import sys; from maru import MaruConfig, MaruHandler\n"
        "h = MaruHandler(MaruConfig(server_url=sys.argv[1], reserve_chunks=0)); assert h.connect()\n"
        "assert all(h.pin(sys.argv[2]) for _ in range(50))\n"
        "assert all(h.unpin(sys.argv[2]) for _ in range(20))\n"
        "print(h.pin_count(sys.argv[2])); sys.stdin.readline()\n"
    )
    import maru

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(maru.__file__)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, world.url("kv"), key()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip(), "a pinning process failed"
        assert handler.pin_count(key()) == 4 * 30  # no lost update
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
    assert handler.pin_count(key()) == 0


# ---------------------------------------------------------------- any bytes key


def test_random_bytes_keys_round_trip_through_every_call(handler):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    keys = list({bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))) for _ in range(200)})
    stored = []
    for k in keys:
        try:
            ok = put(handler, k, k)
        except (ValueError, RuntimeError):
            ok = False
        if ok:
            stored.append(k)
    assert len(stored) >= len(keys) * 0.9, f"seed {seed}: store refused {len(keys) - len(stored)} keys"
    non_utf8 = [k for k in stored if not _is_utf8(k)]
    assert non_utf8, f"seed {seed}: no non-UTF-8 key drawn"
    for k in stored:
        ctx = f"seed {seed}, key {k!r}"
        assert handler.exists(k), ctx
        assert bytes(handler.retrieve(k).view) == k, ctx
        assert handler.pin(k) and handler.pin_count(k) == 1, ctx
        assert handler.delete(k) is False, ctx
        assert handler.unpin(k), ctx
    assert handler.batch_exists(stored) == [True] * len(stored), seed
    assert [bytes(i.view) for i in handler.batch_retrieve(stored)] == stored, seed
    assert handler.prefix_exists(stored) == len(stored), seed
    assert handler.batch_pin(stored) == [True] * len(stored), seed
    assert handler.batch_unpin(stored) == [True] * len(stored), seed
    for k in stored:
        assert handler.delete(k) is True, f"seed {seed}, key {k!r}"
    assert handler.batch_exists(stored) == [False] * len(stored), seed


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode()
        return True
    except UnicodeDecodeError:
        return False


# ---------------------------------------------------------------- URL forms, stats


@pytest.mark.parametrize("scheme", ["maru", "tcp"])
def test_host_port_urls_name_the_configured_pool(world, key, monkeypatch, scheme):
    # LMCache documents maru_path: maru://localhost:5555 (MaruBackend passes tcp://...).
    monkeypatch.setenv("MARU_POOL", str(world.pool("kv")))
    with MaruHandler(MaruConfig(server_url=f"{scheme}://localhost:5555", reserve_chunks=0)) as h:
        assert h.pool_path == str(world.pool("kv"))
        assert put(h, key(), b"via host:port") and h.exists(key())
    monkeypatch.delenv("MARU_POOL")
    monkeypatch.setenv("MARU_MOUNT", str(world.mnt))
    cfg = MaruConfig(server_url=f"{scheme}://cache-host:5555/kv", reserve_chunks=0)
    assert cfg.pool_path == str(world.pool("kv"))
    with MaruHandler(cfg) as h:
        assert bytes(h.retrieve(key()).view) == b"via host:port"
    monkeypatch.setenv("MARU_POOL", "small")  # a pool name under $MARU_MOUNT
    assert MaruConfig(server_url=f"{scheme}://localhost:5555").pool_path == str(world.pool("small"))


def test_get_stats_has_the_originals_keys(handler, key, peer):
    held = handler.alloc(MiB)
    assert put(handler, key(), b"s" * 4096)
    other = peer()
    assert other.call(f"h.pin({key()!r})")
    st = handler.get_stats()
    assert set(st) >= {"kv_manager", "allocation_manager", "stats_manager", "store_regions", "allocator"}
    assert st["kv_manager"]["total_entries"] >= 1 and st["kv_manager"]["total_size"] >= 4096
    am = st["allocation_manager"]
    assert am["active_clients"] >= 2  # this process and the pinning peer
    regions = st["store_regions"]
    assert regions["total_allocated_pages"] == 1  # `held`
    assert regions["num_regions"] == am["num_allocations"] == len(regions["regions"])
    assert held.region_id in {r["region_id"] for r in regions["regions"]}
    assert set(st["allocator"]) == {
        "pool_size",
        "chunk_size",
        "page_count",
        "free_pages",
        "allocated_pages",
        "utilization",
        "region_id",
    }
    assert st["stats_manager"]["stores"] == 1
    assert other.call(f"h.unpin({key()!r})")

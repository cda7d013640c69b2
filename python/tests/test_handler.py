"""The MaruHandler contract, on a real maru-fs mount served by maru-devd."""

from __future__ import annotations

import ctypes
import gc
import hashlib
import os
import threading
import time

import pytest
from conftest import NOBODY

from maru import AllocHandle, MaruConfig, MaruError, MaruHandler, MemoryInfo

MiB = 1 << 20


def put(h: MaruHandler, key: str, data: bytes) -> bool:
    handle = h.alloc(len(data))
    handle.buf[:] = data
    return h.store(key, handle)


def payload(tag: str, size: int = MiB) -> bytes:
    seed = hashlib.sha256(tag.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def wait_for_reserve(h: MaruHandler, n: int) -> None:
    """Polls until the refill thread has ``n`` chunks ready (30 s: generous on a loaded machine)."""
    deadline = time.monotonic() + 30
    while h.get_stats()["handler"]["reserve_ready"] < n:
        assert time.monotonic() < deadline, f"reserve never filled to {n}"
        time.sleep(0.01)


def mapping_of(view: memoryview) -> str:
    """The file /proc/self/maps names for the mapping that holds ``view``'s first byte."""
    addr = ctypes.addressof(view.obj)
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5].strip() if len(parts) > 5 else ""
    raise AssertionError(f"address {addr:#x} is in no mapping")


# ---------------------------------------------------------------- connection


def test_connect_close_context_manager_and_healthcheck(config_for):
    h = MaruHandler(config_for())
    assert not h.connected and not h.healthcheck()
    with pytest.raises(RuntimeError, match="Not connected"):
        h.exists("k")
    assert h.connect() and h.connect()  # idempotent
    assert h.connected and h.healthcheck()
    assert h.get_chunk_size() == MiB
    h.close()
    h.close()  # idempotent
    assert not h.healthcheck()
    with pytest.raises(RuntimeError, match="Not connected"):
        h.alloc(MiB)
    with MaruHandler(config_for()) as h2:
        assert h2.connected
    assert not h2.connected


def test_tcp_scheme_from_lmcache_backend_is_accepted(world, key):
    # MaruBackend rewrites maru:// to tcp:// before building MaruConfig.
    with MaruHandler(MaruConfig(server_url=world.url("kv", "tcp"), chunk_size_bytes=MiB)) as h:
        assert h.pool_path == str(world.pool("kv"))
        assert put(h, key(), b"x" * 10)
        assert h.exists(key())


@pytest.mark.parametrize(
    "url,match",
    [
        ("tcp://localhost:99999", "Port out of range"),
        ("maru://localhost:5555/..", "not a pool name"),
        ("redis:///mnt/maru/x", "unknown scheme"),
        ("maru://", "absolute path"),
        ("relative/pool", "unknown scheme"),
    ],
)
def test_bad_server_url_is_refused_with_the_accepted_forms(url, match):
    with pytest.raises(ValueError, match=match) as e:
        MaruConfig(server_url=url)
    assert "maru:///mnt/maru/<pool>" in str(e.value)


def test_connect_to_missing_pool_fails_cleanly(world):
    missing = world.mnt / "no-such-pool"
    h = MaruHandler(MaruConfig(server_url=f"maru://{missing}"))
    assert h.connect() is False
    assert str(missing) in h.last_error and "No such file" in h.last_error
    with pytest.raises(MaruError, match="no-such-pool"), MaruHandler(MaruConfig(server_url=f"maru://{missing}")):
        pass


def test_library_not_found_error_names_where_it_looked(monkeypatch, tmp_path):
    from maru import _lib

    monkeypatch.setattr(_lib, "_lib", None)
    monkeypatch.setattr(_lib, "candidates", lambda: [tmp_path / "libmaru.so"])
    with pytest.raises(MaruError) as e:
        _lib.load()
    msg = str(e.value)
    assert f"{tmp_path / 'libmaru.so'} (absent)" in msg
    assert "cargo build --release -p libmaru" in msg and "MARU_LIBRARY" in msg


def test_library_lookup_order(monkeypatch, tmp_path):
    from maru import _lib

    monkeypatch.setenv("MARU_LIBRARY", str(tmp_path / "x.so"))
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "tgt"))
    c = _lib.candidates()
    assert c[0].parts[-3:] == ("maru", "_native", "libmaru.so")  # the bundled library first
    assert c[1] == tmp_path / "x.so"
    assert c[2:4] == [tmp_path / "tgt" / "release" / "libmaru.so", tmp_path / "tgt" / "debug" / "libmaru.so"]
    # whichever profile was built last comes first
    (tmp_path / "tgt" / "debug").mkdir(parents=True)
    (tmp_path / "tgt" / "debug" / "libmaru.so").write_bytes(b"")
    assert _lib.candidates()[2] == tmp_path / "tgt" / "debug" / "libmaru.so"


# ---------------------------------------------------------------- store / retrieve


def test_store_retrieve_roundtrip_is_zero_copy(handler, world, key):
    data = payload(key())
    assert put(handler, key(), data)
    info = handler.retrieve(key())
    assert isinstance(info, MemoryInfo)
    assert info.page_index == 0 and len(info.view) == MiB
    assert info.view.readonly
    assert info.view == data
    # The view is the chunk file's own mapping under the mount, not a copy.
    assert mapping_of(info.view).startswith(str(world.pool("kv")) + "/")
    with pytest.raises(TypeError):
        info.view[0] = 1


def test_retrieve_and_exists_miss(handler, key):
    assert handler.retrieve(key()) is None
    assert handler.exists(key()) is False
    assert put(handler, key(), b"a")
    assert handler.exists(key()) is True
    assert handler.exists(key(1)) is False


def test_partial_chunk_keeps_its_length(handler, key):
    assert put(handler, key(), b"p" * 1000)
    info = handler.retrieve(key())
    assert len(info.view) == 1000 and bytes(info.view) == b"p" * 1000


def _addr(view: memoryview) -> int:
    """The address of the mapping a retrieved view shows (its exporter is a ctypes array)."""
    return ctypes.addressof(view.obj)


def test_view_cache_reuses_mappings_and_is_never_stale(handler, key, config_for, monkeypatch):
    assert handler.view_cache > 0  # on by default, bounded by the pool's capacity
    assert put(handler, key(), b"v1" * 100)
    first = handler.retrieve(key()).view
    addr = _addr(first)
    del first
    gc.collect()
    again = handler.retrieve(key()).view
    assert _addr(again) == addr and bytes(again) == b"v1" * 100  # the cached mapping
    del again
    got = handler.batch_retrieve([key(), key(1)])
    assert _addr(got[0].view) == addr and got[1] is None
    del got
    # Removed and republished: a new chunk, never the cached one.
    assert handler.delete(key()) and put(handler, key(), b"v2" * 100)
    assert bytes(handler.retrieve(key()).view) == b"v2" * 100
    assert MaruConfig(view_cache=None, chunk_size_bytes=MiB).view_cache_target(64 * MiB) == 2  # 1/32 of 64 MiB
    with pytest.raises(ValueError, match="view_cache"):
        MaruConfig(view_cache=-1)
    monkeypatch.setenv("MARU_VIEW_CACHE", "0")
    h = MaruHandler(config_for())
    assert h.connect(), h.last_error
    try:
        assert h.view_cache == 0 and bytes(h.retrieve(key()).view) == b"v2" * 100
    finally:
        h.close()


def test_alloc_size_limits(handler):
    with pytest.raises(ValueError, match="chunk_size"):
        handler.alloc(MiB + 1)
    with pytest.raises(ValueError):
        handler.alloc(0)


def test_first_writer_wins(handler, key):
    assert put(handler, key(), b"first" * 10)
    assert put(handler, key(), b"second" * 10)  # duplicate: True, content unchanged
    assert bytes(handler.retrieve(key()).view) == b"first" * 10
    assert handler.get_stats()["handler"]["store_duplicates"] == 1


def test_keys_with_slashes_and_long_keys_round_trip(handler, key):
    keys = [key() + "/a/b/c", "%2F" + key(), key() + "/" + "x" * 600, key() + "é/ü"]
    for i, k in enumerate(keys):
        assert put(handler, k, bytes([i]) * 100)
    for i, k in enumerate(keys):
        assert bytes(handler.retrieve(k).view) == bytes([i]) * 100
    assert handler.batch_exists(keys) == [True] * 4


def test_store_of_unknown_or_freed_handle_is_refused(handler, key):
    h = handler.alloc(MiB)
    handler.free(h)
    with pytest.raises(ValueError, match="not a staging chunk"):
        handler.store(key(), h)
    fake = AllocHandle(memoryview(b""), 10**9, 0, 1)
    with pytest.raises(ValueError):
        handler.store(key(), fake)
    assert handler.exists(key()) is False


def test_view_outlives_close_and_delete(config_for, key):
    h = MaruHandler(config_for())
    assert h.connect()
    assert put(h, key(), b"keep" * 256)
    view = h.retrieve(key()).view
    h.close()
    assert bytes(view[:4]) == b"keep"  # still mapped: lifetimes follow references


# ---------------------------------------------------------------- batches


def test_batch_results_are_in_order(handler, key):
    keys = [key(i) for i in range(8)]
    handles = [handler.alloc(1000 + i) for i in range(0, 8, 2)]
    for i, hd in zip(range(0, 8, 2), handles):
        hd.buf[:] = bytes([i]) * (1000 + i)
    assert handler.batch_store([keys[i] for i in range(0, 8, 2)], handles) == [True] * 4
    assert handler.batch_exists(keys) == [i % 2 == 0 for i in range(8)]
    got = handler.batch_retrieve(keys)
    for i, info in enumerate(got):
        if i % 2:
            assert info is None
        else:
            assert bytes(info.view) == bytes([i]) * (1000 + i)
    assert handler.batch_exists([]) == [] and handler.batch_retrieve([]) == []
    assert handler.prefix_exists(keys) == 1
    assert handler.prefix_exists([keys[0], keys[2], keys[4], keys[1]]) == 3


def test_batch_store_length_mismatch_and_bad_handle(handler, key):
    with pytest.raises(ValueError):
        handler.batch_store([key()], [])
    good = handler.alloc(10)
    good.buf[:] = b"0123456789"
    bad = AllocHandle(memoryview(b""), 10**9, 0, 1)
    assert handler.batch_store([key(0), key(1)], [bad, good]) == [False, True]


# ---------------------------------------------------------------- pins, delete


def test_pin_unpin_counts(handler, key):
    assert put(handler, key(), b"x")
    assert handler.pin(key(1)) is False  # absent
    assert handler.pin(key()) and handler.pin(key())
    assert handler.unpin(key()) and handler.unpin(key())
    assert handler.unpin(key()) is False  # no pin left
    # batch_pin pins the present prefix only (the original's server did the same).
    assert handler.batch_pin([key(), key(1), key()]) == [True, False, False]
    assert handler.batch_unpin([key(1), key(), key()]) == [False, True, False]


def test_delete_of_pinned_key_refused(handler, key):
    assert handler.delete(key()) is False  # absent
    assert put(handler, key(), b"x" * 100)
    gc.collect()
    assert handler.pin(key())
    assert handler.delete(key()) is False
    assert handler.exists(key())
    assert handler.unpin(key())
    info = handler.retrieve(key())  # a reader's live mapping is not a pin (as in the original)
    assert handler.delete(key()) is True
    assert handler.exists(key()) is False and handler.retrieve(key()) is None
    assert bytes(info.view) == b"x" * 100  # the reader's mapping stays valid


def test_delete_refused_while_another_process_pins(handler, key, world):
    assert put(handler, key(), b"y" * 100)
    code = (
        "import sys; from maru import MaruConfig, MaruHandler\n"
        "h = MaruHandler(MaruConfig(server_url=sys.argv[1]))\n"
        "assert h.connect(), h.last_error\n"
        "print(h.pin(sys.argv[2]), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    import subprocess
    import sys

    env = dict(os.environ)
    import maru

    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(maru.__file__))
    p = subprocess.Popen(
        [sys.executable, "-c", code, world.url("kv"), key()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stdout.readline().strip() == "True"
        assert handler.delete(key()) is False
    finally:
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(timeout=30)
    # The dead process's last FUSE RELEASE may reach the daemon a moment after wait(): poll.
    deadline = time.monotonic() + 30
    while handler.delete(key()) is not True:
        assert time.monotonic() < deadline, "the key stayed pinned after the pinning process exited"
        time.sleep(0.01)


def test_pin_prevents_eviction(config_for, key):
    # Pool `small` is 8 MiB with LRU eviction; write 16 MiB through it.
    h = MaruHandler(config_for("small", reserve_chunks=0))
    assert h.connect(), h.last_error
    try:
        assert put(h, key(0), payload("pinned"))
        assert h.pin(key(0))
        assert put(h, key(1), payload("unpinned"))
        for i in range(2, 18):
            assert put(h, key(i), payload(str(i))), h.get_stats()
        assert h.exists(key(0)), "the pinned chunk was evicted"
        assert not h.exists(key(1)), "the pool should have evicted the oldest unpinned chunk"
        assert h.retrieve(key(0)).view == payload("pinned")
        assert h.get_stats()["kv_manager"]["total_entries"] <= 8
    finally:
        h.unpin(key(0))
        h.close()


# ---------------------------------------------------------------- regions


def test_regions_owned_views_and_callback(handler, key):
    seen = []
    a = handler.alloc(MiB)
    handler.set_on_region_added(lambda rid, pages: seen.append((rid, pages)))
    assert seen == [(a.region_id, 1)]  # replay of owned regions
    b = handler.alloc(100)
    assert seen[-1] == (b.region_id, 1)
    assert set(handler.get_owned_region_ids()) == {a.region_id, b.region_id}
    assert a.page_index == 0 and a.size == MiB and b.size == 100
    # get_buffer_view: a writable slice of the staging chunk, same memory as buf
    v = handler.get_buffer_view(a.region_id, 10, 5)
    assert not v.readonly
    v[:] = b"hello"
    assert bytes(a.buf[10:15]) == b"hello"
    assert handler.get_buffer_view(a.region_id, MiB - 1, 2) is None  # out of range
    assert handler.get_region_page_count(a.region_id) == 1
    assert handler.store(key(), a)
    assert handler.get_owned_region_ids() == [b.region_id]
    info = handler.retrieve(key())
    rv = handler.get_buffer_view(info.region_id, 0, MiB)
    assert rv.readonly and bytes(rv[10:15]) == b"hello"
    assert handler.get_region_page_count(info.region_id) == 1
    assert handler.get_region_page_count(10**9) is None
    assert handler.get_buffer_view(10**9, 0, 1) is None
    handler.set_on_region_added(None)
    handler.free(b)
    assert handler.get_owned_region_ids() == []


def test_unreferenced_region_is_released(handler, key):
    assert put(handler, key(), b"z" * 10)
    info = handler.retrieve(key())
    rid = info.region_id
    assert handler.get_region_page_count(rid) == 1
    del info
    gc.collect()
    assert handler.get_region_page_count(rid) is None


def test_alloc_uses_the_reserve_and_free_recycles(config_for, key):
    h = MaruHandler(config_for(reserve_chunks=3))
    assert h.connect()
    try:
        wait_for_reserve(h, 3)
        a = h.alloc(MiB)
        assert h.get_stats()["handler"]["allocs_from_reserve"] == 1
        h.free(a)
        assert h.get_stats()["handler"]["reserve_ready"] == 3  # recycled, not recreated
        assert h.get_region_page_count(a.region_id) is None  # under a new id now
        b = h.alloc(MiB)
        assert b.region_id != a.region_id
        with pytest.raises(ValueError):
            h.store(key(), a)
        assert h.store(key(), b)
        assert h.get_stats()["handler"]["frees"] == 1
    finally:
        h.close()


def test_get_stats(handler, key):
    assert put(handler, key(), b"s" * 4096)
    st = handler.get_stats()
    assert st["pool"]["capacity"] == 256 * MiB
    assert st["pool"]["online"] == "online"
    assert st["pool"]["used"] >= 4096
    assert st["kv_manager"]["total_entries"] >= 1
    assert st["handler"]["stores"] == 1 and st["handler"]["chunk_size"] == MiB


# ---------------------------------------------------------------- concurrency, processes


def test_threads_store_and_retrieve_concurrently(handler, key):
    errors = []

    def worker(t):
        try:
            for i in range(20):
                k = key(t * 100 + i)
                assert put(handler, k, payload(k, 4096))
                assert handler.retrieve(k).view == payload(k, 4096)
                assert handler.exists(k)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(handler.batch_exists([key(t * 100 + i) for t in range(4) for i in range(20)]))


WRITER = """
import sys, hashlib
from maru import MaruConfig, MaruHandler
h = MaruHandler(MaruConfig(server_url=sys.argv[1], chunk_size_bytes=1 << 20))
assert h.connect(), h.last_error
data = hashlib.sha256(sys.argv[2].encode()).digest() * 1000
a = h.alloc(len(data)); a.buf[:] = data
print(h.store(sys.argv[2], a))
"""

READER = """
import sys, hashlib
from maru import MaruConfig, MaruHandler
h = MaruHandler(MaruConfig(server_url=sys.argv[1]))
assert h.connect(), h.last_error
info = h.retrieve(sys.argv[2])
print("miss" if info is None else hashlib.sha256(info.view).hexdigest())
"""


@pytest.mark.parametrize("user", [None, NOBODY], ids=["root", "nobody"])
def test_cross_process_store_retrieve(handler, world, key, user):
    data = hashlib.sha256(key().encode()).digest() * 1000
    out = world.run_py(WRITER, world.url("kv"), key(), user=user)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
    assert handler.retrieve(key()).view == data
    assert put(handler, key(1), data)
    out = world.run_py(READER, world.url("kv"), key(1), user=user)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == hashlib.sha256(data).hexdigest()
    out = world.run_py(READER, world.url("kv"), key(2), user=user)
    assert out.stdout.strip() == "miss", out.stderr


BATCH_READER = """
import sys, hashlib
from maru import MaruConfig, MaruHandler
h = MaruHandler(MaruConfig(server_url=sys.argv[1]))
assert h.connect(), h.last_error
got = h.batch_retrieve(sys.argv[3:])
print(" ".join("miss" if i is None else hashlib.sha256(i.view).hexdigest()[:16] for i in got))
# Where the mappings come from: a lent descriptor maps the daemon's backing file (its
# path in the pool's tmpfs), an open through the mount shows the mount's path.
maps = open("/proc/self/maps").read()
print(sum(sys.argv[2] in line for line in maps.splitlines()))
"""


@pytest.mark.parametrize("user", [None, NOBODY], ids=["root", "nobody"])
def test_batch_retrieve_in_another_process_borrows_through_the_lending_socket(handler, world, key, user):
    sock = os.getxattr(world.pool("kv"), "user.maru.lend.socket")
    assert os.fsdecode(sock) == str(world.run / "lend.sock")
    datas = [payload(key(i), 4096 * (i + 1)) for i in range(8)]
    for i, d in enumerate(datas):
        assert put(handler, key(i), d)
    keys = [key(i) for i in range(8)] + [key(99)]
    backing = str(world.run / "pools" / "kv") + "/"
    out = world.run_py(BATCH_READER, world.url("kv"), backing, *keys, user=user)
    assert out.returncode == 0, out.stderr
    hashes, lent = out.stdout.split("\n")[:2]
    assert hashes.split() == [hashlib.sha256(d).hexdigest()[:16] for d in datas] + ["miss"]
    assert int(lent) == 8, "the eight chunks were lent, not opened through the mount"


def test_unprivileged_process_on_forbidden_pool_gets_a_clean_error(world):
    code = (
        "import sys; from maru import MaruConfig, MaruHandler\n"
        "h = MaruHandler(MaruConfig(server_url=sys.argv[1]))\n"
        "print(h.connect()); print(h.last_error)\n"
    )
    out = world.run_py(code, world.url("private"), user=NOBODY)
    assert out.returncode == 0, out.stderr
    ok, err = out.stdout.strip().split("\n", 1)
    assert ok == "False"
    assert str(world.pool("private")) in err
    assert "Permission denied" in err and "group" in err  # what failed, where, what to do
    assert "Traceback" not in out.stderr
    # root may use it
    with MaruHandler(MaruConfig(server_url=world.url("private"))) as h:
        assert h.healthcheck()


def test_int_and_bytes_keys(handler, key):
    n = int(key().split("@")[3][:12], 16)
    assert put(handler, n, b"int key")  # the original handler's examples use int keys
    assert handler.exists(str(n)) and bytes(handler.retrieve(n).view) == b"int key"
    assert put(handler, key().encode(), b"bytes key")
    assert bytes(handler.retrieve(key()).view) == b"bytes key"
    with pytest.raises(TypeError, match="str, bytes or int"):
        handler.exists(1.5)


def test_forked_child_neither_uses_nor_frees_the_parents_chunks(config_for, key):
    h = MaruHandler(config_for(reserve_chunks=2))
    assert h.connect()
    try:
        wait_for_reserve(h, 2)
        before = h.alloc(100)
        before.buf[:] = b"b" * 100
        pid = os.fork()
        if pid == 0:  # child: refuse to work, then drop everything the parent owns
            code = 0
            try:
                h.alloc(MiB)
                code = 2
            except RuntimeError as e:
                code = 0 if "fork" in str(e) else 3
            code = code or (4 if h.healthcheck() else 0)
            h.close()
            del before
            gc.collect()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # the parent's staging chunks survived the child's cleanup
        assert h.store(key(0), before)
        for i in range(1, 4):
            assert put(h, key(i), b"r" * 10)
        assert h.batch_exists([key(i) for i in range(4)]) == [True] * 4
    finally:
        h.close()


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("MARU_RESERVE_CHUNKS", "3")
    monkeypatch.setenv("MARU_CUDA_REGISTER", "off")
    cfg = MaruConfig(chunk_size_bytes=MiB, pool_size=2 * MiB)
    assert cfg.reserve_chunks == 3 and cfg.cuda_register is False
    assert cfg.reserve_target == 2  # capped by pool_size
    monkeypatch.setenv("MARU_CUDA_REGISTER", "maybe")
    with pytest.raises(ValueError, match="MARU_CUDA_REGISTER"):
        MaruConfig()


def test_cuda_registration_requested_without_cuda_is_a_warning(config_for, key, caplog):
    from maru import _lib

    if _lib.load().maru_cuda_available():
        pytest.skip("SKIP: CUDA is available here; this test covers its absence")
    h = MaruHandler(config_for(cuda_register=True, cuda_register_views=True))
    assert h.connect()
    try:
        assert "CUDA is unavailable" in caplog.text
        assert h.get_stats()["handler"]["cuda_registered"] is False
        assert put(h, key(), b"c" * 10) and bytes(h.retrieve(key()).view) == b"c" * 10
    finally:
        h.close()


def test_default_reserve_is_sized_for_the_chunk_size(monkeypatch):
    monkeypatch.delenv("MARU_RESERVE_CHUNKS", raising=False)
    sizes = {256 << 10: 128, MiB: 32, 4 * MiB: 8, 64 * MiB: 8}
    for chunk, want in sizes.items():
        assert MaruConfig(chunk_size_bytes=chunk, pool_size=1 << 40).reserve_target == want
    assert MaruConfig(chunk_size_bytes=MiB, pool_size=4 * MiB).reserve_target == 4  # capped by pool_size
    assert MaruConfig(chunk_size_bytes=MiB, reserve_chunks=0).reserve_target == 0

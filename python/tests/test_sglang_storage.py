"""maru_sglang.MaruStorage against SGLang HiCache's storage interface, on a real mount.

Without SGLang installed the interface is the harness in ``sglang_harness.py`` (a copy
of the upstream abstract class and host pool; see its docstring);
``tests/sglang/run.sh`` runs this file against the real SGLang classes.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="SKIP: the HiCache tests use a numpy host pool (pip install numpy)")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sglang_harness as sh  # noqa: E402

REAL_SGLANG = sh.install()


@pytest.fixture
def ns():
    return uuid.uuid4().hex[:8]


@pytest.fixture
def make(world, ns):
    made = []

    def mk(pool=None, **kw):
        extra = dict(kw.pop("extra", {}) or {})
        extra.setdefault("maru_namespace", ns)
        b = sh.make_backend(world.url("kv"), pool, extra=extra, **kw)
        made.append(b)
        return b

    yield mk
    for b in made:
        b.close()


def idx(pool, pages):
    """host_indices of whole pages (token slots), as HiCache passes them."""
    return np.concatenate([np.arange(p * pool.page_size, (p + 1) * pool.page_size) for p in pages])


def test_interface():
    from maru_sglang.storage import MaruStorage
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage

    assert issubclass(MaruStorage, HiCacheStorage)
    assert not MaruStorage.__abstractmethods__
    assert REAL_SGLANG or sys.modules[HiCacheStorage.__module__].__harness__ == sh.UPSTREAM


def test_zero_copy_set_then_get_in_another_process(world, ns, make):
    """Process A backs up 5 host pages to L3; process B prefetches them byte-exact."""
    tokens = list(range(1000, 1022))  # 5 full pages of 4 (2 tokens left over)
    tests_dir = str(Path(__file__).resolve().parent)
    code = f"""
import sys
sys.path.insert(0, {tests_dir!r})
import numpy as np
import sglang_harness as sh
pool = sh.HostPool()
b = sh.make_backend({world.url("kv")!r}, pool, extra={{"maru_namespace": {ns!r}}})
keys = sh.page_keys({tokens!r}, pool.page_size)
pages = [7, 3, 11, 0, 20]
for i, p in enumerate(pages):
    sh.fill(pool, p * pool.page_size, seed=i + 1)
idx = np.concatenate([np.arange(p * 4, p * 4 + 4) for p in pages])
print("SET", b.batch_set_v1(keys, idx))
print("W", b.w is not b.h)
b.close()
"""
    r = world.run_py(code)
    assert r.returncode == 0, r.stderr
    assert "SET [True, True, True, True, True]" in r.stdout and "W True" in r.stdout, r.stdout + r.stderr

    ref = sh.HostPool()
    for i, p in enumerate([7, 3, 11, 0, 20]):
        sh.fill(ref, p * ref.page_size, seed=i + 1)
    pool = sh.HostPool()
    b = make(pool)
    keys = sh.page_keys(tokens, pool.page_size)
    assert b.batch_exists(keys) == 5
    dst = [30, 1, 9, 14, 2]  # other host pages than the writer's
    assert b.batch_get_v1(keys, idx(pool, dst)) == [True] * 5
    for src_p, dst_p in zip([7, 3, 11, 0, 20], dst):
        assert pool.page(dst_p * 4).tobytes() == ref.page(src_p * 4).tobytes()
    assert not pool.page(5 * 4).any()  # untouched pages stay zero


def test_batch_exists_stops_at_first_missing_page(make, handler):
    pool = sh.HostPool()
    b = make(pool)
    keys = sh.page_keys(list(range(40)), pool.page_size)[:6]
    for p in range(6):
        sh.fill(pool, p * 4, seed=p)
    assert b.batch_set_v1(keys, idx(pool, range(6))) == [True] * 6
    assert b.batch_exists(keys) == 6
    assert handler.delete(b._k(keys[3]))
    assert b.batch_exists(keys) == 3
    assert b.batch_get_v1(keys, idx(pool, range(6))) == [True, True, True, False, True, True]


def test_set_of_present_page_is_not_rewritten(make):
    pool = sh.HostPool()
    b = make(pool)
    keys = sh.page_keys(list(range(8)), 4)
    sh.fill(pool, 0, seed=5)
    sh.fill(pool, 4, seed=6)
    assert b.batch_set_v1(keys, idx(pool, [0, 1])) == [True, True]
    assert b.batch_set_v1(keys, idx(pool, [0, 1])) == [True, True]
    assert b.stats["set_pages"] == 2 and b.stats["set_present"] == 2


def test_tp_ranks_and_mla_keys(make):
    pool = sh.HostPool()
    r0, r1 = make(pool, tp_rank=0, tp_size=2), make(pool, tp_rank=1, tp_size=2)
    keys = sh.page_keys(list(range(4)), 4)
    sh.fill(pool, 0, seed=9)
    assert r0.batch_set_v1(keys, idx(pool, [0])) == [True]
    assert r0.batch_exists(keys) == 1 and r1.batch_exists(keys) == 0  # each rank its own heads
    m0, m1 = make(pool, tp_rank=0, tp_size=2, mla=True), make(pool, tp_rank=1, tp_size=2, mla=True)
    assert m0.batch_set_v1(keys, idx(pool, [0])) == [True]
    assert m1.batch_exists(keys) == 1  # MLA: every rank holds the whole page


def test_legacy_get_set(make):
    pool = sh.HostPool(layout="layer_first")
    b = make(pool)
    assert not b.zero_copy
    keys = sh.page_keys(list(range(500, 512)), 4)
    for i in range(3):
        sh.fill(pool, i * 4, seed=20 + i)
    assert b.batch_set(keys, [pool.get_data_page(i * 4) for i in range(3)])
    assert b.exists(keys[2]) and b.batch_exists(keys) == 3
    targets = [pool.get_dummy_flat_data_page() for _ in range(3)]
    got = b.batch_get(keys, targets)
    for i in range(3):
        assert got[i] is targets[i]
        assert targets[i].tobytes() == pool.get_data_page(i * 4).tobytes()
    view = b.get(keys[1])  # no target: a read-only view of the chunk itself
    assert bytes(view) == pool.get_data_page(4).tobytes()
    assert b.get("absent") is None and not b.exists("absent")


def test_page_size_mismatch_is_a_miss(make):
    small, big = sh.HostPool(head_dim=8), sh.HostPool(head_dim=16)
    a, b = make(small), make(big)
    keys = sh.page_keys(list(range(4)), 4)
    sh.fill(small, 0, seed=1)
    assert a.batch_set_v1(keys, idx(small, [0])) == [True]
    assert b.batch_get_v1(keys, idx(big, [0])) == [False]
    assert not big.kv_buffer.any()

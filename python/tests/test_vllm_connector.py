"""maru_vllm.MaruKVConnector against vLLM's connector interface, on a real maru-fs mount.

Without vLLM installed, the interface is the harness in ``vllm_harness.py`` (a copy of
the upstream abstract class and the engine's call order; see its docstring);
``tests/vllm/run.sh`` runs this file against the real vLLM classes.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("numpy", reason="SKIP: the connector tests use numpy KV caches (pip install numpy)")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vllm_harness as vh  # noqa: E402

REAL_VLLM = vh.install()


def prompt(n: int, seed: int = 1) -> list[int]:
    return [(seed * 7919 + i * 104729) % 32000 for i in range(n)]


@pytest.fixture
def ns():
    """A fresh key namespace per test (the pool is shared by the whole session)."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def make(world, ns):
    engines = []

    def mk(**kw):
        extra = dict(kw.pop("extra", {}) or {})
        extra.setdefault("maru_namespace", ns)
        e = vh.Engine(world.url("kv"), extra=extra, **kw)
        engines.append(e)
        return e

    yield mk
    for e in engines:
        e.close()


def keys_of(engine: vh.Engine, tokens: list[int], tp_rank: int = 0) -> list[str]:
    conn = engine.scheduler or engine.worker
    return conn.scheme.keys(conn.scheme.hashes(tokens), tp_rank)


def assert_kv(engine, req, positions, layers=None):
    for layer in range(engine.num_layers) if layers is None else layers:
        for p in positions:
            got, want = engine.token_kv(req, p, layer), engine.expected_kv(req, p, layer)
            assert got == want, f"layer {layer} position {p}: {got[:4]}... != {want[:4]}..."


def test_harness_or_real_vllm_is_the_base_class():
    from maru_vllm.connector import MaruKVConnector
    from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1

    assert issubclass(MaruKVConnector, KVConnectorBase_V1)
    assert not getattr(MaruKVConnector, "__abstractmethods__", None)
    base = sys.modules[KVConnectorBase_V1.__module__]
    assert REAL_VLLM or base.__harness__ == vh.UPSTREAM


def test_key_scheme_is_a_prefix_chain():
    from maru_vllm.keys import KeyScheme

    s = KeyScheme("org/model", "auto/bf16", 16, 32, tp_size=2, namespace="n")
    a = prompt(100)
    b = list(a)
    b[40] += 1  # in chunk 1
    ha, hb = s.hashes(a), s.hashes(b)
    assert len(ha) == 3  # full chunks only
    assert ha[0] == hb[0] and ha[1] != hb[1] and ha[2] != hb[2]
    assert s.hashes(a[:64]) == ha[:2]  # a prefix's keys are the prompt's first keys
    k0, k1 = s.key(ha[0], 0), s.key(ha[0], 1)
    assert k0 != k1 and "/" not in k0 and len(k0) < 255 and "tp0of2" in k0
    other = KeyScheme("org/model", "auto/fp8", 16, 32, tp_size=2, namespace="n")
    assert other.key(ha[0], 0) != k0  # another KV dtype never matches
    with pytest.raises(ValueError):
        KeyScheme("m", "d", 16, 24, 1)  # chunk not a multiple of the block size


def test_store_then_load_in_another_process(world, make, ns):
    """Process A prefills a prompt (stores its chunks); process B finds and loads them."""
    tokens = prompt(43)  # 5 full chunks of 8 tokens, 3 tokens left over
    tests_dir = str(Path(__file__).resolve().parent)
    code = f"""
import sys
sys.path.insert(0, {tests_dir!r})
import vllm_harness as vh
e = vh.Engine({world.url("kv")!r}, extra={{"maru_namespace": {ns!r}}}, seed=11)
req = vh.Request("a-1", {tokens!r})
ext = e.run(req, budget=16)   # chunked prefill: 16 tokens a step
e.flush()
print("EXT", ext, "SAVED", e.worker.stats["saved_chunks"])
e.close()
"""
    r = world.run_py(code)
    assert r.returncode == 0, r.stderr
    assert "EXT 0 SAVED 5" in r.stdout, r.stdout + r.stderr

    b = make(seed=22)
    req = vh.Request("b-1", tokens)
    ext = b.admit(req)
    assert ext == 40  # 5 chunks; the 3 left-over tokens are computed
    b.step(req)  # loads 0..40, computes 40..43
    assert b.worker.stats["loaded_chunks"] == 5
    assert b.worker.get_block_ids_with_load_errors() == set()
    assert_kv(b, req, range(43))  # byte-exact, in B's own (different) blocks
    assert b.blocks["b-1"] != []
    b.finish(req)


def test_prefix_stops_at_first_missing_chunk(world, make, handler):
    a = make(seed=1)
    tokens = prompt(48, seed=3)  # 6 chunks
    a.run(vh.Request("a", tokens))
    a.flush()
    keys = keys_of(a, tokens)
    assert handler.batch_exists(keys) == [True] * 6
    assert handler.delete(keys[2])  # chunk 2 gone: only chunks 0-1 are usable

    b = make(seed=2)
    req = vh.Request("b", tokens)
    assert b.admit(req) == 16
    b.step(req)
    assert b.worker.stats["loaded_chunks"] == 2
    assert_kv(b, req, range(48))
    # The gap was filled again by B's prefill (chunks after it already existed).
    b.finish(req)
    b.flush()
    assert handler.batch_exists(keys) == [True] * 6
    assert b.worker.stats["saved_chunks"] == 1 and b.worker.stats["save_skipped_present"] == 3


def test_pins_held_until_request_finished(world, make, handler):
    a = make(seed=1)
    tokens = prompt(33, seed=5)  # 4 chunks
    a.run(vh.Request("a", tokens))
    a.flush()
    keys = keys_of(a, tokens)

    b = make(seed=2)
    req = vh.Request("b", tokens)
    assert b.admit(req) == 32
    assert [handler.pin_count(k) for k in keys] == [1, 1, 1, 1]
    assert not handler.delete(keys[0])  # pinned: refused
    b.step(req)
    assert [handler.pin_count(k) for k in keys] == [1, 1, 1, 1]  # still running
    b.finish(req)
    assert [handler.pin_count(k) for k in keys] == [0, 0, 0, 0]
    assert handler.delete(keys[0])


def test_no_hit_and_repeat_lookup_leave_no_pins(world, make, handler):
    a = make(seed=1)
    tokens = prompt(24, seed=9)
    a.run(vh.Request("a", tokens))
    a.flush()
    keys = keys_of(a, tokens)
    b = make(seed=2)
    req = vh.Request("b", tokens)
    # get_num_new_matched_tokens may be called more than once per request.
    assert b.scheduler.get_num_new_matched_tokens(req, 0) == (20, False)  # (24-1) aligned to 4
    assert b.scheduler.get_num_new_matched_tokens(req, 0) == (20, False)
    assert [handler.pin_count(k) for k in keys] == [1, 1, 1]
    # The scheduler could not allocate: nothing will be loaded, pins go at once.
    b.scheduler.update_state_after_alloc(req, vh.KVCacheBlocks(([],)), 0)
    assert [handler.pin_count(k) for k in keys] == [0, 0, 0]
    # Everything already computed locally (GPU prefix cache): nothing to load, no pin.
    assert b.scheduler.get_num_new_matched_tokens(req, 20) == (0, False)
    assert [handler.pin_count(k) for k in keys] == [0, 0, 0]
    b.scheduler.request_finished(req, [])


def test_full_prompt_hit_recomputes_the_last_token(world, make):
    a = make(seed=1)
    tokens = prompt(32, seed=13)  # exactly 4 chunks
    a.run(vh.Request("a", tokens))
    a.flush()
    b = make(seed=2)
    req = vh.Request("b", tokens)
    assert b.admit(req) == 28  # (32 - 1) aligned down to the block size (4)
    b.step(req)
    assert_kv(b, req, range(32))
    assert b.worker.stats["loaded_chunks"] == 4  # the last chunk partly (blocks 0-2 of 4)
    b.finish(req)


def test_partial_local_prefix_loads_from_mid_chunk(world, make):
    a = make(seed=1)
    tokens = prompt(40, seed=17)
    a.run(vh.Request("a", tokens))
    a.flush()
    b = make(seed=2)
    req = vh.Request("b", tokens)
    # 12 tokens (3 blocks) already in B's GPU prefix cache: load 12..32 only.
    ext, _ = b.scheduler.get_num_new_matched_tokens(req, 12)
    assert ext == 24  # up to 36 = (40-1) aligned down to 4
    bids = [b.free.pop() for _ in range(10)]
    b.blocks["b"] = bids
    b.scheduler.update_state_after_alloc(req, vh.KVCacheBlocks((bids,)), ext)
    b.computed["b"] = 36
    so = vh.SchedulerOutput([vh.NewRequestData("b", tokens, (bids,), 12)], vh.CachedRequestData(), {"b": 4})
    meta = b.scheduler.build_connector_meta(so)
    assert [(op.tok_lo, op.tok_hi, op.first_chunk) for op in meta.loads] == [(12, 36, 1)]
    b.run_worker(meta, None, 0, 0)
    assert_kv(b, req, range(12, 36))
    for p in range(0, 12):  # not loaded: still zero
        assert set(b.token_kv(req, p, 0)) == {0.0}
    b.finish(req)


def test_kv_consumer_never_saves_and_producer_never_loads(world, make, handler):
    tokens = prompt(16, seed=21)
    c = make(seed=1, kv_role="kv_consumer")
    c.run(vh.Request("c", tokens))
    c.flush()
    assert handler.batch_exists(keys_of(c, tokens)) == [False, False]
    p = make(seed=2, kv_role="kv_producer")
    p.run(vh.Request("p", tokens))
    p.flush()
    assert handler.batch_exists(keys_of(p, tokens)) == [True, True]
    p2 = make(seed=3, kv_role="kv_producer")
    assert p2.run(vh.Request("p2", tokens)) == 0


def test_tensor_parallel_ranks_need_every_rank(world, make, handler):
    tokens = prompt(24, seed=23)
    r0 = make(seed=1, tp_rank=0, tp_size=2)
    r0.run(vh.Request("x", tokens))
    r0.flush()
    # Only rank 0 stored: a 2-rank scheduler must not report a hit.
    probe = make(seed=2, tp_rank=0, tp_size=2)
    assert probe.run(vh.Request("y", tokens)) == 0
    r1 = make(seed=3, tp_rank=1, tp_size=2)
    r1.run(vh.Request("z", tokens))
    r1.flush()
    assert handler.batch_exists(keys_of(r1, tokens, 1)) == [True] * 3
    probe2 = make(seed=4, tp_rank=1, tp_size=2)
    assert probe2.run(vh.Request("w", tokens)) == 20


def test_wrong_layout_is_a_load_error_not_garbage(world, make):
    tokens = prompt(24, seed=29)
    a = make(seed=1, num_layers=3)
    a.run(vh.Request("a", tokens))
    a.flush()
    b = make(seed=2, num_layers=2)  # same keys (same model config), other layout
    req = vh.Request("b", tokens)
    assert b.admit(req) == 20
    b.step(req)
    errors = b.worker.get_block_ids_with_load_errors()
    assert errors == set(b.blocks["b"][:5])
    b.finish(req)


def test_view_cache_maps_each_chunk_once(world, make):
    tokens = prompt(24, seed=31)
    a = make(seed=1)
    a.run(vh.Request("a", tokens))
    a.flush()
    b = make(seed=2, num_blocks=128, extra={"maru_view_cache_chunks": 8})
    for i in range(3):
        req = vh.Request(f"b{i}", tokens)
        assert b.run(req) == 20
        assert_kv(b, req, range(24))
    st = b.worker.stats
    assert st["views_mapped"] == 3 and st["view_cache_hits"] == 6


def test_sync_save_publishes_before_wait_for_save_returns(world, make, handler):
    tokens = prompt(16, seed=37)
    a = make(seed=1, extra={"maru_async_save": False})
    req = vh.Request("a", tokens)
    a.admit(req)
    a.step(req)
    assert handler.batch_exists(keys_of(a, tokens)) == [True, True]  # no flush needed
    a.finish(req)


@pytest.mark.skipif(os.environ.get("MARU_TEST_TORCH") != "1", reason="SKIP: torch path: MARU_TEST_TORCH=1")
def test_torch_cpu_copier_in_use(make):
    e = make()
    assert e.worker._worker.copier.name == "torch-cpu"

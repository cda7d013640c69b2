"""CPU-path figures of the vLLM connector and the HiCache backend (``MARU_BENCH=1``).

Prints store/load throughput for an 8-layer, 8-KV-head, 128-dim fp16 model with
256-token chunks (8 MiB per chunk) and HiCache 64-token pages; docs/vllm.md and
docs/sglang.md quote the output. Skipped unless ``MARU_BENCH=1``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("numpy")
if os.environ.get("MARU_BENCH") != "1":
    pytest.skip("SKIP: benchmark: set MARU_BENCH=1", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sglang_harness as sh  # noqa: E402
import vllm_harness as vh  # noqa: E402


def test_vllm_connector_cpu_throughput(world, capsys):
    ns = uuid.uuid4().hex[:8]
    kw = dict(num_layers=8, num_blocks=160, block_size=16, chunk_tokens=256, heads=8, head_dim=128)
    a = vh.Engine(world.url("kv"), extra={"maru_namespace": ns, "maru_async_save": False}, seed=1, **kw)
    tokens = [(i * 7919) % 32000 for i in range(2049)]  # 8 chunks of 256 tokens
    req = vh.Request("a", tokens)
    a.admit(req)
    meta = a.scheduler.build_connector_meta(
        vh.SchedulerOutput([vh.NewRequestData("a", tokens, (a.blocks["a"],), 0)], vh.CachedRequestData(), {"a": 2049})
    )
    t0 = time.perf_counter()
    a.run_worker(meta, None, 0, 0)  # store only (no fake attention in the timing)
    t_store = time.perf_counter() - t0
    a.finish(req)
    nbytes = 8 * a.worker._worker.chunk_bytes
    b = vh.Engine(world.url("kv"), extra={"maru_namespace": ns}, seed=2, **kw)
    req = vh.Request("b", tokens)
    t0 = time.perf_counter()
    ext = b.admit(req)
    t_lookup = time.perf_counter() - t0
    meta = b.scheduler.build_connector_meta(
        vh.SchedulerOutput([vh.NewRequestData("b", tokens, (b.blocks["b"],), 0)], vh.CachedRequestData(), {"b": 1})
    )
    t0 = time.perf_counter()
    b.run_worker(meta, None, 0, 0)
    t_load = time.perf_counter() - t0
    b.finish(req)
    with capsys.disabled():
        print(
            f"\nvllm connector (numpy, CPU): {ext} tokens, {nbytes >> 20} MiB in 8 chunks: "
            f"store+publish {t_store * 1e3:.1f} ms ({nbytes / t_store / 2**30:.2f} GiB/s), "
            f"lookup+pin {t_lookup * 1e3:.2f} ms, load {t_load * 1e3:.1f} ms ({nbytes / t_load / 2**30:.2f} GiB/s)"
        )
    a.close()
    b.close()


def test_hicache_backend_cpu_throughput(world, capsys):
    ns = uuid.uuid4().hex[:8]
    import numpy as np

    pool = sh.HostPool(num_pages=64, page_size=64, layer_num=8, head_num=8, head_dim=128)
    b = sh.make_backend(world.url("kv"), pool, extra={"maru_namespace": ns})
    keys = sh.page_keys(list(range(64 * 64)), 64)
    for p in range(64):
        sh.fill(pool, p * 64, seed=p)
    ix = np.arange(64 * 64)
    t0 = time.perf_counter()
    assert all(b.batch_set_v1(keys, ix))
    t_set = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert b.batch_exists(keys) == 64
    t_exists = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert all(b.batch_get_v1(keys, ix))
    t_get = time.perf_counter() - t0
    nbytes = pool.kv_buffer.nbytes
    with capsys.disabled():
        print(
            f"\nhicache backend (CPU): 64 pages, {nbytes >> 20} MiB: batch_set_v1 {t_set * 1e3:.1f} ms "
            f"({nbytes / t_set / 2**30:.2f} GiB/s), batch_exists {t_exists * 1e6:.0f} us, "
            f"batch_get_v1 {t_get * 1e3:.1f} ms ({nbytes / t_get / 2**30:.2f} GiB/s)"
        )
    b.close()

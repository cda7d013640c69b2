"""LMCache's real MaruBackend running on this package and a real maru-fs mount.

Needs ``torch`` and ``lmcache`` (see tests/lmcache/run.sh, which installs them into a
venv and runs this file); skipped with a message when they do not import.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

try:
    import torch
    from lmcache.utils import CacheEngineKey
    from lmcache.v1.config import LMCacheEngineConfig
    from lmcache.v1.metadata import LMCacheMetadata
    from lmcache.v1.pin_monitor import PinMonitor
    from lmcache.v1.storage_backend.maru_backend import MaruBackend
except Exception as e:  # ImportError, or lmcache failing to initialise without its extras
    pytest.skip(
        f"SKIP: LMCache integration test needs torch and lmcache ({type(e).__name__}: {e}); "
        "run python/tests/lmcache/run.sh to install them into a venv and run it",
        allow_module_level=True,
    )

MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # contains '/', like real model names
CHUNK_TOKENS = 16
KV_SHAPE = (2, 2, CHUNK_TOKENS, 2, 8)  # layers, k/v, tokens, heads, head size
DTYPE = torch.bfloat16


def make_backend(pool_url: str):
    config = LMCacheEngineConfig.from_defaults(
        chunk_size=CHUNK_TOKENS,
        local_cpu=False,
        max_local_cpu_size=0,
        maru_path=pool_url,
        maru_pool_size=0.0625,  # GiB: 64 MiB of staging reserve at most
    )
    metadata = LMCacheMetadata(
        model_name=MODEL,
        world_size=1,
        local_world_size=1,
        worker_id=0,
        local_worker_id=0,
        kv_dtype=DTYPE,
        kv_shape=KV_SHAPE,
        chunk_size=CHUNK_TOKENS,
    )
    PinMonitor.GetOrCreate(config, metadata)  # what LMCacheEngine does at start
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    backend = MaruBackend(config, metadata, loop, dst_device="cpu")
    return backend, metadata, loop, thread


def key(h: int) -> CacheEngineKey:
    return CacheEngineKey(MODEL, 1, 0, h, DTYPE)


@pytest.fixture
def backend(world):
    b, metadata, loop, thread = make_backend(world.url("kv"))
    yield b, metadata
    b.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def in_pool_mapping(ptr: int, pool_dir: str) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= ptr < hi:
                return len(parts) > 5 and parts[5].strip().startswith(pool_dir + "/")
    return False


def fill(obj, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = obj.tensor
    t.copy_(torch.randn(t.shape, generator=g).to(t.dtype))
    return t.clone()


def test_put_get_contains_pin_remove(backend, world):
    b, metadata = backend
    shape = metadata.get_shapes()[0]
    h = 0x1234_5678_9ABC
    obj = b.allocate(shape, DTYPE)
    assert obj is not None
    # allocate is zero-copy: the tensor lives in a staging chunk of the pool
    assert in_pool_mapping(obj.tensor.data_ptr(), str(world.pool("kv")))
    expect = fill(obj, 1)
    b.submit_put_task(key(h), obj).result(timeout=30)
    assert b.contains(key(h)) and not b.contains(key(h + 1))

    got = b.get_blocking(key(h))
    assert got is not None and torch.equal(got.tensor, expect)
    assert got.tensor.shape == shape
    assert in_pool_mapping(got.tensor.data_ptr(), str(world.pool("kv")))
    assert b.get_blocking(key(h + 1)) is None

    assert b.pin(key(h)) and b.contains(key(h), pin=True)
    assert b.remove(key(h)) is False  # pinned: refused
    assert b.unpin(key(h)) and b.unpin(key(h))
    del got, obj
    assert b.remove(key(h)) is True
    assert not b.contains(key(h))


def test_batched_put_and_prefix_lookup_with_partial_last_chunk(backend):
    b, metadata = backend
    base = 0xABCDEF000
    objs, expects = [], []
    for i in range(3):
        tokens = CHUNK_TOKENS if i < 2 else 5  # last chunk is partial
        obj = b.allocate(metadata.get_shapes(tokens)[0], DTYPE)
        expects.append(fill(obj, 10 + i))
        objs.append(obj)
    keys = [key(base + i) for i in range(3)]
    for f in b.batched_submit_put_task(keys, objs):
        f.result(timeout=30)
    assert b.batched_contains(keys + [key(base + 99)]) == 3
    assert b.batched_contains([key(base + 99)] + keys) == 0
    assert b.batched_contains(keys, pin=True) == 3
    b.batched_unpin(keys)

    got = b.batched_get_blocking(keys + [key(base + 99)])
    assert got[3] is None
    for g, e in zip(got[:3], expects):
        assert g.tensor.shape == e.shape and torch.equal(g.tensor, e)
    assert got[2].get_num_tokens() == 5

    fut = asyncio.run_coroutine_threadsafe(b.batched_get_non_blocking("lookup-1", keys), b.loop)
    prefix = fut.result(timeout=30)
    assert len(prefix) == 3 and torch.equal(prefix[0].tensor, expects[0])


SECOND_INSTANCE = """
import sys, hashlib
import torch
sys.path.insert(0, sys.argv[3])
from test_lmcache_backend import make_backend, key
b, _, loop, _ = make_backend(sys.argv[1])
obj = b.get_blocking(key(int(sys.argv[2])))
raw = None if obj is None else obj.tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
print("miss" if raw is None else hashlib.sha256(raw).hexdigest())
b.close()
"""


def test_second_lmcache_instance_reads_what_the_first_stored(backend, world):
    b, metadata = backend
    h = 0x5EC0_0D
    obj = b.allocate(metadata.get_shapes()[0], DTYPE)
    expect = fill(obj, 7)
    b.submit_put_task(key(h), obj).result(timeout=30)
    digest = hashlib.sha256(expect.view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
    import os

    out = world.run_py(SECOND_INSTANCE, world.url("kv"), str(h), os.path.dirname(__file__), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == digest


def test_maru_url_scheme_is_rewritten_to_tcp_and_accepted(world):
    # MaruBackend hands MaruConfig "tcp://" + the rest of maru_path.
    b, _, loop, thread = make_backend(world.url("kv", "maru"))
    try:
        assert b._handler.pool_path == str(world.pool("kv"))
        assert b._handler.healthcheck()
    finally:
        b.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

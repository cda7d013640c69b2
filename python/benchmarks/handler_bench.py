"""Per-call cost of MaruHandler's hot paths on a pool (no timing assertions: figures only).

    python3 python/benchmarks/handler_bench.py maru:///mnt/maru/default [chunk_bytes] [n]

Stores n chunks, then times exists / batch_exists / retrieve / batch_retrieve / pin+unpin
/ alloc+store and prints microseconds per key. Deletes what it stored.
"""

from __future__ import annotations

import gc
import sys
import time
import uuid

from maru import MaruConfig, MaruHandler


def timed(label: str, n: int, fn, rounds: int = 3) -> None:
    """Runs ``fn`` ``rounds`` times; prints the first (cold caches) and best round."""
    times = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    first, best = times[0] / n * 1e6, min(times) / n * 1e6
    print(f"{label:<34} first {first:9.2f} us/key   best {best:9.2f} us/key   ({n} keys)")


def main() -> None:
    url = sys.argv[1]
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 256 << 10
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    tag = uuid.uuid4().hex[:8]
    keys = [f"meta-llama/Llama-3.1-8B@1@0@{tag}{i:08x}@bfloat16" for i in range(n)]
    misses = [k + "-miss" for k in keys]
    cfg = MaruConfig(server_url=url, chunk_size_bytes=chunk, pool_size=n * chunk, reserve_chunks=n)
    h = MaruHandler(cfg)
    if not h.connect():
        sys.exit(f"connect failed: {h.last_error}")
    try:
        while h.get_stats()["handler"]["reserve_ready"] < cfg.reserve_target:
            time.sleep(0.01)

        handles = []
        label = f"alloc ({chunk >> 10} KiB, from the reserve)"
        timed(label, n, lambda: handles.extend(h.alloc(chunk) for _ in keys), 1)
        print(f"  allocs served from the reserve: {h.get_stats()['handler']['allocs_from_reserve']}/{n}")
        for a in handles:
            a.buf[:8] = b"12345678"
        timed("store (publish)", n, lambda: [h.store(k, a) for k, a in zip(keys, handles)], 1)
        del handles[:]
        timed("exists (hit)", n, lambda: [h.exists(k) for k in keys])
        timed("exists (miss)", n, lambda: [h.exists(k) for k in misses])
        timed("batch_exists (hit, one call)", n, lambda: h.batch_exists(keys))
        timed("retrieve (hit, map, no touch)", n, lambda: [h.retrieve(k) for k in keys])
        timed("retrieve (miss)", n, lambda: [h.retrieve(k) for k in misses])
        timed("batch_retrieve (hit, one call)", n, lambda: h.batch_retrieve(keys))

        def pin_unpin():
            h.batch_pin(keys)
            h.batch_unpin(keys)

        timed("batch_pin + batch_unpin", n, pin_unpin)

        def retrieve_touch():
            for k in keys:
                v = h.retrieve(k).view
                s = 0
                for off in range(0, len(v), 4096):
                    s += v[off]

        timed("retrieve + read every page", n, retrieve_touch)
    finally:
        gc.collect()
        for k in keys:
            h.delete(k)
        h.close()


if __name__ == "__main__":
    main()

"""The Python API's cost, against libmaru's Rust API and memcpy in the same run.

    sudo python3 python/benchmarks/api_bench.py [--pool DIR] [--n 300] [--sizes-kib 256,1024,4096]
        [--scale 1000,10000,100000] [--procs 1,2,4] [--json api-bench.json]

Without ``--pool`` it starts its own ``maru-devd`` (a private mount with one pool on
node 0, like the Python tests; needs root and the release binaries:
``cargo build --release -p libmaru -p maru-devd -p maru-bench``). The public
``MaruConfig``/``MaruHandler`` API is the client; every operation is timed alone with
``perf_counter`` and reported as p50/p99 microseconds (no timing assertions anywhere:
figures only). Rows:

* ``store``: ``alloc`` (a ready chunk from the default reserve, refilled untimed
  between samples) + copy into ``handle.buf`` + ``store`` (publish), each part also
  alone, and the copy again into the same chunk (cache-warm); ``alloc (reserve
  empty)`` creates a chunk synchronously (create, fallocate, map, pre-fault);
* ``batch_store xB``: publishing B chunks written beforehand, per key;
* ``exists``/``batch_exists``; ``retrieve`` (-> memoryview, no byte touched) and
  ``batch_retrieve`` cold (``view_cache=0``: every call opens and maps) and warm
  (a view cache holding the batch: the key was mapped before) and with the default
  view cache (which may hold fewer chunks than a batch); each batch against the same
  keys retrieved one by one in a loop;
* ``batch_pin + batch_unpin``: LMCache's lookup pins, pool-wide;
* ``rust …`` rows: ``maru-bench --python-ref`` on the same pool in the same run
  (``Pool::get``, cached get, ``batch_get``, memcpy); ``python memcpy``: a
  memoryview copy of the same size into a warm buffer;
* ``--scale``: the same lookups with 1k/10k/100k 4 KiB chunks in the pool;
* ``--procs``: N processes retrieving at once, aggregate retrieves per second.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

try:
    import maru  # noqa: F401
except ImportError:  # running from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maru import MaruConfig, MaruHandler  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KiB = 1024


# ---------------------------------------------------------------- helpers


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(p * len(s) + 0.999999) - 1))] * 1e6


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, op: str, size: int, samples: list[float], note: str = "", per: int = 1) -> dict:
        """A row from per-call samples (seconds); ``per`` > 1 divides by keys per call."""
        r = {
            "op": op,
            "size": size,
            "n": len(samples),
            "p50_us": pct(samples, 0.5) / per,
            "p99_us": pct(samples, 0.99) / per,
            "note": note,
        }
        self.rows.append(r)
        return r

    def add_row(self, r: dict) -> None:
        self.rows.append(r)

    def get(self, op: str, size: int) -> float | None:
        for r in self.rows:
            if r["op"] == op and r["size"] == size:
                return r["p50_us"]
        return None


def human(size: int) -> str:
    if size == 0:
        return "-"
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    return f"{size >> 10} KiB"


def find_binary(env: str, name: str) -> Path | None:
    if os.environ.get(env):
        p = Path(os.environ[env])
        return p if p.is_file() else None
    dirs = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    dirs.append(REPO / "target")
    for d in dirs:  # release only: a debug build would measure the compiler's debug code
        if (d / "release" / name).is_file():
            return d / "release" / name
    return None


class Daemon:
    """A private maru-devd with one pool (``bench``), stopped and unmounted on exit."""

    def __init__(self, size: str) -> None:
        devd = find_binary("MARU_DEVD", "maru-devd")
        if devd is None:
            sys.exit("maru-devd not found: cargo build --release -p maru-devd (or set MARU_DEVD)")
        self.tmp = Path(tempfile.mkdtemp(prefix="maru-api-bench-"))
        self.mnt, run = self.tmp / "mnt", self.tmp / "run"
        os.environ.setdefault("MARU_PIN_DIR", str(self.tmp / "pins"))
        cfg = self.tmp / "maru.yaml"
        cfg.write_text(
            f"mount: {self.mnt}\npools:\n  - name: bench\n    source: {{numa: {{node: 0}}}}\n"
            f'    size: {size}\n    mode: "1777"\n    eviction: lru\n'
        )
        self.log = open(self.tmp / "daemon.log", "wb")
        self.proc = subprocess.Popen(
            [str(devd), "run", "--config", str(cfg)],
            env=dict(os.environ, MARU_RUNTIME_DIR=str(run)),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        self.run = run
        deadline = time.monotonic() + 30
        while not (self.mnt / "bench").is_dir():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"maru-devd did not start; log: {(self.tmp / 'daemon.log').read_text(errors='replace')}")
            time.sleep(0.05)
        self.pool = self.mnt / "bench"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for d in [self.mnt, *sorted((self.run / "pools").glob("*"))] if (self.run / "pools").is_dir() else [self.mnt]:
            subprocess.run(["umount", "-l", str(d)], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def handler(pool: Path, chunk: int, **kw) -> MaruHandler:
    kw.setdefault("pool_size", 1 << 30)
    h = MaruHandler(MaruConfig(server_url=f"maru://{pool}", chunk_size_bytes=chunk, **kw))
    if not h.connect():
        sys.exit(f"connect failed: {h.last_error}")
    return h


def wait_reserve(h: MaruHandler, timeout: float = 30.0) -> None:
    reserve = h._reserve
    if reserve is None:
        return
    if len(reserve) < reserve._target:
        reserve._wake.set()  # the refill thread otherwise waits for the low-water mark
    deadline = time.monotonic() + timeout
    while len(reserve) < reserve._target and time.monotonic() < deadline:
        time.sleep(0.0005)


def fill(h: MaruHandler, keys: list[str], chunk: int) -> None:
    for k in keys:
        a = h.alloc(chunk)
        a.buf[:8] = b"maru-kv!"
        if not h.store(k, a):
            sys.exit(f"store {k} failed")


# ---------------------------------------------------------------- per size


def each(n: int, items: list, call) -> list[float]:
    """Times ``call(item)`` ``n`` times, cycling through ``items``; what it returns is
    dropped after the clock stops (a view's release is not part of a retrieve)."""
    samples = []
    for i in range(n):
        item = items[i % len(items)]
        t0 = time.perf_counter()
        got = call(item)
        samples.append(time.perf_counter() - t0)
        del got
    return samples


def rounds(count: int, call, pause: float = 0.0, collect: bool = True) -> list[float]:
    """Times ``call()`` ``count`` times: a garbage collection before each (``collect``),
    its result dropped and ``pause`` seconds slept after each, all untimed (the pause
    lets the daemon work off the previous round's releases)."""
    samples = []
    for _ in range(count):
        if collect:
            gc.collect()
        t0 = time.perf_counter()
        got = call()
        samples.append(time.perf_counter() - t0)
        del got
        if pause:
            time.sleep(pause)
    return samples


def loop_rows(t: Table, h: MaruHandler, keys: list[str], size: int, n: int, what: str) -> None:
    """``len(keys)`` single retrieves in a loop, the views kept like a batch's, per
    key: what a batch saves (one call is as exposed to the other tenants' load as
    the whole loop, unlike the p50 of one short call)."""
    samples = rounds(max(5, n // len(keys)), lambda: [h.retrieve(k) for k in keys], pause=0.3)
    t.add(f"{len(keys)} retrieves in a loop ({what}) per key", size, samples, "", per=len(keys))


def size_rows(t: Table, pool: Path, size: int, n: int, batch: int) -> None:
    tag = uuid.uuid4().hex[:8]
    src = bytes(range(256)) * (size // 256)
    # memcpy the way Python copies into a chunk (memoryview slice assignment), warm.
    dst = memoryview(bytearray(size))
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        dst[:] = src
        samples.append(time.perf_counter() - t0)
    t.add("python memcpy", size, samples, "memoryview copy into a warm buffer")

    # store: alloc from the reserve (the default: sized for the chunk) + copy +
    # publish; reserve refilled untimed.
    h = handler(pool, size)
    try:
        wait_reserve(h)
        tot, ta, tw, tp, tr = [], [], [], [], []
        faults = 0
        for i in range(n):
            wait_reserve(h)
            key = f"store/{tag}/{i}"
            t0 = time.perf_counter()
            a = h.alloc(size)
            t1 = time.perf_counter()
            a.buf[:] = src
            t2 = time.perf_counter()
            ok = h.store(key, a)
            t3 = time.perf_counter()
            if not ok:
                sys.exit(f"store {key} failed")
            # The same copy again into the chunk just written (untimed in `store`):
            # what the copy costs once the destination is in the cache.
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t4 = time.perf_counter()
            a.buf[:] = src
            tr.append(time.perf_counter() - t4)
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
            del a
            h.delete(key)
            tot.append(t3 - t0), ta.append(t1 - t0), tw.append(t2 - t1), tp.append(t3 - t2)
        t.add("store", size, tot, "alloc (reserve) + copy into buf + store")
        t.add("  alloc (from the reserve)", size, ta)
        t.add("  copy into buf", size, tw, "a ready chunk: pre-faulted, not in the CPU caches")
        t.add("  copy into buf again", size, tr, f"the same chunk, cache-warm; {faults / n:.1f} page faults a copy")
        t.add("  store (publish)", size, tp)
    finally:
        h.close()

    # batch_store: B chunks allocated and written untimed, published in one call.
    h = handler(pool, size, reserve_chunks=max(8, batch))
    try:
        per_key = []
        for r in range(max(3, n // (4 * batch))):
            wait_reserve(h)
            keys = [f"bstore/{tag}/{r}/{i}" for i in range(batch)]
            handles = [h.alloc(size) for _ in keys]
            for a in handles:
                a.buf[:8] = b"maru-kv!"
            wait_reserve(h)  # the refill would otherwise run during the timed publishes
            t0 = time.perf_counter()
            res = h.batch_store(keys, handles)
            per_key.append(time.perf_counter() - t0)
            if not all(res):
                sys.exit("batch_store failed")
            del handles
            for k in keys:
                h.delete(k)
        t.add(f"batch_store x{batch}", size, per_key, "per key; chunks written beforehand", per=batch)
    finally:
        h.close()

    # alloc with an empty reserve: what the reserve takes off the hot path.
    h = handler(pool, size, reserve_chunks=0)
    try:
        samples = []
        for _ in range(min(n, 100)):
            t0 = time.perf_counter()
            a = h.alloc(size)
            samples.append(time.perf_counter() - t0)
            h.free(a)
            del a
        t.add("alloc (reserve empty)", size, samples, "create + fallocate + map + pre-fault")
    finally:
        h.close()

    # Lookups and retrieves on `batch` published keys.
    keys = [f"vllm@bench@1@0@{tag}{i:08x}/kv@bfloat16" for i in range(batch)]
    misses = [k + "-miss" for k in keys]
    # The warm handler's view cache holds the whole batch (the default may hold fewer
    # large chunks: 256 MiB and 1/32 of the pool).
    w = handler(pool, size, reserve_chunks=0, view_cache=batch)
    cold = handler(pool, size, reserve_chunks=0, view_cache=0)
    try:
        fill(w, keys, size)
        t.add("exists (hit)", size, each(n, keys, w.exists))
        t.add("exists (miss)", size, each(n, misses, w.exists))
        samples = rounds(max(5, n // 10), lambda: w.batch_exists(keys), collect=False)
        t.add(f"batch_exists x{batch}", size, samples, "whole call")
        t.add(f"batch_exists x{batch} per key", size, samples, "", per=batch)

        # Cold: a handler without view cache maps every time.
        t.add("retrieve (cold)", size, each(n, keys, cold.retrieve), "open + map -> memoryview (view_cache=0)")
        loop_rows(t, cold, keys, size, n, "cold")
        # The pause lets the daemon work off the 256 releases, as between batches.
        samples = rounds(max(5, n // batch), lambda: cold.batch_retrieve(keys), pause=0.3)
        t.add(f"batch_retrieve x{batch} (cold) per key", size, samples, "view_cache=0", per=batch)

        # Warm: the default view cache (mapped before).
        for k in keys:
            w.retrieve(k)
        t.add("retrieve (warm)", size, each(n, keys, w.retrieve), "view cache hit: one statx")
        samples = rounds(max(5, n // batch), lambda: w.batch_retrieve(keys), collect=False)
        t.add(f"batch_retrieve x{batch} (warm) per key", size, samples, "view cache hits", per=batch)

        # The default view cache (1/32 of the pool): it may hold fewer chunks than a
        # batch. Singles cycle through the batch's keys, as the batch does.
        d = handler(pool, size, reserve_chunks=0)
        try:
            for k in keys:
                d.retrieve(k)
            samples = each(n, keys, d.retrieve)
            t.add(f"retrieve x{batch} keys (default cache)", size, samples, f"view cache of {d.view_cache}")
            loop_rows(t, d, keys, size, n, "default cache")
            pause = 0.3 if batch > d.view_cache else 0
            samples = rounds(max(5, n // batch), lambda: d.batch_retrieve(keys), pause=pause)
            t.add(
                f"batch_retrieve x{batch} (default cache) per key",
                size,
                samples,
                "uncached: larger than the cache" if batch > d.view_cache else "",
                per=batch,
            )
            if batch > d.view_cache:  # the same batch through the cache, for comparison
                vc, d.view_cache = d.view_cache, 1 << 30
                samples = rounds(max(5, n // batch), lambda: d.batch_retrieve(keys), pause=0.3)
                d.view_cache = vc
                t.add(
                    f"batch_retrieve x{batch} (default cache, cycled) per key",
                    size,
                    samples,
                    "through the cache: each key evicts one",
                    per=batch,
                )
        finally:
            d.close()

        # Pins (LMCache's lookup): batch_pin then batch_unpin of the batch, pool-wide.
        samples, unpins = [], []
        for _ in range(max(5, n // batch)):
            gc.collect()
            t0 = time.perf_counter()
            res = w.batch_pin(keys)
            t1 = time.perf_counter()
            w.batch_unpin(keys)
            unpins.append(time.perf_counter() - t1)
            samples.append(time.perf_counter() - t0)
            if not all(res):
                sys.exit("batch_pin failed")
            time.sleep(0.3)  # the holds' RELEASEs
        t.add(f"batch_pin + batch_unpin x{batch} per key", size, samples, "pool-wide pin counts", per=batch)
        t.add(f"  batch_unpin x{batch} per key", size, unpins, "", per=batch)
    finally:
        for k in keys:
            w.delete(k)
        cold.close()
        w.close()


def rust_rows(t: Table, pool: Path, sizes: list[int], n: int, batch: int) -> None:
    exe = find_binary("MARU_BENCH", "maru-bench")
    if exe is None:
        print("note: maru-bench not found (cargo build --release -p maru-bench): no Rust rows", file=sys.stderr)
        return
    out = subprocess.run(
        [
            str(exe),
            "--python-ref",
            str(pool),
            "--n",
            str(n),
            "--batch",
            str(batch),
            "--sizes-kib",
            ",".join(str(s // KiB) for s in sizes),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        print(f"note: maru-bench --python-ref failed: {out.stderr.strip()}", file=sys.stderr)
        return
    for r in json.loads(out.stdout):
        per = batch if r["op"].startswith("batch") else 1
        suffix = " per key" if per > 1 else ""
        t.add_row(
            {
                "op": f"rust {r['op']}{suffix}",
                "size": r["size"],
                "n": r["n"],
                "p50_us": r["p50_us"] / per,
                "p99_us": r["p99_us"] / per,
                "note": r["note"],
            }
        )


# ---------------------------------------------------------------- scale


def scale_rows(t: Table, pool: Path, counts: list[int], n: int) -> None:
    size = 4 * KiB
    h = handler(pool, size, reserve_chunks=64)
    cold = handler(pool, size, reserve_chunks=0, view_cache=0)
    lib, ptr = h._pool.lib, h._pool.ptr
    tag = uuid.uuid4().hex[:8]
    data = b"s" * size
    stored = 0
    try:
        for count in counts:
            while stored < count:
                k = f"scale/{tag}/{stored:08d}".encode()
                if lib.maru_store(ptr, k, len(k), data, size) != 0:
                    sys.exit(f"filling the pool failed at {stored} chunks")
                stored += 1
            probe = [f"scale/{tag}/{(i * 7919) % count:08d}" for i in range(256)]
            miss = [p + "-miss" for p in probe]
            t.add(f"exists (hit) @{count}", size, each(n, probe, h.exists))
            t.add(f"exists (miss) @{count}", size, each(n, miss, h.exists))
            samples = rounds(max(5, n // 10), lambda: h.batch_exists(probe), collect=False)
            t.add(f"batch_exists x256 @{count}", size, samples, "whole call")
            t.add(f"retrieve (cold) @{count}", size, each(n, probe, cold.retrieve))
            for p in probe:
                h.retrieve(p)  # mapped before: the view cache
            t.add(f"retrieve (warm) @{count}", size, each(n, probe, h.retrieve))
            samples = []
            for i in range(min(n, 200)):
                wait_reserve(h)
                key = f"scale-store/{tag}/{count}/{i}"
                t0 = time.perf_counter()
                a = h.alloc(size)
                a.buf[:] = data
                h.store(key, a)
                samples.append(time.perf_counter() - t0)
                del a
                h.delete(key)
            t.add(f"store @{count}", size, samples, "alloc (reserve) + copy + store")
    finally:
        for i in range(stored):
            k = f"scale/{tag}/{i:08d}".encode()
            lib.maru_remove(ptr, k, len(k))
        cold.close()
        h.close()


# ---------------------------------------------------------------- concurrency


def _client(pool: str, keys: list[str], size: int, view_cache: int | None, start: float, secs: float, q) -> None:
    h = handler(Path(pool), size, reserve_chunks=0, view_cache=view_cache)
    for k in keys:  # warm the cache (when on) before the clock starts
        if view_cache != 0:
            h.retrieve(k)
    while time.time() < start:
        time.sleep(0.001)
    done, i, end = 0, 0, start + secs
    while time.time() < end:
        info = h.retrieve(keys[i % len(keys)])
        del info
        done += 1
        i += 1
    h.close()
    q.put(done)


def concurrency_rows(pool: Path, procs: list[int], secs: float) -> list[dict]:
    size = 256 * KiB
    tag = uuid.uuid4().hex[:8]
    keys = [f"conc/{tag}/{i}" for i in range(256)]
    h = handler(pool, size, reserve_chunks=0)
    fill(h, keys, size)
    ctx = mp.get_context("spawn")
    out = []
    try:
        for mode, vc in (("cold (view_cache=0)", 0), ("warm (view cache)", None)):
            for p in procs:
                q = ctx.Queue()
                start = time.time() + 1.5 + 0.3 * p
                ps = [ctx.Process(target=_client, args=(str(pool), keys, size, vc, start, secs, q)) for _ in range(p)]
                for x in ps:
                    x.start()
                total = sum(q.get(timeout=120) for _ in ps)
                for x in ps:
                    x.join()
                out.append({"mode": mode, "procs": p, "retrieves_per_s": total / secs})
    finally:
        for k in keys:
            h.delete(k)
        h.close()
    return out


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=Path, help="an existing pool directory (default: start a private maru-devd)")
    ap.add_argument("--n", type=int, default=300, help="samples per row")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes-kib", default="256,1024,4096")
    ap.add_argument("--scale", default="1000,10000,100000", help="chunks in the pool for the scale rows ('' = skip)")
    ap.add_argument("--procs", default="1,2,4", help="concurrent client processes ('' = skip)")
    ap.add_argument("--secs", type=float, default=2.0, help="seconds per concurrency measurement")
    ap.add_argument("--json", type=Path, default=Path("api-bench.json"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the daemon is stopped
    lib = find_binary("MARU_LIBRARY", "libmaru.so")
    if lib is None:
        sys.exit("libmaru.so (release) not found: cargo build --release -p libmaru (or set MARU_LIBRARY)")
    os.environ["MARU_LIBRARY"] = str(lib)
    sizes = [int(s) * KiB for s in args.sizes_kib.split(",") if s]
    daemon = None if args.pool else Daemon("6GiB")
    pool = args.pool or daemon.pool
    t = Table()
    conc: list[dict] = []
    load0 = os.getloadavg()[0]
    try:
        if sizes:
            rust_rows(t, pool, sizes, args.n, args.batch)
        for size in sizes:
            print(f"api-bench: {human(size)}", file=sys.stderr)
            size_rows(t, pool, size, args.n, args.batch)
        if args.scale:
            print("api-bench: scale", file=sys.stderr)
            scale_rows(t, pool, [int(c) for c in args.scale.split(",")], args.n)
        if args.procs:
            print("api-bench: concurrent clients", file=sys.stderr)
            conc = concurrency_rows(pool, [int(p) for p in args.procs.split(",")], args.secs)
    finally:
        if daemon is not None:
            daemon.stop()
    load1 = os.getloadavg()[0]

    def ratio(r: dict) -> str:
        op, size, v = r["op"], r["size"], r["p50_us"]
        ref = None
        if op.startswith("retrieve (cold)") and not op.count("@"):
            ref, what = t.get("rust get", size), "rust get"
        elif op == "retrieve (warm)":
            ref, what = t.get("rust get (view cache hit)", size), "rust cached get"
        elif op.startswith("batch_retrieve") and "(cold)" in op:
            ref, what = t.get(f"{args.batch} retrieves in a loop (cold) per key", size), "loop of singles"
        elif op.startswith("batch_retrieve") and "(warm)" in op:
            ref, what = t.get("retrieve (warm)", size), "single warm"
        elif op.startswith("batch_retrieve") and "(default cache" in op:
            ref, what = t.get(f"{args.batch} retrieves in a loop (default cache) per key", size), "loop of singles"
        elif op in ("store", "  copy into buf", "  copy into buf again"):
            ref, what = t.get("rust memcpy", size), "rust memcpy"
        elif op.startswith("batch_store"):
            ref, what = t.get("  store (publish)", size), "single publish"
        if not ref:
            return ""
        return f"{v / ref:.2f}x {what}"

    print(f"\nload average {load0:.1f} -> {load1:.1f}; n = {args.n}\n")
    print("| operation | size | n | p50 µs | p99 µs | ratio (p50) | note |\n|---|---|---|---:|---:|---|---|")
    for r in t.rows:
        print(
            f"| {r['op']} | {human(r['size'])} | {r['n']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {ratio(r)} | {r['note']} |"
        )
    if conc:
        print("\n| concurrent clients | processes | retrieves/s (all) | per process |\n|---|---:|---:|---:|")
        for c in conc:
            print(
                f"| {c['mode']} | {c['procs']} | {c['retrieves_per_s']:.0f} | {c['retrieves_per_s'] / c['procs']:.0f} |"
            )
    args.json.write_text(
        json.dumps({"load": [load0, load1], "n": args.n, "rows": t.rows, "concurrency": conc}, indent=1)
    )
    print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

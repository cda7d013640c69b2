//! The libmaru operations, timed on one pool.

use crate::setup::pmd_mapped_kib;
use crate::stats::{Samples, Summary};
use crate::Row;
use anyhow::{bail, Context, Result};
use maru::{Pool, Publish, UringPinner};
use std::hint::black_box;
use std::path::Path;
use std::process::Command;

/// Iterations of the batch-get ×256 measurement (each maps 256 chunks).
const BATCH_GET_MAX_ITERS: usize = 200;

/// Sums the bytes as u64 words (reads every byte once).
fn sum(bytes: &[u8]) -> u64 {
    let (head, words, tail) = crate::sys::as_words(bytes);
    let mut s = 0u64;
    for &w in words {
        s = s.wrapping_add(w);
    }
    for &b in head.iter().chain(tail) {
        s = s.wrapping_add(u64::from(b));
    }
    s
}

fn row(backend: &str, op: &str, size: usize, stats: Summary, note: &str) -> Row {
    Row {
        backend: backend.to_string(),
        op: op.to_string(),
        size,
        stats,
        note: note.to_string(),
    }
}

/// Publishes `src` under `key` (a fresh chunk each time).
fn put(pool: &Pool, key: &[u8], src: &[u8]) -> Result<()> {
    let mut c = pool.create(src.len())?;
    c.as_mut_slice().copy_from_slice(src);
    if c.publish(key)?.outcome() != Publish::Published {
        bail!(
            "key {} already existed in the benchmark pool; use an empty pool",
            String::from_utf8_lossy(key)
        );
    }
    Ok(())
}

/// Times `Pool::store` of `src` under `n` fresh keys `<prefix>/<size>/<i>`, each
/// removed afterwards; `before` runs ahead of each store. Only the store is timed.
fn time_stores(
    pool: &Pool,
    prefix: &str,
    src: &[u8],
    n: usize,
    mut before: impl FnMut() -> Result<()>,
) -> Result<Summary> {
    let size = src.len();
    let mut samples = Samples::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}/{size}/{i}").into_bytes();
        before()?;
        if samples.time(|| pool.store(&key, src))? != Publish::Published {
            bail!("{prefix}/{size}/{i} already existed");
        }
        pool.remove(&key)?;
    }
    Ok(samples.summary())
}

/// Runs every operation at every size on the pool at `path`.
pub fn run(
    backend: &str,
    path: &Path,
    sizes: &[usize],
    n: usize,
    pin_bytes: usize,
) -> Result<Vec<Row>> {
    let pool = Pool::open(path).context("opening the benchmark pool")?;
    let mut rows = Vec::new();
    for &size in sizes {
        eprintln!("maru-bench: {backend}: {size} bytes");
        let src: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
        let k = n.min(256);
        let keys: Vec<Vec<u8>> = (0..k)
            .map(|i| format!("vllm@bench@1@0@{size:x}{i:08x}/kv@bfloat16").into_bytes())
            .collect();

        // store = create + copy + publish; delete = unlink of the unpinned key.
        let (mut store, mut delete) = (Samples::with_capacity(n), Samples::with_capacity(n));
        for i in 0..n {
            let key = format!("store/{size}/{i}").into_bytes();
            let chunk = store.time(|| -> Result<maru::Sealed> {
                let mut c = pool.create(size)?;
                c.as_mut_slice().copy_from_slice(&src);
                Ok(c.publish(&key)?)
            })?;
            drop(chunk);
            if !delete.time(|| pool.remove(&key))? {
                bail!("store/{size}/{i} vanished before delete");
            }
        }
        rows.push(row(
            backend,
            "store",
            size,
            store.summary(),
            "Pool::create + memcpy into the mapping + publish",
        ));
        rows.push(row(
            backend,
            "delete",
            size,
            delete.summary(),
            "remove an unpinned key",
        ));

        // store by copy-in: write(2) into a new chunk and publish, no mapping.
        let copy_in = time_stores(&pool, "copyin", &src, n, || Ok(()))?;
        rows.push(row(
            backend,
            "store (copy-in)",
            size,
            copy_in,
            "Pool::store: create + write(2) + publish",
        ));

        // store into a chunk created beforehand (a writer's reserve of ready chunks).
        let mut reserved = Samples::with_capacity(n);
        for i in 0..n {
            let key = format!("reserved/{size}/{i}").into_bytes();
            let mut c = pool.create(size)?;
            let c = reserved.time(|| -> Result<maru::Sealed> {
                c.as_mut_slice().copy_from_slice(&src);
                Ok(c.publish(&key)?)
            })?;
            drop(c);
            pool.remove(&key)?;
        }
        rows.push(row(
            backend,
            "store (pre-created chunk)",
            size,
            reserved.summary(),
            "copy + publish; create untimed",
        ));

        // store through libmaru's reserve (Pool::reserve, refilled untimed):
        // Pool::store copies into a reserved chunk and publishes it.
        let from_reserve = time_stores(&pool, "reserve", &src, n, || {
            pool.reserve(size, 1)?;
            Ok(())
        })?;
        rows.push(row(
            backend,
            "store (reserve)",
            size,
            from_reserve,
            "Pool::store taking a reserved chunk: copy + publish + unmap",
        ));

        // The copy alone into a ready chunk (no publish): the floor under
        // every store row (its pages are allocated, mapped and not in cache).
        let mut copy_only = Samples::with_capacity(n);
        for _ in 0..n {
            let mut c = pool.create(size)?;
            copy_only.time(|| c.as_mut_slice().copy_from_slice(&src));
        }
        rows.push(row(
            backend,
            "copy into a ready chunk",
            size,
            copy_only.summary(),
            "memcpy only, no publish: the floor of every store row",
        ));

        for key in &keys {
            put(&pool, key, &src)?;
        }

        let mut retrieve = Samples::with_capacity(n);
        for i in 0..n {
            let v = retrieve.time(|| pool.get(&keys[i % k]))?;
            let v = v.context("a published key is missing")?;
            black_box(v.as_ptr());
        }
        rows.push(row(
            backend,
            "retrieve",
            size,
            retrieve.summary(),
            "key -> mapped pointer, no copy",
        ));

        // The same with the pool's view cache: repeated gets of immutable chunks.
        pool.set_view_cache(k);
        for key in &keys {
            pool.get(key)?;
        }
        let mut cached = Samples::with_capacity(n);
        for i in 0..n {
            let v = cached.time(|| pool.get(&keys[i % k]))?;
            black_box(v.context("a published key is missing")?.as_ptr());
        }
        pool.set_view_cache(0);
        rows.push(row(
            backend,
            "retrieve (view cache hit)",
            size,
            cached.summary(),
            "stat + cached mapping",
        ));

        let (mut touch, mut warm) = (Samples::with_capacity(n), Samples::with_capacity(n));
        let mut check = 0u64;
        for i in 0..n {
            let v = pool
                .get(&keys[i % k])?
                .context("a published key is missing")?;
            check = check.wrapping_add(touch.time(|| sum(black_box(v.as_slice()))));
            check = check.wrapping_add(warm.time(|| sum(black_box(v.as_slice()))));
        }
        black_box(check);
        rows.push(row(
            backend,
            "touch (sum bytes, warm)",
            size,
            warm.summary(),
            "second read of every byte of the same view",
        ));
        rows.push(row(
            backend,
            "touch (sum bytes)",
            size,
            touch.summary(),
            "first read of every byte of a fresh view (page faults included)",
        ));

        let mut exists = Samples::with_capacity(n);
        let (mut miss, mut miss_new) = (Samples::with_capacity(n), Samples::with_capacity(n));
        for i in 0..n {
            if !exists.time(|| pool.contains(&keys[i % k]))? {
                bail!("a published key is missing");
            }
            if miss.time(|| pool.contains(b"absent/always-the-same"))? {
                bail!("an absent key is present");
            }
            let absent = format!("absent/{size}/{i}");
            if miss_new.time(|| pool.contains(absent.as_bytes()))? {
                bail!("an absent key is present");
            }
        }
        rows.push(row(backend, "exists (hit)", size, exists.summary(), ""));
        rows.push(row(
            backend,
            "exists (miss)",
            size,
            miss.summary(),
            "a key looked up before (cached negative entry)",
        ));
        rows.push(row(
            backend,
            "exists (miss, first lookup)",
            size,
            miss_new.summary(),
            "a never-seen key",
        ));

        let mut batch_exists = Samples::with_capacity(n);
        for _ in 0..n {
            let present = batch_exists.time(|| pool.batch_contains(&keys))?;
            black_box(present);
        }
        let op = format!("batch exists x{k}");
        rows.push(row(backend, &op, size, batch_exists.summary(), ""));

        let iters = n.min(BATCH_GET_MAX_ITERS);
        let mut batch_get = Samples::with_capacity(iters);
        for _ in 0..iters {
            let views = batch_get.time(|| pool.batch_get(&keys))?;
            if views.iter().any(Option::is_none) {
                bail!("a published key is missing");
            }
        }
        let op = format!("batch get x{k}");
        rows.push(row(
            backend,
            &op,
            size,
            batch_get.summary(),
            "map all, release untimed",
        ));

        let mut pin = Samples::with_capacity(n);
        for i in 0..n {
            pin.time(|| -> Result<()> {
                let v = pool
                    .get(&keys[i % k])?
                    .context("a published key is missing")?;
                drop(black_box(v));
                Ok(())
            })?;
        }
        rows.push(row(
            backend,
            "pin/unpin",
            size,
            pin.summary(),
            "pin = open+map (no eviction while mapped), unpin = unmap",
        ));

        rows.extend(long_term_pin(backend, &pool, size, n)?);

        let child = second_process(path, size, k, n)?;
        rows.push(row(
            backend,
            "retrieve (2nd process)",
            size,
            child,
            "another process maps the chunks",
        ));

        for key in &keys {
            pool.remove(key)?;
        }
    }
    rows.extend(long_term_pin(backend, &pool, pin_bytes, n)?);
    Ok(rows)
}

/// io_uring buffer registration (a long-term pin) of a staging chunk's mapping.
fn long_term_pin(backend: &str, pool: &Pool, size: usize, n: usize) -> Result<Vec<Row>> {
    let chunk = pool.create(size)?;
    let huge = pmd_mapped_kib(chunk.as_ptr()).unwrap_or(0);
    let mut pinner = UringPinner::new()?;
    let (mut reg, mut unreg) = (Samples::with_capacity(n), Samples::with_capacity(n));
    for _ in 0..n {
        let guard = reg.time(|| pinner.pin(chunk.as_slice()))?;
        unreg.time(|| guard.unpin())?;
    }
    let note = format!(
        "io_uring register_buffers; {} MiB of the mapping on 2 MiB pages",
        huge >> 10
    );
    Ok(vec![
        row(backend, "long-term pin", size, reg.summary(), &note),
        row(
            backend,
            "long-term unpin",
            size,
            unreg.summary(),
            "io_uring unregister_buffers",
        ),
    ])
}

/// Runs the retrieve loop in a second process (this binary, hidden flags).
fn second_process(pool: &Path, size: usize, keys: usize, n: usize) -> Result<Summary> {
    let exe = std::env::current_exe().context("locating maru-bench")?;
    let out = Command::new(exe)
        .arg("--child-retrieve")
        .arg(pool)
        .args(["--child-size", &size.to_string()])
        .args(["--child-keys", &keys.to_string()])
        .args(["--n", &n.to_string()])
        .output()
        .context("running the second-process retrieve")?;
    if !out.status.success() {
        bail!(
            "second-process retrieve failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the second process's result")
}

/// The second process: retrieves the parent's keys and prints a JSON summary.
pub fn child_retrieve(pool: &Path, size: usize, k: usize, n: usize) -> Result<()> {
    let pool = Pool::open(pool)?;
    let keys: Vec<Vec<u8>> = (0..k.max(1))
        .map(|i| format!("vllm@bench@1@0@{size:x}{i:08x}/kv@bfloat16").into_bytes())
        .collect();
    let mut s = Samples::with_capacity(n);
    for i in 0..n {
        let v = s.time(|| pool.get(&keys[i % keys.len()]))?;
        let v = v.context("the parent's key is missing in the second process")?;
        if v.len() != size {
            bail!("second process saw {} bytes, expected {size}", v.len());
        }
    }
    println!("{}", serde_json::to_string(&s.summary())?);
    Ok(())
}

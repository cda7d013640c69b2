//! The Rust reference rows of the Python benchmark (`python/benchmarks/api_bench.py`):
//! `Pool::get`, `Pool::batch_get` and memcpy, measured on the Python benchmark's pool
//! in the same run, so its table can give "Python / Rust" ratios.

use crate::stats::Samples;
use crate::Row;
use anyhow::{bail, Context, Result};
use maru::{Pool, Publish};
use std::hint::black_box;
use std::path::Path;

fn row(op: &str, size: usize, s: Samples, note: &str) -> Row {
    Row {
        backend: "rust".into(),
        op: op.into(),
        size,
        stats: s.summary(),
        note: note.into(),
    }
}

/// Publishes `k` keys of each size, times get / cached get / batch get / memcpy,
/// removes the keys and prints the rows as JSON.
pub fn run(path: &Path, sizes: &[usize], n: usize, batch: usize) -> Result<()> {
    let pool = Pool::open(path).context("opening the benchmark pool")?;
    let mut rows = Vec::new();
    for &size in sizes {
        let src: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
        let k = batch.max(1);
        let pid = std::process::id();
        let keys: Vec<Vec<u8>> = (0..k)
            .map(|i| format!("rustref/{pid}/{size}/{i}").into_bytes())
            .collect();
        for key in &keys {
            if pool.store(key, &src)? != Publish::Published {
                bail!("{} already existed", String::from_utf8_lossy(key));
            }
        }
        let mut get = Samples::with_capacity(n);
        for i in 0..n {
            let v = get.time(|| pool.get(&keys[i % k]))?;
            if v.is_none() {
                bail!("a reference key vanished");
            }
        }
        rows.push(row(
            "get",
            size,
            get,
            "Pool::get (open + statx + mmap), view released untimed",
        ));

        pool.set_view_cache(k);
        for key in &keys {
            drop(pool.get(key)?);
        }
        let mut cached = Samples::with_capacity(n);
        for i in 0..n {
            black_box(cached.time(|| pool.get(&keys[i % k]))?);
        }
        rows.push(row(
            "get (view cache hit)",
            size,
            cached,
            "Pool::get of a cached mapping: one statx",
        ));
        let mut warm_batch = Samples::with_capacity(n.div_ceil(k).max(5));
        for _ in 0..n.div_ceil(k).max(5) {
            black_box(warm_batch.time(|| pool.batch_get(&keys))?);
        }
        rows.push(row(
            &format!("batch get x{k} (view cache hit)"),
            size,
            warm_batch,
            "whole call",
        ));
        pool.set_view_cache(0);

        let mut batch_get = Samples::with_capacity(n.div_ceil(k).max(5));
        for _ in 0..n.div_ceil(k).max(5) {
            black_box(batch_get.time(|| pool.batch_get(&keys))?);
        }
        rows.push(row(
            &format!("batch get x{k}"),
            size,
            batch_get,
            "whole call, views released untimed",
        ));

        let mut dst = vec![1u8; size];
        let mut memcpy = Samples::with_capacity(n);
        for _ in 0..n {
            memcpy.time(|| dst.copy_from_slice(black_box(&src)));
            black_box(&dst);
        }
        rows.push(row(
            "memcpy",
            size,
            memcpy,
            "into an already-faulted buffer",
        ));
        for key in &keys {
            pool.remove(key)?;
        }
    }
    println!("{}", serde_json::to_string(&rows)?);
    Ok(())
}

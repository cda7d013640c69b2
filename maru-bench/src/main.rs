//! maru-bench: measures libmaru's chunk operations the way the original Maru's
//! public API is used (store, retrieve, exists, batches, pin, delete, a second
//! process), with memcpy and loopback-TCP baselines in the same run. Prints a
//! table and writes JSON.

// Raw system calls and mapped memory live in `sys` only.
#![deny(unsafe_code)]

mod baseline;
mod breakdown;
mod ops;
mod reference;
mod setup;
mod stats;
#[allow(unsafe_code)] // the one system layer
mod sys;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmark libmaru against memcpy and loopback TCP")]
struct Args {
    /// Iterations per operation and size.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Chunk sizes in KiB.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096")]
    sizes_kib: Vec<usize>,
    /// Pools to measure: maru-fs (own mount over a huge-page tmpfs), devdax (own mount of a
    /// devdax pool on a stand-in device file in that tmpfs) and/or tmpfs (no FUSE).
    #[arg(long, value_delimiter = ',', default_value = "maru-fs")]
    backend: Vec<String>,
    /// Transparent huge pages of the benchmark's tmpfs (`huge=` mount option:
    /// within_size, always, advise, never).
    #[arg(long, default_value = "within_size")]
    huge: String,
    /// Use this existing pool directory instead of mounting one.
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "maru-bench.json")]
    json: PathBuf,
    /// Also time the system calls behind store and retrieve one by one.
    #[arg(long)]
    breakdown: bool,
    /// Size of the long-term pin (io_uring registration) chunk, in MiB.
    #[arg(long, default_value_t = 32)]
    pin_mib: usize,
    /// Internal: run the client side (all pool operations) against this pool
    /// in this process and print the rows as JSON.
    #[arg(long, hide = true)]
    client_run: Option<PathBuf>,
    /// Internal: backend name of the client's rows.
    #[arg(long, hide = true, default_value = "")]
    client_backend: String,
    /// Print the Rust reference rows of the Python benchmark (get, cached get,
    /// batch get, memcpy) measured on this existing pool, as JSON.
    #[arg(long)]
    python_ref: Option<PathBuf>,
    /// Keys per batch (and keys cycled over) in `--python-ref`.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Internal: run the second-process retrieve against this pool and print JSON.
    #[arg(long, hide = true)]
    child_retrieve: Option<PathBuf>,
    /// Internal: chunk size of the child's keys.
    #[arg(long, hide = true, default_value_t = 0)]
    child_size: usize,
    /// Internal: number of keys the child cycles over.
    #[arg(long, hide = true, default_value_t = 0)]
    child_keys: usize,
}

/// One row of the report.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Row {
    /// Pool kind or "baseline".
    pub backend: String,
    /// Operation name.
    pub op: String,
    /// Chunk size in bytes (0 where not applicable).
    pub size: usize,
    /// Latency summary.
    #[serde(flatten)]
    pub stats: stats::Summary,
    /// Remark (what exactly was timed).
    pub note: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(pool) = &args.child_retrieve {
        return ops::child_retrieve(pool, args.child_size, args.child_keys, args.n);
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let sizes: Vec<usize> = args.sizes_kib.iter().map(|k| k << 10).collect();
    if let Some(pool) = &args.python_ref {
        return reference::run(pool, &sizes, args.n, args.batch);
    }
    if let Some(pool) = &args.client_run {
        let rows = client_rows(&args.client_backend, pool, &sizes, &args)?;
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut pools = Vec::new();
    if let Some(p) = &args.pool {
        pools.push(("existing".to_string(), setup::BenchPool::existing(p)));
    } else {
        for b in &args.backend {
            pools.push((b.clone(), setup::BenchPool::new(b, &args.huge)?));
        }
    }
    let mut descriptions = Vec::new();
    for (name, pool) in &pools {
        eprintln!("maru-bench: {name}: {}", pool.description);
        descriptions.push(serde_json::json!({"backend": name, "pool": pool.description}));
        rows.extend(run_client(name, &pool.path, &args)?);
    }
    drop(pools);
    eprintln!("maru-bench: baselines");
    rows.extend(baseline::run(&sizes, args.n)?);

    print_table(&rows);
    let report = serde_json::json!({
        "machine": setup::machine(),
        "n": args.n,
        "pools": descriptions,
        "method": "the pool operations run in a separate client process (the FUSE server runs in this one); \
                   each operation timed individually with Instant (CLOCK_MONOTONIC) in one thread; \
                   p50/p99 over n iterations (batch get: min(n,200)); untimed setup/cleanup around each sample",
        "rows": rows,
    });
    std::fs::write(&args.json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("maru-bench: wrote {}", args.json.display());
    Ok(())
}

/// Every pool operation at every size, in this process.
fn client_rows(
    backend: &str,
    pool: &std::path::Path,
    sizes: &[usize],
    args: &Args,
) -> Result<Vec<Row>> {
    let mut rows = ops::run(backend, pool, sizes, args.n, args.pin_mib << 20)?;
    // The breakdown maps chunk files directly, which a devdax pool refuses (its
    // clients map the device): only its API rows are measured.
    if args.breakdown && backend == "devdax" {
        eprintln!("maru-bench: --breakdown skipped for devdax (chunk files cannot be mapped)");
    } else if args.breakdown {
        for &size in sizes {
            rows.extend(breakdown::run(backend, pool, size, args.n)?);
        }
    }
    Ok(rows)
}

/// Runs the client side in a separate process, as real clients are: a client
/// in the FUSE server's own process would share its address space (mmap lock,
/// TLB shootdowns) with the server threads.
fn run_client(backend: &str, pool: &std::path::Path, args: &Args) -> Result<Vec<Row>> {
    let exe = std::env::current_exe().context("locating maru-bench")?;
    let sizes: Vec<String> = args.sizes_kib.iter().map(|s| s.to_string()).collect();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--client-run")
        .arg(pool)
        .args(["--client-backend", backend])
        .args(["--n", &args.n.to_string()])
        .args(["--sizes-kib", &sizes.join(",")])
        .args(["--pin-mib", &args.pin_mib.to_string()])
        .stderr(std::process::Stdio::inherit());
    if args.breakdown {
        cmd.arg("--breakdown");
    }
    let out = cmd
        .output()
        .context("running the benchmark client process")?;
    if !out.status.success() {
        bail!("the benchmark client process failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("parsing the client process's rows")
}

fn human(size: usize) -> String {
    match size {
        0 => "-".into(),
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s % 1024 == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| backend | operation | size | n | p50 µs | p99 µs | mean µs | note |\n|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            r.backend,
            r.op,
            human(r.size),
            r.stats.n,
            r.stats.p50_us,
            r.stats.p99_us,
            r.stats.mean_us,
            r.note
        );
    }
}

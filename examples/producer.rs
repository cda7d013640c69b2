//! Producer: writes chunks straight into a pool and publishes them.
//!
//! `cargo run -p libmaru --example producer -- <pool-dir> <prefix> [count] [size]`
//! publishes `<prefix>/0 .. <prefix>/<count-1>`, each `size` bytes (default 4
//! chunks of 1 MiB) filled with a pattern the consumer checks.

use anyhow::{bail, Context, Result};
use maru::key::KeyName;
use maru::{Pool, Publish};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: producer <pool-dir> <prefix> [count] [size-bytes]");
    }
    let count: usize = args.get(3).map_or(Ok(4), |s| s.parse()).context("count")?;
    let size: usize = args
        .get(4)
        .map_or(Ok(1 << 20), |s| s.parse())
        .context("size")?;
    let pool = Pool::open(&args[1]).with_context(|| format!("opening the pool {}", args[1]))?;
    println!(
        "producer (pid {}): writing {count} chunks of {size} bytes into {}",
        std::process::id(),
        args[1]
    );
    for i in 0..count {
        let key = format!("{}/{i}", args[2]);
        let mut chunk = pool
            .create(size)
            .with_context(|| format!("creating chunk for {key}"))?;
        // Write in place: these are the pool's pages, no copy follows.
        for (j, b) in chunk.as_mut_slice().iter_mut().enumerate() {
            *b = (j as u8) ^ (i as u8);
        }
        // Publishing seals the chunk: the handle it returns only reads.
        let sealed = chunk
            .publish(key.as_bytes())
            .with_context(|| format!("publishing {key}"))?;
        match sealed.outcome() {
            // Keys are escaped into file names ('/' -> "%2F"): `ls` shows the file name.
            Publish::Published => println!(
                "  published key {key}: file {}",
                KeyName::new(key.as_bytes())?.display()
            ),
            Publish::AlreadyExists => {
                println!("  key {key} already existed: kept the first writer's chunk")
            }
        }
    }
    Ok(())
}

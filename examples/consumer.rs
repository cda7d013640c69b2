//! Consumer: maps chunks published by the producer (another process) and checks them.
//!
//! `cargo run -p libmaru --example consumer -- <pool-dir> <prefix> [count]`
//! looks the keys up as a prefix (like a prefix-cache lookup), maps the present
//! ones read-only (no copy) and verifies their bytes.

use anyhow::{bail, Context, Result};
use maru::Pool;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: consumer <pool-dir> <prefix> [count]");
    }
    let count: usize = args.get(3).map_or(Ok(4), |s| s.parse()).context("count")?;
    let pool = Pool::open(&args[1]).with_context(|| format!("opening the pool {}", args[1]))?;
    let keys: Vec<String> = (0..count).map(|i| format!("{}/{i}", args[2])).collect();
    let views = pool.prefix_get(&keys).context("looking the keys up")?;
    println!(
        "consumer (pid {}, uid {}): prefix lookup of {}/0..{}: {} of {count} keys present \
         (counting from the first until one is missing)",
        std::process::id(),
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() },
        args[2],
        count.saturating_sub(1),
        views.len()
    );
    for (i, view) in views.iter().enumerate() {
        let ok = view
            .as_slice()
            .iter()
            .enumerate()
            .all(|(j, &b)| b == (j as u8) ^ (i as u8));
        if !ok {
            bail!("{}: bytes differ from what the producer wrote", keys[i]);
        }
        println!(
            "  {}: {} bytes mapped read-only at {:p} (the producer's pages, not a copy), verified",
            keys[i],
            view.len(),
            view.as_ptr()
        );
    }
    if views.len() < count {
        println!("  {}: not published", keys[views.len()]);
    }
    Ok(())
}

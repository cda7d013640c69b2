//! Mounts maru-fs by hand, for trying it out or measuring it with other tools:
//!
//! ```text
//! cargo run --release -p maru-fs --example mount -- MOUNTPOINT POOL=BACKING_DIR[:CAPACITY_MIB] ...
//! ```
//! Each pool is mode 0777, owned by root, with LRU eviction. Serves until stdin closes
//! (or Enter is pressed), then unmounts.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use maru_fs::{Backing, Eviction, MountOptions, PoolConfig};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mountpoint = PathBuf::from(
        args.next()
            .context("usage: mount MOUNTPOINT POOL=DIR[:MIB]...")?,
    );
    let mut pools = Vec::new();
    for spec in args {
        let Some((name, rest)) = spec.split_once('=') else {
            bail!("pool spec {spec:?} is not NAME=DIR[:MIB]");
        };
        let (dir, mib) = match rest.rsplit_once(':') {
            Some((d, m)) => (
                d,
                m.parse::<u64>()
                    .with_context(|| format!("capacity in {spec:?}"))?,
            ),
            None => (rest, 1024),
        };
        pools.push(PoolConfig {
            eviction: Eviction::Lru,
            mode: 0o777,
            ..PoolConfig::new(name, Backing::Dir(dir.into()), mib << 20)
        });
    }
    let mounted = maru_fs::mount(&MountOptions::new(&mountpoint), pools)
        .with_context(|| format!("mounting on {}", mountpoint.display()))?;
    println!(
        "mounted on {}; press Enter to unmount",
        mountpoint.display()
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    for s in mounted.control().stats() {
        println!("{s:?}");
    }
    mounted.unmount()?;
    Ok(())
}

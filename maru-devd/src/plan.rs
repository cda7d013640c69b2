//! The plan: what the daemon will set up for a checked configuration.

use crate::config::Eviction;
use crate::units::human;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A checked configuration resolved against the host.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mount point of the filesystem.
    pub mount: PathBuf,
    /// Pools, in file order.
    pub pools: Vec<PoolPlan>,
}

/// One pool, resolved.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Directory name under the mount.
    pub name: String,
    /// NUMA node its pages come from.
    pub node: u32,
    /// Why this node (for `auto`).
    pub node_reason: String,
    /// Capacity in bytes.
    pub size: u64,
    /// Pool directory owner.
    pub uid: u32,
    /// Pool directory group.
    pub gid: u32,
    /// Pool directory permission bits.
    pub mode: u32,
    /// Eviction policy.
    pub eviction: Eviction,
    /// Largest chunk size allowed.
    pub max_chunk_size: Option<u64>,
    /// DAX device to turn into system RAM first (opt-in).
    pub reconfigure_devdax: Option<String>,
    /// DAX devices backing the node (hotplug watches them).
    pub devices: Vec<String>,
    /// Things the administrator should know about the pool (not errors): `node: auto` fell
    /// back to node 0, memory in ZONE_MOVABLE. Logged at start and shown by `status`.
    pub warnings: Vec<String>,
}

/// Where a pool's backing tmpfs lives under the runtime directory.
pub fn backing_dir(runtime_dir: &Path, pool: &str) -> PathBuf {
    runtime_dir.join("pools").join(pool)
}

impl Plan {
    /// Every pool's warnings, in pool order.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.pools
            .iter()
            .flat_map(|p| p.warnings.iter().map(String::as_str))
    }

    /// The human-readable plan `check-config` prints.
    pub fn render(&self, runtime_dir: &Path, thp: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mount: {} (FUSE, allow_other, passthrough)",
            self.mount.display()
        );
        for p in &self.pools {
            let _ = writeln!(s, "pool {}:", p.name);
            let _ = writeln!(s, "  source:   numa node {} ({})", p.node, p.node_reason);
            let _ = writeln!(s, "  size:     {}", human(p.size));
            let _ = writeln!(
                s,
                "  backing:  tmpfs at {} (size={}, mpol=bind:{}, huge={thp})",
                backing_dir(runtime_dir, &p.name).display(),
                p.size,
                p.node
            );
            let _ = writeln!(s, "  path:     {}", self.mount.join(&p.name).display());
            let _ = writeln!(
                s,
                "  access:   uid {} gid {} mode {:04o}",
                p.uid, p.gid, p.mode
            );
            let max = p
                .max_chunk_size
                .map_or_else(|| "the pool size".to_string(), human);
            let eviction = match p.eviction {
                Eviction::Lru => "lru (least recently used unpinned chunks make room)",
                Eviction::None => "none (a full pool answers ENOSPC)",
            };
            let _ = writeln!(s, "  eviction: {eviction}, largest chunk: {max}");
            if let Some(d) = &p.reconfigure_devdax {
                let _ = writeln!(
                    s,
                    "  reconfigure: {d} devdax -> system-ram, blocks online as ZONE_NORMAL (before mounting)"
                );
            }
        }
        for w in self.warnings() {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

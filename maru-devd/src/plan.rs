//! The plan: what the daemon will set up for a checked configuration.

use crate::config::{Coherence, DevdaxFormat, Eviction};
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
    /// The cluster shared pools are coordinated through.
    pub cluster: Option<crate::config::ClusterSpec>,
    /// The PEM material of `cluster.tls`, read when the config was checked.
    pub cluster_tls: Option<maru_cluster::Tls>,
    /// The Prometheus endpoint, if the config asks for one.
    pub metrics: Option<crate::config::MetricsSpec>,
}

/// One pool, resolved.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Directory name under the mount.
    pub name: String,
    /// NUMA node its pages come from (a devdax pool: the device's target node, or 0 when
    /// the device does not say; `devdax.target_node` keeps the difference).
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
    /// The device range of a `devdax` pool (`None`: a `numa` pool on a tmpfs).
    pub devdax: Option<DevdaxPlan>,
}

/// Where a `devdax` pool lives, resolved against the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevdaxPlan {
    /// The DAX device (`dax0.0`).
    pub device: String,
    /// Its device node: what maru-fs and libmaru map.
    pub devnode: PathBuf,
    /// Its sysfs directory (maru-fs reads `size` and `align` there).
    pub sysfs_dir: PathBuf,
    /// Byte offset of the pool in the device.
    pub offset: u64,
    /// Bytes of the device the pool uses.
    pub length: u64,
    /// The device's mapping alignment.
    pub align: u64,
    /// NUMA node of the device's memory, if it says.
    pub target_node: Option<u32>,
    /// Whether a blank range is formatted as a new pool.
    pub format: DevdaxFormat,
    /// Check published chunks' data checksums when the pool is opened.
    pub verify_data: bool,
    /// How long another daemon waits for the owner lease's heartbeat before calling
    /// its holder gone.
    pub lease_timeout: std::time::Duration,
    /// Served by several hosts at once, coordinated through the cluster.
    pub shared: bool,
    /// Whether the hardware keeps the hosts' CPU caches coherent.
    pub coherence: Coherence,
}

impl DevdaxPlan {
    /// The pool's byte range in the device.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.length
    }

    /// `bytes START..END` of the device, for messages.
    pub fn bytes(&self) -> String {
        format!("bytes {:?}", self.range())
    }

    /// The maru-fs configuration of this range; `takeover`: take the owner lease from
    /// another host whose heartbeat stood still (the operator said it is gone).
    pub fn fs_config(
        &self,
        takeover: bool,
        shared: Option<maru_fs::devdax::SharedLink>,
    ) -> maru_fs::devdax::DevdaxConfig {
        maru_fs::devdax::DevdaxConfig {
            device: self.devnode.clone(),
            offset: self.offset,
            len: Some(self.length),
            sysfs_dir: Some(self.sysfs_dir.clone()),
            format: self.format,
            verify_data: self.verify_data,
            owner: maru_fs::devdax::OwnerPolicy {
                timeout: self.lease_timeout,
                takeover,
            },
            shared,
            coherence: self.coherence,
            progress: None,
        }
    }

    /// Permission bits of the device node for a pool whose directory has `mode`: read-write
    /// for its owner, root (maru-fs opens it after dropping to CAP_SYS_ADMIN only, without
    /// DAC override), and the group's bits of `mode`; never anything for others, because a
    /// mapping of the node reaches the whole device.
    pub fn node_mode(mode: u32) -> u32 {
        0o600 | (mode & 0o060)
    }
}

/// Where a pool's backing tmpfs lives under the runtime directory.
pub fn backing_dir(runtime_dir: &Path, pool: &str) -> PathBuf {
    runtime_dir.join("pools").join(pool)
}

impl PoolPlan {
    /// The settings a running pool cannot take over from `new` (a reload), as
    /// `what old -> new`; empty when nothing of them changed.
    pub fn changes_to(&self, new: &PoolPlan) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |what: &str, old: String, new: String| {
            if old != new {
                out.push(format!("{what} {old} -> {new}"));
            }
        };
        let max = |m: Option<u64>| m.map_or_else(|| "the pool size".into(), human);
        let range = |d: &Option<DevdaxPlan>| {
            d.as_ref()
                .map_or_else(|| "none".into(), |d| format!("{} {}", d.device, d.bytes()))
        };
        diff("size", human(self.size), human(new.size));
        diff("node", self.node.to_string(), new.node.to_string());
        diff(
            "mode",
            format!("{:04o}", self.mode),
            format!("{:04o}", new.mode),
        );
        diff("owner uid", self.uid.to_string(), new.uid.to_string());
        diff("group gid", self.gid.to_string(), new.gid.to_string());
        diff(
            "eviction",
            format!("{:?}", self.eviction).to_lowercase(),
            format!("{:?}", new.eviction).to_lowercase(),
        );
        diff(
            "max_chunk_size",
            max(self.max_chunk_size),
            max(new.max_chunk_size),
        );
        if self.devdax != new.devdax {
            let (old, new) = (range(&self.devdax), range(&new.devdax));
            out.push(if old == new {
                "devdax format, verify_data or lease_timeout".into()
            } else {
                format!("devdax {old} -> {new}")
            });
        }
        out
    }
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
        if let Some(c) = &self.cluster {
            let _ = writeln!(
                s,
                "cluster: etcd {} as host {} (lease {} s)",
                c.etcd.join(", "),
                c.host.as_deref().unwrap_or("<this host's name>"),
                c.lease_ttl_s
            );
            if let Some(t) = &c.tls {
                let _ = writeln!(
                    s,
                    "  tls:    CA {}; {}",
                    t.ca.display(),
                    match &t.client {
                        Some((cert, key)) => format!(
                            "client certificate {} (key {})",
                            cert.display(),
                            key.display()
                        ),
                        None => "no client certificate".into(),
                    }
                );
            }
        }
        for p in &self.pools {
            let _ = writeln!(s, "pool {}:", p.name);
            match &p.devdax {
                None => {
                    let _ = writeln!(s, "  source:   numa node {} ({})", p.node, p.node_reason);
                    let _ = writeln!(s, "  size:     {}", human(p.size));
                    let _ = writeln!(
                        s,
                        "  backing:  tmpfs at {} (size={}, mpol=bind:{}, huge={thp})",
                        backing_dir(runtime_dir, &p.name).display(),
                        crate::tmpfs::mount_size(p.size),
                        p.node
                    );
                    if !p.devices.is_empty() || p.reconfigure_devdax.is_some() {
                        let _ = writeln!(
                            s,
                            "  hosts:    this host only: node {} is CXL memory onlined as this kernel's RAM; no other host attached to the same device may online or use it (two kernels would own the same pages). Share a device between hosts through a devdax pool",
                            p.node
                        );
                    }
                }
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "  source:   devdax {} ({}), {} ({}), alignment {}",
                        d.device,
                        d.devnode.display(),
                        d.bytes(),
                        human(d.length),
                        human(d.align)
                    );
                    let _ = writeln!(s, "  size:     {}", human(p.size));
                    let format = match d.format {
                        DevdaxFormat::IfBlank => "a blank range is formatted",
                        DevdaxFormat::Never => "a range without a pool header is refused",
                    };
                    let _ = writeln!(
                        s,
                        "  backing:  the device range itself: pool header, chunk index, extents ({format}; data checksums {} at start)",
                        if d.verify_data { "verified" } else { "not verified" }
                    );
                    if d.shared {
                        let _ = writeln!(
                            s,
                            "  shared:   served by every host of the cluster at once: identity, arenas, publishes and removals coordinated through etcd; reads stay local; coherence {}",
                            if d.coherence == Coherence::Hardware {
                                "hardware (no cache flushes)"
                            } else {
                                "none (chunks written back at publish, other hosts' chunks invalidated before reading)"
                            }
                        );
                    } else {
                        let _ = writeln!(
                            s,
                            "  owner:    one host at a time: the daemon holds an owner lease in the pool header, heartbeat every {:?}; another daemon is refused while it advances (gone after {:?} without a beat)",
                            (d.lease_timeout / 5).clamp(std::time::Duration::from_millis(20), std::time::Duration::from_secs(1)),
                            d.lease_timeout
                        );
                    }
                    let _ = writeln!(
                        s,
                        "  device:   {} set to uid 0 gid {} mode {:04o} (zero-copy clients map it)",
                        d.devnode.display(),
                        p.gid,
                        DevdaxPlan::node_mode(p.mode)
                    );
                }
            }
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

#[cfg(test)]
mod tests {
    use crate::config;
    use crate::host::Host;

    #[test]
    fn a_reload_names_what_changed() {
        let tmp = maru_testkit::fixtures::extract_snapshot(
            "qemu10.0-linux6.12-ram/1-ram-region-kmem-online",
        );
        let host = Host::discover(Some(&tmp.path().join("root/sys"))).unwrap();
        let mem = host.node(0).and_then(|n| n.mem_total).unwrap();
        let plan = config::validate(&config::embedded(mem), &host).unwrap();
        let old = &plan.pools[0];
        assert!(old.changes_to(old).is_empty());
        let mut new = old.clone();
        new.size = 64 << 20;
        new.mode = 0o770;
        assert_eq!(
            old.changes_to(&new),
            [
                "size 199229440 bytes (190 MiB) -> 67108864 bytes (64 MiB)",
                "mode 1777 -> 0770"
            ]
        );
    }
}

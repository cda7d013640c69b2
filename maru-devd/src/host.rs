//! What the daemon and `check-config` need to know about the host, read through discovery.

use crate::discover::model::{DaxDevice, NumaNode};
use crate::discover::{self, Topology};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The host's NUMA nodes and DAX devices, from one discovery pass.
pub struct Host {
    topo: Topology,
    sysfs_root: PathBuf,
}

impl Host {
    /// Discovers the live system (`None`) or a tree standing for `/sys`.
    pub fn discover(sysfs_root: Option<&Path>) -> anyhow::Result<Host> {
        let source = match sysfs_root {
            Some(root) => discover::Source::SysfsRoot(root.to_path_buf()),
            None => discover::Source::Live,
        };
        let topo = discover::discover(&source).context("device discovery failed")?;
        Ok(Host {
            topo,
            sysfs_root: sysfs_root.map_or_else(|| PathBuf::from("/sys"), Path::to_path_buf),
        })
    }

    /// The directory that stands for `/sys` (where reconfiguration writes go).
    pub fn sysfs_root(&self) -> &Path {
        &self.sysfs_root
    }

    /// All NUMA node numbers, ascending.
    pub fn node_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.topo.nodes.iter().map(|n| n.node).collect();
        ids.sort_unstable();
        ids
    }

    /// One NUMA node.
    pub fn node(&self, id: u32) -> Option<&NumaNode> {
        self.topo.nodes.iter().find(|n| n.node == id)
    }

    /// What `node: auto` picks: the lowest-numbered CXL-backed node without CPUs that has
    /// memory online.
    pub fn auto_node(&self) -> Option<u32> {
        self.node_ids().into_iter().find(|id| {
            self.node(*id)
                .is_some_and(|n| n.cxl && !n.has_cpus && n.mem_total.unwrap_or(0) > 0)
        })
    }

    /// One DAX device by its kernel name (`dax0.0`).
    pub fn dax(&self, name: &str) -> Option<&DaxDevice> {
        self.all_dax().find(|d| d.chardev == name)
    }

    /// Every DAX device.
    pub fn all_dax(&self) -> impl Iterator<Item = &DaxDevice> {
        self.topo.dax_regions.iter().flat_map(|r| r.devices.iter())
    }

    /// DAX devices whose memory becomes (or is) node `node`.
    pub fn dax_for_node(&self, node: u32) -> Vec<String> {
        self.all_dax()
            .filter(|d| d.target_node == Some(i64::from(node)))
            .map(|d| d.chardev.clone())
            .collect()
    }
}

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

    /// Size of a memory block in bytes (`memory/block_size_bytes`), if it could be read.
    pub fn memory_block_size(&self) -> Option<u64> {
        self.topo.memory_block_size
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
    fn dax_on_node(&self, node: u32) -> impl Iterator<Item = &DaxDevice> {
        self.all_dax()
            .filter(move |d| d.target_node == Some(i64::from(node)))
    }

    /// Names of the DAX devices whose memory becomes (or is) node `node`.
    pub fn dax_for_node(&self, node: u32) -> Vec<String> {
        self.dax_on_node(node).map(|d| d.chardev.clone()).collect()
    }

    /// The DAX device of CXL region `region`.
    pub fn dax_of_region(&self, region: &str) -> Option<&DaxDevice> {
        self.all_dax()
            .find(|d| d.cxl_region.as_deref() == Some(region))
    }

    /// The DAX device whose CXL region uses the memdev with serial number `serial`.
    pub fn dax_of_memdev_serial(&self, serial: u64) -> Option<&DaxDevice> {
        let memdev = self
            .topo
            .memdevs
            .iter()
            .find(|m| m.serial == Some(serial))?;
        let region = self
            .topo
            .regions
            .iter()
            .find(|r| r.memdevs.contains(&memdev.memdev))?;
        self.dax_of_region(&region.region)
    }

    /// Every device a pool on DAX device `dax` depends on: it, its CXL region and the
    /// region's memdevs (hotplug takes the pool offline when one goes away).
    pub fn devices_for_dax(&self, dax: &DaxDevice) -> Vec<String> {
        let mut devices = vec![dax.chardev.clone()];
        if let Some(region) = &dax.cxl_region {
            devices.push(region.clone());
            if let Some(r) = self.topo.regions.iter().find(|r| &r.region == region) {
                devices.extend(r.memdevs.iter().cloned());
            }
        }
        devices.sort();
        devices.dedup();
        devices
    }

    /// Every device a pool on `node` depends on: its DAX devices, the CXL regions behind them
    /// and those regions' memdevs (hotplug takes the pool offline when one goes away).
    pub fn devices_for_node(&self, node: u32) -> Vec<String> {
        let mut devices: Vec<String> = self
            .dax_on_node(node)
            .flat_map(|d| self.devices_for_dax(d))
            .collect();
        devices.sort();
        devices.dedup();
        devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/1-ram-region-kmem-online";

    fn fixture_host(tmp: &Path) -> Host {
        Host::discover(Some(&tmp.join("root/sys"))).unwrap()
    }

    #[test]
    fn a_cxl_node_depends_on_its_dax_device_region_and_memdev() {
        let tmp = maru_testkit::fixtures::extract_snapshot(SNAPSHOT);
        let host = fixture_host(tmp.path());
        assert_eq!(host.auto_node(), Some(1));
        assert_eq!(host.devices_for_node(1), ["dax0.0", "mem0", "region0"]);
        assert!(host.devices_for_node(0).is_empty());
    }

    #[test]
    fn the_embedded_default_fits_a_small_host() {
        let tmp = maru_testkit::fixtures::extract_snapshot(SNAPSHOT);
        let host = fixture_host(tmp.path());
        let mem = host.node(0).and_then(|n| n.mem_total).unwrap();
        let plan = crate::config::validate(&crate::config::embedded(mem), &host).unwrap();
        let p = &plan.pools[0];
        assert_eq!((p.name.as_str(), p.node, p.mode), ("default", 0, 0o1777));
        // min(1 GiB, 10% of 1952668 kB) rounded down to a MiB
        assert_eq!(p.size, 190 << 20);
        assert_eq!(plan.mount, Path::new("/mnt/maru"));
    }
}

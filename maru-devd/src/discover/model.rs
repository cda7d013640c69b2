//! The one discovery model: what `maru-devd discover` shows and what the daemon's
//! configuration code reads. Both readers (udev, plain sysfs walk) build it; the
//! printer and `--json` show it. Field names follow `daxctl list` and `cxl list`
//! where they mean the same thing; sizes are bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything discovery found on one host (or in one captured sysfs tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Topology {
    /// The directory that stood for `/sys`.
    pub sysfs_root: PathBuf,
    /// `/sys/devices/system/memory/block_size_bytes`, in bytes.
    pub memory_block_size: Option<u64>,
    /// CXL memory devices (`/sys/bus/cxl/devices/memN`).
    pub memdevs: Vec<CxlMemdev>,
    /// CXL regions (`/sys/bus/cxl/devices/regionN`).
    pub regions: Vec<CxlRegion>,
    /// DAX regions with their devices.
    pub dax_regions: Vec<DaxRegion>,
    /// NUMA nodes (`/sys/devices/system/node/nodeN`).
    pub nodes: Vec<NumaNode>,
    /// Everything that could not be read or understood, with the path it concerns.
    pub warnings: Vec<Warning>,
}

/// One problem met while reading the tree; discovery goes on without that value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The file, link or directory concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// A CXL Type-3 memory device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CxlMemdev {
    /// Kernel name, e.g. `mem0`.
    pub memdev: String,
    /// Device serial number (`serial`).
    pub serial: Option<u64>,
    /// Volatile capacity in bytes (`ram/size`).
    pub ram_size: Option<u64>,
    /// Persistent capacity in bytes (`pmem/size`).
    pub pmem_size: Option<u64>,
    /// NUMA node of the device's PCI function (`numa_node`, -1 when none).
    pub numa_node: Option<i64>,
    /// Firmware revision (`firmware_version`).
    pub firmware_version: Option<String>,
    /// PCI address of the device (the memdev's parent), as `cxl list` shows in `host`.
    pub host: Option<String>,
    /// Character device, e.g. `/dev/cxl/mem0`.
    pub devnode: Option<PathBuf>,
    /// The host bridge above the device (`uport` of its first-level CXL port).
    pub host_bridge: Option<String>,
    /// CXL ports from the root down to the device's endpoint, e.g. `root0, port1, endpoint2`.
    pub ports: Vec<String>,
}

/// A CXL region: a host physical address range interleaved over memdevs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CxlRegion {
    /// Kernel name, e.g. `region0`.
    pub region: String,
    /// `ram` or `pmem`.
    pub mode: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Region UUID (pmem regions only).
    pub uuid: Option<String>,
    /// Number of memdevs interleaved.
    pub interleave_ways: Option<u32>,
    /// Interleave granularity in bytes.
    pub interleave_granularity: Option<u32>,
    /// Start of the host physical address range.
    pub resource: Option<u64>,
    /// `commit` when the decoders are programmed, `reset` otherwise.
    pub decode_state: Option<String>,
    /// Endpoint decoders in position order (`target0`, `target1`, ...).
    pub targets: Vec<String>,
    /// Memdevs behind those decoders, in the same order.
    pub memdevs: Vec<String>,
    /// Root decoder the region was created under.
    pub root_decoder: Option<String>,
}

/// How the kernel attached a DAX region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaxLayout {
    /// CXL-native: `.../regionN/dax_regionN/daxN.M` (`dax_cxl`, kernel >= 6.3).
    Cxl,
    /// Through libnvdimm: `.../nvdimm-bridgeN/ndbusN/regionN/daxN.M/daxN.M`.
    Nvdimm,
    /// Anything else (`dax_hmem`, an unknown layout).
    Other,
}

impl fmt::Display for DaxLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaxLayout::Cxl => "cxl",
            DaxLayout::Nvdimm => "nvdimm",
            DaxLayout::Other => "other",
        })
    }
}

/// A DAX region and its devices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaxRegion {
    /// `dax_region/id`.
    pub id: Option<u64>,
    /// Device path below `/sys/devices`, as `daxctl list -R` shows it.
    pub path: String,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Alignment in bytes.
    pub align: Option<u64>,
    /// Which kernel layout the region was found in.
    pub layout: DaxLayout,
    /// The CXL region behind it, if any.
    pub cxl_region: Option<String>,
    /// The region's devices.
    pub devices: Vec<DaxDevice>,
}

/// What a DAX device is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum DaxMode {
    /// Bound to `device_dax`: a `/dev/daxN.M` character device.
    Devdax,
    /// Bound to `kmem`: hot-plugged as system RAM.
    SystemRam,
    /// Not bound to any driver.
    Unbound,
    /// Bound to another driver (named).
    Other(String),
}

impl DaxMode {
    /// The mode a DAX device bound to `driver` is in.
    pub fn from_driver(driver: Option<&str>) -> DaxMode {
        match driver {
            None => DaxMode::Unbound,
            Some("device_dax") => DaxMode::Devdax,
            Some("kmem") => DaxMode::SystemRam,
            Some(other) => DaxMode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for DaxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaxMode::Devdax => "devdax",
            DaxMode::SystemRam => "system-ram",
            DaxMode::Unbound => "unbound",
            DaxMode::Other(driver) => driver,
        })
    }
}

impl From<DaxMode> for String {
    fn from(mode: DaxMode) -> String {
        mode.to_string()
    }
}

impl From<String> for DaxMode {
    fn from(mode: String) -> DaxMode {
        match mode.as_str() {
            "devdax" => DaxMode::Devdax,
            "system-ram" => DaxMode::SystemRam,
            "unbound" => DaxMode::Unbound,
            _ => DaxMode::Other(mode),
        }
    }
}

/// A DAX device (`/sys/bus/dax/devices/daxN.M`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaxDevice {
    /// Kernel name, e.g. `dax0.0`.
    pub chardev: String,
    /// Character device, e.g. `/dev/dax0.0` (present in devdax mode).
    pub devnode: Option<PathBuf>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// NUMA node its memory becomes when onlined (`target_node`).
    pub target_node: Option<i64>,
    /// Mapping alignment in bytes.
    pub align: Option<u64>,
    /// Start of its host physical address range.
    pub resource: Option<u64>,
    /// devdax, system-ram or unbound.
    pub mode: DaxMode,
    /// system-ram mode: memory blocks of the device that are online.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub online_memblocks: Option<u32>,
    /// system-ram mode: memory blocks the device spans.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total_memblocks: Option<u32>,
    /// system-ram mode with online blocks: whether all of them are in ZONE_MOVABLE.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub movable: Option<bool>,
    /// The CXL region behind the device, if any.
    pub cxl_region: Option<String>,
}

impl DaxDevice {
    /// Indexes (`memoryN`) of the memory blocks kmem hot-plugs for this device: those wholly
    /// inside its physical range. `None` when the range or the block size is unknown.
    pub fn kmem_blocks(&self, block_size: Option<u64>) -> Option<std::ops::Range<u64>> {
        let block = block_size.filter(|b| *b > 0)?;
        let start = self.resource?;
        let end = start.saturating_add(self.size?) / block;
        Some(start.div_ceil(block)..end.max(start.div_ceil(block)))
    }
}

/// A NUMA node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumaNode {
    /// Node number.
    pub node: u32,
    /// `MemTotal` of the node's `meminfo`, in bytes.
    pub mem_total: Option<u64>,
    /// `MemFree` of the node's `meminfo`, in bytes.
    pub mem_free: Option<u64>,
    /// Whether any CPU belongs to the node.
    pub has_cpus: bool,
    /// The node's CPUs as the kernel lists them (`cpulist`), empty when none.
    pub cpulist: String,
    /// Whether some of the node's memory blocks lie in a CXL region.
    pub cxl: bool,
    /// Memory blocks of the node that are online.
    pub online_memblocks: u32,
    /// Memory blocks of the node.
    pub total_memblocks: u32,
    /// Zone (`valid_zones` of an online block: `Normal`, `Movable`, `none` when it spans
    /// several) to the number of the node's online blocks in it.
    pub zones: BTreeMap<String, u32>,
}

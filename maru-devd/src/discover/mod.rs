//! CXL / DAX / NUMA discovery: one model ([`Topology`]), two readers (udev on the live
//! system, a plain walk of a sysfs tree for `--sysfs-root`), one printer.
//!
//! The readers only list devices (subsystem, name, sysfs directory, devtype, driver,
//! device node); [`build`] reads the attribute files of those directories and
//! assembles the model. See `docs/discovery.md` for where each field comes from.

mod attr;
mod build;
mod command;
pub mod model;
pub mod print;
mod sysfs;
mod udev_reader;

use std::path::{Path, PathBuf};

pub use command::{run, DiscoverArgs};
pub use model::Topology;

/// Where discovery reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The running kernel: devices enumerated through udev, attributes from `/sys`.
    Live,
    /// A directory standing for `/sys` (a captured tree), walked directly.
    SysfsRoot(PathBuf),
}

/// Discovery could not start at all (everything smaller is a warning in the model).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The sysfs root does not exist or is not a directory.
    #[error("sysfs root {path} is not a readable directory; pass the folder that stands for /sys, e.g. <snapshot>/root/sys")]
    Root {
        /// The root given.
        path: PathBuf,
        /// Why it could not be used.
        source: std::io::Error,
    },
    /// udev could not enumerate the devices of a subsystem.
    #[error("udev enumeration of subsystem {subsystem:?} failed; is /sys mounted and readable?")]
    Udev {
        /// The subsystem being enumerated.
        subsystem: &'static str,
        /// The libudev error.
        source: std::io::Error,
    },
}

/// The kernel subsystems discovery looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// `/sys/bus/cxl`: ports, decoders, memdevs, regions, CXL dax regions.
    Cxl,
    /// `/sys/bus/dax`: DAX devices.
    Dax,
    /// `/sys/devices/system/memory`: memory blocks.
    Memory,
    /// `/sys/devices/system/node`: NUMA nodes.
    Node,
}

impl Subsystem {
    /// All of them, in enumeration order.
    pub const ALL: [Subsystem; 4] = [
        Subsystem::Cxl,
        Subsystem::Dax,
        Subsystem::Memory,
        Subsystem::Node,
    ];

    /// The kernel's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Subsystem::Cxl => "cxl",
            Subsystem::Dax => "dax",
            Subsystem::Memory => "memory",
            Subsystem::Node => "node",
        }
    }
}

/// One device as a reader lists it.
#[derive(Debug, Clone)]
pub struct RawDevice {
    /// Subsystem it was found in.
    pub subsystem: Subsystem,
    /// Kernel name (`mem0`, `dax0.0`, `node1`).
    pub name: String,
    /// Its directory, symbolic links resolved.
    pub syspath: PathBuf,
    /// `DEVTYPE` (`cxl_memdev`, `cxl_region`, ...).
    pub devtype: Option<String>,
    /// Bound driver (`kmem`, `device_dax`, `cxl_mem`).
    pub driver: Option<String>,
    /// Device node (`/dev/dax0.0`).
    pub devnode: Option<PathBuf>,
}

/// Discovers the CXL, DAX and NUMA topology from `source`.
pub fn discover(source: &Source) -> Result<Topology, DiscoverError> {
    let mut reader = attr::AttrReader::default();
    let (root, devices) = match source {
        Source::Live => (PathBuf::from("/sys"), udev_reader::enumerate(&mut reader)?),
        Source::SysfsRoot(path) => {
            let root = canonical_root(path)?;
            let devices = sysfs::enumerate(&root, &mut reader);
            (root, devices)
        }
    };
    Ok(build::build(&root, &devices, reader))
}

fn canonical_root(path: &Path) -> Result<PathBuf, DiscoverError> {
    let root = std::fs::canonicalize(path).map_err(|source| DiscoverError::Root {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::read_dir(&root).map_err(|source| DiscoverError::Root {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(root)
}

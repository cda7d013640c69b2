//! The plain sysfs reader: lists devices by walking a directory that stands for
//! `/sys` (`--sysfs-root`), as a captured tree or the live `/sys` shows them.

use std::path::{Path, PathBuf};

use super::attr::{AttrReader, Need};
use super::{RawDevice, Subsystem};

/// Lists the devices of every [`Subsystem`] under `root`.
pub fn enumerate(root: &Path, reader: &mut AttrReader) -> Vec<RawDevice> {
    let mut devices = Vec::new();
    for subsystem in Subsystem::ALL {
        let dir = match subsystem {
            Subsystem::Cxl | Subsystem::Dax => {
                root.join("bus").join(subsystem.name()).join("devices")
            }
            Subsystem::Memory | Subsystem::Node => {
                root.join("devices/system").join(subsystem.name())
            }
        };
        for name in reader.list(&dir) {
            if !is_device_name(subsystem, &name) {
                continue;
            }
            let Some(syspath) = reader.resolve(&dir.join(&name)) else {
                continue;
            };
            if !syspath.is_dir() {
                reader.warn(dir.join(&name), "not a device directory");
                continue;
            }
            devices.push(read_device(subsystem, name, syspath, reader));
        }
    }
    devices
}

/// `devices/system/{memory,node}` also hold plain attributes (`block_size_bytes`, `online`).
fn is_device_name(subsystem: Subsystem, name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match subsystem {
        Subsystem::Cxl | Subsystem::Dax => true,
        Subsystem::Memory => numbered("memory"),
        Subsystem::Node => numbered("node"),
    }
}

/// Reads what udev would give for a device: DEVTYPE and DEVNAME from `uevent`, the driver link.
fn read_device(
    subsystem: Subsystem,
    name: String,
    syspath: PathBuf,
    reader: &mut AttrReader,
) -> RawDevice {
    let mut devtype = None;
    let mut devnode = None;
    if let Some(uevent) = reader.text(&syspath, "uevent", Need::Optional) {
        for line in uevent.lines() {
            if let Some(value) = line.strip_prefix("DEVTYPE=") {
                devtype = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("DEVNAME=") {
                devnode = Some(Path::new("/dev").join(value));
            }
        }
    }
    let driver = reader.link_name(&syspath, "driver", Need::Optional);
    RawDevice {
        subsystem,
        name,
        syspath,
        devtype,
        driver,
        devnode,
    }
}

//! The live reader: lists devices of the running kernel through libudev, which gives
//! each device's properties (DEVTYPE, driver) and device node.

use super::attr::AttrReader;
use super::{DiscoverError, RawDevice, Subsystem};

/// Lists the devices of every [`Subsystem`] known to udev.
pub fn enumerate(reader: &mut AttrReader) -> Result<Vec<RawDevice>, DiscoverError> {
    let mut devices = Vec::new();
    for subsystem in Subsystem::ALL {
        let udev_error = |source| DiscoverError::Udev {
            subsystem: subsystem.name(),
            source,
        };
        let mut enumerator = udev::Enumerator::new().map_err(udev_error)?;
        enumerator
            .match_subsystem(subsystem.name())
            .map_err(udev_error)?;
        for device in enumerator.scan_devices().map_err(udev_error)? {
            let syspath = device.syspath();
            let Some(real) = reader.resolve(syspath) else {
                continue;
            };
            let text = |value: Option<&std::ffi::OsStr>| {
                value.map(|value| value.to_string_lossy().into_owned())
            };
            devices.push(RawDevice {
                subsystem,
                name: device.sysname().to_string_lossy().into_owned(),
                syspath: real,
                devtype: text(device.devtype()),
                driver: text(device.driver()),
                devnode: device.devnode().map(|node| node.to_path_buf()),
            });
        }
    }
    Ok(devices)
}

//! The udev monitor: dax, cxl and memory device events, turned into [`DeviceEvent`]s.

use super::events::{Action, DeviceEvent, Event};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::sync::mpsc::Sender;

/// Where udevd listens; without it there are no udev-processed events to receive.
const UDEVD_CONTROL: &str = "/run/udev/control";

/// Opens the monitor: events as udevd re-broadcasts them after its rules ran, or, where no
/// udevd runs (containers, minimal hosts), the kernel's own uevents.
fn open() -> std::io::Result<udev::MonitorSocket> {
    let builder = if std::path::Path::new(UDEVD_CONTROL).exists() {
        udev::MonitorBuilder::new()?
    } else {
        log::info!(
            "udevd is not running ({UDEVD_CONTROL} missing): listening to kernel uevents directly"
        );
        udev::MonitorBuilder::new_kernel()?
    };
    builder
        .match_subsystem("dax")?
        .match_subsystem("cxl")?
        .match_subsystem("memory")?
        .listen()
}

/// Listens to udev forever on the current thread, sending one event per device event. If
/// udev cannot be reached (no udevd, a container) it logs why and returns: the daemon runs on
/// without hotplug.
pub fn forward(events: Sender<Event>) {
    let socket = match open() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot listen to udev ({e}); device hotplug will not be followed");
            return;
        }
    };
    loop {
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = nix::poll::poll(&mut fds, PollTimeout::NONE) {
            let err = std::io::Error::from(e);
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Anything else would repeat forever: give up hotplug, keep serving.
            log::warn!("udev monitor: poll failed ({err}); device hotplug will not be followed");
            return;
        }
        for ev in socket.iter() {
            let dev = ev.device();
            let action = dev
                .action()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            let node = dev
                .attribute_value("target_node")
                .and_then(|v| v.to_str()?.trim().parse::<u32>().ok())
                .or_else(|| memory_block_node(&dev));
            let de = DeviceEvent {
                action: Action::from_udev(&action),
                subsystem: dev
                    .subsystem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sysname: dev.sysname().to_string_lossy().into_owned(),
                node,
            };
            let node = de
                .node
                .map_or_else(|| "unknown".to_string(), |n| n.to_string());
            log::info!(
                "udev: {action} {}/{} (node {node})",
                de.subsystem,
                de.sysname
            );
            if events.send(Event::Device(de)).is_err() {
                return;
            }
        }
    }
}

/// The node of a memory block (its `nodeN` link), while it still exists.
fn memory_block_node(dev: &udev::Device) -> Option<u32> {
    std::fs::read_dir(dev.syspath())
        .ok()?
        .flatten()
        .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
}

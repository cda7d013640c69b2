//! Everything the daemon reacts to arrives as one [`Event`] on one channel: signals, udev
//! device events and control-socket requests. Tests drive the same path by injecting
//! [`DeviceEvent`]s through the control socket.

use super::control::{Peer, Reply, Request};
use serde::{Deserialize, Serialize};
use std::sync::mpsc::Sender;

/// One thing for the daemon's main loop to handle.
pub enum Event {
    /// SIGTERM or SIGINT: unmount and exit.
    Stop(&'static str),
    /// SIGHUP: reload the config.
    Reload,
    /// A device appeared, went away or changed state.
    Device(DeviceEvent),
    /// A control-socket request, who sent it, and where its reply goes.
    Request(Request, Peer, Sender<Reply>),
}

/// What happened to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The device appeared (or its memory came online).
    Add,
    /// The device went away (or its memory went offline).
    Remove,
    /// Anything else (attribute change, bind, ...): recorded, no effect on pools.
    Other,
}

impl Action {
    /// Maps a udev action (`add`, `remove`, `online`, `offline`, `bind`, ...).
    pub fn from_udev(action: &str) -> Action {
        match action {
            "add" | "online" => Action::Add,
            "remove" | "offline" => Action::Remove,
            _ => Action::Other,
        }
    }
}

/// A device event from udev (dax, cxl or memory subsystem) or injected by a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// What happened.
    pub action: Action,
    /// Kernel subsystem: `dax`, `cxl` or `memory`.
    pub subsystem: String,
    /// Kernel name of the device: `dax0.0`, `region0`, `mem0`, `memory114`.
    pub sysname: String,
    /// The NUMA node the device's memory belongs to, when known.
    #[serde(default)]
    pub node: Option<u32>,
}

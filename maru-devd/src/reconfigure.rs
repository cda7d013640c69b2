//! The opt-in `reconfigure_devdax`: turn a devdax CXL device into system RAM whose memory
//! blocks are online in ZONE_NORMAL — what `daxctl reconfigure-device --mode=system-ram
//! --no-movable` does — through sysfs under the host's sysfs root (tests use a copied tree).

use crate::host::Host;
use anyhow::Context;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`to_system_ram`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the device had to be moved from device_dax to kmem.
    pub rebound: bool,
    /// Memory blocks written `online_kernel` (by name, e.g. `memory114`).
    pub onlined: Vec<String>,
}

fn write_attr(path: &Path, value: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} for writing", path.display()))?;
    f.write_all(value.as_bytes())
        .with_context(|| format!("writing `{value}` to {} failed", path.display()))
}

fn read_attr(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Processes that have `/dev/<dev>` open or mapped, as `pid (comm)`.
pub fn users(proc_root: &Path, dev: &str) -> Vec<String> {
    let node = format!("/dev/{dev}");
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(proc_root) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = e.path();
        let mapped = fs::read_to_string(dir.join("maps"))
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(5) == Some(node.as_str()))
            })
            .unwrap_or(false);
        let open = fs::read_dir(dir.join("fd"))
            .map(|fds| {
                fds.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == Path::new(&node)))
            })
            .unwrap_or(false);
        if mapped || open {
            let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
            found.push(format!("{name} ({})", comm.trim()));
        }
    }
    found
}

/// Converts `dev` to system RAM with every memory block online in ZONE_NORMAL. Refuses while
/// a process has the device open or mapped (found under `proc_root`, which stands for
/// `/proc`). A device already in system-ram mode only gets its offline blocks onlined.
pub fn to_system_ram(host: &Host, proc_root: &Path, dev: &str) -> anyhow::Result<Outcome> {
    let sysfs = host.sysfs_root();
    let dev_dir = sysfs.join("bus/dax/devices").join(dev);
    let Some(dax) = host.dax(dev) else {
        anyhow::bail!(
            "no DAX device {dev} (missing {}); check `maru-devd discover`",
            dev_dir.display()
        );
    };
    // The driver as it is now, not as discovery saw it.
    let driver = fs::read_link(dev_dir.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let drivers = sysfs.join("bus/dax/drivers");
    let rebound = match driver.as_deref() {
        Some("kmem") => false,
        Some("device_dax") | None => {
            let users = users(proc_root, dev);
            if !users.is_empty() {
                anyhow::bail!(
                    "refusing to reconfigure {dev}: it is open or mapped by {}; stop those processes (or remove `reconfigure_devdax`) and restart maru-devd",
                    users.join(", ")
                );
            }
            if driver.is_some() {
                write_attr(&drivers.join("device_dax/unbind"), dev)?;
            }
            write_attr(&drivers.join("kmem/new_id"), dev)?;
            // new_id may already have bound it (driver autoprobe); bind then answers an error.
            if let Err(e) = write_attr(&drivers.join("kmem/bind"), dev) {
                let now = fs::read_link(dev_dir.join("driver")).ok();
                if !now.is_some_and(|p| p.ends_with("kmem")) {
                    log::debug!("{e:#} (the device may already be bound by new_id)");
                }
            }
            true
        }
        Some(other) => anyhow::bail!(
            "refusing to reconfigure {dev}: it is bound to driver {other}, not device_dax or kmem"
        ),
    };
    let mem = sysfs.join("devices/system/memory");
    let blocks: Vec<PathBuf> = dax
        .kmem_blocks(host.memory_block_size())
        .with_context(|| {
            format!(
                "cannot tell which memory blocks {dev} spans: its resource or size, or {}, is unknown (see `maru-devd discover`)",
                mem.join("block_size_bytes").display()
            )
        })?
        .map(|i| mem.join(format!("memory{i}")))
        .filter(|p| p.exists())
        .collect();
    if blocks.is_empty() {
        anyhow::bail!("{dev} is bound to kmem but no memory blocks appeared for it; see dmesg");
    }
    let mut onlined = Vec::new();
    for block in blocks {
        let name = block
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = read_attr(&block.join("state"))?;
        let zones = read_attr(&block.join("valid_zones")).unwrap_or_default();
        if state == "online" && zones.split_whitespace().next() == Some("Movable") {
            log::info!(
                "{dev}: {name} is online in ZONE_MOVABLE; offlining it to online it as ZONE_NORMAL"
            );
            write_attr(&block.join("state"), "offline")
                .with_context(|| format!("cannot offline {name} (pages in use?); reboot with memhp_default_state=online_kernel or use a node onlined as ZONE_NORMAL"))?;
        } else if state == "online" {
            continue;
        }
        write_attr(&block.join("state"), "online_kernel")
            .with_context(|| format!("cannot online {name} as ZONE_NORMAL"))?;
        onlined.push(name);
    }
    Ok(Outcome { rebound, onlined })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the reconfiguration reads and writes in a test.
    struct Roots {
        /// Stands for `/sys`.
        sysfs: PathBuf,
        /// Stands for `/proc` (to find processes that map the device).
        proc: PathBuf,
    }

    fn run(roots: &Roots, dev: &str) -> anyhow::Result<Outcome> {
        let host = Host::discover(Some(&roots.sysfs)).unwrap();
        to_system_ram(&host, &roots.proc, dev)
    }

    /// The devdax snapshot, extracted, with what the kernel would provide on bind: the
    /// write-only driver files and the two memory blocks (offline) of dax0.0's range.
    fn fixture() -> (tempfile::TempDir, Roots) {
        let tmp =
            maru_testkit::fixtures::extract_snapshot("qemu10.0-linux6.12-ram/2-ram-region-devdax");
        let sysfs = tmp.path().join("root/sys");
        for f in ["device_dax/unbind", "kmem/new_id", "kmem/bind"] {
            fs::write(sysfs.join("bus/dax/drivers").join(f), "").unwrap();
        }
        for b in ["memory114", "memory115"] {
            let d = sysfs.join("devices/system/memory").join(b);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("state"), "offline\n").unwrap();
            fs::write(d.join("valid_zones"), "Normal Movable\n").unwrap();
        }
        let proc = tmp.path().join("proc");
        fs::create_dir_all(proc.join("4242/fd")).unwrap();
        fs::write(
            proc.join("4242/maps"),
            "7f00-7f01 r--p 00000000 00:05 1 /usr/lib/libc.so.6\n",
        )
        .unwrap();
        (tmp, Roots { sysfs, proc })
    }

    fn content(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn devdax_becomes_system_ram_online_kernel() {
        let (_tmp, roots) = fixture();
        let out = run(&roots, "dax0.0").unwrap();
        assert_eq!(
            out,
            Outcome {
                rebound: true,
                onlined: vec!["memory114".into(), "memory115".into()]
            }
        );
        let drv = roots.sysfs.join("bus/dax/drivers");
        assert_eq!(content(&drv.join("device_dax/unbind")), "dax0.0");
        assert_eq!(content(&drv.join("kmem/new_id")), "dax0.0");
        assert_eq!(content(&drv.join("kmem/bind")), "dax0.0");
        let mem = roots.sysfs.join("devices/system/memory");
        assert!(content(&mem.join("memory114/state")).starts_with("online_kernel"));
        assert!(content(&mem.join("memory115/state")).starts_with("online_kernel"));
        // blocks outside the device's range are left alone
        assert_eq!(content(&mem.join("memory15/state")).trim(), "online");
    }

    #[test]
    fn refuses_a_mapped_device() {
        let (_tmp, roots) = fixture();
        fs::create_dir_all(roots.proc.join("777/fd")).unwrap();
        fs::write(roots.proc.join("777/comm"), "kvserver\n").unwrap();
        fs::write(
            roots.proc.join("777/maps"),
            "7f00-7f20 rw-s 00000000 00:06 5 /dev/dax0.0\n",
        )
        .unwrap();
        let err = run(&roots, "dax0.0").unwrap_err().to_string();
        assert!(
            err.contains("refusing to reconfigure dax0.0: it is open or mapped by 777 (kvserver)"),
            "{err}"
        );
        let drv = roots.sysfs.join("bus/dax/drivers");
        assert_eq!(
            content(&drv.join("device_dax/unbind")),
            "",
            "nothing may be written"
        );
    }

    #[test]
    fn unknown_device_is_an_error() {
        let (_tmp, roots) = fixture();
        let err = run(&roots, "dax7.0").unwrap_err().to_string();
        assert!(err.contains("no DAX device dax7.0"), "{err}");
    }
}

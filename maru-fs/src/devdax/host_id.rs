//! Who this daemon is, for the owner lease of a devdax pool: the host (machine-id),
//! its current boot (boot-id), its name, and the daemon's pid with the pid's start
//! time (so a reused pid is not taken for a live daemon).

use std::fs;
use std::path::Path;

/// Identity of this daemon as the owner lease records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// `/etc/machine-id` as 16 bytes (zeros when the host has none).
    pub machine_id: [u8; 16],
    /// `/proc/sys/kernel/random/boot_id` as 16 bytes: changes at every boot.
    pub boot_id: [u8; 16],
    /// The host name, for messages (at most 47 bytes are recorded).
    pub name: String,
    /// The daemon's pid.
    pub pid: u32,
    /// When the pid started, in clock ticks after boot (`/proc/PID/stat` field 22).
    pub pid_start: u64,
}

/// Environment variables that override the host's identity, so that several
/// daemons on one machine can stand for several hosts (the multi-host tests). Each
/// takes 32 hex digits (dashes allowed); `MARU_HOST_NAME` takes any name.
pub const ENV_MACHINE_ID: &str = "MARU_HOST_MACHINE_ID";
/// See [`ENV_MACHINE_ID`].
pub const ENV_BOOT_ID: &str = "MARU_HOST_BOOT_ID";
/// See [`ENV_MACHINE_ID`].
pub const ENV_HOST_NAME: &str = "MARU_HOST_NAME";

/// 32 hex digits (dashes and whitespace ignored) as 16 bytes.
pub(crate) fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'-' && !b.is_ascii_whitespace())
        .collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// 16 bytes as 32 lower-case hex digits.
pub(crate) fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn id_from(env: &str, files: &[&str]) -> [u8; 16] {
    if let Some(id) = std::env::var(env).ok().and_then(|v| parse_hex16(&v)) {
        return id;
    }
    files
        .iter()
        .find_map(|f| fs::read_to_string(f).ok().and_then(|t| parse_hex16(&t)))
        .unwrap_or([0; 16])
}

/// Start time of `pid` in clock ticks after boot, from `/proc/PID/stat`; `None` if
/// there is no such process.
pub(crate) fn pid_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count the
    // fields after its closing parenthesis (field 3 is the first of them).
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl HostIdentity {
    /// This host and process, with the overrides of [`ENV_MACHINE_ID`],
    /// [`ENV_BOOT_ID`] and [`ENV_HOST_NAME`] applied.
    pub fn current() -> HostIdentity {
        let pid = std::process::id();
        let name = std::env::var(ENV_HOST_NAME)
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        HostIdentity {
            machine_id: id_from(
                ENV_MACHINE_ID,
                &["/etc/machine-id", "/var/lib/dbus/machine-id"],
            ),
            boot_id: id_from(ENV_BOOT_ID, &["/proc/sys/kernel/random/boot_id"]),
            name,
            pid,
            pid_start: pid_start(pid).unwrap_or(0),
        }
    }

    /// Whether `other` is this very boot of this host (so its pids are ours to check).
    pub fn same_boot(&self, machine_id: &[u8; 16], boot_id: &[u8; 16]) -> bool {
        self.machine_id == *machine_id && self.boot_id == *boot_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_round_trip_and_reject_garbage() {
        let id = parse_hex16("0123456789abcdef-0123456789ABCDEF\n").unwrap();
        assert_eq!(hex(&id), "0123456789abcdef0123456789abcdef");
        assert_eq!(parse_hex16("0123"), None);
        assert_eq!(parse_hex16("zz23456789abcdef0123456789abcdef"), None);
    }

    #[test]
    fn own_pid_start_is_read_and_a_dead_pid_has_none() {
        assert!(pid_start(std::process::id()).is_some());
        // pid_max is at most 2^22: this pid cannot exist.
        assert_eq!(pid_start(u32::MAX - 1), None);
    }
}

//! The mount table (`/proc/self/mountinfo`) and cleaning a FUSE mount a dead daemon left.

use anyhow::Context;
use nix::mount::{umount2, MntFlags};
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Filesystem type (`tmpfs`, `fuse`, `fuse.maru`, ...).
    pub fstype: String,
}

/// The mounts this process sees.
pub struct MountTable(Vec<MountEntry>);

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MountTable {
    /// Reads `/proc/self/mountinfo`.
    pub fn read() -> anyhow::Result<MountTable> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo (is /proc mounted?)")?;
        Ok(MountTable::parse(&text))
    }

    fn parse(text: &str) -> MountTable {
        let entries = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let sep = fields.iter().position(|f| *f == "-")?;
                Some(MountEntry {
                    mountpoint: PathBuf::from(unescape(fields.get(4)?)),
                    fstype: (*fields.get(sep + 1)?).to_string(),
                })
            })
            .collect();
        MountTable(entries)
    }

    /// The topmost mount at `path`, if `path` is a mount point.
    pub fn at(&self, path: &Path) -> Option<&MountEntry> {
        self.0.iter().rev().find(|m| m.mountpoint == path)
    }
}

/// Asks the filesystem at `path` for its attributes, bypassing the kernel's attribute cache
/// (`statx` with `AT_STATX_FORCE_SYNC`: FUSE sends a GETATTR to its server). A plain `stat`
/// of a FUSE mount whose server was killed keeps answering from the cache for up to the
/// attribute timeout (60 s for maru-fs) after anything stat'ed it (`df`, monitoring).
fn stat_uncached(path: &Path) -> std::io::Result<()> {
    crate::sys::statx_force_sync(path)
}

/// Makes sure `mountpoint` exists and carries no FUSE mount of a dead daemon: a FUSE mount
/// whose server is gone (asked past the attribute cache, it answers ENOTCONN) is lazily
/// unmounted. A live FUSE mount, or any other filesystem mounted there, is an error. The
/// caller holds the runtime directory's lock, so no daemon of that directory is alive.
pub fn clean_stale(mountpoint: &Path) -> anyhow::Result<()> {
    // A daemon killed twice in a row may leave one dead mount on top of another.
    for _ in 0..16 {
        let table = MountTable::read()?;
        let Some(m) = table.at(mountpoint) else {
            break;
        };
        if !m.fstype.starts_with("fuse") {
            anyhow::bail!(
                "{} is already a {} mount; maru-devd mounts its own filesystem there: unmount it or choose another `mount:`",
                mountpoint.display(),
                m.fstype
            );
        }
        match stat_uncached(mountpoint) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
                log::warn!(
                    "{}: stale FUSE mount from a daemon that died; unmounting it (lazily)",
                    mountpoint.display()
                );
                umount2(mountpoint, MntFlags::MNT_DETACH).with_context(|| {
                    format!("cannot unmount the stale mount on {}", mountpoint.display())
                })?;
            }
            _ => anyhow::bail!(
                "{} is served by a live FUSE filesystem ({}); is another maru-devd (with another --runtime-dir) serving it? stop it first (maru-devd status), or choose another `mount:`",
                mountpoint.display(),
                m.fstype
            ),
        }
    }
    create_public_dirs(mountpoint)
}

/// System directories a `mount:` may not be in: the FUSE mount would hide what the host
/// needs there.
const SYSTEM_DIRS: &[&str] = &["/etc", "/usr", "/proc", "/sys", "/boot", "/dev"];

/// `path` made absolute with its longest existing ancestor resolved (symlinks followed), so
/// that `/var/run/maru` and `/run/maru` compare equal; the missing rest is kept as written.
fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut rest = Vec::new();
    let mut base = abs.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return abs,
        }
    }
}

/// Checks a configured mount point before anything is touched (`check-config` and `run`):
/// `None` if it is usable, else what is wrong and what to do. Refused: `/` and the system
/// directories ([`SYSTEM_DIRS`]), the runtime directory, a parent of it or a path inside
/// it, something that is not a directory, and a non-empty directory that is not a FUSE
/// mount (a stale Maru mount is cleaned at start; a live one is refused then).
pub fn check_mount_point(mount: &Path, runtime_dir: &Path) -> Option<String> {
    let m = resolve(mount);
    let shown = if m == mount {
        format!("`mount: {}`", mount.display())
    } else {
        format!("`mount: {}` ({})", mount.display(), m.display())
    };
    const FIX: &str = "choose a directory of its own, such as /mnt/maru";
    if m == Path::new("/") {
        return Some(format!(
            "{shown} is the root directory; the mount would hide the whole host: {FIX}"
        ));
    }
    if let Some(sys) = SYSTEM_DIRS.iter().find(|d| m.starts_with(d)) {
        return Some(format!(
            "{shown} is in the system directory {sys}, which the mount would hide or shadow: {FIX}"
        ));
    }
    let r = resolve(runtime_dir);
    if r.starts_with(&m) {
        return Some(format!(
            "{shown} is the runtime directory {} or a parent of it; the mount would hide the control socket and the pools' tmpfs: {FIX} (or give another --runtime-dir)",
            r.display()
        ));
    }
    if m.starts_with(&r) {
        return Some(format!(
            "{shown} is inside the runtime directory {}, which is root-only (0700), so no user could reach the pools: {FIX}",
            r.display()
        ));
    }
    if MountTable::read()
        .ok()
        .and_then(|t| t.at(&m).map(|e| e.fstype.starts_with("fuse")))
        == Some(true)
    {
        // A Maru mount (stale or live): `run` cleans a dead one and refuses a live one.
        return None;
    }
    let meta = match std::fs::metadata(&m) {
        Ok(meta) => meta,
        Err(_) => return None, // missing: created at start
    };
    if !meta.is_dir() {
        return Some(format!(
            "{shown} is not a directory (it is a {}); the filesystem would be mounted over it: remove it or {FIX}",
            if meta.is_file() { "regular file" } else { "special file" }
        ));
    }
    let entries: Vec<String> = std::fs::read_dir(&m)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .take(4)
                .collect()
        })
        .unwrap_or_default();
    if !entries.is_empty() {
        return Some(format!(
            "{shown} is a directory that is not empty (it holds {}{}); the mount would hide its files: empty it, or {FIX} (an empty or new directory)",
            entries
                .iter()
                .take(3)
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if entries.len() > 3 { ", ..." } else { "" }
        ));
    }
    None
}

/// Creates `dir` and its missing parents with mode 0755 whatever the umask, so every user
/// can reach the mount (existing directories are left as they are).
fn create_public_dirs(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for d in missing.into_iter().rev() {
        std::fs::create_dir(d)
            .and_then(|()| std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)))
            .with_context(|| format!("cannot create mount point directory {}", d.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_point_dirs_are_public_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        use nix::sys::stat::{umask, Mode};
        let old = umask(Mode::from_bits_truncate(0o077));
        let made = create_public_dirs(&dir);
        umask(old);
        made.unwrap();
        for d in [tmp.path().join("a"), dir] {
            assert_eq!(
                std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
    }

    #[test]
    fn mount_points_that_would_hide_something_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let check = |m: &Path| check_mount_point(m, &run);
        assert!(
            check(&tmp.path().join("mnt")).is_none(),
            "a new directory is fine"
        );
        for bad in [
            "/",
            "/etc/maru",
            "/usr",
            "/proc/x",
            "/sys",
            "/boot/m",
            "/dev/maru",
        ] {
            let msg = check(Path::new(bad)).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(msg.contains("choose a directory of its own"), "{msg}");
        }
        assert!(check(&run).unwrap().contains("runtime directory"));
        assert!(check(tmp.path()).unwrap().contains("or a parent of it"));
        assert!(check(&run.join("m"))
            .unwrap()
            .contains("inside the runtime directory"));
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(check(&file)
            .unwrap()
            .contains("is not a directory (it is a regular file)"));
        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("data"), "x").unwrap();
        assert!(check(&full)
            .unwrap()
            .contains("not empty (it holds `data`)"));
    }

    #[test]
    fn parses_mountinfo() {
        let t = MountTable::parse(
            "22 1 0:21 / /run rw,nosuid - tmpfs tmpfs rw\n\
             90 22 0:50 / /run/maru/pools/a\\040b rw - tmpfs maru-a rw,size=1024k\n\
             91 22 0:51 / /mnt/maru rw - fuse maru rw,user_id=0\n",
        );
        assert_eq!(
            t.at(Path::new("/run/maru/pools/a b")).unwrap().fstype,
            "tmpfs"
        );
        assert_eq!(t.at(Path::new("/mnt/maru")).unwrap().fstype, "fuse");
        assert!(t.at(Path::new("/mnt")).is_none());
    }
}

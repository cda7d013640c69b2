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
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `buf` a statx we own, both alive for the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_STATX_FORCE_SYNC | libc::AT_NO_AUTOMOUNT,
            libc::STATX_BASIC_STATS,
            &mut buf,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o077) };
        let made = create_public_dirs(&dir);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        made.unwrap();
        for d in [tmp.path().join("a"), dir] {
            assert_eq!(
                std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
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

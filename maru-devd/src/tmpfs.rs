//! The `numa` source's backing store: one private tmpfs per pool under the runtime directory,
//! bound to the pool's node, re-adopted when the daemon restarts.

use crate::mounts::MountTable;
use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The `huge=` option pool tmpfs mounts get: `within_size` where the kernel has transparent
/// huge pages for shmem (and does not deny them), else `never`.
pub fn thp_mode(sysfs_root: &Path) -> &'static str {
    let file = sysfs_root.join("kernel/mm/transparent_hugepage/shmem_enabled");
    match fs::read_to_string(file) {
        Ok(s) if s.contains("within_size") && !s.contains("[deny]") => "within_size",
        _ => "never",
    }
}

/// The `size=` of a pool's tmpfs: the pool's capacity plus 1/32 of it plus 16 MiB. maru-fs
/// charges chunks their exact bytes against the capacity, but the tmpfs also holds the pool's
/// membership index (`.maru-index`: about 1% of a pool of 4 KiB chunks, twice that while it is
/// rebuilt) and rounds every file up to whole pages. Without headroom the tmpfs fills up before
/// maru-fs's accounting does, and a create fails with ENOSPC where LRU eviction should have
/// made room. The limit reserves nothing: tmpfs takes pages only as they are written.
pub fn mount_size(capacity: u64) -> u64 {
    capacity
        .saturating_add(capacity / 32)
        .saturating_add(16 << 20)
}

/// Creates `dir` (and parents) with mode 0700 if missing, and forces 0700 on it.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))
}

/// What happened to a pool's backing tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// A fresh tmpfs was mounted.
    Mounted,
    /// A tmpfs left by an earlier daemon was found and kept (its chunks are adopted).
    Adopted,
}

/// Mounts the tmpfs of a pool of `capacity` bytes at `dir` (size [`mount_size`], node
/// binding, huge pages), or adopts the one already there and resizes it.
pub fn setup(dir: &Path, pool: &str, capacity: u64, node: u32, thp: &str) -> anyhow::Result<Setup> {
    let size = mount_size(capacity);
    private_dir(dir)?;
    let table = MountTable::read()?;
    if let Some(m) = table.at(dir) {
        if m.fstype != "tmpfs" {
            anyhow::bail!(
                "pool {pool}: {} is already a {} mount, not a pool tmpfs; unmount it (umount {}) and restart",
                dir.display(),
                m.fstype,
                dir.display()
            );
        }
        let opts = format!("size={size}");
        if let Err(e) = mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_REMOUNT | flags(),
            Some(opts.as_str()),
        ) {
            log::warn!(
                "pool {pool}: kept the existing tmpfs at {} but could not resize it to {size} bytes ({e}); it keeps its old size",
                dir.display()
            );
        }
        return Ok(Setup::Adopted);
    }
    let opts = format!("size={size},mpol=bind:{node},huge={thp},mode=0700");
    mount(Some(format!("maru-{pool}").as_str()), dir, Some("tmpfs"), flags(), Some(opts.as_str()))
        .with_context(|| {
            format!(
                "pool {pool}: cannot mount tmpfs on {} with {opts} (is node {node} online with memory? see `maru-devd discover`)",
                dir.display()
            )
        })?;
    Ok(Setup::Mounted)
}

/// Pool tmpfs mounts under `pools_dir` that belong to none of `pools` (left by a config that
/// named other pools): they still hold their chunks' memory.
pub fn leftovers(pools_dir: &Path, pools: &[&str]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let table = MountTable::read()?;
    let mut found: Vec<std::path::PathBuf> = fs::read_dir(pools_dir)
        .with_context(|| format!("cannot list {}", pools_dir.display()))?
        .flatten()
        .filter(|e| !pools.iter().any(|p| e.file_name() == *p))
        .map(|e| e.path())
        .filter(|dir| table.at(dir).is_some_and(|m| m.fstype == "tmpfs"))
        .collect();
    found.sort();
    Ok(found)
}

/// Lazily unmounts a pool's tmpfs and removes its directory: its chunks are gone.
pub fn release(dir: &Path) -> anyhow::Result<()> {
    umount2(dir, MntFlags::MNT_DETACH)
        .with_context(|| format!("cannot unmount {}", dir.display()))?;
    let _ = fs::remove_dir(dir);
    Ok(())
}

fn flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tmpfs_has_headroom_over_the_pool() {
        assert_eq!(mount_size(8 << 20), (8 << 20) + (256 << 10) + (16 << 20));
        assert_eq!(mount_size(64 << 30), (66 << 30) + (16 << 20));
        assert_eq!(mount_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn thp_follows_shmem_enabled() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(thp_mode(root.path()), "never");
        let dir = root.path().join("kernel/mm/transparent_hugepage");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("shmem_enabled"),
            "always within_size advise [never] deny force\n",
        )
        .unwrap();
        assert_eq!(thp_mode(root.path()), "within_size");
        fs::write(
            dir.join("shmem_enabled"),
            "always within_size advise never [deny] force\n",
        )
        .unwrap();
        assert_eq!(thp_mode(root.path()), "never");
    }
}

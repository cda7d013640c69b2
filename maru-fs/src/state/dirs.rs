//! Directory listings and statfs.

use crate::ratelimit::RateLimited;

use super::*;
use fuser::FileHandle;

/// Most directory handles one uid may hold open at once; `opendir` beyond that
/// fails with EMFILE. A handle costs the daemon a few bytes (no listing is kept),
/// the bound keeps a tenant from growing the handle table without limit.
pub(crate) const MAX_DIR_HANDLES_PER_UID: u32 = 1024;

/// Refused `opendir`s are logged at most 5 times a minute.
static DIR_LIMIT: RateLimited = RateLimited::new("opendir refusals (EMFILE)");

/// An open directory handle: which directory, and whose. Listings are not
/// snapshotted: `readdir` walks the directory's entries from the offset the kernel
/// hands back, so a handle costs O(1) memory and a page of entries O(page) work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirHandle {
    ino: u64,
    uid: u32,
}

/// Offsets (the kernel's resume points) of a listing: 1 after `.`, 2 after `..`,
/// `ino + 2` after the entry of inode `ino` (inodes are at least 2, entries come in
/// inode order, so offsets grow along the listing).
const DOT: u64 = 1;
const DOTDOT: u64 = 2;

fn offset_of(ino: u64) -> u64 {
    ino.saturating_add(2)
}

impl Pool {
    /// Keeps [`Pool::listed`] in step with the names: `listed` says whether chunk
    /// `ino` is now a published, listed entry.
    pub(super) fn set_listed(&mut self, ino: u64, listed: bool) {
        if listed {
            self.listed.insert(ino);
        } else {
            self.listed.remove(&ino);
        }
    }
}

impl State {
    /// Opens directory `ino` for uid `uid` and returns its handle.
    pub fn opendir(&mut self, ino: INodeNo, uid: u32, pid: u32) -> Result<FileHandle, Errno> {
        let ino = ino.0;
        if ino != ROOT && !self.pool_nodes.contains_key(&ino) {
            return Err(Errno::ENOTDIR);
        }
        let held = self.dirs_per_uid.entry(uid).or_insert(0);
        if *held >= MAX_DIR_HANDLES_PER_UID {
            DIR_LIMIT.warn(|| {
                format!(
                    "pid {pid} (uid {uid}) holds {MAX_DIR_HANDLES_PER_UID} open directory \
                     handles, the most one uid may hold; opendir refused (EMFILE)"
                )
            });
            return Err(Errno::EMFILE);
        }
        *held += 1;
        let fh = self.alloc_fh();
        self.dirs.insert(fh, DirHandle { ino, uid });
        Ok(FileHandle(fh))
    }

    /// Lists directory handle `fh` from the kernel's `offset` on: calls `add(ino,
    /// next offset, kind, name)` per entry until it returns `true` (reply full).
    /// Every entry present for the whole listing is listed exactly once; entries
    /// added or removed meanwhile may or may not be.
    pub fn readdir(
        &self,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, u64, FileType, &OsStr) -> bool,
    ) -> Result<(), Errno> {
        let fh = fh.0;
        let dir = self.dirs.get(&fh).ok_or(Errno::EBADF)?;
        let ino = dir.ino;
        if offset < DOT && add(ino, DOT, FileType::Directory, OsStr::new(".")) {
            return Ok(());
        }
        if offset < DOTDOT && add(ROOT, DOTDOT, FileType::Directory, OsStr::new("..")) {
            return Ok(());
        }
        // Entries whose offset is past `offset`.
        let first = offset.saturating_sub(1);
        if ino == ROOT {
            let mut pools: Vec<(u64, &String)> = self
                .pools
                .iter()
                .filter(|(_, &p)| p >= first)
                .map(|(n, &p)| (p, n))
                .collect();
            pools.sort_unstable();
            for (pino, name) in pools {
                if add(pino, offset_of(pino), FileType::Directory, OsStr::new(name)) {
                    break;
                }
            }
            return Ok(());
        }
        // A pool removed while open lists as empty.
        let Some(pool) = self.pool_nodes.get(&ino) else {
            return Ok(());
        };
        for &cino in pool.listed.range(first..) {
            let Some(c) = self.chunks.get(&cino) else {
                continue;
            };
            let Some(name) = c.name.as_deref() else {
                continue;
            };
            if c.phase != Phase::Published || is_staging_name(name) {
                continue;
            }
            if add(cino, offset_of(cino), FileType::RegularFile, name) {
                break;
            }
        }
        Ok(())
    }

    /// Closes a directory handle.
    pub fn releasedir(&mut self, fh: FileHandle) {
        let fh = fh.0;
        let Some(dir) = self.dirs.remove(&fh) else {
            return;
        };
        if let Some(held) = self.dirs_per_uid.get_mut(&dir.uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.dirs_per_uid.remove(&dir.uid);
            }
        }
    }

    /// statfs figures for the pool holding `ino` (or all pools for the root):
    /// (blocks, free blocks, files).
    pub fn statfs(&self, ino: INodeNo) -> (u64, u64, u64) {
        let ino = ino.0;
        let pool_ino = if self.pool_nodes.contains_key(&ino) {
            Some(ino)
        } else {
            self.chunks.get(&ino).map(|c| c.pool)
        };
        let (mut cap, mut used, mut files) = (0u64, 0u64, 0u64);
        for p in self.pool_nodes.values() {
            if pool_ino.is_none_or(|pi| pi == p.ino) {
                cap = cap.saturating_add(p.cfg.capacity);
                used = used.saturating_add(p.used.min(p.cfg.capacity));
                files += p.entries.len() as u64;
            }
        }
        (cap / BLOCK, (cap - used) / BLOCK, files)
    }
}

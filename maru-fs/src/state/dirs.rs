//! Directory listings and statfs.

use super::*;

impl State {
    /// Snapshots a directory listing and returns its handle.
    pub fn opendir(&mut self, ino: u64) -> Result<u64, Errno> {
        let mut list = vec![
            DirEntry {
                ino,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: ROOT,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        if ino == ROOT {
            for (name, &pino) in &self.pools {
                list.push(DirEntry {
                    ino: pino,
                    kind: FileType::Directory,
                    name: name.into(),
                });
            }
        } else {
            let pool = self.pool_nodes.get(&ino).ok_or(Errno::ENOTDIR)?;
            for (name, &cino) in &pool.entries {
                let published = self
                    .chunks
                    .get(&cino)
                    .is_some_and(|c| c.phase == Phase::Published);
                if published && !is_staging_name(name) {
                    list.push(DirEntry {
                        ino: cino,
                        kind: FileType::RegularFile,
                        name: name.clone(),
                    });
                }
            }
        }
        let fh = self.alloc_fh();
        self.dirs.insert(fh, list);
        Ok(fh)
    }

    /// The entries of directory handle `fh` from index `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<&[DirEntry], Errno> {
        let list = self.dirs.get(&fh).ok_or(Errno::EBADF)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(list.len());
        Ok(&list[start..])
    }

    /// Drops a directory listing snapshot.
    pub fn releasedir(&mut self, fh: u64) {
        self.dirs.remove(&fh);
    }

    /// statfs figures for the pool holding `ino` (or all pools for the root):
    /// (blocks, free blocks, files).
    pub fn statfs(&self, ino: u64) -> (u64, u64, u64) {
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

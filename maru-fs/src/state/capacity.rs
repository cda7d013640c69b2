//! Sizes and capacity: charging, LRU eviction, setattr, fallocate.

use super::*;

impl State {
    /// The books of every pool, in name order (after returning freed charges).
    pub fn charges(&mut self) -> Vec<crate::PoolCharges> {
        self.reap();
        let mut out = Vec::with_capacity(self.pools.len());
        for ino in self.pools.values() {
            let Some(p) = self.pool_nodes.get(ino) else {
                continue;
            };
            let chunks = self
                .chunks
                .values()
                .filter(|c| c.pool == p.ino)
                .map(|c| crate::ChunkCharge {
                    name: c.name.clone(),
                    published: c.phase == Phase::Published,
                    size: c.size,
                    charged: c.charged,
                })
                .collect();
            let removed_bytes = self
                .reaper
                .pending()
                .filter(|c| c.pool.0 == p.ino)
                .map(|c| c.bytes)
                .sum();
            out.push(crate::PoolCharges {
                name: p.cfg.name.clone(),
                capacity: p.cfg.capacity,
                used_bytes: p.used,
                chunks,
                removed_bytes,
            });
        }
        out
    }

    /// Bytes still free in pool `pool_ino`.
    fn free(&self, pool_ino: u64) -> u64 {
        self.pool_nodes
            .get(&pool_ino)
            .map_or(0, |p| p.cfg.capacity.saturating_sub(p.used))
    }

    /// Charges chunk `ino` for `new_size` bytes (evicting if the policy allows).
    pub(super) fn charge(&mut self, ino: u64, new_size: u64) -> Result<(), Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let pool_ino = c.pool;
        let pool = self.pool_nodes.get(&pool_ino).ok_or(Errno::ENOENT)?;
        // What the store really takes for each size (a devdax extent is whole
        // alignment units), so the pool is full when its memory is.
        let (old, new) = (
            pool.store.charge_for(c.size),
            pool.store.charge_for(new_size),
        );
        if new_size > c.size {
            if pool.cfg.max_chunk_size.is_some_and(|max| new_size > max) {
                return Err(Errno::EFBIG);
            }
            if !pool.online {
                return Err(Errno::ENODEV);
            }
        }
        if new > old {
            let delta = new - old;
            let eviction = pool.cfg.eviction;
            if delta > self.free(pool_ino) {
                self.reap();
            }
            if delta > self.free(pool_ino) {
                if eviction == Eviction::None {
                    return Err(Errno::ENOSPC);
                }
                self.make_room(pool_ino, delta)?;
            }
        }
        let c = self.chunks.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let pool = self.pool_nodes.get_mut(&pool_ino).ok_or(Errno::ENOENT)?;
        if new >= old {
            let d = new - old;
            pool.used = pool.used.saturating_add(d);
            c.charged = c.charged.saturating_add(d);
        } else {
            let d = (old - new).min(c.charged);
            pool.used = pool.used.saturating_sub(d);
            c.charged -= d;
        }
        c.size = new_size;
        Ok(())
    }

    /// Evicts least recently used unpinned published chunks of a pool until
    /// `delta` bytes are free; evicts nothing and fails with `ENOSPC` if even
    /// evicting every candidate could not make that much room.
    ///
    /// A chunk with no open handle may still be mapped by a process that closed
    /// its descriptor (under passthrough the daemon does not see that mapping):
    /// the store is asked, and such a chunk counts as pinned.
    fn make_room(&mut self, pool_ino: u64, delta: u64) -> Result<(), Errno> {
        let pool = self.pool_nodes.get(&pool_ino).ok_or(Errno::ENOENT)?;
        let mut candidates: Vec<(u64, u64, u64)> = pool
            .entries
            .values()
            .filter_map(|ino| {
                let c = self.chunks.get(ino)?;
                (c.phase == Phase::Published && c.opens == 0).then_some((
                    c.last_used,
                    *ino,
                    c.charged,
                ))
            })
            .collect();
        candidates.sort_unstable();
        let need = delta.saturating_sub(self.free(pool_ino));
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for (_, ino, charged) in candidates {
            if freed >= need {
                break;
            }
            let mapped = self
                .chunks
                .get(&ino)
                .and_then(|c| c.name.as_ref())
                .is_some_and(|name| pool.store.in_use(name));
            if !mapped {
                victims.push(ino);
                freed = freed.saturating_add(charged);
            }
        }
        if freed < need {
            return Err(Errno::ENOSPC);
        }
        for ino in victims {
            self.unname(ino, true);
            if let Some(pool) = self.pool_nodes.get_mut(&pool_ino) {
                pool.counters.evictions += 1;
            }
        }
        if self.free(pool_ino) >= delta {
            Ok(())
        } else {
            Err(Errno::ENOSPC)
        }
    }

    /// First half of a size change (`ftruncate`) of chunk `ino` to `new_size`:
    /// checks it and charges it (evicting if the policy allows). The caller then
    /// resizes the returned file *without* holding the state lock (a devdax chunk
    /// may zero or move its bytes), and calls [`State::undo_growth`] with the
    /// returned old size if that fails.
    pub fn truncate_begin(
        &mut self,
        ino: INodeNo,
        new_size: u64,
        owner_change: bool,
    ) -> Result<(Arc<ChunkFile>, u64), Errno> {
        let ino = ino.0;
        let c = self.chunk_for_setattr(ino)?;
        if owner_change || c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let file = c.file.clone().ok_or(Errno::ENOENT)?;
        let old = c.size;
        self.charge(ino, new_size)?;
        Ok((file, old))
    }

    /// The chunk `setattr` changes: `EPERM` for a directory.
    fn chunk_for_setattr(&self, ino: u64) -> Result<&Chunk, Errno> {
        self.chunks.get(&ino).ok_or_else(|| {
            if ino == ROOT || self.pool_nodes.contains_key(&ino) {
                Errno::EPERM
            } else {
                Errno::ENOENT
            }
        })
    }

    /// Changes the permission bits of `ino` (a size change went through
    /// [`State::truncate_begin`] first) and returns its attributes.
    pub fn setattr(
        &mut self,
        ino: INodeNo,
        mode: Option<u32>,
        owner_change: bool,
    ) -> Result<FileAttr, Errno> {
        let ino = ino.0;
        let c = self.chunk_for_setattr(ino)?;
        if owner_change || (mode.is_some() && c.phase == Phase::Published) {
            return Err(Errno::EPERM);
        }
        if let Some(mode) = mode {
            let perm = (mode & 0o777) as u16;
            if let Some(c) = self.chunks.get_mut(&ino) {
                if let (Some(f), Some(pool)) = (&c.file, self.pool_nodes.get(&c.pool)) {
                    let meta = ChunkMeta {
                        uid: c.uid,
                        mode: perm,
                        created: c.created,
                    };
                    if let Err(e) = pool.store.set_meta(f, &meta) {
                        log::warn!(
                            "pool {}: cannot record mode of {:?}: {e}",
                            pool.cfg.name,
                            c.name
                        );
                    }
                }
                c.mode = perm;
            }
        }
        self.attr_of(ino)
    }

    /// First half of `fallocate` on a staging chunk: checks the request and
    /// charges any growth like `ftruncate` does. The caller then allocates with
    /// [`crate::backing::allocate`] on the returned file *without* holding the state
    /// lock (zeroing memory takes time), and calls [`State::undo_growth`] with the
    /// returned old size if that fails.
    ///
    /// A writer that calls `fallocate(fd, 0, 0, size)` instead of `ftruncate` gets
    /// its size charged and its memory committed in one request: its page faults are
    /// then cheap, and a full backing tmpfs fails here (ENOSPC) instead of with
    /// SIGBUS at a page fault.
    pub fn fallocate_begin(
        &mut self,
        ino: INodeNo,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(Arc<ChunkFile>, Option<u64>), Errno> {
        let ino = ino.0;
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let keep_size = match mode {
            0 => false,
            libc::FALLOC_FL_KEEP_SIZE => true,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let file = c.file.clone().ok_or(Errno::EBADF)?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let old = c.size;
        if end <= old {
            return Ok((file, None));
        }
        if keep_size {
            // Memory past the end would be used without being charged.
            return Err(Errno::EOPNOTSUPP);
        }
        self.charge(ino, end)?;
        Ok((file, Some(old)))
    }

    /// Charges growth that bypassed the daemon, for every chunk open for writing.
    ///
    /// Under passthrough `write(2)` goes straight to the backing file, so a writer
    /// can extend a staging chunk past what `ftruncate`/`fallocate` charged (or
    /// one it never sized). The kernel enforces no per-file limit on a tmpfs file
    /// (its seals are only for memfds, and `RLIMIT_FSIZE` is the writer's own), so
    /// the daemon looks: the reaper thread calls this every tick, and it is cheap
    /// (one `fstat` per chunk with a writable handle). See [`State::settle_growth`].
    pub fn scan_growth(&mut self) {
        let growing: Vec<u64> = self
            .chunks
            .iter()
            .filter(|(_, c)| c.writers > 0 && c.name.is_some())
            .map(|(ino, _)| *ino)
            .collect();
        for ino in growing {
            self.settle_growth(ino);
        }
    }

    /// Compares chunk `ino`'s backing file with its charge. A staging chunk that
    /// grew is charged for the growth (evicting if the pool allows); if the pool
    /// cannot take it (`ENOSPC`, `EFBIG` past `max_chunk_size`, offline), the
    /// file is cut back to what is charged: the bytes the writer wrote past its
    /// charge are gone, and so is the memory nobody paid for. A published chunk
    /// that grew (its writer kept a descriptor) is always cut back to its
    /// published size: it is sealed, and its readers were told that size.
    pub(super) fn settle_growth(&mut self, ino: u64) {
        let Some(c) = self.chunks.get(&ino) else {
            return;
        };
        let Some(file) = c.file.clone() else {
            return;
        };
        if file.as_file().is_none() || c.name.is_none() {
            // Devdax data goes through the daemon, which charges it.
            return;
        }
        let actual = match file.len() {
            Ok(n) => n,
            Err(e) => {
                log::warn!("cannot stat chunk {:?} to check its size: {e}", c.name);
                return;
            }
        };
        let charged_size = c.size;
        if c.phase == Phase::Staging && actual > charged_size {
            let Err(e) = self.charge(ino, actual) else {
                return;
            };
            let (name, pool) = match self.chunks.get(&ino) {
                Some(c) => (c.name.clone(), c.pool),
                None => return,
            };
            let pool = self
                .pool_nodes
                .get(&pool)
                .map_or_else(String::new, |p| p.cfg.name.clone());
            log::warn!(
                "pool {pool}: staging chunk {name:?} grew by write(2) to {actual} bytes, \
                 which cannot be charged ({e:?}): cutting it back to its {charged_size} charged bytes"
            );
            if let Err(e) = file.set_len(charged_size) {
                log::error!("pool {pool}: cannot cut back {name:?}: {e}");
            }
        } else if c.phase == Phase::Published && actual != charged_size {
            // A published chunk is sealed, but its writer may keep the descriptor
            // it published through, and passthrough lets it pwrite past the end.
            // The chunk is what was published: the rest is cut off, uncharged.
            log::warn!(
                "published chunk {:?} was written to {actual} bytes after publishing \
                 {charged_size}: cutting it back",
                c.name
            );
            if let Err(e) = file.set_len(charged_size) {
                log::error!("cannot cut back published chunk {:?}: {e}", c.name);
            }
        }
    }

    /// Returns the charge taken by a `fallocate` that then failed.
    pub fn undo_growth(&mut self, ino: INodeNo, old: u64) {
        let ino = ino.0;
        let _ = self.charge(ino, old);
    }
}

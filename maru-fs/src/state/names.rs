//! Names and handles: lookup, create, open, release, unlink, rename (publish).

use crate::ratelimit::RateLimited;

use super::*;
use fuser::FileHandle;

/// Refused `create`s (a uid at its staging cap) are logged at most 5 times a minute.
static STAGING_LIMIT: RateLimited = RateLimited::new("create refusals (EMFILE)");

impl State {
    /// Looks `name` up in directory `parent`; `Ok(None)` means "no such entry"
    /// (cacheable by the kernel as a negative entry).
    pub fn lookup(&mut self, parent: INodeNo, name: &OsStr) -> Result<Option<FileAttr>, Errno> {
        let parent = parent.0;
        if parent == ROOT {
            let Some(&ino) = name.to_str().and_then(|n| self.pools.get(n)) else {
                return Ok(None);
            };
            return self.attr_of(ino).map(Some);
        }
        if index::is_index_name(name) {
            return Ok(self.index_lookup(parent));
        }
        let pool = self.pool_nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        let is_key = !is_staging_name(name);
        if is_key {
            pool.counters.lookups += 1;
        }
        let Some(&ino) = pool.entries.get(name) else {
            return Ok(None);
        };
        let Some(c) = self.chunks.get_mut(&ino) else {
            return Ok(None);
        };
        if is_key && c.phase == Phase::Published {
            pool.counters.hits += 1;
        }
        c.nlookup += 1;
        self.attr_of(ino).map(Some)
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: INodeNo, n: u64) {
        let ino = ino.0;
        if let Some(c) = self.chunks.get_mut(&ino) {
            c.nlookup = c.nlookup.saturating_sub(n);
            self.drop_if_orphan(ino);
        }
    }

    /// Forgets a chunk nobody can reach any more (no name, no handle, no kernel ref).
    fn drop_if_orphan(&mut self, ino: u64) {
        if let Some(c) = self.chunks.get(&ino) {
            if c.name.is_none() && c.opens == 0 && c.nlookup == 0 {
                self.chunks.remove(&ino);
            }
        }
    }

    /// Removes chunk `ino`'s name and backing file; its charge goes when the last
    /// handle does. Queues a kernel dentry invalidation if `notify`.
    pub(super) fn unname(&mut self, ino: u64, notify: bool) {
        if self.is_publishing(ino) {
            // A chunk being published keeps its name until the publish ends.
            return;
        }
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        let Some(name) = c.name.take() else {
            return;
        };
        if c.phase == Phase::Published {
            let pool = c.pool;
            self.index_remove(pool, &name);
        }
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        if let Some(pool) = self.pool_nodes.get_mut(&c.pool) {
            pool.entries.remove(&name);
            pool.set_listed(ino, false);
            // Until its memory is freed (last descriptor and last mapping gone),
            // the chunk stays charged; the reaper returns the charge then.
            let watched = pool.store.file_path(&name).is_some_and(|path| {
                let charge = Charge {
                    pool: INodeNo(pool.ino),
                    bytes: c.charged,
                };
                self.reaper.watch(&path, charge)
            });
            if watched {
                c.charged = 0;
            } else if c.opens == 0 {
                pool.used = pool.used.saturating_sub(c.charged);
                c.charged = 0;
            }
            if let Err(e) = pool.store.remove(&name) {
                log::warn!(
                    "pool {}: cannot remove backing file {:?} of chunk {:?}: {e}",
                    pool.cfg.name,
                    pool.store.path().join(&name),
                    name
                );
            }
            if notify {
                self.notices.push(Notice::Delete {
                    parent: pool.ino,
                    child: ino,
                    name,
                });
            }
        }
        self.drop_if_orphan(ino);
        self.reap();
    }

    /// Creates and opens a staging chunk `name` in pool `parent`.
    pub fn create(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        (uid, pid): (u32, u32),
        open_backing: OpenBacking<'_>,
    ) -> Result<Opened, Errno> {
        let parent = parent.0;
        let passthrough = self.passthrough;
        let max_staging = self.max_staging_per_uid;
        let held = self.staging_per_uid.get(&uid).copied().unwrap_or(0);
        let pool = self.pool_mut(parent)?;
        if !is_staging_name(name) {
            // Keys only come into being by publishing a staging chunk.
            return Err(Errno::EPERM);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if !pool.online {
            return Err(Errno::ENODEV);
        }
        if pool.entries.contains_key(name) || index::is_index_name(name) {
            return Err(Errno::EEXIST);
        }
        if uid != 0 && held >= max_staging {
            STAGING_LIMIT.warn(|| {
                format!(
                    "pid {pid} (uid {uid}) holds {held} staging chunks open, the most one uid \
                     may hold ({max_staging}); create refused (EMFILE)"
                )
            });
            return Err(Errno::EMFILE);
        }
        let meta = ChunkMeta {
            uid,
            mode: (mode & 0o777) as u16,
            created: SystemTime::now(),
        };
        let file = pool.store.create(name, &meta).map_err(|e| {
            log::warn!(
                "pool {}: cannot create backing file {:?}: {e}",
                pool.cfg.name,
                pool.store.path().join(name)
            );
            errno_of(&e)
        })?;
        let direct_io = !pool.store.passthrough();
        let backing = if passthrough && pool.store.passthrough() {
            let opened = match file.as_file() {
                Some(f) => open_backing(f),
                None => Err(io::Error::from_raw_os_error(libc::EIO)),
            };
            match opened {
                Ok(id) => Some(Arc::new(id)),
                Err(e) => {
                    log::error!(
                        "pool {}: cannot register {:?} for passthrough: {e}",
                        pool.cfg.name,
                        pool.store.path().join(name)
                    );
                    let _ = pool.store.remove(name);
                    return Err(errno_of(&e));
                }
            }
        } else {
            None
        };
        pool.counters.creates += 1;
        let pool_ino = pool.ino;
        let ino = self.alloc_ino();
        let fh = self.alloc_fh();
        let tick = self.next_tick();
        if let Some(pool) = self.pool_nodes.get_mut(&pool_ino) {
            pool.entries.insert(name.to_os_string(), ino);
        }
        let chunk = Chunk {
            pool: pool_ino,
            name: Some(name.to_os_string()),
            phase: Phase::Staging,
            size: 0,
            charged: 0,
            uid,
            mode: meta.mode,
            created: meta.created,
            opens: 1,
            lent: 0,
            writers: 1,
            file: Some(Arc::new(file)),
            backing: backing.clone(),
            nlookup: 1,
            last_used: tick,
            xattrs: Vec::new(),
            slot: (uid != 0).then_some(uid),
        };
        if uid != 0 {
            *self.staging_per_uid.entry(uid).or_insert(0) += 1;
        }
        let attr = self.chunk_attr(ino, &chunk);
        self.chunks.insert(ino, chunk);
        self.handles.insert(fh, ino);
        self.writable.insert(fh);
        Ok(Opened {
            fh: FileHandle(fh),
            attr,
            backing,
            direct_io,
        })
    }

    /// Opens chunk `ino`; `write` is whether the open asks for write access.
    pub fn open(
        &mut self,
        ino: INodeNo,
        write: bool,
        open_backing: OpenBacking<'_>,
    ) -> Result<Opened, Errno> {
        let ino = ino.0;
        if let Some(opened) = self.index_open(ino, write, open_backing) {
            return opened;
        }
        let passthrough = self.passthrough;
        let tick = self.next_tick();
        let c = self.chunks.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if write && c.phase == Phase::Published {
            // Published chunks are sealed.
            return Err(Errno::EPERM);
        }
        let pool = self.pool_nodes.get(&c.pool).ok_or(Errno::ENOENT)?;
        // A registered passthrough backing needs no descriptor of ours to be shared.
        if c.file.is_none() && c.backing.is_none() {
            let Some(name) = &c.name else {
                // Unlinked or evicted and no handle keeps it alive.
                return Err(Errno::ENOENT);
            };
            let file = pool
                .store
                .open_chunk(name)
                .map_err(|e| backing_open_failed(pool, name, "", &e))?;
            c.file = Some(Arc::new(file));
        }
        let direct_io = !pool.store.passthrough();
        if c.backing.is_none() && passthrough && pool.store.passthrough() {
            let opened = match c.file.as_deref().and_then(ChunkFile::as_file) {
                Some(f) => open_backing(f),
                None => Err(io::Error::from_raw_os_error(libc::EIO)),
            };
            match opened {
                Ok(id) => c.backing = Some(Arc::new(id)),
                Err(e) => {
                    log::error!(
                        "pool {}: cannot register chunk {:?} for passthrough: {e}",
                        pool.cfg.name,
                        c.name
                    );
                    if c.opens == 0 {
                        c.file = None;
                    }
                    return Err(errno_of(&e));
                }
            }
        }
        if c.backing.is_some() && c.phase == Phase::Published && c.writers == 0 {
            // The kernel holds the backing file through the registration (the
            // backing id keeps its own reference), and a sealed chunk without
            // writers needs nothing else from the file: no size to watch, no
            // truncate, fallocate or xattr to apply. Keeping a descriptor per open
            // chunk let one reader holding ~1,000 chunks exhaust the daemon's
            // RLIMIT_NOFILE (every other user's create then failed with EMFILE).
            c.file = None;
        }
        c.opens += 1;
        if write {
            c.writers += 1;
        }
        c.last_used = tick;
        let backing = c.backing.clone();
        let attr = self.attr_of(ino)?;
        let fh = self.alloc_fh();
        self.handles.insert(fh, ino);
        if write {
            self.writable.insert(fh);
        }
        Ok(Opened {
            fh: FileHandle(fh),
            attr,
            backing,
            direct_io,
        })
    }

    /// Releases handle `fh`. The last handle of a staging chunk reclaims it; the
    /// last handle of an unlinked chunk returns its space.
    pub fn release(&mut self, fh: FileHandle) {
        let fh = fh.0;
        let Some(ino) = self.handles.remove(&fh) else {
            return;
        };
        let was_writer = self.writable.remove(&fh);
        let Some(c) = self.chunks.get_mut(&ino) else {
            self.index_release(ino);
            return;
        };
        if was_writer {
            c.writers = c.writers.saturating_sub(1);
            if c.writers == 0 && (c.opens > 1 || c.phase == Phase::Published) {
                // The last writer went and the chunk stays: growth it left behind
                // is settled now, not by a scan that no longer looks at it.
                self.settle_growth(ino);
            }
        }
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        c.opens = c.opens.saturating_sub(1);
        self.settle_slot(ino);
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        if c.opens > 0 {
            return;
        }
        c.backing = None;
        c.file = None;
        if c.name.is_none() {
            if let Some(pool) = self.pool_nodes.get_mut(&c.pool) {
                pool.used = pool.used.saturating_sub(c.charged);
            }
            c.charged = 0;
            self.drop_if_orphan(ino);
            self.reap();
        } else if c.phase == Phase::Staging {
            // The writer let go without publishing (a publish in flight decides
            // when it ends: `publish_end`).
            self.unname(ino, true);
        }
    }

    /// Unlinks `name` from pool `parent`. A published key of a shared pool goes
    /// from the cluster first: that is left to the caller, outside the lock, with
    /// the ticket returned, then [`State::unlink_end`].
    pub fn unlink(&mut self, parent: INodeNo, name: &OsStr) -> Result<Option<RemoveTicket>, Errno> {
        let parent = parent.0;
        let pool = self.pool_mut(parent)?;
        if index::is_index_name(name) {
            return Err(Errno::EPERM);
        }
        let ino = *pool.entries.get(name).ok_or(Errno::ENOENT)?;
        if self.is_publishing(ino) {
            return Err(Errno::EBUSY);
        }
        if let Some(ticket) = self.remove_needs_cluster(parent, ino, name) {
            return Ok(Some(ticket));
        }
        // The kernel drops its own dentry for an unlink it sent.
        self.unname(ino, false);
        if let Ok(pool) = self.pool_mut(parent) {
            pool.counters.removals += 1;
        }
        Ok(None)
    }

    /// Before renaming `name` to `newname` in pool `parent`: if that publishes a
    /// chunk whose data the daemon serves (devdax), its open data, which the caller
    /// seals ([`ChunkFile::seal`]: write-back and checksum) without holding the
    /// state lock, then calls [`State::rename`] (and unseals it if that fails).
    pub fn publish_prepare(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newname: &OsStr,
    ) -> Option<Arc<ChunkFile>> {
        let parent = parent.0;
        if is_staging_name(newname) {
            return None;
        }
        let pool = self.pool_nodes.get(&parent)?;
        if pool.store.passthrough() {
            return None;
        }
        let c = self.chunks.get(pool.entries.get(name)?)?;
        (c.phase == Phase::Staging)
            .then(|| c.file.clone())
            .flatten()
    }

    /// Renames within a pool; publishing is `staging name -> key`. A publish on a
    /// shared pool is left half done: the caller asks the cluster with the ticket
    /// returned, outside the lock, then calls [`State::publish_end`].
    pub fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: u32,
    ) -> Result<Option<PublishTicket>, Errno> {
        let parent = parent.0;
        let newparent = newparent.0;
        if parent == ROOT || newparent == ROOT {
            return Err(Errno::EPERM);
        }
        if parent != newparent {
            return Err(Errno::EXDEV);
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        if newname.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let pool = self.pool_nodes.get(&parent).ok_or(Errno::ENOENT)?;
        let ino = *pool.entries.get(name).ok_or(Errno::ENOENT)?;
        if name == newname {
            return Ok(None);
        }
        if self.is_publishing(ino) {
            return Err(Errno::EBUSY);
        }
        if pool.entries.contains_key(newname)
            || index::is_index_name(newname)
            || self.key_publishing(parent, newname)
        {
            // First writer wins, with or without RENAME_NOREPLACE.
            return Err(Errno::EEXIST);
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let publish = !is_staging_name(newname);
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        if publish {
            // write(2) past the ftruncate size never reached us: charge it now.
            let actual = match &c.file {
                Some(f) => f.len().unwrap_or(c.size),
                None => c.size,
            };
            if actual > c.size {
                self.charge(ino, actual)?;
            }
        }
        let pool = self.pool_nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        let pending = pool
            .store
            .rename_begin(name, newname)
            .map_err(|e| errno_of(&e))?;
        if let Some(pending) = pending {
            return Ok(Some(
                self.publish_reserved(parent, ino, name, newname, pending),
            ));
        }
        self.renamed(parent, ino, name, newname, publish);
        Ok(None)
    }

    /// Records chunk `ino`'s rename from `name` to `newname` in pool `parent`, done
    /// by its store (`publish`: `newname` is a key).
    pub(super) fn renamed(
        &mut self,
        parent: u64,
        ino: u64,
        name: &OsStr,
        newname: &OsStr,
        publish: bool,
    ) {
        let Some(pool) = self.pool_nodes.get_mut(&parent) else {
            return;
        };
        pool.entries.remove(name);
        pool.entries.insert(newname.to_os_string(), ino);
        pool.set_listed(ino, publish && !is_staging_name(newname));
        if publish {
            pool.counters.publishes += 1;
        }
        let tick = self.next_tick();
        if let Some(c) = self.chunks.get_mut(&ino) {
            c.name = Some(newname.to_os_string());
            if publish {
                c.phase = Phase::Published;
                c.last_used = tick;
            }
        }
        if publish {
            self.settle_slot(ino);
            self.index_insert(parent, newname);
        }
    }

    /// Gives back chunk `ino`'s staging slot once the daemon no longer keeps a
    /// descriptor for its creator: when it is published and no writer is left, or
    /// when its last handle is gone.
    fn settle_slot(&mut self, ino: u64) {
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        let done = c.opens == 0 || (c.phase == Phase::Published && c.writers == 0);
        if !done {
            return;
        }
        let Some(uid) = c.slot.take() else {
            return;
        };
        if let Some(held) = self.staging_per_uid.get_mut(&uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.staging_per_uid.remove(&uid);
            }
        }
    }
}

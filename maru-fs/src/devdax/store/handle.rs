//! Open chunks: reads, writes and resizes of a chunk's bytes, copied without
//! the pool's lock (a per-chunk lock keeps the extent still meanwhile), and
//! sealing ahead of a publish.

use super::*;

/// Shared hold on a chunk's bytes (a panic elsewhere leaves them as they were).
fn shared(data: &RwLock<()>) -> RwLockReadGuard<'_, ()> {
    data.read().unwrap_or_else(|e| e.into_inner())
}

/// Exclusive hold on a chunk's bytes.
fn exclusive(data: &RwLock<()>) -> RwLockWriteGuard<'_, ()> {
    data.write().unwrap_or_else(|e| e.into_inner())
}

/// What resizing a chunk leaves to do outside the pool's lock.
#[derive(Debug, Clone, Copy)]
enum Resize {
    /// Nothing: done under the lock (same extent, or a shrink).
    Done,
    /// The extent grew in place: zero the `len` new bytes at `at`, then commit
    /// extent `off`+`ext`.
    Zero {
        at: u64,
        len: u64,
        off: u64,
        ext: u64,
    },
    /// The chunk moves: copy its `size` bytes from `from` to the new extent
    /// `to`+`ext`, zero the rest of it, then free `from`+`old_ext`.
    Move {
        from: u64,
        old_ext: u64,
        to: u64,
        ext: u64,
        size: u64,
    },
}

/// Whether chunk `e`'s bytes and size may change: only a staging chunk's, before
/// it is sealed for publishing.
fn writable(e: &Entry) -> io::Result<()> {
    if e.rec.state == RecordState::Staging && e.sealed.is_none() {
        Ok(())
    } else {
        Err(errno(libc::EPERM))
    }
}

impl Inner {
    /// Starts setting chunk `id`'s size to `new`: decides the extent (reserving
    /// any new one), and does what is quick here. Bytes of the extent past the size
    /// are kept zero, so a grown chunk reads zeros there and never another chunk's
    /// old data. The caller finishes a returned [`Resize`] with [`Resize::copy`]
    /// outside the lock, then [`Inner::end_len`] (or [`Inner::abort_len`]).
    fn begin_len(&mut self, id: u64, new: u64) -> io::Result<Resize> {
        let (off, ext, size) = {
            let e = self.entry(id)?;
            writable(e)?;
            (e.rec.extent_off, e.rec.extent_len, e.rec.size)
        };
        if new == size {
            return Ok(Resize::Done);
        }
        let new_ext = self.alloc.round(new);
        if new_ext > self.header.data_len {
            return Err(errno(libc::ENOSPC));
        }
        if new_ext == ext {
            if new < size {
                self.map.zero(off + new, size - new)?;
            }
            self.set_extent(id, off, ext, new)?;
            return Ok(Resize::Done);
        }
        if new_ext < ext {
            // At most one alignment unit to zero: quick enough to do here.
            self.map.zero(off + new, new_ext - new)?;
            self.alloc.free(off + new_ext, ext - new_ext);
            let new_off = if new_ext == 0 { 0 } else { off };
            self.set_extent(id, new_off, new_ext, new)?;
            return Ok(Resize::Done);
        }
        if ext > 0 && self.alloc.grow_in_place(off, ext, new_ext) {
            return Ok(Resize::Zero {
                at: off + ext,
                len: new_ext - ext,
                off,
                ext: new_ext,
            });
        }
        let to = match self.alloc.alloc(new_ext) {
            Some(to) => to,
            None if self.claim_arena() => self
                .alloc
                .alloc(new_ext)
                .ok_or_else(|| errno(libc::ENOSPC))?,
            None => return Err(errno(libc::ENOSPC)),
        };
        Ok(Resize::Move {
            from: off,
            old_ext: ext,
            to,
            ext: new_ext,
            size,
        })
    }

    /// Commits a resize of chunk `id` to `new` bytes whose copy is done.
    fn end_len(&mut self, id: u64, new: u64, plan: Resize) -> io::Result<()> {
        match plan {
            Resize::Done => Ok(()),
            Resize::Zero { off, ext, .. } => self.set_extent(id, off, ext, new),
            Resize::Move {
                from,
                old_ext,
                to,
                ext,
                ..
            } => {
                self.alloc.free(from, old_ext);
                self.set_extent(id, to, ext, new)
            }
        }
    }

    /// Gives back the extent a resize reserved (its copy failed).
    fn abort_len(&mut self, plan: Resize) {
        match plan {
            Resize::Done => {}
            Resize::Zero { at, len, .. } => self.alloc.free(at, len),
            Resize::Move { to, ext, .. } => self.alloc.free(to, ext),
        }
    }

    /// Records chunk `id`'s extent and size, and writes its record.
    fn set_extent(&mut self, id: u64, off: u64, ext: u64, size: u64) -> io::Result<()> {
        {
            let e = self.entry_mut(id)?;
            e.rec.extent_off = off;
            e.rec.extent_len = ext;
            e.rec.size = size;
        }
        self.write_record(id)
    }
}

impl Resize {
    /// The slow part of a resize, done without the pool's lock (the caller holds
    /// the chunk's bytes exclusively).
    fn copy(&self, map: &Mapping) -> io::Result<()> {
        match *self {
            Resize::Done => Ok(()),
            Resize::Zero { at, len, .. } => map.zero(at, len),
            Resize::Move {
                from,
                to,
                ext,
                size,
                ..
            } => {
                map.copy_within(from, to, size)?;
                map.zero(to + size, ext - size)
            }
        }
    }
}

impl ChunkHandle {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The chunk's size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.lock().entry(self.id)?.rec.size)
    }

    /// Resizes the chunk (allocating, growing or shrinking its extent); `ENOSPC`
    /// when the data area has no free extent that long, `EPERM` once it is sealed
    /// or published. Zeroing and moving bytes happen outside the pool's lock.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let _bytes = exclusive(&self.data);
        self.resize(size)
    }

    /// [`ChunkHandle::set_len`] for a caller holding the chunk's bytes exclusively.
    fn resize(&self, size: u64) -> io::Result<()> {
        let plan = {
            let mut inner = self.lock();
            inner.owner.check()?;
            inner.begin_len(self.id, size)?
        };
        if let Err(e) = plan.copy(&self.map) {
            self.lock().abort_len(plan);
            return Err(e);
        }
        self.lock().end_len(self.id, size, plan)
    }

    /// Reads from `offset`; returns fewer bytes (0 at or past the end) at the end.
    /// The copy is made outside the pool's lock.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _bytes = shared(&self.data);
        let (at, n) = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            if offset >= e.rec.size {
                return Ok(0);
            }
            (
                e.rec.extent_off + offset,
                (e.rec.size - offset).min(buf.len() as u64) as usize,
            )
        };
        self.map.read(at, &mut buf[..n])?;
        Ok(n)
    }

    /// Writes `data` at `offset`, growing the chunk if it ends past the size
    /// (`EPERM` once it is sealed or published). The copy is made outside the
    /// pool's lock.
    pub fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| errno(libc::EFBIG))?;
        {
            let _bytes = shared(&self.data);
            let at = {
                let inner = self.lock();
                inner.owner.check()?;
                let e = inner.entry(self.id)?;
                writable(e)?;
                (end <= e.rec.size).then_some(e.rec.extent_off)
            };
            if let Some(at) = at {
                return self.map.write(at + offset, data);
            }
        }
        // The chunk grows: its extent may move, so nothing else touches its bytes.
        let _bytes = exclusive(&self.data);
        if end > self.len()? {
            self.resize(end)?;
        }
        let at = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            writable(e)?;
            e.rec.extent_off
        };
        self.map.write(at + offset, data)
    }

    /// Seals the staging chunk ahead of publishing: waits for its reads and
    /// writes in flight, writes its bytes back from the CPU caches (a shared pool
    /// without cache coherence) and takes its data checksum, all outside the
    /// pool's lock; from then on its bytes and size cannot change (`EPERM`) until
    /// [`ChunkHandle::unseal`]. Publishing then takes this checksum.
    pub fn seal(&self) -> io::Result<()> {
        let _bytes = exclusive(&self.data);
        let (at, size, write_back) = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            writable(e)?;
            (
                e.rec.extent_off,
                e.rec.size,
                inner.shared.is_some() && !inner.coherent,
            )
        };
        if write_back {
            self.map.flush(at, size)?;
        }
        let crc = self.map.crc(at, size)?;
        self.lock().entry_mut(self.id)?.sealed = Some(crc);
        Ok(())
    }

    /// Lifts [`ChunkHandle::seal`] from a chunk that was not published after all.
    pub fn unseal(&self) {
        let mut inner = self.lock();
        if let Ok(e) = inner.entry_mut(self.id) {
            if e.rec.state == RecordState::Staging {
                e.sealed = None;
            }
        }
    }

    /// Sets the permission bits recorded for the chunk.
    pub fn set_mode(&self, mode: u16) -> io::Result<()> {
        let mut inner = self.lock();
        inner.entry_mut(self.id)?.rec.mode = u32::from(mode);
        inner.write_record(self.id)
    }

    /// Sets (or with `None` removes) one of the writer's `user.*` xattrs; `ENOSPC`
    /// when the record has no room for it.
    pub fn set_xattr(&self, name: &OsStr, value: Option<&[u8]>) -> io::Result<()> {
        let mut inner = self.lock();
        let e = inner.entry_mut(self.id)?;
        let mut xattrs = e.rec.xattrs.clone();
        xattrs.retain(|(n, _)| n != name.as_bytes());
        if let Some(v) = value {
            xattrs.push((name.as_bytes().to_vec(), v.to_vec()));
        }
        if xattr_bytes(xattrs.iter().map(|(n, v)| (&n[..], &v[..]))) > XATTR_SPACE {
            return Err(errno(libc::ENOSPC));
        }
        let old = std::mem::replace(&mut e.rec.xattrs, xattrs);
        if let Err(err) = inner.write_record(self.id) {
            if let Ok(e) = inner.entry_mut(self.id) {
                e.rec.xattrs = old;
            }
            return Err(err);
        }
        Ok(())
    }

    /// `(device offset, length)` of the chunk's extent (`(0, 0)` while it has none).
    pub fn extent(&self) -> Extent {
        self.lock().extent(self.id).unwrap_or_default()
    }
}

impl Drop for ChunkHandle {
    fn drop(&mut self) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(&self.id) {
            e.handles = e.handles.saturating_sub(1);
        }
        inner.drop_if_unused(self.id);
    }
}

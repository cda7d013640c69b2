//! Data through the daemon (devdax chunks, and files when passthrough is
//! unavailable). Only the decision is made under the state lock: the caller
//! copies with the returned [`ChunkFile`] after dropping it.

use super::*;

impl State {
    /// Counts a READ of chunk `ino` and hands back its data to read from.
    pub fn read_begin(&mut self, ino: INodeNo) -> Result<Arc<ChunkFile>, Errno> {
        let ino = ino.0;
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.read_requests += 1;
        }
        c.file.clone().ok_or(Errno::EBADF)
    }

    /// Counts a WRITE of `len` bytes at `offset` to chunk `ino`, refuses it on a
    /// published chunk, charges growth past the chunk's size (evicting if the
    /// pool allows), and hands back the data to write to.
    pub fn write_begin(
        &mut self,
        ino: INodeNo,
        offset: u64,
        len: usize,
    ) -> Result<Arc<ChunkFile>, Errno> {
        let ino = ino.0;
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.write_requests += 1;
        }
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let end = offset.saturating_add(len as u64);
        if end > c.size {
            self.charge(ino, end)?;
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        c.file.clone().ok_or(Errno::EBADF)
    }
}

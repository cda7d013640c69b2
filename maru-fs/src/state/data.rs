//! Data through the daemon (only when passthrough is unavailable).

use super::*;

impl State {
    /// Reads through the daemon (only when passthrough is unavailable).
    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.read_requests += 1;
        }
        let f = c.file.as_ref().ok_or(Errno::EBADF)?;
        let mut buf = vec![0u8; size as usize];
        let n = f.read_at(&mut buf, offset).map_err(|e| errno_of(&e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes through the daemon (only when passthrough is unavailable).
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.write_requests += 1;
        }
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > c.size {
            self.charge(ino, end)?;
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let f = c.file.as_ref().ok_or(Errno::EBADF)?;
        f.write_all_at(data, offset).map_err(|e| errno_of(&e))?;
        Ok(data.len() as u32)
    }
}

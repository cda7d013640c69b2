//! The daemon's shared mapping of a pool's byte range of the device.

use std::fs::File;
use std::io;

use super::crc::Crc32c;
use crate::sys::mem::Region;

/// A `MAP_SHARED` read-write mapping of `len` bytes of a device (or stand-in
/// file) from byte `offset`. Other processes map the same device node and read or
/// write the same memory at any time; every access here copies bytes in or out
/// and never hands out a reference, so nothing relies on the bytes staying put.
#[derive(Debug)]
pub(crate) struct Mapping {
    region: Region,
}

fn out_of_range() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// `n` as a length in memory, or `EINVAL`.
fn length(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| out_of_range())
}

impl Mapping {
    /// Maps `[offset, offset + len)` of `file` (both multiples of the device alignment).
    pub fn new(file: &File, offset: u64, len: u64) -> io::Result<Mapping> {
        Ok(Mapping {
            region: Region::new(file, offset, len)?,
        })
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.region.read(off, buf)
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        self.region.write(off, data)
    }

    /// Sets `n` bytes at `off` to zero.
    pub fn zero(&self, off: u64, n: u64) -> io::Result<()> {
        self.region.zero(off, length(n)?)
    }

    /// Copies `n` bytes from `from` to `to` inside the mapping (ranges may overlap).
    pub fn copy_within(&self, from: u64, to: u64, n: u64) -> io::Result<()> {
        self.region.copy_within(from, to, length(n)?)
    }

    /// Writes the CPU cache lines covering `[off, off + n)` back to memory and
    /// invalidates them, then fences. Memory that another host reads or writes
    /// without hardware coherence (a CXL device shared by several hosts) needs this:
    /// after our stores, so the device holds them; before our loads, so they come
    /// from the device and not from a line cached before the other host wrote.
    pub fn flush(&self, off: u64, n: u64) -> io::Result<()> {
        self.region.flush(off, length(n)?)
    }

    /// CRC-32C of `n` bytes at `off`, read in pieces through a bounce buffer.
    pub fn crc(&self, off: u64, n: u64) -> io::Result<u32> {
        const PIECE: u64 = 1 << 20;
        let mut buf = vec![0u8; PIECE.min(n) as usize];
        let mut state = Crc32c::new();
        let mut done = 0;
        while done < n {
            let k = PIECE.min(n - done) as usize;
            self.read(off + done, &mut buf[..k])?;
            state.update(&buf[..k]);
            done += k as u64;
        }
        Ok(state.finish())
    }
}

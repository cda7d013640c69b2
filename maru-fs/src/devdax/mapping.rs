//! The daemon's shared mapping of a pool's byte range of the device.

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};

use super::crc::Crc32c;

/// A `MAP_SHARED` read-write mapping of `len` bytes of a device (or stand-in
/// file) from byte `offset`. Other processes map the same device node and read or
/// write the same memory at any time; every access here copies bytes in or out
/// and never hands out a reference, so nothing relies on the bytes staying put.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: MmapRaw,
    len: u64,
}

fn out_of_range() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl Mapping {
    /// Maps `[offset, offset + len)` of `file` (both multiples of the device alignment).
    pub fn new(file: &File, offset: u64, len: u64) -> io::Result<Mapping> {
        let map_len = usize::try_from(len).map_err(|_| out_of_range())?;
        let map = MmapOptions::new()
            .offset(offset)
            .len(map_len)
            .map_raw(file)?;
        Ok(Mapping { map, len })
    }

    /// Start pointer of `[off, off + n)`, or `EINVAL` if that is not inside the mapping.
    fn at(&self, off: u64, n: usize) -> io::Result<*mut u8> {
        let end = off.checked_add(n as u64).ok_or_else(out_of_range)?;
        if end > self.len {
            return Err(out_of_range());
        }
        // SAFETY: `off + n <= len`, the mapping's length, so the offset stays
        // inside the mapped range (and fits usize, since `len` did).
        Ok(unsafe { self.map.as_mut_ptr().add(off as usize) })
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = self.at(off, buf.len())?;
        // SAFETY: `src..src + buf.len()` lies inside the live mapping (checked by
        // `at`); `buf` is a distinct local buffer, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        let dst = self.at(off, data.len())?;
        // SAFETY: `dst..dst + data.len()` lies inside the live, writable mapping
        // (checked by `at`); `data` is not part of the mapping (callers pass heap
        // or stack buffers), so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Sets `n` bytes at `off` to zero.
    pub fn zero(&self, off: u64, n: u64) -> io::Result<()> {
        let n = usize::try_from(n).map_err(|_| out_of_range())?;
        let dst = self.at(off, n)?;
        // SAFETY: `dst..dst + n` lies inside the live, writable mapping (checked by `at`).
        unsafe { std::ptr::write_bytes(dst, 0, n) };
        Ok(())
    }

    /// Copies `n` bytes from `from` to `to` inside the mapping (ranges may overlap).
    pub fn copy_within(&self, from: u64, to: u64, n: u64) -> io::Result<()> {
        let n = usize::try_from(n).map_err(|_| out_of_range())?;
        let src = self.at(from, n)?;
        let dst = self.at(to, n)?;
        // SAFETY: both ranges lie inside the live, writable mapping (checked by
        // `at`); `copy` allows them to overlap.
        unsafe { std::ptr::copy(src, dst, n) };
        Ok(())
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

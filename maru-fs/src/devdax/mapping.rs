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

    /// Writes the CPU cache lines covering `[off, off + n)` back to memory and
    /// invalidates them, then fences. Memory that another host reads or writes
    /// without hardware coherence (a CXL device shared by several hosts) needs this:
    /// after our stores, so the device holds them; before our loads, so they come
    /// from the device and not from a line cached before the other host wrote.
    pub fn flush(&self, off: u64, n: u64) -> io::Result<()> {
        let n = usize::try_from(n).map_err(|_| out_of_range())?;
        let start = self.at(off, n)?;
        flush_lines(start, n);
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

/// Size of a CPU cache line on the architectures Maru runs on.
const CACHE_LINE: usize = 64;

/// Writes back and invalidates every cache line touching `[start, start + n)`, then
/// fences, so the stores before reach memory and the loads after come from it.
#[cfg(target_arch = "x86_64")]
fn flush_lines(start: *mut u8, n: usize) {
    use std::arch::x86_64::{_mm_clflush, _mm_mfence};
    let first = start as usize & !(CACHE_LINE - 1);
    let end = start as usize + n;
    // SAFETY: mfence has no operands; it orders the stores before the flushes.
    unsafe { _mm_mfence() };
    for line in (first..end).step_by(CACHE_LINE) {
        // SAFETY: `line` lies inside a mapped page of the caller's range (the range
        // `[start, start + n)` was checked against the live mapping, and a cache line
        // never crosses a page); clflush (SSE2, part of x86_64) only writes back and
        // invalidates, it does not change memory contents.
        unsafe { _mm_clflush(line as *const u8) };
    }
    // SAFETY: as above; orders the flushes before any later load or store.
    unsafe { _mm_mfence() };
}

/// Writes back and invalidates every cache line touching `[start, start + n)`, then
/// fences (`dc civac` + `dsb sy`).
#[cfg(target_arch = "aarch64")]
fn flush_lines(start: *mut u8, n: usize) {
    let first = start as usize & !(CACHE_LINE - 1);
    let end = start as usize + n;
    for line in (first..end).step_by(CACHE_LINE) {
        // SAFETY: `line` lies inside a mapped page of the caller's checked range;
        // `dc civac` cleans and invalidates a line to the point of coherence and does
        // not change memory contents.
        unsafe { std::arch::asm!("dc civac, {0}", in(reg) line, options(nostack)) };
    }
    // SAFETY: a full-system barrier; no operands.
    unsafe { std::arch::asm!("dsb sy", options(nostack)) };
}

/// Elsewhere only a fence: no shared CXL memory without coherence is known there.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn flush_lines(_start: *mut u8, _n: usize) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

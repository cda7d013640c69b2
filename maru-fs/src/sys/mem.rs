//! Shared memory mappings: the devdax pool's range of the device ([`Region`],
//! accessed only by copying bytes in and out) and the membership index file
//! ([`Words`], accessed only through atomics). Both are memory other processes
//! read or write at any time, so neither hands out a plain reference into it.

use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapMut, MmapOptions, MmapRaw};

fn out_of_range() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// A `MAP_SHARED` read-write mapping of `len` bytes of a file or device from a
/// byte offset, touched only by bounds-checked copies.
#[derive(Debug)]
pub(crate) struct Region {
    map: MmapRaw,
    len: u64,
}

impl Region {
    /// Maps `[offset, offset + len)` of `file`.
    pub(crate) fn new(file: &File, offset: u64, len: u64) -> io::Result<Region> {
        let map_len = usize::try_from(len).map_err(|_| out_of_range())?;
        let map = MmapOptions::new()
            .offset(offset)
            .len(map_len)
            .map_raw(file)?;
        Ok(Region { map, len })
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
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = self.at(off, buf.len())?;
        // SAFETY: `src..src + buf.len()` lies inside the live mapping (checked by
        // `at`); `buf` is a distinct local buffer, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` to `off`.
    pub(crate) fn write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        let dst = self.at(off, data.len())?;
        // SAFETY: `dst..dst + data.len()` lies inside the live, writable mapping
        // (checked by `at`); `data` is a shared borrow and the mapping is never
        // lent out as a slice, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Sets `n` bytes at `off` to zero.
    pub(crate) fn zero(&self, off: u64, n: usize) -> io::Result<()> {
        let dst = self.at(off, n)?;
        // SAFETY: `dst..dst + n` lies inside the live, writable mapping (checked by `at`).
        unsafe { std::ptr::write_bytes(dst, 0, n) };
        Ok(())
    }

    /// Copies `n` bytes from `from` to `to` inside the mapping (ranges may overlap).
    pub(crate) fn copy_within(&self, from: u64, to: u64, n: usize) -> io::Result<()> {
        let src = self.at(from, n)?;
        let dst = self.at(to, n)?;
        // SAFETY: both ranges lie inside the live, writable mapping (checked by
        // `at`); `copy` allows them to overlap.
        unsafe { std::ptr::copy(src, dst, n) };
        Ok(())
    }

    /// Writes the CPU cache lines covering `[off, off + n)` back to memory and
    /// invalidates them, then fences (see `devdax::mapping::Mapping::flush`).
    pub(crate) fn flush(&self, off: u64, n: usize) -> io::Result<()> {
        let start = self.at(off, n)?;
        flush_lines(start, n);
        Ok(())
    }
}

/// Size of a CPU cache line on the architectures Maru runs on.
const CACHE_LINE: usize = 64;

/// Writes back and invalidates every cache line touching `[start, start + n)`, then
/// fences, so the stores before reach memory and the loads after come from it.
/// `[start, start + n)` must lie inside a live mapping (callers check with `at`).
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

/// A `MAP_SHARED` read-write mapping of a file seen as 64-bit words, each
/// accessed atomically (other processes map the same file and read it with
/// atomics too).
#[derive(Debug)]
pub(crate) struct Words {
    map: MmapMut,
}

impl Words {
    /// Maps the first `len` bytes of `file` (the whole file when `None`).
    pub(crate) fn map(file: &File, len: Option<usize>) -> io::Result<Words> {
        let mut opts = MmapOptions::new();
        if let Some(len) = len {
            opts.len(len);
        }
        // SAFETY: a shared mapping of a file that is only ever accessed through
        // the atomics `words` hands out (here and in every other process), so no
        // plain reference to memory another process writes exists.
        let map = unsafe { opts.map_mut(file)? };
        Ok(Words { map })
    }

    /// The mapping as atomic words (a trailing partial word is left out).
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned and lives as long as `self`;
        // `len / 8` whole words fit in it; AtomicU64 has the size and alignment
        // of u64, and every access (ours and the clients') is atomic.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), self.map.len() / 8)
        }
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Maps a whole file read-only, for tests that hold a chunk's pages mapped.
#[cfg(test)]
pub(crate) fn map_for_test(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: tests map private scratch files that nothing writes while mapped.
    unsafe { MmapOptions::new().map(file) }
}

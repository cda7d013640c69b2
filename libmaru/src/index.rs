//! Reader of maru-fs's membership index, `<pool>/.maru-index` (format:
//! `docs/maru-fs.md`, "Membership index"): a read-only shared mapping of a
//! table of 64-bit hashes of the published keys' file names, written by the
//! daemon under a seqlock. It answers "is this key published?" with memory
//! loads instead of one `stat` per key; libmaru falls back to `stat` where the
//! pool has no index (plain tmpfs, devdax pools, older daemons), when it was
//! superseded and its successor cannot be opened yet, or when the daemon keeps
//! changing it during a read.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicU64, Ordering};

pub(crate) use maru_proto::index::INDEX_CNAME as INDEX_NAME;
use maru_proto::index::{word, EMPTY, HEADER_LEN, MAGIC, VERSION};

/// Read attempts before a batch falls back to `stat` while the daemon writes.
const ATTEMPTS: usize = 64;

/// What one read of the index gave.
pub(crate) enum Read {
    /// Membership of each name, in order (for a prefix read: up to and
    /// including the first absent one).
    Done(Vec<bool>),
    /// The file was replaced: open the index again.
    Superseded,
    /// The daemon kept writing: ask the filesystem instead.
    Busy,
}

/// A mapped index file.
#[derive(Debug)]
pub(crate) struct IndexMap {
    ptr: *const AtomicU64,
    len: usize,
    slots: u64,
    k0: u64,
    k1: u64,
    /// Kept open for the life of the mapping (the pin, as for chunks).
    _fd: OwnedFd,
}

// SAFETY: the mapping is read-only, shared, and only read with atomics; the raw
// pointer is valid for the life of the value on every thread.
unsafe impl Send for IndexMap {}
// SAFETY: as above; no interior mutation from our side.
unsafe impl Sync for IndexMap {}

impl IndexMap {
    /// Opens and maps the index of the pool directory `dir`; `Ok(None)` if the
    /// pool has none or it is not a valid index of a version we read.
    pub fn open(dir: BorrowedFd<'_>) -> io::Result<Option<IndexMap>> {
        // SAFETY: valid dir fd and NUL-terminated name; result checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                INDEX_NAME.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::ELOOP) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero stat is valid; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out pointer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || len < HEADER_LEN || len % 8 != 0 {
            return Ok(None);
        }
        // SAFETY: read-only shared mapping of `len` bytes of a regular file;
        // result checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // No passthrough (a FUSE mount without it cannot map shared): no index.
            return if e.raw_os_error() == Some(libc::ENODEV) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let mut map = IndexMap {
            ptr: ptr.cast::<AtomicU64>().cast_const(),
            len,
            slots: 0,
            k0: 0,
            k1: 0,
            _fd: fd,
        };
        if map.word(word::MAGIC).load(Ordering::Acquire) != MAGIC
            || map.word(word::VERSION).load(Ordering::Relaxed) != VERSION
        {
            return Ok(None);
        }
        let slots = map.word(word::SLOTS).load(Ordering::Relaxed);
        let fits = slots
            .checked_mul(8)
            .and_then(|b| b.checked_add(HEADER_LEN as u64))
            .is_some_and(|need| need <= len as u64);
        if !slots.is_power_of_two() || !fits {
            return Ok(None);
        }
        map.slots = slots;
        map.k0 = map.word(word::K0).load(Ordering::Relaxed);
        map.k1 = map.word(word::K1).load(Ordering::Relaxed);
        Ok(Some(map))
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.len / 8);
        // SAFETY: i is inside the mapping (header words, or a slot below
        // `slots`, checked at open), which lives as long as `self`.
        unsafe { &*self.ptr.add(i) }
    }

    /// The table value of a file name.
    pub fn hash(&self, name: &[u8]) -> u64 {
        maru_proto::index::hash(self.k0, self.k1, name)
    }

    fn probe(&self, h: u64) -> bool {
        let mask = self.slots - 1;
        let mut i = h & mask;
        for _ in 0..self.slots {
            match self
                .word(HEADER_LEN / 8 + i as usize)
                .load(Ordering::Relaxed)
            {
                EMPTY => return false,
                v if v == h => return true,
                _ => i = (i + 1) & mask,
            }
        }
        false
    }

    /// Looks `hashes` up in one consistent snapshot (seqlock read); with
    /// `prefix`, stops after the first absent one.
    pub fn read(&self, hashes: &[u64], prefix: bool) -> Read {
        for _ in 0..ATTEMPTS {
            let s1 = self.word(word::SEQ).load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            if self.word(word::SUPERSEDED).load(Ordering::Relaxed) != 0 {
                return Read::Superseded;
            }
            let mut out = Vec::with_capacity(hashes.len());
            for &h in hashes {
                let hit = self.probe(h);
                out.push(hit);
                if prefix && !hit {
                    break;
                }
            }
            fence(Ordering::Acquire);
            if self.word(word::SEQ).load(Ordering::Relaxed) == s1 {
                return Read::Done(out);
            }
        }
        Read::Busy
    }
}

impl Drop for IndexMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; nothing borrows it
        // beyond `self`.
        unsafe {
            libc::munmap(self.ptr.cast_mut().cast(), self.len);
        }
    }
}

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

/// Name of the index file in a pool directory.
pub(crate) const INDEX_NAME: &std::ffi::CStr = c".maru-index";
const MAGIC: u64 = u64::from_le_bytes(*b"MARUIDX1");
const VERSION: u64 = 1;
const HEADER_LEN: usize = 4096;
const W_MAGIC: usize = 0;
const W_VERSION: usize = 1;
const W_SEQ: usize = 2;
const W_SUPERSEDED: usize = 3;
const W_SLOTS: usize = 4;
const W_K0: usize = 5;
const W_K1: usize = 6;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
/// Read attempts before a batch falls back to `stat` while the daemon writes.
const ATTEMPTS: usize = 64;

/// SipHash-1-3 of `data` under `(k0, k1)`, mapped away from 0 and 1: the value
/// maru-fs stores for a file name (same function as `maru_fs::index::hash`).
pub(crate) fn hash(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let m = u64::from_le_bytes(b);
        v[3] ^= m;
        round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let m = u64::from_le_bytes(last) | ((data.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..3 {
        round(&mut v);
    }
    let h = v[0] ^ v[1] ^ v[2] ^ v[3];
    if h <= TOMBSTONE {
        h + 2
    } else {
        h
    }
}

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
        if map.word(W_MAGIC).load(Ordering::Acquire) != MAGIC
            || map.word(W_VERSION).load(Ordering::Relaxed) != VERSION
        {
            return Ok(None);
        }
        let slots = map.word(W_SLOTS).load(Ordering::Relaxed);
        let fits = slots
            .checked_mul(8)
            .and_then(|b| b.checked_add(HEADER_LEN as u64))
            .is_some_and(|need| need <= len as u64);
        if !slots.is_power_of_two() || !fits {
            return Ok(None);
        }
        map.slots = slots;
        map.k0 = map.word(W_K0).load(Ordering::Relaxed);
        map.k1 = map.word(W_K1).load(Ordering::Relaxed);
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
        hash(self.k0, self.k1, name)
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
            let s1 = self.word(W_SEQ).load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            if self.word(W_SUPERSEDED).load(Ordering::Relaxed) != 0 {
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
            if self.word(W_SEQ).load(Ordering::Relaxed) == s1 {
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

#[cfg(test)]
mod tests {
    #[test]
    fn hash_matches_siphash13_reference() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(super::hash(k0, k1, b""), 0xabac_0158_050f_c4dc);
    }

    #[test]
    fn hash_matches_maru_fs() {
        let mut name = Vec::new();
        for i in 0..300u32 {
            let (k0, k1) = (u64::from(i) * 0x9e37_79b9, !u64::from(i));
            assert_eq!(
                super::hash(k0, k1, &name),
                maru_fs::index::hash(k0, k1, &name),
                "{} bytes",
                name.len()
            );
            name.push((i * 7) as u8);
        }
    }
}

//! Reader of maru-fs's membership index, `<pool>/.maru-index` (format:
//! `docs/maru-fs.md`, "Membership index"): a read-only shared mapping of a
//! table of 64-bit hashes of the published keys' file names, written by the
//! daemon under a seqlock. It answers "is this key published?" with memory
//! loads instead of one `stat` per key; libmaru falls back to `stat` where the
//! pool has no index (plain tmpfs, devdax pools, older daemons), when it was
//! superseded and its successor cannot be opened yet, or when the daemon keeps
//! changing it during a read.

use crate::sys::{self, mem::Region};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
pub(crate) struct MembershipIndex {
    /// Read-only shared mapping of the whole file.
    region: Region,
    slots: u64,
    k0: u64,
    k1: u64,
    /// Kept open for the life of the mapping (the pin, as for chunks).
    _fd: OwnedFd,
}

/// What a word outside the mapping reads as (never used: `open` checks that
/// every slot lies inside).
static OUTSIDE: AtomicU64 = AtomicU64::new(EMPTY);

impl MembershipIndex {
    /// Opens and maps the index of the pool directory `dir`; `Ok(None)` if the
    /// pool has none or it is not a valid index of a version we read.
    pub fn open(dir: BorrowedFd<'_>) -> io::Result<Option<MembershipIndex>> {
        let fd = match sys::fs::openat(dir, INDEX_NAME, libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::ELOOP) => Ok(None),
                    _ => Err(e),
                }
            }
        };
        let (regular, size) = sys::fs::regular_size(fd.as_fd())?;
        let len = usize::try_from(size).unwrap_or(0);
        if !regular || len < HEADER_LEN || len % 8 != 0 {
            return Ok(None);
        }
        let region = match Region::map(fd.as_fd(), len, 0, false) {
            Ok(r) => r,
            // No passthrough (a FUSE mount without it cannot map shared): no index.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut map = MembershipIndex {
            region,
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

    /// Word `i` of the file (header words, then the slots).
    fn word(&self, i: usize) -> &AtomicU64 {
        self.region.word(i).unwrap_or(&OUTSIDE)
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

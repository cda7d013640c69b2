//! Pool-wide pin counts shared by every process of a pool: one shared-memory
//! table per pool (a file mapped by each process), updated under one lock per
//! batch.
//!
//! An entry counts the pins one process holds on one key (by 128 bits of the
//! key's SHA-256). The pool-wide count of a key is the sum over the processes
//! still alive: a process is named by its pid and start time, so a dead
//! process's entries (and a reused pid's) are ignored, and pruned when met.
//! Any process may drop any pin (its own first), as on the original Maru's
//! metadata server. The lock is `flock` on the table file (released by the
//! kernel when a process dies) plus a mutex for the threads of one process.
//! What the counts protect (the chunk kept open) is the caller's business;
//! [`PinTable::pin_prefix`] and [`PinTable::remove_unpinned`] check and change
//! the pool under the same lock, so a pin and a remove never cross.

pub(crate) mod table;

use crate::error::{Error, Result};
use crate::sys::pin_shm::{self as shm, Shm};
use crate::Pool;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;
use table::{Full, Table};

/// A process as recorded in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) start: u64,
}

/// Slots of a table created without a size: 65 536 (2 MiB, sparse).
pub const DEFAULT_SLOTS: usize = 1 << 16;

/// How [`PinTable::pin_prefix`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// This process's pins on each pinned key before the call (the prefix:
    /// its length is the number of keys pinned).
    pub before: Vec<u32>,
    /// Whether it stopped because the table is full (else at a missing key or
    /// at the end).
    pub full: bool,
}

/// What [`PinTable::remove_unpinned`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The key was removed.
    Removed,
    /// The key is not in the pool.
    Absent,
    /// Refused: the key has this many pins.
    Pinned(u64),
}

/// The pin table of one pool, mapped into this process.
pub struct PinTable {
    shm: Shm,
    lock: Mutex<()>,
}

fn key_hash(key: &[u8]) -> [u64; 2] {
    let d = Sha256::digest(key);
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[i..i + 8]);
        u64::from_le_bytes(b)
    };
    [word(0), word(8)]
}

impl PinTable {
    /// Opens the table at `path`, creating it with `slots` entries (rounded up
    /// to a power of two, at least 2) when there is none. An existing table
    /// keeps its own size.
    pub fn open(path: impl AsRef<Path>, slots: usize) -> Result<PinTable> {
        let slots = slots.max(2).checked_next_power_of_two().ok_or_else(|| {
            Error::InvalidArgument(format!("{slots} pin table slots are too many"))
        })?;
        Ok(PinTable {
            shm: Shm::open(path.as_ref(), slots)?,
            lock: Mutex::new(()),
        })
    }

    /// Number of slots (entries) of the table.
    pub fn slots(&self) -> usize {
        self.shm.slots()
    }

    /// Runs `f` on the table under the lock.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Table<'_, &mut dyn FnMut(Holder) -> bool>) -> T,
    ) -> Result<T> {
        let _threads = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let me = shm::me();
        let mut known: Vec<(Holder, bool)> = Vec::new();
        let mut alive = |h: Holder| {
            if let Some(&(_, a)) = known.iter().find(|(k, _)| *k == h) {
                return a;
            }
            let a = shm::start_time(h.pid) == Some(h.start);
            known.push((h, a));
            a
        };
        let alive: &mut dyn FnMut(Holder) -> bool = &mut alive;
        self.shm
            .locked(|slots| f(&mut Table::new(slots, me, alive)))
    }

    /// Pins the present prefix of `keys`, one pin each: stops at the first key
    /// `pool` does not hold (checked under the lock) or when the table is full.
    pub fn pin_prefix<K: AsRef<[u8]>>(&self, pool: &Pool, keys: &[K]) -> Result<Pinned> {
        self.with(|t| {
            let mut out = Pinned {
                before: Vec::with_capacity(keys.len()),
                full: false,
            };
            for k in keys {
                if !pool.contains(k.as_ref())? {
                    break;
                }
                match t.pin(key_hash(k.as_ref())) {
                    Ok(before) => out.before.push(before),
                    Err(Full) => {
                        out.full = true;
                        break;
                    }
                }
            }
            Ok(out)
        })?
    }

    /// Drops one pin of each key (this process's own first, else another's):
    /// per key, whether one was dropped and this process's count afterwards.
    pub fn unpin<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<(bool, u32)>> {
        self.with(|t| {
            keys.iter()
                .map(|k| t.release(key_hash(k.as_ref())))
                .collect()
        })
    }

    /// Per key, the pool-wide pin count and this process's share of it.
    pub fn counts<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<(u64, u32)>> {
        self.with(|t| {
            keys.iter()
                .map(|k| t.counts(key_hash(k.as_ref())))
                .collect()
        })
    }

    /// Removes `key` from `pool` unless it is pinned (checked under the lock).
    pub fn remove_unpinned(&self, pool: &Pool, key: &[u8]) -> Result<Removal> {
        self.with(|t| {
            let (total, _) = t.counts(key_hash(key));
            if total > 0 {
                return Ok(Removal::Pinned(total));
            }
            Ok(if pool.remove(key)? {
                Removal::Removed
            } else {
                Removal::Absent
            })
        })?
    }

    /// Pids of the live processes that hold pins in the pool.
    pub fn holders(&self) -> Result<Vec<u32>> {
        self.with(|t| t.holders())
    }
}

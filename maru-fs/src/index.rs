//! The per-pool membership index: a table of 64-bit hashes of the published keys
//! that clients map read-only through `<pool>/.maru-index` (FUSE passthrough), so
//! "is this key published?" costs a few memory loads instead of a `stat` each.
//!
//! Format (version 1, little-endian `u64` words; defined in the `maru-proto`
//! crate, which libmaru reads with; `docs/maru-fs.md` is the reference):
//!
//! | offset | word |
//! | ---: | --- |
//! | 0 | magic [`MAGIC`] (`b"MARUIDX1"`) |
//! | 8 | version (1) |
//! | 16 | sequence: odd while the daemon writes, bumped by 2 per change (seqlock) |
//! | 24 | superseded: 1 once this file is replaced (growth, restart, pool removed) |
//! | 32 | slots: a power of two |
//! | 40, 48 | SipHash-1-3 key `k0`, `k1` (random per daemon start) |
//! | 56 | live entries, 64 tombstones (informational) |
//! | 4096 | `slots` words: 0 empty, 1 tombstone, else `hash(name)` |
//!
//! `hash(name)` is SipHash-1-3 of the key's file name bytes under `(k0, k1)`,
//! with 0 and 1 mapped to 2. Open addressing with linear probing from
//! `hash & (slots - 1)`; removal leaves a tombstone, so entries never move while
//! a file is current and a reader never needs more than the seqlock. Only the
//! daemon writes, under its state lock; the table is rebuilt into a new file
//! (new generation, the old one marked superseded) when live entries plus
//! tombstones would pass half of the slots.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::sys::mem::Words;

pub use maru_proto::index::{hash, word, EMPTY, HEADER_LEN, INDEX_NAME, MAGIC, TOMBSTONE, VERSION};

const MIN_SLOTS: u64 = 1024;

/// One index file, mapped read-write by the daemon.
#[derive(Debug)]
pub(crate) struct IndexFile {
    map: Words,
    /// Read-only descriptor handed to the kernel for passthrough opens.
    file: File,
    slots: u64,
    k0: u64,
    k1: u64,
    live: u64,
    tombstones: u64,
}

impl IndexFile {
    /// The mapping's words (HEADER_LEN / 8 header words, then the slots).
    fn words(&self) -> &[AtomicU64] {
        self.map.words()
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words()[i]
    }

    fn slot(&self, i: u64) -> &AtomicU64 {
        &self.words()[HEADER_LEN / 8 + i as usize]
    }

    /// The descriptor clients' opens are passed through to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Creates `path` (replacing nothing: written under a temporary name first)
    /// with `slots` slots holding `hashes`.
    fn create(path: &Path, slots: u64, k0: u64, k1: u64, hashes: &[u64]) -> io::Result<IndexFile> {
        let tmp = path.with_extension("new");
        let rw = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        rw.set_len(HEADER_LEN as u64 + slots * 8)?;
        // Only this daemon writes the file; clients map it read-only and access
        // it with atomics, as we do.
        let map = Words::map(&rw, None)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut index = IndexFile {
            map,
            file,
            slots,
            k0,
            k1,
            live: 0,
            tombstones: 0,
        };
        for &h in hashes {
            index.put(h);
        }
        index.word(word::VERSION).store(VERSION, Ordering::Relaxed);
        index.word(word::SLOTS).store(slots, Ordering::Relaxed);
        index.word(word::K0).store(k0, Ordering::Relaxed);
        index.word(word::K1).store(k1, Ordering::Relaxed);
        index.word(word::LIVE).store(index.live, Ordering::Relaxed);
        // Readers check the magic last: a file is valid once it is there.
        index.word(word::MAGIC).store(MAGIC, Ordering::Release);
        std::fs::rename(&tmp, path)?;
        Ok(index)
    }

    /// Inserts `h` (no seqlock: callers hold a write section or own the file).
    fn put(&mut self, h: u64) {
        let mask = self.slots - 1;
        let mut i = h & mask;
        let mut free = None;
        for _ in 0..self.slots {
            match self.slot(i).load(Ordering::Relaxed) {
                EMPTY => break,
                TOMBSTONE => {
                    free.get_or_insert(i);
                }
                v if v == h => return,
                _ => {}
            }
            i = (i + 1) & mask;
        }
        let at = match free {
            Some(t) => {
                self.tombstones -= 1;
                t
            }
            None => i,
        };
        self.slot(at).store(h, Ordering::Relaxed);
        self.live += 1;
    }

    /// Replaces `h` by a tombstone, if present.
    fn take(&mut self, h: u64) {
        let mask = self.slots - 1;
        let mut i = h & mask;
        for _ in 0..self.slots {
            match self.slot(i).load(Ordering::Relaxed) {
                EMPTY => return,
                v if v == h => {
                    self.slot(i).store(TOMBSTONE, Ordering::Relaxed);
                    self.live -= 1;
                    self.tombstones += 1;
                    return;
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// Runs `f` as one seqlock write section.
    fn write_section(&mut self, f: impl FnOnce(&mut IndexFile)) {
        let seq = self.word(word::SEQ).load(Ordering::Relaxed);
        self.word(word::SEQ).store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        f(self);
        self.word(word::LIVE).store(self.live, Ordering::Relaxed);
        self.word(word::TOMBSTONES)
            .store(self.tombstones, Ordering::Relaxed);
        self.word(word::SEQ).store(seq + 2, Ordering::Release);
    }

    /// The live hashes.
    fn hashes(&self) -> Vec<u64> {
        (0..self.slots)
            .map(|i| self.slot(i).load(Ordering::Relaxed))
            .filter(|&v| v > TOMBSTONE)
            .collect()
    }

    /// Marks the file as replaced: readers drop it and open the index again.
    fn supersede(&mut self) {
        self.write_section(|f| f.word(word::SUPERSEDED).store(1, Ordering::Relaxed));
    }
}

/// Marks an index file left by an earlier daemon as superseded, so clients
/// still mapping it stop trusting it.
fn supersede_old(path: &Path) {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
    else {
        return;
    };
    let big_enough = f
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() >= HEADER_LEN as u64);
    if !big_enough {
        return;
    }
    let Ok(map) = Words::map(&f, Some(HEADER_LEN)) else {
        return;
    };
    let words = map.words();
    if words[word::MAGIC].load(Ordering::Acquire) == MAGIC {
        // One write section, as `IndexFile::write_section`. `| 1` also closes a
        // section a killed daemon left open (odd): adding 2 would keep it odd,
        // and readers would never see the flag, only "busy".
        let seq = words[word::SEQ].load(Ordering::Relaxed) | 1;
        words[word::SEQ].store(seq, Ordering::Relaxed);
        fence(Ordering::Release);
        words[word::SUPERSEDED].store(1, Ordering::Relaxed);
        words[word::SEQ].store(seq + 1, Ordering::Release);
    }
}

/// A pool's index: the current file and the key it hashes with.
#[derive(Debug)]
pub(crate) struct MemberIndex {
    path: PathBuf,
    current: IndexFile,
}

impl MemberIndex {
    /// Creates the index at `path` holding `names` (the adopted keys), after
    /// marking an index left there by an earlier daemon as superseded.
    pub fn create<'a>(
        path: PathBuf,
        names: impl Iterator<Item = &'a OsStr>,
    ) -> io::Result<MemberIndex> {
        supersede_old(&path);
        let (k0, k1) = (random_u64()?, random_u64()?);
        let hashes: Vec<u64> = names.map(|n| hash(k0, k1, n.as_bytes())).collect();
        let slots = slots_for(hashes.len() as u64);
        let current = IndexFile::create(&path, slots, k0, k1, &hashes)?;
        Ok(MemberIndex { path, current })
    }

    /// The current file.
    pub fn current(&self) -> &IndexFile {
        &self.current
    }

    /// Records that `name` is published. Returns the replaced file when the
    /// table had to grow (its passthrough registrations must be kept until the
    /// clients that opened it let go).
    pub fn insert(&mut self, name: &OsStr) -> io::Result<Option<IndexFile>> {
        let c = &self.current;
        let h = hash(c.k0, c.k1, name.as_bytes());
        let mut replaced = None;
        if (c.live + c.tombstones + 1) * 2 > c.slots {
            replaced = Some(self.rebuild(c.live + 1)?);
        }
        self.current.write_section(|f| f.put(h));
        Ok(replaced)
    }

    /// Records that `name` is no longer published.
    pub fn remove(&mut self, name: &OsStr) {
        let c = &self.current;
        let h = hash(c.k0, c.k1, name.as_bytes());
        self.current.write_section(|f| f.take(h));
    }

    /// Moves the live entries to a new file sized for `want` of them; returns
    /// the old file, marked superseded.
    fn rebuild(&mut self, want: u64) -> io::Result<IndexFile> {
        let c = &self.current;
        let new = IndexFile::create(&self.path, slots_for(want), c.k0, c.k1, &c.hashes())?;
        let mut old = std::mem::replace(&mut self.current, new);
        old.supersede();
        Ok(old)
    }

    /// Marks the current file superseded (pool removed, filesystem unmounted).
    pub fn retire(&mut self) {
        self.current.supersede();
    }
}

impl Drop for MemberIndex {
    fn drop(&mut self) {
        self.retire();
    }
}

/// Slots for `n` live entries: at most a quarter full after a rebuild.
fn slots_for(n: u64) -> u64 {
    (n.saturating_mul(4)).max(MIN_SLOTS).next_power_of_two()
}

fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    crate::sys::random::fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(f: &IndexFile, name: &str) -> bool {
        let h = hash(f.k0, f.k1, name.as_bytes());
        let mask = f.slots - 1;
        let mut i = h & mask;
        loop {
            match f.slot(i).load(Ordering::Relaxed) {
                EMPTY => return false,
                v if v == h => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[test]
    fn a_restart_supersedes_an_index_left_mid_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INDEX_NAME);
        let old = MemberIndex::create(path.clone(), [OsStr::new("a")].into_iter()).unwrap();
        // The previous daemon died inside a write section.
        old.current()
            .word(word::SEQ)
            .fetch_add(1, Ordering::Relaxed);
        let _new = MemberIndex::create(path, std::iter::empty()).unwrap();
        let c = old.current();
        assert_eq!(
            c.word(word::SEQ).load(Ordering::Relaxed) % 2,
            0,
            "section closed"
        );
        assert_eq!(c.word(word::SUPERSEDED).load(Ordering::Relaxed), 1);
    }

    #[test]
    fn insert_remove_grow_and_supersede() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INDEX_NAME);
        let mut idx = MemberIndex::create(path.clone(), [OsStr::new("a")].into_iter()).unwrap();
        assert!(contains(idx.current(), "a"));
        assert!(!contains(idx.current(), "b"));
        let mut replaced = Vec::new();
        for i in 0..3000 {
            if let Some(old) = idx.insert(OsStr::new(&format!("k{i}"))).unwrap() {
                assert_eq!(old.word(word::SUPERSEDED).load(Ordering::Relaxed), 1);
                replaced.push(old);
            }
        }
        assert!(
            !replaced.is_empty(),
            "3000 keys must outgrow {MIN_SLOTS} slots"
        );
        for i in (0..3000).step_by(2) {
            idx.remove(OsStr::new(&format!("k{i}")));
        }
        for i in 0..3000 {
            assert_eq!(
                contains(idx.current(), &format!("k{i}")),
                i % 2 == 1,
                "k{i}"
            );
        }
        assert!(contains(idx.current(), "a"));
        let seq = idx.current().word(word::SEQ).load(Ordering::Relaxed);
        assert_eq!(seq % 2, 0);
        // The file on disk is the current one, and a new daemon supersedes it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), idx.current().len());
        let again = MemberIndex::create(path, std::iter::empty()).unwrap();
        assert_eq!(
            idx.current().word(word::SUPERSEDED).load(Ordering::Relaxed),
            1
        );
        assert!(!contains(again.current(), "k1"));
    }
}

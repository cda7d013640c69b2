//! The slot logic of a pin table, on a plain slice: open addressing with
//! linear probing by key hash, one entry per (key, process), backward-shift
//! deletion (no tombstones). Callers hold the table's lock.

use super::Holder;

/// One entry: `count` pins of the key hashed to `hash` by the process `pid`
/// started at `start` (clock ticks since boot). `pid == 0` marks a free slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// 128 bits of the key's SHA-256.
    pub hash: [u64; 2],
    /// The holder's start time (tells a reused pid apart).
    pub start: u64,
    /// The holder's pid; 0 for a free slot.
    pub pid: u32,
    /// Pins of this key by this holder (> 0 in a used slot).
    pub count: u32,
}

impl Slot {
    fn holder(&self) -> Holder {
        Holder {
            pid: self.pid,
            start: self.start,
        }
    }

    fn is_free(&self) -> bool {
        self.pid == 0
    }
}

/// The table is full: no free slot even after dropping dead processes' pins.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// The slots of a table (a power of two of them) and a liveness oracle.
pub(crate) struct Table<'a, F: FnMut(Holder) -> bool> {
    slots: &'a mut [Slot],
    alive: F,
    me: Holder,
}

impl<'a, F: FnMut(Holder) -> bool> Table<'a, F> {
    /// `slots.len()` must be a power of two; `alive` says whether a holder
    /// other than `me` still runs.
    pub fn new(slots: &'a mut [Slot], me: Holder, alive: F) -> Self {
        debug_assert!(slots.len().is_power_of_two());
        Table { slots, alive, me }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: [u64; 2]) -> usize {
        (hash[0] as usize) & self.mask()
    }

    fn is_alive(&mut self, h: Holder) -> bool {
        h == self.me || (self.alive)(h)
    }

    /// Indices of the key's live entries, after dropping its dead ones.
    fn entries(&mut self, hash: [u64; 2]) -> Vec<usize> {
        'again: loop {
            let mut out = Vec::new();
            let mut i = self.home(hash);
            for _ in 0..self.slots.len() {
                let s = self.slots[i];
                if s.is_free() {
                    break;
                }
                if s.hash == hash {
                    if !self.is_alive(s.holder()) {
                        self.remove_at(i);
                        continue 'again; // entries shifted: scan again
                    }
                    out.push(i);
                }
                i = (i + 1) & self.mask();
            }
            return out;
        }
    }

    /// The key's pool-wide pin count and this process's share of it.
    pub fn counts(&mut self, hash: [u64; 2]) -> (u64, u32) {
        let me = self.me;
        let mut total = 0u64;
        let mut mine = 0u32;
        for i in self.entries(hash) {
            let s = self.slots[i];
            total += u64::from(s.count);
            if s.holder() == me {
                mine = s.count;
            }
        }
        (total, mine)
    }

    /// Adds one pin of this process; returns this process's count before it.
    pub fn pin(&mut self, hash: [u64; 2]) -> Result<u32, Full> {
        let me = self.me;
        if let Some(i) = self
            .entries(hash)
            .into_iter()
            .find(|&i| self.slots[i].holder() == me)
        {
            let before = self.slots[i].count;
            self.slots[i].count = before.saturating_add(1);
            return Ok(before);
        }
        let i = match self.free_slot(hash) {
            Some(i) => i,
            None => {
                self.prune_dead();
                self.free_slot(hash).ok_or(Full)?
            }
        };
        self.slots[i] = Slot {
            hash,
            start: me.start,
            pid: me.pid,
            count: 1,
        };
        Ok(0)
    }

    /// Drops one pin of the key: this process's own if it has one, else the
    /// first other live holder's. Returns whether a pin was dropped and this
    /// process's count afterwards.
    pub fn release(&mut self, hash: [u64; 2]) -> (bool, u32) {
        let me = self.me;
        let entries = self.entries(hash);
        let mine = entries
            .iter()
            .copied()
            .find(|&i| self.slots[i].holder() == me);
        let Some(i) = mine.or_else(|| entries.first().copied()) else {
            return (false, 0);
        };
        self.slots[i].count -= 1;
        let left = if mine.is_some() {
            self.slots[i].count
        } else {
            0
        };
        if self.slots[i].count == 0 {
            self.remove_at(i);
        }
        (true, left)
    }

    /// Pids of the live processes holding a pin.
    pub fn holders(&mut self) -> Vec<u32> {
        self.prune_dead();
        let mut pids: Vec<u32> = self
            .slots
            .iter()
            .filter(|s| !s.is_free())
            .map(|s| s.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The first free slot of `hash`'s probe sequence.
    fn free_slot(&self, hash: [u64; 2]) -> Option<usize> {
        let mut i = self.home(hash);
        for _ in 0..self.slots.len() {
            if self.slots[i].is_free() {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    /// Removes every entry of a dead process.
    fn prune_dead(&mut self) {
        let mut i = 0;
        while i < self.slots.len() {
            let s = self.slots[i];
            if !s.is_free() && !self.is_alive(s.holder()) {
                self.remove_at(i); // an entry may have moved into i: look again
                continue;
            }
            i += 1;
        }
    }

    /// Frees slot `i`, moving later entries of the cluster back so that every
    /// entry stays reachable from its home slot without a gap.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if j == i || self.slots[j].is_free() {
                break;
            }
            let k = self.home(self.slots[j].hash);
            // Entry j may move to i when its home k is not cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = Slot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Holder = Holder { pid: 10, start: 1 };
    const OTHER: Holder = Holder { pid: 11, start: 2 };
    const DEAD: Holder = Holder { pid: 12, start: 3 };

    fn alive(h: Holder) -> bool {
        h != DEAD
    }

    /// Hashes whose home slot (in a table of 8) is `home`, told apart by `n`.
    fn h(home: u64, n: u64) -> [u64; 2] {
        [home + 8 * n, n]
    }

    #[test]
    fn pins_count_per_holder_and_release_prefers_own() {
        let mut slots = vec![Slot::default(); 8];
        Table::new(&mut slots, OTHER, alive).pin(h(3, 0)).unwrap();
        let mut t = Table::new(&mut slots, ME, alive);
        assert_eq!(t.pin(h(3, 0)), Ok(0));
        assert_eq!(t.pin(h(3, 0)), Ok(1));
        assert_eq!(t.counts(h(3, 0)), (3, 2));
        assert_eq!(t.release(h(3, 0)), (true, 1));
        assert_eq!(t.release(h(3, 0)), (true, 0));
        // None of mine left: another process's pin goes.
        assert_eq!(t.release(h(3, 0)), (true, 0));
        assert_eq!(t.release(h(3, 0)), (false, 0));
        assert_eq!(t.counts(h(3, 0)), (0, 0));
        assert!(slots.iter().all(Slot::is_free));
    }

    #[test]
    fn colliding_keys_survive_removals_in_their_cluster() {
        let mut slots = vec![Slot::default(); 8];
        let mut t = Table::new(&mut slots, ME, alive);
        // Five keys on home slot 6 and two on 7: the cluster wraps round.
        let keys: Vec<[u64; 2]> = (0..5).map(|n| h(6, n)).chain([h(7, 0), h(7, 1)]).collect();
        for (n, &k) in keys.iter().enumerate() {
            for _ in 0..=n {
                t.pin(k).unwrap();
            }
        }
        for &gone in &[keys[0], keys[5], keys[2]] {
            while t.release(gone).0 {}
        }
        for (n, &k) in keys.iter().enumerate() {
            let want = if [0, 2, 5].contains(&n) {
                0
            } else {
                n as u64 + 1
            };
            assert_eq!(t.counts(k).0, want, "key {n}");
        }
    }

    #[test]
    fn dead_holders_are_ignored_and_pruned() {
        let mut slots = vec![Slot::default(); 4];
        let mut d = Table::new(&mut slots, DEAD, |_| true);
        d.pin(h(1, 0)).unwrap();
        d.pin(h(1, 1)).unwrap();
        let mut t = Table::new(&mut slots, ME, alive);
        assert_eq!(t.counts(h(1, 0)), (0, 0));
        assert_eq!(t.release(h(1, 1)), (false, 0));
        assert!(slots.iter().all(Slot::is_free));
    }

    #[test]
    fn a_full_table_refuses_then_reuses_dead_slots() {
        let mut slots = vec![Slot::default(); 4];
        let mut o = Table::new(&mut slots, OTHER, alive);
        for n in 0..2 {
            o.pin(h(0, n)).unwrap();
        }
        let mut d = Table::new(&mut slots, DEAD, |_| true);
        d.pin(h(0, 2)).unwrap();
        let mut t = Table::new(&mut slots, ME, alive);
        assert_eq!(t.pin(h(2, 0)), Ok(0));
        // Four slots used, one of a dead process: it makes room.
        assert_eq!(t.pin(h(1, 0)), Ok(0));
        assert_eq!(t.pin(h(3, 0)), Err(Full));
        // The holder's existing entry still counts up when full.
        assert_eq!(t.pin(h(2, 0)), Ok(1));
        assert_eq!(t.holders(), vec![ME.pid, OTHER.pid]);
    }
}

//! The extent allocator of a devdax pool's data area: aligned extents, first fit
//! from a free list that coalesces neighbours on every free.

use std::collections::BTreeMap;

/// Free space of the data area, as extents `offset -> length`, never adjacent
/// (neighbours are merged), every offset and length a multiple of the alignment.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    align: u64,
    free: BTreeMap<u64, u64>,
    free_bytes: u64,
}

impl Allocator {
    /// An allocator for `[start, start + len)`, all free; `start` and `len` are
    /// multiples of `align` (a power of two).
    pub fn new(start: u64, len: u64, align: u64) -> Allocator {
        debug_assert!(align.is_power_of_two() && start % align == 0 && len % align == 0);
        let mut free = BTreeMap::new();
        if len > 0 {
            free.insert(start, len);
        }
        Allocator {
            align,
            free,
            free_bytes: len,
        }
    }

    /// `bytes` rounded up to the alignment (0 stays 0).
    pub fn round(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.align).saturating_mul(self.align)
    }

    /// Free bytes left.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Allocates an extent of `len` bytes (a multiple of the alignment, not 0);
    /// `None` when no free extent is that long (`ENOSPC`).
    pub fn alloc(&mut self, len: u64) -> Option<u64> {
        debug_assert!(len > 0 && len % self.align == 0);
        let (&off, &flen) = self.free.iter().find(|(_, &l)| l >= len)?;
        self.free.remove(&off);
        if flen > len {
            self.free.insert(off + len, flen - len);
        }
        self.free_bytes -= len;
        Some(off)
    }

    /// Takes `[off, off + len)` out of the free space (recovery of an existing
    /// extent); false, changing nothing, if any of it is not free.
    pub fn reserve(&mut self, off: u64, len: u64) -> bool {
        if len == 0 || off % self.align != 0 || len % self.align != 0 {
            return false;
        }
        let Some((&foff, &flen)) = self.free.range(..=off).next_back() else {
            return false;
        };
        let Some(end) = off.checked_add(len) else {
            return false;
        };
        if end > foff + flen {
            return false;
        }
        self.free.remove(&foff);
        if off > foff {
            self.free.insert(foff, off - foff);
        }
        if foff + flen > end {
            self.free.insert(end, foff + flen - end);
        }
        self.free_bytes -= len;
        true
    }

    /// Grows the extent `[off, off + old)` to `new` bytes where it lies, if the
    /// space right after it is free; false, changing nothing, otherwise.
    pub fn grow_in_place(&mut self, off: u64, old: u64, new: u64) -> bool {
        debug_assert!(new > old);
        let end = off + old;
        match self.free.get(&end) {
            Some(&flen) if flen >= new - old => {
                self.free.remove(&end);
                if flen > new - old {
                    self.free.insert(off + new, flen - (new - old));
                }
                self.free_bytes -= new - old;
                true
            }
            _ => false,
        }
    }

    /// Returns `[off, off + len)` to the free space, merging it with free neighbours.
    pub fn free(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (mut start, mut len_total) = (off, len);
        if let Some((&poff, &plen)) = self.free.range(..off).next_back() {
            debug_assert!(poff + plen <= off, "double free of extent at {off}");
            if poff + plen == off {
                self.free.remove(&poff);
                start = poff;
                len_total += plen;
            }
        }
        if let Some(&nlen) = self.free.get(&(off + len)) {
            self.free.remove(&(off + len));
            len_total += nlen;
        }
        self.free.insert(start, len_total);
        self.free_bytes += len;
    }

    /// Number of free extents (fragmentation; tests use it to see coalescing).
    #[cfg(test)]
    pub fn free_extents(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u64 = 2 << 20;

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut a = Allocator::new(A, 10 * A, A);
        let x = a.alloc(A).unwrap();
        let y = a.alloc(3 * A).unwrap();
        let z = a.alloc(A).unwrap();
        for o in [x, y, z] {
            assert_eq!(o % A, 0);
            assert!((A..11 * A).contains(&o));
        }
        assert!(x + A <= y && y + 3 * A <= z);
        assert_eq!(a.free_bytes(), 5 * A);
        assert_eq!(a.round(1), A);
        assert_eq!(a.round(A + 1), 2 * A);
        assert_eq!(a.round(0), 0);
    }

    #[test]
    fn frees_coalesce() {
        let mut a = Allocator::new(0, 4 * A, A);
        let offs: Vec<u64> = (0..4).map(|_| a.alloc(A).unwrap()).collect();
        assert!(a.alloc(A).is_none());
        a.free(offs[0], A);
        a.free(offs[2], A);
        assert_eq!(a.free_extents(), 2);
        // Freeing the middle one joins both neighbours into one extent.
        a.free(offs[1], A);
        assert_eq!(a.free_extents(), 1);
        assert_eq!(a.alloc(3 * A), Some(0));
        a.free(0, 3 * A);
        a.free(offs[3], A);
        assert_eq!(a.free_extents(), 1);
        assert_eq!(a.free_bytes(), 4 * A);
        assert_eq!(a.alloc(4 * A), Some(0));
    }

    #[test]
    fn exhaustion_and_fragmentation_give_none() {
        let mut a = Allocator::new(0, 4 * A, A);
        let offs: Vec<u64> = (0..4).map(|_| a.alloc(A).unwrap()).collect();
        a.free(offs[0], A);
        a.free(offs[2], A);
        // 2 blocks free, but not contiguous: a 2-block extent does not fit.
        assert_eq!(a.free_bytes(), 2 * A);
        assert!(a.alloc(2 * A).is_none());
        assert!(a.alloc(A).is_some());
    }

    #[test]
    fn reserve_and_grow() {
        let mut a = Allocator::new(0, 8 * A, A);
        assert!(a.reserve(2 * A, 2 * A));
        assert!(!a.reserve(3 * A, A), "overlapping reservation must fail");
        assert!(!a.reserve(A / 2, A), "unaligned reservation must fail");
        assert!(
            !a.reserve(7 * A, 2 * A),
            "reservation past the end must fail"
        );
        assert!(a.grow_in_place(2 * A, 2 * A, 3 * A));
        assert!(!a.reserve(4 * A, A));
        assert_eq!(a.alloc(2 * A), Some(0));
        assert!(
            !a.grow_in_place(0, 2 * A, 3 * A),
            "the next extent is taken"
        );
        assert_eq!(a.free_bytes(), 3 * A);
    }
}

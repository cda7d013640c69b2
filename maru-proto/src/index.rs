//! The on-disk format of Maru's per-pool membership index, `<pool>/.maru-index`
//! (the key-membership table, not to be confused with a key's file name): the
//! one definition the writer (`maru-fs`, the daemon) and the reader (`libmaru`)
//! both use, so the two cannot drift apart.
//!
//! Format (version 1, little-endian `u64` words; `docs/maru-fs.md`,
//! "Membership index", is the reference):
//!
//! | offset | word |
//! | ---: | --- |
//! | 0 | magic [`MAGIC`] (`b"MARUIDX1"`) |
//! | 8 | version ([`VERSION`]) |
//! | 16 | sequence: odd while the daemon writes, bumped by 2 per change (seqlock) |
//! | 24 | superseded: 1 once this file is replaced (growth, restart, pool removed) |
//! | 32 | slots: a power of two |
//! | 40, 48 | SipHash-1-3 key `k0`, `k1` (random per daemon start) |
//! | 56 | live entries, 64 tombstones (informational) |
//! | [`HEADER_LEN`] | `slots` words: [`EMPTY`], [`TOMBSTONE`], else [`hash`]`(name)` |
//!
//! Lookups probe linearly from `hash & (slots - 1)` until the hash or an empty
//! slot; a reader brackets its probes with two reads of the sequence word
//! (Acquire load, probes, Acquire fence, load) and retries when it changed or
//! was odd.

use core::ffi::CStr;

/// File name of the index in a pool directory (and in its backing directory).
pub const INDEX_NAME: &str = ".maru-index";
/// [`INDEX_NAME`] as a C string, for `openat`.
pub const INDEX_CNAME: &CStr = c".maru-index";
/// First word of an index file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MARUIDX1");
/// Format version.
pub const VERSION: u64 = 1;
/// Bytes before the table.
pub const HEADER_LEN: usize = 4096;
/// Slot value of an empty slot.
pub const EMPTY: u64 = 0;
/// Slot value of a removed entry.
pub const TOMBSTONE: u64 = 1;

/// Word offsets in the header.
pub mod word {
    // Every header word lies inside the header.
    const _: () = assert!((TOMBSTONES + 1) * 8 <= super::HEADER_LEN);

    /// Magic.
    pub const MAGIC: usize = 0;
    /// Version.
    pub const VERSION: usize = 1;
    /// Seqlock sequence.
    pub const SEQ: usize = 2;
    /// Superseded flag.
    pub const SUPERSEDED: usize = 3;
    /// Number of slots.
    pub const SLOTS: usize = 4;
    /// SipHash key, first half.
    pub const K0: usize = 5;
    /// SipHash key, second half.
    pub const K1: usize = 6;
    /// Live entries.
    pub const LIVE: usize = 7;
    /// Tombstones.
    pub const TOMBSTONES: usize = 8;
}

/// SipHash-1-3 of `data` under key `(k0, k1)`, mapped away from [`EMPTY`] and
/// [`TOMBSTONE`] (0 and 1 become 2): the value a file name occupies in the table.
pub fn hash(k0: u64, k1: u64, data: &[u8]) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash13_reference_vector() {
        // SipHash-1-3 of the empty message under key 00..0f (reference
        // implementation): 0xabac0158050fc4dc.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(hash(k0, k1, b""), 0xabac_0158_050f_c4dc);
    }

    #[test]
    fn name_and_magic_spell_the_format() {
        assert_eq!(INDEX_CNAME.to_bytes(), INDEX_NAME.as_bytes());
        assert_eq!(&MAGIC.to_le_bytes(), b"MARUIDX1");
    }
}

//! The on-device format of a devdax pool: two header slots, an index of
//! fixed-size chunk records, then the data area. All integers little-endian.
//!
//! ```text
//! region offset 0      header slot 0 (4 KiB)  \ the valid slot with the highest
//!               4 KiB  header slot 1 (4 KiB)  / generation is the header
//!               8 KiB  owner lease (4 KiB): which daemon on which host holds the range
//!              12 KiB  index: record_count records of 8 KiB each
//!   data_offset        data area (aligned to the device alignment): chunk extents
//! ```
//!
//! Every header write bumps the generation and goes to slot `generation % 2`, so a
//! write torn by a crash leaves the other slot intact. A record is rewritten in
//! place; its checksum makes a torn record detectable, and a torn record is dropped
//! (the chunk it described was not published yet, or is lost like any cache entry).

use std::time::{SystemTime, UNIX_EPOCH};

use super::crc::crc32c;

/// Magic at the start of each header slot.
pub(crate) const HEADER_MAGIC: [u8; 8] = *b"MARUDAX\0";
/// Format version written by this code (the only one it reads). Version 1 had no
/// owner lease (its index started at 8 KiB).
pub(crate) const VERSION: u32 = 2;
/// Size of one header slot.
pub(crate) const SLOT_SIZE: u64 = 4096;
/// Where the owner lease lives (after both header slots).
pub(crate) const LEASE_OFFSET: u64 = 2 * SLOT_SIZE;
/// Bytes reserved for the owner lease.
pub(crate) const LEASE_SIZE: u64 = 4096;
/// Where the index starts (after the header slots and the owner lease).
pub(crate) const INDEX_OFFSET: u64 = LEASE_OFFSET + LEASE_SIZE;
/// Size of one index record.
pub(crate) const RECORD_SIZE: u64 = 8192;
/// Magic at the start of a used record.
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"MRCD");
/// Fewest and most records an index has (one per alignment unit in between).
const MIN_RECORDS: u64 = 16;
const MAX_RECORDS: u64 = 65536;
/// Longest file name a record holds (the filesystem's name limit).
pub(crate) use maru_proto::name::NAME_MAX;
const KEY_AT: usize = 128;
const XATTR_AT: usize = KEY_AT + 256;
/// Bytes of a header slot the fields take (the rest of the slot is zero).
const HEADER_LEN: usize = 112;
/// Bytes available for the writer's xattrs in a record (each costs 4 + name + value).
pub(crate) const XATTR_SPACE: usize = RECORD_SIZE as usize - XATTR_AT;

/// Why a header slot is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlotProblem {
    /// Every byte is zero (never written).
    Blank,
    /// The magic is not there: not a Maru pool.
    NoMagic,
    /// The magic is there but the checksum does not match.
    BadChecksum { stored: u32, computed: u32 },
    /// Written by another format version.
    Version(u32),
    /// The checksum matches but the fields contradict each other.
    Inconsistent(String),
}

/// The pool header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// Bumped at every header write.
    pub generation: u64,
    /// Random identity of this format of the pool; records carry it.
    pub uuid: [u8; 16],
    /// Bytes of the device the pool covers.
    pub region_len: u64,
    /// Alignment of extents (the device's mapping alignment).
    pub align: u64,
    /// Records in the index.
    pub record_count: u64,
    /// Start of the data area (relative to the region).
    pub data_offset: u64,
    /// Bytes in the data area.
    pub data_len: u64,
    /// When the pool was formatted (unix seconds).
    pub formatted_at: u64,
    /// When a daemon last opened the pool (unix seconds).
    pub opened_at: u64,
}

/// Current unix time in seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Checksum of a slot or record: CRC-32C of `buf` with its 4-byte checksum field
/// at `crc_at` taken as zero.
fn checksum(buf: &[u8], crc_at: usize) -> u32 {
    let mut copy = buf.to_vec();
    copy[crc_at..crc_at + 4].fill(0);
    crc32c(&copy)
}

impl Header {
    /// The header of a fresh pool on a region of `region_len` bytes with mappings
    /// aligned to `align`, or why the region is too small.
    pub fn fresh(region_len: u64, align: u64, uuid: [u8; 16]) -> Result<Header, String> {
        let records = (region_len / align).clamp(MIN_RECORDS, MAX_RECORDS);
        let index_end = INDEX_OFFSET + records * RECORD_SIZE;
        let data_offset = index_end.div_ceil(align) * align;
        let data_len = (region_len.saturating_sub(data_offset) / align) * align;
        if data_len == 0 {
            return Err(format!(
                "{region_len} bytes leave no room for data after the pool header and index \
                 ({data_offset} bytes at alignment {align}); give the pool a bigger byte range"
            ));
        }
        let now = now_secs();
        Ok(Header {
            generation: 0,
            uuid,
            region_len,
            align,
            record_count: records,
            data_offset,
            data_len,
            formatted_at: now,
            opened_at: now,
        })
    }

    /// The slot image of this header.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SLOT_SIZE as usize];
        b[0..8].copy_from_slice(&HEADER_MAGIC);
        put_u32(&mut b, 8, VERSION);
        put_u64(&mut b, 16, self.generation);
        b[24..40].copy_from_slice(&self.uuid);
        put_u64(&mut b, 40, self.region_len);
        put_u64(&mut b, 48, self.align);
        put_u64(&mut b, 56, INDEX_OFFSET);
        put_u32(&mut b, 64, RECORD_SIZE as u32);
        put_u64(&mut b, 72, self.record_count);
        put_u64(&mut b, 80, self.data_offset);
        put_u64(&mut b, 88, self.data_len);
        put_u64(&mut b, 96, self.formatted_at);
        put_u64(&mut b, 104, self.opened_at);
        let crc = checksum(&b, 12);
        put_u32(&mut b, 12, crc);
        b
    }

    /// Parses one slot image.
    pub fn decode(b: &[u8]) -> Result<Header, SlotProblem> {
        if b.iter().all(|&x| x == 0) {
            return Err(SlotProblem::Blank);
        }
        if b.len() < HEADER_LEN || b[0..8] != HEADER_MAGIC {
            return Err(SlotProblem::NoMagic);
        }
        let stored = get_u32(b, 12);
        let computed = checksum(b, 12);
        if stored != computed {
            return Err(SlotProblem::BadChecksum { stored, computed });
        }
        let version = get_u32(b, 8);
        if version != VERSION {
            return Err(SlotProblem::Version(version));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[24..40]);
        let h = Header {
            generation: get_u64(b, 16),
            uuid,
            region_len: get_u64(b, 40),
            align: get_u64(b, 48),
            record_count: get_u64(b, 72),
            data_offset: get_u64(b, 80),
            data_len: get_u64(b, 88),
            formatted_at: get_u64(b, 96),
            opened_at: get_u64(b, 104),
        };
        let index_end = h
            .record_count
            .saturating_mul(RECORD_SIZE)
            .saturating_add(INDEX_OFFSET);
        let consistent = get_u64(b, 56) == INDEX_OFFSET
            && u64::from(get_u32(b, 64)) == RECORD_SIZE
            && h.align.is_power_of_two()
            && h.data_offset % h.align == 0
            && h.data_len % h.align == 0
            && h.data_offset >= index_end
            && h.data_offset
                .checked_add(h.data_len)
                .is_some_and(|end| end <= h.region_len);
        if !consistent {
            return Err(SlotProblem::Inconsistent(format!(
                "index of {} records, data area {}+{} in a region of {} bytes at alignment {}",
                h.record_count, h.data_offset, h.data_len, h.region_len, h.align
            )));
        }
        Ok(h)
    }

    /// Region offset of record `i`.
    pub fn record_offset(&self, i: u64) -> u64 {
        INDEX_OFFSET + i * RECORD_SIZE
    }
}

/// What a record says about its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordState {
    /// Being written; dropped by recovery.
    Staging,
    /// Published under its key; found again by recovery.
    Published,
    /// Removed from a shared pool while other hosts may still map it: the extent
    /// stays allocated (quarantined) and the name is gone.
    Removing,
}

/// A byte range of a devdax pool holding one chunk's data: `offset` bytes from
/// the start of the pool's range (of the device, where a caller says so), `len`
/// bytes long (a multiple of the alignment; 0 for an empty chunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    /// Start of the range.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// One index record: a chunk and its extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Staging or published.
    pub state: RecordState,
    /// Publish sequence number (orders chunks published by successive daemons).
    pub seq: u64,
    /// Extent start, relative to the region (0 with `extent_len` 0 for an empty chunk).
    pub extent_off: u64,
    /// Extent length (a multiple of the alignment).
    pub extent_len: u64,
    /// Data bytes (the chunk's file size).
    pub size: u64,
    /// CRC-32C of the `size` data bytes (set at publish).
    pub data_crc: u32,
    /// The creator's uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Creation time (unix seconds).
    pub created: u64,
    /// The name (a key once published).
    pub name: Vec<u8>,
    /// The writer's own `user.*` xattrs.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a record slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Unused (all zeros).
    Free,
    /// A record with a good checksum.
    Used(Box<Record>),
    /// Garbage, a torn write, or a record of an earlier format; why.
    Bad(String),
}

/// Bytes the xattrs take in a record.
pub(crate) fn xattr_bytes<'a>(xattrs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    xattrs.map(|(n, v)| 4 + n.len() + v.len()).sum()
}

impl Record {
    /// The chunk's extent, relative to the pool's range.
    pub fn extent(&self) -> Extent {
        Extent {
            offset: self.extent_off,
            len: self.extent_len,
        }
    }

    /// The record image, tagged with the pool's `uuid`; `None` if the name or the
    /// xattrs do not fit.
    pub fn encode(&self, uuid: &[u8; 16]) -> Option<Vec<u8>> {
        if self.name.len() > NAME_MAX
            || xattr_bytes(self.xattrs.iter().map(|(n, v)| (&n[..], &v[..]))) > XATTR_SPACE
        {
            return None;
        }
        let mut b = vec![0u8; RECORD_SIZE as usize];
        put_u32(&mut b, 0, RECORD_MAGIC);
        put_u32(
            &mut b,
            8,
            match self.state {
                RecordState::Staging => 1,
                RecordState::Published => 2,
                RecordState::Removing => 3,
            },
        );
        b[12..14].copy_from_slice(&(self.name.len() as u16).to_le_bytes());
        b[14..16].copy_from_slice(&(self.xattrs.len() as u16).to_le_bytes());
        put_u64(&mut b, 16, self.seq);
        put_u64(&mut b, 24, self.extent_off);
        put_u64(&mut b, 32, self.extent_len);
        put_u64(&mut b, 40, self.size);
        put_u32(&mut b, 48, self.data_crc);
        put_u32(&mut b, 52, self.uid);
        put_u32(&mut b, 56, self.mode);
        put_u64(&mut b, 64, self.created);
        b[72..88].copy_from_slice(uuid);
        b[KEY_AT..KEY_AT + self.name.len()].copy_from_slice(&self.name);
        let mut at = XATTR_AT;
        for (n, v) in &self.xattrs {
            b[at..at + 2].copy_from_slice(&(n.len() as u16).to_le_bytes());
            b[at + 2..at + 4].copy_from_slice(&(v.len() as u16).to_le_bytes());
            at += 4;
            b[at..at + n.len()].copy_from_slice(n);
            at += n.len();
            b[at..at + v.len()].copy_from_slice(v);
            at += v.len();
        }
        let crc = checksum(&b, 4);
        put_u32(&mut b, 4, crc);
        Some(b)
    }

    /// Parses a record slot of the pool whose identity is `uuid`.
    pub fn decode(b: &[u8], uuid: &[u8; 16]) -> Slot {
        if b.iter().all(|&x| x == 0) {
            return Slot::Free;
        }
        if b.len() < XATTR_AT {
            return Slot::Bad(format!("a record slot of {} bytes", b.len()));
        }
        if get_u32(b, 0) != RECORD_MAGIC {
            return Slot::Bad("no record magic".into());
        }
        let stored = get_u32(b, 4);
        let computed = checksum(b, 4);
        if stored != computed {
            return Slot::Bad(format!(
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): a torn or damaged record"
            ));
        }
        if b[72..88] != uuid[..] {
            return Slot::Bad("written by an earlier format of this pool".into());
        }
        let state = match get_u32(b, 8) {
            1 => RecordState::Staging,
            2 => RecordState::Published,
            3 => RecordState::Removing,
            other => return Slot::Bad(format!("unknown state {other}")),
        };
        let name_len = usize::from(u16::from_le_bytes([b[12], b[13]]));
        let nx = usize::from(u16::from_le_bytes([b[14], b[15]]));
        if name_len > NAME_MAX {
            return Slot::Bad(format!("name length {name_len} over {NAME_MAX}"));
        }
        let mut xattrs = Vec::with_capacity(nx);
        let mut at = XATTR_AT;
        for _ in 0..nx {
            if at + 4 > b.len() {
                return Slot::Bad("xattrs run past the record".into());
            }
            let nl = usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
            let vl = usize::from(u16::from_le_bytes([b[at + 2], b[at + 3]]));
            at += 4;
            if at + nl + vl > b.len() {
                return Slot::Bad("xattrs run past the record".into());
            }
            xattrs.push((b[at..at + nl].to_vec(), b[at + nl..at + nl + vl].to_vec()));
            at += nl + vl;
        }
        Slot::Used(Box::new(Record {
            state,
            seq: get_u64(b, 16),
            extent_off: get_u64(b, 24),
            extent_len: get_u64(b, 32),
            size: get_u64(b, 40),
            data_crc: get_u32(b, 48),
            uid: get_u32(b, 52),
            mode: get_u32(b, 56),
            created: get_u64(b, 64),
            name: b[KEY_AT..KEY_AT + name_len].to_vec(),
            xattrs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn fresh_layout_is_aligned_and_fits() {
        let h = Header::fresh(256 * MIB, 2 * MIB, [7; 16]).unwrap();
        assert_eq!(h.record_count, 128);
        assert_eq!(h.data_offset, 2 * MIB);
        assert_eq!(h.data_len, 254 * MIB);
        assert!(Header::fresh(2 * MIB, 2 * MIB, [7; 16]).is_err());
    }

    #[test]
    fn header_round_trip_and_damage() {
        let mut h = Header::fresh(256 * MIB, 2 * MIB, [9; 16]).unwrap();
        h.generation = 5;
        let mut img = h.encode();
        assert_eq!(Header::decode(&img), Ok(h));
        img[41] ^= 1;
        assert!(matches!(
            Header::decode(&img),
            Err(SlotProblem::BadChecksum { .. })
        ));
        assert_eq!(
            Header::decode(&vec![0; SLOT_SIZE as usize]),
            Err(SlotProblem::Blank)
        );
        assert_eq!(
            Header::decode(&vec![0xAB; SLOT_SIZE as usize]),
            Err(SlotProblem::NoMagic)
        );
    }

    #[test]
    fn record_round_trip_and_damage() {
        let r = Record {
            state: RecordState::Published,
            seq: 3,
            extent_off: 4 * MIB,
            extent_len: 2 * MIB,
            size: 12345,
            data_crc: 0xDEAD_BEEF,
            uid: 65534,
            mode: 0o640,
            created: 1_700_000_000,
            name: b"key-1".to_vec(),
            xattrs: vec![(maru_proto::xattr::KEY.into(), vec![b'k'; 3000])],
        };
        let uuid = [1; 16];
        let img = r.encode(&uuid).unwrap();
        assert_eq!(Record::decode(&img, &uuid), Slot::Used(Box::new(r.clone())));
        assert!(matches!(Record::decode(&img, &[2; 16]), Slot::Bad(_)));
        let mut torn = img.clone();
        torn[5000] ^= 0xFF;
        assert!(matches!(Record::decode(&torn, &uuid), Slot::Bad(_)));
        assert_eq!(
            Record::decode(&vec![0; RECORD_SIZE as usize], &uuid),
            Slot::Free
        );
        let mut big = r;
        big.xattrs = vec![(b"user.x".to_vec(), vec![0; XATTR_SPACE])];
        assert!(big.encode(&uuid).is_none());
    }
}

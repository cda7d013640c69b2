//! Bounded property tests ("fuzzing") of the devdax on-device format decoders
//! (pool header, index records) and of the cluster's `KeyRef` values: arbitrary
//! bytes never panic; bit flips of valid images never decode as valid; encoding
//! then decoding gives back what was encoded. The lease record's properties are in
//! `owner/fuzz.rs`. A fixed seed and a small case budget in `cargo test` (`fuzz_`
//! in every name); `scripts/fuzz.sh` runs them with a large `PROPTEST_CASES`.

use maru_testkit::fuzz::runner;
use proptest::prelude::*;

use super::crc::crc32c;
use super::layout::{
    Header, Record, RecordState, Slot, SlotProblem, HEADER_MAGIC, NAME_MAX, RECORD_SIZE, SLOT_SIZE,
    VERSION, XATTR_SPACE,
};
use super::shared::KeyRef;

/// Arbitrary bytes of any length, biased towards the sizes the decoders expect.
pub(super) fn any_image(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..len + 64),
        proptest::collection::vec(any::<u8>(), len..=len),
        (proptest::collection::vec(any::<u8>(), 0..256), 0..len).prop_map(move |(head, _)| {
            let mut b = vec![0u8; len];
            let n = head.len().min(len);
            b[..n].copy_from_slice(&head[..n]);
            b
        }),
    ]
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Stores the CRC-32C of `b` (its 4-byte checksum field at `at` taken as zero).
fn seal(b: &mut [u8], at: usize) {
    b[at..at + 4].fill(0);
    let crc = crc32c(b);
    put_u32(b, at, crc);
}

fn header() -> impl Strategy<Value = Header> {
    (
        20u32..48,
        12u32..22,
        any::<[u8; 16]>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_filter_map("region too small", |(rl, al, uuid, generation, f, o)| {
            let mut h = Header::fresh(1u64 << rl, 1u64 << al, uuid).ok()?;
            h.generation = generation;
            h.formatted_at = f;
            h.opened_at = o;
            Some(h)
        })
}

#[test]
fn fuzz_header_arbitrary_bytes_never_panic() {
    runner(2000)
        .run(&any_image(SLOT_SIZE as usize), |b| {
            let _ = Header::decode(&b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_header_with_a_good_checksum_and_arbitrary_fields_never_panics() {
    // Magic, version and checksum right, every field arbitrary: the consistency
    // checks must reject without overflowing.
    let fields = proptest::collection::vec(any::<u64>(), 12);
    let edge = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(u64::MAX / RECORD_SIZE),
        Just(u64::MAX / RECORD_SIZE + 1),
        any::<u64>()
    ];
    runner(2000)
        .run(&(fields, edge.clone(), edge), |(f, count, align)| {
            let mut b = vec![0u8; SLOT_SIZE as usize];
            b[0..8].copy_from_slice(&HEADER_MAGIC);
            put_u32(&mut b, 8, VERSION);
            for (i, v) in f.iter().enumerate() {
                put_u64(&mut b, 16 + 8 * i, *v);
            }
            put_u64(&mut b, 56, 3 * SLOT_SIZE);
            put_u32(&mut b, 64, RECORD_SIZE as u32);
            put_u64(&mut b, 72, count);
            put_u64(&mut b, 48, align);
            seal(&mut b, 12);
            if let Ok(h) = Header::decode(&b) {
                prop_assert!(h.align.is_power_of_two());
                prop_assert!(h.data_offset.checked_add(h.data_len).is_some());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_header_round_trip_and_every_bit_flip_is_refused() {
    let flips = proptest::collection::vec(0..SLOT_SIZE as usize * 8, 32);
    runner(24)
        .run(&(header(), flips), |(h, flips)| {
            let img = h.encode();
            prop_assert_eq!(Header::decode(&img), Ok(h.clone()));
            // The checksum covers the whole slot: no bit is in an ignored region.
            // Every bit of the fields, and random bits of the zero rest.
            for bit in (0..112 * 8).chain(flips) {
                let mut bad = img.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let got = Header::decode(&bad);
                prop_assert!(got.is_err(), "flip of bit {bit} decoded as {got:?}");
            }
            Ok(())
        })
        .unwrap();
}

fn record() -> impl Strategy<Value = Record> {
    let state = prop_oneof![
        Just(RecordState::Staging),
        Just(RecordState::Published),
        Just(RecordState::Removing),
    ];
    let xattr = (
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..1500),
    );
    (
        state,
        any::<[u64; 5]>(),
        any::<[u32; 3]>(),
        proptest::collection::vec(any::<u8>(), 0..=NAME_MAX),
        proptest::collection::vec(xattr, 0..8),
    )
        .prop_map(|(state, w, h, name, mut xattrs)| {
            while super::layout::xattr_bytes(xattrs.iter().map(|(n, v)| (&n[..], &v[..])))
                > XATTR_SPACE
            {
                xattrs.pop();
            }
            Record {
                state,
                seq: w[0],
                extent_off: w[1],
                extent_len: w[2],
                size: w[3],
                data_crc: h[0],
                uid: h[1],
                mode: h[2],
                created: w[4],
                name,
                xattrs,
            }
        })
}

#[test]
fn fuzz_record_arbitrary_bytes_never_panic() {
    runner(1000)
        .run(
            &(any_image(RECORD_SIZE as usize), any::<[u8; 16]>()),
            |(b, uuid)| {
                let _ = Record::decode(&b, &uuid);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_record_with_a_good_checksum_and_arbitrary_body_never_panics() {
    // Magic, checksum and pool identity right, the rest arbitrary (lengths included).
    let body = proptest::collection::vec((0usize..RECORD_SIZE as usize, any::<u8>()), 0..200);
    runner(1000)
        .run(
            &(body, any::<[u8; 16]>(), 0u32..5),
            |(pokes, uuid, state)| {
                let mut b = vec![0u8; RECORD_SIZE as usize];
                for (at, v) in pokes {
                    b[at] = v;
                }
                b[0..4].copy_from_slice(b"MRCD");
                put_u32(&mut b, 8, state);
                b[72..88].copy_from_slice(&uuid);
                seal(&mut b, 4);
                if let Slot::Used(r) = Record::decode(&b, &uuid) {
                    prop_assert!(r.name.len() <= NAME_MAX);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_record_round_trip_and_bit_flips_are_refused() {
    let flips = proptest::collection::vec(0..RECORD_SIZE as usize * 8, 64);
    runner(24)
        .run(&(record(), any::<[u8; 16]>(), flips), |(r, uuid, flips)| {
            let img = r.encode(&uuid).expect("fits");
            prop_assert_eq!(img.len(), RECORD_SIZE as usize);
            prop_assert_eq!(Record::decode(&img, &uuid), Slot::Used(Box::new(r.clone())));
            // Every bit of the record is under its checksum (a flip in the zero
            // padding included): each flip is refused.
            for bit in (0..88 * 8).chain(flips) {
                let mut bad = img.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let got = Record::decode(&bad, &uuid);
                prop_assert!(matches!(got, Slot::Bad(_)), "flip of bit {bit}: {got:?}");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_short_images_are_refused_not_panics() {
    // Regression: the decoders indexed fixed offsets of a slice of any length.
    for len in [0usize, 1, 8, 12, 15, 16, 40, 100, 111, 112, 383, 384, 385] {
        let mut b = vec![0xA5u8; len];
        if len >= 8 {
            b[..8].copy_from_slice(&HEADER_MAGIC);
        }
        assert!(Header::decode(&b).is_err(), "header of {len} bytes");
        let mut r = vec![0xA5u8; len];
        if len >= 4 {
            r[..4].copy_from_slice(b"MRCD");
        }
        assert!(
            len == 0 || matches!(Record::decode(&r, &[0xA5; 16]), Slot::Bad(_)),
            "record of {len} bytes"
        );
    }
    assert_eq!(Header::decode(&[]), Err(SlotProblem::Blank));
}

#[test]
fn fuzz_header_huge_record_count_is_inconsistent_not_an_overflow() {
    // Regression: `INDEX_OFFSET + record_count * RECORD_SIZE` overflowed (a panic in
    // debug builds, a wrapped and so wrongly accepted data offset in release).
    let mut b = vec![0u8; SLOT_SIZE as usize];
    b[0..8].copy_from_slice(&HEADER_MAGIC);
    put_u32(&mut b, 8, VERSION);
    put_u64(&mut b, 40, u64::MAX); // region_len
    put_u64(&mut b, 48, 4096); // align
    put_u64(&mut b, 56, 3 * SLOT_SIZE);
    put_u32(&mut b, 64, RECORD_SIZE as u32);
    put_u64(&mut b, 72, u64::MAX / RECORD_SIZE); // record_count
    put_u64(&mut b, 80, 4096); // data_offset
    put_u64(&mut b, 88, 4096); // data_len
    seal(&mut b, 12);
    assert!(matches!(
        Header::decode(&b),
        Err(SlotProblem::Inconsistent(_))
    ));
}

#[test]
fn fuzz_keyref_arbitrary_bytes_never_panic_and_round_trip() {
    runner(2000)
        .run(&proptest::collection::vec(any::<u8>(), 0..80), |b| {
            if let Some(k) = KeyRef::decode(&b) {
                // Whatever decodes re-encodes to something that decodes the same.
                prop_assert_eq!(KeyRef::decode(&k.encode()), Some(k));
            }
            Ok(())
        })
        .unwrap();
    let text = prop_oneof![
        "host=[ -~]{0,20};slot=[0-9]{1,22}",
        "slot=[0-9]{1,22};host=[ -~]{0,20}",
        "[=;a-z0-9]{0,30}",
    ];
    runner(1000)
        .run(&text, |t| {
            let _ = KeyRef::decode(t.as_bytes());
            Ok(())
        })
        .unwrap();
    runner(1000)
        .run(&("[^;]{0,64}", any::<u64>()), |(host, slot)| {
            let k = KeyRef { host, slot };
            prop_assert_eq!(KeyRef::decode(&k.encode()), Some(k));
            Ok(())
        })
        .unwrap();
}

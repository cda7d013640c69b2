//! Bounded property tests of the owner lease record decoder (`Claim::decode`):
//! arbitrary bytes never panic, bit flips of a valid record are never read as a
//! claim, encode then decode gives the claim back. See `devdax/fuzz.rs`.

use proptest::prelude::*;

use super::super::fuzz::any_image;
use super::{Claim, Seen, HELD, NAME_MAX, RECORD_LEN, RELEASED, SHARED};
use maru_testkit::fuzz::runner;

fn claim() -> impl Strategy<Value = Claim> {
    (
        prop_oneof![Just(HELD), Just(RELEASED), Just(SHARED)],
        any::<u32>(),
        any::<[u64; 4]>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        "\\PC{0,47}".prop_filter("fits", |n: &String| n.len() <= NAME_MAX),
    )
        .prop_map(|(state, pid, w, machine_id, boot_id, name)| Claim {
            state,
            pid,
            heartbeat: w[0],
            pid_start: w[1],
            machine_id,
            boot_id,
            acquired_at: w[2],
            nonce: w[3],
            name,
        })
}

#[test]
fn fuzz_lease_arbitrary_bytes_never_panic() {
    runner(3000)
        .run(&any_image(RECORD_LEN), |b| {
            let _ = Claim::decode(&b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_lease_round_trip_and_every_bit_flip_is_unreadable() {
    runner(256)
        .run(&claim(), |c| {
            let img = c.encode();
            prop_assert_eq!(Claim::decode(&img), Seen::Claim(c.clone()));
            for bit in 0..RECORD_LEN * 8 {
                let mut bad = img;
                bad[bit / 8] ^= 1 << (bit % 8);
                let got = Claim::decode(&bad);
                prop_assert_eq!(got, Seen::Unreadable, "flip of bit {}", bit);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_lease_of_the_wrong_length_is_unreadable() {
    // Regression: the checksum copied the slice into a fixed-size array (a panic
    // for any other length).
    for len in [1usize, 4, 8, 80, 127, 129, 4096] {
        assert_eq!(Claim::decode(&vec![0x5Au8; len]), Seen::Unreadable, "{len}");
    }
    assert_eq!(Claim::decode(&[]), Seen::Blank);
}

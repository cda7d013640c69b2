//! The deterministic bytes `maru-fs-probe` writes into a chunk, so that the
//! probe, the tests that check its chunks and libmaru's tests agree on one
//! pattern. It lives here, not in the test kit, because the probe is a binary of
//! this crate and may depend only on ordinary dependencies.

/// The byte at `offset` of a chunk written with `seed`.
pub fn byte(seed: u64, offset: usize) -> u8 {
    (seed as usize)
        .wrapping_mul(31)
        .wrapping_add(offset / 4096)
        .wrapping_add(offset) as u8
}

/// Fills `buf` with the pattern of `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(seed, i);
    }
}

/// Whether `buf` holds the pattern of `seed`.
pub fn check(buf: &[u8], seed: u64) -> bool {
    buf.iter().enumerate().all(|(i, &b)| b == byte(seed, i))
}

/// The sum of the first `len` bytes of the pattern of `seed` (what the probe
/// prints for a chunk it read).
pub fn sum(seed: u64, len: usize) -> u64 {
    (0..len).map(|i| u64::from(byte(seed, i))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_writes_what_check_accepts_and_seeds_differ() {
        let mut buf = vec![0; 3 * 4096 + 5];
        fill(&mut buf, 7);
        assert!(check(&buf, 7));
        assert!(!check(&buf, 8));
        assert_eq!(
            sum(7, buf.len()),
            buf.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
    }
}

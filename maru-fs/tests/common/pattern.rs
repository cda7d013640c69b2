//! The bytes `maru-fs-probe` writes into a chunk. The probe includes this file
//! too (`#[path]`), so the writer and the tests that check its bytes agree.

/// The byte at `offset` of a chunk written with `seed`.
pub fn pattern(seed: u64, offset: usize) -> u8 {
    (seed as usize)
        .wrapping_mul(31)
        .wrapping_add(offset / 4096)
        .wrapping_add(offset) as u8
}

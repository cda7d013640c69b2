//! The proptest runner every property test of the workspace uses.

use proptest::test_runner::{Config, RngSeed, TestRunner};

/// A runner with a fixed seed (`PROPTEST_RNG_SEED` overrides it), `PROPTEST_CASES`
/// cases (else `default_cases`), and no failure files written: a run is
/// reproducible, and a failure names its seed rather than leaving files in the tree.
pub fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d61_7275);
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

//! Gates for tests that need something this machine or user may lack.
//!
//! A test that needs root calls [`root`] first and returns when it says no:
//!
//! ```no_run
//! if !maru_testkit::need::root() {
//!     return;
//! }
//! ```
//!
//! Nothing passes silently: without root the gate panics, naming the test and the
//! way to skip, unless `MARU_TEST_SKIP_ROOT=1` asks for skipping; then it prints
//! `SKIPPED (not root): <test>` to stderr, which the test harness does not capture.
//! `scripts/test.sh` runs the tests as root, so CI runs every one of them.

use std::io::Write;
use std::path::Path;

/// The environment variable that turns a root-needing test into a loud skip.
pub const SKIP_ROOT_ENV: &str = "MARU_TEST_SKIP_ROOT";
/// The environment variable that turns a GPU test without a GPU into a failure.
pub const REQUIRE_GPU_ENV: &str = "MARU_TEST_REQUIRE_GPU";

/// Whether this process may mount FUSE filesystems and switch users: root, with
/// `/dev/fuse` present.
pub fn is_root_with_fuse() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists()
}

/// The running test's name: libtest names each test's thread after it.
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::args()
            .next()
            .unwrap_or_else(|| "this test".to_string()),
    }
}

/// Whether the running test can run here: true as root with `/dev/fuse`.
/// Otherwise panics saying what is missing, unless `MARU_TEST_SKIP_ROOT=1`: then
/// reports the test as skipped (see [`skipped`]) and returns false.
pub fn root() -> bool {
    root_for(&current_test())
}

/// [`root`] for `what` (a test, or a whole suite) instead of the running test.
pub fn root_for(what: &str) -> bool {
    if is_root_with_fuse() {
        return true;
    }
    let missing = if nix::unistd::geteuid().is_root() {
        "/dev/fuse is missing (modprobe fuse)"
    } else {
        "it needs root (to mount FUSE and tmpfs, switch users, read page frames or be the daemon's root client)"
    };
    if skip_asked(SKIP_ROOT_ENV) {
        skipped("not root", what, &missing);
        return false;
    }
    panic!(
        "{what} cannot run here: {missing}. Run the tests as root (scripts/test.sh does), \
         or set {SKIP_ROOT_ENV}=1 to skip them, each reported as SKIPPED"
    );
}

/// Reports that a GPU test did not run its GPU part because `why` (e.g. no CUDA
/// driver): prints `SKIPPED (no GPU): <test>: <why>`. With
/// `MARU_TEST_REQUIRE_GPU=1` (a machine that has a GPU) it panics instead.
pub fn no_gpu(why: &dyn std::fmt::Display) {
    let test = current_test();
    if skip_asked(REQUIRE_GPU_ENV) {
        panic!("{test}: {REQUIRE_GPU_ENV} is set but the GPU part cannot run: {why}");
    }
    skipped("no GPU", &test, why);
}

/// Reports that the running test skipped its work because `reason` (e.g. `no
/// io_uring`), with `detail`: see [`skipped`].
pub fn skip(reason: &str, detail: &dyn std::fmt::Display) {
    skipped(reason, &current_test(), detail);
}

/// Prints `SKIPPED (<reason>): <what>: <detail>` straight to stderr, where the test
/// harness does not capture it, so a skip shows in every `cargo test` run.
pub fn skipped(reason: &str, what: &str, detail: &dyn std::fmt::Display) {
    // `eprintln!` output of a passing test is captured and dropped; the stderr
    // handle itself is not.
    let _ = writeln!(std::io::stderr(), "SKIPPED ({reason}): {what}: {detail}");
}

/// Whether the environment variable `name` is set to something other than `0` or
/// the empty string.
fn skip_asked(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_name_comes_from_the_harness_thread() {
        assert_eq!(
            current_test(),
            "need::tests::the_test_name_comes_from_the_harness_thread"
        );
    }

    #[test]
    fn skip_asked_reads_zero_and_empty_as_no() {
        std::env::set_var("MARU_TESTKIT_SELFTEST_A", "0");
        std::env::set_var("MARU_TESTKIT_SELFTEST_B", "");
        std::env::set_var("MARU_TESTKIT_SELFTEST_C", "1");
        assert!(!skip_asked("MARU_TESTKIT_SELFTEST_A"));
        assert!(!skip_asked("MARU_TESTKIT_SELFTEST_B"));
        assert!(skip_asked("MARU_TESTKIT_SELFTEST_C"));
        assert!(!skip_asked("MARU_TESTKIT_SELFTEST_UNSET"));
    }
}

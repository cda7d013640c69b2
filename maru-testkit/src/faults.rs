//! The runner of the fault suites (`harness = false` test binaries that kill and
//! starve clients and daemons against real mounts). Each case runs in turn; the
//! runner prints a line per case and `N passed, M failed`, and exits with 1 when a
//! case failed. The suites mount filesystems, so they need root: see
//! [`crate::need::root_for`].

use std::panic::AssertUnwindSafe;
use std::time::Instant;

/// One case: its name (matched by the command line's filters) and its body,
/// which fails by panicking.
pub type Case = (&'static str, fn());

/// Runs the `cases` of `suite` whose names contain one of the command line's
/// non-option arguments (all when there are none), then exits the process: with
/// 1 when a case failed.
pub fn run(suite: &str, cases: &[Case]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !crate::need::root_for(&format!("fault suite {suite}")) {
        println!("0 passed, 0 failed (skipped: not root)");
        std::process::exit(0);
    }
    let (passed, failed) = run_cases(cases, &filters);
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

/// Runs the selected cases; returns how many passed and how many failed.
fn run_cases(cases: &[Case], filters: &[String]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for &(name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        match std::panic::catch_unwind(AssertUnwindSafe(case)) {
            Ok(()) => {
                passed += 1;
                println!(
                    "fault {name} ... ok ({:.1} s)",
                    start.elapsed().as_secs_f64()
                );
            }
            Err(_) => {
                failed += 1;
                println!("fault {name} ... FAILED");
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine() {}

    fn broken() {
        panic!("this case fails on purpose");
    }

    #[test]
    fn cases_are_counted_and_filtered() {
        let cases: [Case; 3] = [("a_fine", fine), ("b_broken", broken), ("c_fine", fine)];
        assert_eq!(run_cases(&cases, &[]), (2, 1));
        assert_eq!(run_cases(&cases, &["fine".to_string()]), (2, 0));
        assert_eq!(run_cases(&cases, &["b_".to_string()]), (0, 1));
        assert_eq!(run_cases(&cases, &["none".to_string()]), (0, 0));
    }
}

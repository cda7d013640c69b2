//! Issue 11 ("Hardening"), each with the real daemon on a real mount: the open files limit.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, World};

fn pool(name: &str, size: &str) -> String {
    format!("  - name: {name}\n    source: {{numa: {{node: 0}}}}\n    size: {size}\n    mode: \"1777\"\n")
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w
        .spawn_under(&["prlimit", "--nofile=256:8192", "--"], &[])
        .serving(&w);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["8192", "8192"], "{line}");
    assert!(
        d.log_text()
            .contains("open files limit (RLIMIT_NOFILE): raised from 256 to the hard limit 8192"),
        "{}",
        d.log_text()
    );
    assert!(d.stop());
}

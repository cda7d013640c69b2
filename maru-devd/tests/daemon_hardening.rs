//! Issue 11 ("Hardening"), each with the real daemon on a real mount: `df -i` figures, the open files limit.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, python, World, WRITER};
use std::process::Command;

fn pool(name: &str, size: &str) -> String {
    format!("  - name: {name}\n    source: {{numa: {{node: 0}}}}\n    size: {size}\n    mode: \"1777\"\n")
}

#[test]
fn df_i_counts_the_chunks_as_used_inodes() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let dir = w.mnt.join("kv");
    for k in ["a", "b"] {
        python(WRITER, &[dir.to_str().unwrap(), k, "4096"], None).unwrap();
    }
    // statvfs: the used inodes (files - ffree) are the chunks, never negative
    for p in [w.mnt.clone(), dir.clone()] {
        let st = nix::sys::statvfs::statvfs(&p).unwrap();
        let (files, ffree) = (st.files(), st.files_free());
        assert!(
            files >= ffree,
            "{}: f_files {files} < f_ffree {ffree}",
            p.display()
        );
        assert_eq!(files - ffree, 2, "{}: IUsed", p.display());
    }
    let df = Command::new("df").arg("-i").arg(&dir).output().unwrap();
    let df = String::from_utf8_lossy(&df.stdout);
    let iused = df.lines().nth(1).and_then(|l| l.split_whitespace().nth(2));
    assert_eq!(iused, Some("2"), "df -i IUsed:\n{df}");
    assert!(d.stop());
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

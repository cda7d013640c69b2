//! The CLI's output on a pipe whose reader has gone (`maru-devd check-config FILE | head -1`):
//! the command must end quietly, never panic (exit status 101, "panicked" on stderr).

mod fixtures;

use fixtures::{bin, extract_named};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};

const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/1-ram-region-kmem-online";

/// A pipe whose read end is already closed: every write to the other end fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    write
}

/// Runs maru-devd with stdout (and, with `both`, stderr too) on a closed pipe.
fn run_closed(args: &[&std::ffi::OsStr], both: bool) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(Stdio::from(closed_pipe()));
    if both {
        cmd.stderr(Stdio::from(closed_pipe()));
    } else {
        cmd.stderr(Stdio::piped());
    }
    cmd.output().unwrap()
}

fn assert_no_panic(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn check_config_and_discover_on_a_closed_pipe_do_not_panic() {
    let snap = extract_named(SNAPSHOT);
    let sys = snap.sys();
    let good = snap.root.join("good.yaml");
    std::fs::write(
        &good,
        "pools:\n  - name: kv\n    source: {numa: {node: 0}}\n    size: 64MiB\n",
    )
    .unwrap();
    let out = run_closed(
        &[
            "check-config".as_ref(),
            "--sysfs-root".as_ref(),
            sys.as_os_str(),
            good.as_os_str(),
        ],
        false,
    );
    assert_no_panic("check-config", &out);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "a closed pipe is not an error: {out:?}"
    );

    let out = run_closed(
        &[
            "discover".as_ref(),
            "--sysfs-root".as_ref(),
            sys.as_os_str(),
        ],
        false,
    );
    assert_no_panic("discover", &out);
    let out = run_closed(
        &[
            "discover".as_ref(),
            "--json".as_ref(),
            "--sysfs-root".as_ref(),
            sys.as_os_str(),
        ],
        false,
    );
    assert_no_panic("discover --json", &out);

    // a broken config reports on stderr: that pipe closed too must not panic, and the exit
    // status still says the config is bad
    let bad = snap.root.join("bad.yaml");
    std::fs::write(
        &bad,
        "pools: [{name: kv, source: {numa: {node: 0}}, size: lots}]\n",
    )
    .unwrap();
    let out = run_closed(
        &[
            "check-config".as_ref(),
            "--sysfs-root".as_ref(),
            sys.as_os_str(),
            bad.as_os_str(),
        ],
        true,
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "check-config panicked on a closed stderr"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "check-config exits 2 on a config with problems"
    );
}

#[test]
fn an_error_with_stderr_closed_does_not_panic() {
    // status without a daemon: an error message goes to a closed stderr
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("status")
        .env("MARU_RUNTIME_DIR", tmp.path())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::from(closed_pipe()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "no daemon answers: {out:?}");
}

//! Operability with the real daemon: the Prometheus endpoint, systemd notifications, log
//! format and levels, exit codes, the `reload`/`stop` verbs, `status` filtered by the
//! caller's credentials, and the mount's `fuse.maru` type.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, free_port, poll, python, World, WRITER};
use fixtures::bin;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

fn pool(name: &str, size: &str, extra: &str) -> String {
    format!("  - name: {name}\n    source: {{numa: {{node: 0}}}}\n    size: {size}\n{extra}")
}

/// `GET path` over `conn`; the whole response.
fn get<S: Read + Write>(mut conn: S, path: &str) -> String {
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

/// The value of the sample `series` (name with labels) in an exposition.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs maru-devd `args` as uid:gid `NOBODY` with no supplementary groups.
fn as_nobody(w: &World, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(bin())
        .args(args)
        .env("MARU_RUNTIME_DIR", &w.run)
        .output()
        .unwrap()
}

#[test]
fn metrics_endpoint_reports_each_pool_and_the_mount_is_fuse_maru() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "64MiB", "    mode: \"1777\"\n"));
    let port = free_port();
    let sock = w.tmp.path().join("metrics.sock");
    let cfg = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{cfg}metrics: {{listen: \"127.0.0.1:{port}\", socket: {}}}\n",
            sock.display()
        ),
    )
    .unwrap();
    let d = w.start();

    // findmnt shows fuse.maru: the type field after " - " in mountinfo
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mnt = w.mnt.to_string_lossy().into_owned();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
        .expect("the mount is in mountinfo");
    let fstype = line.split(" - ").nth(1).and_then(|r| r.split(' ').next());
    assert_eq!(fstype, Some("fuse.maru"), "{line}");

    let dir = w.mnt.join("kv");
    let dir = dir.to_str().unwrap();
    python(WRITER, &[dir, "chunk-a", "1048576"], None).unwrap();
    python(WRITER, &[dir, "chunk-b", "1048576"], None).unwrap();
    std::fs::remove_file(w.mnt.join("kv/chunk-b")).unwrap();

    let resp = get(
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
        "/metrics",
    );
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Content-Type: text/plain; version=0.0.4"),
        "{resp}"
    );
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        sample(body, "maru_pool_capacity_bytes{pool=\"kv\"}"),
        Some(64 << 20),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_publishes_total{pool=\"kv\"}"),
        Some(2),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_creates_total{pool=\"kv\"}"),
        Some(2),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_removals_total{pool=\"kv\"}"),
        Some(1),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_chunks{pool=\"kv\",state=\"published\"}"),
        Some(1),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_chunks{pool=\"kv\",state=\"staging\"}"),
        Some(0),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_used_bytes{pool=\"kv\"}"),
        Some(1 << 20),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_online{pool=\"kv\"}"),
        Some(1),
        "{body}"
    );
    assert!(sample(body, "maru_fuse_lookups_total{pool=\"kv\"}").is_some());
    assert!(body.contains("# TYPE maru_pool_publishes_total counter\n"));
    assert!(body.contains("# TYPE maru_pool_used_bytes gauge\n"));
    assert!(body.contains("# HELP maru_fuse_lookups_total FUSE LOOKUP requests"));
    assert!(
        sample(body, "process_open_fds").is_some_and(|n| n > 3),
        "{body}"
    );
    assert!(
        sample(body, "process_resident_memory_bytes").is_some_and(|n| n > 0),
        "{body}"
    );
    assert!(sample(body, "maru_daemon_uptime_seconds").is_some());

    // the same over the unix socket, which anyone may reach
    let mode = std::fs::metadata(&sock).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let resp = get(
        std::os::unix::net::UnixStream::connect(&sock).unwrap(),
        "/metrics",
    );
    assert_eq!(
        sample(
            resp.split("\r\n\r\n").nth(1).unwrap(),
            "maru_pool_publishes_total{pool=\"kv\"}"
        ),
        Some(2)
    );
    let resp = get(
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
        "/other",
    );
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
    assert!(d.stop());
}

#[test]
fn failed_requests_are_counted_by_errno_in_metrics_and_status() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "4MiB", "    eviction: none\n"));
    let port = free_port();
    let cfg = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!("{cfg}metrics: {{listen: \"127.0.0.1:{port}\"}}\n"),
    )
    .unwrap();
    let d = w.start();
    let kv = w.mnt.join("kv");

    // EEXIST: publishing a second chunk under a key already published (first writer wins).
    // Staging files stay open until published: the last close of one reclaims it.
    let mut first = std::fs::File::create(kv.join(".a")).unwrap();
    first.write_all(b"first").unwrap();
    std::fs::rename(kv.join(".a"), kv.join("key")).unwrap();
    let mut second = std::fs::File::create(kv.join(".b")).unwrap();
    second.write_all(b"second").unwrap();
    let err = std::fs::rename(kv.join(".b"), kv.join("key")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    // ENOSPC: growing a staging chunk past the 4 MiB pool, which may not evict.
    let big = std::fs::File::create(kv.join(".big")).unwrap();
    let err = big.set_len(8 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    let resp = get(
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
        "/metrics",
    );
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        sample(body, "maru_pool_errors_total{pool=\"kv\",errno=\"EEXIST\"}"),
        Some(1),
        "{body}"
    );
    assert_eq!(
        sample(body, "maru_pool_errors_total{pool=\"kv\",errno=\"ENOSPC\"}"),
        Some(1),
        "{body}"
    );
    assert!(body.contains("# TYPE maru_pool_errors_total counter\n"));

    let v = w.status_json().unwrap();
    assert_eq!(v["pools"][0]["errors"]["EEXIST"], 1, "{v}");
    assert_eq!(v["pools"][0]["errors"]["ENOSPC"], 1, "{v}");
    let table = text(&w.devd(&["status"]));
    assert!(table.contains("  errors   EEXIST 1, ENOSPC 1\n"), "{table}");
    drop((first, second, big));
    assert!(d.stop());
}

#[test]
fn a_metrics_listen_address_off_loopback_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.yaml");
    std::fs::write(
        &cfg,
        "pools:\n  - name: kv\n    source: {numa: {node: 0}}\n    size: 1MiB\nmetrics:\n  listen: 0.0.0.0:9464\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("m.yaml:6:11: `listen` must be a loopback address"),
        "{}",
        text(&out)
    );
}

#[test]
fn systemd_hears_extend_ready_reloading_ready_watchdog_and_stopping_in_order() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB", ""));
    let path = w.tmp.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    // Only a give-up deadline: every expected message is awaited, none is timed.
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let d = w
        .spawn_env(
            &[],
            &[
                ("NOTIFY_SOCKET", path.to_str().unwrap()),
                ("WATCHDOG_USEC", "200000"),
            ],
        )
        .serving(&w);
    let mut got: Vec<String> = Vec::new();
    let mut watchdog = 0;
    let next = |got: &mut Vec<String>, watchdog: &mut u32| -> String {
        loop {
            let mut buf = [0u8; 4096];
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no notification ({e}); so far: {got:?}"));
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m == "WATCHDOG=1" {
                *watchdog += 1;
                continue;
            }
            got.push(m.clone());
            return m;
        }
    };
    let m = next(&mut got, &mut watchdog);
    assert!(m.starts_with("EXTEND_TIMEOUT_USEC="), "{got:?}");
    let m = next(&mut got, &mut watchdog);
    assert!(
        m.starts_with("READY=1\nSTATUS=serving 1 pool(s) on "),
        "{got:?}"
    );
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let m = next(&mut got, &mut watchdog);
    let usec = m
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|u| u.parse::<u64>().ok());
    assert!(usec.is_some_and(|u| u > 0), "{got:?}");
    let m = next(&mut got, &mut watchdog);
    assert!(
        m.starts_with("READY=1\nSTATUS=reloaded: no change; serving 1 pool(s)"),
        "{got:?}"
    );
    // a failed reload says so in STATUS
    std::fs::write(&w.config, "pools: 5\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(next(&mut got, &mut watchdog).starts_with("RELOADING=1\n"));
    let m = next(&mut got, &mut watchdog);
    assert!(
        m.starts_with("READY=1\nSTATUS=reload failed, the running configuration is kept: "),
        "{got:?}"
    );
    // the first ping follows READY=1 at once, so it has arrived before the reloads' messages
    assert!(watchdog >= 1, "no WATCHDOG=1 among {got:?}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(next(&mut got, &mut watchdog), "STOPPING=1", "{got:?}");
}

/// `maru-devd run` on `config` with stderr into a file, `env` set; its exit code and log.
fn run_logged(w: &World, config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let cfg = w.tmp.path().join("log-test.yaml");
    std::fs::write(&cfg, config).unwrap();
    let log = w.tmp.path().join("log-test.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let journal = format!("{}:{}", meta.dev(), meta.ino());
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .args(args)
        .env("MARU_RUNTIME_DIR", &w.run)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        // "@" stands for this log file's own dev:ino
        cmd.env(k, if *v == "@" { journal.as_str() } else { v });
    }
    let st = cmd.status().unwrap();
    (
        st.code().unwrap_or(-1),
        std::fs::read_to_string(&log).unwrap(),
    )
}

#[test]
fn logs_carry_journald_priorities_or_timestamps_and_obey_levels() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB", ""));
    // A config error: the daemon logs its start (info), then fails with exit 2.
    let bad = "pools: 5\n";
    let (code, log) = run_logged(&w, bad, &[], &[("JOURNAL_STREAM", "@")]);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("<6>maru-devd: info: open files limit")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.starts_with("<3>maru-devd: error: ")),
        "{log}"
    );

    // stderr not the journal (JOURNAL_STREAM names another file): timestamps
    let (_, log) = run_logged(&w, bad, &[], &[("JOURNAL_STREAM", "1:1")]);
    let line = log
        .lines()
        .find(|l| l.contains("maru-devd: info: open files limit"))
        .unwrap_or_else(|| panic!("{log}"));
    let (ts, rest) = line.split_once(' ').unwrap();
    assert!(rest.starts_with("maru-devd: info: "), "{line}");
    assert!(
        ts.len() >= 20
            && ts.as_bytes()[4] == b'-'
            && ts.as_bytes()[10] == b'T'
            && ts.ends_with('Z'),
        "{line}"
    );

    // levels: RUST_LOG=warn hides info; --log-level overrides RUST_LOG; -v shows debug
    let (_, log) = run_logged(&w, bad, &[], &[("RUST_LOG", "warn")]);
    assert!(!log.contains("maru-devd: info:"), "{log}");
    let (_, log) = run_logged(&w, bad, &["--log-level", "info"], &[("RUST_LOG", "warn")]);
    assert!(log.contains("maru-devd: info: open files limit"), "{log}");
    let (_, log) = run_logged(&w, bad, &["--log-level", "error"], &[]);
    assert!(!log.contains("maru-devd: info:"), "{log}");
    assert!(log.contains("maru-devd: error: "), "{log}");
    let (code, log) = run_logged(&w, bad, &["--log-level", "loud"], &[]);
    assert_eq!(code, 2, "a usage error: {log}");
}

#[test]
fn exit_codes_tell_usage_environment_and_already_running_apart() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB", ""));
    // no daemon answers: environment
    let out = w.devd(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = w.devd(&["reload"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // an unknown flag: usage
    let out = w.devd(&["status", "--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // not root: environment
    let cfg = w.config.to_str().unwrap();
    let out = as_nobody(&w, &["run", "--config", cfg]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("must run as root"), "{}", text(&out));

    let d = w.start();
    // a second daemon on the same runtime dir: already running
    let second = Command::new(bin())
        .args(["run", "--config", cfg])
        .env("MARU_RUNTIME_DIR", &w.run)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(4), "{}", text(&second));
    assert!(text(&second).contains("another maru-devd is running"));
    assert!(d.stop());
}

#[test]
fn reload_and_stop_verbs_report_their_outcome() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB", ""));
    let mut d = w.start();
    let out = w.devd(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "reload: no change\n");

    w.set_pools(&(pool("kv", "16MiB", "") + &pool("extra", "8MiB", "")));
    let out = w.devd(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reload: pool extra added on node 0"),
        "{}",
        text(&out)
    );

    std::fs::write(&w.config, "pools: 5\n").unwrap();
    let out = w.devd(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("reload failed, the running configuration is kept"),
        "{}",
        text(&out)
    );

    // only root may reload or stop
    let out = as_nobody(&w, &["reload"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    let out = as_nobody(&w, &["stop"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(w.status_json().is_some(), "the daemon still serves");

    let out = w.devd(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("maru-devd (pid {}) stopped\n", d.pid())
    );
    assert!(d.wait(), "the daemon exits 0 after stop");
    assert!(!w.mounted());
    assert!(d.log_text().contains("stop requested"));
}

#[test]
fn status_shows_a_user_only_the_pools_of_their_groups() {
    if !can_run_daemon() {
        return;
    }
    let pools = pool("theirs", "8MiB", "    group: 65534\n    mode: \"0770\"\n")
        + &pool("private", "8MiB", "    mode: \"0770\"\n")
        + &pool("public", "8MiB", "    mode: \"1777\"\n");
    let w = World::new(&pools);
    let d = w.start();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&w.status_json().unwrap()),
        ["theirs", "private", "public"]
    );
    let out = as_nobody(&w, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names(&v), ["theirs", "public"]);
    // the socket lets anyone connect; the runtime dir lets them reach it, not list it
    let sock = std::fs::metadata(w.run.join("control.sock")).unwrap();
    assert_eq!(sock.mode() & 0o777, 0o666);
    let dir = std::fs::metadata(&w.run).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o711);
    let out = as_nobody(&w, &["status"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("private"));
    poll("the daemon still answering", || w.status_json()).unwrap();
    assert!(d.stop());
}

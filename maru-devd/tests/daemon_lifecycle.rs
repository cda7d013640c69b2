//! The real daemon on a config in a temp dir (pool on node 0, mount point and runtime dir in
//! the temp dir): used by other processes and an unprivileged user, stopped by SIGTERM,
//! restarted with its chunks intact, recovered after kill -9, reduced to CAP_SYS_ADMIN,
//! reloaded by SIGHUP, and driven offline and back by injected device events.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, poll, pool, pool_status, python, World, READER, WRITER};
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const NOBODY: u32 = 65534;

fn proc_status_field(pid: i32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn serves_other_processes_and_unprivileged_users_with_only_cap_sys_admin() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "64MiB"));
    let d = w.start();
    assert!(w.mounted());
    let dir = w.mnt.join("kv");
    let dir = dir.to_str().unwrap();

    // a root process and an unprivileged one each publish a chunk; each reads the other's
    let root_sum = python(WRITER, &[dir, "from-root", "1048576"], None).unwrap();
    let nobody_sum = python(WRITER, &[dir, "from-nobody", "2097152"], Some(NOBODY)).unwrap();
    let root_key = format!("{dir}/from-root");
    let nobody_key = format!("{dir}/from-nobody");
    assert_eq!(
        python(READER, &[&root_key], Some(NOBODY)).unwrap(),
        root_sum
    );
    assert_eq!(python(READER, &[&nobody_key], None).unwrap(), nobody_sum);

    let st = pool_status(&w, "kv").unwrap();
    assert_eq!(st["state"], "online");
    assert_eq!(st["published_chunks"], 2);
    assert_eq!(st["used_bytes"], 3 * 1048576);
    assert_eq!(st["capacity"], 64 << 20);

    // least privilege, seen by the kernel and by status
    let pid = d.pid();
    assert_eq!(
        proc_status_field(pid, "CapEff"),
        "0000000000200000",
        "only CAP_SYS_ADMIN (bit 21)"
    );
    assert_eq!(proc_status_field(pid, "CapPrm"), "0000000000200000");
    assert_eq!(proc_status_field(pid, "CapBnd"), "0000000000200000");
    assert_eq!(proc_status_field(pid, "NoNewPrivs"), "1");
    // every thread (FUSE workers, socket, signals, udev) has the reduced sets too
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("status")).unwrap();
        assert!(
            text.contains("CapEff:\t0000000000200000"),
            "thread {:?}:\n{text}",
            task.file_name()
        );
    }
    let status = w.status_json().unwrap();
    assert_eq!(status["capabilities"], serde_json::json!(["CAP_SYS_ADMIN"]));
    assert_eq!(status["no_new_privs"], true);

    // the human status names the pool and the capability set
    let out = w.devd(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool kv [online] node 0"), "{text}");
    assert!(
        text.contains("capabilities: CAP_SYS_ADMIN (no_new_privs: yes)"),
        "{text}"
    );

    // SIGTERM: clean exit, unmounted
    assert!(d.stop(), "maru-devd must exit 0 on SIGTERM");
    assert!(!w.mounted(), "SIGTERM must unmount {}", w.mnt.display());
}

#[test]
fn chunks_survive_restart_and_kill_9() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "64MiB"));
    let d = w.start();
    let dir = w.mnt.join("kv");
    let dir = dir.to_str().unwrap();
    let sums: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let user = (i == 1).then_some(NOBODY);
            let sum = python(WRITER, &[dir, k, &((i + 1) * 300_000).to_string()], user).unwrap();
            (format!("{dir}/{k}"), sum)
        })
        .collect();

    // clean restart
    assert!(d.stop());
    assert!(!w.mounted());
    let d = w.start();
    let log = d.log_text();
    assert!(log.contains("adopted the existing tmpfs"), "{log}");
    assert!(!log.contains("could not resize"), "{log}");
    for (key, sum) in &sums {
        assert_eq!(
            &python(READER, &[key], Some(NOBODY)).unwrap(),
            sum,
            "{key} after restart"
        );
    }
    assert_eq!(pool_status(&w, "kv").unwrap()["published_chunks"], 3);

    // crash: the FUSE mount is left behind, dead
    d.kill9();
    assert!(w.mounted(), "a killed daemon leaves its mount behind");
    let err = std::fs::metadata(w.mnt.join("kv")).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOTCONN),
        "the stale mount is dead: {err}"
    );
    let d = w.start();
    assert!(
        d.log_text().contains("stale FUSE mount"),
        "{}",
        d.log_text()
    );
    for (key, sum) in &sums {
        assert_eq!(
            &python(READER, &[key], None).unwrap(),
            sum,
            "{key} after kill -9"
        );
    }
    // and it still takes new chunks
    python(WRITER, &[dir, "d", "4096"], Some(NOBODY)).unwrap();
    assert!(d.stop());
}

#[test]
fn a_second_daemon_on_the_same_runtime_dir_is_refused() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let out = Command::new(fixtures::bin())
        .args(["run", "--config"])
        .arg(&w.config)
        .env("MARU_RUNTIME_DIR", &w.run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("another maru-devd is running"), "{err}");
    assert!(d.stop());
}

#[test]
fn device_events_take_a_pool_offline_and_back() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&format!(
        "{}{}",
        pool("kv", "32MiB"),
        pool("other", "16MiB")
    ));
    let mut d = w.start();
    let dir = w.mnt.join("kv");
    let dir = dir.to_str().unwrap();
    python(WRITER, &[dir, "before", "8192"], None).unwrap();

    // injected removal of a device backing node 0: both node-0 pools go offline
    let reply = w.request(
        r#"{"cmd":"inject","event":{"action":"remove","subsystem":"dax","sysname":"dax9.0","node":0}}"#,
    );
    assert_eq!(reply["reply"], "done", "{reply}");
    let st = pool_status(&w, "kv").unwrap();
    assert_eq!(st["state"], "offline");
    assert!(
        st["offline_reason"]
            .as_str()
            .unwrap()
            .contains("dax/dax9.0"),
        "{st}"
    );
    let err = python(WRITER, &[dir, "during", "8192"], Some(NOBODY)).unwrap_err();
    assert!(
        err.contains("Errno 19"),
        "creating in an offline pool must fail with ENODEV: {err}"
    );
    // published chunks stay readable
    let before = format!("{dir}/before");
    python(READER, &[&before], Some(NOBODY)).unwrap();
    let human = String::from_utf8_lossy(&w.devd(&["status"]).stdout).into_owned();
    assert!(
        human.contains("[offline (device gone: dax/dax9.0)]"),
        "{human}"
    );

    // an unrelated node's event changes nothing
    w.request(r#"{"cmd":"inject","event":{"action":"add","subsystem":"dax","sysname":"dax9.0","node":7}}"#);
    assert_eq!(pool_status(&w, "kv").unwrap()["state"], "offline");

    // the device returns
    let reply = w.request(
        r#"{"cmd":"inject","event":{"action":"add","subsystem":"dax","sysname":"dax9.0","node":0}}"#,
    );
    assert_eq!(reply["reply"], "done", "{reply}");
    assert_eq!(pool_status(&w, "kv").unwrap()["state"], "online");
    assert_eq!(pool_status(&w, "other").unwrap()["state"], "online");
    python(WRITER, &[dir, "after", "8192"], Some(NOBODY)).unwrap();
    assert!(
        d.child.try_wait().unwrap().is_none() && w.status_json().is_some(),
        "daemon alive"
    );
    assert!(d.stop());
}

#[test]
fn sighup_adds_pools_and_keeps_a_removed_pool_while_pinned() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("a", "16MiB"));
    let d = w.start();

    // a new pool appears
    w.set_pools(&format!("{}{}", pool("a", "16MiB"), pool("b", "16MiB")));
    d.signal(Signal::SIGHUP);
    poll("pool b after SIGHUP", || pool_status(&w, "b")).unwrap();
    let b = w.mnt.join("b");
    let b = b.to_str().unwrap();
    python(WRITER, &[b, "k", "65536"], Some(NOBODY)).unwrap();

    // pin b's chunk: a process keeps it mapped
    let key = format!("{b}/k");
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", "import mmap,os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); m=mmap.mmap(fd,0,prot=mmap.PROT_READ); print('mapped',flush=True); sys.stdin.read()", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "mapped");

    // removing b from the config is refused while its chunk is pinned
    w.set_pools(&pool("a", "16MiB"));
    d.signal(Signal::SIGHUP);
    poll("the refused reload", || {
        w.status_json().filter(|s| {
            s["last_reload"]
                .to_string()
                .contains("pool b was removed from the config but is kept")
        })
    })
    .unwrap();
    assert!(pool_status(&w, "b").is_some());
    assert_eq!(python(READER, &[&key], None).map(|s| s.len()), Ok(64));

    // once unpinned, the next reload removes it
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // (the kernel sends the last RELEASE after the process is gone: retry until it arrived)
    let mut reply = serde_json::Value::Null;
    let removed = poll("pool b to be removed once unpinned", || {
        reply = w.request(r#"{"cmd":"reload"}"#);
        reply.to_string().contains("pool b removed").then_some(())
    });
    assert!(removed.is_ok(), "{reply}");
    assert!(pool_status(&w, "b").is_none());
    assert!(!w.mnt.join("b").exists());

    // a broken config changes nothing and says why
    std::fs::write(&w.config, "pools: [").unwrap();
    let reply = w.request(r#"{"cmd":"reload"}"#);
    assert!(
        reply
            .to_string()
            .contains("reload failed, the running configuration is kept"),
        "{reply}"
    );
    assert!(pool_status(&w, "a").is_some());
    assert!(d.stop());
}

#[test]
fn a_pool_dropped_from_the_config_is_named_at_start() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("old", "16MiB"));
    assert!(w.start().stop());
    // its tmpfs stays (a restart with the same pool adopts it); a config without it is told
    w.set_pools(&pool("new", "16MiB"));
    let d = w.start();
    let log = d.log_text();
    let old = w.run.join("pools/old");
    assert!(
        log.contains(&format!(
            "{} is the tmpfs of a pool that is no longer configured",
            old.display()
        )),
        "{log}"
    );
    assert!(!log.contains("pools/new is the tmpfs"), "{log}");
    assert!(d.stop());
}

//! The owner lease of devdax pools, with real daemons: two "hosts" on this machine (two
//! `maru-devd run` with their own runtime dirs and mounts, and for the cross-host cases
//! another host identity through `MARU_HOST_*`) opening one stand-in device. A pool that is
//! not `shared` is served by one daemon at a time; a killed holder is taken over, by this
//! host at once and by another host only with `--takeover`.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, Daemon, World};
use maru_testkit::devdax::StandIn as Device;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Host B's identity (host A runs as this machine).
const NODE_B: &[(&str, &str)] = &[
    ("MARU_HOST_MACHINE_ID", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    ("MARU_HOST_BOOT_ID", "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"),
    ("MARU_HOST_NAME", "node-b"),
];

/// What these tests do with a stand-in device: worlds (hosts) on it, daemons.
trait Host {
    fn world(&self) -> World;
    fn spawn(&self, w: &World, extra: &[&str], env: &[(&str, &str)]) -> Daemon;
}

impl Host for Device {
    /// A host's world: its own config, runtime dir and mount, the pool on this device.
    fn world(&self) -> World {
        World::new(&format!(
            "  - name: dax\n    source: {{devdax: {{device: {}, lease_timeout: 1s}}}}\n    size: 100%\n    mode: \"0777\"\n",
            self.path.display()
        ))
    }

    fn spawn(&self, w: &World, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut args = vec![OsStr::new("--sysfs-root"), self.sys.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        w.spawn_env(&args, env)
    }
}

/// Writes and publishes a chunk, holding the staging file open until the rename (a
/// staging file whose last handle goes unpublished is reclaimed).
fn publish(pool: &Path, key: &str, bytes: &[u8]) {
    use std::io::Write;
    let stage = pool.join(format!(".stage-{key}"));
    let mut f = std::fs::File::create_new(&stage).unwrap();
    f.write_all(bytes).unwrap();
    std::fs::rename(&stage, pool.join(key)).unwrap();
}

fn refused(d: Daemon) -> String {
    let (ok, log) = d.exit();
    assert!(!ok, "the second daemon must be refused:\n{log}");
    assert!(log.contains("refusing to open it"), "{log}");
    log
}

#[test]
fn a_second_daemon_on_this_host_is_refused_and_takes_over_once_the_first_is_killed() {
    if !can_run_daemon() {
        return;
    }
    let dev = Device::new();
    let (wa, wb) = (dev.world(), dev.world());
    let a = dev.spawn(&wa, &[], &[]).serving(&wa);
    publish(&wa.mnt.join("dax"), "k1", b"written by A");

    let log = refused(dev.spawn(&wb, &[], &[]));
    assert!(log.contains("another daemon on this host"), "{log}");
    assert!(log.contains(&format!("pid {}", a.pid())), "{log}");
    assert!(!wb.mounted(), "a refused daemon must not leave a mount");
    // A still serves, untouched.
    assert_eq!(
        std::fs::read(wa.mnt.join("dax/k1")).unwrap(),
        b"written by A"
    );

    // kill -9 of the holder: this host sees its pid gone and takes over at once.
    a.kill9();
    let b = dev.spawn(&wb, &[], &[]).serving(&wb);
    assert!(
        b.log_text().contains("which is no longer running"),
        "{}",
        b.log_text()
    );
    assert!(b.log_text().contains("1 published chunk(s) recovered"));
    assert_eq!(
        std::fs::read(wb.mnt.join("dax/k1")).unwrap(),
        b"written by A"
    );
    assert!(b.stop());
}

#[test]
fn another_host_is_refused_while_the_holder_lives_and_needs_takeover_after() {
    if !can_run_daemon() {
        return;
    }
    let dev = Device::new();
    let (wa, wb) = (dev.world(), dev.world());
    let a = dev.spawn(&wa, &[], &[]).serving(&wa);
    publish(&wa.mnt.join("dax"), "k1", b"written by A");

    // A live holder is refused, with or without --takeover.
    for extra in [&[][..], &["--takeover"][..]] {
        let log = refused(dev.spawn(&wb, extra, NODE_B));
        assert!(log.contains("held by a live daemon"), "{log}");
        assert!(log.contains(&format!("pid {}", a.pid())), "{log}");
    }

    // Host A dies: B cannot know whether A is gone or stalled, so it asks for --takeover.
    a.kill9();
    let log = refused(dev.spawn(&wb, &[], NODE_B));
    assert!(log.contains("has not advanced"), "{log}");
    assert!(log.contains("--takeover"), "{log}");
    let b = dev.spawn(&wb, &["--takeover"], NODE_B).serving(&wb);
    assert!(b.log_text().contains("taking over the owner lease"));
    assert_eq!(
        std::fs::read(wb.mnt.join("dax/k1")).unwrap(),
        b"written by A"
    );
    publish(&wb.mnt.join("dax"), "k2", b"written by B");

    // A comes back while B serves: refused (B is a live holder).
    let wa2 = dev.world();
    let log = refused(dev.spawn(&wa2, &[], &[]));
    assert!(log.contains("node-b"), "{log}");

    // B stops cleanly: its lease is released and A takes the pool without waiting.
    assert!(b.stop());
    let t = std::time::Instant::now();
    let a = dev.spawn(&wa2, &[], &[]).serving(&wa2);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert!(!a.log_text().contains("taking over"), "{}", a.log_text());
    assert_eq!(
        std::fs::read(wa2.mnt.join("dax/k2")).unwrap(),
        b"written by B"
    );
    assert!(a.stop());
}

#[test]
fn format_devdax_is_refused_while_a_daemon_holds_the_pool() {
    if !can_run_daemon() {
        return;
    }
    let dev = Device::new();
    let (wa, wb) = (dev.world(), dev.world());
    let a = dev.spawn(&wa, &[], &[]).serving(&wa);
    publish(&wa.mnt.join("dax"), "k1", b"kept");
    // From another runtime dir (so the control-socket check cannot see A) and another host.
    let out = Command::new(fixtures::bin())
        .args(["format-devdax", "--pool", "dax", "--yes", "--config"])
        .arg(&wb.config)
        .arg("--sysfs-root")
        .arg(&dev.sys)
        .env("MARU_RUNTIME_DIR", &wb.run)
        .envs(NODE_B.iter().copied())
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("held by a live daemon"), "{msg}");
    assert_eq!(std::fs::read(wa.mnt.join("dax/k1")).unwrap(), b"kept");
    assert!(a.stop());
}

//! The `devdax` source: `check-config` against the captured devdax snapshot (QEMU 10, Linux
//! 6.12, dax0.0 of a CXL RAM region in devdax mode), and the real daemon serving a devdax pool
//! on a stand-in for the device (a sparse file on /dev/shm, with the snapshot standing for
//! /sys): node permissions, data through the mount, restart recovery, a corrupt header
//! refused, `format-devdax`.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, World};
use fixtures::{bin, check_config, extract_named};
use std::ffi::OsStr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output};

const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/2-ram-region-devdax";
const MIB: u64 = 1 << 20;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_config_plans_devdax_pools_by_device_region_or_serial() {
    let snap = extract_named(SNAPSHOT);
    for source in [
        "{device: dax0.0}",
        "{device: /dev/dax0.0}",
        "{region: region0}",
        "{memdev_serial: 4660}",
    ] {
        let out = check_config(
            &snap,
            &format!("pools:\n  - name: dax\n    source: {{devdax: {source}}}\n    size: 100%\n    group: 65534\n    mode: \"0770\"\n"),
            &[],
        );
        let plan = text(&out);
        assert!(out.status.success(), "{source}: {plan}");
        assert!(
            plan.contains("source:   devdax dax0.0 (/dev/dax0.0), bytes 0..268435456"),
            "{source}: {plan}"
        );
        assert!(
            plan.contains("/dev/dax0.0 set to uid 0 gid 65534 mode 0660"),
            "{plan}"
        );
        assert!(plan.contains("size:     268435456 bytes"), "{plan}");
        assert!(
            !plan.contains("tmpfs"),
            "a devdax pool has no tmpfs: {plan}"
        );
    }
    // Two disjoint ranges of one device.
    let out = check_config(
        &snap,
        "pools:\n  - name: a\n    source: {devdax: {device: dax0.0, length: 64MiB}}\n    size: 50%\n  - name: b\n    source: {devdax: {device: dax0.0, offset: 64MiB, format: never, verify_data: false}}\n    size: 16MiB\n",
        &[],
    );
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains("bytes 0..67108864"), "{plan}");
    assert!(
        plan.contains("size:     33554432 bytes"),
        "50% of the range: {plan}"
    );
    assert!(plan.contains("bytes 67108864..268435456"), "{plan}");
    assert!(
        plan.contains("a range without a pool header is refused"),
        "{plan}"
    );
}

#[test]
fn check_config_refuses_bad_devdax_sources() {
    let snap = extract_named(SNAPSHOT);
    let cases = [
        (
            "{devdax: {device: dax0.0, offset: 1MiB}}",
            "must be a multiple of `dax0.0`'s alignment 2097152 bytes",
        ),
        (
            "{devdax: {device: dax0.0, offset: 254MiB, length: 4MiB}}",
            "must be a multiple of `dax0.0`'s alignment 2097152 bytes (2 MiB) and end inside",
        ),
        (
            "{devdax: {device: dax7.0}}",
            "no DAX device matches this device",
        ),
        (
            "{devdax: {region: region9}}",
            "no DAX device matches this region",
        ),
        (
            "{devdax: {device: dax0.0, region: region0}}",
            "needs exactly one of `device`, `region`, `memdev_serial`; found device, region",
        ),
        (
            "{devdax: {device: dax0.0, format: always}}",
            "unknown format policy `always`",
        ),
        (
            "{devdax: {device: dax0.0, lenght: 2MiB}}",
            "did you mean `length`?",
        ),
    ];
    for (source, want) in cases {
        let out = check_config(
            &snap,
            &format!("pools:\n  - name: dax\n    source: {source}\n    size: 2MiB\n"),
            &[],
        );
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{source}: {msg}");
        assert!(msg.contains(want), "{source}: want {want:?} in {msg}");
    }
    let out = check_config(
        &snap,
        "pools:\n  - name: a\n    source: {devdax: {device: dax0.0, length: 64MiB}}\n    size: 2MiB\n  - name: b\n    source: {devdax: {region: region0, offset: 32MiB}}\n    size: 2MiB\n",
        &[],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(
            "pool `b` uses bytes 33554432..268435456 of `dax0.0`, which pool `a` uses too"
        ),
        "{msg}"
    );
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    sh(&format!("sha256sum {}", path.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn daemon_serves_restarts_refuses_a_corrupt_header_and_formats() {
    if !can_run_daemon() {
        return;
    }
    let snap = extract_named(SNAPSHOT);
    let shm = tempfile::Builder::new()
        .prefix("maru-devd-dax")
        .tempdir_in("/dev/shm")
        .unwrap();
    let device = shm.path().join("dax0.0");
    std::fs::File::create_new(&device)
        .and_then(|f| f.set_len(256 * MIB))
        .unwrap();
    let w = World::new(&format!(
        "  - name: dax\n    source: {{devdax: {{device: {}}}}}\n    size: 100%\n    group: 65534\n    mode: \"0770\"\n",
        device.display()
    ));
    let pool = w.mnt.join("dax");
    let sys = snap.sys();
    let on_snapshot = [OsStr::new("--sysfs-root"), sys.as_os_str()];

    // First start: the blank range is formatted, the node gets the pool's group and mode.
    let d = w.spawn(&on_snapshot).serving(&w);
    assert!(
        d.log_text().contains("blank range, formatting a new pool"),
        "{}",
        d.log_text()
    );
    let meta = std::fs::metadata(&device).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 65534, 0o660)
    );
    let src = w.tmp.path().join("blob");
    sh(&format!(
        "head -c 3000000 /dev/urandom > {src} && exec 3>>{p}/.s && cp {src} {p}/.s && mv {p}/.s {p}/blob",
        src = src.display(),
        p = pool.display()
    ));
    let digest = sha256(&src);
    assert_eq!(sha256(&pool.join("blob")), digest);
    let st = w.status_json().unwrap();
    assert_eq!(st["pools"][0]["published_chunks"], 1, "{st}");
    assert!(d.stop(), "SIGTERM must unmount and exit 0");

    // Restart: the chunk is found again on the device.
    let d = w.spawn(&on_snapshot).serving(&w);
    assert!(
        d.log_text().contains("1 published chunk(s) recovered"),
        "{}",
        d.log_text()
    );
    assert_eq!(sha256(&pool.join("blob")), digest);
    assert!(d.stop());

    // A damaged header (both copies): refused, nothing written.
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device)
        .unwrap();
    for at in [40u64, 4096 + 40] {
        let mut b = [0u8; 1];
        dev.read_exact_at(&mut b, at).unwrap();
        dev.write_all_at(&[!b[0]], at).unwrap();
    }
    let mut before = vec![0u8; 4 << 20];
    dev.read_exact_at(&mut before, 0).unwrap();
    let (ok, log) = w.spawn(&on_snapshot).exit();
    assert!(!ok, "a corrupt pool must not be served:\n{log}");
    assert!(log.contains("the pool header is corrupt"), "{log}");
    assert!(
        log.contains("refusing to mount it and leaving it untouched"),
        "{log}"
    );
    let mut after = vec![0u8; before.len()];
    dev.read_exact_at(&mut after, 0).unwrap();
    assert!(before == after, "the refused range was written to");

    // format-devdax: refuses without --yes, re-creates the pool with it.
    let format = |yes: bool| {
        let mut c = Command::new(bin());
        c.args(["format-devdax", "--pool", "dax", "--config"])
            .arg(&w.config)
            .arg("--sysfs-root")
            .arg(snap.sys())
            .env("MARU_RUNTIME_DIR", &w.run);
        if yes {
            c.arg("--yes");
        }
        c.output().unwrap()
    };
    let out = format(false);
    assert!(!out.status.success());
    assert!(text(&out).contains("add --yes"), "{}", text(&out));
    let out = format(true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("formatted pool dax"), "{}", text(&out));
    let d = w.spawn(&on_snapshot).serving(&w);
    assert_eq!(
        std::fs::read_dir(&pool).unwrap().count(),
        0,
        "a new, empty pool"
    );
    assert!(d.stop());
}

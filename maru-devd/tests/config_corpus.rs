//! The broken-config corpus: every `tests/configs/bad/NAME.yaml` must make `check-config`
//! fail with exactly the stderr in `NAME.expected` (FILE:LINE:COL: message lines), and every
//! `tests/configs/good/*.yaml` and example config must pass. Checked against a captured sysfs
//! tree (node 0: 1.9 GiB with CPUs; node 1: 256 MiB of CXL memory, no CPUs; dax0.0 -> node 1).

mod fixtures;

use fixtures::{bin, check_config, extract_named, Snapshot};
use std::path::{Path, PathBuf};
use std::process::Command;

const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/1-ram-region-kmem-online";

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn check(sysfs: &Path, dir: &Path, file: &Path) -> std::process::Output {
    Command::new(bin())
        .current_dir(dir)
        .arg("check-config")
        .arg("--sysfs-root")
        .arg(sysfs)
        .arg(file.file_name().unwrap())
        .output()
        .unwrap()
}

/// `check-config [args] --sysfs-root <snapshot> c.yaml` on `yaml`: asserts it passes, returns the plan.
fn plan_of(snap: &Snapshot, yaml: &str, args: &[&str]) -> String {
    let out = check_config(snap, yaml, args);
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plan
}

#[test]
fn every_broken_config_gets_its_exact_message() {
    let snap = extract_named(SNAPSHOT);
    let sysfs = snap.sys();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/bad");
    let files = yaml_files(&dir);
    assert!(
        files.len() >= 20,
        "the corpus must hold at least 20 broken configs, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let expected = std::fs::read_to_string(file.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: no .expected file ({e})", file.display()));
        let out = check(&sysfs, &dir, file);
        let got = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || got != expected {
            failures.push(format!(
                "{}: exit {:?}\n--- expected\n{expected}--- got\n{got}",
                file.display(),
                out.status.code()
            ));
        }
        let first = expected.lines().next().unwrap_or_default();
        let name = file.file_name().unwrap().to_string_lossy();
        let pos: Vec<&str> = first.splitn(4, ':').collect();
        assert!(
            pos.len() == 4
                && pos[0] == name
                && pos[1].parse::<usize>().is_ok()
                && pos[2].parse::<usize>().is_ok(),
            "{name}: the first line must be FILE:LINE:COL: message, got {first}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_and_example_configs_pass() {
    let snap = extract_named(SNAPSHOT);
    let sysfs = snap.sys();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = yaml_files(&root.join("tests/configs/good"));
    files.extend(yaml_files(&root.join("../examples/config")));
    files.push(root.join("../examples/maru.yaml"));
    for file in files {
        let out = check(&sysfs, file.parent().unwrap(), &file);
        assert!(
            out.status.success(),
            "{} should be valid:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains("pool "),
            "{}: no plan printed:\n{plan}",
            file.display()
        );
    }
}

#[test]
fn plan_shows_sizes_nodes_and_backing() {
    let snap = extract_named(SNAPSHOT);
    let plan = plan_of(
        &snap,
        "mount: /mnt/kv\npools:\n  - name: cxl\n    source: {numa: {node: auto}}\n    size: 50%\n    group: 0\n    mode: \"0770\"\n",
        &["--runtime-dir", "/run/maru-x"],
    );
    assert!(
        plan.contains("source:   numa node 1 (auto: CXL-backed node without CPUs)"),
        "{plan}"
    );
    assert!(
        plan.contains("size:     134217728 bytes (128 MiB)"),
        "{plan}"
    );
    assert!(
        // the tmpfs limit: 128 MiB + 1/32 + 16 MiB of headroom (index, page rounding)
        plan.contains("tmpfs at /run/maru-x/pools/cxl (size=155189248, mpol=bind:1"),
        "{plan}"
    );
    assert!(plan.contains("path:     /mnt/kv/cxl"), "{plan}");
    assert!(plan.contains("mode 0770"), "{plan}");
}

#[test]
fn movable_memory_is_reported_with_the_fix() {
    let snap = extract_named(SNAPSHOT);
    let sysfs = snap.sys();
    // the same host, but node 1's two blocks onlined as ZONE_MOVABLE (a common default)
    for block in ["memory114", "memory115"] {
        let zones = sysfs
            .join("devices/system/memory")
            .join(block)
            .join("valid_zones");
        std::fs::write(zones, "Movable\n").unwrap();
    }
    let plan = plan_of(
        &snap,
        "pools:\n  - {name: kv, source: {numa: {node: 1}}, size: 64MiB}\n",
        &[],
    );
    assert!(
        plan.contains(
            "warning: pool `kv`: 2 of node 1's 2 online memory blocks are in ZONE_MOVABLE"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("daxctl reconfigure-device --mode=system-ram --no-movable dax0.0"),
        "{plan}"
    );
    assert!(plan.contains("reconfigure_devdax: dax0.0"), "{plan}");
    // Node 1 is CXL memory: the plan says the pool must stay on this host.
    assert!(
        plan.contains("hosts:    this host only: node 1 is CXL memory"),
        "{plan}"
    );
}

#[test]
fn decimal_units_are_taken_as_written_with_a_note() {
    let snap = extract_named(SNAPSHOT);
    let plan = plan_of(
        &snap,
        "pools:\n  - {name: kv, source: {numa: {node: 0}}, size: 1GB, max_chunk_size: 2MB}\n",
        &[],
    );
    assert!(plan.contains("size:     1000000000 bytes"), "{plan}");
    assert!(
        plan.contains("warning: pool `kv`: size `1GB` is 1000000000 bytes (GB counts in powers of 1000); if you meant 1073741824 bytes, write `1GiB`"),
        "{plan}"
    );
    assert!(
        plan.contains("warning: pool `kv`: max_chunk_size `2MB` is 2000000 bytes"),
        "{plan}"
    );
}

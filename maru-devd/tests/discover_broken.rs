//! Broken and empty trees: every problem is reported with the path it concerns, the
//! rest of the tree is still shown, and nothing panics.

mod fixtures;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use fixtures::{discover_json, discover_ok, extract_named, maru_devd, warnings, Snapshot};

/// The snapshot with the most in it: a ram region onlined as node 1 through kmem.
fn kmem_snapshot() -> Snapshot {
    extract_named("1-ram-region-kmem-online")
}

/// The real directory behind `sys/bus/<bus>/devices/<name>`.
fn device_dir(sys: &Path, bus: &str, name: &str) -> PathBuf {
    std::fs::canonicalize(sys.join("bus").join(bus).join("devices").join(name)).unwrap()
}

fn dax0(model: &serde_json::Value) -> &serde_json::Value {
    model["dax_regions"][0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chardev"] == "dax0.0")
        .expect("dax0.0 in the model")
}

/// The human report must show the same warning.
fn assert_table_warns(sys: &Path, needle: &str) {
    let table = discover_ok(sys, false);
    let section = table
        .split("\nWarnings")
        .nth(1)
        .unwrap_or_else(|| panic!("no warnings in:\n{table}"));
    assert!(
        section.contains(needle),
        "table warnings lack {needle:?}:\n{table}"
    );
}

#[test]
fn dangling_symlink_is_reported_and_the_rest_still_shows() {
    let snapshot = kmem_snapshot();
    let sys = snapshot.sys();
    let dax = device_dir(&sys, "dax", "dax0.0");
    std::fs::remove_dir_all(&dax).unwrap();
    let link = sys.join("bus/dax/devices/dax0.0");

    let model = discover_json(&sys);
    let expected = format!("{}: dangling symbolic link to", link.display());
    let all = warnings(&model);
    assert!(all.iter().any(|w| w.starts_with(&expected)), "{all:#?}");
    assert!(model["dax_regions"][0]["devices"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(model["memdevs"][0]["memdev"], "mem0", "memdevs still read");
    assert_eq!(
        model["regions"][0]["region"], "region0",
        "regions still read"
    );
    assert_table_warns(&sys, &link.display().to_string());
}

#[test]
fn missing_size_is_reported_with_its_path() {
    let snapshot = kmem_snapshot();
    let sys = snapshot.sys();
    let size = device_dir(&sys, "dax", "dax0.0").join("size");
    std::fs::remove_file(&size).unwrap();

    let model = discover_json(&sys);
    let all = warnings(&model);
    assert!(
        all.contains(&format!("{}: attribute missing", size.display())),
        "{all:#?}"
    );
    let dev = dax0(&model);
    assert!(dev["size"].is_null(), "{dev:#}");
    assert_eq!(
        dev["target_node"], 1,
        "other attributes still read: {dev:#}"
    );
    assert_eq!(dev["mode"], "system-ram");
    assert_table_warns(&sys, &size.display().to_string());
}

#[test]
fn garbage_in_a_numeric_attribute_is_reported_with_path_and_value() {
    let snapshot = kmem_snapshot();
    let sys = snapshot.sys();
    let serial = device_dir(&sys, "cxl", "mem0").join("serial");
    std::fs::write(&serial, "0xZZ12\n").unwrap();
    let target = device_dir(&sys, "dax", "dax0.0").join("target_node");
    std::fs::write(&target, "one\n").unwrap();

    let model = discover_json(&sys);
    let all = warnings(&model);
    let serial_warning = format!("{}: not an unsigned number: \"0xZZ12\"", serial.display());
    assert!(all.contains(&serial_warning), "{all:#?}");
    let target_warning = format!("{}: not a number: \"one\"", target.display());
    assert!(all.contains(&target_warning), "{all:#?}");
    assert!(model["memdevs"][0]["serial"].is_null());
    assert_eq!(
        model["memdevs"][0]["ram_size"], 268_435_456_u64,
        "the rest of mem0 is read"
    );
    assert!(dax0(&model)["target_node"].is_null());
    assert_table_warns(&sys, &serial_warning);
}

#[test]
fn unreadable_attribute_is_reported() {
    let snapshot = kmem_snapshot();
    let sys = snapshot.sys();
    // A directory where a file is expected cannot be read, even by root.
    let align = device_dir(&sys, "dax", "dax0.0").join("align");
    std::fs::remove_file(&align).unwrap();
    std::fs::create_dir(&align).unwrap();

    let model = discover_json(&sys);
    let all = warnings(&model);
    let prefix = format!("{}: unreadable:", align.display());
    assert!(all.iter().any(|w| w.starts_with(&prefix)), "{all:#?}");
    assert!(dax0(&model)["align"].is_null());
}

#[test]
fn empty_tree_says_no_cxl_and_warns_that_no_node_was_readable() {
    let dir = tempfile::tempdir().unwrap();
    let model = discover_json(dir.path());
    for list in ["memdevs", "regions", "dax_regions", "nodes"] {
        assert!(
            model[list].as_array().unwrap().is_empty(),
            "{list}: {model:#}"
        );
    }
    let node_dir = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("devices/system/node");
    let all = warnings(&model);
    assert!(
        all.iter().any(|w| w.starts_with(&format!(
            "{}: no NUMA node could be read",
            node_dir.display()
        ))),
        "{all:#?}"
    );
    let table = discover_ok(dir.path(), false);
    assert!(table.contains("No CXL device found"), "{table}");
    assert!(table.contains("no NUMA node could be read"), "{table}");
}

#[test]
fn missing_root_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-sys");
    let out = maru_devd(&[
        OsStr::new("discover"),
        OsStr::new("--sysfs-root"),
        missing.as_os_str(),
    ]);
    assert!(!out.status.success(), "a missing root must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a readable directory"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn live_system_shows_its_numa_nodes_and_says_when_there_is_no_cxl() {
    let out = maru_devd(&[OsStr::new("discover"), OsStr::new("--json")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = model["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["node"] == 0),
        "node 0 missing: {model:#}"
    );
    // A CPU-only node may have no memory; every node must still show a readable MemTotal.
    assert!(nodes.iter().all(|n| n["mem_total"].is_u64()), "{model:#}");

    let out = maru_devd(&[OsStr::new("discover")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NUMA nodes"), "{table}");
    let host_has_cxl =
        std::fs::read_dir("/sys/bus/cxl/devices").is_ok_and(|mut d| d.next().is_some());
    let host_has_dax =
        std::fs::read_dir("/sys/bus/dax/devices").is_ok_and(|mut d| d.next().is_some());
    if host_has_cxl || host_has_dax {
        println!("this host has CXL or DAX devices: the 'no CXL' message is not checked");
    } else {
        assert!(table.contains("No CXL device found"), "{table}");
    }
}

#[test]
fn udev_reader_and_sysfs_reader_agree_on_this_host() {
    // One model, two readers: `discover` (udev) and `discover --sysfs-root /sys` (plain walk).
    let json = |args: &[&OsStr]| -> serde_json::Value {
        let out = maru_devd(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut model: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // Free memory moves between the two runs; nothing else should.
        for node in model["nodes"].as_array_mut().unwrap() {
            node["mem_free"] = serde_json::Value::Null;
        }
        model
    };
    let live = json(&[OsStr::new("discover"), OsStr::new("--json")]);
    let walked = json(&[
        OsStr::new("discover"),
        OsStr::new("--json"),
        OsStr::new("--sysfs-root"),
        OsStr::new("/sys"),
    ]);
    assert_eq!(live, walked);
}

#[test]
fn unknown_dax_layout_degrades_to_what_can_be_read() {
    let snapshot = kmem_snapshot();
    let sys = snapshot.sys();
    let dax = device_dir(&sys, "dax", "dax0.0");
    let attrs = dax.parent().unwrap().join("dax_region");
    std::fs::remove_dir_all(&attrs).unwrap();

    let model = discover_json(&sys);
    let all = warnings(&model);
    let prefix = format!("{}: missing: unknown layout", attrs.display());
    assert!(all.iter().any(|w| w.starts_with(&prefix)), "{all:#?}");
    let region = &model["dax_regions"][0];
    assert!(
        region["size"].is_null() && region["id"].is_null(),
        "{region:#}"
    );
    let dev = dax0(&model);
    assert_eq!(dev["mode"], "system-ram", "{dev:#}");
    assert_eq!(dev["size"], 268_435_456_u64, "{dev:#}");
    assert_eq!(dev["cxl_region"], "region0", "{dev:#}");
}

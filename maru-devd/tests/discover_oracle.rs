//! Acceptance: `maru-devd discover --json --sysfs-root` over every captured sysfs snapshot
//! agrees with what `daxctl list` and `cxl list` printed on the same machine at the same
//! moment (`root/cmd/*.json`). Expectations come from those files, never from constants.

mod fixtures;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use fixtures::{discover_json, discover_ok, extract, snapshot_name, snapshots};

/// A captured tool output; `None` when absent or empty (the tool printed nothing).
fn oracle(cmd: &Path, name: &str) -> Option<Value> {
    let path = cmd.join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    Some(serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display())))
}

/// `daxctl`/`cxl` print one object instead of a one-element list in some modes.
fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Every JSON object inside `value`, depth first.
fn objects<'a>(value: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match value {
        Value::Object(map) => {
            out.push(map);
            for child in map.values() {
                objects(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| objects(item, out)),
        _ => {}
    }
}

/// A key of a JSON object, `Null` when absent.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> &'a Value {
    object.get(key).unwrap_or(&Value::Null)
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item[key] == name)
}

/// The `cxl list` hierarchy above memdev `name`: bus, ports, endpoint names, and the
/// `host` of every port on the way.
fn chain_to_memdev(
    value: &Value,
    name: &str,
    names: &mut Vec<String>,
    hosts: &mut Vec<String>,
) -> bool {
    match value {
        Value::Object(map) => {
            let mut pushed = false;
            for key in ["bus", "port", "endpoint"] {
                if let Some(Value::String(level)) = map.get(key) {
                    names.push(level.clone());
                    if key == "port" {
                        hosts.push(field(map, "host").as_str().unwrap_or("").to_string());
                    }
                    pushed = true;
                }
            }
            if field(map, "memdev")["memdev"] == name {
                return true;
            }
            for child in map.values() {
                if chain_to_memdev(child, name, names, hosts) {
                    return true;
                }
            }
            if pushed {
                if map.contains_key("port") {
                    hosts.pop();
                }
                names.pop();
            }
            false
        }
        Value::Array(items) => items
            .iter()
            .any(|item| chain_to_memdev(item, name, names, hosts)),
        _ => false,
    }
}

#[derive(Default, Debug)]
struct Seen {
    dax_devices: usize,
    system_ram: usize,
    memdevs: usize,
    regions: usize,
    cxl_layout: usize,
    nvdimm_layout: usize,
    nodes: usize,
}

/// `daxctl list -D -R`: regions (path, id, size, align) and devices.
fn check_dax(snap: &str, cmd: &Path, ours: &Value, seen: &mut Seen) {
    let expected = oracle(cmd, "daxctl_list_DR.json");
    let expected_regions: Vec<&Value> = expected.as_ref().map(as_list).unwrap_or_default();
    let our_regions = ours["dax_regions"].as_array().unwrap();
    assert_eq!(
        our_regions.len(),
        expected_regions.len(),
        "{snap}: dax region count: ours {our_regions:#?}, daxctl {expected_regions:#?}"
    );
    let our_devices: usize = our_regions
        .iter()
        .map(|r| r["devices"].as_array().unwrap().len())
        .sum();
    let mut expected_devices = 0;
    for want in expected_regions {
        let path = want["path"].as_str().unwrap();
        let got = find(&ours["dax_regions"], "path", path).unwrap_or_else(|| {
            panic!("{snap}: no dax region with path {path} in {our_regions:#?}")
        });
        for key in ["id", "size", "align"] {
            assert_eq!(got[key], want[key], "{snap}: dax region {path} {key}");
        }
        if path.contains("/ndbus") {
            seen.nvdimm_layout += 1;
            assert_eq!(got["layout"], "nvdimm", "{snap}: layout of {path}");
        } else if path.contains("/dax_region") {
            seen.cxl_layout += 1;
            assert_eq!(got["layout"], "cxl", "{snap}: layout of {path}");
        }
        for want_dev in want["devices"].as_array().into_iter().flatten() {
            expected_devices += 1;
            let chardev = want_dev["chardev"].as_str().unwrap();
            let dev = find(&got["devices"], "chardev", chardev)
                .unwrap_or_else(|| panic!("{snap}: no {chardev} in dax region {path}: {got:#}"));
            for key in ["size", "target_node", "align"] {
                assert_eq!(dev[key], want_dev[key], "{snap}: {chardev} {key}");
            }
            let want_mode = match want_dev.get("mode") {
                Some(mode) => mode.clone(),
                None if want_dev["state"] == "disabled" => Value::from("unbound"),
                None => panic!("{snap}: daxctl shows {chardev} without mode: {want_dev:#}"),
            };
            assert_eq!(dev["mode"], want_mode, "{snap}: {chardev} mode");
            // daxctl prints these only for system-ram devices; so do we.
            for key in ["online_memblocks", "total_memblocks", "movable"] {
                assert_eq!(
                    dev.get(key),
                    want_dev.get(key),
                    "{snap}: {chardev} {key}: ours {dev:#}, daxctl {want_dev:#}"
                );
            }
            if want_mode == "system-ram" {
                seen.system_ram += 1;
                check_onlined_node(snap, ours, want_dev);
            }
            seen.dax_devices += 1;
        }
    }
    assert_eq!(our_devices, expected_devices, "{snap}: dax device count");
}

/// A system-ram device's memory shows as a CXL-backed node in the zone daxctl reports.
fn check_onlined_node(snap: &str, ours: &Value, want_dev: &Value) {
    if want_dev["online_memblocks"].as_u64().unwrap_or(0) == 0 {
        return;
    }
    let node_id = want_dev["target_node"].as_u64().unwrap();
    let node = ours["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"].as_u64() == Some(node_id))
        .unwrap_or_else(|| panic!("{snap}: onlined target node {node_id} missing"));
    assert_eq!(
        node["cxl"], true,
        "{snap}: node {node_id} holds CXL memory: {node:#}"
    );
    let zones = node["zones"].as_object().unwrap();
    if want_dev["movable"] == true {
        assert!(
            zones.contains_key("Movable"),
            "{snap}: node {node_id} zones {zones:?}"
        );
    } else {
        assert!(
            zones.keys().any(|zone| zone != "Movable"),
            "{snap}: node {node_id} zones {zones:?}"
        );
    }
}

/// `cxl list` (the most verbose capture there is): memdevs and regions.
fn check_cxl(snap: &str, cmd: &Path, ours: &Value, seen: &mut Seen) {
    let Some(expected) = ["cxl_list_vvv.json", "cxl_list_v.json", "cxl_list_MRDv.json"]
        .iter()
        .find_map(|name| oracle(cmd, name))
    else {
        println!("{snap}: no cxl list capture, CXL memdevs and regions not compared");
        return;
    };
    let mut all = Vec::new();
    objects(&expected, &mut all);
    let memdevs: Vec<_> = all
        .iter()
        .filter(|o| o.contains_key("serial") && field(o, "memdev").is_string())
        .collect();
    let regions: Vec<_> = all
        .iter()
        .filter(|o| field(o, "region").is_string() && !o.contains_key("decoder"))
        .collect();
    let decoder_mode: BTreeMap<&str, &Value> = all
        .iter()
        .filter(|o| field(o, "decoder").is_string() && o.contains_key("mode"))
        .map(|o| (o["decoder"].as_str().unwrap(), &o["mode"]))
        .collect();

    assert_eq!(
        ours["memdevs"].as_array().unwrap().len(),
        memdevs.len(),
        "{snap}: memdev count"
    );
    for want in memdevs {
        let name = want["memdev"].as_str().unwrap();
        let got = find(&ours["memdevs"], "memdev", name)
            .unwrap_or_else(|| panic!("{snap}: memdev {name} missing: {:#}", ours["memdevs"]));
        assert_eq!(got["serial"], want["serial"], "{snap}: {name} serial");
        assert_eq!(got["host"], want["host"], "{snap}: {name} PCI address");
        for key in ["ram_size", "pmem_size"] {
            // cxl list leaves out a zero capacity.
            let want_size = want.get(key).cloned().unwrap_or(Value::from(0));
            assert_eq!(got[key], want_size, "{snap}: {name} {key}");
        }
        let (mut names, mut hosts) = (Vec::new(), Vec::new());
        assert!(
            chain_to_memdev(&expected, name, &mut names, &mut hosts),
            "{snap}: {name} not found in cxl list's hierarchy"
        );
        assert_eq!(
            got["ports"],
            serde_json::json!(names),
            "{snap}: {name} port path"
        );
        assert_eq!(
            got["host_bridge"].as_str(),
            hosts.first().map(String::as_str),
            "{snap}: {name} host bridge"
        );
        seen.memdevs += 1;
    }

    assert_eq!(
        ours["regions"].as_array().unwrap().len(),
        regions.len(),
        "{snap}: region count"
    );
    for want in regions {
        let name = want["region"].as_str().unwrap();
        let got = find(&ours["regions"], "region", name)
            .unwrap_or_else(|| panic!("{snap}: region {name} missing: {:#}", ours["regions"]));
        for key in [
            "size",
            "resource",
            "interleave_ways",
            "interleave_granularity",
            "decode_state",
        ] {
            assert_eq!(got[key], want[key], "{snap}: {name} {key}");
        }
        let mappings = want["mappings"].as_array().cloned().unwrap_or_default();
        let mut by_position: Vec<&Value> = mappings.iter().collect();
        by_position.sort_by_key(|m| m["position"].as_u64());
        let want_memdevs: Vec<&Value> = by_position.iter().map(|m| &m["memdev"]).collect();
        let got_memdevs: Vec<&Value> = got["memdevs"].as_array().unwrap().iter().collect();
        assert_eq!(got_memdevs, want_memdevs, "{snap}: memdevs behind {name}");
        // Newer cxl list prints the region's type; older ones only the endpoint decoders' mode.
        let want_mode = want.get("type").or_else(|| {
            by_position
                .first()
                .and_then(|m| decoder_mode.get(m["decoder"].as_str()?).copied())
        });
        if let Some(mode) = want_mode {
            assert_eq!(&got["mode"], mode, "{snap}: {name} mode");
        }
        seen.regions += 1;
    }
}

/// `node_meminfo.txt`: the nodes and their MemTotal.
fn check_nodes(snap: &str, cmd: &Path, ours: &Value, seen: &mut Seen) {
    let Ok(text) = std::fs::read_to_string(cmd.join("node_meminfo.txt")) else {
        println!("{snap}: no node_meminfo.txt capture, NUMA nodes not compared");
        return;
    };
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["Node", id, "MemTotal:", kb, "kB"] = words[..] {
            totals.insert(
                id.parse::<u64>().unwrap(),
                kb.parse::<u64>().unwrap() * 1024,
            );
        }
    }
    let got: BTreeMap<u64, u64> = ours["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_u64().unwrap(),
                n["mem_total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, totals, "{snap}: NUMA nodes and MemTotal");
    seen.nodes += got.len();
}

#[test]
fn discover_agrees_with_daxctl_and_cxl_list_on_every_snapshot() {
    let mut seen = Seen::default();
    for tarball in snapshots() {
        let snap = snapshot_name(&tarball);
        let snapshot = extract(&tarball);
        let ours = discover_json(&snapshot.sys());
        let cmd = snapshot.root.join("cmd");
        check_dax(&snap, &cmd, &ours, &mut seen);
        check_cxl(&snap, &cmd, &ours, &mut seen);
        check_nodes(&snap, &cmd, &ours, &mut seen);

        // The table names every device the JSON has.
        let table = discover_ok(&snapshot.sys(), false);
        for memdev in ours["memdevs"].as_array().unwrap() {
            assert!(
                table.contains(memdev["memdev"].as_str().unwrap()),
                "{snap}: table:\n{table}"
            );
        }
        for region in ours["dax_regions"].as_array().unwrap() {
            for dev in region["devices"].as_array().unwrap() {
                assert!(
                    table.contains(dev["chardev"].as_str().unwrap()),
                    "{snap}: table:\n{table}"
                );
            }
        }
        println!("{snap}: agrees with the captured tool output");
    }
    println!("{seen:?}");
    // The fixtures must really exercise both layouts and every kind of object.
    assert!(seen.dax_devices > 0 && seen.system_ram > 0, "{seen:?}");
    assert!(
        seen.memdevs > 0 && seen.regions > 0 && seen.nodes > 0,
        "{seen:?}"
    );
    assert!(seen.cxl_layout > 0 && seen.nvdimm_layout > 0, "{seen:?}");
}

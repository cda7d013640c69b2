//! The real udev path: a kernel uevent for one of node 0's memory blocks (synthesized by
//! writing `offline` / `online` to its `uevent` file, which changes nothing else) takes the
//! daemon's node-0 pool offline and back. Alone in its test binary, so no other test daemon
//! sees the event.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, poll, python, World, WRITER};
use std::path::PathBuf;

/// A memory block of node 0 (`memoryN`), if this host shows them.
fn node0_block() -> Option<String> {
    let mut blocks: Vec<String> = std::fs::read_dir("/sys/devices/system/node/node0")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("memory")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    blocks.sort();
    blocks.into_iter().next()
}

fn pool_state(w: &World) -> Option<(String, String)> {
    let st = w.status_json()?;
    let p = &st["pools"][0];
    Some((
        p["state"].as_str()?.to_string(),
        p["offline_reason"].as_str().unwrap_or("").to_string(),
    ))
}

/// The pool's offline reason once its state is `want`.
fn wait_state(w: &World, want: &str) -> String {
    poll(&format!("the pool to become {want}"), || {
        pool_state(w)
            .filter(|(state, _)| state == want)
            .map(|(_, why)| why)
    })
    .unwrap()
}

#[test]
fn a_kernel_memory_event_takes_the_pool_offline_and_back() {
    if !can_run_daemon() {
        return;
    }
    let Some(block) = node0_block() else {
        maru_testkit::need::skip(
            "no memory blocks",
            &"/sys/devices/system/node/node0 has none",
        );
        return;
    };
    let uevent = PathBuf::from("/sys/devices/system/memory")
        .join(&block)
        .join("uevent");
    let w = World::new("  - name: kv\n    source: {numa: {node: 0}}\n    size: 16MiB\n");
    let d = w.start();
    // the monitor thread starts right after the mount: repeat the event until it is heard
    let why = poll("a udev event to reach the daemon", || {
        std::fs::write(&uevent, "offline").unwrap();
        pool_state(&w)
            .filter(|(state, _)| state == "offline")
            .map(|(_, why)| why)
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.log_text()));
    assert!(why.contains(&format!("memory/{block}")), "{why}");
    let dir = w.mnt.join("kv");
    let err = python(WRITER, &[dir.to_str().unwrap(), "k", "4096"], None).unwrap_err();
    assert!(err.contains("Errno 19"), "ENODEV while offline: {err}");

    std::fs::write(&uevent, "online").unwrap();
    wait_state(&w, "online");
    python(WRITER, &[dir.to_str().unwrap(), "k", "4096"], None).unwrap();
    assert!(d.stop());
}

//! Runs maru-bench briefly on both backends and checks its JSON report.

use std::process::Command;

#[test]
fn a_short_run_reports_every_operation_on_both_backends() {
    // It mounts maru-fs.
    if !maru_testkit::need::root() {
        return;
    }
    let bench_mounts = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .matches("/maru-bench-")
            .count()
    };
    let before = bench_mounts();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_maru-bench"))
        .args([
            "--backend",
            "maru-fs,tmpfs",
            "--n",
            "5",
            "--sizes-kib",
            "256",
        ])
        .args(["--pin-mib", "4", "--breakdown", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "maru-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("| backend | operation |"), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    for backend in ["maru-fs", "tmpfs"] {
        for op in [
            "store",
            "store (copy-in)",
            "retrieve",
            "retrieve (2nd process)",
            "exists (hit)",
            "batch exists x5",
            "batch get x5",
            "pin/unpin",
            "long-term pin",
            "delete",
            "syscall: renameat2",
        ] {
            let row = rows
                .iter()
                .find(|r| r["backend"] == backend && r["op"] == op)
                .unwrap_or_else(|| panic!("no {backend} {op} row"));
            assert!(row["n"].as_u64().unwrap() > 0, "{row}");
            assert!(row["p50_us"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    for op in ["memcpy", "tcp loopback"] {
        assert!(rows
            .iter()
            .any(|r| r["backend"] == "baseline" && r["op"] == op));
    }
    assert!(report["machine"]["cpus"].as_u64().unwrap() > 0);
    // The run unmounted its tmpfs and maru-fs.
    assert_eq!(bench_mounts(), before);
}

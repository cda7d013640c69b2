//! Runs the producer and consumer examples as two processes on one pool.

mod common;

use common::{kinds, Fixture};
use std::path::PathBuf;
use std::process::Command;

/// The example binaries `cargo test` builds next to this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

#[test]
fn producer_and_consumer_share_chunks() {
    let (producer, consumer) = (example("producer"), example("consumer"));
    if !producer.exists() || !consumer.exists() {
        panic!(
            "example binaries missing at {}: build them with `cargo test -p libmaru` (which builds examples)",
            producer.display()
        );
    }
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let out = Command::new(&producer)
            .arg(&fx.pool)
            .args(["layer/7", "3", "300000"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind:?} producer: {out:?}");
        let out = Command::new(&consumer)
            .arg(&fx.pool)
            .args(["layer/7", "5"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{kind:?} consumer: {out:?}");
        assert!(stdout.contains("3 of 5 keys present"), "{stdout}");
        assert_eq!(stdout.matches("verified").count(), 3, "{stdout}");
    }
}

//! The daemon fault suite: `maru-devd run` killed with SIGKILL under a
//! multi-process publish load, round after round, and restarted on the same
//! world (the pool's tmpfs survives). After every restart each publish a writer
//! saw succeed is there with its sha256, no staging file is left, and the pool's
//! `used_bytes` is the sum of its chunks' sizes (numa pools charge the size).
//! Prints `N passed, M failed`; exits 1 on a failure.

mod devd_support;
mod fixtures;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devd_support::{poll, World};
use maru_testkit::user::NOBODY;

/// Kill/restart rounds (the issue asks for 20; about 10 s here).
const ROUNDS: usize = 20;
/// Writer processes per round (half root, half uid 65534).
const WRITERS: usize = 4;

/// Publishes chunks `PREFIX-J` (J = 0, 1, ...) of assorted sizes through mmap
/// until an operation fails; after each rename that returned success prints
/// `KEY SIZE SHA256` (before closing: the close may meet the dead daemon).
const LOOP_WRITER: &str = r#"
import hashlib, mmap, os, sys
d, prefix, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
j = 0
while True:
    n = 4096 * (1 + (seed * 7 + j * 13) % 24) + (j % 3) * 100
    key = "%s-%d" % (prefix, j)
    st = os.path.join(d, ".stage-%d-%d" % (os.getpid(), j))
    try:
        fd = os.open(st, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        os.ftruncate(fd, n)
        m = mmap.mmap(fd, n)
        data = (hashlib.sha256(key.encode()).digest() * (n // 32 + 1))[:n]
        m[:] = data
        os.rename(st, os.path.join(d, key))
    except OSError as e:
        print("stopped %s" % e, flush=True)
        sys.exit(0)
    print("%s %d %s" % (key, n, hashlib.sha256(data).hexdigest()), flush=True)
    try:
        m.close()
        os.close(fd)
    except OSError as e:
        print("stopped %s" % e, flush=True)
        sys.exit(0)
    j += 1
"#;

/// Prints `NAME SIZE SHA256` for every chunk listed in the directory.
const LISTER: &str = r#"
import hashlib, os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), "rb") as f:
        data = f.read()
    print("%s %d %s" % (name, len(data), hashlib.sha256(data).hexdigest()))
"#;

fn pool_yaml() -> String {
    "  - name: kv\n    source: {numa: {node: 0}}\n    size: 512MiB\n    mode: \"1777\"\n".into()
}

/// (size, sha256) by key.
type Chunks = BTreeMap<String, (u64, String)>;

fn spawn_writer(dir: &str, prefix: &str, seed: usize, user: Option<u32>) -> Child {
    let mut cmd = match user {
        Some(id) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={id}"))
                .arg(format!("--regid={id}"))
                .arg("--clear-groups")
                .arg("/usr/bin/python3");
            c
        }
        None => Command::new("/usr/bin/python3"),
    };
    cmd.arg("-c")
        .arg(LOOP_WRITER)
        .args([dir, prefix, &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer")
}

fn parse_line(line: &str) -> Option<(String, (u64, String))> {
    let mut it = line.split(' ');
    let key = it.next()?.to_string();
    let size = it.next()?.parse().ok()?;
    let sum = it.next()?.to_string();
    (sum.len() == 64).then_some((key, (size, sum)))
}

/// Every chunk listed in `dir` through the mount, read back.
fn listed(dir: &str) -> Chunks {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(LISTER)
        .arg(dir)
        .output()
        .expect("run lister");
    assert!(
        out.status.success(),
        "listing {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("lister printed {l:?}")))
        .collect()
}

fn pool_status(w: &World) -> serde_json::Value {
    devd_support::pool_status(w, "kv").expect("status --json with pool kv")
}

/// Backing files of the pool whose names are staging names (none may survive a
/// restart: adoption deletes them).
fn staging_backing_files(w: &World) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![w.run.join("pools")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else if name.starts_with(maru_proto::name::STAGING_PREFIX) {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

/// SIGKILL of the daemon under load, `ROUNDS` times, with restart and checks.
fn daemon_killed_under_publish_load() {
    let w = World::new(&pool_yaml());
    let mut daemon = w.start();
    let dir = w.mnt.join("kv");
    let dir = dir.to_str().expect("utf-8 mount path").to_string();
    let mut acked = Chunks::new();
    for round in 0..ROUNDS {
        let seen: Arc<Mutex<Chunks>> = Arc::default();
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for i in 0..WRITERS {
            let user = (i % 2 == 1).then_some(NOBODY);
            let mut child =
                spawn_writer(&dir, &format!("r{round}-w{i}"), round * WRITERS + i, user);
            let out = child.stdout.take().expect("writer stdout");
            let seen = seen.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some((k, v)) = parse_line(&line) {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).insert(k, v);
                    }
                }
            }));
            writers.push(child);
        }
        // Kill once the load is well under way (a different amount each round,
        // so the kill lands at different points of the publish path).
        let want = 20 + 7 * round;
        poll("publishes under way", || {
            (seen.lock().unwrap_or_else(|p| p.into_inner()).len() >= want).then_some(())
        })
        .unwrap();
        daemon.kill9();
        // Every writer meets the dead mount and stops (none may hang on it).
        let deadline = Instant::now() + Duration::from_secs(30);
        for mut c in writers {
            loop {
                if c.try_wait().expect("wait writer").is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("round {round}: a writer hung on the dead mount");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for r in readers {
            r.join().expect("reader thread");
        }
        let got = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
        assert!(got.len() >= want, "round {round}: {} publishes", got.len());
        acked.extend(got);

        daemon = w.start();
        let present = listed(&dir);
        for (key, (size, sum)) in &acked {
            match present.get(key) {
                None => panic!("round {round}: published chunk {key} is gone after kill -9"),
                Some((s, h)) => assert_eq!(
                    (s, h),
                    (size, sum),
                    "round {round}: chunk {key} changed after kill -9"
                ),
            }
        }
        // Publishes whose reply the kill cut off may or may not be there; whatever
        // is there is whole and charged.
        for (key, (size, sum)) in &present {
            let want = &acked
                .get(key)
                .map(|v| v.1.clone())
                .unwrap_or_else(|| sum.clone());
            assert_eq!(sum, want, "round {round}: {key} ({size} bytes)");
        }
        let st = pool_status(&w);
        assert_eq!(
            st["staging_chunks"], 0,
            "round {round}: staging visible: {st}"
        );
        let leftover = staging_backing_files(&w);
        assert!(
            leftover.is_empty(),
            "round {round}: staging left: {leftover:?}"
        );
        let total: u64 = present.values().map(|(s, _)| s).sum();
        assert_eq!(
            st["used_bytes"].as_u64(),
            Some(total),
            "round {round}: used_bytes vs {} chunks of {total} bytes in all",
            present.len()
        );
        assert_eq!(
            st["published_chunks"].as_u64(),
            Some(present.len() as u64),
            "round {round}: {st}"
        );
        println!(
            "  round {round}: {} publishes acknowledged, {} chunks, {total} bytes",
            acked.len(),
            present.len()
        );
    }
    assert!(daemon.stop(), "clean stop after the last round");
}

fn main() {
    maru_testkit::faults::run(
        "maru-devd daemon",
        &[(
            "daemon_kill9_under_publish_load_x20",
            daemon_killed_under_publish_load,
        )],
    );
}

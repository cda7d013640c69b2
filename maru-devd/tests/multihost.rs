//! Shared devdax pools across hosts, for real: a real etcd (Debian's `etcd-server`,
//! started here on loopback with a temp data dir) and two or three `maru-devd run`,
//! each a "host" with its own runtime dir, mount, host name and host identity, all
//! serving one pool on one stand-in device. Checks what docs/multihost.md promises:
//! one identity, a key published on one host visible on the others (latency printed),
//! first writer wins across hosts, removal from any host, a host that cannot reach etcd
//! refuses writes and resumes, and a restart keeps every published chunk.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, data, free_port, hex, poll, publish, Daemon, World};
use maru_proto::xattr;
use maru_testkit::devdax::StandIn as Device;
use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A single-member etcd on loopback, stopped when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// Waits until etcd at `endpoints` (comma-separated) reports healthy.
fn wait_healthy(endpoints: &str) {
    poll("etcd to answer", || {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints, "endpoint", "health"])
            .output()
            .ok()?;
        out.status.success().then_some(())
    })
    .unwrap();
}

impl Etcd {
    /// A single-member etcd, answering.
    fn start() -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let e = Etcd::member("t", client, peer, &format!("t=http://127.0.0.1:{peer}"));
        wait_healthy(&e.url);
        e
    }

    /// Starts member `name` of the cluster `initial` (`name=peer-url,...`), listening for
    /// clients on `client` and for peers on `peer`; does not wait for it.
    fn member(name: &str, client: u16, peer: u16, initial: &str) -> Etcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("etcd is not installed: scripts/setup.sh installs Debian's etcd-server");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", name, "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args([
                "--initial-cluster",
                initial,
                "--initial-cluster-state",
                "new",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
            .spawn()
            .expect("start etcd");
        Etcd {
            child,
            url,
            _dir: dir,
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // It may be gone already (a test killed it); a stopped one must be resumed to die.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGCONT,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host: its world (config, runtime dir, mount) and its daemon.
struct Host {
    name: &'static str,
    world: World,
    daemon: Option<Daemon>,
    /// The loopback port of its metrics endpoint (0: none).
    metrics: u16,
}

impl Host {
    fn new(name: &'static str, dev: &Device, etcd: &Etcd) -> Host {
        let metrics = free_port();
        let world = World::new(&format!(
            "  - name: kv\n    source: {{devdax: {{device: {}}}}}\n    size: 100%\n    mode: \"0777\"\n    shared: true\ncluster:\n  etcd: [{}]\n  host: {name}\n  lease_ttl: 3\nmetrics:\n  listen: 127.0.0.1:{metrics}\n",
            dev.path.display(),
            etcd.url
        ));
        Host {
            name,
            world,
            daemon: None,
            metrics,
        }
    }

    /// The value of metric `series` (name with labels) from the host's endpoint.
    fn metric(&self, series: &str) -> Option<u64> {
        use std::io::Read;
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.metrics)).ok()?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        c.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    fn start(&mut self, dev: &Device) {
        let id = format!("{:0>32}", hex(self.name.as_bytes()));
        let env = [
            ("MARU_HOST_MACHINE_ID", &id[..32]),
            ("MARU_HOST_BOOT_ID", &id[..32]),
            ("MARU_HOST_NAME", self.name),
        ];
        let args = [OsStr::new("--sysfs-root"), dev.sys.as_os_str()];
        self.daemon = Some(self.world.spawn_env(&args, &env).serving(&self.world));
    }

    fn pool(&self) -> PathBuf {
        self.world.mnt.join("kv")
    }

    fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_text)
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            assert!(d.stop(), "host {} must stop cleanly", self.name);
        }
    }
}

fn three_hosts(dev: &Device, etcd: &Etcd) -> Vec<Host> {
    let mut hosts: Vec<Host> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .map(|n| Host::new(n, dev, etcd))
        .collect();
    for h in &mut hosts {
        h.start(dev);
    }
    hosts
}

#[test]
fn a_key_published_on_one_host_is_visible_and_readable_on_the_others() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut hosts = three_hosts(&dev, &etcd);
    // One pool identity, formatted by exactly one host.
    let formatted = hosts
        .iter()
        .filter(|h| h.log().contains("formatting a new pool for the cluster"))
        .count();
    assert_eq!(formatted, 1, "exactly one host formats the blank device");

    let (mut publishes, mut latencies) = (Vec::new(), Vec::new());
    for round in 0..20 {
        let (from, to) = (&hosts[round % 3], &hosts[(round + 1) % 3]);
        let key = format!("k{round}");
        let bytes = data(&key, from.name, 3 * MIB as usize + round);
        let t0 = Instant::now();
        publish(&from.pool(), &key, &bytes).unwrap();
        publishes.push(t0.elapsed());
        let t = Instant::now();
        let seen = to.pool().join(&key);
        // A tight loop (not `poll`'s 50 ms steps), so the latency is the system's.
        while !seen.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{key} never appeared on {}",
                to.name
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(t.elapsed());
        assert_eq!(
            std::fs::read(&seen).unwrap(),
            bytes,
            "{key} read on {}",
            to.name
        );
    }
    latencies.sort();
    publishes.sort();
    println!(
        "write+publish of 3 MiB through the mount: p50 {:?}, max {:?}; published -> visible \
         on another host: p50 {:?}, max {:?} (20 rounds, loopback etcd)",
        publishes[publishes.len() / 2],
        publishes[publishes.len() - 1],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Every host lists every key, and agrees on where each chunk is (zero-copy maps).
    for h in &hosts {
        let mut names: Vec<String> = std::fs::read_dir(h.pool())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 20, "{}: {names:?}", h.name);
    }
    let offset = |h: &Host| xattr(&h.pool().join("k0"), xattr::DEVDAX_OFFSET);
    assert_eq!(offset(&hosts[0]), offset(&hosts[2]));

    // Removal from any host: k0 was written on node-a, node-c removes it.
    std::fs::remove_file(hosts[2].pool().join("k0")).unwrap();
    for h in &hosts {
        let gone = h.pool().join("k0");
        poll("the removed key to disappear everywhere", || {
            (!gone.exists()).then_some(())
        })
        .unwrap();
    }

    // A restart of every host keeps every published chunk, byte for byte.
    for h in &mut hosts {
        h.stop();
    }
    for h in &mut hosts {
        h.start(&dev);
    }
    for round in 1..20 {
        let key = format!("k{round}");
        let writer = hosts[round % 3].name;
        for h in &hosts {
            assert_eq!(
                std::fs::read(h.pool().join(&key)).unwrap(),
                data(&key, writer, 3 * MIB as usize + round),
                "{key} on {} after the restart",
                h.name
            );
        }
    }
    assert!(!hosts[1].pool().join("k0").exists());
    for h in &mut hosts {
        h.stop();
    }
}

fn xattr(path: &Path, name: &str) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn writers_racing_on_the_same_keys_across_hosts_have_exactly_one_winner() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut hosts = three_hosts(&dev, &etcd);
    const KEYS: usize = 40;
    // Two writer threads per host, all racing on the same keys.
    let results: Vec<Vec<(usize, &str, bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .flat_map(|h| [h, h])
            .enumerate()
            .map(|(w, h)| {
                let pool = h.pool();
                let name = h.name;
                s.spawn(move || {
                    (0..KEYS)
                        .map(|k| {
                            let key = format!("race{k}");
                            let tag = format!("{name}/{w}");
                            let won = match publish(&pool, &key, &data(&key, &tag, 64 * 1024)) {
                                Ok(()) => true,
                                Err(libc::EEXIST) => false,
                                Err(e) => panic!("{name}: publish {key}: errno {e}"),
                            };
                            (k, name, won)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for k in 0..KEYS {
        let winners: Vec<(usize, &str)> = results
            .iter()
            .enumerate()
            .filter_map(|(w, r)| {
                r.iter()
                    .find(|(kk, _, won)| *kk == k && *won)
                    .map(|(_, n, _)| (w, *n))
            })
            .collect();
        assert_eq!(winners.len(), 1, "race{k}: winners {winners:?}");
        let (w, name) = winners[0];
        let want = data(&format!("race{k}"), &format!("{name}/{w}"), 64 * 1024);
        for h in &hosts {
            let p = h.pool().join(format!("race{k}"));
            poll("the winner's key on every host", || {
                p.exists().then_some(())
            })
            .unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), want, "race{k} on {}", h.name);
        }
    }
    for h in &mut hosts {
        h.stop();
    }
}

#[test]
fn a_host_that_cannot_reach_etcd_refuses_writes_and_resumes() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    a.start(&dev);
    publish(&a.pool(), "before", b"kept").unwrap();
    // etcd stops answering (SIGSTOP: connections hang, as in a partition).
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    poll("the host to notice it lost its session", || {
        a.log()
            .contains("cannot renew its etcd lease")
            .then_some(())
    })
    .unwrap();
    let refused = publish(&a.pool(), "during", b"x");
    assert_eq!(
        refused,
        Err(libc::EIO),
        "writes must be refused while etcd is away"
    );
    // Reads stay local and keep working.
    assert_eq!(std::fs::read(a.pool().join("before")).unwrap(), b"kept");
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    if let Err(e) = poll("writes to resume", || {
        publish(&a.pool(), "after", b"y").ok()
    }) {
        panic!("{e}:\n{}", a.log());
    }
    assert!(a.pool().join("after").exists());
    assert!(!a.pool().join("during").exists());
    a.stop();
}

fn etcdctl(etcd: &Etcd, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.url])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_removed_chunk_is_reused_only_after_every_host_let_go() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    let mut b = Host::new("node-b", &dev, &etcd);
    a.start(&dev);
    b.start(&dev);
    let bytes = data("held", "node-a", 5 * MIB as usize);
    publish(&a.pool(), "held", &bytes).unwrap();
    let on_b = b.pool().join("held");
    poll("held on node-b", || on_b.exists().then_some(())).unwrap();
    // node-b keeps the chunk open (a reader, or a zero-copy mapping's pin).
    let mut reader = std::fs::File::open(&on_b).unwrap();
    std::fs::remove_file(a.pool().join("held")).unwrap();
    poll("the removal to reach node-b", || {
        (!on_b.exists()).then_some(())
    })
    .unwrap();
    // The removal waits for node-b: pending in etcd, node-b has not acknowledged.
    poll("the removal to be recorded", || {
        etcdctl(
            &etcd,
            &[
                "get",
                "--prefix",
                "--keys-only",
                "/maru/v1/pools/kv/removing/",
            ],
        )
        .contains("/removing/node-a/")
        .then_some(())
    })
    .unwrap();
    let acks = || {
        etcdctl(
            &etcd,
            &["get", "--prefix", "--keys-only", "/maru/v1/pools/kv/acks/"],
        )
    };
    std::thread::sleep(Duration::from_secs(2)); // four reclaim rounds
    assert!(
        !acks().contains("node-b"),
        "node-b acknowledged while it holds the chunk"
    );
    assert!(!a.log().contains("is free again"), "{}", a.log());
    // The quarantine shows in node-a's metrics: one 6 MiB extent (5 MiB, 2 MiB units).
    assert_eq!(
        a.metric("maru_pool_quarantined_bytes{pool=\"kv\"}"),
        Some(6 * MIB)
    );
    // Meanwhile other chunks are written on node-a: none may take the held extent, so
    // node-b still reads the removed chunk's own bytes.
    // (1 MiB chunks: first fit would put the first at the held extent's start.)
    for i in 0..3 {
        publish(
            &a.pool(),
            &format!("new{i}"),
            &data("new", "node-a", MIB as usize),
        )
        .unwrap();
    }
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
    assert_eq!(got, bytes, "node-b's open chunk changed under it");
    // node-b lets go: it acknowledges, node-a frees the extent.
    drop(reader);
    poll("node-a to free the extent", || {
        a.log().contains("is free again").then_some(())
    })
    .unwrap();
    assert_eq!(
        a.metric("maru_pool_quarantined_bytes{pool=\"kv\"}"),
        Some(0)
    );
    poll("the removal to be finished in etcd", || {
        (!etcdctl(
            &etcd,
            &[
                "get",
                "--prefix",
                "--keys-only",
                "/maru/v1/pools/kv/removing/",
            ],
        )
        .contains("node-a"))
        .then_some(())
    })
    .unwrap();
    a.stop();
    b.stop();
}

fn cluster_cmd(h: &Host, args: &[&str]) -> (bool, String) {
    devd_support::cluster_cmd(&h.world.config, args)
}

#[test]
fn a_host_that_is_gone_holds_up_removals_until_it_is_forgotten() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    let mut b = Host::new("node-b", &dev, &etcd);
    a.start(&dev);
    b.start(&dev);
    publish(&a.pool(), "x", &data("x", "node-a", MIB as usize)).unwrap();
    let (ok, text) = cluster_cmd(&a, &["forget", "node-b"]);
    assert!(!ok && text.contains("is live"), "{text}");
    // node-b goes away (still a member: it may come back, or be partitioned).
    b.stop();
    std::fs::remove_file(a.pool().join("x")).unwrap();
    poll("the removal to wait for node-b", || {
        let (ok, text) = cluster_cmd(&a, &["status"]);
        assert!(ok, "{text}");
        (text.contains("members down: node-b") && text.contains("waiting for [\"node-b\"]"))
            .then_some(())
    })
    .unwrap();
    assert!(!a.log().contains("is free again"));
    // The daemon's own status says the same, per shared pool.
    let status = a.world.devd(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(
            "shared as host node-a: hosts live node-a; members down node-b; 1 removal(s) waiting"
        ),
        "{text}"
    );
    let (ok, text) = cluster_cmd(&a, &["forget", "node-b"]);
    assert!(ok && text.contains("forgot host node-b"), "{text}");
    poll("node-a to free the extent", || {
        a.log().contains("is free again").then_some(())
    })
    .unwrap();
    let (_, text) = cluster_cmd(&a, &["status"]);
    assert!(text.contains("removals waiting: 0"), "{text}");
    a.stop();
}

/// Percentile `p` (0..=100) of sorted durations, in microseconds.
fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = ((sorted.len() - 1) * p) / 100;
    sorted[i].as_secs_f64() * 1e6
}

/// A table row `| what | p50 | p99 |` of `sorted` durations, in µs with `digits`
/// decimals.
fn row(what: &str, sorted: &[Duration], digits: usize) -> String {
    format!(
        "| {what} | {:.digits$} | {:.digits$} |",
        pct(sorted, 50),
        pct(sorted, 99)
    )
}

/// Times `rounds` publishes of `size`-byte chunks on `from` (the rename only: the
/// bytes are written before), and how long each takes to appear on `to`.
fn publish_rounds(
    from: &Host,
    to: &Host,
    tag: &str,
    size: usize,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut publish_t, mut visible_t) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let key = format!("{tag}{i}");
        let stage = from.pool().join(format!(".s-{key}"));
        let mut f = std::fs::File::create_new(&stage).unwrap();
        f.write_all(&data(&key, from.name, size)).unwrap();
        let t = Instant::now();
        std::fs::rename(&stage, from.pool().join(&key)).unwrap();
        publish_t.push(t.elapsed());
        drop(f);
        let seen = to.pool().join(&key);
        let t = Instant::now();
        while !seen.exists() {
            assert!(t.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_micros(100));
        }
        visible_t.push(t.elapsed());
    }
    publish_t.sort();
    visible_t.sort();
    (publish_t, visible_t)
}

/// Times `rounds` lookups (stat) and reads of `key` in `pool`.
fn read_rounds(pool: &Path, key: &str, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut look, mut read) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        std::fs::metadata(pool.join(key)).unwrap();
        look.push(t.elapsed());
        let t = Instant::now();
        buf.clear();
        std::io::Read::read_to_end(&mut std::fs::File::open(pool.join(key)).unwrap(), &mut buf)
            .unwrap();
        read.push(t.elapsed());
    }
    look.sort();
    read.sort();
    (look, read)
}

/// The multi-host benchmark: run by `scripts/bench-multihost.sh` (ignored by
/// `cargo test`: timing goals live in benchmarks, not tests). Prints one table.
#[test]
#[ignore]
fn bench_multihost() {
    if !can_run_daemon() {
        return;
    }
    // The coherent twin has a cluster of its own (one pool name, another device).
    let (etcd, etcd_hw) = (Etcd::start(), Etcd::start());
    let (dev, dev_hw) = (Device::new(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    let mut b = Host::new("node-b", &dev, &etcd);
    a.start(&dev);
    b.start(&dev);
    // The same two hosts on a second device declared cache-coherent (no write-back).
    let hw = |name: &'static str| {
        let world = World::new(&format!(
            "  - name: kv\n    source: {{devdax: {{device: {}, coherence: hardware}}}}\n    size: 100%\n    mode: \"0777\"\n    shared: true\ncluster:\n  etcd: [{}]\n  host: {name}-hw\n  lease_ttl: 3\n",
            dev_hw.path.display(),
            etcd_hw.url
        ));
        Host {
            name,
            world,
            daemon: None,
            metrics: 0,
        }
    };
    let (mut ahw, mut bhw) = (hw("node-a"), hw("node-b"));
    ahw.start(&dev_hw);
    bhw.start(&dev_hw);
    // A single-host (not shared) devdax pool for the read-path baseline.
    let dev_single = Device::new();
    let single_world = World::new(&format!(
        "  - name: kv\n    source: {{devdax: {{device: {}}}}}\n    size: 100%\n    mode: \"0777\"\n",
        dev_single.path.display()
    ));
    let mut single = Host {
        name: "single",
        world: single_world,
        daemon: None,
        metrics: 0,
    };
    single.start(&dev_single);

    const N: usize = 200;
    let mut rows = Vec::new();
    for (size, label) in [(256 * 1024, "256 KiB"), (4 * MIB as usize, "4 MiB")] {
        let (p, v) = publish_rounds(&a, &b, &format!("p{size}-"), size, 20);
        let (phw, _) = publish_rounds(&ahw, &bhw, &format!("p{size}-"), size, 20);
        rows.push(row(&format!("publish {label} (coherence none)"), &p, 0));
        rows.push(row(
            &format!("publish {label} (coherence hardware)"),
            &phw,
            0,
        ));
        rows.push(format!(
            "| write-back cost {label} (difference of p50s) | {:.0} | |",
            pct(&p, 50) - pct(&phw, 50)
        ));
        rows.push(row(
            &format!("published -> visible on the other host, {label}"),
            &v,
            0,
        ));
    }
    publish(&a.pool(), "r", &data("r", "node-a", 256 * 1024)).unwrap();
    publish(&single.pool(), "r", &data("r", "single", 256 * 1024)).unwrap();
    let b_r = b.pool().join("r");
    poll("r on node-b", || b_r.exists().then_some(())).unwrap();
    let (l1, r1) = read_rounds(&single.pool(), "r", N);
    let (l2, r2) = read_rounds(&a.pool(), "r", N);
    let (l3, r3) = read_rounds(&b.pool(), "r", N);
    rows.push(row("lookup, single-host pool", &l1, 1));
    rows.push(row("lookup, shared pool, own chunk", &l2, 1));
    rows.push(row("lookup, shared pool, other host's chunk", &l3, 1));
    rows.push(row("read 256 KiB, single-host pool", &r1, 1));
    rows.push(row("read 256 KiB, shared pool, own chunk", &r2, 1));
    rows.push(row("read 256 KiB, shared pool, other host's chunk", &r3, 1));
    println!("\nmulti-host benchmark (loopback etcd, stand-in device on /dev/shm; µs)\n");
    println!("| what | p50 µs | p99 µs |\n| --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nread path, shared / single-host p50: lookup {:.2}x (own) {:.2}x (other host's), read {:.2}x (own) {:.2}x (other host's)",
        pct(&l2, 50) / pct(&l1, 50),
        pct(&l3, 50) / pct(&l1, 50),
        pct(&r2, 50) / pct(&r1, 50),
        pct(&r3, 50) / pct(&r1, 50)
    );
    for h in [&mut a, &mut b, &mut ahw, &mut bhw, &mut single] {
        h.stop();
    }
}

/// A three-member etcd cluster on loopback; members stopped when dropped.
struct EtcdCluster {
    members: Vec<Etcd>,
}

impl EtcdCluster {
    fn start() -> EtcdCluster {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| Etcd::member(&format!("m{i}"), *client, *peer, &initial))
            .collect();
        let c = EtcdCluster { members };
        wait_healthy(&c.endpoints());
        c
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[test]
fn service_continues_when_an_etcd_member_dies() {
    if !can_run_daemon() {
        return;
    }
    let cluster = EtcdCluster::start();
    let dev = Device::new();
    // Hosts list every member; Host::new takes one URL: give it the list.
    let all = Etcd {
        child: Command::new("true").spawn().unwrap(),
        url: cluster.endpoints().replace(',', ", "),
        _dir: tempfile::tempdir().unwrap(),
    };
    let mut a = Host::new("node-a", &dev, &all);
    let mut b = Host::new("node-b", &dev, &all);
    a.start(&dev);
    b.start(&dev);
    publish(&a.pool(), "before", b"before").unwrap();
    poll("before on node-b", || {
        b.pool().join("before").exists().then_some(())
    })
    .unwrap();
    // Kill one member (quorum stays: 2 of 3).
    let mut cluster = cluster;
    let mut dead = cluster.members.remove(0);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    for i in 0..5 {
        let key = format!("after{i}");
        let bytes = data(&key, "node-a", 100_000);
        // The client moves to a live member; a request caught on the dead one may fail
        // once (EIO): retry like a client would.
        poll("a publish with one member dead", || {
            publish(&a.pool(), &key, &bytes).ok()
        })
        .unwrap();
        let seen = b.pool().join(&key);
        poll("the key on node-b", || seen.exists().then_some(())).unwrap();
        assert_eq!(std::fs::read(&seen).unwrap(), bytes);
    }
    a.stop();
    b.stop();
}

#[test]
fn a_host_killed_mid_publish_leaves_no_partial_key_anywhere() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    let mut b = Host::new("node-b", &dev, &etcd);
    a.start(&dev);
    b.start(&dev);
    for round in 0..4 {
        // Writers on node-a publish chunks continuously while its daemon is killed.
        let pool = a.pool();
        let writer = std::thread::spawn(move || {
            let mut done = Vec::new();
            for i in 0..1000 {
                let key = format!("r{round}-{i}");
                match publish(&pool, &key, &data(&key, "node-a", 512 * 1024)) {
                    Ok(()) => done.push(key),
                    Err(_) => break,
                }
            }
            done
        });
        std::thread::sleep(Duration::from_millis(150 + 100 * round as u64));
        let d = a.daemon.take().unwrap();
        d.kill9();
        let published = writer.join().unwrap();
        // Every key node-b lists is complete, byte for byte; every key whose publish
        // returned is there.
        std::thread::sleep(Duration::from_millis(500));
        for e in std::fs::read_dir(b.pool()).unwrap() {
            let key = e.unwrap().file_name().to_string_lossy().into_owned();
            let got = std::fs::read(b.pool().join(&key)).unwrap();
            assert_eq!(got, data(&key, "node-a", 512 * 1024), "{key} on node-b");
        }
        for key in &published {
            assert!(
                b.pool().join(key).exists(),
                "{key} was published but is not on node-b"
            );
        }
        // node-a comes back: its staging is dropped, its published chunks recovered.
        let world_mnt = a.world.mnt.clone();
        while devd_support::is_mountpoint(&world_mnt) {
            let _ = nix::mount::umount2(&world_mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        a.start(&dev);
        for key in &published {
            assert_eq!(
                std::fs::read(a.pool().join(key)).unwrap(),
                data(key, "node-a", 512 * 1024),
                "{key} on node-a after its restart"
            );
        }
        let staging = std::fs::read_dir(a.pool())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with('.'))
            })
            .count();
        assert_eq!(staging, 0);
        // Free space is not lost to the crash: remove everything and fill again.
        for key in &published {
            std::fs::remove_file(a.pool().join(key)).unwrap();
        }
    }
    a.stop();
    b.stop();
}

#[test]
fn a_key_no_chunk_backs_is_swept_so_the_key_can_be_published_again() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let mut a = Host::new("node-a", &dev, &etcd);
    a.start(&dev);
    // A transaction applied whose answer node-a never got (the publish was undone
    // locally): the key names node-a's record 3, where no chunk is.
    let key = "/maru/v1/pools/kv/keys/".to_string() + &hex(b"orphan");
    etcdctl(&etcd, &["put", &key, "host=node-a;slot=3"]);
    assert_eq!(publish(&a.pool(), "orphan", b"x"), Err(libc::EEXIST));
    poll("the orphan key to be swept", || {
        (!etcdctl(&etcd, &["get", "--keys-only", &key]).contains("keys")).then_some(())
    })
    .unwrap();
    assert!(
        a.log().contains("removing key \"orphan\" from the cluster"),
        "{}",
        a.log()
    );
    publish(&a.pool(), "orphan", b"now real").unwrap();
    assert_eq!(std::fs::read(a.pool().join("orphan")).unwrap(), b"now real");
    a.stop();
}

/// A TCP relay on loopback in front of etcd for one host, so that host alone can be
/// cut off from etcd (a partition) and reconnected.
struct Relay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(to: &str) -> Relay {
        use std::sync::atomic::Ordering;
        let target = to.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c2, k2) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let mut held = k2.lock().unwrap();
                for s in [&client, &server] {
                    held.push(s.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, cut, conns }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_host_cut_off_from_etcd_refuses_writes_while_the_others_go_on() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let relay = Relay::start(&etcd.url);
    let via_relay = Etcd {
        child: Command::new("true").spawn().unwrap(),
        url: relay.url(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let mut a = Host::new("node-a", &dev, &etcd);
    let mut b = Host::new("node-b", &dev, &via_relay);
    a.start(&dev);
    b.start(&dev);
    publish(&a.pool(), "k0", b"before").unwrap();
    poll("k0 on node-b", || {
        b.pool().join("k0").exists().then_some(())
    })
    .unwrap();

    relay.cut();
    poll("node-b to notice", || {
        b.log()
            .contains("cannot renew its etcd lease")
            .then_some(())
    })
    .unwrap();
    assert_eq!(publish(&b.pool(), "from-b", b"x"), Err(libc::EIO));
    // node-a goes on: it publishes, and node-b still reads what it had.
    publish(&a.pool(), "k1", b"during").unwrap();
    assert_eq!(std::fs::read(b.pool().join("k0")).unwrap(), b"before");
    assert!(!a.pool().join("from-b").exists());

    // Reconnected: node-b writes again and catches up on what it missed.
    relay.restore();
    poll("node-b to write again", || {
        publish(&b.pool(), "from-b", b"after").ok()
    })
    .unwrap();
    poll("k1 on node-b", || {
        b.pool().join("k1").exists().then_some(())
    })
    .unwrap();
    assert_eq!(std::fs::read(b.pool().join("k1")).unwrap(), b"during");
    poll("from-b on node-a", || {
        a.pool().join("from-b").exists().then_some(())
    })
    .unwrap();
    a.stop();
    b.stop();
}

/// Whether thread `tid` of this process is inside a rename system call (blocked in it:
/// `/proc/self/task/TID/syscall` names the call a sleeping thread is in).
fn in_rename(tid: i32) -> bool {
    #[cfg(target_arch = "x86_64")]
    const RENAMES: &[&str] = &["82", "264", "316"];
    #[cfg(target_arch = "aarch64")]
    const RENAMES: &[&str] = &["38", "276"];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const RENAMES: &[&str] = &[];
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .is_ok_and(|s| RENAMES.contains(&s.split(' ').next().unwrap_or("")))
}

#[test]
fn a_publish_waiting_on_etcd_does_not_stall_the_other_pools() {
    if !can_run_daemon() {
        return;
    }
    let (etcd, dev) = (Etcd::start(), Device::new());
    let world = World::new(&format!(
        "  - name: kv\n    source: {{devdax: {{device: {}}}}}\n    size: 100%\n    mode: \"0777\"\n    shared: true\n  - name: plain\n    source: {{numa: {{node: 0}}}}\n    size: 16MiB\n    mode: \"1777\"\ncluster:\n  etcd: [{}]\n  host: node-a\n  lease_ttl: 3\n",
        dev.path.display(),
        etcd.url
    ));
    let mut a = Host {
        name: "node-a",
        world,
        daemon: None,
        metrics: 0,
    };
    a.start(&dev);
    let plain = a.world.mnt.join("plain");
    publish(&a.pool(), "before", b"kept").unwrap();
    publish(&plain, "p0", b"plain before").unwrap();

    // etcd stops answering (SIGSTOP: its connections hang) and, before the host can
    // notice its session is gone, a publish on the shared pool waits on etcd (the
    // transaction's timeout, then the check whether it was applied after all).
    let (tx, rx) = std::sync::mpsc::channel();
    let kv = a.pool();
    let stage = kv.join(".stage-stuck");
    let mut f = std::fs::File::create_new(&stage).unwrap();
    f.write_all(b"stuck").unwrap();
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    let publisher = std::thread::spawn(move || {
        tx.send(nix::unistd::gettid().as_raw()).unwrap();
        let r = std::fs::rename(&stage, kv.join("stuck"));
        drop(f);
        r.map_err(|e| e.raw_os_error().unwrap_or(0))
    });
    let tid = rx.recv().unwrap();
    poll("the shared publish to be in its rename", || {
        (in_rename(tid) || publisher.is_finished()).then_some(())
    })
    .unwrap();

    // Meanwhile the plain pool is served: lookups, a publish, a read and a listing.
    assert_eq!(std::fs::read(plain.join("p0")).unwrap(), b"plain before");
    assert!(std::fs::metadata(plain.join("absent")).is_err());
    publish(&plain, "p1", b"plain during").unwrap();
    assert_eq!(std::fs::read(plain.join("p1")).unwrap(), b"plain during");
    let listed = std::fs::read_dir(&plain).unwrap().count();
    assert_eq!(listed, 2);
    // ... all of it while the shared publish was still waiting on etcd.
    assert!(
        !publisher.is_finished(),
        "the plain pool was stalled until the shared pool's etcd call gave up:\n{}",
        a.log()
    );
    assert_eq!(publisher.join().unwrap(), Err(libc::EIO));
    // Reads of the shared pool stay local and keep working.
    assert_eq!(std::fs::read(a.pool().join("before")).unwrap(), b"kept");

    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    if let Err(e) = poll("writes to resume", || {
        publish(&a.pool(), "after", b"y").ok()
    }) {
        panic!("{e}:\n{}", a.log());
    }
    // The refused key is not on the mount. etcd may still apply the transaction it
    // received while stopped: that orphan key is swept (every 10 s), then the key
    // can be published.
    assert!(!a.pool().join("stuck").exists());
    if let Err(e) = poll("the refused key to be publishable", || {
        publish(&a.pool(), "stuck", b"now").ok()
    }) {
        panic!("{e}:\n{}", a.log());
    }
    assert_eq!(std::fs::read(a.pool().join("stuck")).unwrap(), b"now");
    a.stop();
}

//! Shared devdax pools across hosts over TLS to etcd, for real: a CA, a server
//! certificate (127.0.0.1, localhost) and a client certificate made with the `openssl`
//! CLI, a real etcd (Debian's `etcd-server`) on loopback serving https:// only and
//! asking every client for a certificate (`--client-cert-auth`), and `maru-devd run`
//! hosts with `cluster.tls`. Checks what docs/multihost.md promises: a key published
//! on one host is read byte for byte on the other, `maru-devd cluster status` works
//! over TLS, and a host that does not trust etcd's certificate, or has no client
//! certificate, is refused with a message that says so.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, data, free_port, hex, poll, publish, Daemon, World};
use maru_testkit::devdax::StandIn as Device;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MIB: usize = 1 << 20;

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (Debian's `openssl` package)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`), a second CA that signed nothing etcd uses (`other-ca.pem`), etcd's
/// server certificate for 127.0.0.1 and localhost, and a client certificate, all signed
/// by `ca.pem`, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let key = format!("{ca}-key.pem");
            let cert = format!("{ca}.pem");
            let subj = format!("/CN=maru test {ca}");
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &cert]);
            openssl(d, &args);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "etcd"), ("client", "maru")] {
            let (key, csr) = (format!("{name}-key.pem"), format!("{name}.csr"));
            let subj = format!("/CN={cn}");
            let mut args = vec!["req", "-subj", &subj];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr]);
            openssl(d, &args);
            let (cert, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-extfile",
                    &ext,
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// A single-member etcd serving clients on https:// only, with client-certificate
/// authentication; stopped when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start(pki: &Pki) -> Etcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("etcd is not installed: scripts/setup.sh installs Debian's etcd-server");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("https://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .args(["--initial-cluster-state", "new"])
            .arg("--cert-file")
            .arg(pki.path("server.pem"))
            .arg("--key-file")
            .arg(pki.path("server-key.pem"))
            .arg("--trusted-ca-file")
            .arg(pki.path("ca.pem"))
            .arg("--client-cert-auth")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
            .spawn()
            .expect("start etcd");
        let e = Etcd {
            child,
            url,
            _dir: dir,
        };
        poll("etcd to answer over TLS", || {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &e.url])
                .arg("--cacert")
                .arg(pki.path("ca.pem"))
                .arg("--cert")
                .arg(pki.path("client.pem"))
                .arg("--key")
                .arg(pki.path("client-key.pem"))
                .args(["endpoint", "health"])
                .output()
                .ok()?;
            out.status.success().then_some(())
        })
        .unwrap();
        e
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host: its world (config with `cluster.tls`) and its daemon.
struct Host {
    name: &'static str,
    world: World,
    daemon: Option<Daemon>,
}

impl Host {
    /// Host `name` with the tls section `tls` (YAML flow mapping).
    fn new(name: &'static str, dev: &Device, etcd: &Etcd, tls: &str) -> Host {
        let world = World::new(&format!(
            "  - name: kv\n    source: {{devdax: {{device: {}}}}}\n    size: 100%\n    mode: \"0777\"\n    shared: true\ncluster:\n  etcd: [{}]\n  host: {name}\n  lease_ttl: 3\n  tls: {tls}\n",
            dev.path.display(),
            etcd.url
        ));
        Host {
            name,
            world,
            daemon: None,
        }
    }

    /// A host with the client certificate, trusting `ca` (a file of `pki`).
    fn with_client_cert(name: &'static str, dev: &Device, etcd: &Etcd, pki: &Pki) -> Host {
        let tls = format!(
            "{{ca: {}, cert: {}, key: {}}}",
            pki.path("ca.pem").display(),
            pki.path("client.pem").display(),
            pki.path("client-key.pem").display()
        );
        Host::new(name, dev, etcd, &tls)
    }

    fn spawn(&self, dev: &Device) -> Daemon {
        let id = format!("{:0>32}", hex(self.name.as_bytes()));
        let env = [
            ("MARU_HOST_MACHINE_ID", &id[..32]),
            ("MARU_HOST_BOOT_ID", &id[..32]),
            ("MARU_HOST_NAME", self.name),
        ];
        let args = [OsStr::new("--sysfs-root"), dev.sys.as_os_str()];
        self.world.spawn_env(&args, &env)
    }

    fn start(&mut self, dev: &Device) {
        self.daemon = Some(self.spawn(dev).serving(&self.world));
    }

    fn pool(&self) -> PathBuf {
        self.world.mnt.join("kv")
    }

    fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            assert!(d.stop(), "host {} must stop cleanly", self.name);
        }
    }

    /// `maru-devd cluster ARGS --config <this host's config>`: success and output.
    fn cluster_cmd(&self, args: &[&str]) -> (bool, String) {
        devd_support::cluster_cmd(&self.world.config, args)
    }
}

#[test]
fn two_hosts_share_a_pool_over_tls_with_client_certificates() {
    if !can_run_daemon() {
        return;
    }
    let pki = Pki::new();
    let (etcd, dev) = (Etcd::start(&pki), Device::new());
    let mut hosts = [
        Host::with_client_cert("node-a", &dev, &etcd, &pki),
        Host::with_client_cert("node-b", &dev, &etcd, &pki),
    ];
    for h in &mut hosts {
        h.start(&dev);
    }
    for (round, (from, to)) in [(0, 1), (1, 0)].into_iter().enumerate() {
        let key = format!("tls{round}");
        let bytes = data(&key, hosts[from].name, 3 * MIB + round);
        publish(&hosts[from].pool(), &key, &bytes).unwrap();
        let seen = hosts[to].pool().join(&key);
        poll("the key published on the other host to appear", || {
            seen.exists().then_some(())
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&seen).unwrap(),
            bytes,
            "{key} written on {} and read on {}",
            hosts[from].name,
            hosts[to].name
        );
    }
    // The cluster CLI reads the same tls section.
    let (ok, text) = hosts[0].cluster_cmd(&["status"]);
    assert!(ok, "cluster status over TLS failed:\n{text}");
    assert!(
        text.contains("node-a") && text.contains("node-b"),
        "cluster status names both live hosts:\n{text}"
    );
    // A reload re-reads the TLS files: unchanged, nothing to say; changed (a renewed
    // certificate), it says a restart is needed.
    let reload = || hosts[0].world.request(r#"{"cmd":"reload"}"#).to_string();
    let reply = reload();
    assert!(
        reply.contains("no change") && !reply.contains("TLS files changed"),
        "{reply}"
    );
    let mut cert = std::fs::read(pki.path("client.pem")).unwrap();
    cert.extend(b"\n");
    std::fs::write(pki.path("client.pem"), cert).unwrap();
    let reply = reload();
    assert!(
        reply.contains("the cluster section or its TLS files changed")
            && reply.contains("after a restart"),
        "{reply}"
    );
    for h in &mut hosts {
        h.stop();
    }
}

#[test]
fn a_host_that_does_not_trust_etcd_or_has_no_client_certificate_is_refused() {
    if !can_run_daemon() {
        return;
    }
    let pki = Pki::new();
    let (etcd, dev) = (Etcd::start(&pki), Device::new());
    let endpoint = format!("etcd at {}", etcd.url);

    // Trusting a CA that did not sign etcd's certificate.
    let tls = format!(
        "{{ca: {}, cert: {}, key: {}}}",
        pki.path("other-ca.pem").display(),
        pki.path("client.pem").display(),
        pki.path("client-key.pem").display()
    );
    let stranger = Host::new("node-x", &dev, &etcd, &tls);
    let (ok, log) = stranger.spawn(&dev).exit();
    assert!(
        !ok,
        "a host that does not trust etcd must not start:\n{log}"
    );
    assert!(
        log.contains(&endpoint)
            && log.contains("the etcd server's certificate was not trusted")
            && log.contains("cluster.tls.ca"),
        "the error names the endpoint and the untrusted certificate:\n{log}"
    );
    let (ok, text) = stranger.cluster_cmd(&["status"]);
    assert!(!ok, "cluster status must fail:\n{text}");
    assert!(
        text.contains(&endpoint) && text.contains("certificate was not trusted"),
        "cluster status says why:\n{text}"
    );

    // The right CA, but no client certificate for etcd's --client-cert-auth.
    let tls = format!("{{ca: {}}}", pki.path("ca.pem").display());
    let anonymous = Host::new("node-y", &dev, &etcd, &tls);
    let (ok, log) = anonymous.spawn(&dev).exit();
    assert!(
        !ok,
        "a host without a client certificate must not start:\n{log}"
    );
    assert!(
        log.contains(&endpoint) && log.contains("needs a client certificate"),
        "the error names the endpoint and the missing client certificate:\n{log}"
    );
    let (ok, text) = anonymous.cluster_cmd(&["status"]);
    assert!(!ok, "cluster status must fail:\n{text}");
    assert!(
        text.contains(&endpoint) && text.contains("needs a client certificate"),
        "cluster status says why:\n{text}"
    );
}

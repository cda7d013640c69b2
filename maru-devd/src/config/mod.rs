//! The YAML configuration: schema, parsing with file:line:col errors, the embedded default,
//! and the checks against the host that turn it into a [`Plan`](crate::plan::Plan).

pub mod locate;
mod parse;
pub mod size;
mod suggest;
pub mod tls;
mod validate;
mod yaml;

use locate::{locate, Seg};
use size::SizeSpec;
use std::fmt;
use std::path::{Path, PathBuf};

pub use validate::validate;

/// Where the FUSE filesystem is mounted when the config does not say.
pub const DEFAULT_MOUNT: &str = "/mnt/maru";
/// Permission bits of a pool directory when the config does not say: everyone may create,
/// publish and read; the sticky bit keeps users from removing each other's chunks.
pub const DEFAULT_MODE: u32 = 0o1777;
/// The embedded default pool's size cap (see [`embedded_size`]).
pub const EMBEDDED_MAX: u64 = 1 << 30;

/// A parsed configuration, before it is checked against the host.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the filesystem is mounted.
    pub mount: PathBuf,
    /// The pools, in file order.
    pub pools: Vec<PoolSpec>,
    /// The cluster shared pools are coordinated through (`cluster:`).
    pub cluster: Option<ClusterSpec>,
    /// Where the Prometheus endpoint listens (`metrics:`); `None`: no endpoint.
    pub metrics: Option<MetricsSpec>,
}

/// The `metrics:` section: where the Prometheus text endpoint (`GET /metrics`) listens.
/// At least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSpec {
    /// A loopback TCP address (`127.0.0.1:9464`, `[::1]:9464`).
    pub listen: Option<std::net::SocketAddr>,
    /// A unix stream socket path (mode 0666: anyone on the host may scrape).
    pub socket: Option<PathBuf>,
}

/// The `cluster:` section: where etcd is and who this host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// etcd endpoints (`http://HOST:PORT`).
    pub etcd: Vec<String>,
    /// This host's name in the cluster (default: the host name).
    pub host: Option<String>,
    /// TTL of the host's etcd lease in seconds (default 10).
    pub lease_ttl_s: u64,
    /// etcd user, when authentication is on.
    pub user: Option<String>,
    /// File holding the etcd user's password (read at start).
    pub password_file: Option<PathBuf>,
    /// TLS to etcd (`https://` endpoints).
    pub tls: Option<TlsSpec>,
}

/// `cluster.tls`: the PEM files for TLS to etcd, read at start (before privileges
/// are dropped) and checked by `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// The CA that signed the etcd servers' certificates.
    pub ca: PathBuf,
    /// This host's client certificate and its key, when etcd asks for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One pool as written in the file.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Position in the `pools:` list (to point at it in errors).
    pub index: usize,
    /// Directory name under the mount.
    pub name: String,
    /// Where its pages come from.
    pub source: SourceSpec,
    /// How big it is.
    pub size: SizeSpec,
    /// Owner of the pool directory (default root).
    pub owner: Option<IdSpec>,
    /// Group of the pool directory (default root).
    pub group: Option<IdSpec>,
    /// Permission bits of the pool directory.
    pub mode: u32,
    /// What happens when the pool is full.
    pub eviction: Eviction,
    /// Largest chunk a writer may size (`ftruncate` above fails with EFBIG).
    pub max_chunk_size: Option<u64>,
    /// Notes for the plan (a size written in decimal units), shown as warnings.
    pub notes: Vec<String>,
    /// Served by several hosts at once through the cluster (devdax pools only).
    pub shared: bool,
}

/// A memory source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// CXL (or any) memory online as system RAM on a NUMA node; a private tmpfs bound to it.
    Numa {
        /// The node, or `auto`.
        node: NodeSel,
        /// Opt-in: turn this devdax CXL device into system RAM (ZONE_NORMAL) first.
        reconfigure_devdax: Option<String>,
    },
    /// A byte range of a device-dax character device, holding the pool's own header, index
    /// and chunk extents (see docs/devdax.md).
    Devdax(DevdaxSpec),
}

/// The `devdax` source as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevdaxSpec {
    /// Which device.
    pub select: DaxSel,
    /// Byte offset of the pool in the device (default 0).
    pub offset: u64,
    /// Bytes of the device the pool uses (default: to the end of the device).
    pub length: Option<u64>,
    /// Whether a blank range may be formatted as a new pool.
    pub format: DevdaxFormat,
    /// Check the data checksums of published chunks when the pool is opened.
    pub verify_data: bool,
    /// How long the owner lease's heartbeat may stand still before its holder counts
    /// as gone, in milliseconds (default 5000).
    pub lease_timeout_ms: u64,
    /// Whether the hosts' CPU caches are coherent (`coherence:`, default: not).
    pub coherence: Coherence,
}

/// How a `devdax` source names its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaxSel {
    /// A DAX device: its name (`dax0.0`), or a path whose file name is it (`/dev/dax0.0`; any
    /// other directory is used as the device node as is, e.g. a stand-in file in tests).
    Device(String),
    /// The DAX device of this CXL region (`region0`).
    Region(String),
    /// The DAX device whose CXL region uses the memory device with this serial number.
    MemdevSerial(u64),
}

/// `format:` of a devdax source, maru-fs's own type: `if-blank` (default) is
/// [`DevdaxFormat::IfBlank`], `never` is [`DevdaxFormat::Never`].
pub use maru_fs::devdax::FormatPolicy as DevdaxFormat;

/// `coherence:` of a devdax source, maru-fs's own type: `none` (default) or `hardware`.
pub use maru_fs::devdax::Coherence;

/// A NUMA node as the config selects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSel {
    /// A CXL-backed CPU-less node if there is one, else node 0.
    Auto,
    /// This node.
    Id(u32),
}

/// A user or group, by name or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// Looked up in the passwd/group database.
    Name(String),
    /// Taken as is.
    Id(u32),
}

/// `eviction:` of a pool, maru-fs's own type: `lru` (default) or `none` (a full pool
/// answers ENOSPC).
pub use maru_fs::Eviction;

/// A problem tied to a node of the document (resolved to a position by [`ConfigError`]).
#[derive(Debug, Clone)]
pub struct Diag {
    /// Path to the offending node; empty = the document.
    pub path: Vec<Seg>,
    /// What is wrong and what would be right.
    pub msg: String,
}

/// A config problem with its place: `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line and column.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and what would be right.
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.msg)
    }
}

/// All problems of one file, one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config file's text, kept to point into it.
pub struct Source {
    /// The file name as the user gave it.
    pub file: String,
    /// Its contents.
    pub text: String,
}

impl Source {
    /// Reads a config file.
    pub fn read(path: &Path) -> anyhow::Result<Source> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "cannot read config file {} (start from examples/maru.yaml; docs/config.md has every key)",
                    path.display()
                )
            })?;
        Ok(Source {
            file: path.display().to_string(),
            // Editors on Windows start UTF-8 files with a byte order mark; YAML would take
            // it for content ("more than one document").
            text: match text.strip_prefix('\u{feff}') {
                Some(rest) => rest.to_string(),
                None => text,
            },
        })
    }

    /// Every line whose indentation holds a tab, as an error at the first tab: YAML
    /// indents with spaces only, and the scanner's own message does not say so.
    fn tab_errors(&self) -> Vec<ConfigError> {
        self.text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let indent: String = line
                    .chars()
                    .take_while(|c| *c == ' ' || *c == '\t')
                    .collect();
                let has_content = line.len() > indent.len();
                let col = indent.chars().position(|c| c == '\t')? + 1;
                has_content.then(|| ConfigError {
                    file: self.file.clone(),
                    line: i + 1,
                    col,
                    msg: "a tab in the indentation; YAML indents with spaces only: replace the tab with spaces, lining the key up with its siblings".into(),
                })
            })
            .collect()
    }

    /// Turns problems into positioned errors (position 1:1 when a node cannot be found).
    pub fn errors(&self, diags: Vec<Diag>) -> ConfigErrors {
        ConfigErrors(
            diags
                .into_iter()
                .map(|d| {
                    let pos = if d.path.is_empty() {
                        None
                    } else {
                        locate(&self.text, &d.path)
                    };
                    let (line, col) = pos.map_or((1, 1), |p| (p.line, p.col));
                    ConfigError {
                        file: self.file.clone(),
                        line,
                        col,
                        msg: d.msg,
                    }
                })
                .collect(),
        )
    }

    /// Parses the text into a [`Config`] (structure and syntax only).
    pub fn parse(&self) -> Result<Config, ConfigErrors> {
        let doc = yaml::from_str(&self.text).map_err(|e| {
            let tabs = self.tab_errors();
            if !tabs.is_empty() {
                return ConfigErrors(tabs);
            }
            let (line, col) = locate::position(&e).map_or((1, 1), |p| (p.line, p.col));
            let msg = locate::message(&e);
            let duplicate = duplicate_key(&msg)
                .and_then(|key| Some((key, first_key(&self.text, line, col, key)?)));
            let msg = match duplicate {
                Some((key, first)) => {
                    format!("duplicate key `{key}` (first at line {first}); keep only one of them")
                }
                None => format!("YAML syntax error: {msg}"),
            };
            ConfigErrors(vec![ConfigError {
                file: self.file.clone(),
                line,
                col,
                msg,
            }])
        })?;
        parse::parse(&doc).map_err(|d| self.errors(d))
    }
}

/// The key of serde-saphyr's "duplicate mapping key: K, set DuplicateKeyPolicy ..." message.
fn duplicate_key(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("duplicate mapping key: ")?;
    Some(&rest[..rest.find(", set DuplicateKeyPolicy")?])
}

/// For a duplicated `key:` at `line`:`col` (1-based) of a block mapping, the line of its first
/// occurrence: the nearest `key:` above at that column, within the same mapping (the search
/// stops at a line indented less, its parent).
fn first_key(text: &str, line: usize, col: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    for i in (0..line.checked_sub(1)?).rev() {
        let l = lines.get(i)?;
        let body = l.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = l.len() - body.len();
        if indent < col - 1 {
            return None;
        }
        if indent == col - 1 && body.strip_prefix(key)?.trim_start().starts_with(':') {
            return Some(i + 1);
        }
    }
    None
}

/// The embedded default pool's size: min(1 GiB, 10% of node 0's memory), rounded down to a
/// MiB, at least 64 MiB (or all of node 0 if it is smaller than that).
pub fn embedded_size(node0_mem_total: u64) -> u64 {
    let tenth = node0_mem_total / 10;
    let size = EMBEDDED_MAX.min(tenth) & !((1 << 20) - 1);
    size.max((64 << 20).min(node0_mem_total))
}

/// The configuration used when `run` gets no `--config`: one pool `default` on node 0,
/// sized by [`embedded_size`], mode 1777, LRU eviction, mounted at [`DEFAULT_MOUNT`].
pub fn embedded(node0_mem_total: u64) -> Config {
    Config {
        mount: PathBuf::from(DEFAULT_MOUNT),
        pools: vec![PoolSpec {
            index: 0,
            name: "default".into(),
            source: SourceSpec::Numa {
                node: NodeSel::Id(0),
                reconfigure_devdax: None,
            },
            size: SizeSpec::Bytes(embedded_size(node0_mem_total)),
            owner: None,
            group: None,
            mode: DEFAULT_MODE,
            eviction: Eviction::Lru,
            max_chunk_size: None,
            notes: Vec::new(),
            shared: false,
        }],
        cluster: None,
        metrics: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source {
            file: "t.yaml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn parses_a_full_pool() {
        let cfg = src("mount: /mnt/x\npools:\n  - name: kv\n    source: {numa: {node: 1}}\n    size: 2GiB\n    owner: root\n    group: 0\n    mode: \"0770\"\n    eviction: none\n    max_chunk_size: 64MiB\n")
            .parse()
            .unwrap();
        assert_eq!(cfg.mount, PathBuf::from("/mnt/x"));
        let p = &cfg.pools[0];
        assert_eq!(p.name, "kv");
        assert_eq!(
            p.source,
            SourceSpec::Numa {
                node: NodeSel::Id(1),
                reconfigure_devdax: None
            }
        );
        assert_eq!(p.size, SizeSpec::Bytes(2 << 30));
        assert_eq!(p.owner, Some(IdSpec::Name("root".into())));
        assert_eq!(p.group, Some(IdSpec::Id(0)));
        assert_eq!(p.mode, 0o770);
        assert_eq!(p.eviction, Eviction::None);
        assert_eq!(p.max_chunk_size, Some(64 << 20));
    }

    #[test]
    fn parses_a_tls_cluster_section() {
        let cfg = src("pools:\n  - {name: a, source: {numa: {}}, size: 10%}\ncluster:\n  etcd: [https://10.0.0.1:2379, https://10.0.0.2:2379]\n  tls: {ca: /e/ca.pem, cert: /e/c.pem, key: /e/k.pem}\n")
            .parse()
            .unwrap();
        let c = cfg.cluster.unwrap();
        assert_eq!(c.etcd.len(), 2);
        assert_eq!(
            c.tls,
            Some(TlsSpec {
                ca: "/e/ca.pem".into(),
                client: Some(("/e/c.pem".into(), "/e/k.pem".into())),
            })
        );
        let cfg = src("pools:\n  - {name: a, source: {numa: {}}, size: 10%}\ncluster:\n  etcd: [https://10.0.0.1:2379]\n  tls: {ca: /e/ca.pem}\n")
            .parse()
            .unwrap();
        assert_eq!(cfg.cluster.unwrap().tls.unwrap().client, None);
    }

    #[test]
    fn defaults_apply() {
        let cfg = src("pools:\n  - {name: a, source: {numa: {}}, size: 10%}\n")
            .parse()
            .unwrap();
        assert_eq!(cfg.mount, PathBuf::from(DEFAULT_MOUNT));
        let p = &cfg.pools[0];
        assert_eq!(
            p.source,
            SourceSpec::Numa {
                node: NodeSel::Auto,
                reconfigure_devdax: None
            }
        );
        assert_eq!(p.mode, DEFAULT_MODE);
        assert_eq!(p.eviction, Eviction::Lru);
        assert_eq!(p.size, SizeSpec::Percent(10));
    }

    #[test]
    fn reports_every_problem_with_its_place() {
        let e = src(
            "pools:\n  - name: a\n    sise: 1GiB\n    source: {numa: {node: 0}}\n    mode: 777\n",
        )
        .parse()
        .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert!(
            lines[0]
                .starts_with("t.yaml:3:5: unknown key `sise` in pool `a`; did you mean `size`?"),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("t.yaml:2:5: pool `a` has no `size`")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("t.yaml:5:11: `mode` must be a quoted octal string")),
            "{lines:?}"
        );
    }

    #[test]
    fn embedded_rule() {
        assert_eq!(embedded_size(24 << 30), 1 << 30);
        assert_eq!(embedded_size(4 << 30), 409 << 20);
        assert_eq!(embedded_size(256 << 20), 64 << 20);
        assert_eq!(embedded_size(32 << 20), 32 << 20);
    }
}

//! Structural pass: YAML text -> [`Config`], with every problem tied to a path in the document.

use super::locate::Seg;
use super::size::{decimal_note, parse_bytes, parse_size, SizeSpec, SIZE_HINT};
use super::suggest::hint;
use super::yaml::{Mapping, Value};
use super::{
    ClusterSpec, Coherence, Config, DaxSel, DevdaxFormat, DevdaxSpec, Diag, Eviction, IdSpec,
    MetricsSpec, NodeSel, PoolSpec, SourceSpec, TlsSpec, DEFAULT_MODE, DEFAULT_MOUNT,
};
use maru_proto::name::{is_staging, NAME_MAX};
use std::path::PathBuf;

const TOP_KEYS: &[&str] = &["mount", "pools", "cluster", "metrics"];
const METRICS_KEYS: &[&str] = &["listen", "socket"];
const CLUSTER_KEYS: &[&str] = &["etcd", "host", "lease_ttl", "user", "password_file", "tls"];
const TLS_KEYS: &[&str] = &["ca", "cert", "key"];
const POOL_KEYS: &[&str] = &[
    "name",
    "source",
    "size",
    "owner",
    "group",
    "mode",
    "eviction",
    "max_chunk_size",
    "shared",
];
const SOURCES: &[&str] = &["numa", "devdax"];
const NUMA_KEYS: &[&str] = &["node", "reconfigure_devdax"];
const DEVDAX_KEYS: &[&str] = &[
    "device",
    "region",
    "memdev_serial",
    "offset",
    "length",
    "format",
    "verify_data",
    "lease_timeout",
    "coherence",
];
const DEVDAX_SELECTORS: &[&str] = &["device", "region", "memdev_serial"];
const FORMATS: &[&str] = &["if-blank", "never"];
const EVICTIONS: &[&str] = &["lru", "none"];

/// Default `lease_timeout` of a devdax source (5 s).
const DEFAULT_LEASE_TIMEOUT_MS: u64 = 5000;

/// A duration in milliseconds: a number of seconds, or a string `N`, `Ns` or `Nms`.
fn parse_duration_ms(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|s| s.checked_mul(1000)),
        Value::String(s) => {
            let s = s.trim();
            if let Some(ms) = s.strip_suffix("ms") {
                ms.trim().parse().ok()
            } else {
                s.strip_suffix('s')
                    .unwrap_or(s)
                    .trim()
                    .parse::<u64>()
                    .ok()?
                    .checked_mul(1000)
            }
        }
        _ => None,
    }
}

/// Walks a parsed document. Returns the config if no problem was found, else every problem.
pub fn parse(doc: &Value) -> Result<Config, Vec<Diag>> {
    let mut p = Parser {
        diags: Vec::new(),
        notes: Vec::new(),
    };
    let cfg = p.top(doc);
    match cfg {
        Some(cfg) if p.diags.is_empty() => Ok(cfg),
        _ => Err(p.diags),
    }
}

struct Parser {
    diags: Vec<Diag>,
    /// Notes about the pool being parsed (decimal units), moved into its [`PoolSpec`].
    notes: Vec<String>,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

/// A scalar as the user wrote it, for messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

/// A YAML number that fits a u32.
fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn key_name(k: &Value) -> String {
    show(k)
}

fn at(path: &[Seg], next: Seg) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(next);
    p
}

fn val(k: &str) -> Seg {
    Seg::Value(k.to_string())
}

impl Parser {
    fn err(&mut self, path: Vec<Seg>, msg: String) {
        self.diags.push(Diag { path, msg });
    }

    /// Reports keys of `map` not in `allowed`, with a suggestion.
    fn unknown_keys(&mut self, map: &Mapping, path: &[Seg], allowed: &[&str], what: &str) {
        for k in map.keys() {
            let name = key_name(k);
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let hint = hint(&name, allowed);
            self.err(
                at(path, Seg::Key(name.clone())),
                format!(
                    "unknown key `{name}` in {what}; {hint}(valid keys: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn top(&mut self, doc: &Value) -> Option<Config> {
        let Value::Mapping(map) = doc else {
            self.err(
                vec![],
                format!(
                    "the config must be a mapping with the keys `mount` and `pools`; found {}",
                    kind(doc)
                ),
            );
            return None;
        };
        self.unknown_keys(map, &[], TOP_KEYS, "the config");
        let mount = match map.get("mount") {
            None => PathBuf::from(DEFAULT_MOUNT),
            Some(Value::String(s)) if s.starts_with('/') => PathBuf::from(s),
            Some(v) => {
                self.err(
                    vec![val("mount")],
                    format!(
                        "`mount` must be an absolute path such as {DEFAULT_MOUNT}; found `{}`",
                        show(v)
                    ),
                );
                PathBuf::from(DEFAULT_MOUNT)
            }
        };
        let pools = match map.get("pools") {
            None => {
                self.err(
                    vec![],
                    "the config has no `pools:` list; add one, e.g. `pools: [{name: kv, source: {numa: {node: 0}}, size: 1GiB}]`".into(),
                );
                Vec::new()
            }
            Some(Value::Sequence(items)) if items.is_empty() => {
                self.err(
                    vec![val("pools")],
                    "`pools` is empty; list at least one pool (name, source, size)".into(),
                );
                Vec::new()
            }
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.pool(i, item))
                .collect(),
            Some(v) => {
                self.err(
                    vec![val("pools")],
                    format!(
                        "`pools` must be a list of pools (items starting with `- name:`); found {}",
                        kind(v)
                    ),
                );
                Vec::new()
            }
        };
        let cluster = map
            .get("cluster")
            .and_then(|v| self.cluster(v, &[val("cluster")]));
        let metrics = map
            .get("metrics")
            .and_then(|v| self.metrics(v, &[val("metrics")]));
        Some(Config {
            mount,
            pools,
            cluster,
            metrics,
        })
    }

    fn metrics(&mut self, v: &Value, path: &[Seg]) -> Option<MetricsSpec> {
        let Value::Mapping(map) = v else {
            self.err(
                path.to_vec(),
                format!(
                    "`metrics` must be a mapping like `{{listen: 127.0.0.1:9464}}` or `{{socket: /run/maru/metrics.sock}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, path, METRICS_KEYS, "the metrics section");
        let listen = match map.get("listen") {
            None => None,
            Some(v) => {
                let text = match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                };
                match text.map(str::parse::<std::net::SocketAddr>) {
                    Some(Ok(addr)) if addr.ip().is_loopback() && addr.port() != 0 => Some(addr),
                    Some(Ok(addr)) if addr.port() == 0 => {
                        self.err(
                            at(path, val("listen")),
                            format!("`listen` needs a fixed port for Prometheus to scrape, e.g. `127.0.0.1:9464`; found `{addr}`"),
                        );
                        None
                    }
                    Some(Ok(addr)) => {
                        self.err(
                            at(path, val("listen")),
                            format!("`listen` must be a loopback address (127.0.0.1 or [::1]): the endpoint has no authentication; found `{addr}` (scrape it through a proxy, or use `socket:`)"),
                        );
                        None
                    }
                    _ => {
                        self.err(
                            at(path, val("listen")),
                            format!(
                                "`listen` is a loopback address and port like `127.0.0.1:9464` or `[::1]:9464`; found `{}`",
                                show(v)
                            ),
                        );
                        None
                    }
                }
            }
        };
        let socket = match map.get("socket") {
            None => None,
            Some(Value::String(s)) if s.starts_with('/') => Some(PathBuf::from(s)),
            Some(v) => {
                self.err(
                    at(path, val("socket")),
                    format!(
                        "`socket` must be an absolute path such as /run/maru/metrics.sock; found `{}`",
                        show(v)
                    ),
                );
                None
            }
        };
        if self.diags.len() > before {
            return None;
        }
        if listen.is_none() && socket.is_none() {
            self.err(
                path.to_vec(),
                "the metrics section needs `listen:` (e.g. 127.0.0.1:9464) or `socket:` (e.g. /run/maru/metrics.sock), or both".into(),
            );
            return None;
        }
        Some(MetricsSpec { listen, socket })
    }

    fn cluster(&mut self, v: &Value, path: &[Seg]) -> Option<ClusterSpec> {
        let Value::Mapping(map) = v else {
            self.err(
                path.to_vec(),
                format!(
                    "`cluster` must be a mapping like `{{etcd: [http://10.0.0.1:2379], host: node-a}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, path, CLUSTER_KEYS, "the cluster section");
        let etcd = match map.get("etcd") {
            Some(Value::Sequence(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                        Some(s.clone())
                    }
                    other => {
                        self.err(
                            at(&at(path, val("etcd")), Seg::Index(i)),
                            format!(
                                "an etcd endpoint is a URL like `http://10.0.0.1:2379` or `https://10.0.0.1:2379`; found `{}`",
                                show(other)
                            ),
                        );
                        None
                    }
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => {
                self.err(
                    path.to_vec(),
                    "the cluster section needs `etcd:`, the list of etcd endpoints, e.g. `etcd: [http://10.0.0.1:2379]`".into(),
                );
                Vec::new()
            }
        };
        let host = match map.get("host") {
            None => None,
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= 63
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                Some(s.clone())
            }
            Some(v) => {
                self.err(
                    at(path, val("host")),
                    format!(
                        "`host` is this host's name in the cluster: letters, digits, `-`, `_`, `.`, at most 63; found `{}`",
                        show(v)
                    ),
                );
                None
            }
        };
        let lease_ttl_s = match map.get("lease_ttl") {
            None => 10,
            Some(v) => match parse_duration_ms(v) {
                Some(ms) if (2000..=600_000).contains(&ms) => ms / 1000,
                _ => {
                    self.err(
                        at(path, val("lease_ttl")),
                        format!(
                            "`lease_ttl` is how long a host that cannot reach etcd stays in the cluster: seconds like `10` or `10s`, from 2s to 10min; found `{}`",
                            show(v)
                        ),
                    );
                    10
                }
            },
        };
        let text = |this: &mut Self, key: &str| match map.get(key) {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(v) => {
                this.err(
                    at(path, val(key)),
                    format!("`{key}` must be a non-empty string; found `{}`", show(v)),
                );
                None
            }
        };
        let user = text(self, "user");
        let password_file = text(self, "password_file").map(PathBuf::from);
        let tls = map
            .get("tls")
            .and_then(|v| self.tls(v, &at(path, val("tls"))));
        self.schemes(&etcd, map.get("tls").is_some(), path);
        if self.diags.len() > before {
            return None;
        }
        Some(ClusterSpec {
            etcd,
            host,
            lease_ttl_s,
            user,
            password_file,
            tls,
        })
    }

    /// The endpoints' schemes agree with each other and with `tls:`.
    fn schemes(&mut self, etcd: &[String], tls: bool, path: &[Seg]) {
        let https = etcd.iter().filter(|e| e.starts_with("https://")).count();
        if https > 0 && https < etcd.len() {
            self.err(
                at(path, val("etcd")),
                "the etcd endpoints mix http:// and https://: write every endpoint as https:// (with `tls:`) or every one as http://".into(),
            );
        } else if https > 0 && !tls {
            self.err(
                at(path, val("etcd")),
                "https:// endpoints need `tls: {ca: /etc/maru/etcd-ca.pem}`, the CA that signed the etcd servers' certificates (and `cert:` and `key:` when etcd asks for client certificates)".into(),
            );
        } else if https == 0 && tls && !etcd.is_empty() {
            self.err(
                at(path, val("tls")),
                "`tls` is for https:// endpoints, and the etcd endpoints are http://: write them as https://, or remove `tls`".into(),
            );
        }
    }

    /// `cluster.tls`: the CA, and the client certificate and key (both or neither).
    fn tls(&mut self, v: &Value, path: &[Seg]) -> Option<TlsSpec> {
        let Value::Mapping(map) = v else {
            self.err(
                path.to_vec(),
                format!(
                    "`tls` must be a mapping like `{{ca: /etc/maru/etcd-ca.pem, cert: /etc/maru/client.pem, key: /etc/maru/client-key.pem}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, path, TLS_KEYS, "the tls section");
        let mut file = |key: &str| match map.get(key) {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(v) => {
                self.err(
                    at(path, val(key)),
                    format!(
                        "`{key}` must be the path of a PEM file; found `{}`",
                        show(v)
                    ),
                );
                None
            }
        };
        let (ca, cert, key) = (file("ca"), file("cert"), file("key"));
        match (&cert, &key) {
            (Some(_), None) => self.err(
                at(path, val("cert")),
                "`cert` needs `key`, the client certificate's private key (PEM)".into(),
            ),
            (None, Some(_)) => self.err(
                at(path, val("key")),
                "`key` needs `cert`, the client certificate it belongs to (PEM)".into(),
            ),
            _ => {}
        }
        let Some(ca) = ca else {
            if map.get("ca").is_none() {
                self.err(
                    path.to_vec(),
                    "the tls section needs `ca:`, the PEM file of the CA that signed the etcd servers' certificates".into(),
                );
            }
            return None;
        };
        if self.diags.len() > before {
            return None;
        }
        Some(TlsSpec {
            ca,
            client: cert.zip(key),
        })
    }

    fn pool(&mut self, index: usize, item: &Value) -> Option<PoolSpec> {
        let path = vec![val("pools"), Seg::Index(index)];
        let Value::Mapping(map) = item else {
            self.err(
                path,
                format!(
                    "pool #{} must be a mapping with `name`, `source` and `size`; found {}",
                    index + 1,
                    kind(item)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.notes.clear();
        let what = match map.get("name") {
            Some(Value::String(n)) => format!("pool `{n}`"),
            _ => format!("pool #{}", index + 1),
        };
        self.unknown_keys(map, &path, POOL_KEYS, &what);
        let name = self.pool_name(map, &path, index);
        let source = match map.get("source") {
            Some(v) => self.source(v, &at(&path, val("source"))),
            None => {
                self.err(
                    path.clone(),
                    format!("{what} has no `source`; add e.g. `source: {{numa: {{node: 0}}}}`"),
                );
                None
            }
        };
        let size = match map.get("size") {
            Some(v) => self.size(v, &at(&path, val("size"))),
            None => {
                self.err(
                    path.clone(),
                    format!("{what} has no `size`; add e.g. `size: 1GiB` or `size: 25%`"),
                );
                None
            }
        };
        let owner = self.id(map, &path, "owner");
        let group = self.id(map, &path, "group");
        let mode = self.mode(map, &path);
        let eviction = match map.get("eviction") {
            None => Eviction::Lru,
            Some(Value::String(s)) if s == "lru" => Eviction::Lru,
            Some(Value::String(s)) if s == "none" => Eviction::None,
            Some(v) => {
                let got = show(v);
                let hint = hint(&got, EVICTIONS);
                self.err(
                    at(&path, val("eviction")),
                    format!("unknown eviction policy `{got}`; {hint}(valid: lru, none)"),
                );
                Eviction::Lru
            }
        };
        let max_chunk_size = match map.get("max_chunk_size") {
            None => None,
            Some(v) => self.bytes(v, &at(&path, val("max_chunk_size")), "max_chunk_size"),
        };
        let shared = match map.get("shared") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.err(
                    at(&path, val("shared")),
                    format!("`shared` is true or false; found `{}`", show(v)),
                );
                false
            }
        };
        if self.diags.len() > before {
            return None;
        }
        Some(PoolSpec {
            index,
            name: name?,
            source: source?,
            size: size?,
            owner,
            group,
            mode,
            eviction,
            max_chunk_size,
            notes: std::mem::take(&mut self.notes),
            shared,
        })
    }

    fn pool_name(&mut self, map: &Mapping, path: &[Seg], index: usize) -> Option<String> {
        let v = match map.get("name") {
            Some(v) => v,
            None => {
                self.err(
                    path.to_vec(),
                    format!(
                        "pool #{} has no `name`; add e.g. `name: kv-cache`",
                        index + 1
                    ),
                );
                return None;
            }
        };
        let name = show(v);
        let ok = matches!(v, Value::String(_))
            && !name.is_empty()
            && name.len() <= NAME_MAX
            && !is_staging(name.as_bytes())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Some(name)
        } else {
            self.err(
                at(path, val("name")),
                format!(
                    "bad pool name `{name}`: it becomes a directory under the mount, so use letters, digits, `-`, `_` and `.` (not first), at most {NAME_MAX} bytes"
                ),
            );
            None
        }
    }

    fn source(&mut self, v: &Value, path: &[Seg]) -> Option<SourceSpec> {
        let one = match v {
            Value::Mapping(m) if m.len() == 1 => m.iter().next(),
            _ => None,
        };
        let Some((k, body)) = one else {
            self.err(
                path.to_vec(),
                format!(
                    "`source` must name exactly one memory source, like `{{numa: {{node: 0}}}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let name = key_name(k);
        match name.as_str() {
            "numa" => self.numa(body, &at(path, val("numa"))),
            "devdax" => self.devdax(body, &at(path, val("devdax"))),
            _ => {
                let hint = hint(&name, SOURCES);
                self.err(
                    at(path, Seg::Key(name.clone())),
                    format!("unknown memory source `{name}`; {hint}(supported: numa, devdax)"),
                );
                None
            }
        }
    }

    fn numa(&mut self, v: &Value, path: &[Seg]) -> Option<SourceSpec> {
        let Value::Mapping(map) = v else {
            self.err(
                path.to_vec(),
                format!(
                    "`numa` must be a mapping like `{{node: 0}}` or `{{node: auto}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, path, NUMA_KEYS, "the numa source");
        let node = match map.get("node") {
            None => NodeSel::Auto,
            Some(Value::String(s)) if s == "auto" => NodeSel::Auto,
            Some(v @ Value::Number(_)) if as_u32(v).is_some() => {
                NodeSel::Id(as_u32(v).unwrap_or_default())
            }
            Some(other) => {
                self.err(
                    at(path, val("node")),
                    format!(
                        "`node` must be a NUMA node number (0, 1, ...) or `auto`; found `{}`",
                        show(other)
                    ),
                );
                NodeSel::Auto
            }
        };
        let reconfigure_devdax = match map.get("reconfigure_devdax") {
            None => None,
            Some(Value::String(s)) if s.starts_with("dax") && s.len() > 3 => Some(s.clone()),
            Some(other) => {
                self.err(
                    at(path, val("reconfigure_devdax")),
                    format!(
                        "`reconfigure_devdax` names the DAX device to turn into system RAM, like `dax0.0`; found `{}`",
                        show(other)
                    ),
                );
                None
            }
        };
        (self.diags.len() == before).then_some(SourceSpec::Numa {
            node,
            reconfigure_devdax,
        })
    }

    fn devdax(&mut self, v: &Value, path: &[Seg]) -> Option<SourceSpec> {
        let Value::Mapping(map) = v else {
            self.err(
                path.to_vec(),
                format!(
                    "`devdax` must be a mapping like `{{device: dax0.0}}`; found {}",
                    kind(v)
                ),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, path, DEVDAX_KEYS, "the devdax source");
        let given: Vec<&str> = DEVDAX_SELECTORS
            .iter()
            .copied()
            .filter(|k| map.get(k).is_some())
            .collect();
        let select = match given.as_slice() {
            ["device"] => match map.get("device") {
                Some(Value::String(s)) if !s.is_empty() => Some(DaxSel::Device(s.clone())),
                other => {
                    self.err(
                        at(path, val("device")),
                        format!(
                            "`device` names the DAX device, like `dax0.0` or `/dev/dax0.0`; found `{}`",
                            other.map_or_else(String::new, show)
                        ),
                    );
                    None
                }
            },
            ["region"] => match map.get("region") {
                Some(Value::String(s)) if s.starts_with("region") => {
                    Some(DaxSel::Region(s.clone()))
                }
                other => {
                    self.err(
                        at(path, val("region")),
                        format!(
                            "`region` names a CXL region, like `region0`; found `{}`",
                            other.map_or_else(String::new, show)
                        ),
                    );
                    None
                }
            },
            ["memdev_serial"] => match map.get("memdev_serial").and_then(Value::as_u64) {
                Some(n) => Some(DaxSel::MemdevSerial(n)),
                None => {
                    self.err(
                        at(path, val("memdev_serial")),
                        "`memdev_serial` is the serial number of a CXL memory device, like `4660`"
                            .into(),
                    );
                    None
                }
            },
            _ => {
                self.err(
                    path.to_vec(),
                    format!(
                        "the devdax source needs exactly one of `device`, `region`, `memdev_serial`; found {}",
                        if given.is_empty() {
                            "none".to_string()
                        } else {
                            given.join(", ")
                        }
                    ),
                );
                None
            }
        };
        let offset = match map.get("offset") {
            None => Some(0),
            Some(v) if v.as_u64() == Some(0) => Some(0),
            Some(v) => self.bytes(v, &at(path, val("offset")), "offset"),
        };
        let length = match map.get("length") {
            None => None,
            Some(v) => self.bytes(v, &at(path, val("length")), "length"),
        };
        let format = match map.get("format") {
            None => DevdaxFormat::IfBlank,
            Some(Value::String(s)) if s == "if-blank" => DevdaxFormat::IfBlank,
            Some(Value::String(s)) if s == "never" => DevdaxFormat::Never,
            Some(v) => {
                let got = show(v);
                let hint = hint(&got, FORMATS);
                self.err(
                    at(path, val("format")),
                    format!("unknown format policy `{got}`; {hint}(valid: if-blank, never; re-creating a pool is `maru-devd format-devdax`)"),
                );
                DevdaxFormat::IfBlank
            }
        };
        let verify_data = match map.get("verify_data") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.err(
                    at(path, val("verify_data")),
                    format!("`verify_data` is true or false; found `{}`", show(v)),
                );
                true
            }
        };
        let lease_timeout_ms = match map.get("lease_timeout") {
            None => DEFAULT_LEASE_TIMEOUT_MS,
            Some(v) => match parse_duration_ms(v) {
                Some(ms) if (100..=3_600_000).contains(&ms) => ms,
                _ => {
                    self.err(
                        at(path, val("lease_timeout")),
                        format!(
                            "`lease_timeout` is how long another daemon waits for this pool's owner heartbeat before calling the owner gone: seconds like `5`, `5s` or `500ms`, from 100ms to 1h; found `{}`",
                            show(v)
                        ),
                    );
                    DEFAULT_LEASE_TIMEOUT_MS
                }
            },
        };
        let coherence = match map.get("coherence") {
            None => Coherence::None,
            Some(Value::String(s)) if s == "none" => Coherence::None,
            Some(Value::String(s)) if s == "hardware" => Coherence::Hardware,
            Some(v) => {
                self.err(
                    at(path, val("coherence")),
                    format!("`coherence` is `none` (the default: chunks are written back from the CPU caches at publish and another host's chunks invalidated before reading) or `hardware` (the device keeps the hosts' caches coherent); found `{}`", show(v)),
                );
                Coherence::None
            }
        };
        if self.diags.len() > before {
            return None;
        }
        Some(SourceSpec::Devdax(DevdaxSpec {
            coherence,
            select: select?,
            offset: offset?,
            length,
            format,
            verify_data,
            lease_timeout_ms,
        }))
    }

    fn size(&mut self, v: &Value, path: &[Seg]) -> Option<SizeSpec> {
        let parsed = match v {
            Value::Number(n) => n.as_u64().map(SizeSpec::Bytes).ok_or_else(|| {
                format!("bad size `{n}`: sizes are whole, non-negative numbers; {SIZE_HINT}")
            }),
            Value::String(s) => {
                self.notes
                    .extend(decimal_note(s).map(|n| format!("size {n}")));
                parse_size(s)
            }
            other => Err(format!("bad size: found {}; {SIZE_HINT}", kind(other))),
        };
        match parsed {
            Ok(SizeSpec::Bytes(0)) => {
                self.err(path.to_vec(), "size must be greater than 0 bytes".into());
                None
            }
            Ok(s) => Some(s),
            Err(msg) => {
                self.err(path.to_vec(), msg);
                None
            }
        }
    }

    fn bytes(&mut self, v: &Value, path: &[Seg], what: &str) -> Option<u64> {
        let parsed = match v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("bad size `{n}` for {what}; {SIZE_HINT}")),
            Value::String(s) if s.trim_end().ends_with('%') => Err(format!(
                "{what} cannot be a percentage (`{s}`); {SIZE_HINT}"
            )),
            Value::String(s) => {
                self.notes
                    .extend(decimal_note(s).map(|n| format!("{what} {n}")));
                parse_bytes(s)
            }
            other => Err(format!(
                "bad size for {what}: found {}; {SIZE_HINT}",
                kind(other)
            )),
        };
        match parsed {
            Ok(0) => {
                self.err(
                    path.to_vec(),
                    format!("{what} must be greater than 0 bytes"),
                );
                None
            }
            Ok(b) => Some(b),
            Err(msg) => {
                self.err(path.to_vec(), msg);
                None
            }
        }
    }

    fn id(&mut self, map: &Mapping, path: &[Seg], key: &str) -> Option<IdSpec> {
        match map.get(key)? {
            Value::String(s) if !s.is_empty() => Some(IdSpec::Name(s.clone())),
            // u32::MAX is the kernel's "no id" (-1), not a usable owner
            v @ Value::Number(_) if as_u32(v).is_some_and(|id| id != u32::MAX) => {
                as_u32(v).map(IdSpec::Id)
            }
            other => {
                let what = if key == "owner" { "user" } else { "group" };
                self.err(
                    at(path, val(key)),
                    format!(
                        "`{key}` must be a {what} name or a numeric id; found `{}`",
                        show(other)
                    ),
                );
                None
            }
        }
    }

    fn mode(&mut self, map: &Mapping, path: &[Seg]) -> u32 {
        let v = match map.get("mode") {
            None => return DEFAULT_MODE,
            Some(v) => v,
        };
        let p = at(path, val("mode"));
        match v {
            Value::String(s) => {
                let ok = (3..=4).contains(&s.len()) && s.chars().all(|c| ('0'..='7').contains(&c));
                match u32::from_str_radix(s, 8) {
                    Ok(m) if ok => m,
                    _ => {
                        self.err(
                            p,
                            format!("bad mode `{s}`: use 3 or 4 octal digits, like \"0770\" or \"1777\""),
                        );
                        DEFAULT_MODE
                    }
                }
            }
            Value::Number(n) => {
                self.err(
                    p,
                    format!(
                        "`mode` must be a quoted octal string, like \"0770\"; the unquoted {n} is a YAML number and would not mean what it looks like"
                    ),
                );
                DEFAULT_MODE
            }
            other => {
                self.err(
                    p,
                    format!(
                        "`mode` must be a quoted octal string, like \"0770\"; found {}",
                        kind(other)
                    ),
                );
                DEFAULT_MODE
            }
        }
    }
}

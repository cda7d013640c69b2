//! Semantic pass: a parsed [`Config`] checked against the host, giving a [`Plan`].

use super::locate::Seg;
use super::size::SizeSpec;
use super::{Config, DaxSel, DevdaxSpec, Diag, IdSpec, NodeSel, PoolSpec, SourceSpec};
use crate::discover::model::DaxMode;
use crate::host::Host;
use crate::plan::{DevdaxPlan, Plan, PoolPlan};
use crate::units::human;
use std::collections::BTreeMap;

fn pool_path(p: &PoolSpec, rest: &[&str]) -> Vec<Seg> {
    let mut v = vec![Seg::Value("pools".into()), Seg::Index(p.index)];
    v.extend(rest.iter().map(|k| Seg::Value((*k).to_string())));
    v
}

fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `cfg` against `host`; every problem found is returned, each tied to its place.
pub fn validate(cfg: &Config, host: &Host) -> Result<Plan, Vec<Diag>> {
    let mut diags = Vec::new();
    let mut pools: Vec<(PoolPlan, &PoolSpec)> = Vec::new();
    let mut seen: BTreeMap<&str, &PoolSpec> = BTreeMap::new();
    for spec in &cfg.pools {
        if let Some(first) = seen.get(spec.name.as_str()) {
            diags.push(Diag {
                path: pool_path(spec, &["name"]),
                msg: format!(
                    "duplicate pool name `{}` (pool #{} has it too); every pool needs its own name",
                    spec.name,
                    first.index + 1
                ),
            });
            continue;
        }
        seen.insert(&spec.name, spec);
        if spec.shared {
            let why = match (&spec.source, &cfg.cluster) {
                (SourceSpec::Numa { .. }, _) => Some(
                    "only devdax pools can be shared between hosts: a numa pool is memory onlined as this kernel's RAM, and two kernels would hand out the same pages; use `source: {devdax: ...}`",
                ),
                (_, None) => Some(
                    "a shared pool needs a `cluster:` section naming the etcd endpoints, e.g. `cluster: {etcd: [http://10.0.0.1:2379]}`",
                ),
                _ => None,
            };
            if let Some(why) = why {
                diags.push(Diag {
                    path: pool_path(spec, &["shared"]),
                    msg: why.into(),
                });
                continue;
            }
        }
        if let Some(plan) = pool(spec, host, &mut diags) {
            pools.push((plan, spec));
        }
    }
    overcommit(&pools, host, &mut diags);
    devdax_overlaps(&pools, &mut diags);
    let cluster_tls = match cfg.cluster.as_ref().and_then(|c| c.tls.as_ref()) {
        Some(spec) => super::tls::load(spec).map_err(|d| diags.extend(d)).ok(),
        None => None,
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Plan {
        mount: cfg.mount.clone(),
        pools: pools.into_iter().map(|(p, _)| p).collect(),
        cluster: cfg.cluster.clone(),
        cluster_tls,
        metrics: cfg.metrics.clone(),
    })
}

/// Resolves the node and its capacity; `None` after pushing a diagnostic.
fn node_of(
    spec: &PoolSpec,
    host: &Host,
    diags: &mut Vec<Diag>,
    warnings: &mut Vec<String>,
) -> Option<(u32, String, u64)> {
    let SourceSpec::Numa {
        node,
        reconfigure_devdax,
    } = &spec.source
    else {
        return None;
    };
    let node_path = pool_path(spec, &["source", "numa", "node"]);
    if let Some(dev) = reconfigure_devdax {
        let dax_path = pool_path(spec, &["source", "numa", "reconfigure_devdax"]);
        let Some(d) = host.dax(dev) else {
            let names: Vec<String> = host.all_dax().map(|d| d.chardev.clone()).collect();
            let have = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            diags.push(Diag {
                path: dax_path,
                msg: format!("no DAX device `{dev}` on this host (DAX devices: {have}); name one of them or remove `reconfigure_devdax`"),
            });
            return None;
        };
        let Some(target) = d.target_node.and_then(|t| u32::try_from(t).ok()) else {
            diags.push(Diag {
                path: dax_path,
                msg: format!("DAX device `{dev}` has no target NUMA node, so it cannot become system RAM; remove `reconfigure_devdax`"),
            });
            return None;
        };
        if let NodeSel::Id(n) = node {
            if *n != target {
                diags.push(Diag {
                    path: node_path,
                    msg: format!("`{dev}` becomes NUMA node {target}, not node {n}; write `node: {target}` or `node: auto`"),
                });
                return None;
            }
        }
        let capacity = match d.mode {
            DaxMode::Devdax => d.size,
            DaxMode::SystemRam => host.node(target).and_then(|n| n.mem_total),
            ref other => {
                diags.push(Diag {
                    path: dax_path,
                    msg: format!("`{dev}` is {other}; reconfigure_devdax needs a device in devdax mode (bound to device_dax) or already system-ram"),
                });
                return None;
            }
        };
        return Some((target, format!("memory of {dev}"), capacity.unwrap_or(0)));
    }
    let (id, reason) = match node {
        NodeSel::Id(n) => (*n, "as configured".to_string()),
        NodeSel::Auto => match host.auto_node() {
            Some(n) => (n, "auto: CXL-backed node without CPUs".to_string()),
            None => {
                warnings.push(format!(
                    "pool `{}`: `node: auto` found no CXL-backed CPU-less node; using node 0 (ordinary DRAM)",
                    spec.name
                ));
                (
                    0,
                    "auto: no CXL node found, fell back to node 0".to_string(),
                )
            }
        },
    };
    let Some(n) = host.node(id) else {
        diags.push(Diag {
            path: node_path,
            msg: format!(
                "NUMA node {id} does not exist on this host (nodes: {}); use one of them or `auto`",
                list(&host.node_ids())
            ),
        });
        return None;
    };
    match n.mem_total {
        Some(m) if m > 0 => Some((id, reason, m)),
        _ => {
            diags.push(Diag {
                path: node_path,
                msg: format!("NUMA node {id} has no memory online; online its memory first or set `reconfigure_devdax` to the DAX device behind it"),
            });
            None
        }
    }
}

fn pool(spec: &PoolSpec, host: &Host, diags: &mut Vec<Diag>) -> Option<PoolPlan> {
    let before = diags.len();
    let mut warnings: Vec<String> = spec
        .notes
        .iter()
        .map(|n| format!("pool `{}`: {n}", spec.name))
        .collect();
    let uid = resolve_id(spec, "owner", diags);
    let gid = resolve_id(spec, "group", diags);
    let (node, node_reason, capacity, devdax, devices) = match &spec.source {
        SourceSpec::Numa { .. } => {
            let (node, reason, capacity) = node_of(spec, host, diags, &mut warnings)?;
            (node, reason, capacity, None, host.devices_for_node(node))
        }
        SourceSpec::Devdax(d) => {
            let (plan, devices) = devdax_of(spec, d, host, diags)?;
            let (node, reason) = match plan.target_node {
                Some(n) => (n, format!("memory of {}", plan.device)),
                None => (0, format!("{} names no target node", plan.device)),
            };
            let length = plan.length;
            (node, reason, length, Some(plan), devices)
        }
    };
    let from = match &devdax {
        None => format!("node {node}"),
        Some(d) => format!("the byte range of {}", d.device),
    };
    let size = match spec.size {
        SizeSpec::Bytes(b) => b,
        SizeSpec::Percent(p) => {
            let share = u128::from(capacity) * u128::from(p) / 100;
            u64::try_from(share).unwrap_or(u64::MAX) & !((1 << 20) - 1)
        }
    };
    if size == 0 {
        diags.push(Diag {
            path: pool_path(spec, &["size"]),
            msg: format!(
                "{} of {from}'s {} rounds down to 0 bytes; use a larger share or an absolute size",
                show_size(spec.size),
                human(capacity)
            ),
        });
    } else if size > capacity {
        diags.push(Diag {
            path: pool_path(spec, &["size"]),
            msg: format!(
                "pool `{}` asks for {} but {from} has only {}; lower `size` or give a percentage such as 50%",
                spec.name,
                human(size),
                human(capacity)
            ),
        });
    }
    if let Some(max) = spec.max_chunk_size {
        if size > 0 && max > size {
            diags.push(Diag {
                path: pool_path(spec, &["max_chunk_size"]),
                msg: format!(
                    "max_chunk_size {} is larger than the whole pool `{}`, {}; lower it or leave it out",
                    human(max),
                    spec.name,
                    human(size)
                ),
            });
        }
    }
    if let Some(n) = host.node(node).filter(|_| devdax.is_none()) {
        let movable = n.zones.get("Movable").copied().unwrap_or(0);
        if movable > 0 {
            warnings.push(movable_warning(
                &spec.name,
                node,
                movable,
                n.online_memblocks,
                &host.dax_for_node(node),
            ));
        }
    }
    if diags.len() > before {
        return None;
    }
    let reconfigure_devdax = match &spec.source {
        SourceSpec::Numa {
            reconfigure_devdax, ..
        } => reconfigure_devdax.clone(),
        SourceSpec::Devdax(_) => None,
    };
    let mut devdax = devdax;
    let mut eviction = spec.eviction;
    if let Some(d) = devdax.as_mut().filter(|_| spec.shared) {
        d.shared = true;
        if eviction == super::Eviction::Lru {
            eviction = super::Eviction::None;
            warnings.push(format!(
                "pool `{}`: shared pools do not evict yet (a key removed from a shared pool stays quarantined while other hosts may map it); a full pool answers ENOSPC",
                spec.name
            ));
        }
    }
    Some(PoolPlan {
        name: spec.name.clone(),
        node,
        node_reason,
        size,
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        mode: spec.mode,
        eviction,
        max_chunk_size: spec.max_chunk_size,
        reconfigure_devdax,
        devices,
        warnings,
        devdax,
    })
}

/// Resolves a devdax source: the device (in devdax mode), its geometry and the pool's byte
/// range; `None` after pushing a diagnostic. Also returns the devices the pool depends on.
fn devdax_of(
    spec: &PoolSpec,
    d: &DevdaxSpec,
    host: &Host,
    diags: &mut Vec<Diag>,
) -> Option<(DevdaxPlan, Vec<String>)> {
    let have = || {
        let names: Vec<String> = host
            .all_dax()
            .map(|d| format!("{} ({})", d.chardev, d.mode))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let (found, key, devnode) = match &d.select {
        DaxSel::Device(name) => {
            let path = std::path::Path::new(name);
            let chardev = path
                .file_name()
                .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
            // `/dev/dax0.0` and `dax0.0` name the same node; any other path is used as is
            // (a stand-in file for tests).
            let given = (path.is_absolute() && path.parent() != Some(std::path::Path::new("/dev")))
                .then(|| path.to_path_buf());
            (host.dax(&chardev), "device", given)
        }
        DaxSel::Region(r) => (host.dax_of_region(r), "region", None),
        DaxSel::MemdevSerial(n) => (host.dax_of_memdev_serial(*n), "memdev_serial", None),
    };
    let sel_path = pool_path(spec, &["source", "devdax", key]);
    let Some(dax) = found else {
        diags.push(Diag {
            path: sel_path,
            msg: format!(
                "no DAX device matches this {key} on this host (DAX devices: {}); see `maru-devd discover`",
                have()
            ),
        });
        return None;
    };
    let dev = &dax.chardev;
    if dax.mode != DaxMode::Devdax {
        diags.push(Diag {
            path: sel_path,
            msg: format!(
                "`{dev}` is {}, not devdax; put it back with `daxctl reconfigure-device --mode=devdax {dev}`, or serve it as system RAM with `source: {{numa: {{reconfigure_devdax: {dev}}}}}`",
                dax.mode
            ),
        });
        return None;
    }
    let (Some(size), align) = (dax.size, dax.align.unwrap_or(2 << 20)) else {
        diags.push(Diag {
            path: sel_path,
            msg: format!(
                "the size of `{dev}` cannot be read from sysfs; check `maru-devd discover`"
            ),
        });
        return None;
    };
    let range_path = |k: &str| pool_path(spec, &["source", "devdax", k]);
    let before = diags.len();
    if !d.offset.is_multiple_of(align) || d.offset >= size {
        diags.push(Diag {
            path: range_path("offset"),
            msg: format!(
                "offset {} must be a multiple of `{dev}`'s alignment {} and lie inside its {}",
                human(d.offset),
                human(align),
                human(size)
            ),
        });
    }
    let length = d
        .length
        .unwrap_or_else(|| size.saturating_sub(d.offset) / align * align);
    if let Some(l) = d.length {
        if l % align != 0 || d.offset.saturating_add(l) > size {
            diags.push(Diag {
                path: range_path("length"),
                msg: format!(
                    "length {} must be a multiple of `{dev}`'s alignment {} and end inside its {} (offset {})",
                    human(l),
                    human(align),
                    human(size),
                    human(d.offset)
                ),
            });
        }
    }
    if diags.len() > before {
        return None;
    }
    let plan = DevdaxPlan {
        device: dev.clone(),
        devnode: devnode
            .or_else(|| dax.devnode.clone())
            .unwrap_or_else(|| std::path::Path::new("/dev").join(dev)),
        sysfs_dir: host.sysfs_root().join("bus/dax/devices").join(dev),
        offset: d.offset,
        length,
        align,
        target_node: dax.target_node.and_then(|n| u32::try_from(n).ok()),
        format: d.format,
        verify_data: d.verify_data,
        lease_timeout: std::time::Duration::from_millis(d.lease_timeout_ms),
        shared: false,
        coherence: d.coherence,
    };
    Some((plan, host.devices_for_dax(dax)))
}

/// Devdax pools on one device must not overlap, and no numa pool may turn their device into
/// system RAM.
fn devdax_overlaps(pools: &[(PoolPlan, &PoolSpec)], diags: &mut Vec<Diag>) {
    for (i, (p, spec)) in pools.iter().enumerate() {
        let Some(d) = &p.devdax else {
            continue;
        };
        for (j, (q, _)) in pools.iter().enumerate().filter(|(j, _)| *j != i) {
            if q.reconfigure_devdax.as_deref() == Some(d.device.as_str()) {
                diags.push(Diag {
                    path: pool_path(spec, &["source"]),
                    msg: format!(
                        "pool `{}` turns `{}` into system RAM (reconfigure_devdax), so it cannot also be a devdax pool; keep one of them",
                        q.name, d.device
                    ),
                });
            }
            let Some(e) = q.devdax.as_ref().filter(|_| j < i) else {
                continue;
            };
            let (a, b) = (d.range(), e.range());
            if e.device == d.device && a.start < b.end && b.start < a.end {
                diags.push(Diag {
                    path: pool_path(spec, &["source"]),
                    msg: format!(
                        "pool `{}` uses {} of `{}`, which pool `{}` uses too ({b:?}); give them disjoint `offset`/`length`",
                        p.name,
                        d.bytes(),
                        d.device,
                        q.name,
                    ),
                });
            }
        }
    }
}

/// The warning for a node whose memory blocks are (partly) in ZONE_MOVABLE.
fn movable_warning(pool: &str, node: u32, movable: u32, online: u32, devices: &[String]) -> String {
    let dev = devices.first().map_or("daxX.Y", String::as_str);
    format!(
        "pool `{pool}`: {movable} of node {node}'s {online} online memory blocks are in ZONE_MOVABLE; CUDA registration (cudaHostRegister, a long-term pin) migrates such pages off the node to other memory. Fix: online them as ZONE_NORMAL (`daxctl reconfigure-device --mode=system-ram --no-movable {dev}`), or set `reconfigure_devdax: {dev}` in the pool's numa source so maru-devd does it"
    )
}

fn show_size(s: SizeSpec) -> String {
    match s {
        SizeSpec::Bytes(b) => human(b),
        SizeSpec::Percent(p) => format!("{p}%"),
    }
}

fn resolve_id(spec: &PoolSpec, key: &str, diags: &mut Vec<Diag>) -> Option<u32> {
    let id = if key == "owner" {
        &spec.owner
    } else {
        &spec.group
    };
    match id {
        None => Some(0),
        Some(IdSpec::Id(n)) => Some(*n),
        Some(IdSpec::Name(name)) => {
            let found = if key == "owner" {
                nix::unistd::User::from_name(name)
                    .ok()
                    .flatten()
                    .map(|u| u.uid.as_raw())
            } else {
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
            };
            if found.is_none() {
                let (what, db) = if key == "owner" {
                    ("user", "passwd")
                } else {
                    ("group", "group")
                };
                diags.push(Diag {
                    path: pool_path(spec, &[key]),
                    msg: format!("unknown {what} `{name}` (not in the {db} database); create it first or give a numeric id"),
                });
            }
            found
        }
    }
}

fn overcommit(pools: &[(PoolPlan, &PoolSpec)], host: &Host, diags: &mut Vec<Diag>) {
    let mut per_node: BTreeMap<u32, Vec<&(PoolPlan, &PoolSpec)>> = BTreeMap::new();
    for p in pools.iter().filter(|p| p.0.devdax.is_none()) {
        per_node.entry(p.0.node).or_default().push(p);
    }
    for (node, group) in per_node {
        let capacity = group
            .iter()
            .find_map(|(p, _)| {
                p.reconfigure_devdax
                    .as_deref()
                    .and_then(|d| host.dax(d))
                    .and_then(|d| d.size)
            })
            .or_else(|| host.node(node).and_then(|n| n.mem_total))
            .unwrap_or(0);
        let mut total = 0u64;
        for (i, (p, spec)) in group.iter().enumerate() {
            total = total.saturating_add(p.size);
            if total > capacity && p.size <= capacity {
                let parts: Vec<String> = group[..=i]
                    .iter()
                    .map(|(p, _)| format!("{} {}", p.name, p.size))
                    .collect();
                diags.push(Diag {
                    path: pool_path(spec, &["size"]),
                    msg: format!(
                        "pools on node {node} together ask for {} ({}) but the node has {}; shrink them so they fit",
                        human(total),
                        parts.join(" + "),
                        human(capacity)
                    ),
                });
                break;
            }
        }
    }
}

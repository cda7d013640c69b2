//! Semantic pass: a parsed [`Config`] checked against the host, giving a [`Plan`].

use super::locate::Seg;
use super::size::SizeSpec;
use super::{Config, Diag, IdSpec, NodeSel, PoolSpec, SourceSpec};
use crate::discover::model::DaxMode;
use crate::host::Host;
use crate::plan::{Plan, PoolPlan};
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
        if let Some(plan) = pool(spec, host, &mut diags) {
            pools.push((plan, spec));
        }
    }
    overcommit(&pools, host, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Plan {
        mount: cfg.mount.clone(),
        pools: pools.into_iter().map(|(p, _)| p).collect(),
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
    } = &spec.source;
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
    let mut warnings = Vec::new();
    let uid = resolve_id(spec, "owner", diags);
    let gid = resolve_id(spec, "group", diags);
    let (node, node_reason, capacity) = node_of(spec, host, diags, &mut warnings)?;
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
            msg: format!("{} of node {node}'s {} rounds down to 0 bytes; use a larger share or an absolute size", show_size(spec.size), human(capacity)),
        });
    } else if size > capacity {
        diags.push(Diag {
            path: pool_path(spec, &["size"]),
            msg: format!(
                "pool `{}` asks for {} but node {node} has only {}; lower `size` or give a percentage such as 50%",
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
    if let Some(n) = host.node(node) {
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
    let SourceSpec::Numa {
        reconfigure_devdax, ..
    } = &spec.source;
    Some(PoolPlan {
        name: spec.name.clone(),
        node,
        node_reason,
        size,
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        mode: spec.mode,
        eviction: spec.eviction,
        max_chunk_size: spec.max_chunk_size,
        reconfigure_devdax: reconfigure_devdax.clone(),
        devices: host.devices_for_node(node),
        warnings,
    })
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
    for p in pools {
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

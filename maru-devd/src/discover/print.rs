//! The human-readable report of a [`Topology`]: one table per kind of device,
//! sizes in binary units (`--json` has the exact bytes), then the warnings.

use std::fmt::Write as _;

use super::model::{DaxMode, Topology};

fn size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_string(), crate::units::short)
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Column-aligned rows, indented by two spaces.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, "  {cell:<width$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Renders the whole report.
pub fn render(topology: &Topology) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sysfs: {}", topology.sysfs_root.display());
    let no_dax = topology.dax_regions.iter().all(|r| r.devices.is_empty());
    if topology.memdevs.is_empty() && topology.regions.is_empty() && no_dax {
        let place = if topology.sysfs_root == std::path::Path::new("/sys") {
            "on this host"
        } else {
            "in this tree"
        };
        let _ = writeln!(
            out,
            "No CXL device found: no CXL memdev, CXL region or DAX device {place}."
        );
    }

    if !topology.memdevs.is_empty() {
        out.push_str("\nCXL memory devices\n");
        let rows: Vec<Vec<String>> = topology
            .memdevs
            .iter()
            .map(|m| {
                vec![
                    m.memdev.clone(),
                    m.serial
                        .map_or_else(|| "?".to_string(), |s| format!("{s:#x}")),
                    size(m.ram_size),
                    size(m.pmem_size),
                    opt(m.numa_node.filter(|n| *n >= 0)),
                    opt(m.firmware_version.clone()),
                    opt(m.host.clone()),
                    opt(m.host_bridge.clone()),
                    if m.ports.is_empty() {
                        "-".to_string()
                    } else {
                        m.ports.join("/")
                    },
                ]
            })
            .collect();
        let header = [
            "MEMDEV",
            "SERIAL",
            "RAM",
            "PMEM",
            "NODE",
            "FIRMWARE",
            "PCI",
            "HOST BRIDGE",
            "PORTS",
        ];
        table(&mut out, &header, &rows);
    }

    if !topology.regions.is_empty() {
        out.push_str("\nCXL regions\n");
        let rows: Vec<Vec<String>> = topology
            .regions
            .iter()
            .map(|r| {
                vec![
                    r.region.clone(),
                    opt(r.mode.clone()),
                    size(r.size),
                    opt(r.resource.map(|hpa| format!("{hpa:#x}"))),
                    opt(r.interleave_ways),
                    opt(r.interleave_granularity),
                    opt(r.decode_state.clone()),
                    if r.memdevs.is_empty() {
                        "-".to_string()
                    } else {
                        r.memdevs.join(",")
                    },
                    if r.targets.is_empty() {
                        "-".to_string()
                    } else {
                        r.targets.join(",")
                    },
                    opt(r.uuid.clone()),
                ]
            })
            .collect();
        let header = [
            "REGION",
            "MODE",
            "SIZE",
            "HPA",
            "WAYS",
            "GRANULARITY",
            "STATE",
            "MEMDEVS",
            "TARGETS",
            "UUID",
        ];
        table(&mut out, &header, &rows);
    }

    if !topology.dax_regions.is_empty() {
        out.push_str("\nDAX regions\n");
        let rows: Vec<Vec<String>> = topology
            .dax_regions
            .iter()
            .map(|r| {
                vec![
                    opt(r.id),
                    size(r.size),
                    size(r.align),
                    r.layout.to_string(),
                    opt(r.cxl_region.clone()),
                    r.path.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["ID", "SIZE", "ALIGN", "LAYOUT", "CXL REGION", "PATH"],
            &rows,
        );

        let devices: Vec<Vec<String>> = topology
            .dax_regions
            .iter()
            .flat_map(|r| r.devices.iter())
            .map(|d| {
                let blocks = match (d.online_memblocks, d.total_memblocks) {
                    (Some(online), Some(total)) => format!("{online}/{total} online"),
                    _ => "-".to_string(),
                };
                let movable = match (&d.mode, d.movable) {
                    (DaxMode::SystemRam, Some(true)) => "movable",
                    (DaxMode::SystemRam, Some(false)) => "normal",
                    _ => "-",
                };
                vec![
                    d.chardev.clone(),
                    d.mode.to_string(),
                    size(d.size),
                    size(d.align),
                    opt(d.target_node),
                    opt(d.devnode.as_ref().map(|p| p.display().to_string())),
                    blocks,
                    movable.to_string(),
                    opt(d.cxl_region.clone()),
                ]
            })
            .collect();
        if !devices.is_empty() {
            out.push_str("\nDAX devices\n");
            let header = [
                "DEVICE",
                "MODE",
                "SIZE",
                "ALIGN",
                "TARGET NODE",
                "DEVNODE",
                "MEMORY BLOCKS",
                "ZONE",
                "CXL REGION",
            ];
            table(&mut out, &header, &devices);
        }
    }

    out.push_str("\nNUMA nodes\n");
    if topology.nodes.is_empty() {
        out.push_str("  none readable\n");
    } else {
        let rows: Vec<Vec<String>> = topology
            .nodes
            .iter()
            .map(|n| {
                let zones: Vec<String> = n
                    .zones
                    .iter()
                    .map(|(zone, count)| format!("{zone}:{count}"))
                    .collect();
                vec![
                    n.node.to_string(),
                    size(n.mem_total),
                    size(n.mem_free),
                    if n.has_cpus {
                        n.cpulist.clone()
                    } else {
                        "none".to_string()
                    },
                    if n.cxl { "yes" } else { "no" }.to_string(),
                    format!("{}/{} online", n.online_memblocks, n.total_memblocks),
                    if zones.is_empty() {
                        "-".to_string()
                    } else {
                        zones.join(" ")
                    },
                ]
            })
            .collect();
        let header = [
            "NODE",
            "TOTAL",
            "FREE",
            "CPUS",
            "CXL",
            "MEMORY BLOCKS",
            "ZONES (online blocks)",
        ];
        table(&mut out, &header, &rows);
    }

    if !topology.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings ({})", topology.warnings.len());
        for warning in &topology.warnings {
            let _ = writeln!(out, "  {warning}");
        }
    }
    out
}

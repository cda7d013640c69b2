//! Builds the [`Topology`] from the devices a reader listed, by reading their
//! sysfs attributes. Both kernel layouts of DAX devices are handled here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::attr::{natural_cmp, AttrReader, Need};
use super::model::{
    CxlMemdev, CxlRegion, DaxDevice, DaxLayout, DaxMode, DaxRegion, NumaNode, Topology,
};
use super::{RawDevice, Subsystem};

/// What a device of the cxl bus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CxlKind {
    Memdev,
    Region,
    Port,
    Decoder,
    DaxRegion,
    Other,
}

fn cxl_kind(device: &RawDevice) -> CxlKind {
    match device.devtype.as_deref() {
        Some("cxl_memdev") => CxlKind::Memdev,
        Some("cxl_region") => CxlKind::Region,
        Some("cxl_port") => CxlKind::Port,
        Some("cxl_dax_region") => CxlKind::DaxRegion,
        Some(devtype) if devtype.starts_with("cxl_decoder") => CxlKind::Decoder,
        Some(_) => CxlKind::Other,
        // No DEVTYPE (an incomplete capture): fall back on the kernel's naming.
        None => {
            let name = device.name.as_str();
            if numbered(name, "mem").is_some() {
                CxlKind::Memdev
            } else if numbered(name, "region").is_some() {
                CxlKind::Region
            } else if numbered(name, "dax_region").is_some() {
                CxlKind::DaxRegion
            } else if ["root", "port", "endpoint"]
                .iter()
                .any(|prefix| numbered(name, prefix).is_some())
            {
                CxlKind::Port
            } else if name.starts_with("decoder") {
                CxlKind::Decoder
            } else {
                CxlKind::Other
            }
        }
    }
}

/// `Some(n)` when `name` is `prefix` followed by a decimal number.
fn numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

/// A memory block (`/sys/devices/system/memory/memoryN`).
#[derive(Debug)]
struct MemBlock {
    index: u64,
    online: bool,
    zone: Option<String>,
    node: Option<u32>,
}

/// A CXL region's host physical address range.
#[derive(Debug)]
struct HpaRange {
    region: String,
    start: u64,
    end: u64,
}

fn region_containing(ranges: &[HpaRange], start: u64, len: u64) -> Option<&str> {
    let end = start.checked_add(len)?;
    ranges
        .iter()
        .find(|range| range.start <= start && end <= range.end)
        .map(|range| range.region.as_str())
}

/// Assembles the model from `devices` read under `root` (the directory standing for `/sys`).
pub fn build(root: &Path, devices: &[RawDevice], mut reader: AttrReader) -> Topology {
    let of = |subsystem: Subsystem| devices.iter().filter(move |d| d.subsystem == subsystem);
    let cxl: Vec<&RawDevice> = of(Subsystem::Cxl).collect();
    let by_name: HashMap<&str, &RawDevice> = cxl.iter().map(|d| (d.name.as_str(), *d)).collect();

    let memory_dir = root.join("devices/system/memory");
    let has_blocks = of(Subsystem::Memory).next().is_some();
    let need_block_size = if has_blocks {
        Need::Required
    } else {
        Need::Optional
    };
    let block_size = reader
        .bare_hex(&memory_dir, "block_size_bytes", need_block_size)
        .filter(|size| *size > 0);
    let blocks: Vec<MemBlock> = of(Subsystem::Memory)
        .filter_map(|device| read_block(device, &mut reader))
        .collect();

    // Endpoint ports name the memdev they stand for in `uport`.
    let mut endpoint_of_memdev: HashMap<String, &RawDevice> = HashMap::new();
    for port in cxl.iter().filter(|d| cxl_kind(d) == CxlKind::Port) {
        if numbered(&port.name, "endpoint").is_some() {
            if let Some(memdev) = reader.link_name(&port.syspath, "uport", Need::Required) {
                endpoint_of_memdev.insert(memdev, port);
            }
        }
    }

    let mut memdevs: Vec<CxlMemdev> = cxl
        .iter()
        .filter(|d| cxl_kind(d) == CxlKind::Memdev)
        .map(|device| {
            read_memdev(
                device,
                endpoint_of_memdev.get(&device.name).copied(),
                &mut reader,
            )
        })
        .collect();
    memdevs.sort_by(|a, b| natural_cmp(&a.memdev, &b.memdev));

    let mut regions: Vec<CxlRegion> = cxl
        .iter()
        .filter(|d| cxl_kind(d) == CxlKind::Region)
        .map(|device| read_region(device, &by_name, &mut reader))
        .collect();
    regions.sort_by(|a, b| natural_cmp(&a.region, &b.region));
    let ranges: Vec<HpaRange> = regions
        .iter()
        .filter_map(|region| {
            let start = region.resource?;
            Some(HpaRange {
                region: region.region.clone(),
                start,
                end: start.checked_add(region.size?)?,
            })
        })
        .collect();

    let dax_regions = read_dax(
        root,
        devices,
        &cxl,
        &blocks,
        block_size,
        &ranges,
        &mut reader,
    );

    let mut nodes: Vec<NumaNode> = of(Subsystem::Node)
        .filter_map(|device| read_node(device, &blocks, block_size, &ranges, &mut reader))
        .collect();
    nodes.sort_by_key(|node| node.node);
    if nodes.is_empty() {
        reader.warn(
            root.join("devices/system/node"),
            "no NUMA node could be read: is this a sysfs tree (the folder that stands for /sys)?",
        );
    }

    Topology {
        sysfs_root: root.to_path_buf(),
        memory_block_size: block_size,
        memdevs,
        regions,
        dax_regions,
        nodes,
        warnings: reader.into_warnings(),
    }
}

fn read_block(device: &RawDevice, reader: &mut AttrReader) -> Option<MemBlock> {
    let Some(index) = numbered(&device.name, "memory") else {
        reader.warn(&device.syspath, "memory block name is not memoryN");
        return None;
    };
    let dir = &device.syspath;
    let online = reader.text(dir, "state", Need::Required).as_deref() == Some("online");
    let zone = if online {
        reader.nonempty_text(dir, "valid_zones", Need::Required)
    } else {
        None
    };
    let node = reader
        .list(dir)
        .iter()
        .find_map(|entry| numbered(entry, "node"))
        .and_then(|node| u32::try_from(node).ok());
    if node.is_none() {
        reader.warn(dir, "no nodeN link: the block's NUMA node is unknown");
    }
    Some(MemBlock {
        index,
        online,
        zone,
        node,
    })
}

fn read_memdev(
    device: &RawDevice,
    endpoint: Option<&RawDevice>,
    reader: &mut AttrReader,
) -> CxlMemdev {
    let dir = &device.syspath;
    let mut ports = Vec::new();
    let mut host_bridge = None;
    match endpoint.map(|e| port_chain(&e.syspath)) {
        Some(chain) if !chain.is_empty() => {
            // The first port below the root is the host bridge's; its uport names the bridge.
            if let Some((name, port_dir)) = chain.get(1) {
                if numbered(name, "port").is_some() {
                    host_bridge = reader.link_name(port_dir, "uport", Need::Required);
                }
            }
            ports = chain.into_iter().map(|(name, _)| name).collect();
        }
        Some(_) => reader.warn(
            dir,
            "the endpoint port of this memdev is not below a CXL rootN port: port path unknown",
        ),
        None => reader.warn(
            dir,
            "no CXL endpoint port names this memdev (cxl_mem not bound?): port path unknown",
        ),
    }
    CxlMemdev {
        memdev: device.name.clone(),
        serial: reader.u64(dir, "serial", Need::Required),
        ram_size: reader.u64(&dir.join("ram"), "size", Need::Required),
        pmem_size: reader.u64(&dir.join("pmem"), "size", Need::Required),
        numa_node: reader.i64(dir, "numa_node", Need::Required),
        firmware_version: reader.nonempty_text(dir, "firmware_version", Need::Required),
        host: dir.parent().and_then(file_name),
        devnode: device.devnode.clone(),
        host_bridge,
        ports,
    }
}

/// The CXL ports (name, directory) from `rootN` down to the endpoint port at
/// `endpoint_dir`: ports nest in sysfs, so the endpoint's path holds them all.
/// Empty when no `rootN` is above it.
fn port_chain(endpoint_dir: &Path) -> Vec<(String, &Path)> {
    let mut chain = Vec::new();
    for dir in endpoint_dir.ancestors() {
        let Some(name) = file_name(dir) else {
            break;
        };
        let is_root = numbered(&name, "root").is_some();
        if is_root || numbered(&name, "port").is_some() || numbered(&name, "endpoint").is_some() {
            chain.push((name, dir));
        }
        if is_root {
            chain.reverse();
            return chain;
        }
    }
    Vec::new()
}

fn read_region(
    device: &RawDevice,
    by_name: &HashMap<&str, &RawDevice>,
    reader: &mut AttrReader,
) -> CxlRegion {
    let dir = &device.syspath;
    let interleave_ways = reader.u32(dir, "interleave_ways", Need::Required);
    let mut targets = Vec::new();
    let mut memdevs = Vec::new();
    for position in 0..interleave_ways.unwrap_or(0) {
        let Some(decoder) = reader.nonempty_text(dir, &format!("target{position}"), Need::Required)
        else {
            continue;
        };
        // The decoder's parent is the endpoint port; its uport is the memdev.
        match by_name
            .get(decoder.as_str())
            .and_then(|d| d.syspath.parent())
        {
            Some(endpoint) => {
                if let Some(memdev) = reader.link_name(endpoint, "uport", Need::Required) {
                    memdevs.push(memdev);
                }
            }
            None => reader.warn(
                dir.join(format!("target{position}")),
                format!("names decoder {decoder}, which is not on the cxl bus"),
            ),
        }
        targets.push(decoder);
    }
    // Kernels before 6.3 have no `mode` on regions: the endpoint decoders tell it.
    let mut mode = reader.nonempty_text(dir, "mode", Need::Optional);
    if mode.is_none() {
        mode = targets.iter().find_map(|decoder| {
            let decoder_dir = &by_name.get(decoder.as_str())?.syspath;
            reader.nonempty_text(decoder_dir, "mode", Need::Optional)
        });
    }
    if mode.is_none() {
        let children = reader.list(dir);
        if children
            .iter()
            .any(|c| numbered(c, "pmem_region").is_some())
        {
            mode = Some("pmem".to_string());
        } else if children.iter().any(|c| numbered(c, "dax_region").is_some()) {
            mode = Some("ram".to_string());
        } else {
            reader.warn(
                dir.join("mode"),
                "attribute missing and no endpoint decoder or child device tells ram or pmem",
            );
        }
    }
    let decode_state = reader
        .text(dir, "commit", Need::Optional)
        .map(|commit| if commit == "1" { "commit" } else { "reset" }.to_string());
    CxlRegion {
        region: device.name.clone(),
        mode,
        size: reader.u64(dir, "size", Need::Required),
        uuid: reader.nonempty_text(dir, "uuid", Need::Optional),
        interleave_ways,
        interleave_granularity: reader.u32(dir, "interleave_granularity", Need::Required),
        resource: reader.u64(dir, "resource", Need::Required),
        decode_state,
        targets,
        memdevs,
        root_decoder: dir.parent().and_then(file_name),
    }
}

/// The layout a DAX region directory sits in, and the CXL region its path shows.
fn dax_layout(region_dir: &Path) -> (DaxLayout, Option<String>) {
    let name = file_name(region_dir).unwrap_or_default();
    let parent = region_dir.parent();
    let parent_name = parent.and_then(file_name).unwrap_or_default();
    let grandparent_name = parent
        .and_then(Path::parent)
        .and_then(file_name)
        .unwrap_or_default();
    if numbered(&name, "dax_region").is_some()
        && numbered(&parent_name, "region").is_some()
        && grandparent_name.starts_with("decoder")
    {
        return (DaxLayout::Cxl, Some(parent_name));
    }
    let on_nd_bus = region_dir
        .components()
        .any(|c| numbered(&c.as_os_str().to_string_lossy(), "ndbus").is_some());
    if on_nd_bus {
        (DaxLayout::Nvdimm, None)
    } else {
        (DaxLayout::Other, None)
    }
}

#[allow(clippy::too_many_arguments)]
fn read_dax(
    root: &Path,
    devices: &[RawDevice],
    cxl: &[&RawDevice],
    blocks: &[MemBlock],
    block_size: Option<u64>,
    ranges: &[HpaRange],
    reader: &mut AttrReader,
) -> Vec<DaxRegion> {
    // Region directory -> its devices. CXL dax regions without devices still show.
    let mut by_region: BTreeMap<PathBuf, Vec<DaxDevice>> = BTreeMap::new();
    for region in cxl.iter().filter(|d| cxl_kind(d) == CxlKind::DaxRegion) {
        by_region.entry(region.syspath.clone()).or_default();
    }
    for device in devices.iter().filter(|d| d.subsystem == Subsystem::Dax) {
        let Some(parent) = device.syspath.parent() else {
            continue;
        };
        if !parent.join("dax_region").is_dir() {
            reader.warn(
                parent.join("dax_region"),
                format!(
                    "missing: unknown layout, the region of {} is shown without id, size and align",
                    device.name
                ),
            );
        }
        let dax = read_dax_device(device, blocks, block_size, ranges, reader);
        by_region.entry(parent.to_path_buf()).or_default().push(dax);
    }

    let devices_dir = root.join("devices");
    let mut regions: Vec<DaxRegion> = by_region
        .into_iter()
        .map(|(dir, mut devices)| {
            devices.sort_by(|a, b| natural_cmp(&a.chardev, &b.chardev));
            let (layout, path_region) = dax_layout(&dir);
            let cxl_region =
                path_region.or_else(|| devices.iter().find_map(|d| d.cxl_region.clone()));
            let attrs = dir.join("dax_region");
            let (id, size, align) = if attrs.is_dir() {
                (
                    reader.u64(&attrs, "id", Need::Required),
                    reader.u64(&attrs, "size", Need::Required),
                    reader.u64(&attrs, "align", Need::Required),
                )
            } else {
                (None, None, None)
            };
            let path = match dir.strip_prefix(&devices_dir) {
                Ok(rest) => format!("/{}", rest.display()),
                Err(_) => dir.display().to_string(),
            };
            DaxRegion {
                id,
                path,
                size,
                align,
                layout,
                cxl_region,
                devices,
            }
        })
        .collect();
    regions.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| natural_cmp(&a.path, &b.path)));
    regions
}

fn read_dax_device(
    device: &RawDevice,
    blocks: &[MemBlock],
    block_size: Option<u64>,
    ranges: &[HpaRange],
    reader: &mut AttrReader,
) -> DaxDevice {
    let dir = &device.syspath;
    let size = reader.u64(dir, "size", Need::Required);
    let resource = reader
        .u64(dir, "resource", Need::Optional)
        .or_else(|| reader.u64(&dir.join("mapping0"), "start", Need::Optional));
    let mode = DaxMode::from_driver(device.driver.as_deref());
    let parent = dir.parent().unwrap_or(dir);
    let cxl_region = dax_layout(parent)
        .1
        .or_else(|| region_containing(ranges, resource?, size?).map(str::to_string));

    let mut dax = DaxDevice {
        chardev: device.name.clone(),
        devnode: device.devnode.clone(),
        size,
        target_node: reader.i64(dir, "target_node", Need::Required),
        align: reader.u64(dir, "align", Need::Required),
        resource,
        mode,
        online_memblocks: None,
        total_memblocks: None,
        movable: None,
        cxl_region,
    };
    if dax.mode == DaxMode::SystemRam {
        match dax.kmem_blocks(block_size) {
            Some(range) => {
                let online: Vec<&MemBlock> = blocks
                    .iter()
                    .filter(|b| range.contains(&b.index) && b.online)
                    .collect();
                dax.total_memblocks = u32::try_from(range.end - range.start).ok();
                dax.online_memblocks = u32::try_from(online.len()).ok();
                if !online.is_empty() {
                    dax.movable =
                        Some(online.iter().all(|b| b.zone.as_deref() == Some("Movable")));
                }
            }
            None => reader.warn(
                dir,
                "system-ram device: memory blocks not counted (block size, resource or size unknown)",
            ),
        }
    }
    dax
}

fn read_node(
    device: &RawDevice,
    blocks: &[MemBlock],
    block_size: Option<u64>,
    ranges: &[HpaRange],
    reader: &mut AttrReader,
) -> Option<NumaNode> {
    let Some(id) = numbered(&device.name, "node").and_then(|id| u32::try_from(id).ok()) else {
        reader.warn(&device.syspath, "NUMA node name is not nodeN");
        return None;
    };
    let dir = &device.syspath;
    let (mut mem_total, mut mem_free) = (None, None);
    if let Some(meminfo) = reader.text(dir, "meminfo", Need::Required) {
        mem_total = meminfo_bytes(&meminfo, "MemTotal:");
        mem_free = meminfo_bytes(&meminfo, "MemFree:");
        if mem_total.is_none() || mem_free.is_none() {
            reader.warn(dir.join("meminfo"), "no readable MemTotal/MemFree line");
        }
    }
    let cpulist = reader
        .text(dir, "cpulist", Need::Required)
        .unwrap_or_default();
    let mine: Vec<&MemBlock> = blocks.iter().filter(|b| b.node == Some(id)).collect();
    let mut zones = BTreeMap::new();
    for block in mine.iter().filter(|b| b.online) {
        let zone = block.zone.clone().unwrap_or_else(|| "unknown".to_string());
        *zones.entry(zone).or_insert(0) += 1;
    }
    let cxl = block_size.is_some_and(|size| {
        mine.iter().any(|b| {
            b.index
                .checked_mul(size)
                .is_some_and(|start| region_containing(ranges, start, size).is_some())
        })
    });
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Some(NumaNode {
        node: id,
        mem_total,
        mem_free,
        has_cpus: !cpulist.is_empty(),
        cpulist,
        cxl,
        online_memblocks: count(mine.iter().filter(|b| b.online).count()),
        total_memblocks: count(mine.len()),
        zones,
    })
}

/// `Node 0 MemTotal:  8115712 kB` -> bytes.
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let mut words = line.split_whitespace().skip_while(|w| *w != key).skip(1);
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_give_bytes() {
        let text = "Node 1 MemTotal:         262144 kB\nNode 1 MemFree:          1024 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), Some(262_144 * 1024));
        assert_eq!(meminfo_bytes(text, "MemFree:"), Some(1024 * 1024));
        assert_eq!(meminfo_bytes(text, "MemUsed:"), None);
    }

    #[test]
    fn port_chain_runs_from_root_to_endpoint_through_switches() {
        let endpoint = Path::new("/sys/devices/platform/ACPI0017:00/root0/port1/port3/endpoint5");
        let chain: Vec<String> = port_chain(endpoint).into_iter().map(|(n, _)| n).collect();
        assert_eq!(chain, ["root0", "port1", "port3", "endpoint5"]);
        assert_eq!(
            port_chain(endpoint)[1].1,
            Path::new("/sys/devices/platform/ACPI0017:00/root0/port1")
        );
        assert!(port_chain(Path::new("/sys/devices/odd/endpoint2")).is_empty());
    }

    #[test]
    fn both_dax_layouts_are_recognised() {
        let cxl =
            Path::new("/sys/devices/platform/ACPI0017:00/root0/decoder0.0/region3/dax_region3");
        assert_eq!(
            dax_layout(cxl),
            (DaxLayout::Cxl, Some("region3".to_string()))
        );
        let nd = Path::new(
            "/sys/devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0/dax0.0",
        );
        assert_eq!(dax_layout(nd), (DaxLayout::Nvdimm, None));
        let hmem = Path::new("/sys/devices/platform/hmem.0");
        assert_eq!(dax_layout(hmem), (DaxLayout::Other, None));
    }
}

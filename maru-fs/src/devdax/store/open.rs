//! Opening a pool's range: geometry checks, the mapping, the header (reading,
//! formatting, a shared pool's identity and arenas) and the owner lease.

use super::*;
use crate::devdax::progress::{Reporter, Work};

/// The device (or stand-in file) opened read-write, its geometry, and the pool's
/// byte range `(offset, len)` checked against it.
fn open_region(cfg: &DevdaxConfig) -> Result<(File, Geometry, u64), DevdaxError> {
    let geo = Geometry::of_device(&cfg.device, cfg.sysfs_dir.as_deref())?;
    let range = |problem: String| DevdaxError::Range {
        device: cfg.device.clone(),
        problem,
    };
    if cfg.offset % geo.align != 0 {
        return Err(range(format!(
            "offset {} is not a multiple of the device alignment {}",
            cfg.offset, geo.align
        )));
    }
    if cfg.offset >= geo.size {
        return Err(range(format!(
            "offset {} is past the end of the device ({} bytes)",
            cfg.offset, geo.size
        )));
    }
    let len = match cfg.len {
        Some(len) => {
            if len % geo.align != 0 {
                return Err(range(format!(
                    "length {len} is not a multiple of the device alignment {}",
                    geo.align
                )));
            }
            if cfg.offset.checked_add(len).is_none_or(|end| end > geo.size) {
                return Err(range(format!(
                    "offset {} + length {len} runs past the end of the device ({} bytes)",
                    cfg.offset, geo.size
                )));
            }
            len
        }
        None => (geo.size - cfg.offset) / geo.align * geo.align,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&cfg.device)
        .map_err(|source| DevdaxError::Io {
            what: "cannot open the device read-write".into(),
            path: cfg.device.clone(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| DevdaxError::Io {
        what: "cannot stat the device".into(),
        path: cfg.device.clone(),
        source,
    })?;
    if meta.is_file() && meta.len() < cfg.offset + len {
        return Err(range(format!(
            "the stand-in file is {} bytes, shorter than the pool's range end {}",
            meta.len(),
            cfg.offset + len
        )));
    }
    Ok((file, geo, len))
}

fn map_region(cfg: &DevdaxConfig, file: &File, len: u64) -> Result<Arc<Mapping>, DevdaxError> {
    Mapping::new(file, cfg.offset, len)
        .map(Arc::new)
        .map_err(|source| DevdaxError::Io {
            what: format!("cannot map {len} bytes from offset {} of", cfg.offset),
            path: cfg.device.clone(),
            source,
        })
}

/// 16 random bytes (getrandom; time and pid if the kernel has no entropy yet).
pub(crate) fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    if crate::sys::random::fill(&mut uuid).is_err() {
        // No entropy source: time and pid still tell formats apart.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        uuid.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    uuid
}

fn mapping_io(cfg: &DevdaxConfig, what: &str, source: io::Error) -> DevdaxError {
    DevdaxError::Io {
        what: what.to_string(),
        path: cfg.device.clone(),
        source,
    }
}

/// Writes a fresh, empty pool on `map` (the whole configured range) and returns its header.
/// Bytes of the index cleared between two progress reports when formatting.
const FORMAT_PIECE: u64 = 1 << 20;

fn write_fresh(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
    uuid: [u8; 16],
) -> Result<Header, DevdaxError> {
    let mut h = Header::fresh(len, align, uuid).map_err(|problem| DevdaxError::Range {
        device: cfg.device.clone(),
        problem,
    })?;
    let io = |e| mapping_io(cfg, "cannot write the pool header and index to", e);
    // Invalidate both header copies first, so a crash mid-format leaves a range
    // that is refused (not a half-old pool), then clear the index. The owner lease
    // between them is the caller's and stays.
    map.zero(0, LEASE_OFFSET).map_err(io)?;
    map.flush(0, LEASE_OFFSET).map_err(io)?;
    // The index is cleared in pieces, reporting progress (it can be large).
    let index_len = h.data_offset - INDEX_OFFSET;
    let mut progress = Reporter::start(cfg.progress.as_ref(), Work::Format, index_len);
    let mut done = 0;
    while done < index_len {
        let n = (index_len - done).min(FORMAT_PIECE);
        map.zero(INDEX_OFFSET + done, n).map_err(io)?;
        map.flush(INDEX_OFFSET + done, n).map_err(io)?;
        done += n;
        progress.update(done, 0);
    }
    progress.finish(0);
    for generation in [1, 2] {
        h.generation = generation;
        let at = (generation % 2) * SLOT_SIZE;
        map.write(at, &h.encode()).map_err(io)?;
        map.flush(at, SLOT_SIZE).map_err(io)?;
    }
    Ok(h)
}

/// Formats the pool range of `cfg`, destroying whatever it held. Returns the
/// number of data bytes the new pool offers.
pub(crate) fn format(cfg: &DevdaxConfig) -> Result<u64, DevdaxError> {
    let (file, geo, len) = open_region(cfg)?;
    let map = map_region(cfg, &file, len)?;
    let owner = take_owner(cfg, &map)?;
    let h = write_fresh(cfg, &map, len, geo.align, random_uuid())?;
    drop(owner);
    log::info!(
        "formatted devdax pool on {} at byte {}: {} bytes of data, {} index records",
        cfg.device.display(),
        cfg.offset,
        h.data_len,
        h.record_count
    );
    Ok(h.data_len)
}

/// Where the pool of `cfg` is, for the owner lease's messages.
fn place(cfg: &DevdaxConfig) -> Place {
    Place {
        device: cfg.device.clone(),
        offset: cfg.offset,
    }
}

/// Takes the owner lease of the range mapped by `map`, as `cfg.owner` says.
fn take_owner(cfg: &DevdaxConfig, map: &Arc<Mapping>) -> Result<OwnerLease, DevdaxError> {
    OwnerLease::acquire(
        Arc::clone(map),
        place(cfg),
        &HostIdentity::current(),
        &cfg.owner,
    )
}

fn cluster_err(cfg: &DevdaxConfig, e: io::Error) -> DevdaxError {
    DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!("the cluster cannot be asked: {e}"),
    }
}

fn uuid_hex(uuid: &[u8; 16]) -> String {
    uuid.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of a shared pool: the one on the device if the cluster records the
/// same identity (registered now if it records none); for a blank range, the host
/// that registers a fresh identity formats it and the others wait for its header.
fn shared_header(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
    found: Option<Header>,
    link: &SharedLink,
) -> Result<Header, DevdaxError> {
    let mismatch = |ours: &[u8; 16], theirs: &[u8; 16]| DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!(
            "the pool header's identity {} is not the cluster's record for this pool ({}): the \
             range holds another pool, or it was re-created behind the cluster's back. Refusing \
             it; point the pool at the right device or byte range",
            uuid_hex(ours),
            uuid_hex(theirs)
        ),
    };
    if let Some(h) = found {
        return match link
            .0
            .check_identity(&h.uuid)
            .map_err(|e| cluster_err(cfg, e))?
        {
            None => Ok(h),
            Some(theirs) => Err(mismatch(&h.uuid, &theirs)),
        };
    }
    let uuid = random_uuid();
    let theirs = match link
        .0
        .check_identity(&uuid)
        .map_err(|e| cluster_err(cfg, e))?
    {
        None => {
            log::info!(
                "shared devdax pool on {} at byte {}: blank range, formatting a new pool for the \
                 cluster (identity {})",
                cfg.device.display(),
                cfg.offset,
                uuid_hex(&uuid)
            );
            return write_fresh(cfg, map, len, align, uuid);
        }
        Some(theirs) => theirs,
    };
    // Another host registered the pool: it is formatting it (or did, on a device
    // this host does not see yet).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Some(h) = read_header(cfg, map, len, align)? {
            return if h.uuid == theirs {
                Ok(h)
            } else {
                Err(mismatch(&h.uuid, &theirs))
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!(
            "the cluster records this pool as {} but the range is still blank after 30 s: is this \
             the device the other hosts use? If the device was replaced, delete the cluster's \
             record of the pool (its `uuid` key) and start again",
            uuid_hex(&theirs)
        ),
    })
}

/// The arenas of a shared pool this host holds (one is claimed if it holds none),
/// with every other arena taken out of `alloc`.
fn shared_part(
    cfg: &DevdaxConfig,
    header: &Header,
    link: &SharedLink,
    alloc: &mut Allocator,
) -> Result<SharedPart, DevdaxError> {
    let arenas = Arenas::of(
        header.data_offset,
        header.data_len,
        header.align,
        header.record_count,
    );
    let mine: BTreeSet<u32> = link
        .0
        .arenas(arenas.count)
        .map_err(|e| cluster_err(cfg, e))?
        .into_iter()
        .collect();
    if mine.is_empty() {
        return Err(DevdaxError::Cluster {
            device: cfg.device.clone(),
            offset: cfg.offset,
            detail: format!(
                "all {} arenas of the pool are held by other hosts: this host has no room to \
                 write. Forget hosts that are gone (`maru-devd cluster forget HOST`) or give the \
                 pool a bigger range",
                arenas.count
            ),
        });
    }
    for n in 0..arenas.count {
        if !mine.contains(&n) {
            let (off, len) = arenas.data(n);
            alloc.reserve(off, len);
        }
    }
    let (last, last_len) = arenas.data(arenas.count - 1);
    let tail = last + last_len;
    let end = header.data_offset + header.data_len;
    if tail < end {
        alloc.reserve(tail, end - tail);
    }
    log::info!(
        "shared devdax pool on {}: host {} holds arena(s) {:?} of {}",
        cfg.device.display(),
        link.0.host(),
        mine,
        arenas.count
    );
    Ok(SharedPart {
        link: link.clone(),
        arenas,
        mine,
        revision: 0,
        quarantine: BTreeMap::new(),
    })
}

/// Reads the header of an existing pool: `None` when both copies are blank (a
/// fresh range); an error for anything that is not a pool of this range.
/// Reads only.
fn read_header(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
) -> Result<Option<Header>, DevdaxError> {
    let mut slots = Vec::with_capacity(2);
    map.flush(0, 2 * SLOT_SIZE)
        .map_err(|e| mapping_io(cfg, "cannot read the pool header of", e))?;
    for i in 0..2u64 {
        let mut buf = vec![0u8; SLOT_SIZE as usize];
        map.read(i * SLOT_SIZE, &mut buf)
            .map_err(|e| mapping_io(cfg, "cannot read the pool header of", e))?;
        slots.push(Header::decode(&buf));
    }
    let best = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().ok().map(|h| (i, h)))
        .max_by_key(|(_, h)| h.generation);
    if let Some((i, h)) = best {
        let other = &slots[1 - i];
        if let Err(p) = other {
            log::warn!(
                "devdax pool on {} at byte {}: header copy {} is unusable ({p:?}); using copy {i} \
                 (generation {}); the unusable copy is rewritten now (a crash during an earlier \
                 header update leaves exactly this)",
                cfg.device.display(),
                cfg.offset,
                1 - i,
                h.generation
            );
        }
        let h = h.clone();
        if h.region_len != len || h.align != align {
            return Err(DevdaxError::Mismatch {
                device: cfg.device.clone(),
                offset: cfg.offset,
                detail: format!(
                    "the pool header describes {} bytes at alignment {}, the configuration {} bytes at alignment {}",
                    h.region_len, h.align, len, align
                ),
            });
        }
        return Ok(Some(h));
    }
    let problems: Vec<&SlotProblem> = slots.iter().filter_map(|s| s.as_ref().err()).collect();
    if problems.iter().all(|p| **p == SlotProblem::Blank) {
        return match cfg.format {
            FormatPolicy::IfBlank => Ok(None),
            FormatPolicy::Never => Err(DevdaxError::Blank {
                device: cfg.device.clone(),
                offset: cfg.offset,
            }),
        };
    }
    if let Some(found) = problems.iter().find_map(|p| match p {
        SlotProblem::Version(v) => Some(*v),
        _ => None,
    }) {
        return Err(DevdaxError::Version {
            device: cfg.device.clone(),
            offset: cfg.offset,
            found,
            supported: VERSION,
        });
    }
    let damaged = problems.iter().any(|p| {
        matches!(
            p,
            SlotProblem::BadChecksum { .. } | SlotProblem::Inconsistent(_)
        )
    });
    if !damaged {
        return Err(DevdaxError::NotAPool {
            device: cfg.device.clone(),
            offset: cfg.offset,
        });
    }
    let detail = problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let what = match p {
                SlotProblem::Blank => "blank".to_string(),
                SlotProblem::NoMagic => "no magic".to_string(),
                SlotProblem::BadChecksum { stored, computed } => {
                    format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
                }
                SlotProblem::Version(v) => format!("version {v}"),
                SlotProblem::Inconsistent(s) => format!("inconsistent fields: {s}"),
            };
            format!("copy {i}: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(DevdaxError::Corrupt {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail,
    })
}

impl DevdaxStore {
    /// Opens (recovering, or formatting a blank range if allowed) the pool of
    /// `cfg`; also says what recovery found and dropped (it is logged as well).
    pub fn open(cfg: &DevdaxConfig) -> Result<(DevdaxStore, Recovery), DevdaxError> {
        let (file, geo, len) = open_region(cfg)?;
        let map = map_region(cfg, &file, len)?;
        // Look before writing anything: a range that is not a pool is refused untouched.
        read_header(cfg, &map, len, geo.align)?;
        // Recovery rewrites the index: only the owner of the range may run it (for
        // a shared pool: only in this host's arenas).
        let owner = match &cfg.shared {
            None => take_owner(cfg, &map)?,
            Some(_) => OwnerLease::share(
                Arc::clone(&map),
                place(cfg),
                &HostIdentity::current(),
                &cfg.owner,
            )?,
        };
        // Read again: the previous owner may have changed it until it let go.
        let found = read_header(cfg, &map, len, geo.align)?;
        let mut header = match (&cfg.shared, found) {
            (None, Some(h)) => h,
            (None, None) => {
                log::info!(
                    "devdax pool on {} at byte {}: blank range, formatting a new pool",
                    cfg.device.display(),
                    cfg.offset
                );
                write_fresh(cfg, &map, len, geo.align, random_uuid())?
            }
            (Some(link), found) => shared_header(cfg, &map, len, geo.align, found, link)?,
        };
        let mut alloc = Allocator::new(header.data_offset, header.data_len, header.align);
        let shared = match &cfg.shared {
            None => None,
            Some(link) => Some(shared_part(cfg, &header, link, &mut alloc)?),
        };
        let mut inner = Inner {
            device: cfg.device.clone(),
            region_offset: cfg.offset,
            map,
            owner,
            header: header.clone(),
            alloc,
            entries: HashMap::new(),
            names: HashMap::new(),
            publishing: HashMap::new(),
            free_slots: BTreeSet::new(),
            next_id: 1,
            next_seq: 1,
            shared,
            coherent: cfg.coherence == Coherence::Hardware,
        };
        let claimed = match &inner.shared {
            None => HashMap::new(),
            Some(sh) => {
                let (keys, revision) = sh.link.0.snapshot().map_err(|e| cluster_err(cfg, e))?;
                if let Some(sh) = inner.shared.as_mut() {
                    sh.revision = revision;
                }
                keys.into_iter().collect()
            }
        };
        let recovery = inner
            .recover(cfg.verify_data, cfg.progress.as_ref(), &claimed)
            .map_err(|e| mapping_io(cfg, "cannot read the pool index of", e))?;
        inner.adopt_remote_keys(&claimed);
        // Record this open: the next generation goes to the other header copy. Not
        // on a shared pool: the header is the cluster's, and two hosts opening at
        // once would write the same copy at the same moment.
        if inner.shared.is_none() {
            header.generation += 1;
            header.opened_at = now_secs();
            let slot_at = (header.generation % 2) * SLOT_SIZE;
            let update = |e| mapping_io(cfg, "cannot update the pool header of", e);
            inner.map.write(slot_at, &header.encode()).map_err(update)?;
            inner.map.flush(slot_at, SLOT_SIZE).map_err(update)?;
        }
        inner.header = header;
        log::info!(
            "devdax pool on {} at byte {}: {} published chunk(s) recovered, {} staging and {} \
             damaged record(s) dropped, {} chunk(s) dropped for a data checksum mismatch; {} of \
             {} data bytes free",
            cfg.device.display(),
            cfg.offset,
            recovery.published,
            recovery.staging_dropped,
            recovery.damaged_dropped,
            recovery.data_mismatch,
            inner.alloc.free_bytes(),
            inner.header.data_len
        );
        let store = DevdaxStore {
            inner: Arc::new(Mutex::new(inner)),
            device: cfg.device.clone(),
            shared: cfg.shared.is_some(),
        };
        Ok((store, recovery))
    }
}

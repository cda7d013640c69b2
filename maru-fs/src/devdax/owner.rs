//! The owner lease of a devdax pool: the one daemon, on one host, that may open the
//! pool's byte range. It fences every other daemon — on this host or on another host
//! the CXL device is attached to — without any network.
//!
//! The lease is a 128-byte record at [`LEASE_OFFSET`] of the range: the holder's
//! machine-id, boot-id, host name, pid (with its start time) and a heartbeat counter
//! that the holder advances every `interval` (a fifth of the timeout, at most 1 s),
//! written back from the CPU caches each time. Another daemon decides whether the
//! holder is alive by watching the record, never by comparing clocks:
//!
//! | the record | decision |
//! | --- | --- |
//! | blank, or released by a clean stop | take it |
//! | this boot of this host, pid gone (or reused) | take it (a crashed daemon) |
//! | this boot of this host, pid alive | refuse: another daemon here holds it |
//! | changes within the timeout | refuse: a live holder |
//! | unchanged for the timeout, same host name and machine-id, other boot | take it (this host rebooted) |
//! | unchanged for the timeout, another host | refuse unless `takeover` (an operator says that host is gone) |
//! | unreadable (torn by a crash) and unchanged for the timeout | take it |
//!
//! Taking it: write a claim with a fresh random nonce, then heartbeat for a settle
//! period, re-reading before every write; a claimant that ever reads another's claim
//! backs off. Two daemons that start at once therefore end with one holder, as long
//! as neither is descheduled for longer than the settle period between the last read
//! and its claim (the window is microseconds).
//!
//! The holder's heartbeat thread re-reads the record before each heartbeat; if
//! another daemon has taken the lease (with `takeover`, after this one stalled) the
//! pool is *lost*: every operation on it fails with EIO and the log says why.
//! Dropping the lease (the pool closes) marks the record released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::crc::crc32c;
use super::host_id::{hex, pid_start, HostIdentity};
use super::layout::{now_secs, LEASE_OFFSET};
use super::mapping::Mapping;
use super::DevdaxError;

/// Bytes of the lease record (two cache lines).
const RECORD_LEN: usize = 128;
const MAGIC: u32 = u32::from_le_bytes(*b"MRLS");
const HELD: u32 = 1;
const RELEASED: u32 = 2;
/// Marked shared by a host of a cluster: no single owner; the cluster coordinates.
const SHARED: u32 = 3;
const NAME_AT: usize = 81;
const NAME_MAX: usize = RECORD_LEN - NAME_AT;

/// How a daemon takes the owner lease of a devdax pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerPolicy {
    /// How long a holder's heartbeat may stand still before the holder counts as
    /// gone (default 5 s). The holder advances it every fifth of this (at most 1 s).
    pub timeout: Duration,
    /// Take the lease from another host whose heartbeat stood still for `timeout`
    /// (the operator says that host is gone). Never takes it from a live holder.
    pub takeover: bool,
}

impl Default for OwnerPolicy {
    fn default() -> OwnerPolicy {
        OwnerPolicy {
            timeout: Duration::from_secs(5),
            takeover: false,
        }
    }
}

impl OwnerPolicy {
    /// How often the holder advances its heartbeat.
    pub fn interval(&self) -> Duration {
        (self.timeout / 5).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// A decoded lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    /// HELD, RELEASED or SHARED.
    state: u32,
    pid: u32,
    heartbeat: u64,
    pid_start: u64,
    machine_id: [u8; 16],
    boot_id: [u8; 16],
    acquired_at: u64,
    nonce: u64,
    name: String,
}

/// What the lease bytes hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// All zeros: never held.
    Blank,
    /// Not a valid record (torn, or foreign data).
    Unreadable,
    /// A record.
    Claim(Claim),
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn crc_of(b: &[u8]) -> u32 {
    let mut copy = [0u8; RECORD_LEN];
    copy.copy_from_slice(b);
    copy[4..8].fill(0);
    crc32c(&copy)
}

impl Claim {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        put_u32(&mut b, 0, MAGIC);
        put_u32(&mut b, 8, self.state);
        put_u32(&mut b, 12, self.pid);
        put_u64(&mut b, 16, self.heartbeat);
        put_u64(&mut b, 24, self.pid_start);
        b[32..48].copy_from_slice(&self.machine_id);
        b[48..64].copy_from_slice(&self.boot_id);
        put_u64(&mut b, 64, self.acquired_at);
        put_u64(&mut b, 72, self.nonce);
        let name = self.name.as_bytes();
        let n = name.len().min(NAME_MAX);
        b[80] = n as u8;
        b[NAME_AT..NAME_AT + n].copy_from_slice(&name[..n]);
        let crc = crc_of(&b);
        put_u32(&mut b, 4, crc);
        b
    }

    fn decode(b: &[u8]) -> Seen {
        if b.iter().all(|&x| x == 0) {
            return Seen::Blank;
        }
        if b.len() != RECORD_LEN {
            return Seen::Unreadable;
        }
        if get_u32(b, 0) != MAGIC || get_u32(b, 4) != crc_of(b) {
            return Seen::Unreadable;
        }
        let state = get_u32(b, 8);
        if ![HELD, RELEASED, SHARED].contains(&state) {
            return Seen::Unreadable;
        }
        let n = usize::from(b[80]).min(NAME_MAX);
        let mut machine_id = [0u8; 16];
        machine_id.copy_from_slice(&b[32..48]);
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&b[48..64]);
        Seen::Claim(Claim {
            state,
            pid: get_u32(b, 12),
            heartbeat: get_u64(b, 16),
            pid_start: get_u64(b, 24),
            machine_id,
            boot_id,
            acquired_at: get_u64(b, 64),
            nonce: get_u64(b, 72),
            name: String::from_utf8_lossy(&b[NAME_AT..NAME_AT + n]).into_owned(),
        })
    }

    /// "maru-devd pid 12 on host node-b (machine-id …, boot …), holder since …".
    fn describe(&self) -> String {
        let since = now_secs().saturating_sub(self.acquired_at);
        format!(
            "maru-devd pid {} on host {} (machine-id {}, boot-id {}), which took it {since} s ago \
             by this host's clock (heartbeat {})",
            self.pid,
            self.name,
            hex(&self.machine_id),
            hex(&self.boot_id),
            self.heartbeat
        )
    }
}

/// Reads the lease bytes as the device holds them (cache lines invalidated first).
fn read_raw(map: &Mapping) -> std::io::Result<[u8; RECORD_LEN]> {
    let mut b = [0u8; RECORD_LEN];
    map.flush(LEASE_OFFSET, RECORD_LEN as u64)?;
    map.read(LEASE_OFFSET, &mut b)?;
    Ok(b)
}

/// Writes a lease record through to the device.
fn write_raw(map: &Mapping, b: &[u8; RECORD_LEN]) -> std::io::Result<()> {
    map.write(LEASE_OFFSET, b)?;
    map.flush(LEASE_OFFSET, RECORD_LEN as u64)
}

/// Where the pool is, for messages and errors.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// The device node or stand-in file.
    pub device: std::path::PathBuf,
    /// Byte offset of the pool in the device.
    pub offset: u64,
}

impl Place {
    fn refuse(&self, detail: String) -> DevdaxError {
        DevdaxError::Owned {
            device: self.device.clone(),
            offset: self.offset,
            detail,
        }
    }

    fn io(&self, source: std::io::Error) -> DevdaxError {
        DevdaxError::Io {
            what: "cannot read or write the owner lease of".into(),
            path: self.device.clone(),
            source,
        }
    }
}

/// Shared between the lease holder and its heartbeat thread.
#[derive(Debug)]
struct Shared {
    map: Arc<Mapping>,
    place: Place,
    lost: AtomicBool,
}

/// The held owner lease of a pool; released when dropped.
#[derive(Debug)]
pub(crate) struct OwnerLease {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    nonce: u64,
}

fn random_u64() -> u64 {
    let u = super::store::random_uuid();
    let mut b = [0u8; 8];
    b.copy_from_slice(&u[..8]);
    u64::from_le_bytes(b)
}

impl OwnerLease {
    /// Takes the owner lease of the pool mapped by `map` for `me`, or says who holds
    /// it and what to do. Blocks up to `policy.timeout` (plus the settle period) when
    /// the lease is held by a daemon whose liveness must be watched.
    pub fn acquire(
        map: Arc<Mapping>,
        place: Place,
        me: &HostIdentity,
        policy: &OwnerPolicy,
    ) -> Result<OwnerLease, DevdaxError> {
        let interval = policy.interval();
        let first = read_raw(&map).map_err(|e| place.io(e))?;
        match Claim::decode(&first) {
            Seen::Blank => {}
            Seen::Claim(c) if c.state == RELEASED => {}
            Seen::Claim(c) if c.state == SHARED && !policy.takeover => {
                return Err(place.refuse(format!(
                    "the pool is shared by the hosts of a cluster (host {} marked it shared): \
                     serve it with `shared: true` and a `cluster:` section, or, once every host \
                     has stopped serving it, re-create it for one host with `maru-devd \
                     format-devdax --takeover`",
                    c.name
                )));
            }
            Seen::Claim(c) if c.state == SHARED => log::warn!(
                "devdax pool on {} at byte {}: taking the pool that host {} marked shared for \
                 this daemon alone (asked with --takeover)",
                place.device.display(),
                place.offset,
                c.name
            ),
            Seen::Claim(c) if me.same_boot(&c.machine_id, &c.boot_id) => {
                let alive = pid_start(c.pid).is_some_and(|s| s == c.pid_start);
                if alive {
                    return Err(place.refuse(format!(
                        "it is held by another daemon on this host: {}; stop that maru-devd first \
                         (two daemons on one pool would hand out the same memory twice)",
                        c.describe()
                    )));
                }
                log::warn!(
                    "devdax pool on {} at byte {}: taking the owner lease of {}, which is no \
                     longer running",
                    place.device.display(),
                    place.offset,
                    c.describe()
                );
            }
            seen => {
                // Watch the record: a live holder advances its heartbeat.
                let deadline = Instant::now() + policy.timeout;
                while Instant::now() < deadline {
                    std::thread::sleep((interval / 2).max(Duration::from_millis(10)));
                    let now = read_raw(&map).map_err(|e| place.io(e))?;
                    if now != first {
                        let who = match Claim::decode(&now) {
                            Seen::Claim(c) => c.describe(),
                            _ => "a daemon whose record is being rewritten".into(),
                        };
                        return Err(place.refuse(format!(
                            "it is held by a live daemon: {who}; its heartbeat advanced within the \
                             last {:?}. Stop maru-devd there first (or give this host another pool \
                             or byte range); a pool that is not `shared` is used by one host at a \
                             time",
                            policy.timeout
                        )));
                    }
                }
                match seen {
                    Seen::Claim(c)
                        if c.machine_id == me.machine_id
                            && c.name == me.name
                            && c.machine_id != [0; 16] =>
                    {
                        log::warn!(
                            "devdax pool on {} at byte {}: taking the owner lease of {} (an \
                             earlier boot of this host; its heartbeat stood still for {:?})",
                            place.device.display(),
                            place.offset,
                            c.describe(),
                            policy.timeout
                        );
                    }
                    Seen::Claim(c) if !policy.takeover => {
                        return Err(place.refuse(format!(
                            "it is held by {}, whose heartbeat has not advanced for {:?}: that \
                             host looks gone, but it may only be stalled. If you are sure it no \
                             longer runs maru-devd on this pool (or it was powered off), start \
                             this one with `--takeover`",
                            c.describe(),
                            policy.timeout
                        )));
                    }
                    Seen::Claim(c) => log::warn!(
                        "devdax pool on {} at byte {}: taking over the owner lease of {} (asked \
                         with --takeover; its heartbeat stood still for {:?})",
                        place.device.display(),
                        place.offset,
                        c.describe(),
                        policy.timeout
                    ),
                    _ => log::warn!(
                        "devdax pool on {} at byte {}: the owner lease record is unreadable (torn \
                         by a crash) and nobody advanced it for {:?}; taking it",
                        place.device.display(),
                        place.offset,
                        policy.timeout
                    ),
                }
            }
        }
        let mut claim = Claim {
            state: HELD,
            pid: me.pid,
            heartbeat: 1,
            pid_start: me.pid_start,
            machine_id: me.machine_id,
            boot_id: me.boot_id,
            acquired_at: now_secs(),
            nonce: random_u64(),
            name: me.name.clone(),
        };
        let shared = Arc::new(Shared {
            map,
            place,
            lost: AtomicBool::new(false),
        });
        let raced = |now: &[u8; RECORD_LEN]| {
            let who = match Claim::decode(now) {
                Seen::Claim(c) => c.describe(),
                _ => "another daemon".into(),
            };
            shared.place.refuse(format!(
                "another daemon claimed it at the same moment: {who}; only one may hold a pool \
                 that is not `shared`. Stop one of them"
            ))
        };
        // The claim: right after a last read that still shows what we decided on.
        let now = read_raw(&shared.map).map_err(|e| shared.place.io(e))?;
        if now != first {
            return Err(raced(&now));
        }
        write_raw(&shared.map, &claim.encode()).map_err(|e| shared.place.io(e))?;
        // Settle: keep heartbeating for one interval, backing off if anyone else
        // wrote a claim meanwhile.
        for _ in 0..2 {
            std::thread::sleep(interval / 2);
            let now = read_raw(&shared.map).map_err(|e| shared.place.io(e))?;
            if now != claim.encode() {
                return Err(raced(&now));
            }
            claim.heartbeat += 1;
            write_raw(&shared.map, &claim.encode()).map_err(|e| shared.place.io(e))?;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let beat = Arc::clone(&shared);
        let nonce = claim.nonce;
        let thread = std::thread::Builder::new()
            .name("maru-devdax-lease".into())
            .spawn(move || heartbeat(&beat, claim, interval, &stopped))
            .map_err(|e| shared.place.io(e))?;
        Ok(OwnerLease {
            shared,
            stop: Some(stop),
            thread: Some(thread),
            nonce,
        })
    }

    /// Marks the pool shared for a daemon of a cluster: a record already marked
    /// shared is left as it is; otherwise the lease is taken as for one owner
    /// (refused while another daemon holds it alone) and then marked shared, without
    /// a heartbeat: from then on the cluster says who serves the pool.
    pub fn share(
        map: Arc<Mapping>,
        place: Place,
        me: &HostIdentity,
        policy: &OwnerPolicy,
    ) -> Result<OwnerLease, DevdaxError> {
        let marked = |map: &Mapping| -> Result<bool, DevdaxError> {
            let now = read_raw(map).map_err(|e| place.io(e))?;
            Ok(matches!(Claim::decode(&now), Seen::Claim(c) if c.state == SHARED))
        };
        if !marked(&map)? {
            let lease = match OwnerLease::acquire(Arc::clone(&map), place.clone(), me, policy) {
                Ok(lease) => lease,
                // Another host of the cluster that started at the same moment holds
                // the record between its claim and its mark (it settles for one
                // heartbeat interval first, and acquire refuses as soon as it sees a
                // heartbeat): wait for the mark. A daemon serving the pool alone never
                // marks it, and is refused after the wait.
                Err(e) => {
                    let deadline = Instant::now() + policy.timeout + 2 * policy.interval();
                    loop {
                        if marked(&map)? {
                            return Ok(OwnerLease::shared_marker(map, place));
                        }
                        if Instant::now() >= deadline {
                            return Err(e);
                        }
                        std::thread::sleep((policy.interval() / 4).max(Duration::from_millis(5)));
                    }
                }
            };
            lease.mark_shared()?;
        }
        Ok(OwnerLease::shared_marker(map, place))
    }

    fn shared_marker(map: Arc<Mapping>, place: Place) -> OwnerLease {
        OwnerLease {
            shared: Arc::new(Shared {
                map,
                place,
                lost: AtomicBool::new(false),
            }),
            stop: None,
            thread: None,
            nonce: 0,
        }
    }

    /// Stops the heartbeat and rewrites the record as shared.
    fn mark_shared(mut self) -> Result<(), DevdaxError> {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let now = read_raw(&self.shared.map).map_err(|e| self.shared.place.io(e))?;
        if let Seen::Claim(mut c) = Claim::decode(&now) {
            if c.nonce == self.nonce {
                c.state = SHARED;
                write_raw(&self.shared.map, &c.encode()).map_err(|e| self.shared.place.io(e))?;
            }
        }
        self.nonce = 0;
        Ok(())
    }

    /// `Ok` while this daemon still holds the lease; `EIO` once another took it.
    pub fn check(&self) -> std::io::Result<()> {
        if self.shared.lost.load(Ordering::Acquire) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

/// The heartbeat thread: advances the counter every `interval` until stopped, or
/// marks the lease lost when another daemon's claim is found.
fn heartbeat(shared: &Shared, mut claim: Claim, interval: Duration, stop: &mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = match read_raw(&shared.map) {
            Ok(now) => now,
            Err(e) => {
                log::error!(
                    "devdax pool on {}: cannot read its owner lease: {e}",
                    shared.place.device.display()
                );
                continue;
            }
        };
        if now != claim.encode() {
            shared.lost.store(true, Ordering::Release);
            let who = match Claim::decode(&now) {
                Seen::Claim(c) => c.describe(),
                _ => "an unreadable record".into(),
            };
            log::error!(
                "devdax pool on {} at byte {}: this daemon lost the pool's owner lease to {who} \
                 (taken with --takeover while this daemon was stalled?); every operation on the \
                 pool now fails with EIO. Stop this daemon: the other one owns the pool",
                shared.place.device.display(),
                shared.place.offset
            );
            return;
        }
        claim.heartbeat += 1;
        if let Err(e) = write_raw(&shared.map, &claim.encode()) {
            log::error!(
                "devdax pool on {}: cannot advance its owner lease: {e}",
                shared.place.device.display()
            );
        }
    }
}

impl Drop for OwnerLease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.shared.lost.load(Ordering::Acquire) {
            return;
        }
        // Mark the record released, if it is still ours.
        if let Ok(now) = read_raw(&self.shared.map) {
            if let Seen::Claim(mut c) = Claim::decode(&now) {
                if c.nonce == self.nonce && c.state == HELD {
                    c.state = RELEASED;
                    if let Err(e) = write_raw(&self.shared.map, &c.encode()) {
                        log::warn!(
                            "devdax pool on {}: cannot release its owner lease: {e}",
                            self.shared.place.device.display()
                        );
                    }
                }
            }
        }
    }
}

/// The image of a held lease record of another host (`machine_id`, `name`) at
/// heartbeat `beat`, for tests that play that host.
#[cfg(test)]
pub(crate) fn foreign_claim(name: &str, machine_id: [u8; 16], beat: u64) -> Vec<u8> {
    Claim {
        state: HELD,
        pid: 4242,
        heartbeat: beat,
        pid_start: 1,
        machine_id,
        boot_id: [0xB0; 16],
        acquired_at: now_secs(),
        nonce: 7,
        name: name.into(),
    }
    .encode()
    .to_vec()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            state: HELD,
            pid: 42,
            heartbeat: 7,
            pid_start: 1234,
            machine_id: [1; 16],
            boot_id: [2; 16],
            acquired_at: 1_700_000_000,
            nonce: 99,
            name: "node-a".into(),
        }
    }

    #[test]
    fn record_round_trip_and_damage() {
        let c = claim();
        let b = c.encode();
        assert_eq!(Claim::decode(&b), Seen::Claim(c.clone()));
        let mut torn = b;
        torn[20] ^= 1;
        assert_eq!(Claim::decode(&torn), Seen::Unreadable);
        assert_eq!(Claim::decode(&[0; RECORD_LEN]), Seen::Blank);
        let long = Claim {
            name: "x".repeat(200),
            ..c
        };
        match Claim::decode(&long.encode()) {
            Seen::Claim(back) => assert_eq!(back.name.len(), NAME_MAX),
            other => panic!("{other:?}"),
        }
    }

    /// Two hosts of a cluster opening a blank shared pool at the same moment both
    /// get it (one claims and marks it, the other waits for the mark); a daemon
    /// serving it alone is still refused.
    #[test]
    fn hosts_sharing_a_pool_at_the_same_moment_both_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(1 << 20).unwrap();
        let map = Arc::new(Mapping::new(&file, 0, 1 << 20).unwrap());
        let place = Place {
            device: path.clone(),
            offset: 0,
        };
        let policy = OwnerPolicy {
            timeout: Duration::from_millis(500),
            takeover: false,
        };
        let host = |n: u8| HostIdentity {
            machine_id: [n; 16],
            boot_id: [n; 16],
            name: format!("node-{n}"),
            pid: std::process::id(),
            pid_start: pid_start(std::process::id()).unwrap(),
        };
        for _round in 0..3 {
            write_raw(&map, &[0; RECORD_LEN]).unwrap();
            let results: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = (1..=3u8)
                    .map(|n| {
                        let (map, place, policy) = (Arc::clone(&map), place.clone(), &policy);
                        s.spawn(move || OwnerLease::share(map, place, &host(n), policy).map(|_| ()))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for r in results {
                r.expect("every host of the cluster gets the shared pool");
            }
            assert!(
                matches!(Claim::decode(&read_raw(&map).unwrap()), Seen::Claim(c) if c.state == SHARED)
            );
        }
        // A single owner never marks it: the cluster host is refused after its wait.
        write_raw(&map, &[0; RECORD_LEN]).unwrap();
        let alone =
            OwnerLease::acquire(Arc::clone(&map), place.clone(), &host(9), &policy).unwrap();
        let err = OwnerLease::share(Arc::clone(&map), place, &host(1), &policy).unwrap_err();
        assert!(err.to_string().contains("held by"), "{err}");
        drop(alone);
    }

    #[test]
    fn interval_is_a_fifth_of_the_timeout_capped_at_a_second() {
        let p = |ms| OwnerPolicy {
            timeout: Duration::from_millis(ms),
            takeover: false,
        };
        assert_eq!(p(5000).interval(), Duration::from_secs(1));
        assert_eq!(p(60_000).interval(), Duration::from_secs(1));
        assert_eq!(p(500).interval(), Duration::from_millis(100));
    }
}

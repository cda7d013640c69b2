//! `/proc/PID/pagemap` reading for the zero-copy checks. Also used by
//! libmaru's tests (`#[path]` include), so there is one PFN reader.

/// Physical frame numbers of `len` bytes at `addr` in process `pid`, one per
/// 4 KiB page (0 = not present). Needs root (PFNs read as 0 otherwise).
pub fn pfns(pid: u32, addr: usize, len: usize) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let path = format!("/proc/{pid}/pagemap");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    let pages = len.div_ceil(4096);
    let mut buf = vec![0u8; pages * 8];
    f.read_exact_at(&mut buf, (addr / 4096 * 8) as u64)
        .unwrap_or_else(|e| panic!("read {path} at {addr:#x}: {e}"));
    buf.chunks_exact(8)
        .map(|c| {
            let e = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
            if e >> 63 == 1 {
                e & ((1 << 55) - 1)
            } else {
                0
            }
        })
        .collect()
}

//! `/proc/PID/pagemap` reading for the zero-copy checks: which physical pages back
//! a mapping. Needs root (the kernel reports every frame as 0 otherwise).

use std::os::unix::fs::FileExt;

/// The page size the pagemap entries describe.
const PAGE: usize = 4096;

/// Physical frame numbers of `len` bytes at `addr` in process `pid`, one per
/// 4 KiB page (0 = not present).
pub fn pfns(pid: u32, addr: usize, len: usize) -> Vec<u64> {
    let path = format!("/proc/{pid}/pagemap");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    let pages = len.div_ceil(PAGE);
    let mut buf = vec![0u8; pages * 8];
    f.read_exact_at(&mut buf, (addr / PAGE * 8) as u64)
        .unwrap_or_else(|e| panic!("read {path} at {addr:#x}: {e}"));
    buf.chunks_exact(8)
        .map(|c| {
            let e = u64::from_ne_bytes(c.try_into().expect("chunks_exact gives 8 bytes"));
            if e >> 63 == 1 {
                e & ((1 << 55) - 1)
            } else {
                0
            }
        })
        .collect()
}

/// Physical frame number of the page at `addr` in this process (0 if hidden or
/// not present).
pub fn pfn(addr: *const u8) -> u64 {
    pfns(std::process::id(), addr as usize, 1)[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touched_page_has_a_frame_for_root() {
        let page = vec![1u8; PAGE * 2];
        let n = pfn(page.as_ptr());
        if nix::unistd::geteuid().is_root() {
            assert_ne!(n, 0, "a written heap page is present");
        } else {
            assert_eq!(n, 0, "frames are hidden from other users");
        }
    }
}

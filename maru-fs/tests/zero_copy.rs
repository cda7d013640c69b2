//! The data path: chunk mappings are the pool's own pages, in every process.

mod common;

use common::pagemap::pfns;
use common::*;

/// One process writes a chunk through its mapping, another maps it read-only: both
/// see the backing file's very pages, and the daemon never served a READ or WRITE.
#[test]
fn mappings_share_the_backing_pages() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 64 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let dir_s = dir.to_str().unwrap();
    let size = 2 * MIB as usize;
    let writer = Held::start(
        &[
            "publish",
            dir_s,
            ".stage-w",
            "k1",
            &size.to_string(),
            "7",
            "hold",
        ],
        false,
        "len",
    );
    assert_eq!(get(&writer.kv, "result"), "published");
    let reader = Held::start(&["map", &format!("{dir_s}/k1"), "hold"], false, "addr");
    assert_eq!(get(&reader.kv, "sum"), pattern_sum(7, size).to_string());

    let waddr =
        usize::from_str_radix(get(&writer.kv, "addr").trim_start_matches("0x"), 16).unwrap();
    let raddr =
        usize::from_str_radix(get(&reader.kv, "addr").trim_start_matches("0x"), 16).unwrap();
    let wp = pfns(writer.pid(), waddr, size);
    let rp = pfns(reader.pid(), raddr, size);

    // The backing file's own pages, as seen through a direct mapping of it.
    let backing = std::fs::File::open(fx.backing_dir("p").join("k1")).unwrap();
    // SAFETY: a read-only mapping of a backing file that is not truncated during the test.
    let bmap = unsafe { memmap2::MmapOptions::new().populate().map(&backing) }.unwrap();
    let bp = pfns(std::process::id(), bmap.as_ptr() as usize, size);

    assert!(bp.iter().all(|&p| p != 0), "backing pages not all present");
    let same_w = wp.iter().zip(&bp).filter(|(a, b)| a == b).count();
    let same_r = rp.iter().zip(&bp).filter(|(a, b)| a == b).count();
    assert_eq!(
        same_w,
        bp.len(),
        "writer mapping differs from the backing pages"
    );
    assert_eq!(
        same_r,
        bp.len(),
        "reader mapping differs from the backing pages"
    );

    let st = fx.stats("p");
    assert_eq!(st.read_requests, 0, "daemon served READ requests");
    assert_eq!(st.write_requests, 0, "daemon served WRITE requests");
    writer.finish();
    reader.finish();
}

/// An unprivileged process maps a chunk in a pool it may read, and gets EACCES in
/// a pool it may not enter.
#[test]
fn unprivileged_reader_obeys_pool_permissions() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("open", 16 * MIB), ("closed", 16 * MIB)], |c| {
        if c.name == "closed" {
            c.mode = 0o700;
        }
    });
    for pool in ["open", "closed"] {
        let dir = fx.pool_dir(pool);
        let (code, kv) = run_probe(
            &["publish", dir.to_str().unwrap(), ".s", "key", "65536", "3"],
            false,
        );
        assert_eq!((code, get(&kv, "result")), (0, "published"), "{pool}");
    }
    let open_key = fx.pool_dir("open").join("key");
    let (code, kv) = run_probe(&["map", open_key.to_str().unwrap()], true);
    assert_eq!(code, 0, "unprivileged map failed: {kv:?}");
    assert_eq!(get(&kv, "sum"), pattern_sum(3, 65536).to_string());

    let closed_key = fx.pool_dir("closed").join("key");
    let (code, kv) = run_probe(&["map", closed_key.to_str().unwrap()], true);
    assert_eq!((code, get(&kv, "error")), (2, "EACCES"));

    // Nor may it create chunks in a pool it cannot write.
    let (code, kv) = run_probe(
        &[
            "publish",
            fx.pool_dir("open").to_str().unwrap(),
            ".u",
            "k2",
            "4096",
            "1",
        ],
        true,
    );
    assert_eq!((code, get(&kv, "error")), (2, "EACCES"));
}

/// A long-term pin (io_uring buffer registration, FOLL_LONGTERM like
/// cudaHostRegister) works on a chunk mapping and keeps the same pages.
#[test]
fn long_term_pin_on_chunk_mapping() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let size = 2 * MIB as usize;
    let pin = Held::start(
        &["pin", dir.to_str().unwrap(), ".pinned", &size.to_string()],
        false,
        "len",
    );
    if let Some((_, why)) = pin.kv.iter().find(|(k, _)| k == "uring") {
        maru_testkit::need::skip("no io_uring", why);
        pin.finish();
        return;
    }
    assert_eq!(
        get(&pin.kv, "register"),
        "ok",
        "io_uring buffer registration failed"
    );
    let before: u64 = get(&pin.kv, "vmpin_before_kib").parse().unwrap();
    let after: u64 = get(&pin.kv, "vmpin_after_kib").parse().unwrap();
    assert!(
        after >= before + (size as u64 / 1024),
        "VmPin did not rise by the chunk size: {before} kB -> {after} kB"
    );
    // The pinned pages are still the backing file's pages (no migration, no copy).
    let addr = usize::from_str_radix(get(&pin.kv, "addr").trim_start_matches("0x"), 16).unwrap();
    let pinned = pfns(pin.pid(), addr, size);
    let backing = std::fs::File::open(fx.backing_dir("p").join(".pinned")).unwrap();
    // SAFETY: a read-only mapping of a backing file that is not truncated during the test.
    let bmap = unsafe { memmap2::MmapOptions::new().populate().map(&backing) }.unwrap();
    let bp = pfns(std::process::id(), bmap.as_ptr() as usize, size);
    assert!(bp.iter().all(|&p| p != 0));
    assert_eq!(pinned, bp, "pinned mapping is not the backing pages");
    assert_eq!(fx.stats("p").pinned_bytes, size as u64);
    pin.finish();
}

//! The data path: chunk mappings are the pool's own pages, in every process.

mod common;

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

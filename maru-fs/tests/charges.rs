//! Every byte charged, every charge returned: capacity accounting against real
//! processes that die, map, and grow chunks behind the daemon's back.

mod common;

use common::*;

fn statfs_used(path: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

#[test]
fn killed_mapped_writer_returns_its_charge() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 64 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let mut w = Held::start(
        &[
            "stall",
            dir.to_str().unwrap(),
            ".stage-killed",
            &(2 * MIB).to_string(),
        ],
        false,
        "ready",
    );
    assert_eq!(statfs_used(&dir), 2 * MIB);
    assert_eq!(
        xattr_get(&dir, "user.maru.used").expect("used xattr"),
        b"2097152"
    );
    w.child.kill().expect("SIGKILL writer");
    w.child.wait().expect("reap writer");
    wait_until("name gone", || !dir.join(".stage-killed").exists());
    // Nothing asks the daemon for stats here: df alone must see the space return.
    wait_until("statfs used back to 0", || statfs_used(&dir) == 0);
    assert_eq!(xattr_get(&dir, "user.maru.used").expect("used xattr"), b"0");
    assert_eq!(fx.stats("p").used_bytes, 0);
}

//! Chunks survive a daemon restart: a new mount adopts the backing files.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use maru_fs::pattern::byte as pattern;
use maru_proto::xattr;

#[test]
fn remount_adopts_published_chunks_byte_for_byte() {
    if skip_unless_root() {
        return;
    }
    let mut fx = Fixture::new(&[("p", 64 * MIB)], |c| {
        c.mode = 0o777;
        c.gid = 4343;
    });
    let dir = fx.pool_dir("p");
    let d = dir.to_str().unwrap();
    // One chunk from an unprivileged writer, one from root with the writer's xattr.
    let (code, kv) = run_probe(&["publish", d, ".u", "from-nobody", "1048576", "11"], true);
    assert_eq!((code, get(&kv, "result")), (0, "published"), "{kv:?}");
    let (code, kv) = run_probe(&["publish", d, ".r", "from-root", "300000", "12"], false);
    assert_eq!((code, get(&kv, "result")), (0, "published"), "{kv:?}");
    let created_before = std::fs::read(dir.join("from-root")).unwrap();
    let f = std::fs::File::create_new(dir.join(".x")).unwrap();
    f.set_len(4096).unwrap();
    xattr_set(&dir.join(".x"), xattr::KEY, b"org/model/layer:0/hash").unwrap();
    std::fs::rename(dir.join(".x"), dir.join("with-xattr")).unwrap();
    drop(f);
    let created = xattr_get(&dir.join("with-xattr"), xattr::CREATED).unwrap();
    // A reader keeps a chunk open and mapped across the restart.
    let reader = Held::start(&["map", &format!("{d}/from-nobody"), "hold"], false, "addr");
    // A writer that never published leaves a staging file behind.
    std::fs::write(fx.backing_dir("p").join(".stage-dead"), b"partial").unwrap();

    let backing = fx.unmount();
    let cfg = {
        let mut c = pool("p", &backing.path().join("p"), 64 * MIB);
        c.mode = 0o777;
        c.gid = 4343;
        c
    };
    let fx2 = Fixture::mount_with(backing, vec![cfg]);
    let dir2 = fx2.pool_dir("p");
    let mut names: Vec<_> = std::fs::read_dir(&dir2)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["from-nobody", "from-root", "with-xattr"]);
    let x = dir2.join("with-xattr");
    assert_eq!(
        xattr_get(&x, xattr::KEY).unwrap(),
        b"org/model/layer:0/hash"
    );
    assert_eq!(xattr_get(&x, xattr::CREATED).unwrap(), created);
    assert_eq!(xattr_get(&x, xattr::STATE).unwrap(), b"published");
    assert!(
        !fx2.backing_dir("p").join(".stage-dead").exists(),
        "leftover staging file kept"
    );

    let a = std::fs::read(dir2.join("from-nobody")).unwrap();
    assert_eq!(a, (0..1048576).map(|i| pattern(11, i)).collect::<Vec<u8>>());
    assert_eq!(
        std::fs::read(dir2.join("from-root")).unwrap(),
        created_before
    );
    let m = std::fs::metadata(dir2.join("from-nobody")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 4343, 0o644));
    let st = fx2.stats("p");
    assert!(st.hits >= 3, "adopted keys were looked up: {st:?}");
    assert_eq!(st.published_chunks, 3);
    assert_eq!(st.used_bytes, 1048576 + 300000 + 4096);
    // Adopted chunks are still sealed.
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(dir2.join("from-root"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    // The reader that held its mapping across the restart still sees its data.
    assert_eq!(get(&reader.kv, "sum"), pattern_sum(11, 1048576).to_string());
    reader.finish();
}

/// A daemon that died leaves a dead FUSE mount (ENOTCONN) behind; mounting again on
/// the same mount point replaces it.
#[test]
fn mount_over_a_dead_fuse_mount() {
    if skip_unless_root() {
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    // A FUSE mount whose server is gone: mount with a /dev/fuse fd, then close it.
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0",
        std::os::fd::AsRawFd::as_raw_fd(&dev)
    );
    nix::mount::mount(
        Some("dead"),
        mnt.path(),
        Some("fuse"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    drop(dev);
    let e = std::fs::metadata(mnt.path()).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOTCONN),
        "the mount should be dead"
    );

    let backing = tempfile::tempdir_in("/dev/shm").unwrap();
    let mounted = maru_fs::mount(
        &maru_fs::MountOptions::new(mnt.path()),
        vec![pool("p", backing.path(), MIB)],
    )
    .expect("mount over the dead mount");
    assert!(mnt.path().join("p").is_dir());
    mounted.unmount().unwrap();
}

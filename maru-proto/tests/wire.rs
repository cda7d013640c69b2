//! The wire values, spelled out: every name and number here is read by another
//! program (a daemon of another version, libmaru, Python through libmaru, the
//! docs' shell examples). Changing a constant in `maru-proto` must fail this
//! test, so that the change is made on purpose, with the docs and a version
//! bump, and never by a rename.

use maru_proto::{index, name, xattr};

#[test]
fn xattr_names_on_the_wire() {
    assert_eq!(xattr::PREFIX, "user.maru.");
    assert_eq!(xattr::STATE, "user.maru.state");
    assert_eq!(xattr::PINS, "user.maru.pins");
    assert_eq!(xattr::NODE, "user.maru.node");
    assert_eq!(xattr::CREATED, "user.maru.created");
    assert_eq!(xattr::CAPACITY, "user.maru.capacity");
    assert_eq!(xattr::USED, "user.maru.used");
    assert_eq!(xattr::ONLINE, "user.maru.online");
    assert_eq!(xattr::KEY, "user.maru.key");
    assert_eq!(xattr::DEVDAX_PATH, "user.maru.devdax.path");
    assert_eq!(xattr::DEVDAX_OFFSET, "user.maru.devdax.offset");
    assert_eq!(xattr::DEVDAX_LEN, "user.maru.devdax.len");
    assert_eq!(xattr::DEVDAX_EXTENT, "user.maru.devdax.extent");
    assert_eq!(xattr::KEY_C, c"user.maru.key");
    assert_eq!(xattr::PINS_C, c"user.maru.pins");
    assert_eq!(xattr::DEVDAX_PATH_C, c"user.maru.devdax.path");
}

#[test]
fn xattr_values_on_the_wire() {
    assert_eq!(xattr::STAGING, "staging");
    assert_eq!(xattr::PUBLISHED, "published");
    assert_eq!(xattr::NODE_UNKNOWN, "unknown");
    assert_eq!(xattr::ONLINE_VALUE, "online");
    assert_eq!(xattr::OFFLINE_VALUE, "offline");
    assert_eq!(xattr::USER_XATTR_LIMIT, 4096);
}

#[test]
fn names_on_the_wire() {
    assert_eq!(name::STAGING_MARK, b'.');
    assert_eq!(name::STAGING_PREFIX, ".stage-");
    // Also in libmaru/include/maru.h (MARU_NAME_MAX, MARU_KEY_MAX) and
    // python/maru/_lib.py.
    assert_eq!(name::NAME_MAX, 255);
    assert_eq!(name::KEY_MAX, 4000);
}

#[test]
fn index_format_on_the_wire() {
    assert_eq!(index::INDEX_NAME, ".maru-index");
    assert_eq!(index::INDEX_CNAME, c".maru-index");
    assert_eq!(index::MAGIC.to_le_bytes(), *b"MARUIDX1");
    assert_eq!(index::VERSION, 1);
    assert_eq!(index::HEADER_LEN, 4096);
    assert_eq!((index::EMPTY, index::TOMBSTONE), (0, 1));
    assert_eq!(
        [
            index::word::MAGIC,
            index::word::VERSION,
            index::word::SEQ,
            index::word::SUPERSEDED,
            index::word::SLOTS,
            index::word::K0,
            index::word::K1,
            index::word::LIVE,
            index::word::TOMBSTONES
        ],
        [0, 1, 2, 3, 4, 5, 6, 7, 8]
    );
}

#[test]
fn lending_messages_on_the_wire() {
    use maru_proto::lend::{Entry, Reply, Request, MAX_KEYS};
    assert_eq!(xattr::LEND_SOCKET, "user.maru.lend.socket");
    assert_eq!(MAX_KEYS, 253);
    assert_eq!(
        Request::encode(b"p1", &[b"k", b"ab"]).unwrap(),
        b"MLQ1\x02p1\x02\x00\x01k\x02ab"
    );
    let reply = Reply::encode(
        0,
        &[Entry {
            errno: 2,
            size: 0x0102,
            ino: 3,
        }],
    )
    .unwrap();
    assert_eq!(
        reply,
        b"MLA1\x00\x00\x00\x00\x01\x00\x02\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00"
    );
}

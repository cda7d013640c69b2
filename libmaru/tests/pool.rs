//! libmaru against real pools: a maru-fs mount and a plain tmpfs directory.
//! Multi-process and unprivileged-user cases run the `child` test of this
//! binary in a new process.

mod common;

use common::{check, fill, hex, kinds, pfn, poll, run_child, unhex, Fixture, Kind, CHILD_ENV};
use maru::{ChunkHandle, ChunkState, Pool, Publish, UringPinner, View, HUGE_PAGE};
use maru_proto::{name, xattr};

/// Publishes a chunk of `size` bytes filled with the pattern of `seed`.
fn put(pool: &Pool, key: &[u8], size: usize, seed: u8) -> Publish {
    let mut c = pool.create(size).unwrap();
    fill(c.as_mut_slice(), seed);
    c.publish(key).unwrap().outcome()
}

#[test]
fn publish_then_get_maps_the_same_bytes() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        for (i, size) in [1usize, 4096, 256 << 10, 3 << 20].into_iter().enumerate() {
            let key = format!("model@1@0@{i:x}/part@bfloat16");
            let mut c = pool.create(size).unwrap();
            assert_eq!(c.len(), size);
            assert!(
                c.as_slice().iter().all(|&b| b == 0),
                "{kind:?}: fresh chunk is zeroed"
            );
            fill(c.as_mut_slice(), i as u8);
            let c = c.publish(key.as_bytes()).unwrap();
            assert_eq!(c.outcome(), Publish::Published, "{kind:?}");
            assert!(matches!(c.state(), ChunkState::Published(_)));
            assert!(
                check(c.as_slice(), i as u8),
                "the writer reads what it sealed"
            );
            let v = pool.get(key.as_bytes()).unwrap().expect("published key");
            assert_eq!(v.len(), size);
            assert!(check(v.as_slice(), i as u8), "{kind:?} size {size}");
            if size >= HUGE_PAGE {
                assert_eq!(
                    v.as_ptr() as usize % HUGE_PAGE,
                    0,
                    "large views are 2 MiB-aligned"
                );
                assert_eq!(
                    c.as_ptr() as usize % HUGE_PAGE,
                    0,
                    "large chunks are 2 MiB-aligned"
                );
            }
            // Writer and reader map the same physical page (zero copy).
            let (a, b) = (pfn(c.as_ptr()), pfn(v.as_ptr()));
            assert!(
                a != 0 && a == b,
                "{kind:?}: writer pfn {a:#x} reader pfn {b:#x}"
            );
        }
        assert!(pool.get(b"never-published").unwrap().is_none());
    }
}

#[test]
fn first_writer_wins_and_the_loser_is_cleaned_up() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let mut a = pool.create(8192).unwrap();
        let mut b = pool.create(8192).unwrap();
        fill(a.as_mut_slice(), 1);
        fill(b.as_mut_slice(), 2);
        let a = a.publish(b"k").unwrap();
        assert_eq!(a.outcome(), Publish::Published);
        let b = b.publish(b"k").unwrap();
        assert_eq!(b.outcome(), Publish::AlreadyExists, "{kind:?}");
        assert_eq!(*b.state(), ChunkState::Aborted);
        // The loser's mapping stays readable until dropped.
        assert!(check(b.as_slice(), 2));
        // Publishing (or writing) again: in Rust the chunk is gone (publish
        // consumed it); through the C ABI's handle it is refused with EINVAL.
        let mut lost = ChunkHandle::from(pool.create(8192).unwrap());
        assert_eq!(lost.publish(b"k").unwrap(), Publish::AlreadyExists);
        assert_eq!(lost.publish(b"other").unwrap_err().errno(), libc::EINVAL);
        let mut won = ChunkHandle::from(pool.create(8192).unwrap());
        assert_eq!(won.publish(b"k2").unwrap(), Publish::Published);
        assert_eq!(won.publish(b"again").unwrap_err().errno(), libc::EINVAL);
        assert_eq!(won.write(0, b"x").unwrap_err().errno(), libc::EINVAL);
        drop((lost, won, a));
        assert!(pool.remove(b"k2").unwrap());
        drop(b);
        assert!(check(pool.get(b"k").unwrap().unwrap().as_slice(), 1));
        let names = fx.wait_backing(|n| n == ["k"]);
        assert_eq!(names, vec!["k".to_string()], "{kind:?}");
    }
}

#[test]
fn dropping_an_unpublished_chunk_removes_its_staging_file() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let c = pool.create(4096).unwrap();
        let staging = c.staging_name();
        assert!(staging.starts_with(name::STAGING_PREFIX), "{staging}");
        assert_eq!(fx.backing_names().len(), 1, "{kind:?}");
        drop(c);
        let names = fx.wait_backing(|n| n.is_empty());
        assert!(names.is_empty(), "{kind:?}: {names:?}");
        assert_eq!(pool.list_keys().unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(pool.create(0).unwrap_err().errno(), libc::EINVAL);
    }
}

#[test]
fn contains_remove_and_mappings_outliving_removal() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        assert!(!pool.contains(b"x").unwrap());
        put(&pool, b"x", 65536, 9);
        assert!(pool.contains(b"x").unwrap(), "{kind:?}");
        let v = pool.get(b"x").unwrap().unwrap();
        assert!(pool.remove(b"x").unwrap());
        assert!(!pool.contains(b"x").unwrap(), "{kind:?}");
        assert!(!pool.remove(b"x").unwrap());
        assert!(pool.get(b"x").unwrap().is_none());
        assert!(
            check(v.as_slice(), 9),
            "{kind:?}: a removed chunk stays mapped"
        );
        // The key can be published again with new content.
        put(&pool, b"x", 4096, 10);
        assert!(check(pool.get(b"x").unwrap().unwrap().as_slice(), 10));
    }
}

#[test]
fn batch_and_prefix_operations_keep_order() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let keys: Vec<Vec<u8>> = (0..8).map(|i| format!("tok/{i}").into_bytes()).collect();
        for i in [0usize, 1, 2, 4, 5] {
            put(&pool, &keys[i], 4096, i as u8);
        }
        let present = pool.batch_contains(&keys).unwrap();
        assert_eq!(
            present,
            vec![true, true, true, false, true, true, false, false],
            "{kind:?}"
        );
        let views = pool.batch_get(&keys).unwrap();
        for (i, v) in views.iter().enumerate() {
            assert_eq!(v.is_some(), present[i]);
            if let Some(v) = v {
                assert!(check(v.as_slice(), i as u8), "{kind:?} key {i}");
            }
        }
        assert_eq!(pool.prefix_contains(&keys).unwrap(), 3);
        assert_eq!(pool.prefix_contains(&keys[4..6]).unwrap(), 2);
        assert_eq!(pool.prefix_contains(&keys[3..]).unwrap(), 0);
        assert_eq!(pool.prefix_contains::<&[u8]>(&[]).unwrap(), 0);
        let pinned = pool.prefix_get(&keys).unwrap();
        assert_eq!(pinned.len(), 3);
        for (i, v) in pinned.iter().enumerate() {
            assert!(check(v.as_slice(), i as u8));
        }
    }
}

#[test]
fn arbitrary_keys_round_trip_through_the_pool() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let mut long = b"vllm@llama-3-8b@1@0@".to_vec();
        long.extend(std::iter::repeat_n(b'/', 700));
        let keys: Vec<Vec<u8>> = vec![
            b"a/b/c".to_vec(),
            b".dot".to_vec(),
            b"..".to_vec(),
            b"nul\0inside".to_vec(),
            b"100%".to_vec(),
            "\u{00e9}t\u{00e9}".as_bytes().to_vec(),
            vec![b'k'; 255],
            long,
            vec![0xff; 2000],
        ];
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                put(&pool, k, 4096, i as u8),
                Publish::Published,
                "{kind:?} key {i}"
            );
        }
        for (i, k) in keys.iter().enumerate() {
            assert!(pool.contains(k).unwrap(), "{kind:?} key {i}");
            assert!(
                check(pool.get(k).unwrap().unwrap().as_slice(), i as u8),
                "{kind:?} key {i}"
            );
        }
        let mut listed = pool.list_keys().unwrap();
        listed.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(listed, want, "{kind:?}");
        // No key's name in the pool is a staging name or exceeds NAME_MAX bytes.
        for e in std::fs::read_dir(&fx.backing).unwrap() {
            let n = e.unwrap().file_name();
            let n = std::os::unix::ffi::OsStrExt::as_bytes(n.as_os_str()).to_vec();
            if n == maru_fs::index::INDEX_NAME.as_bytes() {
                continue; // maru-fs's membership index, not a chunk
            }
            assert!(!name::is_staging(&n) && n.len() <= name::NAME_MAX, "{n:?}");
        }
        // A long key's name is checked against its xattr: a different long key
        // never reads it, and a file under that name without the xattr is not it.
        let mut other = keys[7].clone();
        other.push(b'!');
        assert!(pool.get(&other).unwrap().is_none());
    }
}

#[test]
fn long_key_name_with_a_foreign_xattr_is_not_the_key() {
    // Plain directory only: planting a file under a key's name needs direct access.
    let fx = Fixture::new(Kind::Shm, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let key = vec![b'/'; 300];
    let name = maru::key::KeyName::new(&key).unwrap();
    assert!(name.is_hashed());
    let path = fx.pool.join(std::str::from_utf8(name.as_bytes()).unwrap());
    std::fs::write(&path, b"forged").unwrap();
    assert!(pool.get(&key).unwrap().is_none(), "no xattr: not the key");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let wrong = b"another key";
    // SAFETY: valid NUL-terminated strings and value buffer.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            xattr::KEY_C.as_ptr(),
            wrong.as_ptr().cast(),
            wrong.len(),
            0,
        )
    };
    assert_eq!(rc, 0);
    assert!(
        pool.get(&key).unwrap().is_none(),
        "wrong xattr: not the key"
    );
}

#[test]
fn pinning_with_mlock_and_io_uring() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let mut c = pool.create(4 << 20).unwrap();
        fill(c.as_mut_slice(), 3);
        c.mlock().unwrap();
        c.mlock().unwrap();
        c.munlock().unwrap();
        let mut pinner = UringPinner::new().unwrap();
        let pin = pinner
            .pin(c.as_slice())
            .unwrap_or_else(|e| panic!("{kind:?}: io_uring long-term pin of a chunk: {e}"));
        pin.unpin().unwrap();
        let _c = c.publish(b"pinned").unwrap();
        let v = pool.get(b"pinned").unwrap().unwrap();
        v.mlock().unwrap();
        v.prefault().unwrap();
        v.munlock().unwrap();
        // The kernel registers io_uring buffers for writing: read-only views are refused.
        let e = pinner
            .pin(v.as_slice())
            .err()
            .expect("read-only views cannot be io_uring-pinned");
        assert_eq!(e.errno(), libc::EFAULT, "{e}");
    }
}

#[test]
fn cuda_registration_reports_clearly_without_a_driver() {
    let fx = Fixture::new(Kind::Shm, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let mut c = pool.create(1 << 20).unwrap().publish(b"g").unwrap();
    let v = pool.get(b"g").unwrap().unwrap();
    match maru::cuda_available() {
        Ok(()) => {
            v.cuda_register().unwrap();
            v.cuda_register().unwrap(); // idempotent
            assert!(v.is_cuda_registered());
            v.cuda_unregister().unwrap();
            c.cuda_register().unwrap();
            c.cuda_unregister().unwrap();
            v.cuda_register().unwrap(); // unregistered on drop
        }
        Err(e) => {
            maru_testkit::need::no_gpu(&e);
            let msg = e.to_string();
            assert!(matches!(e.errno(), libc::ENOTSUP | libc::ENODEV), "{msg}");
            let r = v.cuda_register().unwrap_err();
            assert_eq!(r.errno(), e.errno());
            assert!(!v.is_cuda_registered());
            assert!(c.cuda_register().is_err());
            assert!(msg.contains("feature") || msg.contains("driver") || msg.contains("device"));
        }
    }
}

#[test]
fn errors_name_the_pool_and_say_what_to_do() {
    let e = Pool::open("/dev/shm/no-such-maru-pool").unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    assert!(e.to_string().contains("/dev/shm/no-such-maru-pool"), "{e}");
    let fx = Fixture::new(Kind::Shm, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    assert_eq!(pool.get(b"").unwrap_err().errno(), libc::EINVAL);
    let e = pool.contains(&vec![b'x'; 5000]).unwrap_err();
    assert_eq!(e.errno(), libc::ENAMETOOLONG);
}

#[test]
fn another_process_maps_the_same_pages() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let key = b"shared/chunk";
        put(&pool, key, 2 << 20, 5);
        let v = pool.get(key).unwrap().unwrap();
        // Views are mapped lazily: fault the pages in before reading their frames.
        v.prefault().unwrap();
        let out = run_child("get", &fx, key, false);
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f[0], "ok", "{kind:?}: {out}");
        assert_eq!(f[1], (2 << 20).to_string());
        assert_eq!(f[2], "true", "child saw the bytes");
        assert_eq!(
            f[3],
            format!("{:x}", pfn(v.as_ptr())),
            "{kind:?}: same physical page"
        );
        // A child that creates and publishes; the parent reads it.
        let out = run_child("put", &fx, b"from/child", false);
        assert_eq!(out, "ok published", "{kind:?}");
        assert!(check(
            pool.get(b"from/child").unwrap().unwrap().as_slice(),
            77
        ));
    }
}

#[test]
fn unprivileged_users_get_clean_errors_and_work_where_allowed() {
    for kind in kinds() {
        // A pool open to everyone: nobody writes, root reads.
        let fx = Fixture::new(kind, 0o777);
        let out = run_child("put", &fx, b"by/nobody", true);
        assert_eq!(out, "ok published", "{kind:?}");
        let pool = Pool::open(&fx.pool).unwrap();
        assert!(check(
            pool.get(b"by/nobody").unwrap().unwrap().as_slice(),
            77
        ));
        put(&pool, b"by/root", 4096, 5);
        let out = run_child("get", &fx, b"by/root", true);
        assert!(out.starts_with("ok 4096 true"), "{kind:?}: {out}");

        // A pool readable but not writable by others: reads work, creates fail cleanly.
        let fx = Fixture::new(kind, 0o755);
        let pool = Pool::open(&fx.pool).unwrap();
        put(&pool, b"ro", 4096, 5);
        let out = run_child("get", &fx, b"ro", true);
        assert!(out.starts_with("ok 4096 true"), "{kind:?}: {out}");
        let out = run_child("put", &fx, b"nope", true);
        assert!(
            out.starts_with(&format!("err {} ", libc::EACCES)),
            "{kind:?}: {out}"
        );
        assert!(out.contains("pool"), "{out}");

        // A private pool: opening it fails with EACCES and a hint.
        let fx = Fixture::new(kind, 0o700);
        let out = run_child("get", &fx, b"x", true);
        assert!(
            out.starts_with(&format!("err {} ", libc::EACCES)),
            "{kind:?}: {out}"
        );
        assert!(
            out.contains("group"),
            "the message says what to check: {out}"
        );
    }
}

#[test]
fn batch_get_borrows_cold_keys_from_the_lending_socket_and_falls_back() {
    if !common::root() {
        return;
    }
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let long = vec![b'l'; 300];
    let keys: Vec<&[u8]> = vec![b"a", b"missing", b"b", &long, b"c"];
    for (i, k) in keys.iter().enumerate() {
        if *k != b"missing" {
            put(&pool, k, 8192 + i * 4096, i as u8);
        }
    }
    let check_all = |views: &[Option<View>]| {
        assert_eq!(views.len(), keys.len());
        for (i, v) in views.iter().enumerate() {
            match v {
                None => assert_eq!(keys[i], b"missing"),
                Some(v) => {
                    assert_eq!(v.len(), 8192 + i * 4096, "key {i}");
                    assert!(check(v.as_slice(), i as u8), "key {i}");
                }
            }
        }
    };
    let before = fx.hits().unwrap();
    let views = pool.batch_get(&keys).unwrap();
    check_all(&views);
    assert!(
        fx.hits().unwrap() >= before + 3,
        "the three short cold keys were lent (counted as hits)"
    );
    // A lent view pins its chunk like an open one.
    assert_eq!(pool.pins(b"a").unwrap(), Some(1));
    drop(views);
    poll(|| (pool.pins(b"a").unwrap() == Some(0)).then_some(()));
    assert_eq!(pool.pins(b"a").unwrap(), Some(0), "released with the view");

    // Without the socket (a client in another mount namespace, a daemon going
    // away): the same answers, through the mount.
    std::fs::remove_file(fx.lend_socket().unwrap()).unwrap();
    let fresh = Pool::open(&fx.pool).unwrap();
    check_all(&fresh.batch_get(&keys).unwrap());
    check_all(&pool.batch_get(&keys).unwrap());
    let prefix = fresh.prefix_get(&keys).unwrap();
    assert_eq!(prefix.len(), 1, "the prefix ends at the missing key");
}

#[test]
fn a_forked_child_does_not_share_its_parents_lending_connection() {
    if !common::root() {
        return;
    }
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let keys: Vec<Vec<u8>> = (0..64u8).map(|i| format!("f{i}").into_bytes()).collect();
    for (i, k) in keys.iter().enumerate() {
        put(&pool, k, 4096, i as u8);
    }
    let (mine, theirs) = keys.split_at(32);
    // Connected before the fork: the child inherits the socket.
    assert!(pool.batch_get(mine).unwrap().iter().all(Option::is_some));
    let rounds = 300;
    let check_round = |set: &[Vec<u8>], first: usize| -> bool {
        let views = pool.batch_get(set).unwrap();
        views.iter().enumerate().all(|(j, v)| {
            v.as_ref()
                .is_some_and(|v| check(v.as_slice(), (first + j) as u8))
        })
    };
    // SAFETY: the child only runs libmaru calls and exits with `_exit`; it
    // does not return into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = (0..rounds).all(|_| check_round(theirs, 32));
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let ok = (0..rounds).all(|_| check_round(mine, 0));
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` outlives the call.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(ok, "the parent got another process's chunks");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child got another process's chunks (status {status:#x})"
    );
}

#[test]
fn a_forked_child_or_dropped_privileges_get_a_connection_of_their_own() {
    if !common::root() {
        return;
    }
    // Only root may search the pool directory.
    let fx = Fixture::new(Kind::MaruFs, 0o700);
    let pool = Pool::open(&fx.pool).unwrap();
    let keys: [&[u8]; 2] = [b"a", b"b"];
    for (i, k) in keys.iter().enumerate() {
        put(&pool, k, 4096, i as u8);
    }
    // The parent connects to the lending socket (as root) and borrows.
    assert!(pool.batch_get(&keys).unwrap().iter().all(Option::is_some));
    // SAFETY: the child only runs libmaru on a pool no other thread uses, then
    // leaves with _exit (an alarm ends it if it hangs).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain syscalls in the child; it never returns to the harness.
        unsafe {
            libc::alarm(60);
            // Still root: borrows (on a connection of its own).
            let root_ok = pool
                .batch_get(&keys)
                .is_ok_and(|v| v.iter().all(Option::is_some));
            let ok = root_ok
                && libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(65534) == 0
                && libc::setuid(65534) == 0;
            // As nobody, the pool cannot be searched: the mount refuses, and so
            // must the daemon (not on a connection made as root).
            let code = match (ok, pool.batch_get(&keys)) {
                (false, _) => 3,
                (true, Err(e)) if e.errno() == libc::EACCES => 0,
                (true, Err(_)) => 2,
                (true, Ok(_)) => 1,
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` outlives the call.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "child ended by signal {}",
        libc::WTERMSIG(status)
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child (nobody) got chunks the mount refuses it (1), or another error (2, 3)"
    );
    // The parent's own connection still serves it.
    let views = pool.batch_get(&keys).unwrap();
    for (i, v) in views.iter().enumerate() {
        assert!(check(v.as_ref().unwrap().as_slice(), i as u8), "key {i}");
    }
}

#[test]
fn a_pool_bind_mounted_under_another_pools_name_is_not_served_that_pool() {
    if !common::root() {
        return;
    }
    // Two pools, "a" and "b", each with its own bytes under the same keys.
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let cfgs = ["a", "b"]
        .iter()
        .map(|name| {
            let backing = tmp.path().join(format!("backing-{name}"));
            std::fs::create_dir(&backing).unwrap();
            maru_fs::PoolConfig::new(*name, maru_fs::Backing::Dir(backing), 64 << 20)
        })
        .collect();
    let opts = maru_fs::MountOptions {
        lend_socket: Some(tmp.path().join("lend.sock")),
        ..maru_fs::MountOptions::new(&mnt)
    };
    let _mounted = maru_fs::mount(&opts, cfgs).unwrap();
    let keys: [&[u8]; 2] = [b"k1", b"k2"];
    for (pool, seed) in [("a", 10u8), ("b", 20u8)] {
        let p = Pool::open(mnt.join(pool)).unwrap();
        for (i, k) in keys.iter().enumerate() {
            put(&p, k, 4096, seed + i as u8);
        }
    }
    // Pool "a" seen at a path whose last name is "b" (a container's volume).
    let view = tmp.path().join("view");
    let alias = view.join("b");
    std::fs::create_dir_all(&alias).unwrap();
    let bind = BindMount::new(&mnt.join("a"), &alias);
    let pool = Pool::open(&alias).unwrap();
    let views = pool.batch_get(&keys).unwrap();
    for (i, v) in views.iter().enumerate() {
        let v = v.as_ref().unwrap();
        assert!(
            check(v.as_slice(), 10 + i as u8),
            "key {i}: pool a's bytes expected, got another pool's"
        );
    }
    drop((views, pool, bind));
}

/// A bind mount of `src` on `dst`, unmounted on drop.
struct BindMount(std::ffi::CString);

impl BindMount {
    fn new(src: &std::path::Path, dst: &std::path::Path) -> BindMount {
        let c =
            |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let (src, dst) = (c(src), c(dst));
        // SAFETY: valid NUL-terminated paths; no filesystem type or data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "bind mount: {}", std::io::Error::last_os_error());
        BindMount(dst)
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Entry point of the child processes of the tests above (does nothing when
/// run as an ordinary test).
#[test]
fn child() {
    let Ok(action) = std::env::var(CHILD_ENV) else {
        return;
    };
    let pool_path = std::env::var("LIBMARU_TEST_POOL").unwrap();
    let key = unhex(&std::env::var("LIBMARU_TEST_KEY").unwrap());
    let result = (|| -> maru::Result<String> {
        let pool = Pool::open(&pool_path)?;
        match action.as_str() {
            "get" => Ok(match pool.get(&key)? {
                Some(v) => format!(
                    "ok {} {} {:x}",
                    v.len(),
                    check(v.as_slice(), 5),
                    pfn(v.as_ptr())
                ),
                None => "missing".into(),
            }),
            "put" => {
                let mut c = pool.create(8192)?;
                fill(c.as_mut_slice(), 77);
                Ok(format!("ok {:?}", c.publish(&key)?.outcome()).to_lowercase())
            }
            other => panic!("unknown child action {other}"),
        }
    })();
    match result {
        Ok(s) => println!("RESULT {s}"),
        Err(e) => println!("RESULT err {} {e}", e.errno()),
    }
    let _ = hex(&key);
}

/// The pool's pin count of a key (maru-fs xattr [`xattr::PINS`]).
fn pins(fx: &Fixture, key: &str) -> String {
    let path = std::ffi::CString::new(fx.pool.join(key).to_str().unwrap()).unwrap();
    let mut buf = [0u8; 32];
    // SAFETY: valid NUL-terminated strings and buffer.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            xattr::PINS_C.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(
        n >= 0,
        "getxattr {}: {}",
        xattr::PINS,
        std::io::Error::last_os_error()
    );
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

/// Waits (up to `maru_testkit::wait::TIMEOUT`) for the pin count to become `want`: the
/// kernel sends FUSE RELEASE asynchronously after the last close.
fn wait_pins(fx: &Fixture, key: &str, want: &str) {
    poll(|| (pins(fx, key) == want).then_some(()));
    assert_eq!(pins(fx, key), want, "pin count of {key}");
}

#[test]
fn views_and_chunks_hold_the_pools_pin_until_dropped() {
    if !common::root() {
        return;
    }
    // With FUSE passthrough a mapping refers to the backing file, not the FUSE
    // file: only the descriptor a view keeps open tells maru-fs it is pinned.
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let c = pool.create(1 << 20).unwrap().publish(b"p").unwrap();
    assert_eq!(pins(&fx, "p"), "1", "the writer's chunk pins it");
    drop(c);
    wait_pins(&fx, "p", "0");
    let a = pool.get(b"p").unwrap().unwrap();
    let b = pool.get(b"p").unwrap().unwrap();
    assert_eq!(pins(&fx, "p"), "2");
    drop(a);
    wait_pins(&fx, "p", "1");
    // Still pinned by `b` a while later: the mapping alone would not count.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(pins(&fx, "p"), "1");
    assert!(b.as_slice().iter().all(|&x| x == 0));
    drop(b);
    wait_pins(&fx, "p", "0");
}

#[test]
fn the_view_cache_reuses_mappings_and_never_serves_stale_chunks() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        put(&pool, b"c/1", 4 << 20, 1);
        put(&pool, b"c/2", 8192, 2);
        put(&pool, b"c/3", 8192, 3);
        // Disabled by default: every get maps anew.
        let a = pool.get(b"c/1").unwrap().unwrap();
        assert_eq!(pool.cached_views(), 0);
        drop(a);

        pool.set_view_cache(2);
        let a = pool.get(b"c/1").unwrap().unwrap();
        let ptr = a.as_ptr();
        drop(a);
        assert_eq!(pool.cached_views(), 1);
        let b = pool.get(b"c/1").unwrap().unwrap();
        assert_eq!(b.as_ptr(), ptr, "{kind:?}: served from the cache");
        assert!(check(b.as_slice(), 1));
        // LRU bound: c/2 then c/3 push out c/1 (least recently used).
        drop(pool.get(b"c/2").unwrap());
        drop(pool.get(b"c/3").unwrap());
        assert_eq!(pool.cached_views(), 2);
        // b still maps c/1 although it left the cache.
        assert!(check(b.as_slice(), 1));
        drop(b);
        // A hit makes an entry the most recent: c/2 is used again, so taking c/1
        // back in pushes out c/3, and c/2 is still served from the cache.
        // (v2 stays alive, so a new mapping of c/2 could not reuse its address.)
        let v2 = pool.get(b"c/2").unwrap().unwrap();
        drop(pool.get(b"c/1").unwrap());
        assert_eq!(
            pool.get(b"c/2").unwrap().unwrap().as_ptr(),
            v2.as_ptr(),
            "{kind:?}"
        );
        drop(v2);
        assert_eq!(pool.cached_views(), 2);

        // Removed through another handle and republished with other bytes: the
        // inode check refuses the cached mapping.
        assert!(check(pool.get(b"c/3").unwrap().unwrap().as_slice(), 3));
        let other = Pool::open(&fx.pool).unwrap();
        assert!(other.remove(b"c/3").unwrap());
        assert!(pool.get(b"c/3").unwrap().is_none(), "{kind:?}: removed key");
        put(&other, b"c/3", 8192, 30);
        assert!(
            check(pool.get(b"c/3").unwrap().unwrap().as_slice(), 30),
            "{kind:?}"
        );
        // Removing through the pool drops the entry at once.
        assert!(pool.remove(b"c/3").unwrap());
        assert!(pool.get(b"c/3").unwrap().is_none());

        pool.set_view_cache(0);
        assert_eq!(pool.cached_views(), 0);
    }
}

#[test]
fn cached_views_keep_their_chunk_pinned_until_dropped_from_the_cache() {
    if !common::root() {
        return;
    }
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    put(&pool, b"q", 8192, 1);
    pool.set_view_cache(8);
    drop(pool.get(b"q").unwrap().unwrap());
    wait_pins(&fx, "q", "1");
    pool.set_view_cache(0);
    wait_pins(&fx, "q", "0");
}

#[test]
fn store_copies_and_publishes_in_one_call() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let mut data = vec![0u8; 3 << 20];
        fill(&mut data, 42);
        assert_eq!(pool.store(b"s/1", &data).unwrap(), Publish::Published);
        assert_eq!(
            pool.store(b"s/1", &data[..10]).unwrap(),
            Publish::AlreadyExists
        );
        let long = vec![b'/'; 400];
        assert_eq!(
            pool.store(&long, &data[..5000]).unwrap(),
            Publish::Published
        );
        let v = pool.get(b"s/1").unwrap().unwrap();
        assert_eq!(v.len(), data.len(), "{kind:?}");
        assert!(check(v.as_slice(), 42));
        assert!(check(pool.get(&long).unwrap().unwrap().as_slice(), 42));
        assert_eq!(pool.store(b"s/2", &[]).unwrap_err().errno(), libc::EINVAL);
        // Nothing is left behind: the loser's staging file is gone.
        let names = fx.wait_backing(|n| !n.iter().any(|x| name::is_staging(x.as_bytes())));
        assert!(
            !names.iter().any(|x| name::is_staging(x.as_bytes())),
            "{kind:?}: {names:?}"
        );
    }
}

#[test]
fn a_full_pool_and_an_oversized_chunk_fail_cleanly() {
    if !common::root() {
        return;
    }
    let fx = Fixture::with_limits(Kind::MaruFs, 0o777, 4 << 20, Some(2 << 20));
    let pool = Pool::open(&fx.pool).unwrap();
    let e = pool.create(3 << 20).unwrap_err();
    assert_eq!(e.errno(), libc::EFBIG, "{e}");
    assert!(e.to_string().contains("max_chunk_size"), "{e}");
    let e = pool.store(b"big", &vec![1u8; 3 << 20]).unwrap_err();
    assert_eq!(e.errno(), libc::EFBIG, "{e}");
    let a = pool.create(2 << 20).unwrap();
    let b = pool.create(2 << 20).unwrap();
    let e = pool.create(2 << 20).unwrap_err();
    assert_eq!(e.errno(), libc::ENOSPC, "{e}");
    assert!(e.to_string().contains("pool is full"), "{e}");
    // Nothing is left behind by the failed creates, and space returns on drop.
    let names = fx.wait_backing(|n| n.len() == 2);
    assert_eq!(names.len(), 2, "{names:?}");
    drop((a, b));
    let ok = poll(|| pool.create(2 << 20).ok().map(drop)).is_some();
    assert!(ok, "space of dropped staging chunks returns to the pool");
}

#[test]
fn concurrent_writers_of_one_key_have_exactly_one_winner() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let winners: Vec<(u8, Publish)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6u8)
                .map(|t| {
                    let pool = pool.clone();
                    s.spawn(move || {
                        let mut c = pool.create(65536).unwrap();
                        fill(c.as_mut_slice(), t);
                        (t, c.publish(b"race/key").unwrap().outcome())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<u8> = winners
            .iter()
            .filter(|(_, p)| *p == Publish::Published)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(won.len(), 1, "{kind:?}: {winners:?}");
        let v = pool.get(b"race/key").unwrap().unwrap();
        assert!(check(v.as_slice(), won[0]), "{kind:?}: the winner's bytes");
        let names = fx.wait_backing(|n| n.len() == 1);
        assert_eq!(names.len(), 1, "{kind:?}: losers cleaned up: {names:?}");
    }
}

#[test]
fn a_reserve_serves_create_and_store_and_is_removed_when_cleared() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let staging = |fx: &Fixture| {
            fx.backing_names()
                .iter()
                .filter(|n| n.starts_with(name::STAGING_PREFIX))
                .count()
        };
        assert_eq!(pool.reserve(300_000, 3).unwrap(), 3, "{kind:?}");
        assert_eq!(pool.reserve(4096, 1).unwrap(), 1, "{kind:?}");
        assert_eq!(staging(&fx), 4, "{kind:?}");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(pool.store(b"r/1", &data).unwrap(), Publish::Published);
        assert_eq!(pool.reserved(300_000), 2, "{kind:?}: store took one");
        let mut c = pool.create(300_000).unwrap();
        assert_eq!(pool.reserved(300_000), 1, "{kind:?}: create took one");
        c.write(0, &data).unwrap();
        assert!(c.write(1, &data).is_err(), "{kind:?}: out of range");
        assert_eq!(c.publish(b"r/2").unwrap().outcome(), Publish::Published);
        for k in [&b"r/1"[..], b"r/2"] {
            assert_eq!(
                pool.get(k).unwrap().unwrap().as_slice(),
                &data[..],
                "{kind:?}"
            );
        }
        // A clone shares the reserve; clearing removes the staging files.
        pool.clone().clear_reserve();
        assert_eq!(pool.reserved(300_000) + pool.reserved(4096), 0);
        fx.wait_backing(|n| !n.iter().any(|n| n.starts_with(name::STAGING_PREFIX)));
        assert_eq!(staging(&fx), 0, "{kind:?}");
    }
}

#[test]
fn a_failed_publish_gives_the_chunk_back_unpublished() {
    for kind in kinds() {
        let fx = Fixture::new(kind, 0o777);
        let pool = Pool::open(&fx.pool).unwrap();
        let mut c = pool.create(4096).unwrap();
        fill(c.as_mut_slice(), 3);
        let back = c.publish(b"").unwrap_err();
        assert_eq!(back.error.errno(), libc::EINVAL, "{kind:?}: empty key");
        let mut c = *back.chunk;
        fill(c.as_mut_slice(), 3); // still writable: still staging
        let sealed = c.publish(b"after/retry").unwrap();
        assert_eq!(sealed.outcome(), Publish::Published);
        assert!(check(
            pool.get(b"after/retry").unwrap().unwrap().as_slice(),
            3
        ));
    }
}

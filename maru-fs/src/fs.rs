//! The FUSE request handlers: thin glue between the kernel and [`State`].

use std::ffi::OsStr;
use std::fs::File;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::notify::Notice;
use crate::ratelimit::RateLimited;
use crate::state::{Opened, State, BLOCK, NAME_MAX};

/// How long the kernel may cache names, negative names and attributes. Every name
/// change the kernel does not make itself (eviction, staging reclaim, pools coming
/// and going) is invalidated through the notifier, so this can be long.
const TTL: Duration = Duration::from_secs(60);

/// Any user can send these as fast as it likes: their warnings are rate-limited.
static IOCTLS: RateLimited = RateLimited::new("ioctl requests");
static LINKS: RateLimited = RateLimited::new("link/symlink requests");

/// State shared by the request threads, the notifier and the daemon's [`crate::Control`].
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    notices: Mutex<Sender<Notice>>,
}

impl Shared {
    /// Wraps `state`; invalidations go to `notices`.
    pub fn new(state: State, notices: Sender<Notice>) -> Shared {
        Shared {
            state: Mutex::new(state),
            notices: Mutex::new(notices),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another thread must not take the filesystem down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then hands the invalidations it queued to the notifier.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, notices) = {
            let mut s = self.lock();
            let r = f(&mut s);
            (r, s.take_notices())
        };
        if !notices.is_empty() {
            let tx = self.notices.lock().unwrap_or_else(|e| e.into_inner());
            for n in notices {
                // The notifier only stops at unmount, when invalidations no longer matter.
                let _ = tx.send(n);
            }
        }
        r
    }

    /// Asks the notifier thread to stop.
    pub fn stop_notifier(&self) {
        let tx = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(Notice::Stop);
    }
}

/// The fuser filesystem.
#[derive(Debug)]
pub(crate) struct MaruFs {
    shared: Arc<Shared>,
}

impl MaruFs {
    /// A filesystem serving `shared`.
    pub fn new(shared: Arc<Shared>) -> MaruFs {
        MaruFs { shared }
    }

    /// Counts `e` against the pool of `ino` (the pool's errors by errno) and returns it.
    fn failed(&self, ino: INodeNo, e: Errno) -> Errno {
        self.shared.with(|s| s.count_error(ino.0, e));
        e
    }
}

/// The attributes sent with a negative entry (only the zero inode number matters).
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}

/// Open flags for a chunk the daemon serves itself: devdax chunks are direct I/O
/// (no page cache, and so no shared mapping of the file: `mmap(MAP_SHARED)` fails
/// with ENODEV because FUSE_DIRECT_IO_ALLOW_MMAP is never offered).
fn open_flags(o: &Opened) -> FopenFlags {
    if o.direct_io {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

/// The errno of a failed copy or resize (`EIO` when it has none).
fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn reply_xattr(reply: ReplyXattr, size: u32, value: Result<Vec<u8>, Errno>) {
    match value {
        Err(e) => reply.error(e),
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
    }
}

/// statfs inode figures (total, free) for `used` files: maru-fs has no inode table, so
/// the total is a nominal 2^32 - 1 (or `used`, were there ever more) and the rest is free.
fn inode_counts(used: u64) -> (u64, u64) {
    let total = u64::from(u32::MAX).max(used);
    (total, total - used)
}

impl Filesystem for MaruFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let passthrough = match config.add_capabilities(InitFlags::FUSE_PASSTHROUGH) {
            Ok(()) => config.set_max_stack_depth(1).is_ok(),
            Err(_) => false,
        };
        if !passthrough {
            log::warn!(
                "the kernel does not offer FUSE passthrough (Linux >= 6.9 needed): chunk data \
                 will be copied through the daemon, and mappings will not be zero-copy"
            );
        }
        // Lookups in one pool directory need not wait for each other.
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        self.shared.with(|s| s.set_passthrough(passthrough));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if name.len() > NAME_MAX {
            return reply.error(self.failed(parent, Errno::ENAMETOOLONG));
        }
        match self.shared.with(|s| s.lookup(parent, name)) {
            Ok(Some(attr)) => reply.entry(&TTL, &attr, Generation(0)),
            // A zero inode number is a negative entry the kernel caches for TTL.
            Ok(None) => reply.entry(&TTL, &negative_attr(), Generation(0)),
            Err(e) => reply.error(self.failed(parent, e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.with(|s| s.forget(ino, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.with(|s| s.attr(ino)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let owner_change = uid.is_some() || gid.is_some();
        if let Some(new) = size {
            let (file, old) = match self
                .shared
                .with(|s| s.truncate_begin(ino, new, owner_change))
            {
                Ok(v) => v,
                Err(e) => return reply.error(self.failed(ino, e)),
            };
            // A devdax chunk zeroes or moves its bytes: not under the state lock.
            if let Err(e) = file.set_len(new) {
                // Undo the charge; evictions already made stay made.
                self.shared.with(|s| s.undo_growth(ino, old));
                return reply.error(self.failed(ino, errno(&e)));
            }
        }
        match self.shared.with(|s| s.setattr(ino, mode, owner_change)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Chunks are made with open(O_CREAT) only.
        reply.error(self.failed(parent, Errno::EPERM));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(self.failed(parent, Errno::EPERM));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let done = match self.shared.with(|s| s.unlink(parent, name)) {
            Ok(None) => Ok(()),
            // A shared pool's key goes from the cluster first: not under the state lock.
            Ok(Some(ticket)) => {
                let removed = ticket.claim();
                self.shared.with(|s| s.unlink_end(ticket, removed))
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed(parent, e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.failed(parent, Errno::EPERM));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // A devdax chunk's checksum (and write-back) is taken before the state
        // lock, which publishing then only records.
        let sealed = self
            .shared
            .with(|s| s.publish_prepare(parent, name, newname));
        if let Some(file) = &sealed {
            if let Err(e) = file.seal() {
                return reply.error(self.failed(parent, errno(&e)));
            }
        }
        let done = match self
            .shared
            .with(|s| s.rename(parent, name, newparent, newname, flags.bits()))
        {
            Ok(None) => Ok(()),
            // A shared pool's publish is a cluster transaction: not under the state
            // lock (the key is reserved and the chunk sealed meanwhile).
            Ok(Some(ticket)) => {
                let claimed = ticket.claim();
                self.shared.with(|s| s.publish_end(ticket, claimed))
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => reply.ok(),
            Err(e) => {
                if let Some(file) = &sealed {
                    file.unseal();
                }
                reply.error(self.failed(parent, e))
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let open_backing = |f: &File| reply.open_backing(f);
        let res = self.shared.with(|s| s.open(ino, write, &open_backing));
        match res {
            Ok(o) => match &o.backing {
                Some(id) => reply.opened_passthrough(o.fh, FopenFlags::empty(), id),
                None => reply.opened(o.fh, open_flags(&o)),
            },
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let open_backing = |f: &File| reply.open_backing(f);
        let uid = req.uid();
        let res = self
            .shared
            .with(|s| s.create(parent, name, mode & !umask, (uid, req.pid()), &open_backing));
        match res {
            Ok(o) => match &o.backing {
                Some(id) => reply.created_passthrough(
                    &TTL,
                    &o.attr,
                    Generation(0),
                    o.fh,
                    FopenFlags::empty(),
                    id,
                ),
                None => reply.created(&TTL, &o.attr, Generation(0), o.fh, open_flags(&o)),
            },
            Err(e) => reply.error(self.failed(parent, e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.shared.with(|s| s.read_begin(ino)) {
            Ok(f) => f,
            Err(e) => return reply.error(self.failed(ino, e)),
        };
        // The copy is made without the state lock.
        let mut buf = vec![0u8; size as usize];
        match file.read_at(&mut buf, offset) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(self.failed(ino, errno(&e))),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let file = match self.shared.with(|s| s.write_begin(ino, offset, data.len())) {
            Ok(f) => f,
            Err(e) => return reply.error(self.failed(ino, e)),
        };
        // The copy is made without the state lock.
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(self.failed(ino, errno(&e))),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush: ENOSYS makes the kernel stop sending FLUSH, which saves
        // every close(2) a round trip to the daemon.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.with(|s| s.release(fh));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Memory has nothing to sync to.
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (file, undo) = match self
            .shared
            .with(|s| s.fallocate_begin(ino, offset, length, mode))
        {
            Ok(v) => v,
            Err(e) => return reply.error(self.failed(ino, e)),
        };
        // Zeroing memory takes a while: not under the state lock.
        match file.allocate(mode, offset, length) {
            Ok(()) => reply.ok(),
            Err(e) => {
                if let Some(old) = undo {
                    self.shared.with(|s| s.undo_growth(ino, old));
                }
                reply.error(self.failed(ino, errno(&e)));
            }
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.with(|s| s.opendir(ino, req.uid(), req.pid())) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let res = self.shared.with(|s| {
            s.readdir(fh, offset, |ino, next, kind, name| {
                reply.add(INodeNo(ino), next, kind, name)
            })
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.with(|s| s.releasedir(fh));
        reply.ok();
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        IOCTLS.warn(|| {
            format!(
                "pid {} (uid {}) sent ioctl {cmd:#x} on inode {}; chunks have no ioctls (ENOTTY)",
                req.pid(),
                req.uid(),
                ino.0
            )
        });
        reply.error(self.failed(ino, Errno::ENOTTY));
    }

    fn link(
        &self,
        req: &Request,
        _ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        LINKS.warn(|| {
            format!(
                "pid {} (uid {}) tried to hard-link {newname:?}; keys come only from publishing (EPERM)",
                req.pid(),
                req.uid()
            )
        });
        reply.error(self.failed(newparent, Errno::EPERM));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        LINKS.warn(|| {
            format!(
                "pid {} (uid {}) tried to create symlink {link_name:?}; keys come only from publishing (EPERM)",
                req.pid(),
                req.uid()
            )
        });
        reply.error(self.failed(parent, Errno::EPERM));
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, bfree, used_files) = self.shared.with(|s| s.statfs(ino));
        // f_files is the total of inodes, f_ffree the free ones: `df -i` shows their
        // difference as IUsed, so the total must count the used ones too.
        let (files, ffree) = inode_counts(used_files);
        reply.statfs(
            blocks,
            bfree,
            bfree,
            files,
            ffree,
            BLOCK as u32,
            NAME_MAX as u32,
            BLOCK as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self
            .shared
            .with(|s| s.setxattr(ino, name, Some(value), flags))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = self
            .shared
            .with(|s| s.getxattr(ino, name))
            .map_err(|e| self.failed(ino, e));
        reply_xattr(reply, size, value);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = self.shared.with(|s| s.listxattr(ino));
        reply_xattr(reply, size, Ok(names));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.shared.with(|s| s.setxattr(ino, name, None, 0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed(ino, e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks mode bits itself.
        reply.ok();
    }
}

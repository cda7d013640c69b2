//! The shared part of a pin table ([`crate::pin_table`]): the file, its mapping, its lock, and who
//! this process is (pid and start time, from /proc).
//!
//! Layout: a 64-byte header (magic, slot count) then the slots. The file is
//! created under a private name, sized and headed, then linked to its name:
//! every process that opens it sees a complete header. It takes its
//! directory's read and write permissions.

use crate::error::{Error, Result};
use crate::pin_table::table::Slot;
use crate::pin_table::Holder;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

const MAGIC: u64 = u64::from_le_bytes(*b"MARUPIN1");
const HEADER: usize = 64;
const SLOT: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT == 32 && HEADER % std::mem::align_of::<Slot>() == 0);

/// A mapped pin table file.
pub(crate) struct Shm {
    file: File,
    ptr: NonNull<u8>,
    len: usize,
    slots: usize,
}

// SAFETY: the mapping is only reached through `locked`, which holds the
// table's mutex (see `PinTable::with`) and the file lock.
unsafe impl Send for Shm {}
// SAFETY: as above.
unsafe impl Sync for Shm {}

fn os(op: &'static str, path: &Path, e: io::Error) -> Error {
    Error::os(op, format!("pin table {}", path.display()), e)
}

impl Shm {
    /// Opens (creating it with `slots` slots if absent) and maps the table.
    pub fn open(path: &Path, slots: usize) -> Result<Shm> {
        let file = loop {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => break f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => create(path, slots)?,
                Err(e) => return Err(os("open", path, e)),
            }
        };
        let mut head = [0u8; 16];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| os("read header", path, e))?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let slots = usize::try_from(word(8)).unwrap_or(0);
        let len = slots.checked_mul(SLOT).and_then(|n| n.checked_add(HEADER));
        let size = file.metadata().map_err(|e| os("stat", path, e))?.len();
        let bad = |why: &str| {
            Error::InvalidArgument(format!("{} is not a pin table: {why}", path.display()))
        };
        if word(0) != MAGIC {
            return Err(bad("bad magic"));
        }
        let len = match len {
            Some(l) if slots.is_power_of_two() && l as u64 <= size => l,
            _ => return Err(bad(&format!("{slots} slots in {size} bytes"))),
        };
        // SAFETY: a fresh shared mapping of `len` bytes of an open file at least
        // that long; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os("map", path, io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| bad("mapped at NULL"))?;
        Ok(Shm {
            file,
            ptr,
            len,
            slots,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Runs `f` on the slots with the file locked exclusively. The caller holds
    /// the table's mutex (threads of this process share the file lock).
    pub fn locked<T>(&self, f: impl FnOnce(&mut [Slot]) -> T) -> Result<T> {
        let fd = self.file.as_raw_fd();
        loop {
            // SAFETY: a valid descriptor; flock has no memory arguments.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::os("lock", "pin table", e));
            }
        }
        struct Unlock(i32);
        impl Drop for Unlock {
            fn drop(&mut self) {
                // SAFETY: a valid descriptor; unlocking cannot fail on it.
                unsafe { libc::flock(self.0, libc::LOCK_UN) };
            }
        }
        let _unlock = Unlock(fd);
        // SAFETY: the mapping holds `slots` slots after the header (checked at
        // open, Slot is plain data valid for any bytes and HEADER keeps it
        // aligned); while the file lock and the mutex are held no other thread
        // or process that follows the protocol touches it.
        let slots = unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(HEADER).cast::<Slot>(), self.slots)
        };
        Ok(f(slots))
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: our mapping of `len` bytes, not used after this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Creates a table of `slots` slots at `path` unless another process did first.
fn create(path: &Path, slots: usize) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let len = slots
        .checked_mul(SLOT)
        .and_then(|n| n.checked_add(HEADER))
        .ok_or_else(|| Error::InvalidArgument(format!("{slots} pin table slots are too many")))?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(&tmp)
        .map_err(|e| os("create", &tmp, e))?;
    // The table may be used by whoever may use its directory (the pool's users),
    // whatever this process's umask.
    let mode = path
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .map_or(0, |m| m.permissions().mode() & 0o666)
        | 0o600;
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(&MAGIC.to_le_bytes());
    head[8..16].copy_from_slice(&(slots as u64).to_le_bytes());
    let made = f
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| f.set_len(len as u64))
        .and_then(|()| f.write_all_at(&head, 0))
        .and_then(|()| match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()), // another's
            r => r,
        });
    let _ = std::fs::remove_file(&tmp);
    made.map_err(|e| os("create", path, e))
}

/// The start time (clock ticks since boot) of process `pid`; `None` if gone.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let data = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may hold spaces and parentheses.
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(data.get(close + 2..)?).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This process as recorded in the table (cached per pid: a forked child
/// looks itself up again).
pub(crate) fn me() -> Holder {
    static ME: Mutex<Option<Holder>> = Mutex::new(None);
    let pid = std::process::id();
    let mut me = ME.lock().unwrap_or_else(|p| p.into_inner());
    match *me {
        Some(h) if h.pid == pid => h,
        _ => {
            let h = Holder {
                pid,
                start: start_time(pid).unwrap_or(0),
            };
            *me = Some(h);
            h
        }
    }
}

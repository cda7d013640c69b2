//! The lending socket: published chunks handed out in batches.
//!
//! Opening a chunk through the mount costs one FUSE round trip per key, and the
//! kernel has no way to batch opens. For the pools whose chunks are files (the
//! `numa` tmpfs pools), the daemon also listens on a Unix `SOCK_SEQPACKET`
//! socket (its path is the pool directory's [`crate::xattr::LEND_SOCKET`]
//! xattr): one [`Request`] names up to [`MAX_KEYS`] chunk names of one pool,
//! and one reply answers each with an [`Entry`] and, for each entry whose
//! `errno` is 0, one read-only descriptor of the chunk's memory, in order, in a
//! single `SCM_RIGHTS` message. The descriptor is what a FUSE open would have
//! given: mapping it maps the pool's own pages, and while it (or a mapping of
//! it) lives the chunk is in use and never evicted.
//!
//! The daemon checks each name as the kernel checks a path on the mount (the
//! caller's uid and groups, taken from the socket, against the mount, the pool
//! directory and the chunk), so a descriptor is lent only to whom `open(2)`
//! would have given one. A client must read each reply before it sends its next
//! request: the daemon drops a connection that does not.
//!
//! Wire format (integers little-endian):
//!
//! ```text
//! request: "MLQ1" | pool name len u8 | pool name | count u16 | count × (len u8 | name)
//! reply:   "MLA1" | status i32 | count u16 | count × (errno i32 | size u64 | ino u64)
//! ```
//!
//! A reply's `status` is 0, or an errno for the whole request (`ENOENT`: no such
//! pool; `EOPNOTSUPP`: the pool's chunks cannot be lent, e.g. a devdax pool;
//! `EPROTO`: the request could not be parsed), in which case `count` is 0. An
//! entry's `ino` is the chunk's inode number on the mount (what `stat` says).

use crate::name::NAME_MAX;
use alloc::vec::Vec;

/// Most names in one request: the kernel passes at most 253 descriptors
/// (`SCM_MAX_FD`) in one message.
pub const MAX_KEYS: usize = 253;
/// First bytes of a request.
pub const REQUEST_MAGIC: [u8; 4] = *b"MLQ1";
/// First bytes of a reply.
pub const REPLY_MAGIC: [u8; 4] = *b"MLA1";
/// Longest request, in bytes.
pub const MAX_REQUEST: usize = 4 + 1 + NAME_MAX + 2 + MAX_KEYS * (1 + NAME_MAX);
/// Bytes of one reply entry.
pub const ENTRY_LEN: usize = 4 + 8 + 8;
/// Longest reply, in bytes.
pub const MAX_REPLY: usize = 4 + 4 + 2 + MAX_KEYS * ENTRY_LEN;

/// Why a message could not be built or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Not a message of this protocol (wrong magic).
    Magic,
    /// Ends before what it announces, or goes on after it.
    Length,
    /// No names, or more than [`MAX_KEYS`].
    Count,
    /// A pool or chunk name that is empty, longer than [`NAME_MAX`], or holds
    /// `/` or NUL (or is `.` / `..`).
    Name,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::Magic => "not a lending message (wrong magic)",
            WireError::Length => "message length does not match its contents",
            WireError::Count => "a request names 1 to 253 chunks",
            WireError::Name => "a name is empty, too long, or holds '/' or NUL",
        })
    }
}

/// Whether `name` can name a pool or a chunk: 1 to [`NAME_MAX`] bytes, no `/`
/// or NUL, not `.` or `..`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && !name.iter().any(|&b| b == b'/' || b == 0)
        && name != b"."
        && name != b".."
}

/// A parsed request: a pool and the chunk names asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The pool's name (its directory under the mount).
    pub pool: &'a [u8],
    /// The chunk names, in order.
    pub names: Vec<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// Encodes a request for `names` of `pool`.
    pub fn encode(pool: &[u8], names: &[&[u8]]) -> Result<Vec<u8>, WireError> {
        if names.is_empty() || names.len() > MAX_KEYS {
            return Err(WireError::Count);
        }
        if !valid_name(pool) || !names.iter().all(|n| valid_name(n)) {
            return Err(WireError::Name);
        }
        let mut out =
            Vec::with_capacity(8 + pool.len() + names.iter().map(|n| 1 + n.len()).sum::<usize>());
        out.extend_from_slice(&REQUEST_MAGIC);
        out.push(pool.len() as u8);
        out.extend_from_slice(pool);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        for n in names {
            out.push(n.len() as u8);
            out.extend_from_slice(n);
        }
        Ok(out)
    }

    /// Parses a request received in one message.
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, WireError> {
        let mut r = Reader { buf };
        if r.take(4)? != REQUEST_MAGIC {
            return Err(WireError::Magic);
        }
        let pool = r.name()?;
        let count = usize::from(u16::from_le_bytes(r.array()?));
        if count == 0 || count > MAX_KEYS {
            return Err(WireError::Count);
        }
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            names.push(r.name()?);
        }
        if !r.buf.is_empty() {
            return Err(WireError::Length);
        }
        Ok(Request { pool, names })
    }
}

/// The answer for one name of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// 0 (a descriptor follows, in order) or why not (`ENOENT`: no such published
    /// chunk; `EACCES`: the caller may not open it; ...).
    pub errno: i32,
    /// The chunk's size in bytes (0 unless `errno` is 0).
    pub size: u64,
    /// The chunk's inode number on the mount (0 unless `errno` is 0).
    pub ino: u64,
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 0, or an errno for the whole request (then `entries` is empty).
    pub status: i32,
    /// One per name asked for, in order.
    pub entries: Vec<Entry>,
}

impl Reply {
    /// Encodes a reply.
    pub fn encode(status: i32, entries: &[Entry]) -> Result<Vec<u8>, WireError> {
        if entries.len() > MAX_KEYS {
            return Err(WireError::Count);
        }
        let mut out = Vec::with_capacity(10 + entries.len() * ENTRY_LEN);
        out.extend_from_slice(&REPLY_MAGIC);
        out.extend_from_slice(&status.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.errno.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.ino.to_le_bytes());
        }
        Ok(out)
    }

    /// Parses a reply received in one message.
    pub fn parse(buf: &[u8]) -> Result<Reply, WireError> {
        let mut r = Reader { buf };
        if r.take(4)? != REPLY_MAGIC {
            return Err(WireError::Magic);
        }
        let status = i32::from_le_bytes(r.array()?);
        let count = usize::from(u16::from_le_bytes(r.array()?));
        if count > MAX_KEYS {
            return Err(WireError::Count);
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(Entry {
                errno: i32::from_le_bytes(r.array()?),
                size: u64::from_le_bytes(r.array()?),
                ino: u64::from_le_bytes(r.array()?),
            });
        }
        if !r.buf.is_empty() {
            return Err(WireError::Length);
        }
        Ok(Reply { status, entries })
    }

    /// How many descriptors the reply carries (entries with `errno` 0).
    pub fn descriptors(&self) -> usize {
        self.entries.iter().filter(|e| e.errno == 0).count()
    }
}

/// Reads a message front to back.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Length);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A `len u8 | bytes` name.
    fn name(&mut self) -> Result<&'a [u8], WireError> {
        let [len] = self.array()?;
        let name = self.take(usize::from(len))?;
        if !valid_name(name) {
            return Err(WireError::Name);
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let names: [&[u8]; 3] = [b"a", b"key%2F1", &[b'x'; NAME_MAX]];
        let buf = Request::encode(b"pool", &names).unwrap();
        let r = Request::parse(&buf).unwrap();
        assert_eq!(r.pool, b"pool");
        assert_eq!(r.names, names);
    }

    #[test]
    fn the_longest_request_fits_its_bound() {
        let long = [b'k'; NAME_MAX];
        let names = [&long[..]; MAX_KEYS];
        let buf = Request::encode(&long, &names).unwrap();
        assert_eq!(buf.len(), MAX_REQUEST);
        assert_eq!(Request::parse(&buf).unwrap().names.len(), MAX_KEYS);
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(Request::encode(b"p", &[]), Err(WireError::Count));
        assert_eq!(Request::encode(b"p", &[b"a/b"]), Err(WireError::Name));
        assert_eq!(Request::encode(b"p", &[b".."]), Err(WireError::Name));
        assert_eq!(Request::encode(b"", &[b"a"]), Err(WireError::Name));
        let ok = Request::encode(b"p", &[b"a"]).unwrap();
        assert_eq!(Request::parse(&ok[..ok.len() - 1]), Err(WireError::Length));
        let mut long = ok.clone();
        long.push(0);
        assert_eq!(Request::parse(&long), Err(WireError::Length));
        let mut magic = ok.clone();
        magic[0] = b'X';
        assert_eq!(Request::parse(&magic), Err(WireError::Magic));
        let mut nul = ok;
        *nul.last_mut().unwrap() = 0;
        assert_eq!(Request::parse(&nul), Err(WireError::Name));
        let mut many = Request::encode(b"p", &[b"a"]).unwrap();
        many[6..8].copy_from_slice(&(MAX_KEYS as u16 + 1).to_le_bytes());
        assert_eq!(Request::parse(&many), Err(WireError::Count));
    }

    #[test]
    fn a_reply_round_trips() {
        let entries = [
            Entry {
                errno: 0,
                size: 4096,
                ino: 7,
            },
            Entry {
                errno: 2,
                size: 0,
                ino: 0,
            },
        ];
        let buf = Reply::encode(0, &entries).unwrap();
        assert_eq!(buf.len(), 10 + 2 * ENTRY_LEN);
        let r = Reply::parse(&buf).unwrap();
        assert_eq!(r.entries, entries);
        assert_eq!(r.descriptors(), 1);
        assert_eq!(Reply::parse(&buf[..buf.len() - 1]), Err(WireError::Length));
        let refused = Reply::parse(&Reply::encode(95, &[]).unwrap()).unwrap();
        assert_eq!((refused.status, refused.entries.len()), (95, 0));
    }
}

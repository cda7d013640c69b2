//! Reversible escaping of arbitrary byte-string keys into pool file names.
//!
//! Scheme (documented in docs/libmaru.md):
//! * Bytes `%`, `/`, NUL, other control bytes (0x01..=0x1F, 0x7F) become `%XX`
//!   (two upper-case hex digits). A leading `.` becomes `%2E` (names starting
//!   with `.` are staging files). Every other byte is kept as is.
//! * If the escaped name is longer than [`NAME_MAX`] bytes, the name is the
//!   first [`LONG_PREFIX`] bytes of the escaped key (never splitting a `%XX`),
//!   then `%~`, then the 64 hex digits of the SHA-256 of the key. The full key
//!   is stored in the xattr [`KEY_XATTR`] of the chunk. `%~` never occurs in a
//!   plain escaped name, so the two forms cannot collide.

use crate::error::{Error, Result};
use maru_proto::name::{is_staging, STAGING_MARK};
use sha2::{Digest, Sha256};
use std::ffi::CStr;

/// Longest key libmaru accepts: the xattr holding a long key must fit the
/// pool's 4 KiB xattr budget ([`maru_proto::name::KEY_MAX`]).
pub use maru_proto::name::KEY_MAX;
/// Longest file name a pool accepts (bytes, without NUL): the contract's
/// [`maru_proto::name::NAME_MAX`].
pub use maru_proto::name::NAME_MAX;
/// Bytes of the readable escaped prefix kept in a long key's hashed name.
pub const LONG_PREFIX: usize = 160;
/// Marker between the prefix and the hash in a long key's name.
const LONG_MARK: &[u8] = b"%~";
/// Xattr holding the full key of a chunk published under a hashed name
/// ([`maru_proto::xattr::KEY`]).
pub use maru_proto::xattr::KEY_C as KEY_XATTR;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A pool file name for a key, NUL-terminated, kept on the stack.
#[derive(Clone)]
pub struct KeyName {
    buf: [u8; NAME_MAX + 1],
    len: usize,
    hashed: bool,
}

impl KeyName {
    /// Escapes `key` into its file name.
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::InvalidKey {
                key: String::new(),
                reason: "keys must not be empty",
                errno: libc::EINVAL,
            });
        }
        if key.len() > KEY_MAX {
            return Err(Error::InvalidKey {
                key: display_prefix(key),
                reason: "keys are at most 4000 bytes long",
                errno: libc::ENAMETOOLONG,
            });
        }
        let mut name = KeyName {
            buf: [0; NAME_MAX + 1],
            len: 0,
            hashed: false,
        };
        if escape_into(key, &mut name.buf[..NAME_MAX], &mut name.len) {
            name.buf[name.len] = 0;
            return Ok(name);
        }
        // Too long: readable prefix + marker + hash.
        let mut prefix = [0u8; LONG_PREFIX];
        let mut plen = 0;
        escape_into(key, &mut prefix, &mut plen);
        let digest = Sha256::digest(key);
        let mut out = Vec::with_capacity(plen + LONG_MARK.len() + 64);
        out.extend_from_slice(&prefix[..plen]);
        out.extend_from_slice(LONG_MARK);
        for b in digest {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
        name.buf[..out.len()].copy_from_slice(&out);
        name.len = out.len();
        name.buf[name.len] = 0;
        name.hashed = true;
        Ok(name)
    }

    /// The name's bytes (no NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The name as a C string.
    pub fn as_cstr(&self) -> &CStr {
        // The buffer holds escaped bytes (never NUL) followed by one NUL at `len`.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    /// Whether this is the hashed name of a long key (full key in [`KEY_XATTR`]).
    pub fn is_hashed(&self) -> bool {
        self.hashed
    }

    /// The name as text, for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// Whether byte `b` at position `i` must be escaped.
fn needs_escape(b: u8, i: usize) -> bool {
    matches!(b, b'%' | b'/' | 0..=0x1F | 0x7F) || (i == 0 && b == STAGING_MARK)
}

/// Escapes as much of `key` as fits in `out`, whole escapes only; sets `*len`.
/// Returns whether the whole key fitted.
fn escape_into(key: &[u8], out: &mut [u8], len: &mut usize) -> bool {
    let mut n = 0;
    for (i, &b) in key.iter().enumerate() {
        if needs_escape(b, i) {
            if n + 3 > out.len() {
                *len = n;
                return false;
            }
            out[n] = b'%';
            out[n + 1] = HEX[(b >> 4) as usize];
            out[n + 2] = HEX[(b & 15) as usize];
            n += 3;
        } else {
            if n + 1 > out.len() {
                *len = n;
                return false;
            }
            out[n] = b;
            n += 1;
        }
    }
    *len = n;
    true
}

/// What a pool file name stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum Unescaped {
    /// A plain escaped key: these are the key's bytes.
    Key(Vec<u8>),
    /// The hashed name of a long key: read [`KEY_XATTR`] to get the key.
    Hashed,
}

/// Reverses [`KeyName::new`]. Fails with EINVAL for names libmaru never produces
/// (staging names, non-canonical escapes).
pub fn unescape(name: &[u8]) -> Result<Unescaped> {
    let invalid = |reason| Error::InvalidKey {
        key: String::from_utf8_lossy(name).into_owned(),
        reason,
        errno: libc::EINVAL,
    };
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(invalid(
            "not a key name: empty or longer than NAME_MAX (255) bytes",
        ));
    }
    if is_staging(name) {
        return Err(invalid(
            "names starting with '.' are staging files, not keys",
        ));
    }
    if let Some(pos) = name.windows(2).position(|w| w == LONG_MARK) {
        let hash = &name[pos + 2..];
        let hex = |c: &u8| c.is_ascii_digit() || (b'A'..=b'F').contains(c);
        if hash.len() == 64 && hash.iter().all(hex) && decode(&name[..pos]).is_some() {
            return Ok(Unescaped::Hashed);
        }
        return Err(invalid("malformed long-key name"));
    }
    let key = decode(name).ok_or_else(|| invalid("malformed %XX escape"))?;
    // Canonical form only: re-escaping must give the same name back, so every
    // key has exactly one name.
    let again = KeyName::new(&key)?;
    if again.as_bytes() != name {
        return Err(invalid("not the canonical escaped form of its key"));
    }
    Ok(Unescaped::Key(key))
}

/// Decodes `%XX` escapes; `None` if one is malformed.
fn decode(name: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%' {
            let hi = val(*name.get(i + 1)?)?;
            let lo = val(*name.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(name[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A short printable form of a key for error messages.
pub fn display_prefix(key: &[u8]) -> String {
    let mut buf = [0u8; 96];
    let mut len = 0;
    let all = escape_into(key, &mut buf, &mut len);
    let mut s = String::from_utf8_lossy(&buf[..len]).into_owned();
    if !all {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(key: &[u8]) {
        let name = KeyName::new(key).unwrap();
        assert!(name.as_bytes().len() <= NAME_MAX);
        assert!(!name.as_bytes().contains(&b'/'));
        assert!(!name.as_bytes().contains(&0));
        assert_ne!(name.as_bytes()[0], b'.');
        assert_eq!(name.as_cstr().to_bytes(), name.as_bytes());
        match unescape(name.as_bytes()).unwrap() {
            Unescaped::Key(k) => {
                assert!(!name.is_hashed());
                assert_eq!(k, key);
            }
            Unescaped::Hashed => assert!(name.is_hashed()),
        }
    }

    #[test]
    fn escapes_the_reserved_bytes() {
        assert_eq!(KeyName::new(b"a/b").unwrap().as_bytes(), b"a%2Fb");
        assert_eq!(KeyName::new(b"50%").unwrap().as_bytes(), b"50%25");
        assert_eq!(KeyName::new(b".hidden").unwrap().as_bytes(), b"%2Ehidden");
        assert_eq!(KeyName::new(b"a.b").unwrap().as_bytes(), b"a.b");
        assert_eq!(KeyName::new(b"x\0y\n").unwrap().as_bytes(), b"x%00y%0A");
        assert_eq!(KeyName::new(b"..").unwrap().as_bytes(), b"%2E.");
        let lmcache = b"vllm@1@0@3f2a/b9@bfloat16";
        assert_eq!(
            KeyName::new(lmcache).unwrap().as_bytes(),
            b"vllm@1@0@3f2a%2Fb9@bfloat16"
        );
    }

    #[test]
    fn refuses_empty_and_oversized_keys() {
        assert_eq!(KeyName::new(b"").err().unwrap().errno(), libc::EINVAL);
        let big = vec![b'k'; KEY_MAX + 1];
        assert_eq!(
            KeyName::new(&big).err().unwrap().errno(),
            libc::ENAMETOOLONG
        );
        assert!(KeyName::new(&big[..KEY_MAX]).is_ok());
    }

    #[test]
    fn long_keys_get_distinct_hashed_names() {
        let a = vec![b'a'; 300];
        let mut b = a.clone();
        b[299] = b'b';
        let (na, nb) = (KeyName::new(&a).unwrap(), KeyName::new(&b).unwrap());
        assert!(na.is_hashed() && nb.is_hashed());
        assert_ne!(na.as_bytes(), nb.as_bytes());
        assert!(na.as_bytes().starts_with(&a[..LONG_PREFIX]));
        assert_eq!(unescape(na.as_bytes()).unwrap(), Unescaped::Hashed);
        // A key of 255 plain bytes still fits; one escape more does not.
        assert!(!KeyName::new(&[b'z'; 255]).unwrap().is_hashed());
        let mut k = vec![b'z'; 254];
        k.push(b'/');
        assert!(KeyName::new(&k).unwrap().is_hashed());
        // Prefix never splits an escape.
        let slashes = vec![b'/'; 200];
        let n = KeyName::new(&slashes).unwrap();
        let pos = n.as_bytes().windows(2).position(|w| w == b"%~").unwrap();
        assert_eq!(pos % 3, 0);
    }

    #[test]
    fn round_trips_every_byte_and_pseudo_random_keys() {
        for b in 0..=255u8 {
            round_trip(&[b]);
            round_trip(&[b'k', b, b'.', b]);
        }
        // xorshift: deterministic pseudo-random keys of every length class.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..3000 {
            let len = 1 + (i % 400);
            let key: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Bias towards the interesting bytes.
                    match x % 8 {
                        0 => b'/',
                        1 => b'%',
                        2 => b'.',
                        3 => 0,
                        _ => (x >> 8) as u8,
                    }
                })
                .collect();
            round_trip(&key);
        }
    }

    #[test]
    fn rejects_names_libmaru_never_makes() {
        for bad in [
            &b".stage-1-2"[..],
            b"%2",
            b"%zz",
            b"%41",
            b"a%2fb",
            b"",
            b"x%~1234",
        ] {
            let e = unescape(bad).unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "{bad:?}");
        }
    }
}

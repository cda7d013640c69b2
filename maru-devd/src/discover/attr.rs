//! Reading sysfs attribute files and links, turning every failure into a
//! [`Warning`] that names the path, so that discovery never stops on one bad value.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::model::Warning;

/// Reads attributes and collects the problems met on the way.
#[derive(Debug, Default)]
pub struct AttrReader {
    warnings: Vec<Warning>,
}

/// Whether an absent attribute deserves a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The kernel always has it: warn when absent.
    Required,
    /// Present only on some kernels or devices: absent is not a problem.
    Optional,
}

impl AttrReader {
    /// Records a problem about `path`.
    pub fn warn(&mut self, path: impl Into<PathBuf>, problem: impl Into<String>) {
        let warning = Warning {
            path: path.into(),
            problem: problem.into(),
        };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// The problems recorded so far.
    pub fn into_warnings(self) -> Vec<Warning> {
        self.warnings
    }

    /// The trimmed text of `dir/name`, or `None` (with a warning unless absent and optional).
    pub fn text(&mut self, dir: &Path, name: &str, need: Need) -> Option<String> {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).trim().to_string()),
            Err(err) if err.kind() == ErrorKind::NotFound => {
                if need == Need::Required {
                    let problem = if fs::symlink_metadata(&path).is_ok() {
                        "dangling symbolic link".to_string()
                    } else {
                        "attribute missing".to_string()
                    };
                    self.warn(path, problem);
                }
                None
            }
            Err(err) => {
                self.warn(path, format!("unreadable: {err}"));
                None
            }
        }
    }

    /// The text of `dir/name`, `None` when it is empty.
    pub fn nonempty_text(&mut self, dir: &Path, name: &str, need: Need) -> Option<String> {
        self.text(dir, name, need).filter(|text| !text.is_empty())
    }

    /// An unsigned number written in decimal or with a `0x` prefix in hex.
    pub fn u64(&mut self, dir: &Path, name: &str, need: Need) -> Option<u64> {
        let text = self.text(dir, name, need)?;
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        };
        if parsed.is_none() {
            self.warn(dir.join(name), format!("not an unsigned number: {text:?}"));
        }
        parsed
    }

    /// A hex number written without prefix (`block_size_bytes`, `phys_index`).
    pub fn bare_hex(&mut self, dir: &Path, name: &str, need: Need) -> Option<u64> {
        let text = self.text(dir, name, need)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        let parsed = u64::from_str_radix(digits, 16).ok();
        if parsed.is_none() {
            self.warn(dir.join(name), format!("not a hex number: {text:?}"));
        }
        parsed
    }

    /// A signed decimal number (`numa_node`, `target_node`: -1 means none).
    pub fn i64(&mut self, dir: &Path, name: &str, need: Need) -> Option<i64> {
        let text = self.text(dir, name, need)?;
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.warn(dir.join(name), format!("not a number: {text:?}"));
        }
        parsed
    }

    /// A small unsigned decimal number (interleave ways, granularity).
    pub fn u32(&mut self, dir: &Path, name: &str, need: Need) -> Option<u32> {
        let value = self.u64(dir, name, need)?;
        match u32::try_from(value) {
            Ok(value) => Some(value),
            Err(_) => {
                self.warn(dir.join(name), format!("number too large: {value}"));
                None
            }
        }
    }

    /// The last component of the target of the symbolic link `dir/name`
    /// (`driver`, `uport`); the link may dangle, the name is still known.
    pub fn link_name(&mut self, dir: &Path, name: &str, need: Need) -> Option<String> {
        let path = dir.join(name);
        match fs::read_link(&path) {
            Ok(target) => match target.file_name() {
                Some(last) => Some(last.to_string_lossy().into_owned()),
                None => {
                    self.warn(
                        path,
                        format!("link to {} names no device", target.display()),
                    );
                    None
                }
            },
            Err(err) if err.kind() == ErrorKind::NotFound => {
                if need == Need::Required {
                    self.warn(path, "link missing");
                }
                None
            }
            Err(err) => {
                self.warn(path, format!("unreadable link: {err}"));
                None
            }
        }
    }

    /// Follows `path` (a symbolic link into the device tree) to the real directory.
    pub fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        match fs::canonicalize(path) {
            Ok(real) => Some(real),
            Err(err) => {
                let problem = match fs::read_link(path) {
                    Ok(target) if err.kind() == ErrorKind::NotFound => {
                        format!("dangling symbolic link to {}", target.display())
                    }
                    _ => format!("cannot be followed: {err}"),
                };
                self.warn(path, problem);
                None
            }
        }
    }

    /// Names of the entries of `dir` (sorted naturally), or an empty list with a
    /// warning when the directory exists but cannot be listed.
    pub fn list(&mut self, dir: &Path) -> Vec<String> {
        match fs::read_dir(dir) {
            Ok(entries) => {
                let mut names = Vec::new();
                for entry in entries {
                    match entry {
                        Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
                        Err(err) => self.warn(dir, format!("cannot list: {err}")),
                    }
                }
                names.sort_by(|a, b| natural_cmp(a, b));
                names
            }
            Err(err) if err.kind() == ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                self.warn(dir, format!("cannot list: {err}"));
                Vec::new()
            }
        }
    }
}

/// Orders kernel names so that `mem2` comes before `mem10` and `dax0.2` before `dax0.10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_numbers_in_value_order() {
        let mut names = vec!["mem10", "mem2", "dax0.10", "dax0.2", "mem1", "node0"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["dax0.2", "dax0.10", "mem1", "mem2", "mem10", "node0"]
        );
    }

    #[test]
    fn numbers_parse_in_both_bases_and_garbage_warns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hex"), "0x10000000\n").unwrap();
        std::fs::write(dir.path().join("dec"), "268435456\n").unwrap();
        std::fs::write(dir.path().join("bad"), "12abc\n").unwrap();
        std::fs::write(dir.path().join("bare"), "8000000\n").unwrap();
        let mut reader = AttrReader::default();
        assert_eq!(
            reader.u64(dir.path(), "hex", Need::Required),
            Some(0x1000_0000)
        );
        assert_eq!(
            reader.u64(dir.path(), "dec", Need::Required),
            Some(268_435_456)
        );
        assert_eq!(
            reader.bare_hex(dir.path(), "bare", Need::Required),
            Some(0x800_0000)
        );
        assert_eq!(reader.u64(dir.path(), "bad", Need::Required), None);
        assert_eq!(reader.u64(dir.path(), "absent", Need::Optional), None);
        let warnings = reader.into_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path, dir.path().join("bad"));
        assert!(warnings[0].problem.contains("12abc"));
    }
}

//! Size and alignment of a device-dax device (or of the stand-in file that plays
//! one in tests), read from sysfs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::DevdaxError;

/// Alignment used for a regular stand-in file when no sysfs directory is given:
/// the usual device-dax alignment (one PMD).
pub const DEFAULT_ALIGN: u64 = 2 << 20;

/// What a device offers: its size and the alignment every mapping of it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes in the device.
    pub size: u64,
    /// Alignment (bytes, a power of two) of every mapping offset and length.
    pub align: u64,
}

impl Geometry {
    /// Reads `size` and `align` from a device-dax sysfs directory (for `/dev/dax0.0`
    /// that is `/sys/bus/dax/devices/dax0.0`, also reachable as `/sys/dev/char/MAJ:MIN`).
    pub fn from_sysfs(dir: &Path) -> Result<Geometry, DevdaxError> {
        let size = read_u64(&dir.join("size"))?;
        let align = read_u64(&dir.join("align"))?;
        Geometry::checked(size, align, dir)
    }

    /// The geometry of `device`: from `sysfs_dir` when given, else from
    /// `/sys/dev/char/MAJ:MIN` for a character device, else (a regular file, the
    /// test stand-in) its length and [`DEFAULT_ALIGN`].
    pub fn of_device(device: &Path, sysfs_dir: Option<&Path>) -> Result<Geometry, DevdaxError> {
        if let Some(dir) = sysfs_dir {
            return Geometry::from_sysfs(dir);
        }
        let meta = fs::metadata(device).map_err(|source| DevdaxError::Io {
            what: "cannot stat the device".into(),
            path: device.to_path_buf(),
            source,
        })?;
        if meta.file_type().is_char_device() {
            let rdev = meta.rdev();
            let dir = PathBuf::from(format!(
                "/sys/dev/char/{}:{}",
                libc::major(rdev),
                libc::minor(rdev)
            ));
            return Geometry::from_sysfs(&dir);
        }
        if meta.file_type().is_file() {
            return Geometry::checked(meta.len(), DEFAULT_ALIGN, device);
        }
        Err(DevdaxError::Geometry {
            path: device.to_path_buf(),
            problem: "neither a character device (/dev/daxX.Y) nor a regular file".into(),
        })
    }

    fn checked(size: u64, align: u64, from: &Path) -> Result<Geometry, DevdaxError> {
        if !align.is_power_of_two() || align < 4096 {
            return Err(DevdaxError::Geometry {
                path: from.to_path_buf(),
                problem: format!("alignment {align} is not a power of two of at least 4096"),
            });
        }
        Ok(Geometry { size, align })
    }
}

fn read_u64(path: &Path) -> Result<u64, DevdaxError> {
    let text = fs::read_to_string(path).map_err(|source| DevdaxError::Io {
        what: "cannot read the device attribute".into(),
        path: path.to_path_buf(),
        source,
    })?;
    let t = text.trim();
    let parsed = match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| DevdaxError::Geometry {
        path: path.to_path_buf(),
        problem: format!("{t:?} is not a number"),
    })
}

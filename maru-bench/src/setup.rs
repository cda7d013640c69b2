//! Where the benchmark's pool lives: its own maru-fs mount over a huge-page
//! tmpfs (`huge=within_size` by default) (the `numa` memory source on DRAM), a devdax pool on a
//! stand-in device file in that tmpfs, the tmpfs directly (no FUSE), or
//! an existing pool directory.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The pool under test; cleans up on drop.
pub struct BenchPool {
    /// Pool directory libmaru opens.
    pub path: PathBuf,
    /// Human description for the report.
    pub description: String,
    mounted: Option<maru_fs::Mounted>,
    tmpfs: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// Size limit of the benchmark's tmpfs (a limit, not an allocation).
const TMPFS_SIZE: &str = "6g";
/// Size of the `devdax` backend's stand-in device (sparse until written).
const DEVDAX_SIZE: u64 = 4 << 30;

impl BenchPool {
    /// Mounts a tmpfs (`huge=<huge>`) and, for `maru-fs`, a maru-fs pool over it.
    pub fn new(backend: &str, huge: &str) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("maru-bench-")
            .tempdir()
            .context("creating the benchmark's temporary directory")?;
        let backing = tmp.path().join("tmpfs");
        std::fs::create_dir(&backing).context("creating the tmpfs mount point")?;
        mount_tmpfs(&backing, huge)?;
        let mut pool = BenchPool {
            path: backing.clone(),
            description: format!("tmpfs huge={huge} at {}, no FUSE", backing.display()),
            mounted: None,
            tmpfs: Some(backing.clone()),
            _tmp: Some(tmp),
        };
        match backend {
            "tmpfs" => {}
            "maru-fs" => {
                let data = backing.join("pool");
                std::fs::create_dir(&data).context("creating the pool's backing directory")?;
                let mnt = backing.with_file_name("mnt");
                std::fs::create_dir(&mnt).context("creating the maru-fs mount point")?;
                let cfg = maru_fs::PoolConfig::new("bench", maru_fs::Backing::Dir(data), 5 << 30);
                let opts = maru_fs::MountOptions {
                    lend_socket: Some(backing.with_file_name("lend.sock")),
                    ..maru_fs::MountOptions::new(&mnt)
                };
                let m = maru_fs::mount(&opts, vec![cfg])
                    .with_context(|| format!("mounting maru-fs on {}", mnt.display()))?;
                pool.path = mnt.join("bench");
                pool.description = format!(
                    "maru-fs (FUSE passthrough) pool over tmpfs huge={huge}, mounted at {}",
                    mnt.display()
                );
                pool.mounted = Some(m);
            }
            "devdax" => {
                // A stand-in for /dev/daxX.Y: a file in the tmpfs, mapped the same way.
                let device = backing.join("dax0.0");
                std::fs::File::create_new(&device)
                    .and_then(|f| f.set_len(DEVDAX_SIZE))
                    .with_context(|| {
                        format!("creating the stand-in device {}", device.display())
                    })?;
                let mnt = backing.with_file_name("mnt");
                std::fs::create_dir(&mnt).context("creating the maru-fs mount point")?;
                let cfg = maru_fs::PoolConfig::new(
                    "bench",
                    maru_fs::Backing::Devdax(maru_fs::devdax::DevdaxConfig::new(&device)),
                    DEVDAX_SIZE,
                );
                let m = maru_fs::mount(&maru_fs::MountOptions::new(&mnt), vec![cfg])
                    .with_context(|| format!("mounting maru-fs on {}", mnt.display()))?;
                pool.path = mnt.join("bench");
                pool.description = format!(
                    "maru-fs devdax pool on a stand-in device {} (a tmpfs file), mounted at {}",
                    device.display(),
                    mnt.display()
                );
                pool.mounted = Some(m);
            }
            other => bail!("unknown backend {other:?}: use maru-fs, devdax or tmpfs"),
        }
        Ok(pool)
    }

    /// An existing pool directory (e.g. one served by maru-devd).
    pub fn existing(path: &Path) -> Self {
        BenchPool {
            path: path.to_path_buf(),
            description: format!("existing pool {}", path.display()),
            mounted: None,
            tmpfs: None,
            _tmp: None,
        }
    }
}

impl Drop for BenchPool {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            if let Err(e) = m.unmount() {
                eprintln!("maru-bench: unmounting maru-fs: {e}");
            }
        }
        if let Some(t) = self.tmpfs.take() {
            // Detaching our own mount; nothing to do if that fails.
            let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn mount_tmpfs(dir: &Path, huge: &str) -> Result<()> {
    let opts = format!("size={TMPFS_SIZE},huge={huge},mode=0755");
    let mounted = nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    );
    if let Err(e) = mounted {
        return Err(std::io::Error::from(e)).with_context(|| {
            format!(
                "mounting a tmpfs (huge={huge}) on {} (maru-bench needs root, or pass --pool)",
                dir.display()
            )
        });
    }
    Ok(())
}

/// A short description of the machine for the report.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    serde_json::json!({
        "cpu": cpu,
        "cpus": cpus,
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": kernel,
    })
}

/// KiB of the mapping starting at `addr` that are mapped with PMD (2 MiB) pages.
pub fn pmd_mapped_kib(addr: *const u8) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let start = format!("{:x}-", addr as usize);
    let mut in_block = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_block = line.starts_with(&start);
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("ShmemPmdMapped:")
            .or_else(|| line.strip_prefix("FilePmdMapped:"))
        {
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            if kb > 0 {
                return Some(kb);
            }
        }
    }
    Some(0)
}

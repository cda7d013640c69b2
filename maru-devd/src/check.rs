//! `maru-devd check-config`: validate a config file and print the plan, touching nothing.

use crate::config::locate::Seg;
use crate::config::{self, Diag, Source};
use crate::host::Host;
use crate::mounts;
use crate::plan::Plan;
use crate::tmpfs;
use std::path::{Path, PathBuf};

/// Arguments of `maru-devd check-config`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd check-config /etc/maru/maru.yaml
      Check the file and print each pool: node, size in bytes, backing tmpfs, mount path.
  maru-devd check-config --sysfs-root snapshot/root/sys maru.yaml
      Check against a captured sysfs tree instead of this host.

Every problem is printed as FILE:LINE:COLUMN: what is wrong; what would be right.
Exit status: 0 = valid, 2 = problems found (nothing is touched either way).")]
pub struct CheckArgs {
    /// The YAML config file to check.
    pub file: PathBuf,
    /// Directory standing for /sys (a captured tree), instead of this host's.
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// Runtime directory the plan's backing paths are shown under.
    #[arg(long, env = "MARU_RUNTIME_DIR", default_value = crate::RUNTIME_DIR, value_name = "DIR")]
    pub runtime_dir: PathBuf,
}

/// Loads and checks a config file against the host, and its `mount:` against the host's
/// directories and `runtime_dir`; `Err` holds the printable problems.
pub fn load(
    file: &Path,
    host: &Host,
    runtime_dir: &Path,
) -> anyhow::Result<Result<Plan, config::ConfigErrors>> {
    let source = Source::read(file)?;
    let cfg = match source.parse() {
        Ok(cfg) => cfg,
        Err(e) => return Ok(Err(e)),
    };
    let mount = mounts::check_mount_point(&cfg.mount, runtime_dir).map(|msg| Diag {
        path: vec![Seg::Value("mount".into())],
        msg,
    });
    Ok(match (config::validate(&cfg, host), mount) {
        (Ok(plan), None) => Ok(plan),
        (Ok(_), Some(d)) => Err(source.errors(vec![d])),
        (Err(mut diags), mount) => {
            // `mount:` comes first in the file, and so in the report.
            diags.splice(0..0, mount);
            Err(source.errors(diags))
        }
    })
}

/// Runs the command: prints the plan (exit 0) or every problem (exit 2).
pub fn run(args: &CheckArgs) -> anyhow::Result<()> {
    let host = Host::discover(args.sysfs_root.as_deref())?;
    match load(&args.file, &host, &args.runtime_dir)? {
        Ok(plan) => crate::output::stdout(&format!(
            "{}{}: OK, {} pool(s); nothing was touched\n",
            plan.render(&args.runtime_dir, tmpfs::thp_mode(host.sysfs_root())),
            args.file.display(),
            plan.pools.len()
        )),
        Err(errors) => {
            crate::output::stderr(&format!(
                "{errors}\n{}: {} problem(s); nothing was touched\n",
                args.file.display(),
                errors.0.len()
            ));
            std::process::exit(i32::from(crate::exit::Code::Usage.status()));
        }
    }
}

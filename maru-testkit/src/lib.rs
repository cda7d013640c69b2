//! Test plumbing shared by Maru's crates (a dev-dependency only, never shipped).
//!
//! * [`need`]: gates for tests that need root (and `/dev/fuse`) or a GPU. A test
//!   that cannot run here fails with a message saying why, unless skipping was
//!   asked for (`MARU_TEST_SKIP_ROOT=1`); a skipped test prints
//!   `SKIPPED (<why>): <test>` to stderr, past the test harness's capture.
//! * [`wait`]: polling for what the kernel or a daemon does asynchronously, with
//!   time-outs that name what was awaited.
//! * [`pagemap`]: physical frame numbers from `/proc/PID/pagemap` (zero-copy checks).
//! * [`fixtures`]: the repository and its sibling `shared/` folder (captured sysfs
//!   snapshots), found relative to this crate, never through a machine path.
//! * [`devdax`]: stand-ins for a device-dax device, sized like the captured `dax0.0`.
//! * [`user`]: running a command as an unprivileged user.
//! * [`devd`]: a `maru-devd` daemon in a private world (config, runtime dir, mount).
//! * [`faults`]: the runner of the fault suites (`N passed, M failed`).

pub mod devd;
pub mod devdax;
pub mod faults;
pub mod fixtures;
pub mod fuzz;
pub mod need;
pub mod pagemap;
pub mod user;
pub mod wait;

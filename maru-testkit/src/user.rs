//! Running commands as an unprivileged user (through `setpriv`, which needs root).

use std::ffi::OsStr;
use std::process::Command;

/// uid and gid of `nobody`, the unprivileged user the tests switch to.
pub const NOBODY: u32 = 65534;

/// `program` run as `uid` (and gid `uid`, no supplementary groups), or as this
/// process's user when `uid` is `None`.
pub fn command_as(program: impl AsRef<OsStr>, uid: Option<u32>) -> Command {
    match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_goes_through_setpriv() {
        let c = command_as("/bin/true", Some(NOBODY));
        assert_eq!(c.get_program(), "setpriv");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/true"
            ]
        );
        assert_eq!(command_as("/bin/true", None).get_program(), "/bin/true");
    }
}

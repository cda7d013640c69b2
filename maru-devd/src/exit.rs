//! maru-devd's exit statuses, one meaning each, for every command:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | internal error (a bug, or a failure no other code describes) |
//! | 2 | usage or config error: bad arguments, a config with problems, a reload refused for its config |
//! | 3 | environment error: not root, no daemon answers, a device, mount, sysfs or privilege operation failed |
//! | 4 | another maru-devd already runs with this runtime directory |
//!
//! An error carries its code by being wrapped in [`Coded`] (see [`WithCode::code`]);
//! an error without one exits 1.

use std::fmt;

/// An exit status with a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: a bug, or a failure no other code describes.
    Internal = 1,
    /// 2: bad arguments or a config with problems (clap's own usage errors exit 2 as well).
    Usage = 2,
    /// 3: the host does not allow it: privileges, devices, mounts, no daemon to talk to.
    Environment = 3,
    /// 4: another daemon holds this runtime directory's lock.
    AlreadyRunning = 4,
}

impl Code {
    /// The process exit status.
    pub fn status(self) -> u8 {
        self as u8
    }
}

/// An error with the exit status it should end the process with. Its message is the wrapped
/// error's whole chain, so wrapping changes nothing that is printed.
#[derive(Debug)]
pub struct Coded {
    /// The exit status.
    pub code: Code,
    /// The error.
    pub err: anyhow::Error,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.err)
    }
}

impl std::error::Error for Coded {}

/// Attaches an exit status to the error of a `Result`.
pub trait WithCode<T> {
    /// The same result; an error now exits with `code`.
    fn code(self, code: Code) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: Code) -> anyhow::Result<T> {
        self.map_err(|e| coded(code, e.into()))
    }
}

/// `err` with exit status `code`.
pub fn coded(code: Code, err: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Coded { code, err })
}

/// The exit status for `e`: the outermost [`Coded`] in its chain, else [`Code::Internal`].
pub fn code_of(e: &anyhow::Error) -> Code {
    e.chain()
        .find_map(|c| c.downcast_ref::<Coded>())
        .map_or(Code::Internal, |c| c.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_code_survives_context_and_the_message_is_unchanged() {
        let r: anyhow::Result<()> = Err(anyhow::anyhow!("no such device"))
            .context("cannot open dax0.0")
            .code(Code::Environment);
        let e = r.context("pool kv").unwrap_err();
        assert_eq!(code_of(&e), Code::Environment);
        assert_eq!(
            format!("{e:#}"),
            "pool kv: cannot open dax0.0: no such device"
        );
        assert_eq!(code_of(&anyhow::anyhow!("x")), Code::Internal);
    }
}

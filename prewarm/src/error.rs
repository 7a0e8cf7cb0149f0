//! What can stop an okome-prewarm run before it produces a report, and the
//! exit status each maps to (the shared contract, plus 4 for the emergency
//! stop, which is a finished run's status rather than an error).

use okome_common::exit::{self, ExitStatus};
use std::fmt;

/// Exit status: the emergency stop ended the run (tool-specific).
pub const EXIT_EMERGENCY_STOP: u8 = 4;

/// What can stop a run before it produces a report.
#[derive(Debug)]
pub enum Error {
    /// A bad setting: nothing was changed.
    Config(String),
    /// The log cannot be read.
    Log(std::path::PathBuf, std::io::Error),
    /// Anything else (state directory, lock, I/O).
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(why) => f.write_str(why),
            Error::Log(path, e) => write!(f, "access log {}: {e}", path.display()),
            Error::Internal(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Config(_) => exit::USAGE,
            // A log that does not exist is a wrong OKOME_PREWARM_LOG.
            Error::Log(_, e) if e.kind() == std::io::ErrorKind::NotFound => exit::USAGE,
            Error::Log(..) | Error::Internal(_) => exit::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_exit_contract() {
        assert_eq!(Error::Config("x".into()).exit_status(), 2);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::Log("/x".into(), missing).exit_status(), 2);
        assert_eq!(Error::Internal("x".into()).exit_status(), 3);
    }
}

//! Why a run stopped, and the exit status each reason maps to.
//!
//! Refusals are a closed set ([`Refusal`]) because each one is a promise the
//! man page makes ("a mounted card is never read") and a test holds: the
//! same word names it in the message, the JSON report and the test.

use std::fmt;
use std::path::PathBuf;

use okome_common::exit::{self, ExitStatus};

/// A reason to refuse SRC, OUT or DEVICE before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A partition of the device (or the image itself) is mounted.
    Mounted,
    /// The image file is attached to a loop device (someone may be writing it).
    LoopAttached,
    /// The device holds the running system's root filesystem.
    SystemDisk,
    /// OUT is SRC, or lives on the filesystem SRC holds.
    OutOnSrc,
    /// Not enough free space where OUT and the work files go.
    NoSpace,
    /// The partition table is not the Pi layout (FAT boot + ext4 root, last).
    Layout,
    /// The image has no enabled unit that regenerates SSH host keys: its
    /// clones would boot without sshd.
    NoKeygenUnit,
}

impl Refusal {
    /// The word used in messages, `--json` and tests.
    pub fn word(self) -> &'static str {
        match self {
            Refusal::Mounted => "mounted",
            Refusal::LoopAttached => "loop-attached",
            Refusal::SystemDisk => "system-disk",
            Refusal::OutOnSrc => "out-on-src",
            Refusal::NoSpace => "no-space",
            Refusal::Layout => "layout",
            Refusal::NoKeygenUnit => "no-ssh-keygen-unit",
        }
    }

    /// Exit status: problems of the arguments are usage errors (2); an
    /// image that cannot be made safe is "found a problem" (1).
    pub fn exit_status(self) -> u8 {
        match self {
            Refusal::Layout | Refusal::NoKeygenUnit => exit::PROBLEM,
            _ => exit::USAGE,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Error {
    /// Bad flags or configuration; nothing was read or written.
    Usage(String),
    /// A refusal, with what was refused and why.
    Refused(Refusal, String),
    /// `verify` or `burn`'s read-back found the image wrong (the report says how).
    Invalid(String),
    /// A program the tool drives failed or is missing.
    Program {
        /// The command line, for the operator to rerun.
        command: String,
        /// Its status and stderr.
        detail: String,
    },
    /// Reading or writing a file failed.
    Io(PathBuf, std::io::Error),
    /// Something the tool did not expect in a program's output.
    Internal(String),
}

impl Error {
    /// An I/O error naming its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io(path, error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Invalid(message) | Error::Internal(message) => {
                f.write_str(message)
            }
            Error::Refused(refusal, message) => {
                write!(f, "refused ({}): {message}", refusal.word())
            }
            Error::Program { command, detail } => write!(f, "`{command}` failed: {detail}"),
            Error::Io(path, error) => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

impl ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Refused(refusal, _) => refusal.exit_status(),
            Error::Invalid(_) => exit::PROBLEM,
            Error::Program { .. } | Error::Io(..) | Error::Internal(_) => exit::INTERNAL,
        }
    }
}

/// Result of every fallible step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! okome-chaos: one failure at a time on one node, with the revert on disk
//! and armed on the node before anything is injected, and only objects it
//! owns touched (its nft table, units that were running, its fill file).
//!
//! Pure parts, each unit-tested: the guard ([`guard`]), the plan
//! ([`plan`]), the nft table ([`nft`]), the verdict ([`verdict`]). The node
//! is reached only through [`host::Host`]; [`run`] drives an experiment.

pub mod cli;
pub mod guard;
pub mod host;
pub mod metrics;
pub mod nft;
pub mod peers;
pub mod plan;
pub mod run;
pub mod store;
pub mod verdict;

pub use cli::{Config, command};

/// The tool's name.
pub const TOOL: &str = "okome-chaos";

/// What the start-up needs to know (`okome_common::tool`): every setting
/// is an `OKOME_CHAOS_*` variable; no older names to honour.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_CHAOS_",
    env_aliases: &[],
    lenient_defaults_flag: None,
};

/// Why a command could not do its job.
#[derive(Debug)]
pub enum Error {
    /// A flag or setting is wrong; nothing was changed.
    Usage(String),
    /// A safeguard refused; nothing was changed.
    Refused(String),
    /// I/O on the state directory or a plan file.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(why) => f.write_str(why),
            Error::Refused(why) => write!(f, "refused, nothing changed: {why}"),
            Error::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(_) | Error::Refused(_) => None,
            Error::Io(error) => Some(error),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error)
    }
}

impl okome_common::exit::ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Refused(_) => okome_common::exit::USAGE,
            Error::Io(_) => okome_common::exit::INTERNAL,
        }
    }
}

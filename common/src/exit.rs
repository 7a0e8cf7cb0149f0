//! The exit-status contract every OKOME tool follows and documents.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | ran, all good |
//! | 1 | ran and found a problem (unhealthy upstream, ratio below threshold, …) |
//! | 2 | usage or configuration error: nothing was changed |
//! | 3 | internal failure (I/O, unexpected state) |
//! | 4+ | tool-specific, listed in that tool's man page |

use std::process::ExitCode;

/// Ran, all good.
pub const OK: u8 = 0;
/// Ran and found a problem.
pub const PROBLEM: u8 = 1;
/// Usage or configuration error; nothing was changed.
pub const USAGE: u8 = 2;
/// Internal failure.
pub const INTERNAL: u8 = 3;

/// An error that knows which exit status it maps to, so `main` stays a
/// one-line mapping and no helper ever calls `process::exit`. Every tool's
/// error type is a real `std::error::Error` as well.
pub trait ExitStatus: std::error::Error {
    /// The exit status for this error, from the table above.
    fn exit_status(&self) -> u8;
}

/// Print `error` once, prefixed with the tool name (and the journald error
/// priority `<3>` when stderr is the journal), and turn it into the exit
/// code it carries: the one reporter every tool's errors go through
/// (`okome_common::tool::main` calls it).
pub fn report<E: ExitStatus + ?Sized>(tool: &str, error: &E) -> ExitCode {
    let priority = if std::env::var_os("JOURNAL_STREAM").is_some() {
        "<3>"
    } else {
        ""
    };
    eprintln!("{priority}{tool}: error: {error}");
    ExitCode::from(error.exit_status())
}

/// The exit-status table as text, for `--help` footers and man pages.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  ran, all good
  1  ran and found a problem
  2  usage or configuration error (nothing was changed)
  3  internal failure";

//! okome-validate: one command tells whether an OKOME cache node, or with
//! `--cluster` the whole cluster, is right, and which runbook incident to
//! open when it is not.
//!
//! Shape: `cli` turns flags into a validated [`Config`]; `model` is the
//! closed catalogue of checks; `judge` is pure (table-tested); `probe` does
//! the read-only I/O; `run` applies dependencies, retries, waivers and
//! `--wait`; `cluster` fans out over SSH and judges the invariants;
//! `report` prints the four outputs and picks the exit status.

pub mod cli;
pub mod cluster;
pub mod cluster_conf;
pub mod judge;
pub mod model;
pub mod probe;
pub mod report;
pub mod run;

pub use cli::{Config, ConfigError, Output, TOOL, command};
pub use report::Report;

use std::io::IsTerminal;

/// Why printing the result failed (exit 3).
#[derive(Debug)]
pub struct WriteError(pub std::path::PathBuf, pub std::io::Error);

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing {}: {}", self.0.display(), self.1)
    }
}

impl std::error::Error for WriteError {}

impl okome_common::exit::ExitStatus for WriteError {
    fn exit_status(&self) -> u8 {
        okome_common::exit::INTERNAL
    }
}

/// What the start-up needs to know (`okome_common::tool`): every setting
/// is an `OKOME_VALIDATE_*` variable; no older names to honour.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_VALIDATE_",
    env_aliases: &[],
    lenient_defaults_flag: None,
};

/// Why a run could not complete: bad flags or cluster file (exit 2), or the
/// result could not be written (exit 3). Failed checks are not errors: they
/// are the report, and its exit status.
#[derive(Debug)]
pub enum Error {
    Config(cli::ConfigError),
    Write(WriteError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Write(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl okome_common::exit::ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Config(_) => okome_common::exit::USAGE,
            Error::Write(e) => e.exit_status(),
        }
    }
}

/// Run the checks this config asks for.
pub fn run(config: &Config) -> Report {
    if config.cluster {
        cluster::run_cluster(config)
    } else {
        let node = run::run_local(config);
        Report {
            mode: "local",
            nodes: vec![node],
            cluster: Vec::new(),
        }
    }
}

/// Print (or write atomically) `report` as the config says; returns the exit status.
pub fn emit(config: &Config, report: &Report) -> Result<u8, WriteError> {
    let text = match config.output {
        Output::Human => {
            let colour = match config.colour {
                cli::Colour::Always => true,
                cli::Colour::Never => false,
                cli::Colour::Auto => {
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            report::human(report, colour)
        }
        Output::Json => format!("{}\n", report::to_json(report)),
        Output::Nagios => format!("{}\n", report::nagios(report)),
        Output::Prometheus => report::prometheus(report),
    };
    match &config.output_file {
        Some(path) => okome_common::fsutil::atomic_write(path, text.as_bytes(), 0o644)
            .map_err(|e| WriteError(path.clone(), e))?,
        None => print!("{text}"),
    }
    Ok(match config.output {
        Output::Nagios => report.nagios_status(),
        _ => report.exit_status(),
    })
}

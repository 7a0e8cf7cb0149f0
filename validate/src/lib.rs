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

pub use cli::{Config, Output, TOOL, command};
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

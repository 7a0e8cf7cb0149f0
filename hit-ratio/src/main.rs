//! okome-hit-ratio's entry point: the shared start-up (`okome_common::tool`:
//! defaults file, flags, logging, error report), then flags → validated
//! `Config` → `run` → exit status. Everything else lives in the library so
//! tests can reach it.

use std::process::ExitCode;

use clap::FromArgMatches as _;
use okome_hit_ratio::{Cli, Config, Error, SPEC, command, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        let cli = Cli::from_arg_matches(matches).map_err(|e| Error::Usage(e.to_string()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        run(&Config::from_cli(cli, now)?)
    })
}

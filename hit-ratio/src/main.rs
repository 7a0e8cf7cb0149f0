//! okome-hit-ratio's entry point: flags → validated `Config` → `run` → exit
//! status. Everything else lives in the library so tests can reach it.

use std::process::ExitCode;

use clap::Parser as _;
use okome_common::exit;
use okome_hit_ratio::{Cli, Config, Error, TOOL, run};

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("hit-ratio") {
        return exit::report(TOOL, &Error::Usage(error.to_string()));
    }
    let cli = Cli::parse();
    okome_common::logging::init(TOOL, if cli.verbose { "info" } else { "warn" });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match Config::from_cli(cli, now).and_then(|config| run(&config)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => exit::report(TOOL, &error),
    }
}

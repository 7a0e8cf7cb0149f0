//! `okome-health-probe`: parse flags, build the config, run once, exit with
//! the documented status. All logic lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use okome_common::exit;
use okome_health_probe::{Config, TOOL, command, run};

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("health-probe") {
        // keepalived runs --check-local as `nobody`; a defaults file kept
        // private (it may hold the Redis password) must not drop the VIP.
        if !std::env::args_os().any(|arg| arg == "--check-local") {
            eprintln!("{TOOL}: error: {error}");
            return ExitCode::from(exit::USAGE);
        }
    }
    okome_common::logging::init(TOOL, "info");
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let config = match Config::from_matches(&matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{TOOL}: error: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&config) {
        Ok(outcome) => {
            if config.json {
                println!("{}", outcome.to_json());
            } else if std::io::stdout().is_terminal() {
                println!("{}", outcome.summary());
            }
            ExitCode::from(outcome.exit_status())
        }
        Err(error) => exit::report(TOOL, &error),
    }
}

//! `okome-validate`: load the defaults file, parse flags into a validated
//! config, run the checks, print, exit with the documented status. All
//! logic lives in the library.

use std::process::ExitCode;

use okome_common::exit;
use okome_validate::{Config, TOOL, command, emit, run};

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("validate") {
        eprintln!("{TOOL}: error: {error}");
        return ExitCode::from(exit::USAGE);
    }
    okome_common::logging::init(TOOL, "warn");
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
    let report = run(&config);
    match emit(&config, &report) {
        Ok(status) => ExitCode::from(status),
        Err(error) => exit::report(TOOL, &error),
    }
}

//! `okome-golden-image`: parse flags, build the config, run, exit with the
//! documented status. All logic lives in the library.

use std::process::ExitCode;

use okome_common::exit;
use okome_golden_image::{Config, Error, TOOL, cli, command, run};

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("golden-image") {
        return exit::report(TOOL, &Error::Usage(error.to_string()));
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
    let json = cli::wants_json(&matches);
    let outcome = match Config::from_matches(&matches).and_then(|config| run(&config)) {
        Ok(outcome) => outcome,
        Err(error) => return exit::report(TOOL, &error),
    };
    if json {
        println!("{}", outcome.to_json());
    } else {
        print!("{}", outcome.summary());
    }
    ExitCode::from(outcome.exit_status())
}

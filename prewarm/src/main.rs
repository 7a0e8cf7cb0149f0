//! The `okome-prewarm` binary: flags → validated config → run → exit status.
//! All logic lives in the library (`okome_prewarm`), where it is tested.

use okome_common::exit;
use std::process::ExitCode;

const TOOL: &str = "okome-prewarm";

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("prewarm") {
        eprintln!("{TOOL}: error: {error}");
        return ExitCode::from(exit::USAGE);
    }
    okome_common::logging::init(TOOL, "info");
    let matches = okome_prewarm::command().get_matches();
    let config = match okome_prewarm::Config::from_matches(&matches) {
        Ok(config) => config,
        Err(error) => return exit::report(TOOL, &error),
    };
    match okome_prewarm::run(&config) {
        Ok(status) => ExitCode::from(status),
        Err(error) => exit::report(TOOL, &error),
    }
}

//! `okome-chaos`: parse flags, build the config, carry it out, exit with the
//! documented status. SIGINT/SIGTERM only set a flag: the run reverts on
//! the main thread. All logic lives in the library.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use okome_chaos::{Config, TOOL, command, host::System, run};
use okome_common::exit;

fn main() -> ExitCode {
    if let Err(error) = okome_common::defaults::load_into_env("chaos") {
        eprintln!("{TOOL}: error: {error}");
        return ExitCode::from(exit::USAGE);
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
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("{TOOL}: error: cannot handle signal {signal}: {error}");
            return ExitCode::from(exit::INTERNAL);
        }
    }
    match run::execute(&config, &mut System, &stop) {
        Ok(status) => ExitCode::from(status),
        Err(error) => exit::report(TOOL, &error),
    }
}

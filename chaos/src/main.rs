//! `okome-chaos`: the shared start-up (defaults file, flags, logging, error
//! report: `okome_common::tool`), then the command, and the documented exit
//! status. SIGINT/SIGTERM only set a flag: the run reverts on the main
//! thread (the release profile aborts on panic, so no revert can live in a
//! destructor). All logic lives in the library.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use okome_chaos::{Config, Error, SPEC, command, host::System, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        let config = Config::from_matches(matches).map_err(Error::Usage)?;
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        run::execute(&config, &mut System, &stop)
    })
}

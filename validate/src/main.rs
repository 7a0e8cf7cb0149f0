//! `okome-validate`: the shared start-up (defaults file, flags, logging,
//! error report: `okome_common::tool`), then the checks, printed in the
//! asked format, and the documented exit status. All logic lives in the
//! library.

use std::process::ExitCode;

use okome_validate::{Config, Error, SPEC, command, emit, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        let config = Config::from_matches(matches).map_err(Error::Config)?;
        let report = run(&config);
        emit(&config, &report).map_err(Error::Write)
    })
}

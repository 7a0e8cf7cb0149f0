//! `okome-health-probe`: the shared start-up (defaults file, flags, logging,
//! error report: `okome_common::tool`), then one run whose outcome is
//! printed and mapped to the documented exit status. All logic lives in the
//! library.

use std::io::IsTerminal;
use std::process::ExitCode;

use okome_health_probe::{Config, Error, SPEC, command, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        let config = Config::from_matches(matches).map_err(Error::from)?;
        let outcome = run(&config)?;
        if config.json {
            println!("{}", outcome.to_json());
        } else if std::io::stdout().is_terminal() {
            println!("{}", outcome.summary());
        }
        Ok(outcome.exit_status())
    })
}

//! `okome-golden-image`: the shared start-up (`okome_common::tool`:
//! defaults file, flags, logging, error report), then flags → config → run,
//! the outcome printed (text or `--json`) and mapped to the documented exit
//! status. All logic lives in the library.

use std::process::ExitCode;

use okome_golden_image::{Config, Error, SPEC, cli, command, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        let json = cli::wants_json(matches);
        let outcome = run(&Config::from_matches(matches)?)?;
        if json {
            println!("{}", outcome.to_json());
        } else {
            print!("{}", outcome.summary());
        }
        Ok(outcome.exit_status())
    })
}

//! The `okome-prewarm` binary: the shared start-up (`okome_common::tool`:
//! defaults file, flags, logging, error report), then flags → validated
//! config → run → exit status. All logic lives in the library, where it is
//! tested.

use std::process::ExitCode;

use okome_prewarm::{Config, Error, SPEC, command, run};

fn main() -> ExitCode {
    okome_common::tool::main(&SPEC, command, |matches| -> Result<u8, Error> {
        run(&Config::from_matches(matches)?)
    })
}

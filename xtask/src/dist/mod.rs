//! `cargo xtask dist`: static ARM binaries and .deb packages. Being built in
//! the packaging issue.

use crate::Result;

pub fn main(_args: &[String]) -> Result {
    Err("dist is not built yet".into())
}

/// The packaging checks `cargo xtask test` runs.
pub fn test_suite() -> Result {
    Ok(())
}

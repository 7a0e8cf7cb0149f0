//! Running the real programs (sfdisk, e2fsprogs, mtools, zstd).
//!
//! One place builds every command so that each failure names the exact
//! command line to rerun, stderr is kept for the message, and mtools never
//! refuses an image for its geometry (`MTOOLS_SKIP_CHECK`).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// A command with mtools' geometry check off and a C locale, so outputs parse.
pub fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("LC_ALL", "C")
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::null());
    command
}

/// The command line as text, for messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Run and capture; a spawn failure is an error, the exit status is not.
pub fn output(command: &mut Command) -> Result<Output> {
    log::debug!("running {}", describe(command));
    command.output().map_err(|error| Error::Program {
        command: describe(command),
        detail: format!("cannot start: {error} (is it installed?)"),
    })
}

/// Run, capture, and fail unless the exit status is one of `ok`.
pub fn checked(command: &mut Command, ok: &[i32]) -> Result<Output> {
    let out = output(command)?;
    match out.status.code() {
        Some(code) if ok.contains(&code) => Ok(out),
        _ => Err(Error::Program {
            command: describe(command),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

/// Run, fail on a non-zero status, return stdout as text.
pub fn stdout(command: &mut Command) -> Result<String> {
    let out = checked(command, &[0])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program args… path`, the common shape.
pub fn run_on(program: &str, args: &[&str], path: &Path) -> Result<String> {
    stdout(command(program).args(args).arg(path))
}

/// `img@@offset`: mtools' way to address a partition inside an image.
pub fn mtools_target(image: &Path, offset: u64) -> std::ffi::OsString {
    let mut target = image.as_os_str().to_os_string();
    target.push(OsStr::new(&format!("@@{offset}")));
    target
}

/// The first word of sha256sum's output.
pub fn first_word(text: &str) -> Result<String> {
    text.split_whitespace()
        .next()
        .filter(|hash| hash.len() == 64)
        .map(str::to_string)
        .ok_or_else(|| Error::Internal(format!("unexpected sha256sum output {text:?}")))
}

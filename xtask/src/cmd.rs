//! Running external programs from xtask: echo the command, fail with its
//! name and status, so a red CI log says what broke without scrolling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Result;

/// The harness's helpers: one copy of each.
pub use okome_cluster::cmd::{describe, finished};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}

/// Run `command`, echoing it first; an unsuccessful exit is an error.
pub fn run(command: &mut Command) -> Result {
    eprintln!("+ {}", describe(command));
    let status = command
        .status()
        .map_err(|error| format!("{}: {error}", describe(command)))?;
    if !status.success() {
        return Err(format!("{} failed: {status}", describe(command)).into());
    }
    Ok(())
}

/// Run `command` with no stdin and return what it printed; an unsuccessful
/// exit is an error that includes stderr.
pub fn captured(command: &mut Command) -> Result<Output> {
    let out = finished(command)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\n{}",
            describe(command),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

/// Run `command` and return its stdout as text (see [`captured`]).
pub fn output(command: &mut Command) -> Result<String> {
    captured(command).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// A `cargo` command that uses the same cargo that runs xtask.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

//! The small harness of the config checks (`tests/tests/config_*.rs`, one
//! file per program): each shipped file under `configs/` is handed to the
//! real program that reads it, in a temp directory, with loopback ports, and
//! every check is paired with a broken copy that must fail.
//!
//! A config is rendered for a check only by substituting strings that must
//! occur in the shipped file ([`render`] fails loudly otherwise), the same
//! rule the lab's renderer follows. Processes run under the test kit's
//! [`ProcessGuard`] (killed by process group on drop, even on panic).

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bins::{try_tool_bin, workspace_root};
use crate::process::ProcessGuard;

/// A shipped file: `configs/<relative>`.
pub fn shipped(relative: &str) -> PathBuf {
    workspace_root().join("configs").join(relative)
}

/// The file's text; panics naming the file.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Write the file; panics naming the file.
pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A directory under the system temp dir, removed on drop (even on panic).
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// `okome-configs-<tag>-…` under the temp dir.
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("okome-configs-{tag}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("mkdir in the temp dir: {e}"));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Start `command` under a guard, its stdout and stderr in `log`.
pub fn start(what: &str, command: &mut Command, log: &Path) -> ProcessGuard {
    ProcessGuard::spawn(what, command, Some(log)).unwrap_or_else(|e| panic!("{e}"))
}

/// Panics (with its log) if the guarded process already exited: it was
/// meant to run.
pub fn assert_running(guard: &mut ProcessGuard) {
    if let Some(status) = guard.try_wait() {
        panic!(
            "{} exited early ({status}); its log:\n{}",
            guard.name(),
            guard.log_tail(200)
        );
    }
}

/// Wait (up to 15 s) until something listens on 127.0.0.1:`port`; panics
/// with the process's log if it died or never listened.
pub fn wait_for_port(port: u16, guard: &mut ProcessGuard) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        assert_running(guard);
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on 127.0.0.1:{port} within 15 s",
        guard.name()
    );
}

/// Runs a command to completion, stdin closed, output captured.
pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {command:?}: {e} (cargo xtask test installs every program these tests use)"
        )
    })
}

/// stdout then stderr, as text.
pub fn text_of(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The command, its status and both outputs, for a failure message.
pub fn describe(command: &Command, output: &Output) -> String {
    format!(
        "command: {command:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The shipped text with each `(from, to)` substituted by the lab's one
/// pass (`render::replace_all`); every `from` must apply, so a config edit
/// that drops a substituted value breaks the check loudly instead of
/// silently testing the shipped address.
pub fn render(text: &str, substitutions: &[(&str, &str)]) -> String {
    let mut used = vec![false; substitutions.len()];
    let out = crate::render::replace_all(text, substitutions, &mut used);
    for ((from, _), used) in substitutions.iter().zip(used) {
        assert!(
            used,
            "the shipped config no longer contains {from:?}: update the test's substitution"
        );
    }
    out
}

/// The built tool if it exists, otherwise `/usr/bin/true` as a stand-in. Only
/// used where a validator insists the program exists (systemd-analyze verify
/// fails on a missing ExecStart binary, keepalived on a missing script): the
/// file's content is what is checked, not the tool.
pub fn tool_or_stand_in(tool: &str) -> String {
    try_tool_bin(tool).map_or_else(
        || "/usr/bin/true".to_string(),
        |built| built.display().to_string(),
    )
}

/// A systemd-style INI file (units, journald.conf): `[Section]` → key →
/// every value (systemd keys may repeat).
pub fn unit_sections(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
    }
    sections
}

/// The last value of `key` in `section` (the one systemd applies).
pub fn unit_value(
    sections: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> Option<String> {
    sections
        .get(section)
        .and_then(|s| s.get(key))
        .and_then(|values| values.last().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_refuses_a_substitution_the_text_does_not_hold() {
        assert_eq!(render("port 6379", &[("6379", "1")]), "port 1");
        assert!(std::panic::catch_unwind(|| render("port 6379", &[("bind", "x")])).is_err());
    }

    #[test]
    fn a_process_that_dies_is_reported_with_its_log() {
        let dir = TempDir::new("check");
        let mut guard = start(
            "sh",
            Command::new("sh").args(["-c", "echo going away; exit 3"]),
            &dir.join("sh.log"),
        );
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for_port(crate::free_port(), &mut guard)
        }));
        let message = *caught
            .expect_err("a dead process")
            .downcast::<String>()
            .unwrap();
        assert!(message.contains("going away"), "{message}");
    }
}

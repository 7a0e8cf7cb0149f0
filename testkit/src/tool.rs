//! A tool binary run the way every test must run it: isolated from the
//! machine it runs on. Every `OKOME_*` variable and `JOURNAL_STREAM` of the
//! caller is removed (a developer's shell or a CI job under systemd would
//! otherwise change flags, log format or the root), `OKOME_ROOT` points at
//! the test's own root, and a run that hangs is killed after a default
//! timeout instead of hanging the suite.
//!
//! Tool crates name their own binary with [`tool!`] (Cargo only tells a
//! crate's own integration tests where its binaries are); the lab passes the
//! path it found ([`isolated`]). A long-running tool is [`spawn`]ed into a
//! [`ProcessGuard`] that kills it by PID on drop.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::ProcessGuard;

/// How long one tool run may take before it is killed (a test that wants a
/// longer or shorter bound sets its own `.timeout()`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `true` for the caller's variables a tool run must not inherit.
pub fn is_inherited_setting(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("OKOME_") || name == "JOURNAL_STREAM"
}

/// Scrub `command`'s environment of every `OKOME_*` and `JOURNAL_STREAM`
/// and root it at `root`.
pub fn isolate<'a>(command: &'a mut Command, root: &Path) -> &'a mut Command {
    for (key, _) in std::env::vars_os() {
        if is_inherited_setting(&key) {
            command.env_remove(&key);
        }
    }
    command.env("OKOME_ROOT", root)
}

/// The binary at `program`, isolated and rooted at `root`, killed after
/// [`DEFAULT_TIMEOUT`].
pub fn isolated(program: impl AsRef<OsStr>, root: &Path) -> assert_cmd::Command {
    let mut command = Command::new(program);
    isolate(&mut command, root);
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(DEFAULT_TIMEOUT);
    command
}

/// Start `command` (isolated by the caller with [`isolate`]) in the
/// background; it and its process group die with the returned guard.
/// Output goes to `log` when given.
pub fn spawn(name: &str, command: &mut Command, log: Option<&Path>) -> ProcessGuard {
    ProcessGuard::spawn(name, command, log).unwrap_or_else(|e| panic!("{e}"))
}

/// A tool's `--json` report, parsed; panics showing the stdout (and
/// stderr) that came instead.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `json` of stdout bytes alone (an `assert_cmd` assertion's output).
pub fn json_bytes(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

/// `tool!("okome-health-probe", root)`: this crate's binary, isolated and
/// rooted at `root` (an `assert_cmd::Command`, see [`isolated`]).
#[macro_export]
macro_rules! tool {
    ($name:literal, $root:expr) => {
        $crate::tool::isolated($crate::__assert_cmd::cargo::cargo_bin!($name), $root)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_sees_no_okome_setting_and_its_own_root() {
        // SAFETY: no other thread of this test binary reads or writes the
        // environment while it runs (it is the only test touching it).
        unsafe {
            std::env::set_var("OKOME_TESTKIT_LEAK", "1");
            std::env::set_var("JOURNAL_STREAM", "8:1");
        }
        let root = tempfile::tempdir().unwrap();
        let output = isolated("env", root.path()).output().unwrap();
        let env = String::from_utf8(output.stdout).unwrap();
        let okome: Vec<&str> = env
            .lines()
            .filter(|l| l.starts_with("OKOME_") || l.starts_with("JOURNAL_STREAM="))
            .collect();
        assert_eq!(okome, [format!("OKOME_ROOT={}", root.path().display())]);
        // Without the scrub, the leak would be there: the check can fail.
        let raw = Command::new("env").output().unwrap();
        assert!(String::from_utf8_lossy(&raw.stdout).contains("OKOME_TESTKIT_LEAK=1"));
    }

    #[test]
    fn json_parses_a_report_and_names_what_came_instead() {
        let root = tempfile::tempdir().unwrap();
        let output = isolated("echo", root.path())
            .arg("{\"ok\": 1}")
            .output()
            .unwrap();
        assert_eq!(json(&output)["ok"], 1);
        let output = isolated("echo", root.path())
            .arg("plain words")
            .output()
            .unwrap();
        let caught = std::panic::catch_unwind(|| json(&output)).unwrap_err();
        let message = caught.downcast::<String>().unwrap();
        assert!(message.contains("plain words"), "{message}");
    }

    #[test]
    fn a_hung_run_is_killed_at_its_timeout() {
        let root = tempfile::tempdir().unwrap();
        let mut command = isolated("sleep", root.path());
        command.arg("30").timeout(Duration::from_millis(200));
        // assert_cmd kills the child by PID at the timeout.
        let status = command.output().unwrap().status;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}

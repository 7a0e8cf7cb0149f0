//! Owning the processes a test starts: a [`ProcessGuard`] kills its process
//! group by PID when dropped, even when the test panics.
//!
//! nginx forks workers and redis may fork too, so killing only the child we
//! spawned would orphan them. Each guarded child is therefore started as the
//! leader of a new process group (its PGID is its own PID) and the guard
//! signals that group: SIGTERM, a short grace period, then SIGKILL. Nothing
//! else on the machine is ever signalled.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A child process (and its process group) that dies with this value.
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl ProcessGuard {
    /// Spawn `command` as a new process group. Its stdout and stderr go to
    /// `log` when given (read back by [`ProcessGuard::log_tail`] to explain a
    /// failure), else to the test's own output.
    pub fn spawn(name: &str, command: &mut Command, log: Option<&Path>) -> io::Result<Self> {
        command.process_group(0).stdin(Stdio::null());
        // Safety net for when the test process itself is killed (no Drop
        // runs then): the kernel sends SIGTERM to the child when the thread
        // that spawned it dies; nginx's master then stops its workers.
        // SAFETY: prctl is async-signal-safe and touches no Rust state.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)
            });
        }
        if let Some(log) = log {
            let file = File::create(log)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        let child = command.spawn().map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("starting {name} ({:?}): {error}", command.get_program()),
            )
        })?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.map(Path::to_path_buf),
        })
    }

    /// The PID (also the process group ID).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The exit status if the process has already ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last `lines` lines of the process's log file (empty without one).
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop the process group now: SIGTERM, up to 3 s grace, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The leader may be gone while a forked worker lingers: always make
        // sure the whole group is gone.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }

    /// The name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

//! The seam between okome-chaos and the node: every command it runs
//! (systemctl, systemd-run, nft, fallocate, rm, logger) and every fact it
//! measures goes through [`Host`], so the dry run can print instead of act
//! and the node-facing code has one place. [`System`] is the real node.

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status; `None` when it could not start or died by a signal.
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr (or why it could not start).
    pub stderr: String,
}

impl Ran {
    /// Exit status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The node okome-chaos acts on.
pub trait Host {
    /// Run `argv` (no shell), capture its output.
    fn run(&mut self, argv: &[String]) -> Ran;
    /// Whether a TCP connection to `addr` completes within `timeout`.
    fn connects(&mut self, addr: SocketAddrV4, timeout: Duration) -> bool;
    /// `(used, available)` bytes of the filesystem holding `path`, as df
    /// counts them.
    fn disk(&mut self, path: &Path) -> std::io::Result<(u64, u64)>;
}

/// The real node.
#[derive(Debug, Default)]
pub struct System;

impl Host for System {
    fn run(&mut self, argv: &[String]) -> Ran {
        let Some((program, args)) = argv.split_first() else {
            return Ran {
                code: None,
                stdout: String::new(),
                stderr: "empty command".into(),
            };
        };
        log::debug!("running {}", argv.join(" "));
        match Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .env("SYSTEMD_PAGER", "")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => Ran {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            },
            Err(error) => Ran {
                code: None,
                stdout: String::new(),
                stderr: format!("cannot start {program}: {error}"),
            },
        }
    }

    fn connects(&mut self, addr: SocketAddrV4, timeout: Duration) -> bool {
        TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout).is_ok()
    }

    fn disk(&mut self, path: &Path) -> std::io::Result<(u64, u64)> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        // The statvfs field types are c_ulong: u32 on armhf, u64 on arm64/amd64.
        let unit = stat.fragment_size() as u64;
        let used = (stat.blocks() as u64 - stat.blocks_free() as u64) * unit;
        Ok((used, stat.blocks_available() as u64 * unit))
    }
}

/// A unit's ActiveState (`active`, `inactive`, `failed`, …), or why not.
pub fn active_state(host: &mut dyn Host, unit: &str) -> Result<String, String> {
    let ran = host.run(&[
        "systemctl".into(),
        "show".into(),
        "--property=ActiveState".into(),
        "--value".into(),
        unit.into(),
    ]);
    if ran.ok() {
        Ok(ran.stdout.trim().to_string())
    } else {
        Err(format!("systemctl show {unit}: {}", ran.stderr))
    }
}

/// `nft list ruleset`, or why not.
pub fn ruleset(host: &mut dyn Host) -> Result<String, String> {
    let ran = host.run(&["nft".into(), "list".into(), "ruleset".into()]);
    if ran.ok() {
        Ok(ran.stdout)
    } else {
        Err(format!("nft list ruleset: {}", ran.stderr))
    }
}

/// `used / (used + available)` in percent.
pub fn used_percent((used, available): (u64, u64)) -> f64 {
    let total = used + available;
    if total == 0 {
        return 100.0;
    }
    used as f64 * 100.0 / total as f64
}

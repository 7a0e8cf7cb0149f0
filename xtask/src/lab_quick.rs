//! `cargo xtask lab --quick`: the loopback lab. Brings up — real
//! nginx on the shipped frontend configs, real redis-server on the shipped
//! redis.conf, a stub orchestrator — runs the operator's tour
//! (`okome_lab::tour`: MISS → HIT, canary modes, the health gate, 429s,
//! streaming, redis' eviction policy) and tears everything down.
//!
//! The lab itself lives in the okome-lab crate so the end-to-end tests run
//! exactly what this prints; this file only installs, builds, prints and
//! waits. `--keep` leaves the lab up until Ctrl-C.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use okome_lab::Lab;
use okome_lab::tour::{self, GateDriver};

use crate::Result;
use crate::cmd::{cargo, workspace_root};
use crate::deps;

/// Debian packages the lab starts for real.
const LAB_PACKAGES: &[&str] = &["nginx", "redis-server"];

/// Set by SIGINT/SIGTERM: finish the current step, then tear down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn main(args: &[String]) -> Result {
    let mut keep = false;
    for arg in args {
        match arg.as_str() {
            "--keep" => keep = true,
            other => return Err(format!("unknown argument {other:?} (accepted: --keep)").into()),
        }
    }
    deps::ensure_apt(LAB_PACKAGES)?;
    let _fence = crate::contain::SiteLanFence::raise();
    let driver = probe_driver();
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    let lab = Lab::builder().redis(true).start();
    let root = lab.root.dir().to_path_buf();
    let mut stdout = std::io::stdout();
    let report = tour::run(&lab, &driver, &mut stdout)?;

    if keep && !INTERRUPTED.load(Ordering::SeqCst) {
        let edge = lab.url("");
        writeln!(
            stdout,
            "\nThe lab stays up until Ctrl-C. Try:\n\
             \x20 curl -sI {edge}/                                # X-Cache-Status: HIT\n\
             \x20 curl -sI -H 'X-OKOME-Canary: canary' {edge}/ui-schema/foo\n\
             \x20 touch {flag}     # close the gate\n\
             \x20 curl -s {edge}/api/x                             # JSON 503\n\
             \x20 rm {flag}        # open it\n\
             \x20 tail -f {log}\n\
             \x20 OKOME_ROOT={root} target/debug/okome-health-probe --url {stub}/health --json",
            flag = lab.root.flag_file().display(),
            log = lab.access_log_path().display(),
            root = root.display(),
            stub = lab.stub.url(),
        )?;
        stdout.flush()?;
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    drop(lab);
    let left = if root.exists() {
        " (NOT removed!)"
    } else {
        " removed"
    };
    writeln!(
        stdout,
        "\nLab torn down: nginx, redis-server and the stub stopped; {}{left}.",
        root.display()
    )?;
    let failures = report.failures().len();
    if failures > 0 || root.exists() {
        return Err(format!("{failures} lab check(s) failed").into());
    }
    Ok(())
}

/// The real okome-health-probe drives the gate when it builds; otherwise
/// the tour creates the flag file as the probe would (and says so).
fn probe_driver() -> GateDriver {
    let built = cargo()
        .args(["build", "-q", "-p", "okome-health-probe"])
        .status()
        .is_ok_and(|s| s.success());
    let binary = workspace_root().join("target/debug/okome-health-probe");
    if built && binary.is_file() {
        GateDriver::Probe(binary)
    } else {
        eprintln!(
            "xtask lab: okome-health-probe did not build; the gate is driven by the flag file"
        );
        GateDriver::FlagFile
    }
}

//! Installing what the tests, the lab and the builds need, on a fresh Debian
//! machine, and nothing when it is already there (so a warm run costs a few
//! `dpkg-query` calls, not an `apt-get update`).

use std::process::Command;

use crate::Result;
use crate::cmd::{self, run};

/// Install the Debian packages in `packages` that are not installed yet.
pub fn ensure_apt(packages: &[&str]) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    // Debian starts daemons on install where it can; the tests start their
    // own instances on their own ports and must not find these in the way.
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Add rustup targets that are not installed yet.
pub fn ensure_rust_targets(targets: &[&str]) -> Result {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        run(Command::new("rustup")
            .arg("target")
            .arg("add")
            .args(&missing))?;
    }
    Ok(())
}

/// Add a rustup component (e.g. `rust-src` for build-std) if missing.
pub fn ensure_rust_component(component: &str) -> Result {
    let installed = cmd::output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    if installed
        .lines()
        .any(|l| l.trim() == component || l.trim().starts_with(&format!("{component}-")))
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", component]))
}

/// `cargo install` `krate` unless `binary` is already on PATH.
pub fn ensure_cargo_tool(binary: &str, krate: &str) -> Result {
    if cmd::have(binary) {
        return Ok(());
    }
    run(cmd::cargo().args(["install", "--locked", krate]))
}

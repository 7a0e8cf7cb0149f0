//! `cargo xtask test`: README's test command and what CI runs.
//!
//! It installs every real program the tests talk to (from Debian's
//! packages), checks formatting and lints, builds the tool binaries the
//! end-to-end tests start, runs every test, then the cross-build and
//! packaging checks, the booted suite and the cluster lab's end-to-end tests
//! (dist::test_suite). Each step fails loudly with the command that broke.

use crate::Result;
use crate::cmd::{cargo, run, workspace_root};
use crate::deps;

/// Every Debian package a test, the lab or a benchmark runs for real.
pub const TEST_PACKAGES: &[&str] = &[
    "nginx",
    "redis-server",
    "redis-tools",
    "keepalived",
    "fail2ban",
    "openssh-server",
    // visudo checks the shipped sudoers rule (tests/tests/config_sudoers.rs).
    "sudo",
    "iptables",
    "iproute2",
    "systemd",
    "lintian",
    "qemu-user-static",
    "debootstrap",
    // The booted suite boots Debian with systemd-nspawn --private-network (xtask dist --booted).
    "systemd-container",
    "prometheus",
    "curl",
    "file",
    "llvm",
    "procps",
    // fail2ban's journal backend (configs/fail2ban/jail.local), which
    // Debian's fail2ban package does not pull in.
    "python3-systemd",
    // configs/systemd/prometheus-node-exporter.service.d is started for real.
    "prometheus-node-exporter",
    // okome-golden-image drives these on image files (and its tests build a
    // Pi card with them): sfdisk, e2image/debugfs/resize2fs, mtools, mkfs.fat.
    "fdisk",
    "e2fsprogs",
    "mtools",
    "dosfstools",
    "zstd",
];

pub fn main(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(unknown) = args.iter().find(|a| *a != "--quick") {
        return Err(format!("unknown argument {unknown:?} (accepted: --quick, skips dist)").into());
    }
    deps::ensure_apt(TEST_PACKAGES)?;
    // Held until every test has run: nothing may reach the site LAN.
    let _fence = crate::contain::SiteLanFence::raise();
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The end-to-end tests in tests/ start the real tool binaries: build them
    // first and tell the tests where they are.
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    let bin_dir = workspace_root().join("target").join("debug");
    run(cargo()
        .args(["test", "--workspace"])
        .env("OKOME_BIN_DIR", &bin_dir))?;
    if !quick {
        crate::dist::test_suite()?;
    }
    Ok(())
}

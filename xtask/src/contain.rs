//! Containment for test and lab runs: the shipped configs and tool defaults
//! name the user's LAN (192.168.86.0/24), and a test that forgets to pass a
//! loopback address must fail at once instead of sending a packet there.
//!
//! While a [`SiteLanFence`] lives, the root namespace routes 192.168.0.0/16
//! as `unreachable` (connect fails immediately with EHOSTUNREACH); the route
//! is removed on drop, and only if this run added it.

use std::process::{Command, Stdio};

/// The private range the shipped defaults live in.
const SITE_LAN: &str = "192.168.0.0/16";

/// Holds the `unreachable` route for the site LAN for one run.
#[derive(Debug)]
pub struct SiteLanFence {
    added: bool,
}

impl SiteLanFence {
    /// Add the route unless an identical one exists. Without root (or
    /// without `ip`) the run goes on with a warning: containment is a safety
    /// net under tests that already pass loopback addresses explicitly.
    pub fn raise() -> SiteLanFence {
        if route_present() {
            return SiteLanFence { added: false };
        }
        let added = ip(&["route", "add", "unreachable", SITE_LAN]);
        if !added {
            eprintln!(
                "xtask: warning: could not route {SITE_LAN} as unreachable; \
                 a test that forgets its loopback address could reach the site LAN"
            );
        }
        SiteLanFence { added }
    }
}

impl Drop for SiteLanFence {
    fn drop(&mut self) {
        if self.added {
            ip(&["route", "del", "unreachable", SITE_LAN]);
        }
    }
}

fn route_present() -> bool {
    Command::new("ip")
        .args(["route", "show", "type", "unreachable", SITE_LAN])
        .stderr(Stdio::null())
        .output()
        .map(|out| !out.stdout.is_empty())
        .unwrap_or(false)
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

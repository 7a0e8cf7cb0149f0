//! The cluster's network: a "switch" namespace holding the bridge
//! `okc-br0`, and one namespace per node with a veth (`eth0` inside) into
//! that bridge. The bridge lives in a namespace of its own, not in the
//! host's: the host side has no address and no route to the nodes, so no
//! packet of theirs can leave through the host, and the host cannot reach
//! them except from inside a namespace.
//!
//! Fences: 10.213.0.0/16 is blackholed in the root namespace (added if
//! absent, never removed: other runs rely on it too), and every node
//! namespace routes 192.168.0.0/16 (the site LAN the shipped configs name)
//! as unreachable. Names carry the run's PID (`okc<pid>-…`) so concurrent
//! runs never meet, and namespaces of dead runs are removed at the next
//! start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Result;
use crate::cmd::{self, run};

/// Every name this harness gives a namespace starts with this.
pub const PREFIX: &str = "okc";
/// The bridge, inside the switch namespace.
pub const BRIDGE: &str = "okc-br0";
/// The tests' range, blackholed in the root namespace.
pub const TEST_RANGE: &str = "10.213.0.0/16";
/// The site LAN, unreachable from every node.
pub const SITE_LAN: &str = "192.168.0.0/16";

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

impl Netns {
    /// Create `okc<pid>-<suffix>`.
    pub fn create(suffix: &str) -> Result<Netns> {
        let name = format!("{PREFIX}{}-{suffix}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path nspawn's `--network-namespace-path=` takes.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS…`; a failure is an error.
    pub fn ip(&self, args: &[&str]) -> Result {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip netns exec NAME ARGV…`, output whatever its status.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        cmd::finished(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(argv),
        )
    }

    /// Like [`exec`](Self::exec), a non-zero exit is an error.
    pub fn exec_ok(&self, argv: &[&str]) -> Result<String> {
        let out = self.exec(argv)?;
        if !out.status.success() {
            return Err(format!(
                "in {}: {} failed: {}\n{}",
                self.name,
                argv.join(" "),
                out.status,
                cmd::tail(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The switch: a namespace with the bridge, and the nodes' veth ends.
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
}

impl Switch {
    pub fn create() -> Result<Switch> {
        remove_dead_namespaces();
        ensure_blackhole()?;
        let ns = Netns::create("switch")?;
        ns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        Ok(Switch { ns })
    }

    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// A namespace for node `name` with `address/24` on its `eth0`, plugged
    /// into the bridge (the switch side of the veth is named after the
    /// node), the site LAN unreachable.
    pub fn plug(&self, name: &str, address: &str) -> Result<Netns> {
        if name.len() > 15 {
            return Err(format!("node name {name:?}: at most 15 characters").into());
        }
        let node = Netns::create(name)?;
        self.ns.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node.name(),
        ])?;
        self.ns.ip(&["link", "set", name, "master", BRIDGE])?;
        self.ns.ip(&["link", "set", name, "up"])?;
        node.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        node.ip(&["link", "set", "eth0", "up"])?;
        node.ip(&["route", "add", "unreachable", SITE_LAN])?;
        Ok(node)
    }

    /// Take the switch port of `name` down (the node's `eth0` loses its
    /// carrier, as when its cable is pulled) or up again.
    pub fn set_port(&self, name: &str, up: bool) -> Result {
        self.ns
            .ip(&["link", "set", name, if up { "up" } else { "down" }])
    }

    /// Drop (or stop dropping) VRRP (IP protocol 112) between the nodes
    /// `names` in the bridge: each still thinks it has a link, but no
    /// advertisement gets through — the split brain. An nft table of the
    /// switch namespace, owned by the harness alone.
    pub fn block_vrrp(&self, block: bool) -> Result {
        let _ = self.ns.exec(&["nft", "delete", "table", "bridge", "okc"]);
        if block {
            self.ns.exec_ok(&[
                "nft",
                "add table bridge okc; \
                 add chain bridge okc forward { type filter hook forward priority 0; }; \
                 add rule bridge okc forward ip protocol vrrp counter drop",
            ])?;
        }
        Ok(())
    }
}

/// `ip route add blackhole 10.213.0.0/16` in the root namespace unless
/// present. Never removed: other runs may rely on it (PREAMBLE).
pub fn ensure_blackhole() -> Result {
    let present =
        cmd::output(Command::new("ip").args(["route", "show", "type", "blackhole", TEST_RANGE]))?;
    if present.trim().is_empty() {
        run(Command::new("ip").args(["route", "add", "blackhole", TEST_RANGE]))?;
    }
    Ok(())
}

/// The harness's namespaces alive now (`okc<pid>-…`), by name.
pub fn namespaces() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| owner_pid(name).is_some())
        .collect()
}

/// The PID in `okc<pid>-…`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Delete the namespaces of runs that are gone (killed outright: their
/// guards never ran). Their containers died with them (PR_SET_PDEATHSIG).
pub fn remove_dead_namespaces() {
    for name in namespaces() {
        if let Some(pid) = owner_pid(&name)
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            eprintln!("okome-cluster: removing a dead run's namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_come_from_our_names_only() {
        assert_eq!(owner_pid("okc123-switch"), Some(123));
        assert_eq!(owner_pid("okc123-frontend-a"), Some(123));
        assert_eq!(owner_pid("okv123-switch"), None);
        assert_eq!(owner_pid("okcx-switch"), None);
    }
}

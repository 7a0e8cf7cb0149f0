//! The node's host name, as the tools may read it under their systemd
//! sandbox.
//!
//! The units set `ProcSubset=pid`, which hides `/proc/sys`, so
//! `/proc/sys/kernel/hostname` alone fails on a real node; `/etc/hostname`
//! is the second source. One function, so every tool names the node the
//! same way (the probe's heartbeat key, prewarm's shared-plan author).
//! Each caller keeps its own fallback for "no name at all".

/// The host name from `/proc/sys/kernel/hostname`, else `/etc/hostname`,
/// trimmed; `None` when neither gives a non-empty name.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_found_and_trimmed() {
        // Linux always has /proc/sys/kernel/hostname outside the sandbox.
        let name = super::host_name().expect("a host name");
        assert!(!name.is_empty() && name.trim() == name, "{name:?}");
    }
}

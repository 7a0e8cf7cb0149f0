//! The node paths every OKOME tool, config and test agree on, in one table
//! (docs/design.md, "Paths on a node", is its prose).
//!
//! The constants are the paths as they are on a real node: tools show them
//! as `[default: …]` in `--help` and the configs name them. Reading or
//! writing one goes through [`on_node`], which puts it under `OKOME_ROOT`
//! (see [`crate::root`]) so tests and the lab run the real code on a
//! fixture tree.

use std::path::{Path, PathBuf};

/// Per-run state (tmpfs): locks, state files, the gate, the textfiles.
pub const RUN_DIR: &str = "/run/okome";
/// The health gate: exists ⇒ nginx serves stale/maintenance pages without
/// asking the orchestrator, and okome-prewarm skips its runs.
pub const GATE_FILE: &str = "/run/okome/orchestrator.down";
/// Prometheus textfiles, read by node_exporter's textfile collector.
pub const METRICS_DIR: &str = "/run/okome/metrics";
/// Persistent state (SD card: written on a change only).
pub const STATE_DIR: &str = "/var/lib/okome";
/// The operator's maintenance pin: exists ⇒ the gate stays closed.
pub const MAINTENANCE_PIN: &str = "/var/lib/okome/maintenance.pin";
/// The edge cache's access log, in the `okome` format.
pub const ACCESS_LOG: &str = "/var/log/nginx/okome_access.log";
/// Where `okome-<tool>` defaults files live (systemd `EnvironmentFile=`).
pub const DEFAULTS_DIR: &str = "/etc/default";

/// Every path above, for tests and docs that check the table is honoured.
pub const ALL: [&str; 7] = [
    RUN_DIR,
    GATE_FILE,
    METRICS_DIR,
    STATE_DIR,
    MAINTENANCE_PIN,
    ACCESS_LOG,
    DEFAULTS_DIR,
];

/// A node path (absolute, as on a real node) under `OKOME_ROOT`; a relative
/// path (given by the operator) stays relative to the working directory.
pub fn on_node(path: impl AsRef<Path>) -> PathBuf {
    crate::root::rooted(path)
}

/// `/etc/default/okome-<tool>` under `OKOME_ROOT`.
pub fn defaults_file(tool: &str) -> PathBuf {
    on_node(Path::new(DEFAULTS_DIR).join(format!("okome-{tool}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_absolute_and_nested_where_it_says() {
        assert!(ALL.iter().all(|p| p.starts_with('/') && !p.ends_with('/')));
        for inner in [GATE_FILE, METRICS_DIR] {
            assert_eq!(Path::new(inner).parent(), Some(Path::new(RUN_DIR)));
        }
        assert_eq!(
            Path::new(MAINTENANCE_PIN).parent(),
            Some(Path::new(STATE_DIR))
        );
    }
}

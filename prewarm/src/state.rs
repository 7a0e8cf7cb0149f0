//! The one small state file, `/run/okome/prewarm.state`.
//!
//! It holds where the last run stopped reading the log (device, inode,
//! offset and a fingerprint of the file's first bytes, so rotation *and*
//! copytruncate are noticed), the decayed per-path demand counters the
//! predictor needs across runs, the quarantine of uncacheable paths and the
//! cumulative metric totals. It lives on tmpfs and is written atomically,
//! and only when its serialised form changed. The run counter changes every
//! run that warms, so on an idle site that is still once a tick, on tmpfs,
//! never the SD card.
//! A missing or unreadable file is a cold start, never an error: losing it
//! costs one run of history, refusing to run would cost the warm cache.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Bumped when the layout changes; other versions are ignored (cold start).
pub const STATE_VERSION: u32 = 1;

/// Where reading stopped in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPos {
    /// `st_dev` of the log file.
    pub dev: u64,
    /// `st_ino` of the log file.
    pub inode: u64,
    /// Byte offset just after the last complete line read.
    pub offset: u64,
    /// How many leading bytes `head_hash` covers.
    pub head_len: u64,
    /// FNV-1a of the first `head_len` bytes: a truncated-and-refilled file
    /// (copytruncate) has the same inode but a different head.
    pub head_hash: u64,
}

/// Decayed demand for one normalised path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathStats {
    /// Exponentially decayed count, short time constant (recent demand).
    pub fast: f64,
    /// Exponentially decayed count, long time constant (historical demand).
    pub slow: f64,
    /// Unix time both counters are decayed to.
    pub at: i64,
    /// Unix time of the newest request seen (log clock).
    pub last_seen: i64,
    /// Consecutive runs on which warming this path answered MISS.
    #[serde(default)]
    pub misses: u32,
    /// Unix time prewarm last saw this path stored fresh (MISS/EXPIRED/
    /// refresh), for `--refresh`; 0 = unknown.
    #[serde(default)]
    pub stored: i64,
}

/// A path that MISSed on every run: not warmed again until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Unix time the quarantine ends (it is never forever).
    pub until: i64,
    /// Why, e.g. `MISS on 3 runs (Set-Cookie)`.
    pub reason: String,
}

/// Cumulative counters behind the `_total` metrics (reset at reboot, which
/// Prometheus handles as a counter reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Runs that ran (not counting lock-held or dry runs).
    pub runs: u64,
    /// Warm jobs (URLs attempted).
    pub jobs: u64,
    /// Jobs that warmed or found the entry hot.
    pub success: u64,
    /// Jobs that failed.
    pub failure: u64,
    /// Requests that reached the origin (cache status other than a hit).
    pub origin_requests: u64,
    /// Times a worker waited for the token bucket.
    pub rate_limit_waits: u64,
    /// Runs ended by the emergency stop.
    pub emergency_stops: u64,
    /// Runs skipped because the health gate was closed.
    #[serde(default)]
    pub gate_skips: u64,
}

/// Everything prewarm remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Layout version.
    pub version: u32,
    /// Where the last run stopped reading, if it read.
    pub log: Option<LogPos>,
    /// Demand per normalised path.
    pub paths: BTreeMap<String, PathStats>,
    /// Paths not to warm for now.
    pub quarantine: BTreeMap<String, Quarantine>,
    /// Metric totals.
    pub totals: Totals,
    /// Since when (Unix time) Redis has been out of reach, while it is: the
    /// outage is logged when it starts and when it ends, not every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_down_since: Option<i64>,
}

impl State {
    /// An empty state of the current version.
    pub fn new() -> Self {
        State {
            version: STATE_VERSION,
            ..State::default()
        }
    }

    /// Load from `path`; missing, corrupt or other-version files give a cold
    /// start (with a warning for the corrupt case).
    pub fn load(path: &Path) -> State {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if state.version == STATE_VERSION => state,
                Ok(_) => {
                    log::warn!("{}: other state version, starting cold", path.display());
                    State::new()
                }
                Err(error) => {
                    log::warn!(
                        "{}: unreadable state ({error}), starting cold",
                        path.display()
                    );
                    State::new()
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => State::new(),
            Err(error) => {
                log::warn!("{}: {error}, starting cold", path.display());
                State::new()
            }
        }
    }

    /// The exact bytes written: deterministic (sorted maps), so an unchanged
    /// state serialises identically and `write_if_changed` skips the write.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Write atomically if the content changed. Returns whether it wrote.
    pub fn save(&self, path: &Path) -> io::Result<bool> {
        okome_common::fsutil::write_if_changed(path, &self.to_bytes(), 0o644)
    }

    /// Drop quarantine entries that expired before `now`.
    pub fn expire_quarantine(&mut self, now: i64) {
        self.quarantine.retain(|_, entry| entry.until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut state = State::new();
        state.log = Some(LogPos {
            dev: 2049,
            inode: 1234,
            offset: 987_654,
            head_len: 128,
            head_hash: 0xdead_beef_0123_4567,
        });
        state.paths.insert(
            "/assets/app.js?v=1".into(),
            PathStats {
                fast: 1.0 / 3.0,
                slow: 12.345_678_901_234_5,
                at: 1_763_600_000,
                last_seen: 1_763_600_000,
                misses: 1,
                stored: 1_763_599_000,
            },
        );
        state.quarantine.insert(
            "/ui-schema/x".into(),
            Quarantine {
                until: 1_763_700_000,
                reason: "MISS on 3 runs (Set-Cookie)".into(),
            },
        );
        state.totals.jobs = 42;
        state
    }

    #[test]
    fn round_trips_exactly_including_floats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prewarm.state");
        let state = sample();
        assert!(state.save(&path).unwrap());
        assert_eq!(State::load(&path), state);
    }

    #[test]
    fn an_unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prewarm.state");
        let state = sample();
        assert!(state.save(&path).unwrap());
        let again = State::load(&path);
        assert!(
            !again.save(&path).unwrap(),
            "identical state must not be written"
        );
        let mut changed = again.clone();
        changed.totals.runs += 1;
        assert!(changed.save(&path).unwrap());
    }

    #[test]
    fn corrupt_missing_or_foreign_files_start_cold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prewarm.state");
        assert_eq!(State::load(&path), State::new());
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(State::load(&path), State::new());
        std::fs::write(&path, br#"{"version":99,"log":null,"paths":{},"quarantine":{},"totals":{"runs":1,"jobs":0,"success":0,"failure":0,"origin_requests":0,"rate_limit_waits":0,"emergency_stops":0}}"#).unwrap();
        assert_eq!(State::load(&path), State::new());
    }

    #[test]
    fn quarantine_expires() {
        let mut state = sample();
        state.expire_quarantine(1_763_699_999);
        assert_eq!(state.quarantine.len(), 1);
        state.expire_quarantine(1_763_700_000);
        assert!(state.quarantine.is_empty());
    }
}

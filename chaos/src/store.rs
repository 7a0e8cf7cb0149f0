//! What a run leaves on disk, under `/var/lib/okome/chaos/<run-id>/`
//! (`OKOME_ROOT` honoured): `plan.json` (written atomically and fsynced
//! before anything is injected), `journal.jsonl` (append-only JSON lines:
//! every step, command, sample and the verdict), `reverted` (written once the
//! baseline is proven back; its absence is what `revert` and the boot-time
//! recover unit look for) and `verdict`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::plan::{PLAN_SCHEMA, Plan, valid_run_id};

/// Default state directory.
pub const STATE_DIR: &str = "/var/lib/okome/chaos";

/// Per-boot markers (tmpfs): a run whose marker is gone was injected before
/// the last boot.
pub const BOOT_DIR: &str = "/run/okome-chaos";

/// The runs' directory.
#[derive(Debug, Clone)]
pub struct Store {
    /// Where run directories live.
    pub dir: PathBuf,
    /// Where the per-boot markers live ([`BOOT_DIR`] under the root).
    pub boot_dir: PathBuf,
}

/// A run found on disk.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Its plan, if readable.
    pub plan: Result<Plan, String>,
    /// Whether its baseline was proven back.
    pub reverted: bool,
    /// Its verdict, once written.
    pub verdict: Option<String>,
}

impl Store {
    /// The store in `dir`, its boot markers in [`BOOT_DIR`] (root prefix
    /// honoured).
    pub fn new(dir: PathBuf) -> Store {
        Store {
            dir,
            boot_dir: rooted(BOOT_DIR),
        }
    }

    /// A run's directory.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Create the state directory (0700: plans name what was changed).
    pub fn ensure(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    /// Write the plan durably (temp file, fsync, rename, fsync dir).
    pub fn write_plan(&self, plan: &Plan) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.run_dir(&plan.run_id);
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let text = serde_json::to_vec_pretty(plan).map_err(std::io::Error::other)?;
        okome_common::fsutil::atomic_write(&dir.join("plan.json"), &text, 0o600)?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Read a run's plan.
    pub fn read_plan(&self, id: &str) -> Result<Plan, String> {
        let path = self.run_dir(id).join("plan.json");
        let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let plan: Plan =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if plan.schema != PLAN_SCHEMA {
            return Err(format!(
                "{}: unknown schema {}",
                path.display(),
                plan.schema
            ));
        }
        Ok(plan)
    }

    /// Append one event to a run's journal (and fsync it: the journal is
    /// the record of what was done to the node).
    pub fn journal(&self, id: &str, event: &str, mut fields: Value) -> std::io::Result<()> {
        if let Value::Object(map) = &mut fields {
            map.insert("ts".into(), json!(now_ms()));
            map.insert("event".into(), json!(event));
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.run_dir(id).join("journal.jsonl"))?;
        let mut line = serde_json::to_vec(&fields).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()
    }

    /// A run's journal lines.
    pub fn read_journal(&self, id: &str) -> std::io::Result<Vec<Value>> {
        let text = fs::read_to_string(self.run_dir(id).join("journal.jsonl"))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The file under /run (tmpfs) that says "injected during this boot".
    pub fn boot_marker(&self, id: &str) -> PathBuf {
        self.boot_dir.join(id)
    }

    /// Create [`Self::boot_marker`].
    pub fn mark_boot(&self, id: &str) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.boot_dir)?;
        fs::write(self.boot_marker(id), b"")
    }

    /// Mark a run reverted (durably).
    pub fn mark_reverted(&self, id: &str) -> std::io::Result<()> {
        okome_common::fsutil::atomic_write(
            &self.run_dir(id).join("reverted"),
            format!("{}\n", now_ms() / 1000).as_bytes(),
            0o600,
        )
    }

    /// Record the verdict.
    pub fn write_verdict(&self, id: &str, verdict: &str) -> std::io::Result<()> {
        okome_common::fsutil::atomic_write(
            &self.run_dir(id).join("verdict"),
            format!("{verdict}\n").as_bytes(),
            0o600,
        )
    }

    /// Every run on disk, oldest first (ids start with the UTC time).
    pub fn runs(&self) -> std::io::Result<Vec<RunInfo>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| valid_run_id(id))
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|id| self.info(&id)).collect())
    }

    /// What is known about one run.
    pub fn info(&self, id: &str) -> RunInfo {
        let dir = self.run_dir(id);
        RunInfo {
            id: id.to_string(),
            plan: self.read_plan(id),
            reverted: dir.join("reverted").exists(),
            verdict: fs::read_to_string(dir.join("verdict"))
                .ok()
                .map(|v| v.trim().to_string()),
        }
    }

    /// Whether the run directory exists.
    pub fn exists(&self, id: &str) -> bool {
        valid_run_id(id) && self.run_dir(id).join("plan.json").exists()
    }
}

/// What a run's journal says about its armed revert: when the transient
/// timer was armed and when it fires, when the fault went in, who reverted
/// and when the baseline was proven back (all ms since the epoch, the
/// node's clock). What the proofs that a killed runner is cleaned up in
/// time read: the booted suite, the cluster lab, `cargo xtask bench chaos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmedRevert {
    /// The `arm` event (written once `systemd-run` returned).
    pub armed_ms: u64,
    /// `armed_ms` + the run's `deadline_secs` (duration + grace): when the
    /// armed timer fires.
    pub deadline_ms: u64,
    /// The first `inject` event, if the run got that far.
    pub injected_ms: Option<u64>,
    /// `revert-start`'s `by` ("okome-chaos run", "okome-chaos revert", …).
    pub reverted_by: Option<String>,
    /// The `reverted` event: the baseline proven back.
    pub reverted_ms: Option<u64>,
    /// Whether the revert noticed a boot since the injection.
    pub rebooted: bool,
}

impl ArmedRevert {
    /// From a run's journal lines ([`Store::read_journal`]); `None` when it
    /// was never armed (or the journal lacks its `start` deadline).
    pub fn from_journal(journal: &[Value]) -> Option<ArmedRevert> {
        let event = |name: &str| journal.iter().find(|e| e["event"] == name);
        let deadline_secs = event("start")?["deadline_secs"].as_u64()?;
        let arm = event("arm")?;
        if arm["code"] != 0 {
            return None;
        }
        let armed_ms = arm["ts"].as_u64()?;
        Some(ArmedRevert {
            armed_ms,
            deadline_ms: armed_ms + deadline_secs * 1000,
            injected_ms: event("inject").and_then(|e| e["ts"].as_u64()),
            reverted_by: event("revert-start")
                .and_then(|e| e["by"].as_str())
                .map(str::to_string),
            reverted_ms: event("reverted").and_then(|e| e["ts"].as_u64()),
            rebooted: event("rebooted").is_some(),
        })
    }

    /// How long after the armed deadline the baseline was proven back
    /// (negative: before it), once reverted.
    pub fn late_ms(&self) -> Option<i64> {
        self.reverted_ms
            .map(|done| done as i64 - self.deadline_ms as i64)
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A path under the root prefix.
pub fn rooted(path: &str) -> PathBuf {
    okome_common::root::rooted(Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Inputs, Scenario, build, test_inputs};

    #[test]
    fn armed_revert_reads_the_deadline_and_who_reverted() {
        let lines: Vec<Value> = [
            json!({"event": "start", "ts": 1_000, "deadline_secs": 15}),
            json!({"event": "arm", "ts": 1_200, "code": 0}),
            json!({"event": "inject", "ts": 1_300, "code": 0}),
            json!({"event": "inject", "ts": 1_350, "code": 0}),
            json!({"event": "revert-start", "ts": 16_250, "by": "okome-chaos revert"}),
            json!({"event": "reverted", "ts": 16_400, "by": "okome-chaos revert"}),
        ]
        .into();
        let armed = ArmedRevert::from_journal(&lines).unwrap();
        assert_eq!(
            armed,
            ArmedRevert {
                armed_ms: 1_200,
                deadline_ms: 16_200,
                injected_ms: Some(1_300),
                reverted_by: Some("okome-chaos revert".into()),
                reverted_ms: Some(16_400),
                rebooted: false,
            }
        );
        assert_eq!(armed.late_ms(), Some(200));
        // Never armed (killed before, or arming failed): nothing to time.
        assert_eq!(ArmedRevert::from_journal(&lines[..1]), None);
        let failed = [
            lines[0].clone(),
            json!({"event": "arm", "ts": 1_200, "code": 1}),
        ];
        assert_eq!(ArmedRevert::from_journal(&failed), None);
    }

    #[test]
    fn plan_journal_and_markers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            dir: dir.path().join("chaos"),
            boot_dir: dir.path().join("boot"),
        };
        store.ensure().unwrap();
        assert!(store.runs().unwrap().is_empty());
        let run_dir = store.run_dir("r1");
        let plan = build(&Inputs {
            run_id: "r1",
            ..test_inputs(Scenario::RedisStop, &run_dir)
        });
        store.write_plan(&plan).unwrap();
        store
            .journal("r1", "start", json!({"who": "root"}))
            .unwrap();
        store.journal("r1", "inject", json!({"ok": true})).unwrap();
        let lines = store.read_journal("r1").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event"], "inject");
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert!(!runs[0].reverted);
        assert_eq!(runs[0].plan.as_ref().unwrap(), &plan);
        store.mark_reverted("r1").unwrap();
        store.write_verdict("r1", "held").unwrap();
        let info = store.info("r1");
        assert!(info.reverted);
        assert_eq!(info.verdict.as_deref(), Some("held"));
    }
}

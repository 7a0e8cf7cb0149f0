//! Prometheus textfile `okome-chaos.prom`, recomputed from the run
//! directories after every command that can change them, so it is right
//! whoever ran the revert (the runner, the timer, the recover unit).

use std::path::Path;

use okome_common::prom::{Kind, Metrics};

use crate::store::Store;
use crate::verdict::VERDICTS;

/// The metrics text for what is on disk.
pub fn render(store: &Store) -> String {
    let runs = store.runs().unwrap_or_default();
    let mut metrics = Metrics::new();
    for verdict in VERDICTS {
        let count = runs
            .iter()
            .filter(|r| r.verdict.as_deref() == Some(verdict.name()))
            .count();
        metrics.sample(
            "okome_chaos_runs_total",
            Kind::Counter,
            "okome-chaos runs on disk by verdict.",
            &[("verdict", verdict.name())],
            count as f64,
        );
    }
    let last = runs
        .iter()
        .filter_map(|r| r.plan.as_ref().ok().map(|p| p.created))
        .max()
        .unwrap_or(0);
    metrics.gauge(
        "okome_chaos_last_run_timestamp_seconds",
        "Unix time the last okome-chaos run started (0: none).",
        last as f64,
    );
    metrics.gauge(
        "okome_chaos_unreverted_runs",
        "okome-chaos runs whose revert is not proven (should be 0).",
        runs.iter().filter(|r| !r.reverted).count() as f64,
    );
    metrics.render().to_string()
}

/// Write the textfile; a missing directory is only a warning.
pub fn write(store: &Store, dir: &Path) {
    let text = render(store);
    let path = dir.join("okome-chaos.prom");
    if let Err(error) = okome_common::fsutil::write_if_changed(&path, text.as_bytes(), 0o644) {
        log::warn!("metrics not written: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emitted_metric_is_listed_in_docs_metrics_md() {
        let dir = tempfile::tempdir().unwrap();
        let text = render(&Store {
            dir: dir.path().to_path_buf(),
            boot_dir: dir.path().join("boot"),
        });
        // The shared check: every sample's and family's name is a row
        // (first cell) of docs/metrics.md, not merely mentioned somewhere.
        let names = okome_testkit::metrics::assert_documented(&text);
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(text.contains("okome_chaos_runs_total{verdict=\"revert-failed\"} 0"));
        assert!(text.contains("okome_chaos_unreverted_runs 0"));
    }
}

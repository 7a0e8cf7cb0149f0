//! What a run tells the operator: one summary line for the journal, the
//! `--dry-run` table, the `--json` document and the Prometheus textfile.
//! Rendering only; the numbers are decided in [`crate::run`].

use crate::ingest::Counts;
use crate::rank::Ranked;
use crate::state::Totals;
use crate::tail::Start;
use crate::warm::{Counters, JobResult};
use okome_common::prom::{Kind, Metrics};
use serde::Serialize;
use std::fmt::Write as _;

/// How much of the log was read and what it held.
#[derive(Debug, Clone, Serialize)]
pub struct LogInfo {
    /// Where reading started and why.
    pub start: Start,
    /// Bytes read.
    pub bytes: u64,
    /// Lines by what they were.
    pub counts: Counts,
}

/// The counts of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Paths in the plan that were to be warmed.
    pub planned: usize,
    /// Stored by this run (MISS/EXPIRED/refresh).
    pub warmed: usize,
    /// Already cached (HIT/STALE/UPDATING).
    pub already_hot: usize,
    /// Answered but not cached (BYPASS, no cache status).
    pub uncacheable: usize,
    /// Failed after retries, or 4xx/5xx.
    pub failed: usize,
    /// Newly quarantined this run.
    pub quarantined: usize,
    /// Not attempted: quarantined paths in the plan, emergency stop, deadline.
    pub skipped: usize,
    /// What the warm pool counted (origin requests, waits, retries, the
    /// emergency stop, the deadline), embedded as the pool returned it; in
    /// JSON its fields sit here, as before.
    #[serde(flatten)]
    pub pool: Counters,
    /// Whether the plan was published to Redis (`None`: not this node's job).
    pub published: Option<bool>,
    /// Wall time, seconds.
    pub duration_seconds: f64,
    /// The exit status the run ends with.
    pub exit_status: u8,
}

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `okome-prewarm/<version>`.
    pub agent: String,
    /// Strategy used.
    pub strategy: String,
    /// `single`, `active`, `standby` or `unknown`.
    pub role: String,
    /// `log` or `shared:<node>`.
    pub source: String,
    /// The log reading, when the plan came from the log.
    pub log: Option<LogInfo>,
    /// The plan, best first.
    pub plan: Vec<Ranked>,
    /// One result per warmed path (empty on a dry run).
    pub results: Vec<JobResult>,
    /// The counts.
    pub summary: Summary,
}

/// The one journal line of a run.
pub fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let mut line = format!(
        "run: role={} source={} strategy={} planned={} warmed={} already_hot={} uncacheable={} failed={} quarantined={} skipped={} origin_requests={} rate_limit_waits={} retries={}",
        report.role,
        report.source,
        report.strategy,
        s.planned,
        s.warmed,
        s.already_hot,
        s.uncacheable,
        s.failed,
        s.quarantined,
        s.skipped,
        s.pool.origin_requests,
        s.pool.rate_limit_waits,
        s.pool.retries
    );
    if let Some(published) = s.published {
        let _ = write!(
            line,
            " published={}",
            if published { "yes" } else { "FAILED" }
        );
    }
    match &s.pool.emergency_stop {
        Some(why) => {
            let _ = write!(line, " emergency_stop=\"{why}\"");
        }
        None => line.push_str(" emergency_stop=no"),
    }
    if s.pool.deadline_hit {
        line.push_str(" deadline_hit=yes");
    }
    let _ = write!(line, " duration={:.2}s", s.duration_seconds);
    line
}

/// The `--dry-run` table.
pub fn dry_run_text(report: &Report) -> String {
    let mut out = format!(
        "okome-prewarm dry run: role {}, source {}, strategy {}\n",
        report.role, report.source, report.strategy
    );
    if let Some(log) = &report.log {
        let c = &log.counts;
        let _ = writeln!(
            out,
            "log: {} start, {} bytes, {} lines: {} counted; skipped {} own, {} monitors, {} /api/, {} unsafe or not a UI path, {} not GET/HEAD, {} not 2xx/304, {} debug canary, {} malformed ({} over-long)",
            log.start.as_str(),
            log.bytes,
            c.lines,
            c.counted,
            c.own,
            c.monitors,
            c.api,
            c.refused,
            c.method,
            c.status,
            c.debug_canary,
            c.malformed,
            c.truncated
        );
    }
    let _ = writeln!(out, "{:>4}  {:>10}  {:<40}  why", "rank", "score", "path");
    let mut rank = 0;
    for entry in &report.plan {
        match &entry.quarantined {
            Some(q) => {
                let _ = writeln!(
                    out,
                    "{:>4}  {:>10}  {:<40}  skip: {q}",
                    "-", "-", entry.path
                );
            }
            None => {
                rank += 1;
                let _ = writeln!(
                    out,
                    "{rank:>4}  {:>10.3}  {:<40}  {}",
                    entry.score, entry.path, entry.why
                );
            }
        }
    }
    if report.plan.is_empty() {
        out.push_str("(nothing to warm)\n");
    }
    out
}

/// The Prometheus textfile: cumulative totals (from the state file, so they
/// only go up until a reboot empties /run) and gauges of the last run.
pub fn metrics(summary: &Summary, totals: &Totals, quarantined_now: usize, now: i64) -> Metrics {
    let mut m = Metrics::new();
    m.counter(
        "okome_prewarm_jobs_total",
        "Warm requests attempted (URLs), all runs.",
        totals.jobs as f64,
    );
    m.counter(
        "okome_prewarm_success_total",
        "Warm requests answered 2xx/3xx (warmed, already hot or uncacheable).",
        totals.success as f64,
    );
    m.counter(
        "okome_prewarm_failure_total",
        "Warm requests that failed (error, timeout, 4xx/5xx after retries).",
        totals.failure as f64,
    );
    m.counter("okome_prewarm_origin_requests_total", "Warm requests that reached the orchestrator (cache status not HIT/UPDATING; timeouts count).", totals.origin_requests as f64);
    m.counter(
        "okome_prewarm_rate_limit_waits_total",
        "Times a warm request waited for the origin token bucket.",
        totals.rate_limit_waits as f64,
    );
    m.counter(
        "okome_prewarm_emergency_stops_total",
        "Runs ended early by the emergency stop.",
        totals.emergency_stops as f64,
    );
    m.counter(
        "okome_prewarm_gate_closed_skips_total",
        "Runs skipped because the health gate was closed (orchestrator down): nothing sent.",
        totals.gate_skips as f64,
    );
    m.counter(
        "okome_prewarm_runs_total",
        "Runs that warmed (not counting dry runs and lock-held runs).",
        totals.runs as f64,
    );
    m.gauge(
        "okome_prewarm_duration_seconds",
        "Wall time of the last run.",
        summary.duration_seconds,
    );
    m.gauge(
        "okome_prewarm_last_run_timestamp_seconds",
        "Unix time of the last run.",
        now as f64,
    );
    for (outcome, value) in [
        ("warmed", summary.warmed),
        ("already_hot", summary.already_hot),
        ("uncacheable", summary.uncacheable),
        ("failed", summary.failed),
        ("skipped", summary.skipped),
    ] {
        m.sample(
            "okome_prewarm_last_run_urls",
            Kind::Gauge,
            "URLs of the last run by outcome.",
            &[("outcome", outcome)],
            value as f64,
        );
    }
    m.gauge(
        "okome_prewarm_quarantined_urls",
        "Paths currently quarantined as uncacheable.",
        quarantined_now as f64,
    );
    m.gauge(
        "okome_prewarm_emergency_stop",
        "1 if the last run was ended by the emergency stop.",
        if summary.pool.emergency_stop.is_some() {
            1.0
        } else {
            0.0
        },
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_says_everything_on_one_line() {
        let report = Report {
            agent: "okome-prewarm/0".into(),
            strategy: "priority".into(),
            role: "active".into(),
            source: "log".into(),
            log: None,
            plan: vec![],
            results: vec![],
            summary: Summary {
                planned: 3,
                warmed: 1,
                already_hot: 1,
                failed: 1,
                pool: Counters {
                    emergency_stop: Some("origin latency 2500 ms > 2000 ms on /x (MISS)".into()),
                    ..Counters::default()
                },
                published: Some(false),
                duration_seconds: 1.234,
                ..Summary::default()
            },
        };
        let line = summary_line(&report);
        assert!(!line.contains('\n'));
        for needle in [
            "warmed=1",
            "already_hot=1",
            "failed=1",
            "quarantined=0",
            "skipped=0",
            "published=FAILED",
            "emergency_stop=\"origin latency",
            "duration=1.23s",
        ] {
            assert!(line.contains(needle), "{needle} in {line}");
        }
    }

    #[test]
    fn every_emitted_metric_is_listed_in_docs_metrics_md() {
        let text = metrics(&Summary::default(), &Totals::default(), 0, 0)
            .render()
            .to_string();
        okome_testkit::metrics::assert_documented(&text);
    }

    #[test]
    fn the_pool_counters_sit_in_the_summary_json_where_they_always_did() {
        let json = serde_json::to_string(&Summary::default()).unwrap();
        let at = |key: &str| {
            json.find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} missing from {json}"))
        };
        let order = [
            "planned",
            "warmed",
            "already_hot",
            "uncacheable",
            "failed",
            "quarantined",
            "skipped",
            "origin_requests",
            "rate_limit_waits",
            "retries",
            "emergency_stop",
            "deadline_hit",
            "published",
            "duration_seconds",
            "exit_status",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{json}");
        assert!(!json.contains("\"pool\""), "{json}");
    }
}

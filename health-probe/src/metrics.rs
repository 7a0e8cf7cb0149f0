//! The Prometheus textfile: what the gate did, in a form that does not
//! change while nothing changes.
//!
//! The textfile is rewritten only when its text differs (fsutil's
//! `write_if_changed`), so every value in it must be stable in steady state.
//! The run's probe duration is therefore written rounded *up* to a coarse
//! step (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s): a healthy LAN answer always
//! lands in the first step and rewrites nothing, while a slow or hung
//! orchestrator still shows clearly. The exact figure is in `--json`. The
//! trade-off: no sub-50 ms resolution and no histogram (a histogram changes
//! every run by definition).
//!
//! One value does change every run on purpose: the last-run timestamp. A
//! probe that stopped running (unit failing, timer disabled, config refused)
//! would otherwise leave a textfile that looks healthy forever; with it the
//! alert in configs/prometheus/okome-alerts.yml sees a dead probe within a
//! minute. The file is on /run (tmpfs), so rewriting it each run costs no
//! SD-card wear; the state file is still written on change only.

use std::time::Duration;

use okome_common::prom::{Kind, Metrics};

use crate::check::Reason;
use crate::hysteresis::{Gate, State};

/// Steps the duration is rounded up to, in seconds.
pub const DURATION_STEPS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The smallest step at or above `duration`, or whole seconds above the last.
pub fn duration_step(duration: Duration) -> f64 {
    let seconds = duration.as_secs_f64();
    DURATION_STEPS
        .iter()
        .copied()
        .find(|step| seconds <= *step)
        .unwrap_or_else(|| seconds.ceil())
}

/// What a run contributes to the textfile.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// The run's final check found the orchestrator healthy.
    pub upstream_up: bool,
    /// The gate after the run.
    pub gate: Gate,
    /// Wall time of the probe (checks and pause).
    pub duration: Duration,
    /// Counters after the run.
    pub state: &'a State,
    /// Heartbeat result, if a heartbeat is configured.
    pub heartbeat_ok: Option<bool>,
    /// Unix time of this run, in whole seconds.
    pub now_s: u64,
    /// An operator's maintenance pin holds the gate closed.
    pub pinned: bool,
}

/// Render the textfile for one run.
pub fn render(facts: &RunFacts<'_>) -> Metrics {
    let mut metrics = Metrics::new();
    metrics.gauge(
        "okome_health_probe_last_run_timestamp_seconds",
        "Unix time of the last probe run; rewritten every run, so a stale value means the probe is not running.",
        facts.now_s as f64,
    );
    metrics.gauge(
        "okome_gate_pinned",
        "1 while an operator's maintenance pin holds the gate closed (okome-health-probe --pin); the probe never reopens it.",
        f64::from(u8::from(facts.pinned)),
    );
    metrics.gauge(
        "okome_upstream_up",
        "1 if the last probe run found the orchestrator healthy (after its re-check), 0 if not.",
        f64::from(u8::from(facts.upstream_up)),
    );
    metrics.gauge(
        "okome_gate_closed",
        "1 while the gate flag file /run/okome/orchestrator.down exists (nginx does not ask the orchestrator).",
        f64::from(u8::from(facts.gate == Gate::Closed)),
    );
    metrics.gauge(
        "okome_probe_duration_seconds",
        "Wall time of the last probe run, re-check included, rounded up to 0.05/0.1/0.25/0.5/1/2.5/5/10 s.",
        duration_step(facts.duration),
    );
    for reason in Reason::ALL {
        metrics.sample(
            "okome_probe_failures_total",
            Kind::Counter,
            "Failed health checks since boot, by reason.",
            &[("reason", reason.label())],
            facts.state.failures[reason.index()] as f64,
        );
    }
    for (to, total) in [
        ("down", facts.state.closed_total),
        ("up", facts.state.opened_total),
    ] {
        metrics.sample(
            "okome_gate_transitions_total",
            Kind::Counter,
            "Gate transitions since boot; to=down created the flag file, to=up removed it.",
            &[("to", to)],
            total as f64,
        );
    }
    metrics.gauge(
        "okome_gate_last_transition_timestamp_seconds",
        "Unix time of the last gate transition (0: none since boot).",
        facts
            .state
            .last_transition_ms
            .map_or(0.0, |ms| (ms / 1000) as f64),
    );
    if let Some(ok) = facts.heartbeat_ok {
        metrics.gauge(
            "okome_health_heartbeat_up",
            "1 if the last Redis heartbeat SET succeeded.",
            f64::from(u8::from(ok)),
        );
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_stable_steps() {
        assert_eq!(duration_step(Duration::from_micros(300)), 0.05);
        assert_eq!(duration_step(Duration::from_millis(50)), 0.05);
        assert_eq!(duration_step(Duration::from_millis(51)), 0.1);
        assert_eq!(duration_step(Duration::from_millis(1_001)), 2.5);
        assert_eq!(duration_step(Duration::from_millis(12_100)), 13.0);
    }

    #[test]
    fn the_textfile_has_every_family_and_is_stable() {
        let mut state = State::new(5);
        state.closed_total = 2;
        state.opened_total = 1;
        state.last_transition_ms = Some(1_700_000_000_999);
        state.failures[Reason::Timeout.index()] = 7;
        let facts = |micros| RunFacts {
            upstream_up: true,
            gate: Gate::Open,
            duration: Duration::from_micros(micros),
            state: &state,
            heartbeat_ok: Some(false),
            now_s: 1_700_000_123,
            pinned: false,
        };
        let text = render(&facts(400)).render().to_string();
        assert_eq!(
            text,
            render(&facts(9_000)).render(),
            "jitter must not change the text"
        );
        for line in [
            "okome_upstream_up 1\n",
            "okome_gate_closed 0\n",
            "okome_probe_duration_seconds 0.05\n",
            "okome_probe_failures_total{reason=\"timeout\"} 7\n",
            "okome_probe_failures_total{reason=\"body_mismatch\"} 0\n",
            "okome_gate_transitions_total{to=\"down\"} 2\n",
            "okome_gate_transitions_total{to=\"up\"} 1\n",
            "okome_gate_last_transition_timestamp_seconds 1700000000\n",
            "okome_health_heartbeat_up 0\n",
            "okome_health_probe_last_run_timestamp_seconds 1700000123\n",
            "okome_gate_pinned 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn every_emitted_name_is_listed_in_docs_metrics_md() {
        let state = State::default();
        let facts = RunFacts {
            upstream_up: false,
            gate: Gate::Closed,
            duration: Duration::ZERO,
            state: &state,
            heartbeat_ok: Some(true),
            now_s: 0,
            pinned: true,
        };
        let text = render(&facts).render().to_string();
        let names = okome_testkit::metrics::assert_documented(&text);
        assert_eq!(names.len(), 9, "{names:?}");
    }
}

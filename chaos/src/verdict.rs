//! How a run ends: the verdict, its exit status, and the pure judgement of
//! the probe samples.
//!
//! | verdict | exit | meaning |
//! |---|---|---|
//! | held | 0 | the hypothesis held, reverted, baseline back |
//! | deviated | 1 | a finding: the service failed while the fault was in place |
//! | refused | 2 | a safeguard refused before anything was injected |
//! | aborted | 2 | stopped early (signal, guard withdrawn), revert verified |
//! | injection-ineffective | 2 | the fault did not take effect; reverted |
//! | revert-failed | 3 | the baseline could not be proven back: act now |

use serde::{Deserialize, Serialize};

/// The end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Hypothesis held.
    Held,
    /// Hypothesis did not hold.
    Deviated,
    /// Refused by a safeguard; nothing changed.
    Refused,
    /// Stopped early; revert verified.
    Aborted,
    /// The fault did not take effect; reverted.
    InjectionIneffective,
    /// The revert could not be verified.
    RevertFailed,
}

/// Every verdict (metric labels).
pub const VERDICTS: [Verdict; 6] = [
    Verdict::Held,
    Verdict::Deviated,
    Verdict::Refused,
    Verdict::Aborted,
    Verdict::InjectionIneffective,
    Verdict::RevertFailed,
];

impl Verdict {
    /// The exit status (see the table above).
    pub fn exit_status(self) -> u8 {
        match self {
            Verdict::Held => 0,
            Verdict::Deviated => 1,
            Verdict::Refused | Verdict::Aborted | Verdict::InjectionIneffective => 2,
            Verdict::RevertFailed => 3,
        }
    }

    /// Name (journal, metrics).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Deviated => "deviated",
            Verdict::Refused => "refused",
            Verdict::Aborted => "aborted",
            Verdict::InjectionIneffective => "injection-ineffective",
            Verdict::RevertFailed => "revert-failed",
        }
    }

    /// Look a name up.
    pub fn from_name(name: &str) -> Option<Verdict> {
        VERDICTS.into_iter().find(|v| v.name() == name)
    }
}

/// One probe of the service while the fault is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the injection was proven.
    pub at_ms: u64,
    /// Whether the service answered as the hypothesis wants.
    pub ok: bool,
    /// What was seen (status or error).
    pub detail: String,
}

/// Judge the samples: every sample taken after `bound_ms` (the time the
/// system is allowed to react, e.g. a failover) must be ok, and there must
/// be at least one such sample — no data counts as failure.
pub fn judge(samples: &[Sample], bound_ms: u64) -> (Verdict, String) {
    let counted: Vec<&Sample> = samples.iter().filter(|s| s.at_ms >= bound_ms).collect();
    if counted.is_empty() {
        return (
            Verdict::Deviated,
            format!(
                "no probe sample after the {} ms reaction bound (no data counts as failure)",
                bound_ms
            ),
        );
    }
    let failed: Vec<&&Sample> = counted.iter().filter(|s| !s.ok).collect();
    match failed.first() {
        None => (
            Verdict::Held,
            format!(
                "{} of {} samples ok after {} ms",
                counted.len(),
                counted.len(),
                bound_ms
            ),
        ),
        Some(first) => (
            Verdict::Deviated,
            format!(
                "{} of {} samples failed after {} ms, first at {} ms: {}",
                failed.len(),
                counted.len(),
                bound_ms,
                first.at_ms,
                first.detail
            ),
        ),
    }
}

/// Add the health gate's part of a hypothesis (origin-blackhole: "the
/// gates close within `within_ms`") to the samples' verdict: the gate seen
/// closed at `closed_ms` after the injection, or never. Only a held verdict
/// can still turn into a deviation.
pub fn with_gate(
    (verdict, why): (Verdict, String),
    closed_ms: Option<u64>,
    within_ms: u64,
) -> (Verdict, String) {
    if verdict != Verdict::Held {
        return (verdict, why);
    }
    match closed_ms {
        Some(ms) if ms <= within_ms => (
            Verdict::Held,
            format!("{why}; the gate closed {ms} ms after the injection (bound {within_ms} ms)"),
        ),
        Some(ms) => (
            Verdict::Deviated,
            format!(
                "the gate closed {ms} ms after the injection, later than {within_ms} ms ({why})"
            ),
        ),
        None => (
            Verdict::Deviated,
            format!("the gate never closed while the fault lasted (bound {within_ms} ms; {why})"),
        ),
    }
}

/// Milliseconds from injection to the first failed sample (the detected
/// reaction), if any.
pub fn first_reaction_ms(samples: &[Sample]) -> Option<u64> {
    samples.iter().find(|s| !s.ok).map(|s| s.at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, ok: bool) -> Sample {
        Sample {
            at_ms,
            ok,
            detail: if ok { "200".into() } else { "refused".into() },
        }
    }

    #[test]
    fn failures_inside_the_bound_are_allowed_after_it_not() {
        let samples = [s(0, false), s(1000, false), s(4000, true), s(5000, true)];
        assert_eq!(judge(&samples, 4000).0, Verdict::Held);
        assert_eq!(judge(&samples, 0).0, Verdict::Deviated);
        let (verdict, why) = judge(&[s(0, true), s(6000, false)], 4000);
        assert_eq!(verdict, Verdict::Deviated);
        assert!(why.contains("first at 6000 ms: refused"), "{why}");
        assert_eq!(first_reaction_ms(&samples), Some(0));
    }

    #[test]
    fn the_gate_must_close_within_its_bound() {
        let held = || (Verdict::Held, "5 of 5 samples ok".to_string());
        assert_eq!(with_gate(held(), Some(7000), 8000).0, Verdict::Held);
        assert_eq!(with_gate(held(), Some(8000), 8000).0, Verdict::Held);
        let (verdict, why) = with_gate(held(), Some(8001), 8000);
        assert_eq!(verdict, Verdict::Deviated);
        assert!(why.contains("later than 8000 ms"), "{why}");
        let (verdict, why) = with_gate(held(), None, 8000);
        assert_eq!(verdict, Verdict::Deviated);
        assert!(why.contains("never closed"), "{why}");
        // A failure of the service stays what it was.
        let deviated = (Verdict::Deviated, "3 failed".to_string());
        assert_eq!(with_gate(deviated.clone(), Some(10), 8000), deviated);
    }

    #[test]
    fn no_data_is_a_failure() {
        assert_eq!(judge(&[], 0).0, Verdict::Deviated);
        assert_eq!(judge(&[s(100, true)], 4000).0, Verdict::Deviated);
    }

    #[test]
    fn exit_statuses_follow_the_contract() {
        let codes: Vec<u8> = VERDICTS.iter().map(|v| v.exit_status()).collect();
        assert_eq!(codes, [0, 1, 2, 2, 2, 3]);
        for v in VERDICTS {
            assert_eq!(Verdict::from_name(v.name()), Some(v));
        }
    }
}

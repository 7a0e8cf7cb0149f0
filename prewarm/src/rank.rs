//! Demand counting and the three ranking strategies of seed 003.
//!
//! Demand is kept per normalised path as two exponentially decayed counts
//! driven by the log's own timestamps: `fast` (time constant 10 min) and
//! `slow` (3 h). A decayed count with time constant τ estimates `rate × τ`,
//! so they give a recent and a historical rate per hour. The seed's
//! predictor is then
//!
//! ```text
//! score = frequency × (1 + growth) × recency_bonus
//!   frequency = historical accesses per hour (slow window)
//!   growth    = (recent − historical) / historical, clamped to [−1, 3]
//!   bonus     = 2.0 if last seen < 5 min ago, 1.5 if < 30 min, else 1.0
//! ```
//!
//! Note what that means: within the clamp, `frequency × (1 + growth)` is just
//! the recent rate, and the clamp keeps a single fresh request (recent ≫
//! historical) from outranking steady demand. Counters decay only when new
//! requests arrive, so an idle log leaves the demand counters as they are.

use crate::state::{PathStats, Quarantine};
use std::collections::BTreeMap;
use std::fmt;

/// Time constant of the recent-demand counter, seconds.
pub const FAST_TAU: f64 = 600.0;
/// Time constant of the historical-demand counter, seconds.
pub const SLOW_TAU: f64 = 10_800.0;
/// Upper clamp on the growth rate.
pub const GROWTH_CAP: f64 = 3.0;
/// Paths whose historical count decayed below this are forgotten.
pub const FORGET_BELOW: f64 = 0.01;
/// At most this many paths are tracked; the least demanded are dropped.
pub const MAX_TRACKED: usize = 2000;

/// The ranking strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Top N by historical frequency.
    Selective,
    /// The predictor (default).
    Priority,
    /// Shallow paths first, then by frequency.
    Breadth,
}

impl Strategy {
    /// Parse the config spelling.
    pub fn parse(text: &str) -> Option<Strategy> {
        match text {
            "selective" => Some(Strategy::Selective),
            "priority" => Some(Strategy::Priority),
            "breadth" => Some(Strategy::Breadth),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Selective => "selective",
            Strategy::Priority => "priority",
            Strategy::Breadth => "breadth",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn decay(value: f64, from: i64, to: i64, tau: f64) -> f64 {
    if to <= from {
        value
    } else {
        value * (-((to - from) as f64) / tau).exp()
    }
}

/// Count one request for `stats` at unix time `t` (log clock).
pub fn record(stats: &mut PathStats, t: i64) {
    if stats.at == 0 && stats.slow == 0.0 {
        stats.at = t;
    }
    if t >= stats.at {
        stats.fast = decay(stats.fast, stats.at, t, FAST_TAU) + 1.0;
        stats.slow = decay(stats.slow, stats.at, t, SLOW_TAU) + 1.0;
        stats.at = t;
    } else {
        // An older line (logs are not strictly ordered): add its decayed
        // weight instead of moving the clock back.
        stats.fast += decay(1.0, t, stats.at, FAST_TAU);
        stats.slow += decay(1.0, t, stats.at, SLOW_TAU);
    }
    stats.last_seen = stats.last_seen.max(t);
}

/// Forget paths with negligible demand and keep at most [`MAX_TRACKED`],
/// so neither the state file nor memory grows with a hostile log.
pub fn prune(paths: &mut BTreeMap<String, PathStats>, now: i64) {
    paths.retain(|_, s| {
        decay(s.slow, s.at, now.max(s.at), SLOW_TAU) >= FORGET_BELOW || s.misses > 0
    });
    if paths.len() > MAX_TRACKED {
        let mut slows: Vec<f64> = paths
            .values()
            .map(|s| decay(s.slow, s.at, now.max(s.at), SLOW_TAU))
            .collect();
        slows.sort_by(|a, b| b.total_cmp(a));
        let cut = slows[MAX_TRACKED - 1];
        // Keep everything above the cut, then fill up with ties at the cut.
        let above = slows.iter().filter(|&&v| v > cut).count();
        let mut ties = MAX_TRACKED - above;
        paths.retain(|_, s| {
            let v = decay(s.slow, s.at, now.max(s.at), SLOW_TAU);
            if v > cut {
                true
            } else if v == cut && ties > 0 {
                ties -= 1;
                true
            } else {
                false
            }
        });
    }
}

/// One ranked path with the numbers behind its place, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// The normalised path.
    pub path: String,
    /// The sort key of the strategy used.
    pub score: f64,
    /// Historical accesses per hour.
    pub frequency: f64,
    /// Recent accesses per hour.
    pub recent: f64,
    /// Clamped growth rate.
    pub growth: f64,
    /// Recency bonus.
    pub bonus: f64,
    /// Path depth (segments).
    pub depth: usize,
    /// Seconds since last seen (relative to `now`).
    pub age: i64,
    /// Human-readable reason for the place.
    pub why: String,
    /// Quarantined: listed but not warmed.
    pub quarantined: Option<String>,
}

/// Recency bonus steps from seed 003.
pub fn recency_bonus(age_secs: i64) -> f64 {
    if age_secs < 300 {
        2.0
    } else if age_secs < 1800 {
        1.5
    } else {
        1.0
    }
}

/// Number of path segments (`/` = 0, `/a` = 1, `/a/b` = 2), query ignored.
pub fn depth(path: &str) -> usize {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/').filter(|s| !s.is_empty()).count()
}

/// Score one path at reference time `now`.
pub fn score(path: &str, stats: &PathStats, now: i64, strategy: Strategy) -> Ranked {
    let now_eff = now.max(stats.at);
    let fast = decay(stats.fast, stats.at, now_eff, FAST_TAU);
    let slow = decay(stats.slow, stats.at, now_eff, SLOW_TAU);
    let recent = fast * 3600.0 / FAST_TAU;
    let frequency = slow * 3600.0 / SLOW_TAU;
    let growth = if frequency > 0.0 {
        ((recent - frequency) / frequency).clamp(-1.0, GROWTH_CAP)
    } else {
        0.0
    };
    let age = (now - stats.last_seen).max(0);
    let bonus = recency_bonus(age);
    let depth = depth(path);
    let (score, why) = match strategy {
        Strategy::Priority => {
            let score = frequency * (1.0 + growth) * bonus;
            (
                score,
                format!(
                    "{frequency:.2}/h x (1{growth:+.2}) x {bonus:.1} (recent {recent:.2}/h, last seen {age}s ago)"
                ),
            )
        }
        Strategy::Selective => (
            frequency,
            format!("{frequency:.2}/h (last seen {age}s ago)"),
        ),
        Strategy::Breadth => (
            frequency,
            format!("depth {depth}, {frequency:.2}/h (last seen {age}s ago)"),
        ),
    };
    Ranked {
        path: path.to_string(),
        score,
        frequency,
        recent,
        growth,
        bonus,
        depth,
        age,
        why,
        quarantined: None,
    }
}

/// Rank every tracked path and take `top_n` warmable ones. Quarantined paths
/// that would have made the cut are listed (marked) but do not take a slot.
pub fn rank(
    paths: &BTreeMap<String, PathStats>,
    quarantine: &BTreeMap<String, Quarantine>,
    now: i64,
    strategy: Strategy,
    top_n: usize,
) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = paths
        .iter()
        .map(|(path, stats)| score(path, stats, now, strategy))
        .filter(|r| r.score > 0.0 || strategy == Strategy::Breadth && r.frequency > 0.0)
        .collect();
    all.sort_by(|a, b| {
        let primary = match strategy {
            Strategy::Breadth => a.depth.cmp(&b.depth),
            _ => std::cmp::Ordering::Equal,
        };
        primary
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut out = Vec::new();
    let mut taken = 0;
    for mut ranked in all {
        if taken >= top_n {
            break;
        }
        if let Some(q) = quarantine.get(&ranked.path) {
            ranked.quarantined = Some(format!("quarantined until {}: {}", q.until, q.reason));
        } else {
            taken += 1;
        }
        out.push(ranked);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_600_000;

    fn stats_with(events: &[i64]) -> PathStats {
        let mut stats = PathStats::default();
        for &t in events {
            record(&mut stats, t);
        }
        stats
    }

    #[test]
    fn bonus_steps_follow_the_seed() {
        assert_eq!(recency_bonus(0), 2.0);
        assert_eq!(recency_bonus(299), 2.0);
        assert_eq!(recency_bonus(300), 1.5);
        assert_eq!(recency_bonus(1799), 1.5);
        assert_eq!(recency_bonus(1800), 1.0);
    }

    #[test]
    fn steady_demand_has_zero_growth_and_its_rate_as_frequency() {
        // One request a minute for 12 hours: 60/h, in steady state.
        let events: Vec<i64> = (0..720).map(|m| T0 + m * 60).collect();
        let stats = stats_with(&events);
        let now = T0 + 719 * 60;
        let r = score("/assets/a.js", &stats, now, Strategy::Priority);
        assert!((r.frequency - 60.0).abs() < 3.0, "{r:?}");
        assert!((r.recent - 60.0).abs() < 5.0, "{r:?}");
        assert!(r.growth.abs() < 0.1, "{r:?}");
        assert_eq!(r.bonus, 2.0);
        assert!((r.score - r.frequency * (1.0 + r.growth) * 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_rising_path_outranks_a_fading_one_of_equal_volume() {
        // Both had 120 requests in the last 3 hours; "rising" got them all
        // in the last 20 minutes, "fading" in the first 20 minutes.
        let now = T0 + 3 * 3600;
        let rising = stats_with(&(0..120).map(|i| now - 1200 + i * 10).collect::<Vec<_>>());
        let fading = stats_with(&(0..120).map(|i| T0 + i * 10).collect::<Vec<_>>());
        let mut paths = BTreeMap::new();
        paths.insert("/assets/rising".to_string(), rising);
        paths.insert("/assets/fading".to_string(), fading);
        let ranked = rank(&paths, &BTreeMap::new(), now, Strategy::Priority, 10);
        assert_eq!(ranked[0].path, "/assets/rising");
        assert!(
            ranked[0].growth > 0.0 && ranked[1].growth < 0.0,
            "{ranked:?}"
        );
        // Selective only looks at frequency, where rising also wins (less
        // decayed), but by a far smaller factor than the predictor.
        let sel = rank(&paths, &BTreeMap::new(), now, Strategy::Selective, 10);
        let prio_ratio = ranked[0].score / ranked[1].score;
        let sel_ratio = sel[0].score / sel[1].score;
        assert!(prio_ratio > sel_ratio, "{prio_ratio} vs {sel_ratio}");
    }

    #[test]
    fn growth_is_clamped_so_one_fresh_hit_cannot_beat_steady_demand() {
        let now = T0 + 6 * 3600;
        let steady = stats_with(&(0..360).map(|m| T0 + m * 60).collect::<Vec<_>>());
        let fresh = stats_with(&[now]);
        let r = score("/x", &fresh, now, Strategy::Priority);
        assert_eq!(r.growth, GROWTH_CAP);
        let s = score("/y", &steady, now, Strategy::Priority);
        assert!(s.score > 10.0 * r.score, "{s:?} {r:?}");
    }

    #[test]
    fn recency_bonus_uses_last_seen_relative_to_now() {
        let stats = stats_with(&[T0]);
        assert_eq!(score("/", &stats, T0 + 10, Strategy::Priority).bonus, 2.0);
        assert_eq!(score("/", &stats, T0 + 600, Strategy::Priority).bonus, 1.5);
        assert_eq!(score("/", &stats, T0 + 4000, Strategy::Priority).bonus, 1.0);
    }

    #[test]
    fn out_of_order_lines_count_with_their_decayed_weight() {
        let mut stats = stats_with(&[T0 + 600]);
        record(&mut stats, T0);
        assert_eq!(stats.at, T0 + 600);
        assert_eq!(stats.last_seen, T0 + 600);
        assert!((stats.fast - (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn breadth_puts_shallow_paths_first_and_top_n_holds() {
        let mut paths = BTreeMap::new();
        paths.insert("/assets/a/b/c.js".to_string(), stats_with(&[T0; 50]));
        paths.insert("/assets/x.js".to_string(), stats_with(&[T0; 5]));
        paths.insert("/".to_string(), stats_with(&[T0]));
        paths.insert("/version".to_string(), stats_with(&[T0; 2]));
        let ranked = rank(&paths, &BTreeMap::new(), T0, Strategy::Breadth, 3);
        let order: Vec<&str> = ranked.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(order, ["/", "/version", "/assets/x.js"]);
        let sel = rank(&paths, &BTreeMap::new(), T0, Strategy::Selective, 1);
        assert_eq!(sel[0].path, "/assets/a/b/c.js");
    }

    #[test]
    fn quarantined_paths_are_listed_but_take_no_slot() {
        let mut paths = BTreeMap::new();
        paths.insert("/a".to_string(), stats_with(&[T0; 9]));
        paths.insert("/b".to_string(), stats_with(&[T0; 5]));
        paths.insert("/c".to_string(), stats_with(&[T0; 1]));
        let mut quarantine = BTreeMap::new();
        quarantine.insert(
            "/a".to_string(),
            Quarantine {
                until: T0 + 1,
                reason: "MISS on 3 runs".into(),
            },
        );
        let ranked = rank(&paths, &quarantine, T0, Strategy::Priority, 2);
        let order: Vec<(&str, bool)> = ranked
            .iter()
            .map(|r| (r.path.as_str(), r.quarantined.is_some()))
            .collect();
        assert_eq!(order, [("/a", true), ("/b", false), ("/c", false)]);
    }

    #[test]
    fn pruning_bounds_the_tracked_set_keeping_the_hottest() {
        let mut paths = BTreeMap::new();
        for i in 0..(MAX_TRACKED + 500) {
            let n = if i == 7 { 100 } else { 1 + i % 3 };
            paths.insert(format!("/assets/{i}"), stats_with(&vec![T0; n]));
        }
        paths.insert("/assets/ancient".into(), stats_with(&[T0 - 30 * 86400]));
        prune(&mut paths, T0);
        assert!(paths.len() <= MAX_TRACKED);
        assert!(paths.contains_key("/assets/7"));
        assert!(!paths.contains_key("/assets/ancient"));
    }
}

//! The gate's hysteresis: pure functions from (state, check, time) to state.
//!
//! One counter is enough: `streak` counts consecutive checks that *disagree*
//! with the gate (failures while open, successes while closed). It saturates
//! at the threshold and resets on any agreeing check or transition, so in
//! steady state — healthy and open, or dead and closed — it stays 0 and the
//! state file never changes. `fall` and `rise` count checks, not runs: a run
//! makes a second, fast check after a failure while the gate is open (HAProxy
//! `fastinter`), so with `fall = 2` a hung orchestrator closes the gate inside
//! one 5 s tick instead of two. A hold-down allows at most one transition per
//! period, whatever the orchestrator does, so flapping cannot flap nginx.
//! Time is wall-clock milliseconds passed in by the caller (the state lives
//! on tmpfs and dies with the boot); a clock that jumps backwards ends the
//! hold-down rather than freezing the gate.

use std::fmt::Write as _;

use crate::check::Reason;

/// The gate: open (nginx proxies to the orchestrator) or closed (flag file
/// present: nginx serves stale/maintenance at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No flag file.
    Open,
    /// Flag file present.
    Closed,
}

impl Gate {
    /// `open` / `closed`.
    pub fn word(self) -> &'static str {
        match self {
            Gate::Open => "open",
            Gate::Closed => "closed",
        }
    }
}

/// Thresholds, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failed checks that close an open gate.
    pub fall: u32,
    /// Consecutive good checks that reopen a closed gate.
    pub rise: u32,
    /// Least time between two transitions, in milliseconds.
    pub hold_down_ms: u64,
}

/// Everything remembered between runs (file `health-probe.state`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Consecutive checks disagreeing with the gate (saturates at threshold).
    pub streak: u32,
    /// When the gate took its current position (or the state began), ms.
    pub since_ms: u64,
    /// When the last transition happened, ms; `None` if never (no hold-down).
    pub last_transition_ms: Option<u64>,
    /// Transitions to closed, ever (this boot).
    pub closed_total: u64,
    /// Transitions to open, ever (this boot).
    pub opened_total: u64,
    /// Failed checks per [`Reason`], indexed by `Reason::index`.
    pub failures: [u64; Reason::ALL.len()],
    /// The Redis heartbeat is in an outage (already logged once).
    pub redis_down: bool,
    /// The gate as the probe last left it, to notice a hand-made change.
    pub gate_closed: bool,
}

impl State {
    /// A fresh state beginning at `now_ms`.
    pub fn new(now_ms: u64) -> State {
        State {
            since_ms: now_ms,
            ..State::default()
        }
    }
}

/// The result of feeding one check to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The gate stays; the check agreed with it.
    Steady,
    /// The check disagreed; `streak` of `needed` so far.
    Counting {
        /// Disagreeing checks so far.
        streak: u32,
        /// Threshold.
        needed: u32,
    },
    /// The threshold is met but the hold-down forbids a transition for
    /// `remaining_ms` more.
    HeldDown {
        /// Milliseconds until a transition is allowed.
        remaining_ms: u64,
    },
    /// The gate moved to this position; the previous one lasted `lasted_ms`.
    Transition {
        /// New position.
        to: Gate,
        /// How long the previous position lasted.
        lasted_ms: u64,
    },
}

/// Feed one check (`ok`) at `now_ms` to the machine for a gate currently at
/// `gate`; updates `state` and says what happened.
pub fn step(gate: Gate, state: &mut State, policy: &Policy, ok: bool, now_ms: u64) -> Step {
    let disagrees = match gate {
        Gate::Open => !ok,
        Gate::Closed => ok,
    };
    if !disagrees {
        state.streak = 0;
        return Step::Steady;
    }
    let needed = match gate {
        Gate::Open => policy.fall,
        Gate::Closed => policy.rise,
    }
    .max(1);
    state.streak = state.streak.saturating_add(1).min(needed);
    if state.streak < needed {
        return Step::Counting {
            streak: state.streak,
            needed,
        };
    }
    if let Some(last) = state.last_transition_ms {
        let allowed_at = last.saturating_add(policy.hold_down_ms);
        // `now_ms >= last` guards a clock stepped backwards.
        if now_ms < allowed_at && now_ms >= last {
            return Step::HeldDown {
                remaining_ms: allowed_at - now_ms,
            };
        }
    }
    let to = match gate {
        Gate::Open => Gate::Closed,
        Gate::Closed => Gate::Open,
    };
    let lasted_ms = now_ms.saturating_sub(state.since_ms);
    state.streak = 0;
    state.since_ms = now_ms;
    state.last_transition_ms = Some(now_ms);
    match to {
        Gate::Closed => state.closed_total += 1,
        Gate::Open => state.opened_total += 1,
    }
    Step::Transition { to, lasted_ms }
}

/// Why a state file could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

const HEADER: &str =
    "# okome-health-probe state (tmpfs; rewritten only when a value changes)\nversion=1\n";

/// Render `state` as the state file's text (stable: same state, same bytes).
pub fn render(state: &State) -> String {
    let mut text = String::from(HEADER);
    let _ = writeln!(text, "streak={}", state.streak);
    let _ = writeln!(text, "since_ms={}", state.since_ms);
    match state.last_transition_ms {
        Some(ms) => {
            let _ = writeln!(text, "last_transition_ms={ms}");
        }
        None => text.push_str("last_transition_ms=-\n"),
    }
    let _ = writeln!(text, "closed_total={}", state.closed_total);
    let _ = writeln!(text, "opened_total={}", state.opened_total);
    for reason in Reason::ALL {
        let _ = writeln!(
            text,
            "failures_{}={}",
            reason.label(),
            state.failures[reason.index()]
        );
    }
    let _ = writeln!(text, "redis_down={}", u8::from(state.redis_down));
    let _ = writeln!(
        text,
        "gate={}",
        if state.gate_closed { "closed" } else { "open" }
    );
    text
}

/// Parse a state file written by [`render`].
pub fn parse(text: &str) -> Result<State, ParseError> {
    let mut state = State::default();
    let mut version = false;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| ParseError(format!("line {line:?}")))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| ParseError(format!("{key}={value:?} is not a number")))
        };
        match key {
            "version" if value == "1" => version = true,
            "version" => return Err(ParseError(format!("unknown version {value:?}"))),
            "streak" => state.streak = u32::try_from(number()?).unwrap_or(u32::MAX),
            "since_ms" => state.since_ms = number()?,
            "last_transition_ms" if value == "-" => state.last_transition_ms = None,
            "last_transition_ms" => state.last_transition_ms = Some(number()?),
            "closed_total" => state.closed_total = number()?,
            "opened_total" => state.opened_total = number()?,
            "redis_down" => state.redis_down = number()? != 0,
            "gate" => {
                state.gate_closed = match value {
                    "open" => false,
                    "closed" => true,
                    _ => return Err(ParseError(format!("gate={value:?}"))),
                }
            }
            other => {
                let reason = other
                    .strip_prefix("failures_")
                    .and_then(|label| Reason::ALL.iter().find(|r| r.label() == label))
                    .ok_or_else(|| ParseError(format!("unknown key {other:?}")))?;
                state.failures[reason.index()] = number()?;
            }
        }
    }
    if !version {
        return Err(ParseError("no version line".into()));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        fall: 2,
        rise: 3,
        hold_down_ms: 20_000,
    };

    /// Feed `(ok, at_ms)` checks; returns the transitions as `(at_ms, to)`.
    fn drive(
        gate: &mut Gate,
        state: &mut State,
        policy: &Policy,
        checks: &[(bool, u64)],
    ) -> Vec<(u64, Gate)> {
        let mut moves = Vec::new();
        for &(ok, at) in checks {
            if let Step::Transition { to, .. } = step(*gate, state, policy, ok, at) {
                *gate = to;
                moves.push((at, to));
            }
        }
        moves
    }

    #[test]
    fn table_of_single_steps() {
        // (gate, streak before, last transition, ok, now) -> (step, streak after)
        let table = [
            (Gate::Open, 0, None, true, 1_000, Step::Steady, 0),
            (Gate::Open, 1, None, true, 1_000, Step::Steady, 0),
            (
                Gate::Open,
                0,
                None,
                false,
                1_000,
                Step::Counting {
                    streak: 1,
                    needed: 2,
                },
                1,
            ),
            (
                Gate::Open,
                1,
                None,
                false,
                1_000,
                Step::Transition {
                    to: Gate::Closed,
                    lasted_ms: 1_000,
                },
                0,
            ),
            (Gate::Closed, 0, None, false, 1_000, Step::Steady, 0),
            (Gate::Closed, 2, None, false, 1_000, Step::Steady, 0),
            (
                Gate::Closed,
                1,
                None,
                true,
                1_000,
                Step::Counting {
                    streak: 2,
                    needed: 3,
                },
                2,
            ),
            (
                Gate::Closed,
                2,
                Some(0),
                true,
                25_000,
                Step::Transition {
                    to: Gate::Open,
                    lasted_ms: 25_000,
                },
                0,
            ),
            // Threshold met inside the hold-down: wait, streak saturates.
            (
                Gate::Closed,
                2,
                Some(10_000),
                true,
                25_000,
                Step::HeldDown {
                    remaining_ms: 5_000,
                },
                3,
            ),
            (
                Gate::Closed,
                3,
                Some(10_000),
                true,
                26_000,
                Step::HeldDown {
                    remaining_ms: 4_000,
                },
                3,
            ),
            (
                Gate::Open,
                2,
                Some(10_000),
                false,
                29_999,
                Step::HeldDown { remaining_ms: 1 },
                2,
            ),
            // A clock stepped backwards ends the hold-down instead of freezing the gate.
            (
                Gate::Open,
                1,
                Some(50_000),
                false,
                40_000,
                Step::Transition {
                    to: Gate::Closed,
                    lasted_ms: 40_000,
                },
                0,
            ),
        ];
        for (gate, streak, last, ok, now, want, streak_after) in table {
            let mut state = State {
                streak,
                last_transition_ms: last,
                ..State::default()
            };
            let got = step(gate, &mut state, &POLICY, ok, now);
            assert_eq!(
                got, want,
                "{gate:?} streak {streak} last {last:?} ok {ok} at {now}"
            );
            assert_eq!(
                state.streak, streak_after,
                "{gate:?} streak {streak} ok {ok}"
            );
        }
    }

    #[test]
    fn a_hang_closes_in_one_run_with_the_fast_recheck_and_recovery_takes_rise_checks() {
        let (mut gate, mut state) = (Gate::Open, State::new(0));
        // Runs every 5 s; a failed first check is re-checked 250 ms later.
        let moves = drive(
            &mut gate,
            &mut state,
            &POLICY,
            &[(true, 0), (true, 5_000), (false, 10_000), (false, 10_250)],
        );
        assert_eq!(moves, vec![(10_250, Gate::Closed)]);
        assert_eq!(state.closed_total, 1);
        // Still dead: steady, nothing changes.
        let before = state.clone();
        assert!(
            drive(
                &mut gate,
                &mut state,
                &POLICY,
                &[(false, 15_000), (false, 20_000)]
            )
            .is_empty()
        );
        assert_eq!(state, before);
        // Back at 21 s: three good runs later (hold-down long over) it reopens.
        let moves = drive(
            &mut gate,
            &mut state,
            &POLICY,
            &[(true, 25_000), (true, 30_000), (true, 35_000)],
        );
        assert_eq!(moves, vec![(35_000, Gate::Open)]);
        assert_eq!((state.opened_total, state.since_ms), (1, 35_000));
    }

    #[test]
    fn a_blip_that_the_recheck_clears_does_not_close() {
        let (mut gate, mut state) = (Gate::Open, State::new(0));
        let moves = drive(
            &mut gate,
            &mut state,
            &POLICY,
            &[
                (false, 5_000),
                (true, 5_250),
                (false, 10_000),
                (true, 10_250),
            ],
        );
        assert!(moves.is_empty());
        assert_eq!(state.streak, 0);
    }

    #[test]
    fn flapping_makes_at_most_one_transition_per_hold_down() {
        // The orchestrator alternates up/down every check, and every few checks
        // stays up long enough to meet `rise`; a gate without hold-down would
        // follow it. Checks every 2.5 s for 10 minutes.
        let mut checks = Vec::new();
        for i in 0..240u64 {
            let phase = i % 7; // down, down, up, up, up, down, up
            let ok = matches!(phase, 2 | 3 | 4 | 6);
            checks.push((ok, i * 2_500));
        }
        for hold_down_ms in [0, 10_000, 20_000, 60_000] {
            let policy = Policy {
                hold_down_ms,
                ..POLICY
            };
            let (mut gate, mut state) = (Gate::Open, State::new(0));
            let moves = drive(&mut gate, &mut state, &policy, &checks);
            assert!(!moves.is_empty(), "the pattern must move the gate at all");
            for pair in moves.windows(2) {
                assert!(
                    pair[1].0 - pair[0].0 >= hold_down_ms,
                    "hold-down {hold_down_ms}: transitions at {} and {}",
                    pair[0].0,
                    pair[1].0
                );
            }
            let span = checks.last().unwrap().1;
            assert!(moves.len() as u64 <= span / hold_down_ms.max(1) + 1);
            if hold_down_ms == 0 {
                assert!(
                    moves.len() > 20,
                    "without hold-down the gate follows the flapping"
                );
            }
        }
    }

    #[test]
    fn a_held_down_transition_happens_on_the_first_check_after_the_hold_down() {
        let policy = Policy {
            fall: 1,
            rise: 1,
            hold_down_ms: 20_000,
        };
        let (mut gate, mut state) = (Gate::Open, State::new(0));
        let moves = drive(
            &mut gate,
            &mut state,
            &policy,
            &[
                (false, 1_000),
                (true, 2_000),
                (true, 15_000),
                (true, 21_000),
            ],
        );
        assert_eq!(moves, vec![(1_000, Gate::Closed), (21_000, Gate::Open)]);
    }

    #[test]
    fn the_state_file_round_trips_and_rejects_garbage() {
        let mut state = State::new(1_700_000_000_000);
        state.streak = 2;
        state.last_transition_ms = Some(1_700_000_001_000);
        state.closed_total = 4;
        state.opened_total = 3;
        state.failures[Reason::HttpStatus.index()] = 9;
        state.redis_down = true;
        state.gate_closed = true;
        let text = render(&state);
        assert_eq!(parse(&text), Ok(state.clone()));
        assert_eq!(render(&parse(&text).unwrap()), text);
        assert_eq!(parse(&render(&State::default())), Ok(State::default()));
        for bad in [
            "",
            "version=2\n",
            "version=1\nstreak=x\n",
            "version=1\nwho=1\n",
            "garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}

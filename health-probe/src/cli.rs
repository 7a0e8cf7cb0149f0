//! The command line: `command()` (also used for man pages and completions)
//! and its translation into a validated [`Config`].
//!
//! Every option has an `OKOME_HEALTH_PROBE_*` environment variable (the
//! old `OKOME_HEALTH_*` names still work: `crate::SPEC`), which
//! `/etc/default/okome-health-probe` can set (the systemd unit reads the same
//! file). Values are parsed by clap value parsers so a bad one is a usage
//! error (exit 2) naming the option, before anything on disk is touched.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use okome_common::fetch::HttpUrl;

use crate::check::{Deadlines, Expect};
use crate::heartbeat::RedisUrl;
use crate::hysteresis::Policy;

/// The orchestrator's health URL on the shipped network.
pub const DEFAULT_URL: &str = "http://192.168.86.25:8000/health";
/// The local nginx's own health location (served by nginx itself, never
/// proxied, so it answers whatever the orchestrator does).
pub const DEFAULT_LOCAL_URL: &str = "http://127.0.0.1/nginx_status";
/// Per-boot state directory (tmpfs), under `OKOME_ROOT`.
pub const DEFAULT_STATE_DIR: &str = okome_common::paths::RUN_DIR;
/// The gate flag file the frontend config checks, under `OKOME_ROOT`.
pub const DEFAULT_GATE_FILE: &str = okome_common::paths::GATE_FILE;
/// How long one run may take before systemd kills it: the unit's
/// `TimeoutStartSec=` (configs/systemd/okome-health-probe.service; a test
/// holds the two equal). A killed run leaves the gate as it was, so settings
/// whose worst case does not fit are refused up front.
pub const RUN_BUDGET: Duration = Duration::from_secs(4);
/// Part of [`RUN_BUDGET`] kept for what is not a deadline: exec, lock,
/// state and textfile writes.
pub const RUN_SLACK: Duration = Duration::from_millis(500);

const ABOUT: &str = "Health gate for the OKOME edge: probe the orchestrator, open or close /run/okome/orchestrator.down";

const LONG_ABOUT: &str = "\
Health gate for the OKOME edge cache. Run every 5 s by okome-health-probe.timer.

Each run makes one probe decision: GET the orchestrator's health URL with a
connect deadline and a total deadline; if that check fails while the gate is
open, check once more after a short pause (like HAProxy's fastinter), so a
hang is acted on within the same tick.

The gate is the flag file /run/okome/orchestrator.down. nginx tests for it on
every request: while it exists nginx never waits on the orchestrator — cached
UI is served stale at once, other UI gets the maintenance page, /api/ a JSON
503. The probe creates the file after --fall consecutive failed checks and
removes it after --rise consecutive good ones, at most once per --hold-down,
so a flapping orchestrator cannot flap the edge. No nginx reload, no
`nginx -t`, no root: the probe only writes under /run/okome.

State (counters) lives in /run/okome/health-probe.state, on tmpfs; it and the
metrics textfile are rewritten only when a value changes, so a healthy node
writes nothing at all run after run. Transitions are logged once, with the
reason and how long the previous state lasted; steady state logs nothing
above debug.

Maintenance pin: `--pin REASON` (as root) writes /var/lib/okome/maintenance.pin
and closes the gate at once; while that file exists every run keeps the gate
closed whatever the checks say (logs, --json and okome_gate_pinned say
\"pinned\"). It is on persistent storage, so it survives a probe restart, an
upgrade and a reboot. `--unpin` removes it; the gate then reopens through the
usual hysteresis (--rise good runs).

--check-local is the keepalived vrrp_script: it asks the LOCAL nginx's own
health location and never the orchestrator (both Pis see the same
orchestrator; tracking it would move the VIP for nothing).

Configuration: flag > OKOME_HEALTH_PROBE_* environment variable (the older
OKOME_HEALTH_* names still work) > /etc/default/okome-health-probe > built-in
default. Default paths are placed under $OKOME_ROOT (default /); paths given
explicitly are used as written.
Log level: OKOME_LOG (default info; transitions are warning/info, the rest
debug).";

const AFTER_LONG_HELP: &str = "\
Examples:
  okome-health-probe                          one run as the timer does it
  okome-health-probe --json                   the same, decision printed as JSON
  okome-health-probe --url http://10.0.0.5:8000/health \\
      --expect-status 200 --expect-body '\"ok\"'
  okome-health-probe --check-local            keepalived's track script
  sudo okome-health-probe --pin \"upgrading the orchestrator\"
                                              maintenance: gate closed until --unpin
  sudo okome-health-probe --unpin             end it; the gate reopens after --rise good runs
  OKOME_LOG=debug okome-health-probe          show every check and streak

Exit status:
  0  upstream healthy: the gate is open after this run
     (or another run holds the lock; --pin/--unpin: done)
  1  upstream unhealthy: the gate is closed after this run
     (--check-local: 0 local nginx answered, 1 it did not)
  2  usage or configuration error (bad URL, state directory not usable,
     deadlines that do not fit the unit's TimeoutStartSec): nothing was changed
  3  internal failure (the gate file or state could not be written)

The systemd unit should treat 1 as success (SuccessExitStatus=1): a closed
gate is the probe doing its job, not the unit failing.";

/// The clap command, with teaching help.
pub fn command() -> Command {
    Command::new("okome-health-probe")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .after_long_help(AFTER_LONG_HELP)
        // -h and --help fit 80 columns (clap's wrap_help; narrower terminals
        // get narrower help).
        .max_term_width(80)
        // A later flag wins over an earlier one, so wrappers can append.
        .args_override_self(true)
        .arg(
            Arg::new("url")
                .long("url")
                .env("OKOME_HEALTH_PROBE_URL")
                .value_name("URL")
                .default_value(DEFAULT_URL)
                .value_parser(|s: &str| s.parse::<HttpUrl>().map_err(|e| e.to_string()))
                .help("The orchestrator's health URL (plain http)"),
        )
        .arg(
            Arg::new("expect-status")
                .long("expect-status")
                .env("OKOME_HEALTH_PROBE_EXPECT_STATUS")
                .value_name("CODE")
                .value_parser(value_parser!(u16).range(100..=599))
                .help("Exact status a healthy answer has [default: any 2xx]"),
        )
        .arg(
            Arg::new("expect-body")
                .long("expect-body")
                .env("OKOME_HEALTH_PROBE_EXPECT_BODY")
                .value_name("TEXT")
                .help("Substring a healthy answer's body contains"),
        )
        .arg(
            Arg::new("connect-timeout")
                .long("connect-timeout")
                .env("OKOME_HEALTH_PROBE_CONNECT_TIMEOUT")
                .value_name("DURATION")
                .default_value("400ms")
                .value_parser(parse_duration)
                .help("Deadline for the TCP connect (e.g. 500ms, 1s)"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .env("OKOME_HEALTH_PROBE_TIMEOUT")
                .value_name("DURATION")
                .default_value("800ms")
                .value_parser(parse_duration)
                .help("Deadline for a whole check; 2 × this + --recheck-pause (+ --redis-timeout) must fit in 3.5 s (the unit's TimeoutStartSec=4s less 0.5 s)"),
        )
        .arg(
            Arg::new("recheck-pause")
                .long("recheck-pause")
                .env("OKOME_HEALTH_PROBE_RECHECK_PAUSE")
                .value_name("DURATION")
                .default_value("200ms")
                .value_parser(parse_duration)
                .help("Pause before re-checking a failed check while the gate is open"),
        )
        .arg(
            Arg::new("fall")
                .long("fall")
                .env("OKOME_HEALTH_PROBE_FALL")
                .value_name("N")
                .default_value("2")
                .value_parser(value_parser!(u32).range(1..=100))
                .help("Consecutive failed checks that close the gate (the re-check counts)"),
        )
        .arg(
            Arg::new("rise")
                .long("rise")
                .env("OKOME_HEALTH_PROBE_RISE")
                .value_name("N")
                .default_value("3")
                .value_parser(value_parser!(u32).range(1..=100))
                .help("Consecutive good checks (one per run) that reopen the gate"),
        )
        .arg(
            Arg::new("hold-down")
                .long("hold-down")
                .env("OKOME_HEALTH_PROBE_HOLD_DOWN")
                .value_name("DURATION")
                .default_value("10s")
                .value_parser(parse_duration_or_zero)
                .help("Least time between two gate transitions (anti-flapping; 10 s never delays a real recovery past rise)"),
        )
        .arg(
            Arg::new("state-dir")
                .long("state-dir")
                .env("OKOME_HEALTH_PROBE_STATE_DIR")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help("Where health-probe.state and .lock live [default: $OKOME_ROOT/run/okome]"),
        )
        .arg(
            Arg::new("gate-file")
                .long("gate-file")
                .env("OKOME_HEALTH_PROBE_GATE_FILE")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help("The flag file nginx checks [default: $OKOME_ROOT/run/okome/orchestrator.down]"),
        )
        .arg(
            Arg::new("metrics-dir")
                .long("metrics-dir")
                .env("OKOME_HEALTH_PROBE_METRICS_DIR")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help("node_exporter textfile directory [default: $OKOME_ROOT/run/okome/metrics]"),
        )
        .arg(
            Arg::new("no-metrics")
                .long("no-metrics")
                .action(ArgAction::SetTrue)
                .help("Write no Prometheus textfile"),
        )
        .arg(
            Arg::new("redis-url")
                .long("redis-url")
                .env("OKOME_HEALTH_PROBE_REDIS_URL")
                .value_name("URL")
                .hide_env_values(true)
                .value_parser(|s: &str| s.parse::<RedisUrl>())
                .help("Also SET okome:health:<node> (TTL 30 s) in this Redis: redis://[[user]:pass@]host[:port][/db]"),
        )
        .arg(
            Arg::new("redis-timeout")
                .long("redis-timeout")
                .env("OKOME_HEALTH_PROBE_REDIS_TIMEOUT")
                .value_name("DURATION")
                .default_value("500ms")
                .value_parser(parse_duration)
                .help("Deadline for the whole heartbeat; a failure never affects the gate"),
        )
        .arg(
            Arg::new("node")
                .long("node")
                .env("OKOME_HEALTH_PROBE_NODE")
                .value_name("NAME")
                .help("Node name in the heartbeat key [default: the host name]"),
        )
        .arg(
            Arg::new("check-local")
                .long("check-local")
                .action(ArgAction::SetTrue)
                .help("keepalived mode: check the LOCAL nginx only, write nothing, exit 0/1"),
        )
        .arg(
            Arg::new("local-url")
                .long("local-url")
                .env("OKOME_HEALTH_PROBE_LOCAL_URL")
                .value_name("URL")
                .default_value(DEFAULT_LOCAL_URL)
                .value_parser(|s: &str| s.parse::<HttpUrl>().map_err(|e| e.to_string()))
                .help("The local nginx's own health location, for --check-local"),
        )
        .arg(
            Arg::new("local-timeout")
                .long("local-timeout")
                .env("OKOME_HEALTH_PROBE_LOCAL_TIMEOUT")
                .value_name("DURATION")
                .default_value("500ms")
                .value_parser(parse_duration)
                .help("Deadline for --check-local (keepalived's own timeout is 1 s)"),
        )
        .arg(
            Arg::new("pin")
                .long("pin")
                .value_name("REASON")
                .conflicts_with_all(["unpin", "check-local"])
                .help("Maintenance: close the gate now and keep it closed, whatever the checks say, until --unpin (root; survives restarts and reboots)"),
        )
        .arg(
            Arg::new("unpin")
                .long("unpin")
                .action(ArgAction::SetTrue)
                .conflicts_with("check-local")
                .help("End the maintenance pin; the gate reopens after --rise good runs"),
        )
        .arg(
            Arg::new("pin-file")
                .long("pin-file")
                .env("OKOME_HEALTH_PROBE_PIN_FILE")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help("The maintenance pin (written by --pin, only read by runs) [default: $OKOME_ROOT/var/lib/okome/maintenance.pin]"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print the decision as one JSON object on stdout"),
        )
}

/// Parse `250ms`, `1s`, `1.5s`, `2m`, `1h` or a bare number of seconds; zero is
/// refused because a zero socket timeout means "wait forever".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_or_zero(text)?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

/// [`parse_duration`], zero allowed (for the hold-down); at most 24 h.
/// The reading is okome-common's, shared by every tool.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let duration = okome_common::duration::parse(text)?;
    if duration > Duration::from_secs(86_400) {
        return Err(format!("{:?} is out of range (0 to 24 h)", text.trim()));
    }
    Ok(duration)
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Probe the orchestrator and drive the gate.
    Probe,
    /// keepalived's check of the local nginx.
    CheckLocal,
    /// Set the maintenance pin (reason in [`Config::pin_reason`]).
    Pin,
    /// Remove the maintenance pin.
    Unpin,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// The orchestrator's health URL.
    pub url: HttpUrl,
    /// What a healthy answer looks like.
    pub expect: Expect,
    /// Deadlines for one check.
    pub deadlines: Deadlines,
    /// Pause before the fast re-check.
    pub recheck_pause: Duration,
    /// Hysteresis thresholds.
    pub policy: Policy,
    /// Directory of the state and lock files.
    pub state_dir: PathBuf,
    /// The gate flag file.
    pub gate_file: PathBuf,
    /// The maintenance pin file.
    pub pin_file: PathBuf,
    /// The reason given to `--pin`.
    pub pin_reason: Option<String>,
    /// Textfile directory, `None` for `--no-metrics`.
    pub metrics_dir: Option<PathBuf>,
    /// Heartbeat target.
    pub redis: Option<RedisUrl>,
    /// Heartbeat deadline.
    pub redis_timeout: Duration,
    /// Node name for the heartbeat key.
    pub node: String,
    /// Local nginx health URL.
    pub local_url: HttpUrl,
    /// Local check deadline.
    pub local_timeout: Duration,
    /// Print JSON.
    pub json: bool,
}

/// A configuration that parses but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::error::Error for ConfigError {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host name, for the heartbeat key (`frontend-cache` if none).
fn host_name() -> String {
    okome_common::host::host_name().unwrap_or_else(|| "frontend-cache".to_string())
}

impl Config {
    /// Build from parsed arguments, checking what clap cannot.
    pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
        let duration = |id: &str| *matches.get_one::<Duration>(id).expect("defaulted");
        let deadlines = Deadlines {
            connect: duration("connect-timeout"),
            total: duration("timeout"),
        };
        if deadlines.connect > deadlines.total {
            return Err(ConfigError(format!(
                "--connect-timeout ({:?}) is longer than --timeout ({:?})",
                deadlines.connect, deadlines.total
            )));
        }
        let pause = duration("recheck-pause");
        let redis = matches.get_one::<RedisUrl>("redis-url").cloned();
        let redis_timeout = duration("redis-timeout");
        let heartbeat = if redis.is_some() {
            redis_timeout
        } else {
            Duration::ZERO
        };
        let worst = deadlines.total * 2 + pause + heartbeat;
        if worst > RUN_BUDGET - RUN_SLACK {
            let heartbeat = if redis.is_some() {
                format!(" + --redis-timeout {redis_timeout:?}")
            } else {
                String::new()
            };
            return Err(ConfigError(format!(
                "2 × --timeout {:?} + --recheck-pause {pause:?}{heartbeat} = {worst:?}, more than the {:?} a run may take \
                 (TimeoutStartSec={}s in okome-health-probe.service, less {RUN_SLACK:?} for start-up and writes): \
                 systemd would kill the run mid-check",
                deadlines.total,
                RUN_BUDGET - RUN_SLACK,
                RUN_BUDGET.as_secs()
            )));
        }
        let hold_down = duration("hold-down");
        let path = |id: &str, default: &str| {
            matches
                .get_one::<PathBuf>(id)
                .cloned()
                .unwrap_or_else(|| okome_common::root::rooted(default))
        };
        let state_dir = path("state-dir", DEFAULT_STATE_DIR);
        let metrics_dir = (!matches.get_flag("no-metrics"))
            .then(|| path("metrics-dir", okome_common::prom::TEXTFILE_DIR));
        let node = matches
            .get_one::<String>("node")
            .cloned()
            .unwrap_or_else(host_name);
        if node.is_empty()
            || node
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ConfigError(format!(
                "--node {node:?}: must be a non-empty word"
            )));
        }
        let pin_reason = matches.get_one::<String>("pin").cloned();
        if let Some(reason) = &pin_reason {
            crate::pin::validate_reason(reason).map_err(ConfigError)?;
        }
        let mode = if matches.get_flag("check-local") {
            Mode::CheckLocal
        } else if pin_reason.is_some() {
            Mode::Pin
        } else if matches.get_flag("unpin") {
            Mode::Unpin
        } else {
            Mode::Probe
        };
        Ok(Config {
            mode,
            pin_file: path("pin-file", crate::pin::DEFAULT_PIN_FILE),
            pin_reason,
            url: matches
                .get_one::<HttpUrl>("url")
                .expect("defaulted")
                .clone(),
            expect: Expect {
                status: matches.get_one::<u16>("expect-status").copied(),
                body: matches.get_one::<String>("expect-body").cloned(),
            },
            deadlines,
            recheck_pause: pause,
            policy: Policy {
                fall: *matches.get_one::<u32>("fall").expect("defaulted"),
                rise: *matches.get_one::<u32>("rise").expect("defaulted"),
                hold_down_ms: u64::try_from(hold_down.as_millis()).unwrap_or(u64::MAX),
            },
            gate_file: path("gate-file", DEFAULT_GATE_FILE),
            state_dir,
            metrics_dir,
            redis,
            redis_timeout,
            node,
            local_url: matches
                .get_one::<HttpUrl>("local-url")
                .expect("defaulted")
                .clone(),
            local_timeout: duration("local-timeout"),
            json: matches.get_flag("json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn durations_read_like_systemd_ones() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        for bad in ["0", "0ms", "-1s", "fast", "25h", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn config(args: &[&str]) -> Result<Config, String> {
        let matches = command()
            .try_get_matches_from(std::iter::once("okome-health-probe").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_matches(&matches).map_err(|e| e.0)
    }

    #[test]
    fn defaults_meet_the_timer_budget_and_bad_values_are_refused() {
        let defaults = config(&["--node", "n1", "--state-dir", "/x"]).unwrap();
        assert_eq!(defaults.url.to_string(), DEFAULT_URL);
        assert_eq!(
            defaults.policy,
            Policy {
                fall: 2,
                rise: 3,
                hold_down_ms: 10_000
            }
        );
        // A hang is detected within one tick: two checks plus the pause.
        assert!(
            defaults.deadlines.total * 2 + defaults.recheck_pause <= Duration::from_millis(2_500)
        );
        assert_eq!(defaults.state_dir, PathBuf::from("/x"));
        assert!(
            config(&["--url", "https://h/"])
                .unwrap_err()
                .contains("https is not supported")
        );
        assert!(
            config(&["--timeout", "3s"])
                .unwrap_err()
                .contains("systemd would kill the run")
        );
        assert!(
            config(&["--connect-timeout", "900ms", "--timeout", "800ms"])
                .unwrap_err()
                .contains("longer")
        );
        assert!(config(&["--fall", "0"]).is_err());
        assert!(config(&["--node", "a b"]).unwrap_err().contains("--node"));
        assert!(config(&["--no-metrics"]).unwrap().metrics_dir.is_none());
    }

    #[test]
    fn the_run_budget_is_the_units_timeoutstartsec() {
        let unit = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/systemd/okome-health-probe.service"
        ))
        .unwrap();
        let values: Vec<&str> = unit
            .lines()
            .filter_map(|line| line.trim().strip_prefix("TimeoutStartSec="))
            .collect();
        assert_eq!(values.len(), 1, "one TimeoutStartSec= line: {values:?}");
        assert_eq!(parse_duration(values[0]), Ok(RUN_BUDGET));
    }

    #[test]
    fn every_setting_whose_worst_case_overruns_the_budget_is_refused() {
        // 2 × 1.6 s + 0.3 s = 3.5 s fits exactly; 1 ms more does not.
        let fits = [
            "--node",
            "n",
            "--timeout",
            "1.6s",
            "--recheck-pause",
            "300ms",
        ];
        assert!(config(&fits).is_ok());
        let error = config(&[
            "--node",
            "n",
            "--timeout",
            "1.6s",
            "--recheck-pause",
            "301ms",
        ])
        .unwrap_err();
        for word in [
            "--timeout 1.6s",
            "--recheck-pause 301ms",
            "3.501s",
            "TimeoutStartSec=4s",
        ] {
            assert!(error.contains(word), "{word:?} not in {error}");
        }
        // The heartbeat runs in the same run: its deadline counts when set.
        let with_redis = [&fits[..], &["--redis-url", "redis://127.0.0.1:1"]].concat();
        let error = config(&with_redis).unwrap_err();
        assert!(error.contains("--redis-timeout 500ms = 4s"), "{error}");
        // Under the old 5 s rule this was accepted and killed at 4 s.
        assert!(config(&["--node", "n", "--timeout", "1.9s"]).is_err());
    }

    /// Replays 5 s timer ticks against an orchestrator that hangs at
    /// `hang_at` and recovers at `back_at` (ms), with the default policy and
    /// deadlines: a hung check costs the whole `--timeout`, a good one ~1 ms.
    /// Returns the transitions `(at_ms, to)`.
    fn replay(
        config: &Config,
        hang_at: u64,
        back_at: u64,
        until: u64,
    ) -> Vec<(u64, crate::hysteresis::Gate)> {
        use crate::hysteresis::{Gate, State, Step, step};
        let healthy = |t: u64| t < hang_at || t >= back_at;
        let timeout = config.deadlines.total.as_millis() as u64;
        let pause = config.recheck_pause.as_millis() as u64;
        let (mut gate, mut state, mut moves) = (Gate::Open, State::new(0), Vec::new());
        let mut tick = 0;
        while tick < until {
            let mut at = tick;
            for attempt in 0..2 {
                let ok = healthy(at);
                at += if ok { 1 } else { timeout };
                let result = step(gate, &mut state, &config.policy, ok, at);
                if let Step::Transition { to, .. } = result {
                    gate = to;
                    moves.push((at, to));
                }
                let held = matches!(result, Step::HeldDown { .. });
                if ok || held || gate == Gate::Closed || attempt == 1 {
                    break;
                }
                at += pause;
            }
            tick += 5_000;
        }
        moves
    }

    #[test]
    fn the_default_policy_meets_the_issue_targets_at_every_timer_phase() {
        use crate::hysteresis::Gate;
        let config = config(&["--node", "n"]).unwrap();
        for phase in (0..5_000).step_by(50) {
            let hang_at = 60_000 + phase;
            let moves = replay(&config, hang_at, u64::MAX, 120_000);
            let (closed_at, to) = moves[0];
            assert_eq!(to, Gate::Closed);
            // Target: gate closed <= 8 s after the orchestrator hangs.
            assert!(
                closed_at - hang_at <= 8_000,
                "hang at {hang_at}: closed at {closed_at}"
            );
            // Target: reopened <= 20 s after recovery, however soon it recovers.
            for outage in [0, 500, 2_000, 4_900, 9_000, 15_000, 61_000] {
                let back_at = closed_at + outage;
                let moves = replay(&config, hang_at, back_at, back_at + 60_000);
                assert_eq!(moves.len(), 2, "{moves:?}");
                let (opened_at, to) = moves[1];
                assert_eq!(to, Gate::Open);
                assert!(
                    opened_at - back_at <= 20_000,
                    "hang {hang_at}, back {back_at}: opened at {opened_at}"
                );
            }
        }
    }
}

//! Scenarios and the plan of one run: what is injected, how it is proven,
//! how it is reverted and how the baseline is proven back — all decided
//! before anything is touched, and written to disk (atomic, fsynced) before
//! the first injection, so `okome-chaos revert`, the armed timer and the
//! boot-time recover unit need nothing but this file.
//!
//! Everything here is pure: [`build`] turns the settings and the facts
//! measured at preflight into a [`Plan`] whose commands are plain argv
//! vectors, which is what the dry run prints and what the unit tests check.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::nft;

/// Version of the plan file; a revert refuses a plan it does not know.
pub const PLAN_SCHEMA: &str = "okome-chaos-plan/1";

/// One failure okome-chaos knows how to inject and revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `systemctl stop nginx`.
    NginxStop,
    /// `systemctl stop redis-server`.
    RedisStop,
    /// keepalived stopped: it sends a priority-0 advertisement, the peer
    /// takes the VIP at once (VRRP is never blocked: that makes two masters).
    VipFailover,
    /// Our nft table drops this node's TCP to the orchestrator.
    OriginBlackhole,
    /// Our nft table drops a random fraction of it.
    OriginLoss,
    /// A file of ours fills the cache filesystem to a threshold.
    DiskPressure,
}

/// Every scenario, in `--help` order.
pub const SCENARIOS: [Scenario; 6] = [
    Scenario::NginxStop,
    Scenario::RedisStop,
    Scenario::VipFailover,
    Scenario::OriginBlackhole,
    Scenario::OriginLoss,
    Scenario::DiskPressure,
];

impl Scenario {
    /// The name used on the command line, in the guard and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::NginxStop => "nginx-stop",
            Scenario::RedisStop => "redis-stop",
            Scenario::VipFailover => "vip-failover",
            Scenario::OriginBlackhole => "origin-blackhole",
            Scenario::OriginLoss => "origin-loss",
            Scenario::DiskPressure => "disk-pressure",
        }
    }

    /// Look a name up.
    pub fn from_name(name: &str) -> Option<Scenario> {
        SCENARIOS.into_iter().find(|s| s.name() == name)
    }

    /// The steady-state hypothesis checked while the fault is in place.
    pub fn hypothesis(self) -> &'static str {
        match self {
            Scenario::NginxStop => {
                "on the VIP holder: the VIP moves to the standby within the failover bound and the service URL keeps answering"
            }
            Scenario::RedisStop => {
                "heartbeat and plan sharing degrade quietly; the edge (service URL) is unaffected"
            }
            Scenario::VipFailover => {
                "keepalived demoted natively: the standby takes the VIP within the failover bound; the service URL keeps answering"
            }
            Scenario::OriginBlackhole => {
                "this node's health gate closes within 8 s (--gate-file appears), stale pages keep being served (service URL answers), the VIP stays put"
            }
            Scenario::OriginLoss => {
                "a random fraction of origin traffic lost: the service URL keeps answering"
            }
            Scenario::DiskPressure => {
                "the cache filesystem filled to the threshold: nginx keeps serving (service URL answers)"
            }
        }
    }

    /// The longest the health gates may take to close (milliseconds after
    /// the injection), when the hypothesis says they must.
    pub fn gate_bound_ms(self) -> Option<u64> {
        match self {
            Scenario::OriginBlackhole => Some(8000),
            _ => None,
        }
    }

    /// The systemd unit a stop scenario stops.
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Scenario::NginxStop => Some("nginx.service"),
            Scenario::RedisStop => Some("redis-server.service"),
            Scenario::VipFailover => Some("keepalived.service"),
            _ => None,
        }
    }
}

/// A fact checked on the node: that the fault took effect, or that the
/// baseline is back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Check {
    /// The unit's ActiveState is `active`.
    UnitActive {
        /// Unit name.
        unit: String,
    },
    /// The unit's ActiveState is not `active`.
    UnitInactive {
        /// Unit name.
        unit: String,
    },
    /// `nft list ruleset` holds our table.
    TablePresent,
    /// `nft list ruleset` does not hold our table (after a reboot, when the
    /// rest of the ruleset is rebuilt by its owners and cannot be compared).
    TableAbsent,
    /// `nft list ruleset` minus our table equals the listing taken before
    /// injecting, and our table is absent.
    RulesetRestored {
        /// The listing before, minus our table.
        before: String,
    },
    /// A TCP connection to the address succeeds within 1 s.
    Reachable {
        /// Address.
        addr: SocketAddrV4,
    },
    /// Of up to 30 connections (300 ms each), at least one fails.
    Lossy {
        /// Address.
        addr: SocketAddrV4,
    },
    /// The filesystem holding `path` is at least `percent` % full.
    DiskAtLeast {
        /// Any path on it.
        path: PathBuf,
        /// Threshold.
        percent: f64,
    },
    /// The file does not exist.
    Absent {
        /// The file.
        path: PathBuf,
    },
}

impl Check {
    /// One line for the dry run, the journal and messages.
    pub fn describe(&self) -> String {
        match self {
            Check::UnitActive { unit } => format!("{unit} is active"),
            Check::UnitInactive { unit } => format!("{unit} is not active"),
            Check::TablePresent => format!("nft table {} exists", nft::TABLE),
            Check::TableAbsent => format!("nft table {} is gone", nft::TABLE),
            Check::RulesetRestored { .. } => format!(
                "nft ruleset without {} byte-identical to before, {} gone",
                nft::TABLE,
                nft::TABLE
            ),
            Check::Reachable { addr } => format!("TCP {addr} connects"),
            Check::Lossy { addr } => format!("TCP {addr} loses connections"),
            Check::DiskAtLeast { path, percent } => {
                format!("filesystem of {} is ≥ {percent} % full", path.display())
            }
            Check::Absent { path } => format!("{} is absent", path.display()),
        }
    }
}

/// A file the plan writes before running its commands (nft scripts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    /// Where (real path on the node).
    pub path: PathBuf,
    /// Contents.
    pub contents: String,
}

/// Everything about one run that a revert needs, written before injecting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// The run id (also its directory name).
    pub run_id: String,
    /// What is injected.
    pub scenario: Scenario,
    /// The node it runs on.
    pub node: String,
    /// Unix time the plan was made.
    pub created: u64,
    /// Seconds of fault.
    pub duration_secs: u64,
    /// Seconds after arming at which the armed revert fires.
    pub deadline_secs: u64,
    /// Files written before the commands run.
    pub files: Vec<PlanFile>,
    /// The command that arms the revert on this node.
    pub arm: Vec<String>,
    /// Injection commands, in order.
    pub inject: Vec<Vec<String>>,
    /// Facts that prove the injection took effect.
    pub effect: Vec<Check>,
    /// Revert commands, in order; each is idempotent.
    pub revert: Vec<Vec<String>>,
    /// Facts that prove the baseline is back.
    pub baseline: Vec<Check>,
    /// Stops the armed timer once reverted (best effort: a late firing
    /// finds the run reverted and does nothing).
    pub disarm: Vec<String>,
}

/// What the plan is built from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Scenario.
    pub scenario: Scenario,
    /// Node name.
    pub node: &'a str,
    /// Now (unix seconds).
    pub now: u64,
    /// Fault duration.
    pub duration_secs: u64,
    /// Extra time before the armed revert fires.
    pub grace_secs: u64,
    /// This run's directory (real path on the node).
    pub run_dir: &'a Path,
    /// The okome-chaos binary the armed timer runs.
    pub exe: &'a Path,
    /// `OKOME_ROOT` to pass on to the armed revert, if set.
    pub root: Option<&'a Path>,
    /// The orchestrator, for the network scenarios.
    pub origin: SocketAddrV4,
    /// Fraction dropped by origin-loss, percent.
    pub loss_percent: u8,
    /// The cache directory disk-pressure fills.
    pub cache_dir: &'a Path,
    /// disk-pressure's threshold, percent.
    pub disk_percent: f64,
    /// Bytes to write to reach it (measured at preflight).
    pub fill_bytes: u64,
    /// `nft list ruleset` minus our table, at preflight.
    pub ruleset_before: &'a str,
}

/// The transient timer's unit name for a run.
pub fn timer_unit(run_id: &str) -> String {
    format!("okome-chaos-revert-{run_id}")
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The plan for one run.
pub fn build(inputs: &Inputs<'_>) -> Plan {
    let deadline = inputs.duration_secs + inputs.grace_secs;
    let unit_name = timer_unit(inputs.run_id);
    let mut arm = argv(&["systemd-run", "--quiet"]);
    arm.push(format!("--unit={unit_name}"));
    arm.push(format!(
        "--description=okome-chaos: armed revert of run {}",
        inputs.run_id
    ));
    arm.push(format!("--on-active={deadline}s"));
    // Timers default to AccuracySec=1min: the revert would fire up to a
    // minute late.
    arm.push("--timer-property=AccuracySec=100ms".to_string());
    if let Some(root) = inputs.root {
        arm.push(format!("--setenv=OKOME_ROOT={}", root.display()));
    }
    arm.push(inputs.exe.display().to_string());
    arm.push("revert".to_string());
    arm.push(inputs.run_id.to_string());

    let mut files = Vec::new();
    let (inject, effect, revert, mut baseline) = match inputs.scenario {
        Scenario::NginxStop | Scenario::RedisStop | Scenario::VipFailover => {
            let unit = inputs.scenario.unit().unwrap_or_default().to_string();
            (
                vec![argv(&["systemctl", "stop", &unit])],
                vec![Check::UnitInactive { unit: unit.clone() }],
                // Only units that were active before are stopped (preflight
                // refuses otherwise), so starting it is the exact revert.
                vec![argv(&["systemctl", "start", &unit])],
                vec![Check::UnitActive { unit }],
            )
        }
        Scenario::OriginBlackhole | Scenario::OriginLoss => {
            let percent = if inputs.scenario == Scenario::OriginBlackhole {
                100
            } else {
                inputs.loss_percent
            };
            let inject_path = inputs.run_dir.join("inject.nft");
            let revert_path = inputs.run_dir.join("revert.nft");
            files.push(PlanFile {
                path: inject_path.clone(),
                contents: nft::inject_script(inputs.origin, percent),
            });
            files.push(PlanFile {
                path: revert_path.clone(),
                contents: nft::revert_script(),
            });
            // Blackhole or loss, a connection that fails is the proof (the
            // preflight saw the origin answer).
            let proof = Check::Lossy {
                addr: inputs.origin,
            };
            (
                vec![vec![
                    "nft".to_string(),
                    "-f".to_string(),
                    inject_path.display().to_string(),
                ]],
                vec![Check::TablePresent, proof],
                vec![vec![
                    "nft".to_string(),
                    "-f".to_string(),
                    revert_path.display().to_string(),
                ]],
                vec![Check::Reachable {
                    addr: inputs.origin,
                }],
            )
        }
        Scenario::DiskPressure => {
            let fill = inputs
                .cache_dir
                .join(format!(".okome-chaos-fill-{}", inputs.run_id));
            let fill_text = fill.display().to_string();
            (
                vec![argv(&[
                    "fallocate",
                    "-l",
                    &inputs.fill_bytes.to_string(),
                    &fill_text,
                ])],
                vec![Check::DiskAtLeast {
                    path: inputs.cache_dir.to_path_buf(),
                    percent: inputs.disk_percent,
                }],
                vec![argv(&["rm", "-f", &fill_text])],
                vec![Check::Absent { path: fill }],
            )
        }
    };
    // Whatever the scenario, nobody's firewall changed.
    baseline.push(Check::RulesetRestored {
        before: inputs.ruleset_before.to_string(),
    });
    Plan {
        schema: PLAN_SCHEMA.to_string(),
        run_id: inputs.run_id.to_string(),
        scenario: inputs.scenario,
        node: inputs.node.to_string(),
        created: inputs.now,
        duration_secs: inputs.duration_secs,
        deadline_secs: deadline,
        files,
        arm,
        inject,
        effect,
        revert,
        baseline,
        disarm: vec![
            "systemctl".to_string(),
            "stop".to_string(),
            format!("{unit_name}.timer"),
        ],
    }
}

/// Bytes to add to a filesystem with `used` and `available` bytes (as df
/// counts them) so it is at least `percent` % full; 0 when it already is.
pub fn fill_bytes(used: u64, available: u64, percent: f64) -> u64 {
    let total = (used + available) as f64;
    let want = (total * percent / 100.0).ceil() as u64;
    // One MiB more: other writers and block rounding must not leave it
    // just under the threshold.
    want.saturating_sub(used)
        .saturating_add(1 << 20)
        .min(available)
        * u64::from(want > used)
}

/// A run id: the UTC time and the scenario, unique per second per node.
pub fn run_id(now: u64, scenario: Scenario) -> String {
    let stamp: String = crate::guard::format_utc(now)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{stamp}-{}", scenario.name())
}

/// Whether `id` is a syntactically valid run id (it names a directory).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The inputs of one plausible run, for the tests of every module that
/// needs a built plan (change a field with `..test_inputs(…)`).
#[cfg(test)]
pub(crate) fn test_inputs(scenario: Scenario, run_dir: &Path) -> Inputs<'_> {
    Inputs {
        run_id: "20261207T053000Z-x",
        scenario,
        node: "frontend-a",
        now: 1_796_600_000,
        duration_secs: 60,
        grace_secs: 15,
        run_dir,
        exe: Path::new("/usr/bin/okome-chaos"),
        root: None,
        origin: "10.213.0.5:8000".parse().unwrap(),
        loss_percent: 30,
        cache_dir: Path::new("/var/cache/nginx"),
        disk_percent: 90.0,
        fill_bytes: 12345,
        ruleset_before: "table inet f2b-table {\n}\n",
    }
}

#[cfg(test)]
mod tests {
    use super::test_inputs as inputs;
    use super::*;

    #[test]
    fn the_armed_revert_is_a_precise_transient_timer() {
        let dir = Path::new("/var/lib/okome/chaos/r");
        let plan = build(&inputs(Scenario::NginxStop, dir));
        assert_eq!(
            plan.arm,
            [
                "systemd-run",
                "--quiet",
                "--unit=okome-chaos-revert-20261207T053000Z-x",
                "--description=okome-chaos: armed revert of run 20261207T053000Z-x",
                "--on-active=75s",
                "--timer-property=AccuracySec=100ms",
                "/usr/bin/okome-chaos",
                "revert",
                "20261207T053000Z-x",
            ]
        );
        assert_eq!(plan.deadline_secs, 75);
        assert_eq!(
            plan.disarm,
            [
                "systemctl",
                "stop",
                "okome-chaos-revert-20261207T053000Z-x.timer"
            ]
        );
        let mut with_root = inputs(Scenario::NginxStop, dir);
        with_root.root = Some(Path::new("/tmp/fixture"));
        assert!(
            build(&with_root)
                .arm
                .contains(&"--setenv=OKOME_ROOT=/tmp/fixture".to_string())
        );
    }

    #[test]
    fn unit_scenarios_stop_and_start_exactly_their_unit() {
        let dir = Path::new("/d");
        for (scenario, unit) in [
            (Scenario::NginxStop, "nginx.service"),
            (Scenario::RedisStop, "redis-server.service"),
            (Scenario::VipFailover, "keepalived.service"),
        ] {
            let plan = build(&inputs(scenario, dir));
            assert_eq!(plan.inject, [["systemctl", "stop", unit]]);
            assert_eq!(plan.revert, [["systemctl", "start", unit]]);
            assert_eq!(plan.effect, [Check::UnitInactive { unit: unit.into() }]);
            assert_eq!(plan.baseline[0], Check::UnitActive { unit: unit.into() });
            assert!(matches!(plan.baseline[1], Check::RulesetRestored { .. }));
        }
    }

    #[test]
    fn network_scenarios_touch_only_our_table() {
        let dir = Path::new("/var/lib/okome/chaos/r");
        let plan = build(&inputs(Scenario::OriginLoss, dir));
        assert_eq!(
            plan.inject,
            [["nft", "-f", "/var/lib/okome/chaos/r/inject.nft"]]
        );
        assert_eq!(
            plan.revert,
            [["nft", "-f", "/var/lib/okome/chaos/r/revert.nft"]]
        );
        assert!(
            plan.files[0]
                .contents
                .contains("numgen random mod 100 < 30")
        );
        assert_eq!(plan.files[1].contents, nft::revert_script());
        let black = build(&inputs(Scenario::OriginBlackhole, dir));
        assert!(!black.files[0].contents.contains("numgen"));
        for plan in [plan, black] {
            for step in plan.inject.iter().chain(&plan.revert) {
                assert!(!step.iter().any(|w| w == "flush"), "{step:?}");
            }
        }
    }

    #[test]
    fn disk_pressure_writes_and_removes_one_file_of_ours() {
        let plan = build(&inputs(Scenario::DiskPressure, Path::new("/d")));
        let fill = "/var/cache/nginx/.okome-chaos-fill-20261207T053000Z-x";
        assert_eq!(plan.inject, [["fallocate", "-l", "12345", fill]]);
        assert_eq!(plan.revert, [["rm", "-f", fill]]);
        assert_eq!(plan.baseline[0], Check::Absent { path: fill.into() });
    }

    #[test]
    fn the_plan_survives_a_round_trip_through_json() {
        let plan = build(&inputs(Scenario::OriginBlackhole, Path::new("/d")));
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
    }

    #[test]
    fn fill_reaches_the_threshold_and_never_exceeds_what_is_free() {
        // 100 used + 900 free = 1000; 90 % → 900 used → 800 more (+1 MiB, capped).
        assert_eq!(fill_bytes(100, 900, 90.0), 900);
        let gib = 1u64 << 30;
        assert_eq!(fill_bytes(gib, 9 * gib, 50.0), 4 * gib + (1 << 20));
        assert_eq!(fill_bytes(9 * gib, gib, 50.0), 0);
    }

    #[test]
    fn run_ids_are_safe_directory_names() {
        let id = run_id(1_796_600_000, Scenario::DiskPressure);
        assert!(valid_run_id(&id), "{id}");
        assert!(id.ends_with("-disk-pressure"));
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(!valid_run_id(bad), "{bad}");
        }
        assert_eq!(
            Scenario::from_name("origin-loss"),
            Some(Scenario::OriginLoss)
        );
        assert_eq!(Scenario::from_name("nope"), None);
    }
}

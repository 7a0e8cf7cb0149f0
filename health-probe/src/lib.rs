//! okome-health-probe: the OKOME edge's health gate, as a library.
//!
//! A systemd timer runs the binary every 5 s. Each run probes the
//! orchestrator's health URL ([`check`], over okome-common's `fetch` (ureq)),
//! feeds the result to the pure hysteresis machine ([`hysteresis`]) and, on a
//! transition only, creates or removes the flag file nginx tests per request
//! ([`run`]). Everything is a library so tests drive each piece directly;
//! `main.rs` only parses flags and maps the outcome to an exit status.

pub mod check;
pub mod cli;
pub mod heartbeat;
pub mod hysteresis;
pub mod json;
pub mod metrics;
pub mod pin;
pub mod run;

pub use cli::{Config, ConfigError, Mode, command};
pub use run::{Decision, Error, Outcome, run};

/// The tool's name, for logs and errors.
pub const TOOL: &str = "okome-health-probe";

/// How the shared start-up (`okome_common::tool`) runs this tool.
/// `--check-local` is keepalived's track script, run as `nobody`: a defaults
/// file kept private (it may hold the Redis password) must not drop the VIP,
/// so with that flag an unreadable file is skipped. Its variables were
/// `OKOME_HEALTH_*` before they took the tool's full name: the old names,
/// in the environment or an installed defaults file, still work.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_HEALTH_PROBE_",
    env_aliases: &[
        (
            "OKOME_HEALTH_CONNECT_TIMEOUT",
            "OKOME_HEALTH_PROBE_CONNECT_TIMEOUT",
        ),
        ("OKOME_HEALTH_EXPECT_BODY", "OKOME_HEALTH_PROBE_EXPECT_BODY"),
        (
            "OKOME_HEALTH_EXPECT_STATUS",
            "OKOME_HEALTH_PROBE_EXPECT_STATUS",
        ),
        ("OKOME_HEALTH_FALL", "OKOME_HEALTH_PROBE_FALL"),
        ("OKOME_HEALTH_GATE_FILE", "OKOME_HEALTH_PROBE_GATE_FILE"),
        ("OKOME_HEALTH_HOLD_DOWN", "OKOME_HEALTH_PROBE_HOLD_DOWN"),
        (
            "OKOME_HEALTH_LOCAL_TIMEOUT",
            "OKOME_HEALTH_PROBE_LOCAL_TIMEOUT",
        ),
        ("OKOME_HEALTH_LOCAL_URL", "OKOME_HEALTH_PROBE_LOCAL_URL"),
        ("OKOME_HEALTH_METRICS_DIR", "OKOME_HEALTH_PROBE_METRICS_DIR"),
        ("OKOME_HEALTH_NODE", "OKOME_HEALTH_PROBE_NODE"),
        ("OKOME_HEALTH_PIN_FILE", "OKOME_HEALTH_PROBE_PIN_FILE"),
        (
            "OKOME_HEALTH_RECHECK_PAUSE",
            "OKOME_HEALTH_PROBE_RECHECK_PAUSE",
        ),
        (
            "OKOME_HEALTH_REDIS_TIMEOUT",
            "OKOME_HEALTH_PROBE_REDIS_TIMEOUT",
        ),
        ("OKOME_HEALTH_REDIS_URL", "OKOME_HEALTH_PROBE_REDIS_URL"),
        ("OKOME_HEALTH_RISE", "OKOME_HEALTH_PROBE_RISE"),
        ("OKOME_HEALTH_STATE_DIR", "OKOME_HEALTH_PROBE_STATE_DIR"),
        ("OKOME_HEALTH_TIMEOUT", "OKOME_HEALTH_PROBE_TIMEOUT"),
        ("OKOME_HEALTH_URL", "OKOME_HEALTH_PROBE_URL"),
    ],
    lenient_defaults_flag: Some("--check-local"),
};

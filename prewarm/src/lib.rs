//! okome-prewarm: predictive pre-warming of the nginx edge cache.
//!
//! Every two minutes (systemd timer) it reads the new tail of the `okome`
//! access log, counts real user demand for the safe UI paths (never its own
//! requests, monitors or `/api/`), ranks paths with the seed-003 predictor,
//! and sends `HEAD`s for the top N to the local nginx — as a real browser
//! would ask, so the variant users fetch is the one stored — within an
//! origin budget (token bucket, timeout, bounded retries, run deadline,
//! emergency stop). The node holding the keepalived VIP shares its plan
//! through Redis so the standby warms the same paths. The library holds
//! all logic (the command line in [`cli`], the validated settings in
//! [`config`], one run in [`run`]); `main.rs` hands them to the shared
//! start-up.

pub mod bucket;
pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod pathsafe;
pub mod plan_store;
pub mod rank;
pub mod report;
pub mod run;
pub mod state;
pub mod tail;
pub mod target;
pub mod vip;
pub mod warm;

pub use cli::command;
pub use config::Config;
pub use error::{EXIT_EMERGENCY_STOP, Error};
pub use run::run;

/// The version sent in the User-Agent (`okome-prewarm/<version>`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The tool's name, for logs and errors.
pub const TOOL: &str = "okome-prewarm";

/// How the shared start-up (`okome_common::tool`) runs this tool. Its
/// variables were `OKOME_WARM_*`, `OKOME_NGINX_LOG`, `OKOME_NGINX_LOG_FORMAT`
/// and `OKOME_METRICS_DIR` before they took the tool's name: the old names,
/// in the environment or an installed defaults file, still work.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_PREWARM_",
    env_aliases: &[
        ("OKOME_METRICS_DIR", "OKOME_PREWARM_METRICS_DIR"),
        ("OKOME_NGINX_LOG", "OKOME_PREWARM_LOG"),
        ("OKOME_NGINX_LOG_FORMAT", "OKOME_PREWARM_LOG_FORMAT"),
        (
            "OKOME_WARM_ACCEPT_ENCODING",
            "OKOME_PREWARM_ACCEPT_ENCODING",
        ),
        ("OKOME_WARM_BACKOFF_MS", "OKOME_PREWARM_BACKOFF_MS"),
        ("OKOME_WARM_DEADLINE_SECS", "OKOME_PREWARM_DEADLINE_SECS"),
        ("OKOME_WARM_EMERGENCY_MS", "OKOME_PREWARM_EMERGENCY_MS"),
        ("OKOME_WARM_EXCLUDE_UA", "OKOME_PREWARM_EXCLUDE_UA"),
        ("OKOME_WARM_GATE_FILE", "OKOME_PREWARM_GATE_FILE"),
        ("OKOME_WARM_HOST", "OKOME_PREWARM_HOST"),
        ("OKOME_WARM_MAX_ERRORS", "OKOME_PREWARM_MAX_ERRORS"),
        ("OKOME_WARM_MAX_RPS", "OKOME_PREWARM_MAX_RPS"),
        ("OKOME_WARM_MAX_TOTAL_RPS", "OKOME_PREWARM_MAX_TOTAL_RPS"),
        ("OKOME_WARM_PLAN_KEY", "OKOME_PREWARM_PLAN_KEY"),
        ("OKOME_WARM_PLAN_TTL", "OKOME_PREWARM_PLAN_TTL"),
        (
            "OKOME_WARM_QUARANTINE_AFTER",
            "OKOME_PREWARM_QUARANTINE_AFTER",
        ),
        (
            "OKOME_WARM_QUARANTINE_SECS",
            "OKOME_PREWARM_QUARANTINE_SECS",
        ),
        ("OKOME_WARM_REDIS", "OKOME_PREWARM_REDIS"),
        ("OKOME_WARM_REFRESH", "OKOME_PREWARM_REFRESH"),
        ("OKOME_WARM_REFRESH_AFTER", "OKOME_PREWARM_REFRESH_AFTER"),
        ("OKOME_WARM_RETRIES", "OKOME_PREWARM_RETRIES"),
        ("OKOME_WARM_STATE_DIR", "OKOME_PREWARM_STATE_DIR"),
        ("OKOME_WARM_STRATEGY", "OKOME_PREWARM_STRATEGY"),
        ("OKOME_WARM_TAIL_BYTES", "OKOME_PREWARM_TAIL_BYTES"),
        ("OKOME_WARM_TARGET", "OKOME_PREWARM_TARGET"),
        ("OKOME_WARM_TIMEOUT_MS", "OKOME_PREWARM_TIMEOUT_MS"),
        ("OKOME_WARM_TOP_N", "OKOME_PREWARM_TOP_N"),
        ("OKOME_WARM_VIP", "OKOME_PREWARM_VIP"),
        ("OKOME_WARM_WORKERS", "OKOME_PREWARM_WORKERS"),
    ],
    lenient_defaults_flag: None,
};

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
/// variables are `OKOME_WARM_*` plus `OKOME_NGINX_LOG`,
/// `OKOME_NGINX_LOG_FORMAT` and `OKOME_METRICS_DIR`, as installed defaults
/// files name them (no rename yet: see docs/design.md, "Configuration").
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_WARM_",
    env_aliases: &[],
    lenient_defaults_flag: None,
};

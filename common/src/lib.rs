//! Shared pieces of the OKOME cache-node tools.
//!
//! Only what at least two tools really use lives here, each part behind a
//! Cargo feature so a lean tool links nothing it does not need:
//! `root`, `paths` (the node paths table), `exit`, `defaults`, `duration`,
//! `host` and `time` (always), `tool` (the one start-up every binary uses), `fs` (atomic writes, run locks),
//! `log` (journald-friendly stderr logging), `metrics` (Prometheus textfiles),
//! `http` (ureq, no TLS, behind one deadline and the toolkit's error words: [`fetch`]),
//! `redis` (the `redis` crate behind one deadline: [`redis_client`]).
//! The access-log parser is its own crate, okome-accesslog.

pub mod defaults;
pub mod duration;
pub mod exit;
pub mod host;
pub mod paths;
pub mod root;
pub mod text;
pub mod time;

#[cfg(feature = "http")]
pub mod fetch;
#[cfg(feature = "fs")]
pub mod fsutil;
#[cfg(feature = "log")]
pub mod logging;
#[cfg(feature = "redis")]
pub mod net;
#[cfg(feature = "metrics")]
pub mod prom;
#[cfg(feature = "redis")]
pub mod redis_client;
#[cfg(feature = "tool")]
pub mod tool;

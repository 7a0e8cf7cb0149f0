//! Shared pieces of the OKOME cache-node tools.
//!
//! Only what at least two tools really use lives here, each part behind a
//! Cargo feature so a lean tool links nothing it does not need:
//! `root`, `exit`, `host` and `time` (always), `fs` (atomic writes, run locks),
//! `log` (journald-friendly stderr logging), `metrics` (Prometheus textfiles),
//! `http` (a deadline-bounded plain-HTTP GET/HEAD client), `redis` (a tiny
//! RESP client). The access-log parser is its own crate, okome-accesslog.

pub mod defaults;
pub mod exit;
pub mod host;
pub mod root;
pub mod text;
pub mod time;

#[cfg(feature = "fs")]
pub mod fsutil;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "log")]
pub mod logging;
#[cfg(any(feature = "http", feature = "redis"))]
pub mod net;
#[cfg(feature = "metrics")]
pub mod prom;
#[cfg(feature = "redis")]
pub mod redis;

//! Sharing the active node's ranked list with the standby through Redis.
//!
//! Spoken through okome-common's small RESP client ([`okome_common::redis`]):
//! `AUTH`, `SELECT`, `SET … EX` and `GET` on one short-lived connection with
//! one deadline, instead of the `redis` crate's parser, URL and connection
//! machinery on a binary that must stay small for the Pi. The plan is JSON
//! with a TTL, so a dead active node's plan ages out by itself; the standby
//! re-validates every path it reads (the backend is trusted less than our
//! own code).

use okome_common::redis::{Connection, Reply};
use serde::{Deserialize, Serialize};
use std::io;
use std::time::Duration;

pub use okome_common::redis::RedisUrl;

/// Default Redis key of the plan.
pub const DEFAULT_KEY: &str = "okome:prewarm:plan";
/// Largest plan accepted from Redis (bytes).
pub const MAX_PLAN_BYTES: usize = 256 * 1024;

/// One connection for one exchange, refusing values larger than a plan.
fn open(url: &RedisUrl, timeout: Duration) -> io::Result<Connection> {
    let mut conn = Connection::open(url, timeout).map_err(|e| io::Error::other(e.to_string()))?;
    conn.set_max_bulk(MAX_PLAN_BYTES);
    Ok(conn)
}

/// The shared plan: what the active node would warm, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPlan {
    /// Format version.
    pub version: u32,
    /// Who published it (host name, for the standby's log line).
    pub node: String,
    /// Unix time of publication.
    pub generated: i64,
    /// Strategy used.
    pub strategy: String,
    /// Paths, best first, already normalised.
    pub paths: Vec<String>,
}

/// Publish `plan` under `key` with a TTL.
pub fn publish(
    url: &RedisUrl,
    key: &str,
    plan: &SharedPlan,
    ttl_secs: u64,
    timeout: Duration,
) -> io::Result<()> {
    let body = serde_json::to_vec(plan).map_err(io::Error::other)?;
    open(url, timeout)?
        .command_ok(&[
            b"SET",
            key.as_bytes(),
            &body,
            b"EX",
            ttl_secs.to_string().as_bytes(),
        ])
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Fetch the plan under `key`; `Ok(None)` when there is none (expired).
pub fn fetch(url: &RedisUrl, key: &str, timeout: Duration) -> io::Result<Option<SharedPlan>> {
    match open(url, timeout)?
        .command(&[b"GET", key.as_bytes()])
        .map_err(|e| io::Error::other(e.to_string()))?
    {
        Reply::Nil => Ok(None),
        Reply::Bulk(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("plan in redis key {key}: {e}"),
            )
        }),
        other => Err(io::Error::other(format!(
            "redis GET: unexpected reply {}",
            other.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okome_testkit::FakeRedis;

    /// A fake Redis on loopback answering `GET` with `answer`.
    fn fake(answer: &'static [u8]) -> RedisUrl {
        FakeRedis::always(answer).url().parse().unwrap()
    }

    #[test]
    fn fetch_reads_a_plan_no_plan_or_refuses_an_oversized_one() {
        let timeout = Duration::from_secs(5);
        assert_eq!(
            fetch(&fake(b"$-1\r\n"), DEFAULT_KEY, timeout).unwrap(),
            None
        );
        let plan = fetch(
            &fake(b"$68\r\n{\"version\":1,\"node\":\"a\",\"generated\":1,\"strategy\":\"s\",\"paths\":[\"/x\"]}\r\n"),
            DEFAULT_KEY,
            timeout,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (plan.node.as_str(), plan.paths.as_slice()),
            ("a", &["/x".to_string()][..])
        );
        let error = fetch(&fake(b"$300000\r\n"), DEFAULT_KEY, timeout).unwrap_err();
        assert!(error.to_string().contains("cap"), "{error}");
    }
}

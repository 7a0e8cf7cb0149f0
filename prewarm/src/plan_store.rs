//! Sharing the active node's ranked list with the standby through Redis.
//!
//! Spoken through okome-common's Redis connection
//! ([`okome_common::redis_client`], the `redis` crate underneath): `AUTH`,
//! `SELECT`, then `SET … EX` or `GET` on one short-lived connection with one
//! deadline. The plan is JSON with a TTL, so a dead active node's plan ages
//! out by itself; the standby refuses one over [`MAX_PLAN_BYTES`] and
//! re-validates every path it reads (the backend is trusted less than our
//! own code).

use okome_common::redis_client::{Connection, cmd};
use serde::{Deserialize, Serialize};
use std::io;
use std::time::Duration;

pub use okome_common::redis_client::RedisUrl;

/// Default Redis key of the plan.
pub const DEFAULT_KEY: &str = "okome:prewarm:plan";
/// Largest plan accepted from Redis (bytes).
pub const MAX_PLAN_BYTES: usize = 256 * 1024;

fn redis_error(error: okome_common::redis_client::RedisError) -> io::Error {
    io::Error::other(error.to_string())
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
    Connection::open(url, timeout)
        .and_then(|mut conn| conn.query_ok(cmd("SET").arg(key).arg(body).arg("EX").arg(ttl_secs)))
        .map_err(redis_error)
}

/// Fetch the plan under `key`; `Ok(None)` when there is none (expired).
pub fn fetch(url: &RedisUrl, key: &str, timeout: Duration) -> io::Result<Option<SharedPlan>> {
    let value: Option<Vec<u8>> = Connection::open(url, timeout)
        .and_then(|mut conn| conn.query(cmd("GET").arg(key)))
        .map_err(redis_error)?;
    match value {
        None => Ok(None),
        Some(data) if data.len() > MAX_PLAN_BYTES => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "plan in redis key {key}: a {}-byte value, over the {MAX_PLAN_BYTES}-byte cap",
                data.len()
            ),
        )),
        Some(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("plan in redis key {key}: {e}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okome_testkit::FakeRedis;

    /// A fake Redis on loopback answering `GET` with `answer`.
    fn fake(answer: Vec<u8>) -> RedisUrl {
        FakeRedis::always(&answer).url().parse().unwrap()
    }

    #[test]
    fn fetch_reads_a_plan_no_plan_or_refuses_an_oversized_one() {
        let timeout = Duration::from_secs(5);
        assert_eq!(
            fetch(&fake(b"$-1\r\n".to_vec()), DEFAULT_KEY, timeout).unwrap(),
            None
        );
        let plan = fetch(
            &fake(b"$68\r\n{\"version\":1,\"node\":\"a\",\"generated\":1,\"strategy\":\"s\",\"paths\":[\"/x\"]}\r\n".to_vec()),
            DEFAULT_KEY,
            timeout,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (plan.node.as_str(), plan.paths.as_slice()),
            ("a", &["/x".to_string()][..])
        );
        let mut big = b"$300000\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 300_000));
        big.extend_from_slice(b"\r\n");
        let error = fetch(&fake(big), DEFAULT_KEY, timeout).unwrap_err();
        assert!(error.to_string().contains("cap"), "{error}");
    }
}

//! The optional Redis heartbeat: `SET okome:health:{node} <json> EX 30`.
//!
//! One connection through okome-common's Redis connection
//! ([`okome_common::redis_client`], the `redis` crate underneath): `AUTH` and
//! `SELECT` when the URL asks for them, then the `SET`, all under one short
//! deadline. Whatever happens here never touches the gate: the run reports
//! the error and the caller logs it once per outage.

use std::time::Duration;

use okome_common::redis_client::{Connection, cmd};
pub use okome_common::redis_client::{RedisError as HeartbeatError, RedisUrl};

/// Seconds the heartbeat key lives (seed: "Health: 30 sec").
pub const TTL_SECONDS: u32 = 30;

/// Send one heartbeat within `timeout`.
pub fn send(
    url: &RedisUrl,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Result<(), HeartbeatError> {
    Connection::open(url, timeout)?
        .query_ok(cmd("SET").arg(key).arg(value).arg("EX").arg(TTL_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use okome_testkit::FakeRedis;
    use okome_testkit::redis::resp;

    #[test]
    fn the_heartbeat_is_auth_select_then_set_ex_30() {
        let sent = "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*5\r\n$3\r\nSET\r\n$14\r\nokome:health:a\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n30\r\n";
        let server = FakeRedis::always(&resp::ok());
        let url: RedisUrl = format!("redis://u:p@{}/3", server.addr()).parse().unwrap();
        send(&url, "okome:health:a", "v", Duration::from_secs(5)).unwrap();
        assert_eq!(server.raw(), sent);
    }
}

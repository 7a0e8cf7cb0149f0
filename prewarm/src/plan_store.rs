//! Sharing the active node's ranked list with the standby through Redis.
//!
//! Hand-written RESP over a `TcpStream` instead of the `redis` crate: we
//! need `AUTH`, `SELECT`, `SET … EX` and `GET` on one short-lived
//! connection, which is ~100 lines here versus the crate's parser, URL and
//! connection machinery on a binary that must stay small for the Pi. The
//! plan is JSON with a TTL, so a dead active node's plan ages out by
//! itself; the standby re-validates every path it reads (the backend is
//! trusted less than our own code).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Default Redis key of the plan.
pub const DEFAULT_KEY: &str = "okome:prewarm:plan";
/// Largest plan accepted from Redis (bytes).
pub const MAX_PLAN_BYTES: usize = 256 * 1024;

/// `redis://[[user]:password@]host[:port][/db]` (a user for Redis 6 ACLs:
/// the shipped redis.conf disables the `default` user).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address.
    pub host: String,
    /// Port (6379 by default).
    pub port: u16,
    /// Optional ACL user name (`AUTH user password`).
    pub user: Option<String>,
    /// Optional password (`AUTH`).
    pub password: Option<String>,
    /// Database number (`SELECT`).
    pub db: u32,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        write!(f, "redis://{user}{}:{}/{}", self.host, self.port, self.db)
    }
}

impl RedisUrl {
    /// Parse the URL; errors name what is wrong, never the password.
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let rest = text
            .strip_prefix("redis://")
            .ok_or("redis URL must start with redis://")?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (
                hp,
                db.parse().map_err(|_| "redis URL: bad database number")?,
            ),
            None => (rest, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| "redis URL: bad port")?)
            }
            _ => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("redis URL: no host".into());
        }
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            user,
            password,
            db,
        })
    }

    fn addr(&self) -> io::Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no address", self.host),
                )
            })
    }
}

/// A reply we care about.
#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Simple(String),
    Bulk(Option<Vec<u8>>),
    Int(i64),
}

/// One short-lived Redis connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(url: &RedisUrl, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&url.addr()?, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
        };
        match (&url.user, &url.password) {
            (Some(user), Some(password)) => {
                conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])?;
            }
            (None, Some(password)) => {
                conn.call(&[b"AUTH", password.as_bytes()])?;
            }
            _ => {}
        }
        if url.db != 0 {
            conn.call(&[b"SELECT", url.db.to_string().as_bytes()])?;
        }
        Ok(conn)
    }

    fn call(&mut self, args: &[&[u8]]) -> io::Result<Resp> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        self.read_reply()
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "redis: truncated reply",
            ));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "redis: non-UTF-8 reply line"))
    }

    fn read_reply(&mut self) -> io::Result<Resp> {
        let line = self.read_line()?;
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("redis: {why}"));
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" => Ok(Resp::Simple(rest.to_string())),
            "-" => Err(io::Error::other(format!("redis error: {rest}"))),
            ":" => rest.parse().map(Resp::Int).map_err(|_| bad("bad integer")),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad("bad bulk length"))?;
                if len < 0 {
                    return Ok(Resp::Bulk(None));
                }
                let len = usize::try_from(len).map_err(|_| bad("bad bulk length"))?;
                if len > MAX_PLAN_BYTES {
                    return Err(bad("value larger than a plan can be"));
                }
                let mut data = vec![0u8; len + 2];
                io::Read::read_exact(&mut self.reader, &mut data)?;
                data.truncate(len);
                Ok(Resp::Bulk(Some(data)))
            }
            _ => Err(bad("unexpected reply type")),
        }
    }
}

use std::io::Read as _;

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
    let mut conn = Conn::open(url, timeout)?;
    match conn.call(&[
        b"SET",
        key.as_bytes(),
        &body,
        b"EX",
        ttl_secs.to_string().as_bytes(),
    ])? {
        Resp::Simple(ok) if ok == "OK" => Ok(()),
        other => Err(io::Error::other(format!(
            "redis SET: unexpected reply {other:?}"
        ))),
    }
}

/// Fetch the plan under `key`; `Ok(None)` when there is none (expired).
pub fn fetch(url: &RedisUrl, key: &str, timeout: Duration) -> io::Result<Option<SharedPlan>> {
    let mut conn = Conn::open(url, timeout)?;
    match conn.call(&[b"GET", key.as_bytes()])? {
        Resp::Bulk(None) => Ok(None),
        Resp::Bulk(Some(data)) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("plan in redis key {key}: {e}"),
            )
        }),
        other => Err(io::Error::other(format!(
            "redis GET: unexpected reply {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_without_leaking_the_password() {
        let u = RedisUrl::parse("redis://:s3cret@10.213.0.19:6380/2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("10.213.0.19", 6380, 2));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert!(!format!("{u:?}").contains("s3cret"));
        let u = RedisUrl::parse("redis://prewarm:pw@127.0.0.1:7000").unwrap();
        assert_eq!(
            (u.user.as_deref(), u.password.as_deref(), u.port),
            (Some("prewarm"), Some("pw"), 7000)
        );
        let u = RedisUrl::parse("redis://127.0.0.1").unwrap();
        assert_eq!((u.port, u.db, u.password, u.user), (6379, 0, None, None));
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://x:notaport").is_err());
        assert!(RedisUrl::parse("redis://").is_err());
    }

    #[test]
    fn resp_replies_parse() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap();
            conn.write_all(b"$5\r\nhello\r\n").unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let url = RedisUrl::parse(&format!("redis://{addr}")).unwrap();
        let mut conn = Conn::open(&url, Duration::from_secs(2)).unwrap();
        let reply = conn.call(&[b"GET", b"k"]).unwrap();
        assert_eq!(reply, Resp::Bulk(Some(b"hello".to_vec())));
        assert_eq!(server.join().unwrap(), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}

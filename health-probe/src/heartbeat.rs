//! The optional Redis heartbeat: `SET okome:health:{node} <json> EX 30`.
//!
//! One pipelined write (`AUTH`/`SELECT` when the URL asks for them, then the
//! `SET`) and one read of as many simple replies, spoken in RESP by hand over
//! a `TcpStream` with one short deadline. The `redis` crate would bring a
//! connection manager, URL and value machinery for a single command; RESP for
//! this is ~100 lines. Whatever happens here never touches the gate: the run
//! reports the error and the caller logs it once per outage.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Seconds the heartbeat key lives (seed: "Health: 30 sec").
pub const TTL_SECONDS: u32 = 30;

/// A parsed `redis://[[user]:password@]host[:port][/db]` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address.
    pub host: String,
    /// Port (6379 when not written).
    pub port: u16,
    /// ACL user name, if any.
    pub user: Option<String>,
    /// Password, if any (never displayed).
    pub password: Option<String>,
    /// Database number, if not 0.
    pub db: Option<u32>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl fmt::Display for RedisUrl {
    /// The URL without its password, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Never echo the URL back: it may hold a password.
        let rest = text.strip_prefix("redis://").ok_or(
            "expected redis://[[user]:password@]host[:port][/db] (no TLS, no unix socket)",
        )?;
        let (authority, db) = match rest.split_once('/') {
            Some((authority, "")) => (authority, None),
            Some((authority, db)) => (
                authority,
                Some(
                    db.parse::<u32>()
                        .map_err(|_| "the /db part must be a number")?,
                ),
            ),
            None => (rest, None),
        };
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((credentials, hostport)) => (Some(credentials), hostport),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
                let decode = |part: &str| {
                    percent_decode(part).ok_or("bad %-escape in the credentials".to_string())
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let password = Some(decode(password)?).filter(|p| !p.is_empty());
                (user, password)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("no host in the redis URL".into());
        }
        let port = match port {
            None => 6379,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("bad port in the redis URL")?,
        };
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            user,
            password,
            db: db.filter(|d| *d != 0),
        })
    }
}

/// Why a heartbeat failed.
#[derive(Debug)]
pub enum HeartbeatError {
    /// The deadline passed.
    Timeout,
    /// Socket-level failure.
    Io(io::Error),
    /// Redis answered with an error or something unexpected.
    Redis(String),
    /// The host name did not resolve.
    Resolve(String),
}

impl fmt::Display for HeartbeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeartbeatError::Timeout => write!(f, "timeout"),
            HeartbeatError::Io(error) => write!(f, "{error}"),
            HeartbeatError::Redis(reply) => write!(f, "redis replied {reply:?}"),
            HeartbeatError::Resolve(why) => write!(f, "name resolution failed: {why}"),
        }
    }
}

fn io_error(error: io::Error) -> HeartbeatError {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HeartbeatError::Timeout,
        _ => HeartbeatError::Io(error),
    }
}

/// Append one RESP array-of-bulk-strings command to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The commands for one heartbeat, pipelined.
pub fn commands(url: &RedisUrl, key: &str, value: &str) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut count = 0;
    if let Some(password) = &url.password {
        match &url.user {
            Some(user) => encode(&mut out, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
            None => encode(&mut out, &[b"AUTH", password.as_bytes()]),
        }
        count += 1;
    }
    if let Some(db) = url.db {
        encode(&mut out, &[b"SELECT", db.to_string().as_bytes()]);
        count += 1;
    }
    let ttl = TTL_SECONDS.to_string();
    encode(
        &mut out,
        &[
            b"SET",
            key.as_bytes(),
            value.as_bytes(),
            b"EX",
            ttl.as_bytes(),
        ],
    );
    (out, count + 1)
}

/// Check `replies` holds `count` `+OK` lines. `Ok(false)` = need more bytes.
pub fn replies_ok(replies: &[u8], count: usize) -> Result<bool, HeartbeatError> {
    let mut rest = replies;
    for _ in 0..count {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(false);
        };
        let line = &rest[..end];
        if line != b"+OK" {
            return Err(HeartbeatError::Redis(
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
        rest = &rest[end + 2..];
    }
    Ok(true)
}

/// Send one heartbeat within `timeout`.
pub fn send(
    url: &RedisUrl,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Result<(), HeartbeatError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HeartbeatError::Timeout)
    };
    // Names resolve within the same deadline: a hung resolver must not
    // push the run past the timer period.
    let addrs: Vec<SocketAddr> = okome_common::net::resolve_within(&url.host, url.port, deadline)
        .map_err(HeartbeatError::Resolve)?
        .ok_or(HeartbeatError::Timeout)?;
    let addr = addrs
        .first()
        .ok_or_else(|| HeartbeatError::Resolve("no address".into()))?;
    let mut stream = TcpStream::connect_timeout(addr, left()?).map_err(io_error)?;
    let (request, count) = commands(url, key, value);
    stream.set_write_timeout(Some(left()?)).map_err(io_error)?;
    stream.write_all(&request).map_err(io_error)?;
    let mut replies = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if replies_ok(&replies, count)? {
            return Ok(());
        }
        stream.set_read_timeout(Some(left()?)).map_err(io_error)?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(HeartbeatError::Redis(
                    "connection closed before the reply".into(),
                ));
            }
            Ok(n) => replies.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_display_without_the_password() {
        let url: RedisUrl = "redis://probe:s%40cret@10.0.0.9:6380/2".parse().unwrap();
        assert_eq!(url.user.as_deref(), Some("probe"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!((url.port, url.db), (6380, Some(2)));
        assert_eq!(url.to_string(), "redis://probe@10.0.0.9:6380/2");
        assert!(!format!("{url:?}").contains("cret"));
        let plain: RedisUrl = "redis://127.0.0.1".parse().unwrap();
        assert_eq!((plain.port, plain.db, plain.password), (6379, None, None));
        let legacy: RedisUrl = "redis://:pw@[::1]:7000/0".parse().unwrap();
        assert_eq!(
            (
                legacy.user,
                legacy.password.as_deref(),
                legacy.host.as_str()
            ),
            (None, Some("pw"), "::1")
        );
        for bad in [
            "http://h",
            "redis://",
            "redis://h:x",
            "redis://h/x",
            "redis://u:%zz@h",
        ] {
            assert!(bad.parse::<RedisUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pipeline_is_auth_select_set_in_resp() {
        let url: RedisUrl = "redis://u:p@h/3".parse().unwrap();
        let (bytes, count) = commands(&url, "okome:health:a", "v");
        assert_eq!(count, 3);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*5\r\n$3\r\nSET\r\n$14\r\nokome:health:a\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n30\r\n"
        );
    }

    #[test]
    fn replies_must_all_be_ok() {
        assert!(replies_ok(b"+OK\r\n+OK\r\n", 2).unwrap());
        assert!(!replies_ok(b"+OK\r\n+O", 2).unwrap());
        let error = replies_ok(b"-NOAUTH Authentication required.\r\n", 1).unwrap_err();
        assert!(error.to_string().contains("NOAUTH"), "{error}");
    }
}

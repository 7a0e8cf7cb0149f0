//! Redis for the tools: the `redis://` URL they are configured with, and one
//! short-lived `redis` crate connection (sync, RESP2, no pool) under one
//! deadline.
//!
//! okome-health-probe writes one heartbeat (`SET … EX`), okome-prewarm
//! shares its plan (`SET … EX` / `GET`), and the coming tools read far more
//! (INFO, CONFIG GET, ACL, FUNCTION LIST, SCAN): the protocol is the `redis`
//! crate's, built with `disable-client-setinfo` so a connection sends only
//! what the URL asks for (`AUTH user password`, `SELECT db`) before the
//! caller's commands. What is ours is the policy: the name resolves, the
//! TCP handshake, `AUTH`/`SELECT` and every later command share one
//! deadline, so a hung Redis costs exactly the configured time and never
//! delays the caller's real work; failures come back in the toolkit's words
//! (timeout, refused, what the server replied to which command); and the
//! password is never shown: [`RedisUrl`]'s `Debug` and `Display` leave it
//! out, no error repeats it, and the crate's `ConnectionInfo` (whose
//! `Debug` would print it) never leaves this module.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::net::{resolve_within, time_left};

pub use redis::{Cmd, FromRedisValue, Value, cmd};

/// A parsed `redis://[user[:password]@]host[:port][/db]` URL.
///
/// `user` names a Redis 6 ACL user (the shipped redis.conf disables the
/// `default` one); `redis://:password@host` is the legacy password-only form.
/// User and password may be %-escaped.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (6379 when not written).
    pub port: u16,
    /// ACL user name, if any.
    pub user: Option<String>,
    /// Password, if any (never displayed).
    pub password: Option<String>,
    /// Database number (`SELECT` when not 0).
    pub db: u32,
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
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
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

    /// Errors say what is wrong and never echo the URL: it may hold a password.
    fn from_str(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("redis://").ok_or(
            "expected redis://[user[:password]@]host[:port][/db] (no TLS, no unix socket)",
        )?;
        // Credentials first (a raw password may hold '/'), then host and db.
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
                let decode = |part: &str| {
                    percent_decode(part)
                        .ok_or("bad %-escape in the redis URL's credentials".to_string())
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let password = Some(decode(password)?).filter(|p| !p.is_empty());
                (user, password)
            }
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((hostport, "")) => (hostport, 0),
            Some((hostport, db)) => (
                hostport,
                db.parse::<u32>()
                    .map_err(|_| "the /db part of the redis URL must be a number")?,
            ),
            None => (rest, 0),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the redis host")?;
            match after {
                "" => (host, None),
                after => (
                    host,
                    Some(after.strip_prefix(':').ok_or("bad port in the redis URL")?),
                ),
            }
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
            db,
        })
    }
}

/// Why a Redis exchange failed. No variant ever holds the password.
#[derive(Debug)]
pub enum RedisError {
    /// The deadline passed.
    Timeout,
    /// The host name did not resolve.
    Resolve(String),
    /// Socket-level failure (refused, reset, …).
    Io(io::Error),
    /// The peer answered something that is not RESP, or not what the
    /// command answers.
    Protocol(String),
    /// A command got an error reply (`command` is its name only).
    Reply {
        /// The command's name (`AUTH`, `SET`, …), never its arguments.
        command: String,
        /// What Redis said.
        reply: String,
    },
}

impl RedisError {
    /// Whether nothing listened on the port.
    pub fn is_refused(&self) -> bool {
        matches!(self, RedisError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// The crate's error in the toolkit's words; `command` names what was
    /// sent (its first word; arguments may be secrets or someone's data).
    fn from_crate(error: redis::RedisError, command: &str) -> RedisError {
        use redis::ErrorKind as K;
        if error.is_timeout() {
            return RedisError::Timeout;
        }
        match error.kind() {
            K::IoError => RedisError::Io(match error.is_connection_dropped() {
                true => io::Error::new(io::ErrorKind::ConnectionReset, "connection closed"),
                false if error.is_connection_refusal() => io::ErrorKind::ConnectionRefused.into(),
                false => io::Error::other(error.to_string()),
            }),
            // The crate keeps no server text for a failed AUTH.
            K::AuthenticationFailed => RedisError::Reply {
                command: "AUTH".into(),
                reply:
                    "authentication failed: invalid user name or password, or the user is disabled"
                        .into(),
            },
            K::ParseError | K::TypeError | K::ClientError | K::InvalidClientConfig => {
                RedisError::Protocol(error.to_string())
            }
            _ => {
                let reply = match (error.code(), error.detail()) {
                    (Some(code), Some(detail)) => format!("{code} {detail}"),
                    (Some(code), None) => code.to_string(),
                    _ => error.to_string(),
                };
                // A refused SELECT fails during the connection setup.
                let command = if error.to_string().contains("switch database") {
                    "SELECT".to_string()
                } else {
                    command.to_ascii_uppercase()
                };
                RedisError::Reply { command, reply }
            }
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Timeout => write!(f, "timeout"),
            RedisError::Resolve(why) => write!(f, "name resolution failed: {why}"),
            RedisError::Io(error) => write!(f, "{error}"),
            RedisError::Protocol(why) => write!(f, "not a Redis answer: {why}"),
            RedisError::Reply { command, reply } => {
                write!(f, "redis {command} replied {reply:?}")
            }
        }
    }
}

impl std::error::Error for RedisError {}

/// One short-lived connection; everything on it ends by one deadline.
pub struct Connection {
    conn: redis::Connection,
    deadline: Instant,
}

impl fmt::Debug for Connection {
    // Not derived: the crate's connection is not shown (nor its password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connect to `url` with `timeout` for the whole connection's life
    /// (resolve, connect, `AUTH` and `SELECT` included).
    pub fn open(url: &RedisUrl, timeout: Duration) -> Result<Connection, RedisError> {
        let deadline = Instant::now() + timeout;
        // Names resolve within the same deadline (getaddrinfo has no timeout
        // of its own); the crate then gets an address, not a name.
        let addrs = resolve_within(&url.host, url.port, deadline)
            .map_err(RedisError::Resolve)?
            .ok_or(RedisError::Timeout)?;
        let mut last = RedisError::Resolve(format!("{}: no address", url.host));
        for addr in addrs {
            let info = redis::ConnectionInfo {
                addr: redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port()),
                redis: redis::RedisConnectionInfo {
                    db: i64::from(url.db),
                    username: url.user.clone(),
                    password: url.password.clone(),
                    ..Default::default()
                },
            };
            let wait = time_left(deadline).ok_or(RedisError::Timeout)?;
            let client = redis::Client::open(info)
                .map_err(|error| RedisError::from_crate(error, "connect"))?;
            match client.get_connection_with_timeout(wait) {
                Ok(conn) => return Ok(Connection { conn, deadline }),
                Err(error) => last = RedisError::from_crate(error, "AUTH"),
            }
        }
        Err(last)
    }

    /// Run one command within what is left of the deadline and convert its
    /// reply. An error reply is a [`RedisError::Reply`] naming the command.
    pub fn query<T: FromRedisValue>(&mut self, command: &Cmd) -> Result<T, RedisError> {
        let name = command_name(command);
        let wait = time_left(self.deadline).ok_or(RedisError::Timeout)?;
        let set = |conn: &redis::Connection| {
            conn.set_read_timeout(Some(wait))?;
            conn.set_write_timeout(Some(wait))
        };
        set(&self.conn).map_err(|error| RedisError::from_crate(error, &name))?;
        command
            .query(&mut self.conn)
            .map_err(|error| RedisError::from_crate(error, &name))
    }

    /// Run a command that must answer `+OK` (`SET`, …).
    pub fn query_ok(&mut self, command: &Cmd) -> Result<(), RedisError> {
        match self.query::<Value>(command)? {
            Value::Okay => Ok(()),
            Value::SimpleString(ok) if ok == "OK" => Ok(()),
            other => Err(RedisError::Reply {
                command: command_name(command),
                reply: describe(&other),
            }),
        }
    }

    /// The crate's connection, for what [`Connection::query`] does not cover
    /// (pipelines, SCAN iterators). Its read/write timeouts are those of the
    /// last [`Connection::query`]; set them from [`Connection::time_left`].
    pub fn raw(&mut self) -> &mut redis::Connection {
        &mut self.conn
    }

    /// Time left before the deadline (`None` once it has passed).
    pub fn time_left(&self) -> Option<Duration> {
        time_left(self.deadline)
    }
}

fn command_name(command: &Cmd) -> String {
    match command.args_iter().next() {
        Some(redis::Arg::Simple(bytes)) => String::from_utf8_lossy(bytes).to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// What kind of reply this is, for error messages (a value is never shown
/// whole: it may be large, or someone's data).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nil".into(),
        Value::Int(n) => format!(":{n}"),
        Value::BulkString(data) => format!("a {}-byte value", data.len()),
        Value::SimpleString(text) => format!("+{text}"),
        Value::Okay => "+OK".into(),
        Value::Array(items) => format!("an array of {}", items.len()),
        Value::ServerError(error) => format!("-{}", error.code()),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn urls_parse_and_display_without_the_password() {
        let url: RedisUrl = "redis://probe:s%40cret@10.0.0.9:6380/2".parse().unwrap();
        assert_eq!(url.user.as_deref(), Some("probe"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!((url.port, url.db), (6380, 2));
        assert_eq!(url.to_string(), "redis://probe@10.0.0.9:6380/2");
        assert!(!format!("{url:?}").contains("cret"));
        let plain: RedisUrl = "redis://127.0.0.1".parse().unwrap();
        assert_eq!(
            (plain.port, plain.db, plain.password, plain.user),
            (6379, 0, None, None)
        );
        let legacy: RedisUrl = "redis://:pw@[::1]:7000/0".parse().unwrap();
        assert_eq!(
            (
                legacy.user,
                legacy.password.as_deref(),
                legacy.host.as_str(),
                legacy.port
            ),
            (None, Some("pw"), "::1", 7000)
        );
        let acl: RedisUrl = "redis://prewarm:pw@127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            (acl.user.as_deref(), acl.password.as_deref(), acl.port),
            (Some("prewarm"), Some("pw"), 7000)
        );
        let slash: RedisUrl = "redis://u:a/b@h/1".parse().unwrap();
        assert_eq!((slash.password.as_deref(), slash.db), (Some("a/b"), 1));
        for bad in [
            "http://h",
            "redis://",
            "redis://h:x",
            "redis://x:notaport",
            "redis://h:0",
            "redis://h/x",
            "redis://[::1",
            "redis://u:%zz@h",
        ] {
            let error = bad.parse::<RedisUrl>().unwrap_err();
            assert!(error.contains("redis"), "{bad}: {error}");
        }
        let error = "redis://u:sec%zzret@h".parse::<RedisUrl>().unwrap_err();
        assert!(!error.contains("sec"), "{error}");
    }

    /// A scripted fake Redis on loopback: for each `(expect, answer)` it
    /// reads until it holds `expect` more bytes, then answers. Returns all
    /// it read.
    fn fake(script: Vec<(usize, &'static [u8])>) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            let mut want = 0;
            for (expect, answer) in script {
                want += expect;
                while got.len() < want {
                    let n = conn.read(&mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                }
                conn.write_all(answer).unwrap();
            }
            String::from_utf8(got).unwrap()
        });
        (addr.to_string(), server)
    }

    #[test]
    fn auth_and_select_go_out_first_then_the_command() {
        let setup = "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n";
        let set = "*5\r\n$3\r\nSET\r\n$14\r\nokome:health:a\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n30\r\n";
        let (addr, server) = fake(vec![
            (setup.len(), b"+OK\r\n+OK\r\n"),
            (set.len(), b"+OK\r\n"),
        ]);
        let url: RedisUrl = format!("redis://u:p@{addr}/3").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        conn.query_ok(cmd("SET").arg("okome:health:a").arg("v").arg("EX").arg(30))
            .unwrap();
        assert_eq!(server.join().unwrap(), format!("{setup}{set}"));
    }

    #[test]
    fn bulk_replies_come_back_and_errors_name_the_command() {
        let get = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let (addr, server) = fake(vec![(get.len(), b"$5\r\nhello\r\n")]);
        let url: RedisUrl = format!("redis://{addr}").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        let value: Option<Vec<u8>> = conn.query(cmd("GET").arg("k")).unwrap();
        assert_eq!(value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(server.join().unwrap(), get);

        let (addr, server) = fake(vec![(1, b"-WRONGPASS invalid username-password pair\r\n")]);
        let url: RedisUrl = format!("redis://probe:hunter2@{addr}").parse().unwrap();
        let error = Connection::open(&url, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AUTH") && error.contains("authentication failed"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        server.join().unwrap();

        let (addr, server) = fake(vec![(1, b"-NOAUTH Authentication required.\r\n")]);
        let url: RedisUrl = format!("redis://{addr}").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        let error = conn
            .query_ok(cmd("set").arg("k").arg("v"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("SET") && error.contains("NOAUTH"), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url: RedisUrl = format!("redis://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let started = Instant::now();
        let mut conn = Connection::open(&url, Duration::from_millis(300)).unwrap();
        let result = conn.query::<Value>(&cmd("PING"));
        let took = started.elapsed();
        assert!(matches!(result, Err(RedisError::Timeout)), "{result:?}");
        // The deadline bounds the call: generous upper bound for a busy machine.
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // AUTH against a silent server is bounded by the same deadline.
        let secret: RedisUrl = format!("redis://u:p@{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let result = Connection::open(&secret, Duration::from_millis(300));
        assert!(matches!(result, Err(RedisError::Timeout)), "{result:?}");
        drop(listener);
        let result = Connection::open(&url, Duration::from_secs(2));
        assert!(
            result.as_ref().is_err_and(RedisError::is_refused),
            "{result:?}"
        );
    }
}

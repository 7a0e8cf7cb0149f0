//! A tiny Redis client: the `redis://` URL, RESP over one short-lived
//! `TcpStream`, and one deadline for the whole connection.
//!
//! okome-health-probe writes one heartbeat (`SET … EX`) and okome-prewarm
//! shares its plan (`SET … EX` / `GET`): a handful of commands on a
//! connection that lives for one run. The `redis` crate would bring a
//! connection manager, URL and value machinery for that; this is RESP for
//! the replies they meet (simple, error, integer, bulk, nil). `AUTH`
//! and `SELECT` are queued on connect and sent in one write with the first
//! command, so a heartbeat is still one round trip. Resolve, connect, every
//! write and every read share one deadline, so a hung Redis costs exactly
//! the configured time and never delays the caller's real work. The URL's
//! `Debug` and `Display` never show the password, and no error repeats it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::net::{is_timeout, resolve_within, time_left};

/// Longest status/error/length line accepted before its `\r\n`.
const MAX_LINE: usize = 64 * 1024;
/// Default cap on one bulk reply (see [`Connection::set_max_bulk`]).
const DEFAULT_MAX_BULK: usize = 1024 * 1024;

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

/// One RESP reply, as far as the tools need them (no command they send
/// answers with an array, so arrays are refused rather than carried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …` (returned, not raised: the caller decides).
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`: no such key.
    Nil,
}

impl Reply {
    /// What kind of reply this is, for error messages (a value is never
    /// shown whole: it may be large, or someone's data).
    pub fn describe(&self) -> String {
        match self {
            Reply::Simple(text) => format!("+{text}"),
            Reply::Error(text) => format!("-{text}"),
            Reply::Integer(value) => format!(":{value}"),
            Reply::Bulk(data) => format!("a {}-byte value", data.len()),
            Reply::Nil => "nil".to_string(),
        }
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
    /// The peer answered something that is not RESP, or too much of it.
    Protocol(String),
    /// A command got an error or unexpected reply (`command` is its name only).
    Reply {
        /// The command's name (`AUTH`, `SET`, …), never its arguments.
        command: String,
        /// What Redis said.
        reply: String,
    },
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

fn io_error(error: io::Error) -> RedisError {
    if is_timeout(&error) {
        RedisError::Timeout
    } else {
        RedisError::Io(error)
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

/// Parse one reply from the start of `buf`: `Ok(None)` means more bytes are
/// needed; `Ok(Some((reply, used)))` says how many bytes it took.
pub fn parse_reply(buf: &[u8], max_bulk: usize) -> Result<Option<(Reply, usize)>, RedisError> {
    let bad = |why: &str| RedisError::Protocol(why.to_string());
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(bad("reply line over 64 KiB"));
        }
        return Ok(None);
    };
    let Some((&kind, rest)) = buf[..end].split_first() else {
        return Err(bad("empty reply line"));
    };
    let line = String::from_utf8_lossy(rest).into_owned();
    let used = end + 2;
    let number = |what: &str| {
        line.parse::<i64>()
            .map_err(|_| RedisError::Protocol(format!("bad {what} {line:?}")))
    };
    match kind {
        b'+' => Ok(Some((Reply::Simple(line), used))),
        b'-' => Ok(Some((Reply::Error(line), used))),
        b':' => Ok(Some((Reply::Integer(number("integer")?), used))),
        b'$' => {
            let Ok(len) = usize::try_from(number("bulk length")?) else {
                return Ok(Some((Reply::Nil, used)));
            };
            if len > max_bulk {
                return Err(RedisError::Protocol(format!(
                    "a {len}-byte value, over the {max_bulk}-byte cap"
                )));
            }
            let Some(data) = buf.get(used..used + len + 2) else {
                return Ok(None);
            };
            if !data.ends_with(b"\r\n") {
                return Err(bad("bulk value not followed by CRLF"));
            }
            Ok(Some((Reply::Bulk(data[..len].to_vec()), used + len + 2)))
        }
        b'*' if number("array length")? < 0 => Ok(Some((Reply::Nil, used))),
        b'*' => Err(bad(
            "an array reply (no command sent here answers with one)",
        )),
        _ => {
            let shown: String = String::from_utf8_lossy(&buf[..end])
                .chars()
                .take(40)
                .collect();
            Err(RedisError::Protocol(format!("reply {shown:?}")))
        }
    }
}

/// One short-lived connection; everything on it ends by one deadline.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    deadline: Instant,
    /// Commands written with the next one (`AUTH`, `SELECT`).
    queued: Vec<u8>,
    /// Names of the queued commands, each of which must answer `+OK`.
    queued_names: Vec<&'static str>,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    max_bulk: usize,
}

impl Connection {
    /// Connect to `url` with `timeout` for the whole connection's life
    /// (resolve and connect included); `AUTH` and `SELECT` as the URL asks
    /// go out with the first command.
    pub fn open(url: &RedisUrl, timeout: Duration) -> Result<Connection, RedisError> {
        let deadline = Instant::now() + timeout;
        // Names resolve within the same deadline: a hung resolver must not
        // push the caller past its timer period.
        let addrs = resolve_within(&url.host, url.port, deadline)
            .map_err(RedisError::Resolve)?
            .ok_or(RedisError::Timeout)?;
        let mut last = RedisError::Resolve(format!("{}: no address", url.host));
        let mut connected = None;
        for addr in addrs {
            let wait = time_left(deadline).ok_or(RedisError::Timeout)?;
            match TcpStream::connect_timeout(&addr, wait) {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(error) => last = io_error(error),
            }
        }
        let stream = connected.ok_or(last)?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            stream,
            deadline,
            queued: Vec::new(),
            queued_names: Vec::new(),
            buf: Vec::new(),
            max_bulk: DEFAULT_MAX_BULK,
        };
        if let Some(password) = &url.password {
            match &url.user {
                Some(user) => encode(
                    &mut conn.queued,
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                ),
                None => encode(&mut conn.queued, &[b"AUTH", password.as_bytes()]),
            }
            conn.queued_names.push("AUTH");
        }
        if url.db != 0 {
            encode(
                &mut conn.queued,
                &[b"SELECT", url.db.to_string().as_bytes()],
            );
            conn.queued_names.push("SELECT");
        }
        Ok(conn)
    }

    /// Refuse bulk replies over `bytes` (default 1 MiB) rather than
    /// allocate what a broken or hostile server announces.
    pub fn set_max_bulk(&mut self, bytes: usize) {
        self.max_bulk = bytes;
    }

    /// Send one command (after any queued `AUTH`/`SELECT`) and read its
    /// reply. An error reply comes back as [`Reply::Error`]; a failed
    /// `AUTH`/`SELECT` is a [`RedisError::Reply`].
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let mut out = std::mem::take(&mut self.queued);
        encode(&mut out, args);
        let wait = time_left(self.deadline).ok_or(RedisError::Timeout)?;
        self.stream
            .set_write_timeout(Some(wait))
            .map_err(RedisError::Io)?;
        self.stream.write_all(&out).map_err(io_error)?;
        for name in std::mem::take(&mut self.queued_names) {
            match self.read_reply()? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => return Err(unexpected(name, other)),
            }
        }
        self.read_reply()
    }

    /// Send a command that must answer `+OK` (`SET`, …).
    pub fn command_ok(&mut self, args: &[&[u8]]) -> Result<(), RedisError> {
        match self.command(args)? {
            Reply::Simple(ok) if ok == "OK" => Ok(()),
            other => {
                let name = args.first().map_or(String::new(), |name| {
                    String::from_utf8_lossy(name).to_ascii_uppercase()
                });
                Err(unexpected(&name, other))
            }
        }
    }

    fn read_reply(&mut self) -> Result<Reply, RedisError> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf, self.max_bulk)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let wait = time_left(self.deadline).ok_or(RedisError::Timeout)?;
            self.stream
                .set_read_timeout(Some(wait))
                .map_err(RedisError::Io)?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(RedisError::Protocol(
                        "connection closed before the reply".into(),
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_error(error)),
            }
        }
    }
}

fn unexpected(command: &str, reply: Reply) -> RedisError {
    let reply = match reply {
        Reply::Error(text) | Reply::Simple(text) => text,
        other => other.describe(),
    };
    RedisError::Reply {
        command: command.to_string(),
        reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let u: RedisUrl = "redis://:s3cret@10.213.0.19:6380/2".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("10.213.0.19", 6380, 2));
        assert!(!format!("{u:?}").contains("s3cret") && !u.to_string().contains("s3cret"));
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

    #[test]
    fn replies_of_every_kind_parse_and_partial_ones_wait() {
        let cap = 1024;
        for (raw, want) in [
            (&b"+OK\r\n"[..], Reply::Simple("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-3\r\n", Reply::Integer(-3)),
            (b"$5\r\nhello\r\n", Reply::Bulk(b"hello".to_vec())),
            (b"$0\r\n\r\n", Reply::Bulk(Vec::new())),
            (b"$-1\r\n", Reply::Nil),
            (b"*-1\r\n", Reply::Nil),
        ] {
            assert_eq!(
                parse_reply(raw, cap).unwrap(),
                Some((want, raw.len())),
                "{raw:?}"
            );
            for cut in 0..raw.len() {
                assert_eq!(
                    parse_reply(&raw[..cut], cap).unwrap(),
                    None,
                    "{raw:?}@{cut}"
                );
            }
        }
        assert!(parse_reply(b"$2000\r\n", cap).is_err());
        assert!(parse_reply(b"*2\r\n:1\r\n:2\r\n", cap).is_err());
        assert!(parse_reply(b"$2\r\nokXX", cap).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n", cap).is_err());
        assert!(parse_reply(b":x\r\n", cap).is_err());
    }

    /// A fake Redis on loopback: reads `expect` bytes, answers `answer`,
    /// returns what it read.
    fn fake(expect: usize, answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while got.len() < expect {
                let n = conn.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
            conn.write_all(answer).unwrap();
            String::from_utf8(got).unwrap()
        });
        (addr.to_string(), server)
    }

    #[test]
    fn auth_and_select_go_out_with_the_first_command() {
        let sent = "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*5\r\n$3\r\nSET\r\n$14\r\nokome:health:a\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n30\r\n";
        let (addr, server) = fake(sent.len(), b"+OK\r\n+OK\r\n+OK\r\n");
        let url: RedisUrl = format!("redis://u:p@{addr}/3").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        conn.command_ok(&[b"SET", b"okome:health:a", b"v", b"EX", b"30"])
            .unwrap();
        assert_eq!(server.join().unwrap(), sent);
    }

    #[test]
    fn bulk_replies_come_back_and_errors_name_the_command() {
        let get = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let (addr, server) = fake(get.len(), b"$5\r\nhello\r\n");
        let url: RedisUrl = format!("redis://{addr}").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        let reply = conn.command(&[b"GET", b"k"]).unwrap();
        assert_eq!(reply, Reply::Bulk(b"hello".to_vec()));
        assert_eq!(server.join().unwrap(), get);

        let (addr, server) = fake(1, b"-WRONGPASS invalid username-password pair\r\n");
        let url: RedisUrl = format!("redis://probe:hunter2@{addr}").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        let error = conn
            .command_ok(&[b"SET", b"k", b"v"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AUTH") && error.contains("WRONGPASS"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        server.join().unwrap();

        let (addr, server) = fake(1, b"-NOAUTH Authentication required.\r\n");
        let url: RedisUrl = format!("redis://{addr}").parse().unwrap();
        let mut conn = Connection::open(&url, Duration::from_secs(5)).unwrap();
        let error = conn
            .command_ok(&[b"set", b"k", b"v"])
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
        let result = conn.command(&[b"PING"]);
        assert!(matches!(result, Err(RedisError::Timeout)), "{result:?}");
        // Generous bound: the deadline must actually bound the call.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
        let result = Connection::open(&url, Duration::from_secs(2));
        assert!(
            matches!(&result, Err(RedisError::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused),
            "{result:?}"
        );
    }
}

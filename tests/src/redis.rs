//! Real redis-server on the shipped `configs/redis-backend/redis.conf`
//! rendered for the lab, and a minimal RESP client to query it (enough for
//! `CONFIG GET`, `SET`, `INFO`; no crate needed).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::net::wait_listening;
use crate::process::ProcessGuard;
use crate::render::LAB_REDIS_OPERATOR_PASSWORD;
use crate::root::LabRoot;

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Text of a simple or bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(s) => Some(s.clone()),
            Self::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A running redis-server.
#[derive(Debug)]
pub struct Redis {
    guard: ProcessGuard,
    port: u16,
}

impl Redis {
    /// Start redis-server on `conf`, listening on 127.0.0.1:`port`;
    /// panics with its log on failure.
    pub fn start(root: &LabRoot, conf: &Path, port: u16) -> Self {
        Self::try_start(root, conf, port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Redis::start`], returning redis' log on failure (the lab retries
    /// on another port when it says "Address already in use").
    pub fn try_start(root: &LabRoot, conf: &Path, port: u16) -> Result<Self, String> {
        let mut command = Command::new("redis-server");
        command.arg(conf);
        let mut guard = ProcessGuard::spawn(
            "redis-server",
            &mut command,
            Some(&root.path("/var/log/redis/lab-redis.log")),
        )
        .map_err(|e| format!("{e} (is redis-server installed? `cargo xtask test` installs it)"))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = guard.try_wait() {
                return Err(format!(
                    "redis-server exited at start ({status}):\n{}",
                    guard.log_tail(30)
                ));
            }
            // Ready = it is OUR redis: it knows the lab's operator password.
            let redis = Self { guard, port };
            if wait_listening(addr, Duration::from_millis(100))
                && matches!(redis.command(&["PING"]), Ok(Reply::Simple(ref s)) if s == "PONG")
            {
                return Ok(redis);
            }
            guard = redis.into_guard();
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer on {addr} within 10 s:\n{}",
                    guard.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn into_guard(self) -> ProcessGuard {
        self.guard
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The redis-server PID.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Run one command as the `operator` ACL user.
    pub fn command(&self, args: &[&str]) -> io::Result<Reply> {
        self.command_as("operator", LAB_REDIS_OPERATOR_PASSWORD, args)
    }

    /// Run one command after `AUTH user password`.
    pub fn command_as(&self, user: &str, password: &str, args: &[&str]) -> io::Result<Reply> {
        let stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        writer.write_all(&encode(&["AUTH", user, password]))?;
        if let Reply::Error(e) = read_reply(&mut reader)? {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("AUTH {user}: {e}"),
            ));
        }
        writer.write_all(&encode(args))?;
        read_reply(&mut reader)
    }

    /// `CONFIG GET name` → the value.
    pub fn config_get(&self, name: &str) -> io::Result<String> {
        match self.command(&["CONFIG", "GET", name])? {
            Reply::Array(Some(items)) if items.len() == 2 => {
                Ok(items[1].text().unwrap_or_default())
            }
            other => Err(io::Error::other(format!(
                "CONFIG GET {name}: unexpected reply {other:?}"
            ))),
        }
    }
}

/// Encode a command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Read one RESP reply.
pub fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(1.min(line.len()));
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad RESP line {line:?}"),
        )
    };
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(rest.parse().map_err(|_| bad())?),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; len as usize + 2];
                io::Read::read_exact(reader, &mut buf)?;
                buf.truncate(len as usize);
                Reply::Bulk(Some(buf))
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_reply(reader)?);
                }
                Reply::Array(Some(items))
            }
        }
        _ => return Err(bad()),
    })
}

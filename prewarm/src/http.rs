//! The warm target and a minimal HTTP/1.1 `HEAD` client.
//!
//! Hand-written over `TcpStream` rather than a client crate because prewarm
//! needs exactly one thing — send `HEAD <validated path>` with a handful of
//! headers to one configured host, read the status line and a few response
//! headers — and must never follow a redirect to somewhere else. A HEAD
//! response has no body, so the client reads up to the blank line and is
//! done. Target scheme, host and port come only from the configuration;
//! the path is the only part that came from the log, and it has been
//! through [`crate::pathsafe`] before it gets here.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response head read; a bigger one is malformed for our purpose.
const MAX_HEAD: usize = 16 * 1024;

/// Where warm requests go: `http://host[:port]` from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host as written (`127.0.0.1`, `[::1]`, `frontend.lan`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Value of the `Host` header.
    pub host_header: String,
}

/// Why a target string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Target {
    /// Parse `http://host[:port][/]`. Only plain HTTP (the LAN is plain
    /// HTTP; the target is normally the local nginx), no user info, no path.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let err = |why: &str| TargetError(format!("warm target {text:?}: {why}"));
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            err("must start with http:// (no TLS: the target is the local nginx)")
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(err("no host"));
        }
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(err(
                "only scheme, host and port are allowed (no path, query or user)",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| err("unclosed ["))?;
            addr.parse::<std::net::Ipv6Addr>()
                .map_err(|_| err("bad IPv6 address"))?;
            let port = match after {
                "" => 80,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| err("bad port"))?,
            };
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| err("bad port"))?),
                None => (authority, 80),
            };
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(err("bad host name"));
            }
            (host.to_string(), port)
        };
        if port == 0 {
            return Err(err("port 0"));
        }
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            host,
            port,
            host_header,
        })
    }

    /// Resolve to socket addresses (first one is used).
    pub fn resolve(&self) -> io::Result<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port).to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no address", self.host),
            )
        })
    }

    /// Whether every address of the target is loopback: the refresh bypass
    /// is only honoured from 127.0.0.1/::1, so `--refresh` requires this.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        match (host, self.port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<_> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
            }
            Err(_) => false,
        }
    }
}

/// What prewarm reads from a response head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `X-Cache-Status`, upper-cased.
    pub cache_status: Option<String>,
    /// `Retry-After` in seconds (the delta form; dates are ignored).
    pub retry_after: Option<u64>,
    /// The response set a cookie (a reason nginx will not cache it).
    pub set_cookie: bool,
    /// `Cache-Control` says `no-store`, `no-cache` or `private`.
    pub no_store: bool,
}

/// A request that produced no usable response.
#[derive(Debug)]
pub enum HttpError {
    /// Could not connect.
    Connect(io::Error),
    /// No complete answer within the timeout.
    Timeout,
    /// Connection broke mid-way.
    Io(io::Error),
    /// The answer was not HTTP/1.x as we know it.
    Malformed(&'static str),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connect: {e}"),
            HttpError::Timeout => f.write_str("timeout"),
            HttpError::Io(e) => write!(f, "i/o: {e}"),
            HttpError::Malformed(why) => write!(f, "malformed response: {why}"),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Build the request bytes. `path` must already be validated; the header
/// values are ours. Kept separate so tests can check the exact bytes.
pub fn request_bytes(target: &Target, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    debug_assert!(path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()));
    let mut req = format!("HEAD {path} HTTP/1.1\r\nHost: {}\r\n", target.host_header);
    for (name, value) in headers {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    req.into_bytes()
}

/// Send one `HEAD` and read the response head, all within `timeout`.
pub fn head(
    addr: SocketAddr,
    target: &Target,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, HttpError> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        if is_timeout(&e) {
            HttpError::Timeout
        } else {
            HttpError::Connect(e)
        }
    })?;
    let _ = stream.set_nodelay(true);
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HttpError::Timeout)
    };
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(HttpError::Io)?;
    stream
        .write_all(&request_bytes(target, path, headers))
        .map_err(|e| {
            if is_timeout(&e) {
                HttpError::Timeout
            } else {
                HttpError::Io(e)
            }
        })?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(HttpError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(HttpError::Malformed("connection closed before end of head")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(HttpError::Timeout),
            Err(e) => return Err(HttpError::Io(e)),
        }
        while let Some(end) = find_head_end(&buf) {
            let reply = parse_head(&buf[..end])?;
            if (100..200).contains(&reply.status) {
                buf.drain(..end);
                continue;
            }
            return Ok(reply);
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Malformed("response head too large"));
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parse a response head (status line + headers, up to the blank line).
pub fn parse_head(head: &[u8]) -> Result<Reply, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("not HTTP/1.x"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(HttpError::Malformed("bad status"))?;
    let mut reply = Reply {
        status,
        ..Reply::default()
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-cache-status" => reply.cache_status = Some(value.to_ascii_uppercase()),
            "retry-after" => reply.retry_after = value.parse().ok(),
            "set-cookie" => reply.set_cookie = true,
            "cache-control" => {
                let v = value.to_ascii_lowercase();
                if v.contains("no-store") || v.contains("no-cache") || v.contains("private") {
                    reply.no_store = true;
                }
            }
            _ => {}
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_only_scheme_host_port() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str()),
            ("127.0.0.1", 8080, "127.0.0.1:8080")
        );
        let t = Target::parse("http://frontend-cache/").unwrap();
        assert_eq!((t.port, t.host_header.as_str()), (80, "frontend-cache"));
        let t = Target::parse("http://[::1]:81").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 81));
        for bad in [
            "https://x",
            "x:80",
            "http://",
            "http://a/b",
            "http://a?x",
            "http://u@a",
            "http://a:0",
            "http://a:99999",
            "http://a b",
            "http://[::1",
            "http://a:80\r\nX: y",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_detection() {
        assert!(Target::parse("http://127.0.0.1:1").unwrap().is_loopback());
        assert!(Target::parse("http://[::1]:1").unwrap().is_loopback());
        assert!(!Target::parse("http://10.213.0.1:1").unwrap().is_loopback());
    }

    #[test]
    fn request_is_head_to_our_host_with_our_headers() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        let bytes = request_bytes(&t, "/assets/a.js?v=1", &[("X-OKOME-Warm", "1")]);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HEAD /assets/a.js?v=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-OKOME-Warm: 1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_heads_are_parsed() {
        let r = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nx-cache-status: miss\r\nSet-Cookie: a=b\r\nCache-Control: private, no-store\r\n\r\n").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.retry_after, Some(3));
        assert_eq!(r.cache_status.as_deref(), Some("MISS"));
        assert!(r.set_cookie && r.no_store);
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[test]
    fn head_against_a_real_listener_reads_status_and_headers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut b).unwrap();
                req.extend_from_slice(&b[..n]);
            }
            conn.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Cache-Status: HIT\r\n\r\n",
            )
            .unwrap();
            String::from_utf8(req).unwrap()
        });
        let t = Target::parse(&format!("http://{addr}")).unwrap();
        let reply = head(
            addr,
            &t,
            "/version",
            &[("User-Agent", "okome-prewarm/0")],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (reply.status, reply.cache_status.as_deref()),
            (200, Some("HIT"))
        );
        let req = server.join().unwrap();
        assert!(req.starts_with("HEAD /version HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("User-Agent: okome-prewarm/0\r\n"));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Target::parse(&format!("http://{addr}")).unwrap();
        let started = Instant::now();
        let result = head(addr, &t, "/", &[], Duration::from_millis(300));
        assert!(matches!(result, Err(HttpError::Timeout)), "{result:?}");
        // Generous bound: the timeout must actually bound the call.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }
}

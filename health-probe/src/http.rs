//! A deliberately tiny HTTP/1.1 GET client over `std::net::TcpStream`.
//!
//! The probe makes one plain-HTTP GET on the LAN per check and must give up
//! at an honest deadline: name resolution, connect, write and every read are
//! all bounded by what is left of one total deadline, so a hung orchestrator
//! (accepts, never answers) costs exactly the configured time. A client crate
//! would bring TLS plumbing, pools and redirects the probe never uses; this
//! is about 250 lines and adds a few KiB to the binary.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Largest response head accepted; health answers are tiny.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host as written (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when not written).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unusable URL {:?}: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

impl FromStr for HttpUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let fail = |why| UrlError {
            url: text.to_string(),
            why,
        };
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(fail(
                "https is not supported (the LAN is plain HTTP; no TLS is linked in)",
            ));
        }
        if !lower.starts_with("http://") {
            return Err(fail("expected http://host[:port]/path"));
        }
        let rest = &text["http://".len()..];
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(fail("user:password@ is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| fail("unclosed [ in host"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(fail("bad IPv6 address"));
            }
            (host, after)
        } else {
            match authority.find(':') {
                Some(at) => authority.split_at(at),
                None => (authority, ""),
            }
        };
        if host.is_empty() {
            return Err(fail("no host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(fail("bad character in host"));
        }
        let port = match port {
            "" => 80,
            with_colon => match with_colon.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) if port != 0 => port,
                _ => return Err(fail("bad port")),
            },
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(fail("spaces or control characters in path"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path,
        })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

impl HttpUrl {
    /// `host[:port]` as it belongs in a `Host` header.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Connect and total deadlines for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Longest wait for the TCP handshake.
    pub connect: Duration,
    /// Longest wait for the whole exchange, connect included.
    pub total: Duration,
}

/// A response: status and (possibly truncated) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// De-chunked body, at most the requested cap.
    pub body: Vec<u8>,
}

/// How a request failed, in the words a transition log line needs.
#[derive(Debug)]
pub enum FetchError {
    /// A deadline passed (`what` says during which step).
    Timeout(&'static str),
    /// Nothing listens on the port.
    Refused,
    /// Another connect failure (unreachable, reset, …).
    Connect(io::Error),
    /// The host name did not resolve.
    Resolve(String),
    /// The peer answered something that is not HTTP/1.x.
    Protocol(String),
    /// Reading or writing failed after connecting.
    Io(io::Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout(what) => write!(f, "timeout ({what})"),
            FetchError::Refused => write!(f, "connection refused"),
            FetchError::Connect(error) => write!(f, "connect failed: {error}"),
            FetchError::Resolve(why) => write!(f, "name resolution failed: {why}"),
            FetchError::Protocol(why) => write!(f, "not an HTTP answer: {why}"),
            FetchError::Io(error) => write!(f, "I/O error: {error}"),
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Time left before `deadline`, or a timeout error naming `what`.
fn left(deadline: Instant, what: &'static str) -> Result<Duration, FetchError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(FetchError::Timeout(what));
    }
    // A zero timeout means "block forever" to the socket API: never pass it.
    Ok((deadline - now).max(Duration::from_millis(1)))
}

/// Resolve `host`:`port` before `deadline`. IP literals never touch the
/// resolver; names are resolved on a helper thread because getaddrinfo has no
/// timeout of its own (the thread is left behind if it overruns; the process
/// ends soon after). `Ok(None)` means the deadline passed.
pub fn resolve_within(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Option<Vec<SocketAddr>>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(vec![SocketAddr::new(ip, port)]));
    }
    let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
        return Ok(None);
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let target = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(target.to_socket_addrs().map(Vec::from_iter));
    });
    match rx.recv_timeout(wait) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(Some(addrs)),
        Ok(Ok(_)) => Err(format!("{host}: no address")),
        Ok(Err(error)) => Err(format!("{host}: {error}")),
        Err(_) => Ok(None),
    }
}

fn resolve(url: &HttpUrl, deadline: Instant) -> Result<Vec<SocketAddr>, FetchError> {
    match resolve_within(&url.host, url.port, deadline) {
        Ok(Some(addrs)) => Ok(addrs),
        Ok(None) => Err(FetchError::Timeout("resolving the host")),
        Err(why) => Err(FetchError::Resolve(why)),
    }
}

fn connect(
    url: &HttpUrl,
    deadlines: &Deadlines,
    deadline: Instant,
) -> Result<TcpStream, FetchError> {
    let mut last = FetchError::Resolve(format!("{}: no address", url.host));
    for addr in resolve(url, deadline)? {
        let wait = left(deadline, "connecting")?.min(deadlines.connect);
        match TcpStream::connect_timeout(&addr, wait) {
            Ok(stream) => return Ok(stream),
            Err(error) if is_timeout(&error) => last = FetchError::Timeout("connecting"),
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                last = FetchError::Refused;
            }
            Err(error) => last = FetchError::Connect(error),
        }
    }
    Err(last)
}

/// One read bounded by `deadline`; returns 0 at end of stream.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, FetchError> {
    stream
        .set_read_timeout(Some(left(deadline, "waiting for the answer")?))
        .map_err(FetchError::Io)?;
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if is_timeout(&error) => {
                return Err(FetchError::Timeout("waiting for the answer"));
            }
            Err(error) => return Err(FetchError::Io(error)),
        }
    }
}

/// GET `url` within `deadlines`, keeping at most `max_body` bytes of body.
pub fn get(
    url: &HttpUrl,
    deadlines: &Deadlines,
    user_agent: &str,
    max_body: usize,
) -> Result<Response, FetchError> {
    let deadline = Instant::now() + deadlines.total;
    let mut stream = connect(url, deadlines, deadline)?;
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority()
    );
    stream
        .set_write_timeout(Some(left(deadline, "sending the request")?))
        .map_err(FetchError::Io)?;
    stream.write_all(request.as_bytes()).map_err(|error| {
        if is_timeout(&error) {
            FetchError::Timeout("sending the request")
        } else {
            FetchError::Io(error)
        }
    })?;

    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(FetchError::Protocol("response head over 16 KiB".into()));
        }
        if read_some(&mut stream, &mut buf, deadline)? == 0 {
            return Err(FetchError::Protocol(if buf.is_empty() {
                "connection closed without an answer".into()
            } else {
                "connection closed inside the response head".into()
            }));
        }
    };
    let head = Head::parse(&buf[..head_end])?;
    let mut body = buf.split_off(head_end);
    if head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Response {
            status: head.status,
            body: Vec::new(),
        });
    }
    loop {
        let done = match (head.chunked, head.content_length) {
            (true, _) => dechunk(&body).is_some_and(|(_, complete)| complete),
            (false, Some(length)) => body.len() >= length,
            (false, None) => false,
        };
        if done || body.len() >= max_body {
            break;
        }
        if read_some(&mut stream, &mut body, deadline)? == 0 {
            if let Some(length) = head.content_length.filter(|_| !head.chunked)
                && body.len() < length
            {
                return Err(FetchError::Protocol(
                    "body shorter than Content-Length".into(),
                ));
            }
            break;
        }
    }
    let mut body = if head.chunked {
        dechunk(&body)
            .ok_or_else(|| FetchError::Protocol("malformed chunked body".into()))?
            .0
    } else {
        body
    };
    if let Some(length) = head.content_length.filter(|_| !head.chunked) {
        body.truncate(length);
    }
    body.truncate(max_body);
    Ok(Response {
        status: head.status,
        body,
    })
}

/// The parts of a response head the probe uses.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
}

impl Head {
    fn parse(head: &[u8]) -> Result<Head, FetchError> {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut words = status_line.split(' ');
        let version = words.next().unwrap_or_default();
        let status = words.next().and_then(|code| {
            (code.len() == 3)
                .then(|| code.parse::<u16>().ok())
                .flatten()
        });
        let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
            let shown: String = status_line.chars().take(60).collect();
            return Err(FetchError::Protocol(format!("status line {shown:?}")));
        };
        let mut parsed = Head {
            status,
            content_length: None,
            chunked: false,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                parsed.content_length = Some(
                    value
                        .parse()
                        .map_err(|_| FetchError::Protocol(format!("Content-Length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                parsed.chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        Ok(parsed)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decode a chunked body received so far: `(data, complete)`, or `None` when
/// it is malformed. Incomplete input decodes as far as it goes.
fn dechunk(mut raw: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(raw, b"\r\n") else {
            return Some((out, false));
        };
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some((out, true));
        }
        if raw.len() < size {
            out.extend_from_slice(raw);
            return Some((out, false));
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size..)?;
        match raw {
            [b'\r', b'\n', rest @ ..] => raw = rest,
            [] | [b'\r'] => return Some((out, false)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpUrl {
        text.parse().unwrap()
    }

    #[test]
    fn urls_parse_to_host_port_and_path() {
        assert_eq!(
            url("http://192.168.86.25:8000/health"),
            HttpUrl {
                host: "192.168.86.25".into(),
                port: 8000,
                path: "/health".into()
            }
        );
        let plain = url("HTTP://localhost");
        assert_eq!((plain.port, plain.path.as_str()), (80, "/"));
        let v6 = url("http://[::1]:81/h?x=1#frag");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.path.as_str()),
            ("::1", 81, "/h?x=1")
        );
        assert_eq!(v6.authority(), "[::1]:81");
        assert_eq!(url("http://h?q").path, "/?q");
    }

    #[test]
    fn unusable_urls_say_why() {
        for (text, why) in [
            ("https://h/", "https is not supported"),
            ("ftp://h/", "expected http://"),
            ("http://:80/", "no host"),
            ("http://h:99999/", "bad port"),
            ("http://h:0/", "bad port"),
            ("http://u:p@h/", "user:password"),
            ("http://h/a b", "spaces"),
            ("http://[zz]/", "IPv6"),
            ("not a url", "expected http://"),
        ] {
            let error = text.parse::<HttpUrl>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
    }

    #[test]
    fn heads_give_status_length_and_encoding() {
        let head =
            Head::parse(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\n\r\n").unwrap();
        assert_eq!(
            head,
            Head {
                status: 503,
                content_length: Some(12),
                chunked: false
            }
        );
        let head = Head::parse(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(head.chunked);
        assert!(Head::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_decode_in_pieces() {
        assert_eq!(
            dechunk(b"2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\n\r\n"),
            Some((b"ok!!!".to_vec(), true))
        );
        assert_eq!(
            dechunk(b"2\r\nok\r\n3\r\n!"),
            Some((b"ok!".to_vec(), false))
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"2\r\nokXX"), None);
    }
}

//! A deliberately tiny plain-HTTP/1.1 client over `std::net::TcpStream`,
//! shared by okome-health-probe (one `GET` per check) and okome-prewarm
//! (`HEAD`s through the local nginx).
//!
//! Both tools talk plain HTTP on the LAN or loopback and need the same few
//! properties, which a client crate would bury under TLS plumbing, pools and
//! redirect handling: an honest deadline (resolve, connect, write and every
//! read are all bounded by what is left of one total deadline, so a hung
//! peer costs exactly the configured time), errors that say *how* it failed
//! (timeout, refused, other connect failure, DNS, not HTTP), redirects never
//! followed (a 3xx is just a status), only a path that passed URL validation
//! ever on the request line, and the response headers for the caller to read.
//! Bodies are read for `GET` only, de-chunked and capped.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::net::{is_timeout, resolve_within, time_left};

/// Largest response head accepted; the answers these tools read are tiny.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed `http://host[:port][/path]` URL (no TLS, no user info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host as written (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when not written).
    pub port: u16,
    /// Path and query, at least `/`; never spaces or control characters.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl UrlError {
    /// The reason alone, for callers that name the URL their own way.
    pub fn why(&self) -> &'static str {
        self.why
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unusable URL {:?}: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

/// Check a path for the request line: origin form, no spaces or controls.
fn checked_path(path: &str) -> Result<String, &'static str> {
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("spaces or control characters in path");
    }
    Ok(match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p if p.starts_with('/') => p.to_string(),
        _ => return Err("the path must start with /"),
    })
}

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
                "https is not supported, only http:// (the LAN is plain HTTP; no TLS is linked in)",
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
        let path = checked_path(path).map_err(fail)?;
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

    /// The same host and port with another path (origin form, `/…`),
    /// validated like a parsed one: nothing else reaches the request line.
    pub fn with_path(&self, path: &str) -> Result<HttpUrl, UrlError> {
        let checked = if path.starts_with('/') {
            checked_path(path)
        } else {
            Err("the path must start with /")
        };
        let path = checked.map_err(|why| UrlError {
            url: format!("http://{}{path}", self.authority()),
            why,
        })?;
        Ok(HttpUrl {
            host: self.host.clone(),
            port: self.port,
            path,
        })
    }
}

/// The request methods the tools use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Status, headers and body.
    Get,
    /// Status and headers; no body is read.
    Head,
}

impl Method {
    /// The method as written on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// One request: what to send and how long it may take.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET` or `HEAD`.
    pub method: Method,
    /// Where to (its path goes on the request line, `Host` from its authority).
    pub url: &'a HttpUrl,
    /// Extra headers, in order, after `Host` (values are the caller's own).
    pub headers: &'a [(&'a str, &'a str)],
    /// The whole exchange, resolve and connect included.
    pub total: Duration,
    /// A shorter bound on the TCP handshake alone, if any.
    pub connect: Option<Duration>,
    /// Body bytes kept (`GET`); the rest is not read.
    pub max_body: usize,
    /// Connect here instead of resolving the URL's host (resolved once by
    /// the caller for many requests); `Host` still names the URL's authority.
    pub addr: Option<SocketAddr>,
}

impl<'a> Request<'a> {
    /// A request with no extra headers, no connect bound and a 64 KiB body cap.
    pub fn new(method: Method, url: &'a HttpUrl, total: Duration) -> Self {
        Request {
            method,
            url,
            headers: &[],
            total,
            connect: None,
            max_body: 64 * 1024,
            addr: None,
        }
    }

    /// The bytes sent. Header values are the caller's; the path was
    /// validated when the URL was built.
    pub fn bytes(&self) -> Vec<u8> {
        let mut request = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method.as_str(),
            self.url.path,
            self.url.authority()
        );
        for (name, value) in self.headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str("Connection: close\r\n\r\n");
        request.into_bytes()
    }

    /// Send the request and read the answer, all within the deadlines.
    /// Interim `1xx` answers are skipped; redirects are never followed.
    pub fn send(&self) -> Result<Response, FetchError> {
        let deadline = Instant::now() + self.total;
        let mut stream = self.connect(deadline)?;
        let _ = stream.set_nodelay(true);
        stream
            .set_write_timeout(Some(left(deadline, "sending the request")?))
            .map_err(FetchError::Io)?;
        stream.write_all(&self.bytes()).map_err(|error| {
            if is_timeout(&error) {
                FetchError::Timeout("sending the request")
            } else {
                FetchError::Io(error)
            }
        })?;

        let mut buf = Vec::with_capacity(1024);
        let (mut response, framing) = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                let head = parse_head(&buf[..at + 4])?;
                buf.drain(..at + 4);
                if (100..200).contains(&head.status) && head.status != 101 {
                    continue;
                }
                let framing = Framing::of(&head)?;
                break (head, framing);
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
        let status = response.status;
        if self.method == Method::Head || status < 200 || status == 204 || status == 304 {
            return Ok(response);
        }
        response.body = read_body(&mut stream, buf, framing, self.max_body, deadline)?;
        Ok(response)
    }

    fn connect(&self, deadline: Instant) -> Result<TcpStream, FetchError> {
        let addrs = match self.addr {
            Some(addr) => vec![addr],
            None => match resolve_within(&self.url.host, self.url.port, deadline) {
                Ok(Some(addrs)) => addrs,
                Ok(None) => return Err(FetchError::Timeout("resolving the host")),
                Err(why) => return Err(FetchError::Resolve(why)),
            },
        };
        let mut last = FetchError::Resolve(format!("{}: no address", self.url.host));
        for addr in addrs {
            let mut wait = left(deadline, "connecting")?;
            if let Some(connect) = self.connect {
                wait = wait.min(connect);
            }
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
}

/// An answer: status, headers as received, and the (de-chunked, capped)
/// body of a `GET`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names and values in order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// At most the request's `max_body` bytes; empty for `HEAD`.
    pub body: Vec<u8>,
}

impl Response {
    /// Every value of the header `name` (any case), in order.
    pub fn header_values<'r>(&'r self, name: &str) -> impl Iterator<Item = &'r str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).last()
    }
}

/// How a request failed, in words a log line can use.
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

impl std::error::Error for FetchError {}

/// Time left before `deadline`, or a timeout error naming `what`.
fn left(deadline: Instant, what: &'static str) -> Result<Duration, FetchError> {
    time_left(deadline).ok_or(FetchError::Timeout(what))
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

/// Read the body that follows a head (`body` holds what came with it).
fn read_body(
    stream: &mut TcpStream,
    mut body: Vec<u8>,
    framing: Framing,
    max_body: usize,
    deadline: Instant,
) -> Result<Vec<u8>, FetchError> {
    let length = framing.content_length.filter(|_| !framing.chunked);
    loop {
        let done = match (framing.chunked, length) {
            (true, _) => dechunk(&body).is_some_and(|(_, complete)| complete),
            (false, Some(length)) => body.len() >= length,
            (false, None) => false,
        };
        if done || body.len() >= max_body {
            break;
        }
        if read_some(stream, &mut body, deadline)? == 0 {
            if length.is_some_and(|length| body.len() < length) {
                return Err(FetchError::Protocol(
                    "body shorter than Content-Length".into(),
                ));
            }
            break;
        }
    }
    let mut body = if framing.chunked {
        dechunk(&body)
            .ok_or_else(|| FetchError::Protocol("malformed chunked body".into()))?
            .0
    } else {
        body
    };
    if let Some(length) = length {
        body.truncate(length);
    }
    body.truncate(max_body);
    Ok(body)
}

/// Parse a response head (status line and headers, up to the blank line)
/// into a [`Response`] without a body.
pub fn parse_head(head: &[u8]) -> Result<Response, FetchError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    let version = words.next().unwrap_or_default();
    let status = words
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code));
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        let shown: String = status_line.chars().take(60).collect();
        return Err(FetchError::Protocol(format!("status line {shown:?}")));
    };
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: Vec::new(),
    })
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Framing {
    content_length: Option<usize>,
    chunked: bool,
}

impl Framing {
    fn of(head: &Response) -> Result<Framing, FetchError> {
        let content_length = match head.header("content-length") {
            None => None,
            Some(value) => Some(
                value
                    .parse()
                    .map_err(|_| FetchError::Protocol(format!("Content-Length {value:?}")))?,
            ),
        };
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        Ok(Framing {
            content_length,
            chunked,
        })
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
    use std::net::TcpListener;

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
        assert_eq!(url("http://127.0.0.1:8080").authority(), "127.0.0.1:8080");
        assert_eq!(url("http://frontend-cache/").authority(), "frontend-cache");
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
            ("http://u@h/", "user:password"),
            ("http://h/a b", "spaces"),
            ("http://[zz]/", "IPv6"),
            ("http://[::1", "unclosed"),
            ("http://a b", "bad character"),
            ("not a url", "expected http://"),
        ] {
            let error = text.parse::<HttpUrl>().unwrap_err();
            assert!(error.why().contains(why), "{text}: {error}");
            assert!(error.to_string().contains(text), "{text}: {error}");
        }
        let injected = "http://a:80\r\nX: y".parse::<HttpUrl>().unwrap_err();
        assert_eq!(injected.why(), "bad port");
    }

    #[test]
    fn other_paths_are_validated_like_parsed_ones() {
        let base = url("http://[::1]:8080");
        let with = base.with_path("/assets/a.js?v=1").unwrap();
        assert_eq!(with.to_string(), "http://[::1]:8080/assets/a.js?v=1");
        for bad in ["", "x", "/a b", "/a\r\nX: y", "?q"] {
            assert!(base.with_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_carry_host_then_the_callers_headers() {
        let target = url("http://127.0.0.1:8080")
            .with_path("/assets/a.js?v=1")
            .unwrap();
        let request = Request {
            headers: &[("X-OKOME-Warm", "1")],
            ..Request::new(Method::Head, &target, Duration::from_secs(1))
        };
        assert_eq!(
            String::from_utf8(request.bytes()).unwrap(),
            "HEAD /assets/a.js?v=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-OKOME-Warm: 1\r\nConnection: close\r\n\r\n"
        );
        let health = url("http://[::1]/health");
        let get = Request::new(Method::Get, &health, Duration::from_secs(1));
        assert!(
            String::from_utf8(get.bytes())
                .unwrap()
                .starts_with("GET /health HTTP/1.1\r\nHost: [::1]\r\n")
        );
    }

    #[test]
    fn heads_give_status_headers_and_framing() {
        let head =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\nRetry-After: 3\r\nx-cache-status: miss\r\nSet-Cookie: a=b\r\nCache-Control: private, no-store\r\n\r\n").unwrap();
        assert_eq!(head.status, 503);
        assert_eq!(head.header("Retry-After"), Some("3"));
        assert_eq!(head.header("X-Cache-Status"), Some("miss"));
        assert_eq!(head.header_values("set-cookie").count(), 1);
        assert_eq!(
            Framing::of(&head).unwrap(),
            Framing {
                content_length: Some(12),
                chunked: false
            }
        );
        let head = parse_head(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(Framing::of(&head).unwrap().chunked);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
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

    /// A one-connection server on loopback: returns what it received.
    fn serve_once(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut b = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut b).unwrap();
                request.extend_from_slice(&b[..n]);
            }
            conn.write_all(answer).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, server)
    }

    #[test]
    fn head_skips_interim_answers_and_reads_headers_only() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Cache-Status: HIT\r\nContent-Length: 5\r\n\r\n",
        );
        let target = url(&format!("http://{addr}/version"));
        let response = Request {
            headers: &[("User-Agent", "okome-prewarm/0")],
            ..Request::new(Method::Head, &target, Duration::from_secs(5))
        }
        .send()
        .unwrap();
        assert_eq!(
            (
                response.status,
                response.header("x-cache-status"),
                response.body.len()
            ),
            (200, Some("HIT"), 0)
        );
        let request = server.join().unwrap();
        assert!(
            request.starts_with("HEAD /version HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("User-Agent: okome-prewarm/0\r\n"));
    }

    #[test]
    fn get_reads_a_chunked_body_up_to_the_cap_and_never_follows_redirects() {
        let (addr, server) =
            serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        let target = url(&format!("http://{addr}/health"));
        let response = Request {
            max_body: 8,
            ..Request::new(Method::Get, &target, Duration::from_secs(5))
        }
        .send()
        .unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"hello wo"[..])
        );
        server.join().unwrap();

        let (addr, server) = serve_once(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        );
        let target = url(&format!("http://{addr}/"));
        let response = Request::new(Method::Get, &target, Duration::from_secs(5))
            .send()
            .unwrap();
        assert_eq!(
            (response.status, response.header("location")),
            (302, Some("http://127.0.0.1:1/"))
        );
        server.join().unwrap();
    }

    #[test]
    fn errors_say_timeout_or_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = url(&format!("http://{addr}/"));
        let started = Instant::now();
        let result = Request::new(Method::Head, &target, Duration::from_millis(300)).send();
        assert!(
            matches!(result, Err(FetchError::Timeout("waiting for the answer"))),
            "{result:?}"
        );
        // Generous bound: the deadline must actually bound the call.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
        let result = Request::new(Method::Get, &target, Duration::from_secs(2)).send();
        assert!(matches!(result, Err(FetchError::Refused)), "{result:?}");
        // The address override wins over the URL's host.
        let elsewhere = url("http://no-such-host.invalid/");
        let result = Request {
            addr: Some(addr),
            ..Request::new(Method::Get, &elsewhere, Duration::from_secs(2))
        }
        .send();
        assert!(matches!(result, Err(FetchError::Refused)), "{result:?}");
    }
}

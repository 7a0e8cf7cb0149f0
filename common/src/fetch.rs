//! Plain-HTTP GET/HEAD for the tools, spoken by `ureq` (no TLS, no default
//! features) behind the few properties okome-health-probe (one `GET` per
//! check) and okome-prewarm (`HEAD`s through the local nginx) rely on.
//!
//! What is ours is the policy, not the protocol: an honest deadline (ureq's
//! `timeout_global` bounds resolve, connect, write and every read by what is
//! left of one total, `timeout_connect` the handshake alone, so a hung peer
//! costs exactly the configured time); errors that say *how* it failed
//! (timeout and in which step, refused, other connect failure, DNS, not
//! HTTP), in the words the probe's log lines and metric labels use;
//! redirects never followed (a 3xx is just a status, like a 5xx: no status is
//! an error); no proxy from the environment; only a path that passed
//! [`HttpUrl`] validation ever on the request line; `HEAD` bodies never read,
//! `GET` bodies capped.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

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

    /// Send the request on a one-off [`Client`] (no connection kept).
    pub fn send(&self) -> Result<Response, FetchError> {
        Client::new("okome").send(self)
    }
}

/// A ureq agent configured the one way every tool wants it: no status is an
/// error, no redirect is followed, no proxy is taken from the environment,
/// and this crate's connector chain (plain TCP only) so a timeout can be
/// told apart as "connecting" or "waiting for the answer". Cheap to clone;
/// keeps idle keep-alive connections for the next request to the same peer.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client that sends `User-Agent: user_agent` unless a request names
    /// its own.
    pub fn new(user_agent: &str) -> Client {
        use ureq::unversioned::transport::{Connector, TcpConnector};
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .user_agent(user_agent)
            .build();
        let connector = Phase::Connecting
            .chain(TcpConnector::default())
            .chain(Phase::Connected);
        Client {
            agent: ureq::Agent::with_parts(config, connector, Resolving(Default::default())),
        }
    }

    /// Send `request` and read the answer, all within its deadlines.
    /// Interim `1xx` answers are skipped; redirects are never followed.
    pub fn send(&self, request: &Request<'_>) -> Result<Response, FetchError> {
        PHASE.with(|phase| phase.set(Phase::Resolving));
        let result = self.exchange(request);
        result.map_err(|error| FetchError::from_ureq(error, PHASE.with(Cell::get)))
    }

    fn exchange(&self, request: &Request<'_>) -> Result<Response, ureq::Error> {
        // With an address given, the URL names it and `Host` the real
        // authority: ureq writes a caller's `Host` instead of its own.
        let uri = match request.addr {
            Some(addr) => format!("http://{addr}{}", request.url.path),
            None => request.url.to_string(),
        };
        let mut builder = match request.method {
            Method::Get => self.agent.get(&uri),
            Method::Head => self.agent.head(&uri),
        };
        if request.addr.is_some() {
            builder = builder.header("Host", request.url.authority());
        }
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        let connect = request
            .connect
            .map_or(request.total, |c| c.min(request.total));
        let mut response = builder
            .config()
            .timeout_global(Some(request.total))
            .timeout_connect(Some(connect))
            .build()
            .call()?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
                (name.as_str().to_string(), value)
            })
            .collect();
        let mut body = Vec::new();
        if request.method == Method::Get {
            response
                .body_mut()
                .as_reader()
                .take(request.max_body as u64)
                .read_to_end(&mut body)
                .map_err(ureq::Error::from)?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Where the exchange on this thread had got to, set by the resolver and
/// the connector chain: ureq reports the overall deadline as
/// `Timeout::Global` whatever the step, and a log line should still say
/// which step it was. After the name resolves the phase is `Connected`
/// unless the connector then starts a new connection: a keep-alive
/// connection from the pool never enters the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Resolving,
    Connecting,
    Connected,
}

/// ureq's resolver, marking the phase before and after.
#[derive(Debug)]
struct Resolving(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for Resolving {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        PHASE.with(|phase| phase.set(Phase::Resolving));
        let addrs = self.0.resolve(uri, config, timeout)?;
        PHASE.with(|phase| phase.set(Phase::Connected));
        Ok(addrs)
    }
}

thread_local! {
    static PHASE: Cell<Phase> = const { Cell::new(Phase::Resolving) };
}

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for Phase
{
    type Out = In;

    fn connect(
        &self,
        _details: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<In>, ureq::Error> {
        PHASE.with(|phase| phase.set(*self));
        Ok(chained)
    }
}

/// An answer: status, headers as received, and the (capped) body of a `GET`.
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

impl FetchError {
    /// Map ureq's error into the toolkit's words; `phase` is how far this
    /// exchange got (a pooled connection never enters the connector, so
    /// "connected" is also what a reused one reads as).
    fn from_ureq(error: ureq::Error, phase: Phase) -> FetchError {
        use ureq::Timeout as T;
        match error {
            ureq::Error::Timeout(which) => FetchError::Timeout(match which {
                T::Resolve => "resolving the host",
                T::Connect => "connecting",
                T::SendRequest | T::SendBody | T::PerWrite => "sending the request",
                T::Global | T::PerCall => match phase {
                    Phase::Resolving => "resolving the host",
                    Phase::Connecting => "connecting",
                    Phase::Connected => "waiting for the answer",
                },
                _ => "waiting for the answer",
            }),
            ureq::Error::HostNotFound => FetchError::Resolve("no address found".into()),
            ureq::Error::Io(error) => match error.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    FetchError::Timeout(match phase {
                        Phase::Connected => "waiting for the answer",
                        _ => "connecting",
                    })
                }
                io::ErrorKind::ConnectionRefused if phase != Phase::Connected => {
                    FetchError::Refused
                }
                _ if phase == Phase::Resolving => FetchError::Resolve(error.to_string()),
                _ if phase == Phase::Connecting => FetchError::Connect(error),
                io::ErrorKind::UnexpectedEof => {
                    FetchError::Protocol("connection closed without a complete answer".into())
                }
                _ => FetchError::Io(error),
            },
            ureq::Error::ConnectionFailed => FetchError::Connect(io::Error::other(
                "no connection could be made to any address",
            )),
            ureq::Error::Protocol(error) => FetchError::Protocol(error.to_string()),
            other => FetchError::Protocol(other.to_string()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

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
        // Header names go out lower-case (HTTP/1.1 names are case-blind).
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("head /version http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("user-agent: okome-prewarm/0\r\n"),
            "{request}"
        );
        assert_eq!(request.matches("user-agent:").count(), 1, "{request}");
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
    fn requests_carry_host_then_the_callers_headers() {
        let (addr, server) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n");
        let target = url(&format!("http://{addr}"))
            .with_path("/a.js?v=1")
            .unwrap();
        let response = Request {
            headers: &[("X-OKOME-Warm", "1")],
            ..Request::new(Method::Get, &target, Duration::from_secs(5))
        }
        .send()
        .unwrap();
        assert_eq!(response.status, 204);
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /a.js?v=1 http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains(&format!("host: {addr}\r\n")), "{request}");
        assert!(request.contains("x-okome-warm: 1\r\n"), "{request}");
    }

    #[test]
    fn errors_say_timeout_in_which_step_or_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = url(&format!("http://{addr}/"));
        let started = Instant::now();
        let result = Request {
            connect: Some(Duration::from_millis(100)),
            ..Request::new(Method::Head, &target, Duration::from_millis(300))
        }
        .send();
        let took = started.elapsed();
        assert!(
            matches!(result, Err(FetchError::Timeout("waiting for the answer"))),
            "{result:?}"
        );
        // The deadline is the total, not the shorter connect bound, and it
        // actually bounds the call (generous upper bound for a busy machine).
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
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
        let result = Request::new(Method::Get, &elsewhere, Duration::from_secs(5)).send();
        assert!(matches!(result, Err(FetchError::Resolve(_))), "{result:?}");
    }

    #[test]
    fn a_peer_that_is_not_http_is_a_protocol_error() {
        let (addr, server) = serve_once(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
        let target = url(&format!("http://{addr}/"));
        let result = Request::new(Method::Get, &target, Duration::from_secs(5)).send();
        assert!(matches!(result, Err(FetchError::Protocol(_))), "{result:?}");
        server.join().unwrap();
    }

    #[test]
    fn with_an_address_host_names_the_urls_authority() {
        let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let target = url("http://frontend-cache:8080/x");
        Request {
            addr: Some(addr),
            ..Request::new(Method::Head, &target, Duration::from_secs(5))
        }
        .send()
        .unwrap();
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(
            request.contains("host: frontend-cache:8080\r\n"),
            "{request}"
        );
        assert_eq!(request.matches("host:").count(), 1, "{request}");
    }

    #[test]
    fn a_kept_alive_connection_that_hangs_is_waiting_for_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut b = [0u8; 1024];
            // Answer the first request and keep the connection; read the
            // second and say nothing.
            for answered in [true, false] {
                while seen.windows(4).filter(|w| w == b"\r\n\r\n").count()
                    < 1 + usize::from(!answered)
                {
                    let n = conn.read(&mut b).unwrap();
                    assert!(n > 0);
                    seen.extend_from_slice(&b[..n]);
                }
                if answered {
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(600));
        });
        let client = Client::new("okome-test");
        let target = url(&format!("http://{addr}/"));
        let first = client.send(&Request::new(Method::Head, &target, Duration::from_secs(5)));
        assert_eq!(first.unwrap().status, 200);
        let second = client.send(&Request::new(
            Method::Head,
            &target,
            Duration::from_millis(300),
        ));
        assert!(
            matches!(second, Err(FetchError::Timeout("waiting for the answer"))),
            "{second:?}"
        );
        server.join().unwrap();
    }
}

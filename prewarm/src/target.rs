//! The warm target and what prewarm reads from an answer.
//!
//! The HTTP client itself is okome-common's ([`okome_common::fetch`], ureq
//! underneath): plain HTTP only, one deadline per request, redirects never followed, only a
//! validated path on the request line. What stays here is prewarm's own:
//! the target is scheme, host and port from the configuration and nothing
//! else (the path is the only part that came from the log, and it has been
//! through [`crate::pathsafe`] before it gets here), the loopback test that
//! `--refresh` needs, and the few response headers that decide an outcome.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use okome_common::fetch::{HttpUrl, Response};

/// Where warm requests go: `http://host[:port]` from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target with path `/`; each request gets its own validated path.
    pub url: HttpUrl,
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
        let url: HttpUrl = text
            .parse()
            .map_err(|e: okome_common::fetch::UrlError| err(e.why()))?;
        if url.path != "/" || text.contains('#') {
            return Err(err(
                "only scheme, host and port are allowed (no path, query or user)",
            ));
        }
        Ok(Target { url })
    }

    /// Resolve to socket addresses (first one is used).
    pub fn resolve(&self) -> io::Result<SocketAddr> {
        (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no address", self.url.host),
                )
            })
    }

    /// Whether every address of the target is loopback: the refresh bypass
    /// is only honoured from 127.0.0.1/::1, so `--refresh` requires this.
    pub fn is_loopback(&self) -> bool {
        match (self.url.host.as_str(), self.url.port).to_socket_addrs() {
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

impl From<&Response> for Reply {
    fn from(response: &Response) -> Reply {
        Reply {
            status: response.status,
            cache_status: response
                .header("x-cache-status")
                .map(str::to_ascii_uppercase),
            retry_after: response.header("retry-after").and_then(|v| v.parse().ok()),
            set_cookie: response.header("set-cookie").is_some(),
            no_store: response.header_values("cache-control").any(|v| {
                let v = v.to_ascii_lowercase();
                v.contains("no-store") || v.contains("no-cache") || v.contains("private")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn targets_take_only_scheme_host_port() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.url.host.as_str(), t.url.port, t.url.authority().as_str()),
            ("127.0.0.1", 8080, "127.0.0.1:8080")
        );
        let t = Target::parse("http://frontend-cache/").unwrap();
        assert_eq!(
            (t.url.port, t.url.authority().as_str()),
            (80, "frontend-cache")
        );
        let t = Target::parse("http://[::1]:81").unwrap();
        assert_eq!((t.url.authority().as_str(), t.url.port), ("[::1]:81", 81));
        for bad in [
            "https://x",
            "x:80",
            "http://",
            "http://a/b",
            "http://a?x",
            "http://a#x",
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
    fn response_heads_are_read_for_the_outcome() {
        let r = Reply::from(&head(
            503,
            &[
                ("Retry-After", "3"),
                ("x-cache-status", "miss"),
                ("Set-Cookie", "a=b"),
                ("Cache-Control", "private, no-store"),
            ],
        ));
        assert_eq!(r.status, 503);
        assert_eq!(r.retry_after, Some(3));
        assert_eq!(r.cache_status.as_deref(), Some("MISS"));
        assert!(r.set_cookie && r.no_store);
        let r = Reply::from(&head(
            200,
            &[
                ("Cache-Control", "max-age=60"),
                ("cache-control", "no-cache"),
            ],
        ));
        assert!(r.no_store && !r.set_cookie && r.cache_status.is_none());
    }
}

//! One health check: a GET judged against the expected status and body.
//!
//! The GET itself is okome-common's deadline-bounded client
//! ([`okome_common::fetch`], ureq underneath); what is the probe's own is the judgement. The
//! result carries a [`Reason`] from a small closed set because the same
//! words label the failure counter in the textfile and appear in the
//! transition log line ("timeout", "refused", "HTTP 503", "body mismatch").

use std::fmt;
use std::time::{Duration, Instant};

use okome_common::fetch::{self, FetchError, HttpUrl, Method, Request};

/// Bytes of body kept for the substring match.
const MAX_BODY: usize = 64 * 1024;

/// Connect and total deadlines for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Longest wait for the TCP handshake.
    pub connect: Duration,
    /// Longest wait for the whole exchange, connect included.
    pub total: Duration,
}

/// What a healthy answer looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Exact status wanted; `None` accepts any 2xx.
    pub status: Option<u16>,
    /// A substring the body must contain.
    pub body: Option<String>,
}

/// Why a check failed: the closed set used as the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A deadline passed (connect or answer).
    Timeout,
    /// Connection refused: nothing listens.
    Refused,
    /// Another connect failure (unreachable, reset).
    Connect,
    /// The host name did not resolve.
    Dns,
    /// Not HTTP, or cut short.
    Protocol,
    /// Wrong status code.
    HttpStatus,
    /// Body lacks the expected substring.
    BodyMismatch,
}

impl Reason {
    /// Every reason, in textfile order.
    pub const ALL: [Reason; 7] = [
        Reason::Timeout,
        Reason::Refused,
        Reason::Connect,
        Reason::Dns,
        Reason::Protocol,
        Reason::HttpStatus,
        Reason::BodyMismatch,
    ];

    /// The metric label / state-file key.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Refused => "refused",
            Reason::Connect => "connect",
            Reason::Dns => "dns",
            Reason::Protocol => "protocol",
            Reason::HttpStatus => "http_status",
            Reason::BodyMismatch => "body_mismatch",
        }
    }

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `None` when healthy.
    pub failure: Option<(Reason, String)>,
    /// Status received, if any.
    pub status: Option<u16>,
    /// Wall time of the check.
    pub elapsed: Duration,
}

impl Check {
    /// Whether the check found the target healthy.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            None => write!(
                f,
                "HTTP {} in {:.1} ms",
                self.status.unwrap_or_default(),
                self.elapsed.as_secs_f64() * 1000.0
            ),
            Some((_, detail)) => f.write_str(detail),
        }
    }
}

/// Judge a response (or failure) against `expect`; pure so it is tested
/// without sockets.
pub fn judge(
    result: Result<fetch::Response, FetchError>,
    expect: &Expect,
    deadlines: &Deadlines,
) -> (Option<(Reason, String)>, Option<u16>) {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let reason = match &error {
                FetchError::Timeout(_) => Reason::Timeout,
                FetchError::Refused => Reason::Refused,
                FetchError::Connect(_) => Reason::Connect,
                FetchError::Resolve(_) => Reason::Dns,
                FetchError::Protocol(_) | FetchError::Io(_) => Reason::Protocol,
            };
            let detail = match error {
                FetchError::Timeout(what) => format!(
                    "timeout {what} (connect deadline {} s, total {} s)",
                    deadlines.connect.as_secs_f64(),
                    deadlines.total.as_secs_f64()
                ),
                other => other.to_string(),
            };
            return (Some((reason, detail)), None);
        }
    };
    let status = Some(response.status);
    let status_ok = match expect.status {
        Some(wanted) => response.status == wanted,
        None => (200..300).contains(&response.status),
    };
    if !status_ok {
        let wanted = expect
            .status
            .map_or_else(|| "2xx".to_string(), |s| s.to_string());
        return (
            Some((
                Reason::HttpStatus,
                format!("HTTP {} (expected {wanted})", response.status),
            )),
            status,
        );
    }
    if let Some(needle) = &expect.body
        && !contains(&response.body, needle.as_bytes())
    {
        return (
            Some((
                Reason::BodyMismatch,
                format!(
                    "body mismatch: HTTP {} body lacks {needle:?}",
                    response.status
                ),
            )),
            status,
        );
    }
    (None, status)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Run one check against `url`.
pub fn check(url: &HttpUrl, deadlines: &Deadlines, expect: &Expect) -> Check {
    let started = Instant::now();
    let user_agent = concat!("okome-health-probe/", env!("CARGO_PKG_VERSION"));
    let result = Request {
        headers: &[("User-Agent", user_agent), ("Accept", "*/*")],
        connect: Some(deadlines.connect),
        max_body: MAX_BODY,
        ..Request::new(Method::Get, url, deadlines.total)
    }
    .send();
    let elapsed = started.elapsed();
    let (failure, status) = judge(result, expect, deadlines);
    Check {
        failure,
        status,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines {
        connect: Duration::from_millis(500),
        total: Duration::from_secs(1),
    };

    fn answer(status: u16, body: &str) -> Result<fetch::Response, FetchError> {
        Ok(fetch::Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn answers_are_judged_by_status_then_body() {
        let any = Expect::default();
        let strict = Expect {
            status: Some(200),
            body: Some("\"ok\"".into()),
        };
        let table: [(Result<fetch::Response, FetchError>, &Expect, Option<Reason>); 8] = [
            (answer(200, ""), &any, None),
            (answer(204, ""), &any, None),
            (answer(503, "busy"), &any, Some(Reason::HttpStatus)),
            (answer(301, ""), &any, Some(Reason::HttpStatus)),
            (answer(200, "{\"status\":\"ok\"}"), &strict, None),
            (answer(204, "\"ok\""), &strict, Some(Reason::HttpStatus)),
            (
                answer(200, "{\"status\":\"degraded\"}"),
                &strict,
                Some(Reason::BodyMismatch),
            ),
            (Err(FetchError::Refused), &any, Some(Reason::Refused)),
        ];
        for (result, expect, wanted) in table {
            let (failure, _) = judge(result, expect, &D);
            assert_eq!(failure.as_ref().map(|f| f.0), wanted, "{failure:?}");
        }
    }

    #[test]
    fn failure_details_name_what_went_wrong() {
        let (failure, _) = judge(
            Err(FetchError::Timeout("waiting for the answer")),
            &Expect::default(),
            &D,
        );
        let (reason, detail) = failure.unwrap();
        assert_eq!(reason, Reason::Timeout);
        assert!(
            detail.contains("timeout waiting for the answer"),
            "{detail}"
        );
        assert!(detail.contains("total 1 s"), "{detail}");
        let (failure, status) = judge(answer(503, ""), &Expect::default(), &D);
        assert_eq!(failure.unwrap().1, "HTTP 503 (expected 2xx)");
        assert_eq!(status, Some(503));
    }

    #[test]
    fn reason_labels_are_distinct_and_indexed() {
        for (index, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index);
            assert_eq!(
                Reason::ALL
                    .iter()
                    .filter(|r| r.label() == reason.label())
                    .count(),
                1
            );
        }
    }
}

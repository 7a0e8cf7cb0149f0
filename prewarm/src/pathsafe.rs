//! Turning a request target taken from the access log into a path that is
//! safe to send to the warm target — or refusing it.
//!
//! The log is attacker-controlled text: anyone on the LAN can put any bytes
//! into `$request`. Prewarm only ever sends `HEAD <path> HTTP/1.1` with the
//! scheme, host and port from its own config, so the path must be an
//! origin-form path that cannot be read as an absolute URI (`http://…`), a
//! network path (`//host`), a second request line (CR/LF), a parent
//! directory (`..`, `%2e%2e`) or a hidden slash (`%2f`, `%5c`). The rules
//! are an allow-list, not a block-list: only a short set of characters, only
//! the safe UI patterns from seed 000, only `GET`/`HEAD` demand.

use std::fmt;

/// Longest path (with query) prewarm will send; longer ones are refused,
/// not truncated, because a truncated path names a different resource.
pub const MAX_PATH_LEN: usize = 512;

/// Path prefixes whose responses are shared UI assets and safe to warm.
pub const SAFE_PREFIXES: &[&str] = &["/assets/", "/static/", "/ui-schema/"];
/// Paths safe to warm as they are (with an optional query).
pub const SAFE_EXACT: &[&str] = &["/", "/version", "/health"];

/// Why a request target was refused. The names show up in `--dry-run` and
/// debug logs so an operator can see why a hot path is not warmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Empty target.
    Empty,
    /// Longer than [`MAX_PATH_LEN`].
    TooLong,
    /// Does not start with a single `/` (absolute URI, `*`, `//host`, …).
    NotOriginForm,
    /// A byte outside the allowed set (CR, LF, NUL, space, `\`, `#`, `@`,
    /// non-ASCII, …).
    BadByte,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An escape for `/`, `\`, `.`, `%`, a control byte or DEL.
    DangerousEscape,
    /// A `.` or `..` segment, or an empty segment (`a//b`).
    DotOrEmptySegment,
    /// Under `/api/`: never warmed, whatever else is true.
    Api,
    /// Not one of the safe patterns.
    NotSafePattern,
}

impl Refusal {
    /// A short stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Empty => "empty",
            Refusal::TooLong => "too-long",
            Refusal::NotOriginForm => "not-origin-form",
            Refusal::BadByte => "bad-byte",
            Refusal::BadEscape => "bad-escape",
            Refusal::DangerousEscape => "dangerous-escape",
            Refusal::DotOrEmptySegment => "dot-or-empty-segment",
            Refusal::Api => "api",
            Refusal::NotSafePattern => "not-safe-pattern",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes allowed literally in the path part.
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'/' | b'-' | b'.' | b'_' | b'~' | b'+' | b',' | b';' | b'='
        )
}

/// Bytes allowed literally in the query part (no `/` games matter there,
/// but the same conservative set plus `&`).
fn query_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'_' | b'~' | b'+' | b',' | b';' | b'=' | b'&' | b'/'
        )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~')
}

/// Normalise `part` (path or query) into `out`: decode escapes of unreserved
/// characters (`%41` → `A`, as RFC 3986 allows), upper-case the hex of every
/// other escape, refuse escapes that hide `/`, `\`, `.`, `%` or control
/// bytes, and refuse bytes outside `allowed`.
fn normalise_part(part: &[u8], allowed: fn(u8) -> bool, out: &mut String) -> Result<(), Refusal> {
    let mut i = 0;
    while i < part.len() {
        let b = part[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                part.get(i + 1).copied().and_then(hex),
                part.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(Refusal::BadEscape);
            };
            let decoded = hi * 16 + lo;
            if decoded < 0x20 || decoded == 0x7f || matches!(decoded, b'/' | b'\\' | b'.' | b'%') {
                return Err(Refusal::DangerousEscape);
            }
            if unreserved(decoded) {
                out.push(decoded as char);
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
            }
            i += 3;
        } else if allowed(b) {
            out.push(b as char);
            i += 1;
        } else {
            return Err(Refusal::BadByte);
        }
    }
    Ok(())
}

/// Validate and normalise a request target from the log (`/assets/a.js?v=1`).
/// Returns the path to send, or why it was refused. Two targets that name
/// the same cache entry normalise to the same string, so ranking dedups on it.
pub fn normalise(target: &[u8]) -> Result<String, Refusal> {
    let mut out = String::with_capacity(target.len());
    normalise_into(target, &mut out)?;
    Ok(out)
}

/// [`normalise`] into a caller's buffer (cleared first), so counting a
/// large log allocates nothing per line. On error the buffer's content is
/// unspecified.
pub fn normalise_into(target: &[u8], out: &mut String) -> Result<(), Refusal> {
    out.clear();
    if target.is_empty() {
        return Err(Refusal::Empty);
    }
    if target.len() > MAX_PATH_LEN {
        return Err(Refusal::TooLong);
    }
    if target[0] != b'/' || target.get(1) == Some(&b'/') {
        return Err(Refusal::NotOriginForm);
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    };
    normalise_part(path, path_byte, out)?;
    // Segments: no `.`/`..` and no empty segment except the trailing one
    // (`/assets/` is a directory, `/assets//x` is not a path anyone serves).
    let mut segments = out[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment == "." || segment == ".." {
            return Err(Refusal::DotOrEmptySegment);
        }
        if segment.is_empty() && segments.peek().is_some() {
            return Err(Refusal::DotOrEmptySegment);
        }
    }
    if out == "/api" || out.starts_with("/api/") {
        return Err(Refusal::Api);
    }
    let safe = SAFE_EXACT.contains(&out.as_str())
        || SAFE_PREFIXES
            .iter()
            .any(|prefix| out.len() > prefix.len() && out.starts_with(prefix));
    if !safe {
        return Err(Refusal::NotSafePattern);
    }
    if let Some(query) = query {
        if query.contains(&b'?') {
            return Err(Refusal::BadByte);
        }
        if !query.is_empty() {
            out.push('?');
            normalise_part(query, query_byte, out)?;
        }
    }
    if out.len() > MAX_PATH_LEN {
        return Err(Refusal::TooLong);
    }
    Ok(())
}

/// Re-check a path that did not come from our own log (a plan fetched from
/// Redis): it must already be in normal form.
pub fn revalidate(path: &str) -> Result<String, Refusal> {
    let normal = normalise(path.as_bytes())?;
    if normal != path {
        return Err(Refusal::NotOriginForm);
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths_pass_and_are_normalised() {
        let table: &[(&[u8], &str)] = &[
            (b"/", "/"),
            (b"/version", "/version"),
            (b"/health", "/health"),
            (b"/assets/app.js", "/assets/app.js"),
            (b"/assets/app.js?v=3", "/assets/app.js?v=3"),
            (b"/assets/app.js?", "/assets/app.js"),
            (b"/static/css/site-1.2.css", "/static/css/site-1.2.css"),
            (b"/ui-schema/foo", "/ui-schema/foo"),
            (b"/ui-schema/dir/", "/ui-schema/dir/"),
            (b"/assets/%41pp.js", "/assets/App.js"),
            (b"/assets/a%2bb.js", "/assets/a%2Bb.js"),
            (b"/assets/%e6%97%a5.png", "/assets/%E6%97%A5.png"),
            (b"/?lang=en&x=1", "/?lang=en&x=1"),
            (b"/version?x=a/b", "/version?x=a/b"),
        ];
        for (input, want) in table {
            assert_eq!(
                normalise(input).as_deref(),
                Ok(*want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn hostile_targets_are_refused() {
        use Refusal::*;
        let long = format!("/assets/{}", "a".repeat(MAX_PATH_LEN));
        let long_query = format!("/assets/a?{}", "b".repeat(MAX_PATH_LEN - 9));
        let table: Vec<(&[u8], Refusal)> = vec![
            (b"", Empty),
            (b"http://evil.example/assets/a.js", NotOriginForm),
            (b"https://127.0.0.1/", NotOriginForm),
            (b"HTTP://x/", NotOriginForm),
            (b"//evil.example/assets/x", NotOriginForm),
            (b"///assets/x", NotOriginForm),
            (b"*", NotOriginForm),
            (b"evil.example:80", NotOriginForm),
            (b"assets/x", NotOriginForm),
            (b"\\\\evil\\assets", NotOriginForm),
            (b"/assets/a\r\nHost: evil", BadByte),
            (b"/assets/a\nX: y", BadByte),
            (b"/assets/a\rb", BadByte),
            (b"/assets/a\0b", BadByte),
            (b"/assets/a b", BadByte),
            (b"/assets/a\tb", BadByte),
            (b"/assets/a\\..\\b", BadByte),
            (b"/assets/a#frag", BadByte),
            (b"/assets/@evil", BadByte),
            (b"/assets/a:b", BadByte),
            (b"/assets/\xff\xfe", BadByte),
            (b"/assets/\xe6\x97\xa5", BadByte),
            (b"/assets/\x1b[31m", BadByte),
            (b"/assets/a\"b", BadByte),
            (b"/assets/a'b", BadByte),
            (b"/assets/<script>", BadByte),
            (b"/assets/a?x=1?y", BadByte),
            (b"/assets/a?x=\r\n", BadByte),
            (b"/assets/a?x=%0d%0a", DangerousEscape),
            (b"/assets/..", DotOrEmptySegment),
            (b"/assets/../api/x", DotOrEmptySegment),
            (b"/assets/./x", DotOrEmptySegment),
            (b"/static/a/../../etc/passwd", DotOrEmptySegment),
            (b"/assets//x", DotOrEmptySegment),
            (b"/assets/%2e%2e/api/x", DangerousEscape),
            (b"/assets/%2E%2E/x", DangerousEscape),
            (b"/assets/.%2e/x", DangerousEscape),
            (b"/assets/%2fapi", DangerousEscape),
            (b"/assets/%2Fapi", DangerousEscape),
            (b"/assets/%5c..%5capi", DangerousEscape),
            (b"/assets/%5C", DangerousEscape),
            (b"/assets/%252e%252e/x", DangerousEscape),
            (b"/assets/%00", DangerousEscape),
            (b"/assets/%0a", DangerousEscape),
            (b"/assets/%7f", DangerousEscape),
            (b"/assets/%", BadEscape),
            (b"/assets/%4", BadEscape),
            (b"/assets/%zz", BadEscape),
            (b"/api/", Api),
            (b"/api", Api),
            (b"/api/v1/chat", Api),
            (b"/api/v1/chat?x=1", Api),
            (b"/%61pi/v1/chat", Api),
            (b"/assets", NotSafePattern),
            (b"/assets/", NotSafePattern),
            (b"/Assets/x", NotSafePattern),
            (b"/admin", NotSafePattern),
            (b"/versions", NotSafePattern),
            (b"/health/deep", NotSafePattern),
            (b"/login?next=/", NotSafePattern),
            (b"/.env", NotSafePattern),
            (b"/assetsx/y", NotSafePattern),
            (long.as_bytes(), TooLong),
            (long_query.as_bytes(), TooLong),
        ];
        for (input, want) in table {
            assert_eq!(
                normalise(input),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_normalised_path_is_a_fixed_point() {
        for input in [&b"/assets/%41%2b.js?q=%7e"[..], b"/", b"/ui-schema/x/"] {
            let once = normalise(input).unwrap();
            assert_eq!(normalise(once.as_bytes()).unwrap(), once);
            assert_eq!(revalidate(&once).unwrap(), once);
        }
        assert!(
            revalidate("/assets/%41").is_err(),
            "non-normal form from Redis is refused"
        );
    }

    #[test]
    fn every_accepted_path_is_safe_to_put_on_a_request_line() {
        // Exhaustive-ish: every two-byte suffix after a safe prefix.
        for a in 0u8..=255 {
            for b in [b'a', b'%', b'/', b'.', 0, b'\r', a] {
                let input = [b"/assets/x".as_slice(), &[a, b]].concat();
                if let Ok(path) = normalise(&input) {
                    assert!(path.starts_with('/') && !path.starts_with("//"));
                    assert!(path.bytes().all(|c| c.is_ascii_graphic()), "{path:?}");
                    assert!(
                        !path.contains("/../") && !path.contains("/./") && !path.contains('\\')
                    );
                }
            }
        }
    }
}

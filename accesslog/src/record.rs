//! What a parsed line says, typed: the accessors both splitters share.
//!
//! A line split by the generic walk ([`Entry`](crate::Entry)) and one split
//! by the `okome` fast path ([`OkomeEntry`](crate::OkomeEntry)) differ only
//! in where a field's bytes are found ([`Record::raw`]); decoding them
//! (status, sizes, durations, the request target) is written once, here.

use crate::bytemask::{find_byte, is_at, rfind_byte};
use crate::fields;

/// The variables the typed accessors read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `$time_local`
    TimeLocal,
    /// `$time_iso8601`
    TimeIso8601,
    /// `$msec`
    Msec,
    /// `$request`
    Request,
    /// `$request_method`
    RequestMethod,
    /// `$request_uri`
    RequestUri,
    /// `$status`
    Status,
    /// `$body_bytes_sent`
    BodyBytesSent,
    /// `$bytes_sent`
    BytesSent,
    /// `$http_user_agent`
    UserAgent,
    /// `$upstream_cache_status`
    CacheStatus,
    /// `$request_time`
    RequestTime,
    /// `$upstream_response_time`
    UpstreamResponseTime,
    /// `$okome_canary`
    Canary,
    /// `$okome_warm`
    Warm,
}

/// How many [`Field`]s there are.
pub(crate) const FIELD_COUNT: usize = 15;

impl Field {
    /// The field logged by `$name`, if the accessors read it.
    pub(crate) fn of(name: &str) -> Option<Field> {
        Some(match name {
            "time_local" => Field::TimeLocal,
            "time_iso8601" => Field::TimeIso8601,
            "msec" => Field::Msec,
            "request" => Field::Request,
            "request_method" => Field::RequestMethod,
            "request_uri" => Field::RequestUri,
            "status" => Field::Status,
            "body_bytes_sent" => Field::BodyBytesSent,
            "bytes_sent" => Field::BytesSent,
            "http_user_agent" => Field::UserAgent,
            "upstream_cache_status" => Field::CacheStatus,
            "request_time" => Field::RequestTime,
            "upstream_response_time" => Field::UpstreamResponseTime,
            "okome_canary" => Field::Canary,
            "okome_warm" => Field::Warm,
            _ => return None,
        })
    }
}

/// A parsed line's fields, typed on demand.
pub trait Record<'a> {
    /// The bytes of `which` as logged; `None` when the format does not log it.
    fn raw(&self, which: Field) -> Option<&'a [u8]>;

    /// [`Record::raw`], with nginx's `-` for "no value" as `None`.
    #[inline(always)]
    fn known(&self, which: Field) -> Option<&'a [u8]> {
        self.raw(which).filter(|field| !matches!(field, [b'-']))
    }

    /// The request method (`$request_method`, else from `$request`).
    #[inline(always)]
    fn method(&self) -> Option<&'a [u8]> {
        if let Some(method) = self.known(Field::RequestMethod) {
            return Some(method);
        }
        let request = self.known(Field::Request)?;
        let space = find_byte(b' ', request)?;
        Some(&request[..space])
    }

    /// The request target, path and query as the client sent them
    /// (`$request_uri`, else from `$request` = `GET /x?y HTTP/1.1`).
    #[inline(always)]
    fn target(&self) -> Option<&'a [u8]> {
        if let Some(uri) = self.known(Field::RequestUri) {
            return Some(uri);
        }
        let request = self.known(Field::Request)?;
        // Nearly always `GET `: its space is then known without a search.
        let method_end = if is_at(request, 0, b"GET ") {
            3
        } else {
            find_byte(b' ', request)?
        };
        let rest = &request[method_end + 1..];
        // Nearly always ` HTTP/1.1`, ` HTTP/2.0` or ` HTTP/3.0`: check that
        // shape in place before searching backwards.
        let rest = match rest.len().checked_sub(9) {
            Some(space) if is_at(rest, space, b" HTTP/") => &rest[..space],
            _ => match rfind_byte(b' ', rest) {
                Some(space) if is_at(rest, space, b" HTTP/") => &rest[..space],
                _ => rest,
            },
        };
        (!rest.is_empty()).then_some(rest)
    }

    /// The request path: [`Record::target`] without its query string.
    #[inline(always)]
    fn path(&self) -> Option<&'a [u8]> {
        let target = self.target()?;
        Some(match find_byte(b'?', target) {
            Some(query) => &target[..query],
            None => target,
        })
    }

    /// `$status`.
    #[inline(always)]
    fn status(&self) -> Option<u16> {
        fields::three_digits(self.known(Field::Status)?.try_into().ok()?)
    }

    /// `$body_bytes_sent`, else `$bytes_sent`; `-` (no body, as Apache and
    /// some proxies log it) is 0.
    #[inline(always)]
    fn body_bytes(&self) -> Option<u64> {
        match self
            .raw(Field::BodyBytesSent)
            .or_else(|| self.raw(Field::BytesSent))?
        {
            b"-" => Some(0),
            raw => fields::parse_count(raw),
        }
    }

    /// `$http_user_agent`.
    #[inline(always)]
    fn user_agent(&self) -> Option<&'a [u8]> {
        self.known(Field::UserAgent)
    }

    /// `$upstream_cache_status` (`HIT`, `MISS`, …); `None` for `-` (the
    /// request never reached the cache, e.g. answered by the health gate).
    #[inline(always)]
    fn cache_status(&self) -> Option<&'a [u8]> {
        self.known(Field::CacheStatus)
    }

    /// `$request_time` in seconds.
    #[inline(always)]
    fn request_time(&self) -> Option<f64> {
        self.request_time_ms().map(|ms| ms as f64 / 1000.0)
    }

    /// `$request_time` in milliseconds (nginx's resolution).
    #[inline(always)]
    fn request_time_ms(&self) -> Option<u64> {
        fields::parse_seconds_ms(self.known(Field::RequestTime)?)
    }

    /// `$upstream_response_time` in seconds, summed over retries.
    #[inline(always)]
    fn upstream_time(&self) -> Option<f64> {
        self.upstream_time_ms().map(|ms| ms as f64 / 1000.0)
    }

    /// `$upstream_response_time` in milliseconds, summed over retries;
    /// `None` when no upstream answered (a cache hit).
    #[inline(always)]
    fn upstream_time_ms(&self) -> Option<u64> {
        fields::sum_seconds_ms(self.known(Field::UpstreamResponseTime)?)
    }

    /// Unix seconds of the request, from `$time_local`, `$time_iso8601` or
    /// `$msec`, whichever the format logs.
    #[inline(always)]
    fn time_local(&self) -> Option<i64> {
        if let Some(raw) = self.known(Field::TimeLocal) {
            return fields::parse_time_local(raw);
        }
        if let Some(raw) = self.known(Field::TimeIso8601) {
            return fields::parse_iso8601(raw);
        }
        fields::parse_msec(self.known(Field::Msec)?)
    }

    /// `$okome_canary`: `control`, `canary` or `debug`.
    #[inline(always)]
    fn canary(&self) -> Option<&'a [u8]> {
        self.known(Field::Canary)
    }

    /// `which` as logged (`-` included) as a [`ShortWord`], for telling a
    /// few known values apart; `None` when the format does not log it.
    #[inline(always)]
    fn short_word(&self, which: Field) -> Option<ShortWord> {
        self.raw(which).map(ShortWord::of)
    }

    /// Whether okome-prewarm sent the request (`$okome_warm` is `1`).
    #[inline(always)]
    fn warm(&self) -> bool {
        matches!(self.raw(Field::Warm), Some([b'1']))
    }
}

/// A field's last sixteen bytes (all of it when shorter) as one
/// little-endian word, in its top bytes and zero below, and its length.
///
/// A field that is one of a few names (`HIT`, `MISS`, …) is then told
/// apart by one compare of words, where comparing bytes takes a branch on
/// its length: a branch as random as the log, mispredicted on many lines.
/// The bytes sit at the top so that a field read where it lies in a line
/// is masked, not shifted (a shift by a run-time amount is a dozen
/// instructions on armv7's 32-bit words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortWord {
    /// The bytes, the field's last in the highest.
    pub word: u128,
    /// The field's length.
    pub len: usize,
}

/// `TOP[n]`: the top `n` bytes of a word.
const TOP: [u128; 17] = {
    let mut masks = [0u128; 17];
    let mut n = 1;
    while n <= 16 {
        masks[n] = u128::MAX << (8 * (16 - n));
        n += 1;
    }
    masks
};

impl ShortWord {
    /// Bytes a word holds.
    pub const BYTES: usize = 16;

    /// `field` copied into a word.
    pub fn of(field: &[u8]) -> Self {
        let kept = field.len().min(Self::BYTES);
        let mut bytes = [0u8; Self::BYTES];
        bytes[Self::BYTES - kept..].copy_from_slice(&field[field.len() - kept..]);
        ShortWord {
            word: u128::from_le_bytes(bytes),
            len: field.len(),
        }
    }

    /// `line[start..end]`, read as the sixteen bytes of the line that end
    /// where it ends (a field of a log line is never in its first sixteen)
    /// with those before it masked off: no copy of a run-time length.
    #[inline(always)]
    pub fn ending_at(line: &[u8], start: usize, end: usize) -> Self {
        let len = end - start;
        match end
            .checked_sub(Self::BYTES)
            .and_then(|from| line.get(from..end))
        {
            Some(window) => ShortWord {
                word: u128::from_le_bytes(window.try_into().expect("16 bytes"))
                    & TOP[len.min(Self::BYTES)],
                len,
            },
            None => Self::of(&line[start..end]),
        }
    }

    /// The word of a name shorter than [`ShortWord::BYTES`], at compile
    /// time.
    pub const fn of_name(name: &[u8]) -> u128 {
        assert!(name.len() < Self::BYTES);
        let mut word = 0u128;
        let mut at = 0;
        while at < name.len() {
            word |= (name[at] as u128) << (8 * (Self::BYTES - name.len() + at));
            at += 1;
        }
        word
    }
}

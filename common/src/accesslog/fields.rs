//! Decoding the typed fields of an access-log line: nginx times and
//! durations.
//!
//! Hand-written byte parsers rather than `str::parse` and a date crate:
//! they run once per line on millions of lines, must accept invalid UTF-8
//! around them, and only ever meet the few fixed shapes nginx writes.

use crate::time::days_from_civil;

fn digits(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 9 {
        return None;
    }
    let mut value = 0u32;
    for &byte in raw {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(byte - b'0');
    }
    Some(value)
}

fn month_number(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|month| month.as_slice() == name)
        .map(|index| index as u32 + 1)
}

/// Seconds since the epoch of a wall-clock time and its UTC offset, after
/// range checks (`60` seconds allowed for a leap second).
fn to_unix(date: (i64, u32, u32), time: (u32, u32, u32), offset_seconds: i64) -> Option<i64> {
    let (year, month, day) = date;
    let (hour, minute, second) = time;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds)
}

/// `+0100`, `-0530`, `+01:00` or `Z` as seconds east of UTC.
fn parse_offset(raw: &[u8]) -> Option<i64> {
    if raw == b"Z" {
        return Some(0);
    }
    let (&sign, rest) = raw.split_first()?;
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = match rest.len() {
        4 => (&rest[..2], &rest[2..]),
        5 if rest[2] == b':' => (&rest[..2], &rest[3..]),
        _ => return None,
    };
    let (hours, minutes) = (digits(hours)?, digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 3600 + minutes * 60))
}

/// Unix seconds of an nginx `$time_local` value: `20/Nov/2026:10:00:00 +0100`.
pub fn parse_time_local(raw: &[u8]) -> Option<i64> {
    if raw.len() != 26
        || raw[2] != b'/'
        || raw[6] != b'/'
        || raw[11] != b':'
        || raw[14] != b':'
        || raw[17] != b':'
        || raw[20] != b' '
    {
        return None;
    }
    let date = (
        i64::from(digits(&raw[7..11])?),
        month_number(&raw[3..6])?,
        digits(&raw[0..2])?,
    );
    let time = (
        digits(&raw[12..14])?,
        digits(&raw[15..17])?,
        digits(&raw[18..20])?,
    );
    to_unix(date, time, parse_offset(&raw[21..])?)
}

/// Unix seconds of an nginx `$time_iso8601` value: `2026-11-20T10:00:00+01:00`.
pub fn parse_iso8601(raw: &[u8]) -> Option<i64> {
    if raw.len() < 20
        || raw[4] != b'-'
        || raw[7] != b'-'
        || !matches!(raw[10], b'T' | b' ')
        || raw[13] != b':'
        || raw[16] != b':'
    {
        return None;
    }
    let date = (
        i64::from(digits(&raw[0..4])?),
        digits(&raw[5..7])?,
        digits(&raw[8..10])?,
    );
    let time = (
        digits(&raw[11..13])?,
        digits(&raw[14..16])?,
        digits(&raw[17..19])?,
    );
    to_unix(date, time, parse_offset(&raw[19..])?)
}

/// Unix seconds of an nginx `$msec` value: `1763632800.123`.
pub fn parse_msec(raw: &[u8]) -> Option<i64> {
    let whole = match memchr::memchr(b'.', raw) {
        Some(dot) => {
            digits(&raw[dot + 1..])?;
            &raw[..dot]
        }
        None => raw,
    };
    if whole.is_empty() || whole.len() > 12 || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        whole
            .iter()
            .fold(0i64, |value, &byte| value * 10 + i64::from(byte - b'0')),
    )
}

/// Milliseconds of a duration nginx writes in seconds with a millisecond
/// fraction (`$request_time`: `0.123`, `12`, `1.5`). Digits beyond the
/// third decimal are dropped. `None` for `-` or anything else.
pub fn parse_seconds_ms(raw: &[u8]) -> Option<u64> {
    // A few bytes: an inline scan beats a `memchr` call.
    let (whole, fraction) = match raw.iter().position(|&b| b == b'.') {
        Some(dot) => (&raw[..dot], &raw[dot + 1..]),
        None => (raw, &[][..]),
    };
    if whole.is_empty() || whole.len() > 12 {
        return None;
    }
    let mut ms = 0u64;
    for &byte in whole {
        if !byte.is_ascii_digit() {
            return None;
        }
        ms = ms * 10 + u64::from(byte - b'0');
    }
    ms *= 1000;
    let mut scale = 100;
    for &byte in fraction {
        if !byte.is_ascii_digit() {
            return None;
        }
        ms += u64::from(byte - b'0') * scale;
        scale /= 10;
    }
    Some(ms)
}

/// Milliseconds of an `$upstream_response_time` value, summing the list
/// nginx writes when it tried several upstreams (`0.002, 0.010 : 0.004`:
/// commas between servers, colons between upstream groups). `-` entries (a
/// server that gave no response) count nothing; `None` when no entry is a
/// number or one is neither a number nor `-`.
pub fn sum_seconds_ms(raw: &[u8]) -> Option<u64> {
    if !raw.iter().any(|&byte| byte == b',' || byte == b':') {
        // One upstream, as nearly always: no list to split.
        let item = raw.trim_ascii();
        return if matches!(item, [b'-']) {
            None
        } else {
            parse_seconds_ms(item)
        };
    }
    let mut total = 0u64;
    let mut any = false;
    for item in raw.split(|&byte| byte == b',' || byte == b':') {
        let item = item.trim_ascii();
        if matches!(item, [b'-']) {
            continue;
        }
        total = total.saturating_add(parse_seconds_ms(item)?);
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_local_with_offsets() {
        // 2026-11-20 09:00:00 UTC
        let utc = 1_795_165_200;
        assert_eq!(parse_time_local(b"20/Nov/2026:10:00:00 +0100"), Some(utc));
        assert_eq!(parse_time_local(b"20/Nov/2026:09:00:00 +0000"), Some(utc));
        assert_eq!(parse_time_local(b"20/Nov/2026:03:30:00 -0530"), Some(utc));
        assert_eq!(parse_time_local(b"01/Jan/1970:00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_time_local(b"29/Feb/2024:12:00:00 +0000"),
            Some(1_709_208_000)
        );
    }

    #[test]
    fn time_local_rejects_other_shapes() {
        for bad in [
            &b"20/Nov/2026:10:00:00"[..],
            b"20/Foo/2026:10:00:00 +0100",
            b"20/Nov/2026:25:00:00 +0100",
            b"2x/Nov/2026:10:00:00 +0100",
            b"20/Nov/2026:10:00:00 +01000",
            b"-",
            b"",
        ] {
            assert_eq!(
                parse_time_local(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn iso8601_and_msec() {
        assert_eq!(
            parse_iso8601(b"2026-11-20T10:00:00+01:00"),
            Some(1_795_165_200)
        );
        assert_eq!(parse_iso8601(b"2026-11-20T09:00:00Z"), Some(1_795_165_200));
        assert_eq!(parse_iso8601(b"2026-11-20"), None);
        assert_eq!(parse_msec(b"1795165200.123"), Some(1_795_165_200));
        assert_eq!(parse_msec(b"1795165200"), Some(1_795_165_200));
        assert_eq!(parse_msec(b"17951x5200.1"), None);
    }

    #[test]
    fn durations_in_milliseconds() {
        assert_eq!(parse_seconds_ms(b"0.000"), Some(0));
        assert_eq!(parse_seconds_ms(b"0.123"), Some(123));
        assert_eq!(parse_seconds_ms(b"12"), Some(12_000));
        assert_eq!(parse_seconds_ms(b"1.5"), Some(1_500));
        assert_eq!(parse_seconds_ms(b"1.23456"), Some(1_234));
        assert_eq!(parse_seconds_ms(b"-"), None);
        assert_eq!(parse_seconds_ms(b""), None);
        assert_eq!(parse_seconds_ms(b"1.2.3"), None);
    }

    #[test]
    fn upstream_lists_are_summed() {
        assert_eq!(sum_seconds_ms(b"0.002, 0.010 : 0.004"), Some(16));
        assert_eq!(sum_seconds_ms(b"0.250"), Some(250));
        assert_eq!(sum_seconds_ms(b"-, 0.010"), Some(10));
        assert_eq!(sum_seconds_ms(b"-"), None);
        assert_eq!(sum_seconds_ms(b"0.1, abc"), None);
    }
}

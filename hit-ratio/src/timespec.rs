//! `--since`/`--until` values: absolute times in the shapes an operator
//! types or copies from a log, or relative ages like `2h`.

use okome_accesslog::{parse_iso8601, parse_msec, parse_time_local};

/// Unix seconds for `text`, relative to `now`:
/// `90s`, `30m`, `2h`, `1d`, `1w` (ago); `2026-11-20`, `2026-11-20T10:00`,
/// `2026-11-20 10:00:00` (UTC unless followed by `Z` or `+01:00`);
/// nginx's `20/Nov/2026:10:00:00 +0100`; `@1795165200`.
pub fn parse(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(unix) = text.strip_prefix('@') {
        return parse_msec(unix.as_bytes()).ok_or_else(|| bad(text));
    }
    // An age (`90s`, `30m`, `2h`, `1d`, `1w`): the toolkit's one duration
    // reading; a bare number is not an age here (it could be a year).
    if text.ends_with(|c: char| c.is_ascii_alphabetic())
        && let Ok(age) = okome_common::duration::parse(text)
    {
        return Ok(now - age.as_secs() as i64);
    }
    if let Some(t) = parse_time_local(text.as_bytes()) {
        return Ok(t);
    }
    // ISO-like: complete the time and the offset, then parse strictly.
    let (date_time, offset) = split_offset(text);
    let complete = match date_time.len() {
        10 => format!("{date_time}T00:00:00"),
        16 => format!("{date_time}:00"),
        19 => date_time.to_string(),
        _ => return Err(bad(text)),
    };
    parse_iso8601(format!("{complete}{}", offset.unwrap_or("Z")).as_bytes())
        .ok_or_else(|| bad(text))
}

/// `2026-11-20T10:00+01:00` → (`2026-11-20T10:00`, `+01:00`).
fn split_offset(text: &str) -> (&str, Option<&str>) {
    if let Some(stripped) = text.strip_suffix('Z') {
        return (stripped, Some("Z"));
    }
    if text.len() > 10
        && let Some(at) = text[10..].rfind(['+', '-']).map(|at| at + 10)
    {
        return (&text[..at], Some(&text[at..]));
    }
    (text, None)
}

fn bad(text: &str) -> String {
    format!(
        "{text:?} is not a time: use an age like 30m, 2h, 1d, a date like 2026-11-20 or \
         2026-11-20T10:00 (UTC unless +01:00 follows), or an nginx time like \
         20/Nov/2026:10:00:00 +0100"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_165_200; // 2026-11-20 09:00:00 UTC

    #[test]
    fn relative_ages() {
        assert_eq!(parse("2h", NOW), Ok(NOW - 7200));
        assert_eq!(parse("30m", NOW), Ok(NOW - 1800));
        assert_eq!(parse("1d", NOW), Ok(NOW - 86_400));
        assert_eq!(parse("90s", NOW), Ok(NOW - 90));
        assert!(parse("2y", NOW).is_err());
    }

    #[test]
    fn absolute_times() {
        assert_eq!(parse("2026-11-20T09:00:00Z", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-20 09:00", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-20T10:00+01:00", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-20", NOW), Ok(NOW - 9 * 3600));
        assert_eq!(parse("20/Nov/2026:10:00:00 +0100", NOW), Ok(NOW));
        assert_eq!(parse("@1795165200", NOW), Ok(NOW));
        assert!(parse("yesterday", NOW).is_err());
        assert!(parse("2026-13-01", NOW).is_err());
    }
}

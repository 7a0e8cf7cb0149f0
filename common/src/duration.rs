//! The one way OKOME tools read a duration: `500ms`, `2s`, `1.5s`, `2m`,
//! `2h`, `1d`, `1w`, or a bare number of seconds.
//!
//! systemd's own spelling (what an operator writes in a unit next to the
//! defaults file), minus the combinations (`1h 30m`) no setting here needs.
//! Ranges are the caller's: a socket timeout refuses zero (zero means
//! "wait forever" to the socket API), a hold-down allows it, an age for
//! `--since` runs to weeks.

use std::time::Duration;

/// Parse `text` (see the module doc) into a non-negative duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let units: [(&str, f64); 7] = [
        ("ms", 0.001),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86_400.0),
        ("w", 604_800.0),
        ("", 1.0),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let bad = || format!("{text:?} is not a duration (e.g. 250ms, 1s, 1.5s, 2m, 1h)");
    let number = number.trim();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > 100.0 * 365.0 * 86_400.0 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_reads_like_systemd() {
        for (text, millis) in [
            ("500ms", 500),
            ("2s", 2000),
            ("1.5s", 1500),
            ("2", 2000),
            (" 2m ", 120_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("0", 0),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        for bad in [
            "", "ms", "-1s", "fast", "1x", "inf", "NaN", "1e3", "2 h x", "+1s",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

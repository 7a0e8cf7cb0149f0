//! Unix time to civil (proleptic Gregorian, UTC) date and time, and nginx's
//! `$time_local` text for it.
//!
//! The tools, their tests and the benches write access-log lines and report
//! times but need no time zones, so a date crate would be all weight: this
//! is Howard Hinnant's `civil_from_days` and `days_from_civil`, once, with
//! no feature gate so tests, xtask and every tool can use them. The
//! access-log parser's `parse_time_local` (text to unix time) is built on
//! `days_from_civil`.

/// Month abbreviations as nginx writes them in `$time_local`.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
#[inline]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `(year, month 1-12, day 1-31)` of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=12, 1..=31).
    (year, month as u32, day as u32)
}

/// `(year, month, day, hour, minute, second)` of a unix time, in UTC.
pub fn civil_from_unix(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400) as u32;
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

/// nginx `$time_local` for a unix time, in UTC: `20/Nov/2026:10:00:00 +0000`.
pub fn format_time_local(unix: i64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_unix(unix);
    let month = MONTHS[(month - 1) as usize];
    format!("{day:02}/{month}/{year}:{hour:02}:{minute:02}:{second:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_convert() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(-1), (1969, 12, 31, 23, 59, 59));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_168_800), (2026, 11, 20, 10, 0, 0));
        assert_eq!(
            format_time_local(1_795_168_800 + 3_723),
            "20/Nov/2026:11:02:03 +0000"
        );
    }

    #[test]
    fn days_and_dates_convert_both_ways() {
        for days in (-800_000..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let mut last = civil_from_days(-800_000);
        for days in -799_999..800_000 {
            let (year, month, day) = civil_from_days(days);
            let next_day = (year, month, day) == (last.0, last.1, last.2 + 1);
            let next_month = day == 1 && (year, month) == (last.0, last.1 + 1);
            let next_year = (month, day) == (1, 1) && year == last.0 + 1 && last.1 == 12;
            assert!(
                next_day || next_month || next_year,
                "{days}: {last:?} then {year}-{month}-{day}"
            );
            last = (year, month, day);
        }
    }
}

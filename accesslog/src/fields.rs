//! Decoding the typed fields of an access-log line: nginx times and
//! durations.
//!
//! Hand-written byte parsers rather than `str::parse` and a date crate:
//! they run once per line on millions of lines, must accept invalid UTF-8
//! around them, and only ever meet the few fixed shapes nginx writes.

use okome_common::time::days_from_civil;

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

/// Eight bytes of `line` ending at `end`, as a little-endian word (the
/// byte at `end - 1` is the most significant); `None` when `end < 8`.
#[inline(always)]
fn word_ending_at(line: &[u8], end: usize) -> Option<u64> {
    let bytes: &[u8; 8] = line.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(*bytes))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const ZEROS: u64 = 0x30 * ONES;
const HIGH_NIBBLES: u64 = 0xf0 * ONES;

/// `word` with its `8 - len` low bytes (those before a `len`-byte field
/// that ends the word) replaced by `'0'`: leading zeros.
#[inline(always)]
fn zero_padded(word: u64, len: usize) -> u64 {
    let field = u64::MAX << (8 * (8 - len));
    (word & field) | (ZEROS & !field)
}

/// Whether every byte of `word` is an ASCII digit. A carry out of one
/// byte needs an invalid byte, which fails its own test anyway.
#[inline(always)]
fn all_digits(word: u64) -> bool {
    (word & HIGH_NIBBLES) == ZEROS && (word.wrapping_add(6 * ONES) & HIGH_NIBBLES) == ZEROS
}

/// The decimal value of `line[end - len..end]` when that is 1 to 8 ASCII
/// digits, checked and converted a word at a time (no loop over the
/// digits); `None` when it is not, or when it cannot be loaded as a word
/// (`end < 8`, longer fields: the caller's byte loop decides those).
#[inline(always)]
pub(crate) fn digits_ending_at(line: &[u8], end: usize, len: usize) -> Option<u64> {
    if !(1..=8).contains(&len) {
        return None;
    }
    let word = zero_padded(word_ending_at(line, end)?, len);
    if !all_digits(word) {
        return None;
    }
    // Eight digits to a number in three multiplications (the first digit
    // is the lowest byte).
    let digits = word - ZEROS;
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    const LOW_OF_PAIRS: u64 = 0x0000_00ff_0000_00ff;
    let value = (pairs & LOW_OF_PAIRS)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((pairs >> 16) & LOW_OF_PAIRS).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(value)
}

/// Whether `line[end - len..end]` has the shape the generic walk asks of a
/// time in seconds: `-`, or ASCII digits and dots. What nginx writes for
/// `$request_time`, one to four digits, a dot and three digits (`0.085`),
/// is checked first, in one word.
#[inline(always)]
pub(crate) fn seconds_shaped_ending_at(line: &[u8], end: usize, len: usize) -> bool {
    // Byte 4 of the word ending at `end` is the fourth byte before `end`.
    const DOT: u64 = 0xff << 32;
    if (5..=8).contains(&len)
        && let Some(word) = word_ending_at(line, end)
        && word & DOT == u64::from(b'.') << 32
        && all_digits(zero_padded((word & !DOT) | (u64::from(b'0') << 32), len))
    {
        return true;
    }
    end.checked_sub(len)
        .and_then(|start| line.get(start..end))
        .is_some_and(seconds_shaped)
}

/// Whether `field` has the shape of a time in seconds: `-`, or ASCII
/// digits and dots.
pub(crate) fn seconds_shaped(field: &[u8]) -> bool {
    matches!(field, [b'-'])
        || (!field.is_empty() && field.iter().all(|&b| b.is_ascii_digit() || b == b'.'))
}

/// The value of three ASCII digits (`$status`).
#[inline(always)]
pub(crate) fn three_digits(bytes: &[u8; 3]) -> Option<u16> {
    let digit = |at: usize| u16::from(bytes[at].wrapping_sub(b'0'));
    let (hundreds, tens, ones) = (digit(0), digit(1), digit(2));
    (hundreds <= 9 && tens <= 9 && ones <= 9).then_some(hundreds * 100 + tens * 10 + ones)
}

/// A byte count (`$body_bytes_sent`): ASCII digits that fit a `u64`.
pub(crate) fn parse_count(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    // One pass: check and accumulate together.
    raw.iter().try_fold(0u64, |value, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
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
#[inline]
pub fn parse_seconds_ms(raw: &[u8]) -> Option<u64> {
    // What nginx writes: whole seconds, a dot and three decimals.
    if let [whole @ .., b'.', a, b, c] = raw
        && (1..=12).contains(&whole.len())
    {
        let digit = |byte: u8| Some(u64::from(byte.wrapping_sub(b'0'))).filter(|d| *d <= 9);
        let mut seconds = 0u64;
        for &byte in whole {
            seconds = seconds * 10 + digit(byte)?;
        }
        return Some(seconds * 1000 + digit(*a)? * 100 + digit(*b)? * 10 + digit(*c)?);
    }
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
#[inline]
pub fn sum_seconds_ms(raw: &[u8]) -> Option<u64> {
    // One upstream, as nearly always: `-` (a cache hit) or one number.
    match raw {
        [b'-'] => return None,
        _ => {
            if let Some(ms) = parse_seconds_ms(raw) {
                return Some(ms);
            }
        }
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
    fn reads_back_what_okome_common_writes() {
        for unix in [0, 951_782_400, 1_795_168_800, 4_102_444_799] {
            let text = okome_common::time::format_time_local(unix);
            assert_eq!(parse_time_local(text.as_bytes()), Some(unix), "{text}");
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

    proptest::proptest! {
        #[test]
        fn word_digit_checks_agree_with_byte_loops(
            line in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"0123456789./: -".to_vec()),
                    proptest::prelude::any::<u8>(),
                ],
                0..24,
            ),
            end in 0usize..26,
            len in 0usize..10,
        ) {
            let field = end.checked_sub(len).and_then(|start| line.get(start..end));
            let loadable = end >= 8 && end <= line.len() && (1..=8).contains(&len);
            let by_bytes = field.filter(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit));
            let expected = by_bytes
                .map(|f| f.iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0')));
            proptest::prop_assert_eq!(
                digits_ending_at(&line, end, len),
                if loadable { expected } else { None }
            );
            let dotted = field.is_some_and(|f| {
                !f.is_empty() && f.iter().all(|&b| b.is_ascii_digit() || b == b'.')
            });
            proptest::prop_assert_eq!(
                seconds_shaped_ending_at(&line, end, len),
                dotted || field == Some(b"-")
            );
            if let Some(three) = field.and_then(|f| <&[u8; 3]>::try_from(f).ok()) {
                proptest::prop_assert_eq!(three_digits(three), expected.map(|value| value as u16));
            }
        }
    }

    #[test]
    fn counts_that_do_not_fit_are_refused() {
        assert_eq!(parse_count(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_count(b"18446744073709551616"), None);
        assert_eq!(parse_count(b"99999999999999999999"), None);
        assert_eq!(parse_count(b"12a"), None);
        assert_eq!(parse_count(b""), None);
    }

    #[test]
    fn upstream_lists_are_summed() {
        assert_eq!(sum_seconds_ms(b"0.002, 0.010 : 0.004"), Some(16));
        assert_eq!(sum_seconds_ms(b"0.250"), Some(250));
        assert_eq!(sum_seconds_ms(b"-, 0.010"), Some(10));
        assert_eq!(sum_seconds_ms(b"-"), None);
        assert_eq!(sum_seconds_ms(b"0.1, abc"), None);
        assert_eq!(sum_seconds_ms(b" 0.250 "), Some(250));
        assert_eq!(sum_seconds_ms(b"12.000"), Some(12_000));
        assert_eq!(sum_seconds_ms(b"1.2x4"), None);
        assert_eq!(sum_seconds_ms(b""), None);
    }
}

//! The generic splitting rule, unrolled for the `okome` format.
//!
//! [`LogFormat::check`](super::LogFormat::check) walks a list of variables
//! and loads each closing literal, its first byte, its mask and its shape
//! from memory for every field of every line. For the one format the
//! toolkit's own nginx writes, the same walk is spelled out here with the
//! literals and shapes as constants, so each field search compiles to a
//! byte scan and an inline compare. It is the same rule, not a new one:
//! each field still ends at the first occurrence of its closing literal and
//! is shape-checked as the generic path does, and any line it does not
//! accept goes through the generic path, which gives the reason. A property
//! test (`tests.rs`) holds both paths to the same answer on dirty input.

use super::format::{MAX_VARIABLES, find_byte};

/// The first occurrence of `literal` in `line` at or after `from`: the
/// generic path's `find` for a constant literal and the default escaping.
#[inline(always)]
fn find_literal<const N: usize>(line: &[u8], from: usize, literal: &[u8; N]) -> Option<usize> {
    let mut at = from;
    loop {
        let found = at + find_byte(literal[0], line.get(at..)?)?;
        // A literal that does not fit before the end of the line cannot
        // occur further on either.
        let candidate: &[u8; N] = line.get(found..found + N)?.try_into().ok()?;
        if candidate == literal {
            return Some(found);
        }
        at = found + 1;
    }
}

fn digits(field: &[u8]) -> bool {
    field.iter().all(u8::is_ascii_digit)
}

/// Record the field ends of an `okome` line in `ends`, as
/// [`LogFormat::check`] would; `None` when the line does not fit (the
/// caller then asks the generic path why). Written in place: the array is
/// most of an `Entry`, and moving it costs more than a short field's search.
/// `line` is non-empty, without leading NULs, and shorter than 4 GiB.
///
/// [`LogFormat::check`]: super::LogFormat::check
#[inline(always)]
pub(super) fn split(line: &[u8], ends: &mut [u32; MAX_VARIABLES]) -> Option<()> {
    // $remote_addr - $remote_user [
    let end = find_literal(line, 0, b" - ")?;
    ends[0] = end as u32;
    let at = end + 3;
    let end = find_literal(line, at, b" [")?;
    ends[1] = end as u32;
    let at = end + 2;
    // $time_local] "
    let end = find_literal(line, at, b"] \"")?;
    let time = &line[at..end];
    if time.len() != 26 || time[2] != b'/' || time[6] != b'/' || time[11] != b':' {
        return None;
    }
    ends[2] = end as u32;
    let at = end + 3;
    // $request" $status $body_bytes_sent "
    let end = find_literal(line, at, b"\" ")?;
    ends[3] = end as u32;
    let at = end + 2;
    let end = find_literal(line, at, b" ")?;
    if end - at != 3 || !digits(&line[at..end]) {
        return None;
    }
    ends[4] = end as u32;
    let at = end + 1;
    let end = find_literal(line, at, b" \"")?;
    if end == at || !digits(&line[at..end]) {
        return None;
    }
    ends[5] = end as u32;
    let at = end + 2;
    // $http_referer" "$http_user_agent" cache=
    let end = find_literal(line, at, b"\" \"")?;
    ends[6] = end as u32;
    let at = end + 3;
    let end = find_literal(line, at, b"\" cache=")?;
    ends[7] = end as u32;
    let at = end + 8;
    // $upstream_cache_status rt=$request_time urt="
    let end = find_literal(line, at, b" rt=")?;
    ends[8] = end as u32;
    let at = end + 4;
    let end = find_literal(line, at, b" urt=\"")?;
    let seconds = &line[at..end];
    if !(seconds == b"-"
        || (!seconds.is_empty() && seconds.iter().all(|&b| b.is_ascii_digit() || b == b'.')))
    {
        return None;
    }
    ends[9] = end as u32;
    let at = end + 6;
    // $upstream_response_time" rid=$request_id canary=$okome_canary warm=
    let end = find_literal(line, at, b"\" rid=")?;
    ends[10] = end as u32;
    let at = end + 6;
    let end = find_literal(line, at, b" canary=")?;
    ends[11] = end as u32;
    let at = end + 8;
    let end = find_literal(line, at, b" warm=")?;
    ends[12] = end as u32;
    let at = end + 6;
    // $okome_warm runs to the end of the line and must not be empty.
    if at == line.len() {
        return None;
    }
    ends[13] = line.len() as u32;
    Some(())
}

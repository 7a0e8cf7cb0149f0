//! The generic splitting rule, specialised for the `okome` format.
//!
//! [`LogFormat::check`](crate::LogFormat::check) walks a list of variables
//! and searches for each closing literal from where the last field ended.
//! For the one format the toolkit's own nginx writes, most of that search
//! can be skipped: five of its closing literals contain a `"`, and nginx
//! writes `"` inside a value only as `\x22`. So where a literal that
//! contains a quote first occurs is fixed by where the line's quotes are,
//! and those are found sixteen bytes per step ([`first_positions`]) instead
//! of one search per field across the long request, referer and user
//! agent. Each field then ends where the generic walk would end it (the
//! first occurrence of its closing literal, checked byte for byte below)
//! and gets the same shape check. Any line this path does not accept goes
//! through the generic walk, which gives the reason; a property test
//! (`tests.rs`) holds both paths to the same answer on dirty input.

use crate::bytemask::{Bits, find_from, first_positions, is_at};
use crate::fields;
use crate::record::{Field, Record, ShortWord};

/// Variables in the `okome` format.
pub(crate) const VARIABLES: usize = 14;

/// The length of the literal after each variable of the `okome` format
/// (`" - "` after `$remote_addr`, …): where each field starts, as
/// constants (a test holds them to the compiled format).
pub(crate) const AFTER: [usize; VARIABLES] = [3, 2, 3, 2, 1, 2, 3, 8, 4, 6, 6, 8, 6, 0];

/// Where each field of an `okome` line ends.
pub(crate) type Ends = [u32; VARIABLES];

/// An `okome` line split by the fast path: the same fields as an
/// [`Entry`](crate::Entry) of the `okome` format, found without looking
/// anything up in a compiled format.
#[derive(Debug, Clone, Copy)]
pub struct OkomeEntry<'a> {
    line: &'a [u8],
    /// Field `i` is `line[start(i)..ends[i]]`, `start(i)` being 0 or
    /// `ends[i - 1] + AFTER[i - 1]`; [`split`] only returns ends for which
    /// every such range lies in `line` (see [`OkomeEntry::in_line`]).
    ends: Ends,
    /// `$status` and `$body_bytes_sent`, decoded while their shape was
    /// checked.
    status: u16,
    body_bytes: Option<u64>,
}

impl<'a> OkomeEntry<'a> {
    /// Split `line` by the fast path; `None` when it does not take the
    /// line (the generic walk then decides, and says why).
    #[inline(always)]
    pub(crate) fn split(line: &'a [u8], structure: &impl Structure) -> Option<Self> {
        // `split`'s ends fit a `u32` only then (the caller has checked:
        // this folds away).
        if line.len() > u32::MAX as usize {
            return None;
        }
        let Split {
            ends,
            status,
            body_bytes,
        } = split(line, structure)?;
        let entry = OkomeEntry {
            line,
            ends,
            status,
            body_bytes,
        };
        debug_assert!(
            (0..VARIABLES).all(|index| entry.in_line(index)),
            "{entry:?}"
        );
        Some(entry)
    }

    /// Where field `index` starts and ends in the line.
    #[inline(always)]
    fn range(&self, index: usize) -> (usize, usize) {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize + AFTER[index - 1],
        };
        (start, self.ends[index] as usize)
    }

    /// Whether field `index` is a range of the line: what [`split`]
    /// guarantees for every field, and [`OkomeEntry::span`] relies on.
    fn in_line(&self, index: usize) -> bool {
        let (start, end) = self.range(index);
        start <= end && end <= self.line.len()
    }

    /// Field `index`'s bytes, without a bounds check: the accessors slice
    /// five or six fields per line, and the splitter's checks have already
    /// placed each one inside the line.
    #[inline(always)]
    fn span(&self, index: usize) -> &'a [u8] {
        let (start, end) = self.range(index);
        debug_assert!(self.in_line(index), "field {index} of {self:?}");
        // SAFETY: `self` came from `OkomeEntry::split` (the only place one
        // is made), whose `ends` come from `split` on a line shorter than
        // 4 GiB, which guarantees `start <= end <= line.len()` for every
        // field (its doc comment says why); the fields are private and
        // nothing changes them after that.
        unsafe { self.line.get_unchecked(start..end) }
    }
}

impl<'a> Record<'a> for OkomeEntry<'a> {
    #[inline(always)]
    fn raw(&self, which: Field) -> Option<&'a [u8]> {
        let index = match which {
            Field::TimeLocal => 2,
            Field::Request => 3,
            Field::Status => 4,
            Field::BodyBytesSent => 5,
            Field::UserAgent => 7,
            Field::CacheStatus => 8,
            Field::RequestTime => 9,
            Field::UpstreamResponseTime => 10,
            Field::Canary => 12,
            Field::Warm => 13,
            Field::TimeIso8601
            | Field::Msec
            | Field::RequestMethod
            | Field::RequestUri
            | Field::BytesSent => return None,
        };
        Some(self.span(index))
    }

    #[inline(always)]
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }

    #[inline(always)]
    fn short_word(&self, which: Field) -> Option<ShortWord> {
        let index = match which {
            Field::CacheStatus => 8,
            Field::Canary => 12,
            _ => return self.raw(which).map(ShortWord::of),
        };
        let (start, end) = self.range(index);
        Some(ShortWord::ending_at(self.line, start, end))
    }

    #[inline(always)]
    fn body_bytes(&self) -> Option<u64> {
        self.body_bytes
    }
}

/// Where a line's quotes and spaces are, as the splitter (and the generic
/// walk, [`LogFormat::check_line`](crate::LogFormat::check_line)) asks for
/// them.
///
/// # Safety
///
/// [`split`]'s field ranges, which [`OkomeEntry::span`] slices unchecked,
/// rest on this order: `quotes` yields strictly increasing offsets;
/// `space_from(line, at)` is at or after `at`; `two_spaces_from(line, at)`
/// is `(first, second)` with `first` at or after `at` and `second` after
/// `first`.
pub(crate) unsafe trait Structure {
    /// The quotes of `line`, in order; possibly followed by offsets past
    /// its end (the reader's index holds the next line's quotes too), which
    /// `split` never takes as a field's end: it checks a byte or literal
    /// in the line after each quote it keeps.
    fn quotes(&self, line: &[u8]) -> impl Iterator<Item = usize>;
    /// The first space of `line` at or after `at`.
    fn space_from(&self, line: &[u8], at: usize) -> Option<usize>;
    /// The generic walk's quotes: asked for the first quote at or after
    /// an offset that never decreases (the splitter reads `quotes` in
    /// order instead).
    fn quote_cursor(&self, line: &[u8]) -> impl QuoteCursor;
    /// The first space of `line` at or after `at`, and the one after it.
    fn two_spaces_from(&self, line: &[u8], at: usize) -> Option<(usize, Option<usize>)>;
}

/// The first quote of a line at or after an offset, for offsets that never
/// decrease: a window of the reader's index ([`QuoteWindow`]), or a search
/// of the line.
pub(crate) trait QuoteCursor {
    /// The first quote of `line` at or after `from`, which is at least
    /// every `from` asked for before.
    fn quote_from(&mut self, line: &[u8], from: usize) -> Option<usize>;
}

/// The generic walk's quotes off the reader's index: each one read from a
/// window of the index at the offset asked for ([`Bits::first_from`]),
/// like its spaces. A cursor over the quotes in order (`BitIter`) has to
/// step over every quote that opens a field before it finds the one that
/// closes it: about 34 instructions per quoted field under callgrind
/// against 18 for the window.
pub(crate) struct QuoteWindow<'a>(Bits<'a>);

impl QuoteCursor for QuoteWindow<'_> {
    #[inline(always)]
    fn quote_from(&mut self, _: &[u8], from: usize) -> Option<usize> {
        self.0.first_from(from)
    }
}

impl QuoteCursor for Searched {
    #[inline(always)]
    fn quote_from(&mut self, line: &[u8], from: usize) -> Option<usize> {
        find_from(b'"', line, from)
    }
}

/// A line from a [`LineReader`](crate::LineReader): read off its index.
pub(crate) struct Indexed<'a> {
    pub(crate) quotes: Bits<'a>,
    pub(crate) spaces: Bits<'a>,
}

// SAFETY: `BitIter` reads bits off in increasing order, one word after the
// next; `first_from` returns `at` plus a bit count, or the first bit found
// word by word from `at`'s; `first_two_from`'s first is one of those, and
// its second the first's bit count plus one or more, or a `first_from`
// after the first.
unsafe impl Structure for Indexed<'_> {
    #[inline(always)]
    fn quotes(&self, _: &[u8]) -> impl Iterator<Item = usize> {
        self.quotes.iter_to_word_end()
    }

    #[inline(always)]
    fn space_from(&self, _: &[u8], at: usize) -> Option<usize> {
        self.spaces.first_from(at)
    }

    #[inline(always)]
    fn quote_cursor(&self, _: &[u8]) -> impl QuoteCursor {
        QuoteWindow(self.quotes)
    }

    #[inline(always)]
    fn two_spaces_from(&self, _: &[u8], at: usize) -> Option<(usize, Option<usize>)> {
        self.spaces.first_two_from(at)
    }
}

/// A line on its own: searched, sixteen bytes at a time.
pub(crate) struct Searched;

// SAFETY: `first_positions` records matches as it walks the line forward;
// `find_from` returns `from` plus an offset into `line[from..]`, and the
// second space is searched for after the first.
unsafe impl Structure for Searched {
    #[inline(always)]
    fn quotes(&self, line: &[u8]) -> impl Iterator<Item = usize> {
        let mut positions = [0u32; 8];
        let found = first_positions(b'"', line, &mut positions);
        positions.into_iter().take(found).map(|at| at as usize)
    }

    #[inline(always)]
    fn space_from(&self, line: &[u8], at: usize) -> Option<usize> {
        find_from(b' ', line, at)
    }

    #[inline(always)]
    fn quote_cursor(&self, _: &[u8]) -> impl QuoteCursor {
        Searched
    }

    #[inline(always)]
    fn two_spaces_from(&self, line: &[u8], at: usize) -> Option<(usize, Option<usize>)> {
        let first = find_from(b' ', line, at)?;
        Some((first, find_from(b' ', line, first + 1)))
    }
}

/// Where a literal that starts with a space first occurs in `line` at or
/// after `from`, when that is at the first space: a space not followed by
/// the rest of the literal makes the line the generic walk's to judge.
#[inline(always)]
fn at_first_space<const N: usize>(
    line: &[u8],
    structure: &impl Structure,
    from: usize,
    literal: &[u8; N],
) -> Option<usize> {
    let space = structure.space_from(line, from)?;
    is_at(line, space, literal).then_some(space)
}

/// What [`split`] finds in a line.
pub(crate) struct Split {
    pub(crate) ends: Ends,
    pub(crate) status: u16,
    pub(crate) body_bytes: Option<u64>,
}

/// The field ends of an `okome` line, as [`LogFormat::check`] would find
/// them; `None` when the line does not fit or is not one this path can
/// judge (the caller then asks the generic path). `line` is shorter than
/// 4 GiB.
///
/// [`OkomeEntry::span`] relies on every field returned being a range of
/// the line: each end is followed by a literal or byte checked in the line
/// (or is the line's end), so it is at most `line.len()`; and each field
/// starts at or before its end, by arithmetic on checked positions, or
/// because the quotes come in order, or because a space looked for from
/// `at` is at or after `at` (the contract of [`Structure`]).
///
/// [`LogFormat::check`]: crate::LogFormat::check
#[inline(always)]
pub(crate) fn split(line: &[u8], structure: &impl Structure) -> Option<Split> {
    let mut quotes = structure.quotes(line);
    let Head {
        ends: head,
        status,
        body_bytes,
        ..
    } = combined_head(line, structure, &mut quotes)?;
    let mut ends = [0u32; VARIABLES];
    ends[..HEAD].copy_from_slice(&head);
    let agent_end = quotes.next()?;
    if !is_at(line, agent_end, b"\" cache=") {
        return None;
    }
    // From here on every quote taken so far is inside the line.
    ends[7] = agent_end as u32;

    // $upstream_cache_status rt=$request_time urt="
    let (upstream, upstream_end) = (quotes.next()?, quotes.next()?);
    let cache_end = at_first_space(line, structure, agent_end + 8, b" rt=")?;
    let time_end = upstream.checked_sub(5)?;
    if time_end <= cache_end + 4 || !is_at(line, time_end, b" urt=") {
        return None;
    }
    if !fields::seconds_shaped_ending_at(line, time_end, time_end - (cache_end + 4)) {
        return None;
    }
    ends[8] = cache_end as u32;
    ends[9] = time_end as u32;

    // $upstream_response_time" rid=$request_id canary=$okome_canary warm=
    if !is_at(line, upstream_end, b"\" rid=") {
        return None;
    }
    ends[10] = upstream_end as u32;
    // The space after $request_id and the next one, from one look: the
    // request id (32 hex digits) and `canary=control` fit one index word.
    // ` canary=` holds no other space, so once it is checked the next
    // space is the first one after it.
    let (rid_end, next_space) = structure.two_spaces_from(line, upstream_end + 6)?;
    if !is_at(line, rid_end, b" canary=") {
        return None;
    }
    ends[11] = rid_end as u32;
    let canary_end = next_space?;
    // (` canary=` holds no space, so `canary_end` is past it; said here
    // too, as `span` relies on that, not on the search being right.)
    if canary_end < rid_end + 8 || !is_at(line, canary_end, b" warm=") {
        return None;
    }
    ends[12] = canary_end as u32;
    // $okome_warm runs to the end of the line and must not be empty.
    if canary_end + 6 >= line.len() {
        return None;
    }
    ends[13] = line.len() as u32;
    Some(Split {
        ends,
        status,
        body_bytes,
    })
}

/// The variables of nginx's `combined` format before its user agent:
/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer"`, which the `okome` format and most
/// sites' own formats (nginx's sample `main` among them) start with.
pub(crate) const HEAD: usize = 7;

/// The literal after each of the [`HEAD`] variables (`combined_head`
/// places these; a test holds them to [`COMBINED_LOG_FORMAT`]'s).
///
/// [`COMBINED_LOG_FORMAT`]: crate::COMBINED_LOG_FORMAT
pub(crate) const HEAD_LITERALS: [&str; HEAD] = [" - ", " [", "] \"", "\" ", " ", " \"", "\" \""];

/// What [`combined_head`] finds in a line.
pub(crate) struct Head {
    /// Where each of the first [`HEAD`] fields ends.
    pub(crate) ends: [u32; HEAD],
    pub(crate) status: u16,
    pub(crate) body_bytes: Option<u64>,
    /// The quote that opens the field after `$http_referer`: that field
    /// starts after it.
    pub(crate) agent: usize,
}

/// The ends of the [`HEAD`] fields of a line of a format that starts
/// with them (and nothing before them), as the generic walk would find
/// them, taking `quotes` from the line's first on (the caller reads the
/// rest); `None` when the line does not fit or is not one this path can
/// judge. `agent`, the quote after the referer's, may lie past the line
/// (the index holds the next line's quotes too): the caller checks it.
/// Every end returned is in the line.
#[inline(always)]
pub(crate) fn combined_head(
    line: &[u8],
    structure: &impl Structure,
    quotes: &mut impl Iterator<Item = usize>,
) -> Option<Head> {
    let mut ends = [0u32; HEAD];
    // The quotes around $request and $http_referer, and the one after,
    // each taken when its field is checked.
    let request = quotes.next()?;
    // $remote_addr - $remote_user [$time_local] "  — the time is 26 bytes,
    // so `[` is 29 bytes before the first quote.
    let user_end = request.checked_sub(30)?;
    if !is_at(line, user_end, b" [") || !is_at(line, request - 2, b"] ") {
        return None;
    }
    let addr_end = at_first_space(line, structure, 0, b" - ")?;
    // The first ` [` after the user must be the one before the time. A
    // one-byte user (`-` in nearly every line) holds none: a ` [` at its
    // byte would need a `[` where the space before the time is.
    if user_end != addr_end + 4 {
        let mut space = addr_end + 3;
        loop {
            space = structure.space_from(line, space)?;
            if is_at(line, space, b" [") {
                break;
            }
            space += 1;
        }
        if space != user_end {
            return None;
        }
    }
    let time = &line[user_end + 2..request - 2];
    if time[2] != b'/' || time[6] != b'/' || time[11] != b':' {
        return None;
    }
    ends[0] = addr_end as u32;
    ends[1] = user_end as u32;
    ends[2] = (request - 2) as u32;

    // $request" $status $body_bytes_sent "
    // (A quote may be past the line's end, until one is checked to be
    // followed by a literal in the line: what is read here is `get`.)
    let (request_end, referer) = (quotes.next()?, quotes.next()?);
    let status = request_end + 2;
    let bytes_end = referer.checked_sub(1)?;
    if line.get(request_end + 1) != Some(&b' ')
        || bytes_end <= status + 4
        || line.get(status + 3) != Some(&b' ')
        || line.get(bytes_end) != Some(&b' ')
    {
        return None;
    }
    let status_code = fields::three_digits(line.get(status..status + 3)?.try_into().ok()?)?;
    let body_bytes = line.get(status + 4..bytes_end)?;
    let body_bytes = match fields::digits_ending_at(line, bytes_end, body_bytes.len()) {
        Some(value) => Some(value),
        // Longer than eight digits: the shape is still digits only.
        None if body_bytes.len() > 8 && body_bytes.iter().all(u8::is_ascii_digit) => {
            fields::parse_count(body_bytes)
        }
        // `-` (no body: Apache's %b and some proxies; nginx itself writes 0)
        // is left to the generic walk, which reads it as 0. An arm for it
        // here cost the loop 23 instructions a line (5.5 out of line) under
        // callgrind, for lines nginx does not write.
        None => return None,
    };
    ends[3] = request_end as u32;
    ends[4] = (status + 3) as u32;
    ends[5] = bytes_end as u32;

    // $http_referer" "
    let (referer_end, agent) = (quotes.next()?, quotes.next()?);
    if agent != referer_end + 2 || line.get(referer_end + 1) != Some(&b' ') {
        return None;
    }
    ends[6] = referer_end as u32;
    Some(Head {
        ends,
        status: status_code,
        body_bytes,
        agent,
    })
}

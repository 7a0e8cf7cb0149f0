//! Counting: what one pass over a run of log lines adds up to.
//!
//! A [`Tally`] is filled line by line on the hot path (no allocation per
//! line: fixed arrays, a bounded top-N, bounded histograms, a bounded time
//! series) and tallies of parallel chunks [`merge`](Tally::merge) exactly,
//! so the figures do not depend on `--threads`.

use std::collections::BTreeMap;
use std::hint::select_unpredictable;
use std::io::{self, Read};

use okome_accesslog::{Field, Line, LineReader, LogFormat, Record, ShortWord};

use crate::groups::PathGroups;
use crate::histogram::Histogram;
use crate::topn::TopN;

/// The cache statuses nginx writes, in report order; `-` means the request
/// never went through the cache (the health gate answered, a redirect, …).
pub const CACHE_STATUSES: [&str; 8] = [
    "HIT",
    "MISS",
    "EXPIRED",
    "STALE",
    "UPDATING",
    "REVALIDATED",
    "BYPASS",
    "-",
];
const HIT: usize = 0;
const MISS: usize = 1;
const EXPIRED: usize = 2;
const STALE: usize = 3;
const UPDATING: usize = 4;
const REVALIDATED: usize = 5;
const DASH: usize = 7;
/// Index used for a cache status nginx does not define.
const UNKNOWN: usize = 8;
/// Cache-status indexes: the statuses nginx defines, and `UNKNOWN`.
const CACHE_INDEXES: usize = CACHE_STATUSES.len() + 1;

/// Distinct unknown cache-status values kept by name; more go to `other`.
pub const MAX_UNKNOWN: usize = 16;
/// Malformed lines remembered per chunk for `-v`.
pub const SAMPLES: usize = 10;
/// Time-series buckets kept (the most recent); a week of minutes.
pub const MAX_BUCKETS: usize = 10_080;
/// Canary variants, in report order; anything else is `other`.
pub const CANARY_VARIANTS: [&str; VARIANTS] = ["control", "canary", "debug", "-", "other"];
const VARIANTS: usize = 5;

/// A few names of distinct lengths, each shorter than a [`ShortWord`], by
/// length: the length picks the one candidate, and one compare of words,
/// taken by a select, confirms it. No branch depends on the value, which is
/// as random as the log.
struct ByLength([(u128, usize); ShortWord::BYTES + 1]);

/// Where [`ByLength`] has no name of a length.
const NO_NAME: u128 = 1;

impl ByLength {
    /// The table of `names`, each with its index in the slice.
    const fn new(names: &[&'static str]) -> Self {
        // A field shorter than a word has a zero lowest byte, so no such
        // field's word is 1; a longer one never matches (see `find`).
        let mut table = [(NO_NAME, usize::MAX); ShortWord::BYTES + 1];
        let mut index = 0;
        while index < names.len() {
            let name = names[index].as_bytes();
            assert!(table[name.len()].0 == NO_NAME, "distinct lengths");
            table[name.len()] = (ShortWord::of_name(name), index);
            index += 1;
        }
        ByLength(table)
    }

    /// The index of `field`, or `otherwise`.
    #[inline(always)]
    fn find(&self, field: ShortWord, otherwise: usize) -> usize {
        let (name, index) = self.0[field.len.min(ShortWord::BYTES)];
        let found = (field.word == name) & (field.len < ShortWord::BYTES);
        select_unpredictable(found, index, otherwise)
    }
}

/// nginx's cache statuses, `-` included (each of a different length).
const CACHE_BY_LENGTH: ByLength = ByLength::new(&CACHE_STATUSES);

/// The index of a cache-status field in [`CACHE_STATUSES`], or `UNKNOWN`;
/// `DASH` when the format does not log it.
#[inline(always)]
fn cache_index(status: Option<ShortWord>) -> usize {
    status.map_or(DASH, |status| CACHE_BY_LENGTH.find(status, UNKNOWN))
}

/// The canary variants nginx logs, and `-` (each of a different length).
const CANARY_BY_LENGTH: ByLength = ByLength::new(&[
    CANARY_VARIANTS[0],
    CANARY_VARIANTS[1],
    CANARY_VARIANTS[2],
    CANARY_VARIANTS[3],
]);

/// Requests and body bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Requests.
    pub requests: u64,
    /// Body bytes sent.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.requests += other.requests;
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The figures the three ratios and the origin savings are computed from,
/// kept overall, per path group and per canary variant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Every counted request.
    pub requests: u64,
    /// Requests whose cache status is not `-`.
    pub with_status: u64,
    /// HIT + STALE + UPDATING + REVALIDATED: answered from the cache.
    pub from_cache: u64,
    /// HIT.
    pub hits: u64,
    /// HIT + MISS + EXPIRED.
    pub hit_miss_expired: u64,
    /// Body bytes of requests with a cache status.
    pub bytes_with_status: u64,
    /// Body bytes answered from the cache.
    pub bytes_from_cache: u64,
    /// HIT + STALE + UPDATING: answered without asking the origin at all.
    pub without_origin: u64,
    /// Requests with an upstream response time: nginx asked the origin.
    pub origin: u64,
    /// Their summed upstream time (ms).
    pub upstream_ms: u64,
    /// MISS + EXPIRED requests with an upstream time, and that time (ms):
    /// what a request costs the origin when the cache cannot help.
    pub miss_upstream_n: u64,
    /// See `miss_upstream_n`.
    pub miss_upstream_ms: u64,
}

impl Mix {
    /// Fold in the requests of one cache status.
    fn add(&mut self, cache: usize, cell: &Cell) {
        let n = cell.requests;
        self.requests += n;
        self.origin += cell.origin;
        self.upstream_ms = self.upstream_ms.saturating_add(cell.upstream_ms);
        if cache == DASH {
            return;
        }
        self.with_status += n;
        self.bytes_with_status = self.bytes_with_status.saturating_add(cell.bytes);
        match cache {
            HIT | STALE | UPDATING | REVALIDATED => {
                self.from_cache += n;
                self.bytes_from_cache = self.bytes_from_cache.saturating_add(cell.bytes);
                if cache != REVALIDATED {
                    self.without_origin += n;
                }
                if cache == HIT {
                    self.hits += n;
                    self.hit_miss_expired += n;
                }
            }
            MISS | EXPIRED => {
                self.hit_miss_expired += n;
                self.miss_upstream_n += cell.origin;
                self.miss_upstream_ms = self.miss_upstream_ms.saturating_add(cell.upstream_ms);
            }
            _ => {}
        }
    }
}

/// The requests of one path group, canary variant and cache status. Every
/// figure of a [`Mix`] is a sum over such cells, so the hot loop adds each
/// line to one cell (four additions) and the mixes are folded from the
/// cells when the report asks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cell {
    requests: u64,
    bytes: u64,
    /// Requests with an upstream response time, and that time (ms).
    origin: u64,
    upstream_ms: u64,
}

impl Cell {
    fn merge(&mut self, o: &Cell) {
        self.requests += o.requests;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.origin += o.origin;
        self.upstream_ms = self.upstream_ms.saturating_add(o.upstream_ms);
    }
}

/// One time-series bucket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Counted requests.
    pub requests: u64,
    /// Requests with a cache status.
    pub with_status: u64,
    /// Requests answered from the cache.
    pub from_cache: u64,
}

impl Point {
    fn merge(&mut self, o: &Point) {
        self.requests += o.requests;
        self.with_status += o.with_status;
        self.from_cache += o.from_cache;
    }
}

/// The request hit ratio over time, in buckets of `width` seconds (UTC).
#[derive(Debug, Clone)]
pub struct Series {
    /// Bucket width in seconds.
    pub width: i64,
    buckets: BTreeMap<i64, Point>,
    current: Option<(i64, Point)>,
    /// Older buckets were dropped to stay within [`MAX_BUCKETS`].
    pub truncated: bool,
}

impl Series {
    fn new(width: i64) -> Self {
        Series {
            width,
            buckets: BTreeMap::new(),
            current: None,
            truncated: false,
        }
    }

    #[inline]
    fn add(&mut self, time: i64, cache: usize) {
        let key = time.div_euclid(self.width) * self.width;
        match &mut self.current {
            Some((current, _)) if *current == key => {}
            _ => {
                self.flush();
                self.current = Some((key, Point::default()));
            }
        }
        let point = &mut self.current.as_mut().expect("set above").1;
        point.requests += 1;
        if cache != DASH {
            point.with_status += 1;
        }
        if matches!(cache, HIT | STALE | UPDATING | REVALIDATED) {
            point.from_cache += 1;
        }
    }

    fn flush(&mut self) {
        if let Some((key, point)) = self.current.take() {
            self.buckets.entry(key).or_default().merge(&point);
            self.trim();
        }
    }

    fn trim(&mut self) {
        while self.buckets.len() > MAX_BUCKETS {
            self.buckets.pop_first();
            self.truncated = true;
        }
    }

    fn merge(&mut self, other: &mut Series) {
        self.flush();
        other.flush();
        for (key, point) in &other.buckets {
            self.buckets.entry(*key).or_default().merge(point);
        }
        self.truncated |= other.truncated;
        self.trim();
    }

    /// Buckets in time order: (start, counts).
    pub fn points(&mut self) -> impl Iterator<Item = (i64, Point)> + '_ {
        self.flush();
        self.buckets.iter().map(|(k, p)| (*k, *p))
    }
}

/// What is counted, fixed for a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Path-group prefixes (besides `/` and `other`).
    pub groups: Vec<Vec<u8>>,
    /// Count okome-prewarm's own requests.
    pub include_warm: bool,
    /// Count only requests at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Count only requests before this time.
    pub until: Option<i64>,
    /// Time-series bucket width in seconds.
    pub by: Option<i64>,
    /// Keep a top-N of missed paths with this many counters.
    pub top_capacity: Option<usize>,
    /// Latency histograms per cache status.
    pub latency: bool,
}

impl Options {
    fn needs_time(&self) -> bool {
        self.since.is_some() || self.until.is_some() || self.by.is_some()
    }

    /// Whether anything beyond the default report is asked for.
    fn has_extras(&self) -> bool {
        self.needs_time() || self.top_capacity.is_some() || self.latency
    }
}

/// A malformed line remembered for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Line number within the chunk (1-based).
    pub line: u64,
    /// Why it did not parse.
    pub reason: String,
    /// Its first [`SAMPLE_TEXT`] bytes, raw: for the wrong-format warning.
    pub text: Vec<u8>,
}

/// How much of a malformed line a [`Sample`] keeps.
pub const SAMPLE_TEXT: usize = 4096;

/// Everything counted over a run of lines.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Lines read.
    pub lines: u64,
    /// Lines that did not fit the format (or, when time matters, whose
    /// time did not parse).
    pub malformed: u64,
    /// okome-prewarm requests left out.
    pub warm: u64,
    /// Requests outside `--since`/`--until`.
    pub outside: u64,
    /// The first few malformed lines.
    pub samples: Vec<Sample>,
    /// Per path group × canary variant × cache index; see [`Tally::cell`].
    cells: Vec<Cell>,
    /// `options.groups`, compiled.
    groups: PathGroups,
    /// Unknown cache statuses by name (at most [`MAX_UNKNOWN`]).
    pub unknown: Vec<(Vec<u8>, Count)>,
    /// Unknown cache statuses beyond that.
    pub unknown_other: Count,
    /// Requests per HTTP status code (100–599); others in `http_other`.
    pub http: Box<[u64; 600]>,
    /// Requests with a status outside 100–599 or none.
    pub http_other: u64,
    /// Hit ratio over time (`--by`).
    pub series: Option<Series>,
    /// Most-missed paths (`--top`).
    pub top: Option<TopN>,
    /// Request-time histograms per cache status (+ one for unknown).
    pub latency: Option<Vec<Histogram>>,
    /// Earliest and latest request time seen (when times are read).
    pub first: Option<i64>,
    /// See `first`.
    pub last: Option<i64>,
}

impl Tally {
    /// An empty tally for `options`.
    pub fn new(options: &Options) -> Self {
        let groups = PathGroups::new(&options.groups);
        Tally {
            lines: 0,
            malformed: 0,
            warm: 0,
            outside: 0,
            samples: Vec::new(),
            cells: vec![Cell::default(); groups.count() * VARIANTS * CACHE_INDEXES],
            groups,
            unknown: Vec::new(),
            unknown_other: Count::default(),
            http: Box::new([0; 600]),
            http_other: 0,
            series: options.by.map(Series::new),
            top: options.top_capacity.map(TopN::new),
            latency: options
                .latency
                .then(|| vec![Histogram::default(); CACHE_STATUSES.len() + 1]),
            first: None,
            last: None,
        }
    }

    /// Count a malformed line, keeping the first few as samples. Out of
    /// line: the hot loop keeps no registers for it.
    #[cold]
    #[inline(never)]
    fn malformed(&mut self, text: &[u8], reason: impl FnOnce() -> String) {
        self.malformed += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(Sample {
                line: self.lines,
                reason: reason(),
                text: text[..text.len().min(SAMPLE_TEXT)].to_vec(),
            });
        }
    }

    /// Count every line of `reader`.
    ///
    /// The loop is built twice: the default report's copy has no check for
    /// the time filter, series, top-N or latency histograms left in it
    /// (those checks cost about 3 % of a default run).
    pub fn count_lines(
        &mut self,
        reader: &mut LineReader<impl Read>,
        format: &LogFormat,
        options: &Options,
    ) -> io::Result<()> {
        if options.has_extras() {
            reader.each_line(|line| self.line::<true>(format, options, &line))
        } else {
            reader.each_line(|line| self.line::<false>(format, options, &line))
        }
    }

    /// Count one line; `EXTRAS` is [`Options::has_extras`]. Truncated lines
    /// (longer than the reader's cap) are malformed.
    #[inline(always)]
    fn line<const EXTRAS: bool>(&mut self, format: &LogFormat, options: &Options, line: &Line<'_>) {
        self.lines += 1;
        if line.truncated {
            self.malformed(line.bytes, || "line longer than the line cap".to_string());
            return;
        }
        if !format.is_okome() {
            self.generic_line::<EXTRAS>(format, options, line);
            return;
        }
        match format.check_okome_line(line) {
            Some(entry) => self.entry::<EXTRAS>(&entry, options),
            None => self.okome_miss::<EXTRAS>(format, options, line),
        }
    }

    /// A line of an `okome` log that its fast path did not take (rare:
    /// malformed, or an older format). Out of line and cold, so that the
    /// fast path's many early exits keep nothing in registers for it.
    #[cold]
    #[inline(never)]
    fn okome_miss<const EXTRAS: bool>(
        &mut self,
        format: &LogFormat,
        options: &Options,
        line: &Line<'_>,
    ) {
        self.generic_line::<EXTRAS>(format, options, line);
    }

    /// A line split by the generic walk (off the reader's index, as the
    /// okome fast path places its fields).
    #[inline(always)]
    fn generic_line<const EXTRAS: bool>(
        &mut self,
        format: &LogFormat,
        options: &Options,
        line: &Line<'_>,
    ) {
        // Borrowed where it lies: an entry is mostly its field-end array,
        // and moving it out of the result costs a copy per line.
        match &format.check_line(line) {
            Ok(entry) => self.entry::<EXTRAS>(entry, options),
            Err(why) => self.malformed(line.bytes, || why.to_string()),
        }
    }

    #[inline(always)]
    fn entry<'a, const EXTRAS: bool>(&mut self, entry: &impl Record<'a>, options: &Options) {
        if !options.include_warm && entry.warm() {
            self.warm += 1;
            return;
        }
        let mut time = None;
        if EXTRAS && options.needs_time() {
            let Some(t) = entry.time_local() else {
                self.malformed(&[], || "the request time does not parse".to_string());
                return;
            };
            if options.since.is_some_and(|since| t < since)
                || options.until.is_some_and(|until| t >= until)
            {
                self.outside += 1;
                return;
            }
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
            time = Some(t);
        }
        let cache = cache_index(entry.short_word(Field::CacheStatus));
        let bytes = entry.body_bytes().unwrap_or(0);
        let upstream_ms = entry.upstream_time_ms();
        if cache == UNKNOWN {
            let status = entry.cache_status().unwrap_or_default();
            self.count_unknown(status, Count { requests: 1, bytes });
        }
        match entry.status() {
            Some(code @ 100..=599) => self.http[code as usize] += 1,
            _ => self.http_other += 1,
        }
        let target = entry.target();
        let group = self.groups.of_target(target);
        let variant = entry
            .short_word(Field::Canary)
            .map_or(3, |canary| CANARY_BY_LENGTH.find(canary, 4));
        let cell = &mut self.cells[Self::cell(group, variant, cache)];
        cell.requests += 1;
        // Saturating: a forged 20-digit count must not wrap the sums
        // (an add and a conditional move, no branch).
        cell.bytes = cell.bytes.saturating_add(bytes);
        // Added whether or not nginx asked the origin: no branch on it.
        let (origin, ms) = upstream_ms.map_or((0, 0), |ms| (1, ms));
        cell.origin += origin;
        cell.upstream_ms = cell.upstream_ms.saturating_add(ms);
        // The rest is for --by, --top and latency only: the default
        // report's loop stops here.
        if !EXTRAS {
            return;
        }
        if let (Some(series), Some(t)) = (&mut self.series, time) {
            series.add(t, cache);
        }
        if let Some(top) = &mut self.top
            && matches!(cache, MISS | EXPIRED)
        {
            top.add(entry.path().unwrap_or(b"-"));
        }
        if let Some(latency) = &mut self.latency
            && let Some(ms) = entry.request_time_ms()
        {
            latency[cache].record(ms);
        }
    }

    fn count_unknown(&mut self, name: &[u8], counted: Count) {
        if let Some((_, count)) = self.unknown.iter_mut().find(|(n, _)| n == name) {
            count.add(counted);
        } else if self.unknown.len() < MAX_UNKNOWN {
            self.unknown.push((name.to_vec(), counted));
        } else {
            self.unknown_other.add(counted);
        }
    }

    /// Where the cell of a path group, canary variant and cache index is.
    #[inline]
    fn cell(group: usize, variant: usize, cache: usize) -> usize {
        (group * VARIANTS + variant) * CACHE_INDEXES + cache
    }

    /// Each cell with its path group, canary variant and cache index.
    fn cells(&self) -> impl Iterator<Item = (usize, usize, usize, &Cell)> {
        self.cells.iter().enumerate().map(|(index, cell)| {
            let cache = index % CACHE_INDEXES;
            let variant = index / CACHE_INDEXES % VARIANTS;
            let group = index / CACHE_INDEXES / VARIANTS;
            (group, variant, cache, cell)
        })
    }

    /// All counted requests.
    pub fn overall(&self) -> Mix {
        let mut mix = Mix::default();
        for (_, _, cache, cell) in self.cells() {
            mix.add(cache, cell);
        }
        mix
    }

    /// Per path group: `/`, each prefix, `other`.
    pub fn groups(&self) -> Vec<Mix> {
        let mut mixes = vec![Mix::default(); self.cells.len() / (VARIANTS * CACHE_INDEXES)];
        for (group, _, cache, cell) in self.cells() {
            mixes[group].add(cache, cell);
        }
        mixes
    }

    /// Per canary variant, indexed like [`CANARY_VARIANTS`].
    pub fn canary(&self) -> [Mix; VARIANTS] {
        let mut mixes = [Mix::default(); VARIANTS];
        for (_, variant, cache, cell) in self.cells() {
            mixes[variant].add(cache, cell);
        }
        mixes
    }

    /// Per cache status, indexed like [`CACHE_STATUSES`] (unknown statuses
    /// are in `unknown`).
    pub fn cache(&self) -> [Count; CACHE_STATUSES.len()] {
        let mut counts = [Count::default(); CACHE_STATUSES.len()];
        for (_, _, cache, cell) in self.cells() {
            if let Some(count) = counts.get_mut(cache) {
                count.add(Count {
                    requests: cell.requests,
                    bytes: cell.bytes,
                });
            }
        }
        counts
    }

    /// Requests counted (parsed, not prewarm, inside the time window).
    pub fn counted(&self) -> u64 {
        self.cells.iter().map(|cell| cell.requests).sum()
    }

    /// Lines that parsed.
    pub fn parsed(&self) -> u64 {
        self.lines - self.malformed
    }

    /// Fold in the tally of another chunk. Its malformed-line samples are
    /// not taken: their numbers are relative to that chunk, and the caller
    /// places them (see `scan`).
    pub fn merge(&mut self, mut other: Tally) {
        self.lines += other.lines;
        self.malformed += other.malformed;
        self.warm += other.warm;
        self.outside += other.outside;
        for (mine, theirs) in self.cells.iter_mut().zip(&other.cells) {
            mine.merge(theirs);
        }
        for (name, count) in other.unknown {
            self.count_unknown(&name, count);
        }
        self.unknown_other.add(other.unknown_other);
        for (mine, theirs) in self.http.iter_mut().zip(other.http.iter()) {
            *mine += theirs;
        }
        self.http_other += other.http_other;
        if let (Some(mine), Some(theirs)) = (&mut self.series, &mut other.series) {
            mine.merge(theirs);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.top, &other.top) {
            mine.merge(theirs);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.latency, &other.latency) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.merge(t);
            }
        }
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_apart_at_every_length_and_byte() {
        let table = ByLength::new(&CACHE_STATUSES);
        for (index, name) in CACHE_STATUSES.iter().enumerate() {
            let name = name.as_bytes();
            let word = |field: &[u8]| ShortWord::of(field);
            assert_eq!(table.find(word(name), UNKNOWN), index);
            // Read where it lies in a line, as the okome fast path does.
            let line = [b"0123456789abcdefcache=".as_slice(), name, b" rt="].concat();
            let in_line = ShortWord::ending_at(&line, 22, 22 + name.len());
            assert_eq!(in_line, word(name));
            for at in 0..name.len() {
                for flip in [0x01, 0x20, 0x80] {
                    let mut other = name.to_vec();
                    other[at] ^= flip;
                    assert_eq!(table.find(word(&other), UNKNOWN), UNKNOWN, "{other:?}");
                }
            }
            let longer = [name, b"X"].concat();
            assert_ne!(table.find(word(&longer), UNKNOWN), index);
        }
        assert_eq!(table.find(ShortWord::of(b""), UNKNOWN), UNKNOWN);
        for long in [[b'H'; 40], [0; 40], [0xff; 40]] {
            for len in [15, 16, 17, 40] {
                assert_eq!(table.find(ShortWord::of(&long[..len]), UNKNOWN), UNKNOWN);
            }
        }
        // A word of 1, what a length without a name holds: 16 bytes long.
        let one = [[1u8].as_slice(), &[0; 15]].concat();
        assert_eq!(ShortWord::of(&one).word, NO_NAME);
        assert_eq!(table.find(ShortWord::of(&one), UNKNOWN), UNKNOWN);
        assert_eq!(cache_index(None), DASH);
        assert_eq!(cache_index(Some(ShortWord::of(b"-"))), DASH);
    }

    fn options() -> Options {
        Options {
            groups: vec![b"/assets".to_vec(), b"/api".to_vec()],
            include_warm: false,
            since: None,
            until: None,
            by: Some(3600),
            top_capacity: Some(16),
            latency: true,
        }
    }

    // One argument per field of the line it writes, read like a log line.
    #[allow(clippy::too_many_arguments)]
    fn line(
        path: &str,
        cache: &str,
        status: u16,
        bytes: u64,
        rt: &str,
        urt: &str,
        canary: &str,
        warm: &str,
    ) -> String {
        format!(
            r#"192.0.2.1 - - [20/Nov/2026:10:00:00 +0000] "GET {path} HTTP/1.1" {status} {bytes} "-" "ua" cache={cache} rt={rt} urt="{urt}" rid=1 canary={canary} warm={warm}"#
        )
    }

    fn tally(lines: &[String], options: &Options) -> Tally {
        let format = LogFormat::okome();
        let mut tally = Tally::new(options);
        for l in lines {
            tally
                .count_lines(&mut LineReader::new(l.as_bytes()), &format, options)
                .unwrap();
        }
        tally
    }

    #[test]
    fn ratios_inputs_follow_their_definitions() {
        let lines = [
            line("/", "HIT", 200, 100, "0.001", "-", "control", "-"),
            line(
                "/assets/a.js",
                "STALE",
                200,
                50,
                "0.001",
                "-",
                "control",
                "-",
            ),
            line(
                "/assets/b.js",
                "MISS",
                200,
                300,
                "0.500",
                "0.400",
                "canary",
                "-",
            ),
            line(
                "/api/x",
                "EXPIRED",
                200,
                10,
                "0.300",
                "0.200, 0.100",
                "canary",
                "-",
            ),
            line("/api/x", "REVALIDATED", 304, 0, "0.050", "0.040", "-", "-"),
            line("/apix", "BYPASS", 200, 7, "0.100", "0.090", "debug", "-"),
            line("/other", "-", 302, 0, "0.000", "-", "-", "-"),
            line("/warm", "MISS", 200, 1, "1.000", "1.000", "-", "1"),
            line("/x", "WEIRD", 500, 3, "0.010", "0.010", "x", "-"),
        ];
        let tally = tally(&lines, &options());
        assert_eq!((tally.lines, tally.malformed, tally.warm), (9, 0, 1));
        let m = tally.overall();
        assert_eq!(m.requests, 8);
        assert_eq!(m.with_status, 7);
        assert_eq!(m.from_cache, 3); // HIT STALE REVALIDATED
        assert_eq!(m.without_origin, 2);
        assert_eq!((m.hits, m.hit_miss_expired), (1, 3));
        assert_eq!((m.bytes_from_cache, m.bytes_with_status), (150, 470));
        assert_eq!((m.origin, m.upstream_ms), (5, 840));
        assert_eq!((m.miss_upstream_n, m.miss_upstream_ms), (2, 700));
        assert_eq!(tally.cache()[DASH].requests, 1);
        assert_eq!(
            tally.unknown,
            vec![(
                b"WEIRD".to_vec(),
                Count {
                    requests: 1,
                    bytes: 3
                }
            )]
        );
        assert_eq!(tally.http[200], 5);
        assert_eq!(tally.http[304], 1);
        // groups: "/", /assets, /api, other
        let requests: Vec<u64> = tally.groups().iter().map(|g| g.requests).collect();
        assert_eq!(requests, [1, 2, 2, 3]);
        let canary: Vec<u64> = tally.canary().iter().map(|g| g.requests).collect();
        assert_eq!(canary, [2, 2, 1, 2, 1]);
        let top = tally.top.as_ref().unwrap().top(5);
        assert_eq!(top.len(), 2);
        let hist = &tally.latency.as_ref().unwrap()[HIT];
        assert_eq!(hist.quantile(0.5), Some(1));
    }

    #[test]
    fn the_time_window_and_series() {
        let mut opts = options();
        let at = |hh: u32| {
            format!(
                r#"192.0.2.1 - - [20/Nov/2026:{hh:02}:30:00 +0000] "GET / HTTP/1.1" 200 1 "-" "ua" cache=HIT rt=0.001 urt="-" rid=1 canary=- warm=-"#
            )
        };
        opts.since = Some(1_795_140_000); // 2026-11-20 02:00 UTC
        opts.until = Some(1_795_140_000 + 3 * 3600); // 05:00
        let lines: Vec<String> = (0..8).map(at).collect();
        let mut tally = tally(&lines, &opts);
        assert_eq!(tally.outside, 5);
        assert_eq!(tally.counted(), 3);
        let points: Vec<i64> = tally
            .series
            .as_mut()
            .unwrap()
            .points()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(points, [1_795_140_000, 1_795_143_600, 1_795_147_200]);
    }

    #[test]
    fn merging_chunks_equals_one_pass() {
        let lines: Vec<String> = (0..50)
            .map(|i| {
                line(
                    &format!("/p{}", i % 7),
                    ["HIT", "MISS", "-"][i % 3],
                    200,
                    i as u64,
                    "0.010",
                    "0.005",
                    "control",
                    "-",
                )
            })
            .collect();
        let whole = tally(&lines, &options());
        let mut first = tally(&lines[..20], &options());
        first.merge(tally(&lines[20..], &options()));
        assert_eq!(first.overall(), whole.overall());
        assert_eq!(first.cache(), whole.cache());
        assert_eq!(first.groups(), whole.groups());
        assert_eq!(first.top.unwrap().top(3), whole.top.unwrap().top(3));
    }

    #[test]
    fn the_default_loop_counts_what_the_detail_loop_counts() {
        let caches = ["HIT", "MISS", "EXPIRED", "STALE", "-", "ODD"];
        let paths = ["/", "/assets/a.js", "/api?x=1", "/apix", "/z"];
        let mut lines: Vec<String> = (0..60)
            .map(|i| {
                line(
                    paths[i % paths.len()],
                    caches[i % caches.len()],
                    [200, 304, 404, 502][i % 4],
                    i as u64,
                    "0.010",
                    ["-", "0.005", "0.001, 0.002"][i % 3],
                    ["control", "canary", "-"][i % 3],
                    ["-", "1"][usize::from(i % 7 == 0)],
                )
            })
            .collect();
        lines.push("not a log line".to_string());
        let plain = Options {
            by: None,
            top_capacity: None,
            latency: false,
            ..options()
        };
        assert!(!plain.has_extras() && options().has_extras());
        let (default, detail) = (tally(&lines, &plain), tally(&lines, &options()));
        assert_eq!(
            (default.lines, default.malformed, default.warm),
            (detail.lines, detail.malformed, detail.warm)
        );
        assert_eq!((default.lines, default.malformed, default.warm), (61, 1, 9));
        assert_eq!(default.overall(), detail.overall());
        assert_eq!(default.cache(), detail.cache());
        assert_eq!(default.groups(), detail.groups());
        assert_eq!(default.canary(), detail.canary());
        assert_eq!(default.unknown, detail.unknown);
        assert_eq!(default.http, detail.http);
        assert!(default.top.is_none() && detail.top.is_some());
    }

    #[test]
    fn unknown_statuses_are_bounded() {
        let lines: Vec<String> = (0..40)
            .map(|i| line("/", &format!("ODD{i}"), 200, 1, "0.001", "-", "-", "-"))
            .collect();
        let tally = tally(&lines, &options());
        assert_eq!(tally.unknown.len(), MAX_UNKNOWN);
        assert_eq!(tally.unknown_other.requests, 40 - MAX_UNKNOWN as u64);
    }
}

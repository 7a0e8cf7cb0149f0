//! The report: every figure computed once from the merged tally, then
//! written as the 80-column human table, versioned JSON, or Prometheus text.
//!
//! [`Report`] *is* the JSON schema (`okome-hit-ratio/1`, documented in
//! hit-ratio/README.md): a field is added in a compatible way or the
//! version changes. The human table and the metrics read the same values,
//! so the three outputs can never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::scan::Scan;
use crate::tally::{CACHE_STATUSES, CANARY_VARIANTS, Count, Mix, Tally};

/// The JSON schema identifier; bumped on any incompatible change.
pub const SCHEMA: &str = "okome-hit-ratio/1";

/// Everything okome-hit-ratio reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// `okome`, `combined` or the custom `--log-format` string.
    pub format: String,
    /// Per input file.
    pub inputs: Vec<InputReport>,
    /// Line accounting.
    pub lines: Lines,
    /// The time window asked for and the one seen.
    pub window: Window,
    /// The three named ratios.
    pub ratios: Ratios,
    /// Load on the orchestrator.
    pub origin: Origin,
    /// Per cache status, the eight nginx values first, then unknown ones.
    pub cache_status: Vec<StatusRow>,
    /// Requests per HTTP status code (`"other"` for a missing or odd one).
    pub http_status: BTreeMap<String, u64>,
    /// Per path group.
    pub groups: Vec<MixRow>,
    /// Per canary variant.
    pub canary: Vec<MixRow>,
    /// The request hit ratio over time (`--by`).
    pub series: Option<SeriesReport>,
    /// Most-missed paths (`--top`).
    pub top_missed: Option<Vec<TopRow>>,
    /// Request-time percentiles per cache status (`--latency`).
    pub latency: Option<Vec<LatencyRow>>,
    /// The first malformed lines.
    pub malformed_samples: Vec<SampleRow>,
    /// The first malformed line's input, number and first bytes: shown in
    /// the warning when no line fits the format (not part of the JSON).
    #[serde(skip)]
    pub first_malformed: Option<(String, u64, Vec<u8>)>,
}

/// One input.
#[derive(Debug, Serialize)]
pub struct InputReport {
    /// As given on the command line.
    pub path: String,
    /// Lines read.
    pub lines: u64,
    /// Decompressed from gzip.
    pub gzip: bool,
    /// Bytes at the start not read because they are older than `--since`
    /// (binary search in a plain file; `lines` and malformed line numbers
    /// count from the first line read).
    pub skipped_bytes: u64,
    /// Why it could not be read (completely); `null` when it was.
    pub error: Option<String>,
}

/// Where every line went: `total = parsed + malformed`,
/// `parsed = counted + prewarm_excluded + outside_window`.
#[derive(Debug, Serialize)]
pub struct Lines {
    /// Lines read.
    pub total: u64,
    /// Lines that fit the format.
    pub parsed: u64,
    /// Lines that did not.
    pub malformed: u64,
    /// okome-prewarm's own requests, left out.
    pub prewarm_excluded: u64,
    /// Requests outside `--since`/`--until`.
    pub outside_window: u64,
    /// Requests every other figure is computed from.
    pub counted: u64,
}

/// Unix seconds; `null` when not set or not seen.
#[derive(Debug, Serialize)]
pub struct Window {
    /// `--since`.
    pub since: Option<i64>,
    /// `--until`.
    pub until: Option<i64>,
    /// Earliest counted request (only when times were read).
    pub first: Option<i64>,
    /// Latest counted request.
    pub last: Option<i64>,
}

/// Ratios in 0..1; `null` when the denominator is zero.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    /// (HIT+STALE+UPDATING+REVALIDATED) / requests with a cache status.
    pub request_hit_ratio: Option<f64>,
    /// HIT / (HIT+MISS+EXPIRED).
    pub hit_ratio: Option<f64>,
    /// Body bytes of HIT+STALE+UPDATING+REVALIDATED / body bytes of
    /// requests with a cache status.
    pub byte_hit_ratio: Option<f64>,
}

/// Load on the orchestrator.
#[derive(Debug, Serialize)]
pub struct Origin {
    /// Requests with an upstream response time (nginx asked the origin).
    pub requests: u64,
    /// Their summed upstream response time.
    pub upstream_seconds: f64,
    /// Mean upstream time of MISS+EXPIRED requests; `null` without any.
    pub miss_mean_seconds: Option<f64>,
    /// Upstream seconds the cache saved: per path group, HIT+STALE+UPDATING
    /// requests × that group's mean MISS+EXPIRED upstream time (the overall
    /// mean for a group without misses).
    pub upstream_seconds_avoided: f64,
}

/// One cache status.
#[derive(Debug, Serialize)]
pub struct StatusRow {
    /// `HIT`, …, `-`, an unknown value, or `other` (unknown values beyond 16).
    pub status: String,
    /// Requests.
    pub requests: u64,
    /// Body bytes.
    pub bytes: u64,
}

/// Ratios and counts of a path group or canary variant.
#[derive(Debug, Serialize)]
pub struct MixRow {
    /// The group prefix (`/`, `/api`, `other`) or variant name.
    pub name: String,
    /// Counted requests.
    pub requests: u64,
    /// Of them, with a cache status.
    pub with_cache_status: u64,
    /// Answered from the cache.
    pub from_cache: u64,
    /// Asked the origin.
    pub origin_requests: u64,
    /// The three ratios for this slice.
    #[serde(flatten)]
    pub ratios: Ratios,
}

/// `--by` time series.
#[derive(Debug, Serialize)]
pub struct SeriesReport {
    /// `minute`, `hour` or `day`.
    pub by: String,
    /// Bucket width in seconds.
    pub width_seconds: i64,
    /// Older buckets were dropped (more than 10 080).
    pub truncated: bool,
    /// In time order.
    pub buckets: Vec<Bucket>,
}

/// One time bucket.
#[derive(Debug, Serialize)]
pub struct Bucket {
    /// Start, unix seconds (UTC-aligned).
    pub start: i64,
    /// Counted requests.
    pub requests: u64,
    /// With a cache status.
    pub with_cache_status: u64,
    /// Request hit ratio in the bucket.
    pub request_hit_ratio: Option<f64>,
}

/// One missed path.
#[derive(Debug, Serialize)]
pub struct TopRow {
    /// Path without query string (lossy UTF-8, at most 256 bytes).
    pub path: String,
    /// MISS+EXPIRED requests for it (an upper bound when `overcount` > 0).
    pub misses: u64,
    /// How much of `misses` may belong to other paths (space-saving).
    pub overcount: u64,
}

/// Percentiles of `$request_time` for one cache status.
#[derive(Debug, Serialize)]
pub struct LatencyRow {
    /// Cache status.
    pub status: String,
    /// Requests with a request time.
    pub requests: u64,
    /// Seconds (exact below 64 ms, else within 3 %).
    pub p50: Option<f64>,
    /// Seconds.
    pub p95: Option<f64>,
    /// Seconds.
    pub p99: Option<f64>,
}

/// A malformed line.
#[derive(Debug, Serialize)]
pub struct SampleRow {
    /// Input path.
    pub input: String,
    /// 1-based line number in it.
    pub line: u64,
    /// Why it did not parse.
    pub reason: String,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn ratios(mix: &Mix) -> Ratios {
    Ratios {
        request_hit_ratio: ratio(mix.from_cache, mix.with_status),
        hit_ratio: ratio(mix.hits, mix.hit_miss_expired),
        byte_hit_ratio: ratio(mix.bytes_from_cache, mix.bytes_with_status),
    }
}

fn mix_row(name: &str, mix: &Mix) -> MixRow {
    MixRow {
        name: name.to_string(),
        requests: mix.requests,
        with_cache_status: mix.with_status,
        from_cache: mix.from_cache,
        origin_requests: mix.origin,
        ratios: ratios(mix),
    }
}

/// What the report needs to know besides the tally.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Format name for the report.
    pub format: String,
    /// Group prefixes, as configured.
    pub groups: Vec<String>,
    /// `--by` name.
    pub by: Option<String>,
    /// `--top N`.
    pub top: Option<usize>,
    /// `--since`/`--until`.
    pub since: Option<i64>,
    /// See `since`.
    pub until: Option<i64>,
}

impl Report {
    /// Compute every figure.
    pub fn new(scan: Scan, shape: &Shape) -> Report {
        let Scan {
            mut tally,
            inputs,
            samples,
        } = scan;
        let overall = tally.overall();
        let mut group_names = vec!["/".to_string()];
        group_names.extend(shape.groups.iter().cloned());
        group_names.push("other".to_string());
        Report {
            schema: SCHEMA,
            format: shape.format.clone(),
            inputs: inputs
                .into_iter()
                .map(|i| InputReport {
                    path: i.name,
                    lines: i.lines,
                    gzip: i.gzip,
                    skipped_bytes: i.skipped_bytes,
                    error: i.error,
                })
                .collect(),
            lines: Lines {
                total: tally.lines,
                parsed: tally.parsed(),
                malformed: tally.malformed,
                prewarm_excluded: tally.warm,
                outside_window: tally.outside,
                counted: tally.counted(),
            },
            window: Window {
                since: shape.since,
                until: shape.until,
                first: tally.first,
                last: tally.last,
            },
            ratios: ratios(&overall),
            origin: origin(&tally),
            cache_status: cache_rows(&tally),
            http_status: http_rows(&tally),
            groups: tally
                .groups()
                .iter()
                .zip(&group_names)
                .map(|(mix, name)| mix_row(name, mix))
                .collect(),
            canary: tally
                .canary()
                .iter()
                .zip(CANARY_VARIANTS)
                .map(|(mix, name)| mix_row(name, mix))
                .collect(),
            series: tally.series.as_mut().map(|series| SeriesReport {
                by: shape.by.clone().unwrap_or_default(),
                width_seconds: series.width,
                truncated: series.truncated,
                buckets: series
                    .points()
                    .map(|(start, p)| Bucket {
                        start,
                        requests: p.requests,
                        with_cache_status: p.with_status,
                        request_hit_ratio: ratio(p.from_cache, p.with_status),
                    })
                    .collect(),
            }),
            top_missed: tally.top.as_ref().map(|top| {
                top.top(shape.top.unwrap_or(10))
                    .into_iter()
                    .map(|c| TopRow {
                        path: String::from_utf8_lossy(&c.key).into_owned(),
                        misses: c.count,
                        overcount: c.overcount,
                    })
                    .collect()
            }),
            latency: tally.latency.as_ref().map(|histograms| {
                histograms
                    .iter()
                    .zip(CACHE_STATUSES.iter().copied().chain(["unknown"]))
                    .filter(|(h, _)| h.total() > 0)
                    .map(|(h, status)| LatencyRow {
                        status: status.to_string(),
                        requests: h.total(),
                        p50: h.quantile(0.50).map(|ms| ms as f64 / 1000.0),
                        p95: h.quantile(0.95).map(|ms| ms as f64 / 1000.0),
                        p99: h.quantile(0.99).map(|ms| ms as f64 / 1000.0),
                    })
                    .collect()
            }),
            first_malformed: samples
                .first()
                .map(|s| (s.input.clone(), s.line, s.text.clone())),
            malformed_samples: samples
                .into_iter()
                .map(|s| SampleRow {
                    input: s.input,
                    line: s.line,
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

fn origin(tally: &Tally) -> Origin {
    let overall = &tally.overall();
    let mean = |mix: &Mix| {
        (mix.miss_upstream_n > 0).then(|| mix.miss_upstream_ms as f64 / mix.miss_upstream_n as f64)
    };
    let overall_mean = mean(overall);
    let avoided_ms: f64 = tally
        .groups()
        .iter()
        .map(|g| g.without_origin as f64 * mean(g).or(overall_mean).unwrap_or(0.0))
        .sum();
    Origin {
        requests: overall.origin,
        upstream_seconds: overall.upstream_ms as f64 / 1000.0,
        miss_mean_seconds: overall_mean.map(|ms| ms / 1000.0),
        upstream_seconds_avoided: avoided_ms.round() / 1000.0,
    }
}

fn cache_rows(tally: &Tally) -> Vec<StatusRow> {
    let row = |status: &str, count: &Count| StatusRow {
        status: status.to_string(),
        requests: count.requests,
        bytes: count.bytes,
    };
    let mut rows: Vec<StatusRow> = CACHE_STATUSES
        .iter()
        .zip(&tally.cache())
        .map(|(status, count)| row(status, count))
        .collect();
    for (name, count) in &tally.unknown {
        rows.push(row(&String::from_utf8_lossy(name), count));
    }
    if tally.unknown_other.requests > 0 {
        rows.push(row("other", &tally.unknown_other));
    }
    rows
}

fn http_rows(tally: &Tally) -> BTreeMap<String, u64> {
    let mut rows: BTreeMap<String, u64> = tally
        .http
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| (code.to_string(), *n))
        .collect();
    if tally.http_other > 0 {
        rows.insert("other".to_string(), tally.http_other);
    }
    rows
}

// ---- human output -------------------------------------------------------

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{:.1} %", v * 100.0),
        None => "–".to_string(),
    }
}

fn share(part: u64, whole: u64) -> String {
    percent(ratio(part, whole))
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{seconds:.2} s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn utc(unix: i64) -> String {
    let (year, month, day, hour, minute, _) = okome_common::time::civil_from_unix(unix);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// Cut `text` to `width` characters, marking the cut with `…`.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Report {
    /// The human table: at most 80 columns.
    pub fn human(&self, verbose: bool) -> String {
        let mut out = String::new();
        let l = &self.lines;
        let files = self.inputs.len();
        let _ = writeln!(
            out,
            "okome-hit-ratio · {} · {} line{} in {files} file{}",
            fit(&self.format, 20),
            thousands(l.total),
            if l.total == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            out,
            "  parsed {} · malformed {} · prewarm excluded {} · outside window {}",
            thousands(l.parsed),
            thousands(l.malformed),
            thousands(l.prewarm_excluded),
            thousands(l.outside_window),
        );
        if let (Some(first), Some(last)) = (self.window.first, self.window.last) {
            let _ = writeln!(out, "  requests from {} to {} UTC", utc(first), utc(last));
        }
        for input in &self.inputs {
            if let Some(error) = &input.error {
                let _ = writeln!(out, "  UNREAD: {}", fit(error, 70));
            }
        }

        let r = &self.ratios;
        let _ = writeln!(out, "\nRatios of {} counted requests", thousands(l.counted));
        let _ = writeln!(
            out,
            "  request hit ratio {:>8}   HIT+STALE+UPDATING+REVALIDATED / with status",
            percent(r.request_hit_ratio)
        );
        let _ = writeln!(
            out,
            "  HIT ratio         {:>8}   HIT / (HIT+MISS+EXPIRED)",
            percent(r.hit_ratio)
        );
        let _ = writeln!(
            out,
            "  byte hit ratio    {:>8}   bytes from cache / bytes with status",
            percent(r.byte_hit_ratio)
        );
        let o = &self.origin;
        let _ = writeln!(
            out,
            "  origin requests   {:>8}   upstream time {}, mean miss {} s",
            thousands(o.requests),
            duration(o.upstream_seconds),
            seconds(o.miss_mean_seconds),
        );
        let _ = writeln!(
            out,
            "  upstream time avoided by the cache: {}",
            duration(o.upstream_seconds_avoided)
        );

        let _ = writeln!(out, "\nCache status         requests  share          bytes");
        for row in &self.cache_status {
            if row.requests == 0 && row.status != "HIT" && row.status != "MISS" {
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<14} {:>12} {:>7} {:>14}",
                fit(&row.status, 14),
                thousands(row.requests),
                share(row.requests, l.counted),
                bytes(row.bytes),
            );
        }

        let _ = writeln!(out, "\nHTTP status");
        let mut classes = [0u64; 6];
        for (code, n) in &self.http_status {
            let class = code.parse::<usize>().map_or(0, |c| c / 100);
            classes[class.min(5)] += n;
        }
        let mut line = String::from(" ");
        // 1xx only when there are any (nginx rarely logs them).
        for (class, n) in classes
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(c, n)| *c != 1 || **n > 0)
        {
            let _ = write!(line, " {class}xx {:>7}", share(*n, l.counted));
        }
        let _ = writeln!(out, "{line}");
        let mut codes: Vec<(&String, &u64)> = self.http_status.iter().collect();
        codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut line = String::from(" ");
        for (code, n) in codes.iter().take(6) {
            let _ = write!(line, " {code}: {}", thousands(**n));
        }
        let _ = writeln!(out, "{}", fit(&line, 80));

        let _ = writeln!(
            out,
            "\nPath group        requests  req hit  HIT ratio  byte hit  origin req"
        );
        for row in &self.groups {
            self.mix_line(&mut out, row);
        }
        let _ = writeln!(
            out,
            "\nCanary variant    requests  req hit  HIT ratio  byte hit  origin req"
        );
        for row in self.canary.iter().filter(|r| r.requests > 0) {
            self.mix_line(&mut out, row);
        }

        if let Some(latency) = &self.latency {
            let _ = writeln!(
                out,
                "\nRequest time (s)  requests      p50      p95      p99"
            );
            for row in latency {
                let _ = writeln!(
                    out,
                    "  {:<14} {:>10} {:>8} {:>8} {:>8}",
                    row.status,
                    thousands(row.requests),
                    seconds(row.p50),
                    seconds(row.p95),
                    seconds(row.p99),
                );
            }
        }
        if let Some(top) = &self.top_missed {
            let _ = writeln!(out, "\nTop missed paths (prewarm candidates)      misses");
            for row in top {
                let approx = if row.overcount > 0 { "≤" } else { " " };
                let _ = writeln!(
                    out,
                    "  {:<56} {approx}{:>12}",
                    fit(&row.path, 56),
                    thousands(row.misses)
                );
            }
        }
        if let Some(series) = &self.series {
            let _ = writeln!(
                out,
                "\nRequest hit ratio by {} (UTC){}",
                series.by,
                if series.truncated {
                    ", oldest buckets dropped"
                } else {
                    ""
                }
            );
            for bucket in &series.buckets {
                let bar = bucket
                    .request_hit_ratio
                    .map_or(0, |r| (r * 30.0).round() as usize);
                let _ = writeln!(
                    out,
                    "  {}  {:>10} {:>8}  {}{}",
                    utc(bucket.start),
                    thousands(bucket.requests),
                    percent(bucket.request_hit_ratio),
                    "#".repeat(bar),
                    ".".repeat(30 - bar),
                );
            }
        }
        if verbose && !self.malformed_samples.is_empty() {
            let _ = writeln!(out, "\nFirst malformed lines");
            for s in &self.malformed_samples {
                let _ = writeln!(
                    out,
                    "  {}",
                    fit(&format!("{}:{}: {}", s.input, s.line, s.reason), 78)
                );
            }
        }
        out
    }

    fn mix_line(&self, out: &mut String, row: &MixRow) {
        let _ = writeln!(
            out,
            "  {:<14} {:>10} {:>8} {:>10} {:>9} {:>11}",
            fit(&row.name, 14),
            thousands(row.requests),
            percent(row.ratios.request_hit_ratio),
            percent(row.ratios.hit_ratio),
            percent(row.ratios.byte_hit_ratio),
            thousands(row.origin_requests),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(12.345), "12.35 s");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(percent(Some(0.9234)), "92.3 %");
        assert_eq!(percent(None), "–");
        assert_eq!(utc(1_795_165_200), "2026-11-20 09:00");
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}

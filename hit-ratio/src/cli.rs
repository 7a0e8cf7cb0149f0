//! Flags, their help (which is also the man page), and the validated
//! [`Config`] they become.
//!
//! Precedence: flag > `OKOME_HIT_RATIO_*` environment variable >
//! `/etc/default/okome-hit-ratio` > built-in default (clap's `env`
//! attributes read what `okome_common::defaults` exported). Everything that
//! can be wrong with the flags is found here, before any log is opened, so
//! a usage error never leaves half an output behind.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueEnum};
use okome_accesslog::LogFormat;

use crate::Error;
use crate::tally::Options;

/// The log analysed when no FILE is given (under `OKOME_ROOT`).
pub const DEFAULT_LOG: &str = okome_common::paths::ACCESS_LOG;

/// Path-group prefixes when `--groups` is not given.
pub const DEFAULT_GROUPS: &str = "/assets,/static,/ui-schema,/api";

/// Top-N counters kept per missed path asked for: enough that the top N
/// are exact on realistic (Zipf) traffic, bounded whatever the log.
const TOP_COUNTERS_PER_ENTRY: usize = 64;
/// Bounds on the number of top-N counters per thread: at most 16 Ki keys of
/// at most 256 bytes keeps `--top 1000` within the detail memory budget.
const TOP_COUNTERS: (usize, usize) = (1024, 16 * 1024);

const ABOUT: &str = "Is the OKOME edge cache doing its job? Hit ratios, origin load and top misses from nginx access logs.";

const LONG_ABOUT: &str = "\
Is the OKOME edge cache doing its job? Reads nginx access logs (plain or gzip,
as logrotate leaves them) and reports hit ratios, origin load, the HTTP status
mix, per path group and per canary variant figures, and with --detail a time
series, the most-missed paths (prewarm candidates) and latency percentiles.

Ratios (requests whose cache status is `-` never reached the cache and are in
no denominator):
  request hit ratio  (HIT + STALE + UPDATING + REVALIDATED)
                     / requests with a cache status
                     (HIT MISS EXPIRED STALE UPDATING REVALIDATED BYPASS, any
                     unknown value). --fail-below tests this one.
  HIT ratio          HIT / (HIT + MISS + EXPIRED): how often a cacheable
                     request found a fresh entry.
  byte hit ratio     body bytes of HIT + STALE + UPDATING + REVALIDATED
                     / body bytes of requests with a cache status.
Origin requests are requests with an upstream response time (nginx asked the
orchestrator; retries are summed). Upstream time avoided = per path group,
(HIT + STALE + UPDATING) x that group's mean MISS + EXPIRED upstream time (the
overall mean for a group without misses).

okome-prewarm's own requests ($okome_warm = 1) are left out unless
--include-warm. Lines that do not fit the format (other formats, lines cut
short, NUL runs, garbage) are counted as malformed, never fatal; -v shows the
first few with their line numbers.

Inputs: any number of FILEs; '-' is stdin; gzip is recognised by content.
A FILE that cannot be opened or read is named in an error; the other files are
still read and reported, and the exit status is then 3. With --since, a plain
FILE is not read from its start: a binary search on its (time-ordered) lines
skips to an hour before --since, so a recent window of a big log is quick.";

const AFTER_LONG_HELP: &str = "\
Formats:
  okome     the OKOME log_format (docs/design.md):
            $remote_addr - $remote_user [$time_local] \"$request\" $status
            $body_bytes_sent \"$http_referer\" \"$http_user_agent\"
            cache=$upstream_cache_status rt=$request_time
            urt=\"$upstream_response_time\" rid=$request_id
            canary=$okome_canary warm=$okome_warm
  combined  nginx's combined format (no cache status: only line and HTTP
            status figures are meaningful)
  --log-format takes a log_format exactly as written in nginx.conf: the quoted
  string(s), or the whole `log_format name [escape=json] '...' '...';`.

Output: an 80-column table (default), --json (schema okome-hit-ratio/1,
documented in the okome-hit-ratio README), or --prometheus (gauges listed in
docs/metrics.md). With --output FILE the output replaces FILE atomically
(and is not rewritten when unchanged).

Examples:
  okome-hit-ratio
  okome-hit-ratio /var/log/nginx/okome_access.log{,.1,.2.gz} --detail
  okome-hit-ratio --since 2h --by minute --top 20
  okome-hit-ratio --prometheus --output /run/okome/metrics/okome-hit-ratio.prom
  okome-hit-ratio --since 1h --fail-below 0.6 || echo 'cache is not helping'
  zcat old.log.gz | okome-hit-ratio --json - | jq .ratios

Exit status:
  0  ran, all good
  1  the request hit ratio is below --fail-below (or there was nothing to
     compute it from), or not one line fits the log format (a warning shows
     the first line and the flag that reads it; nothing is written; an
     empty log is exit 0)
  2  usage or configuration error (nothing was read or written)
  3  an input or the output could not be read or written";

/// Output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The 80-column table.
    Human,
    /// Versioned JSON.
    Json,
    /// Prometheus text exposition.
    Prometheus,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// The OKOME log format.
    Okome,
    /// nginx's combined format.
    Combined,
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One-minute buckets.
    Minute,
    /// One-hour buckets.
    Hour,
    /// One-day buckets (UTC days).
    Day,
}

impl By {
    fn seconds(self) -> i64 {
        match self {
            By::Minute => 60,
            By::Hour => 3600,
            By::Day => 86_400,
        }
    }

    fn name(self) -> &'static str {
        match self {
            By::Minute => "minute",
            By::Hour => "hour",
            By::Day => "day",
        }
    }
}

/// The flags, as clap parses them.
#[derive(Debug, Parser)]
#[command(
    name = "okome-hit-ratio",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    // -h and --help fit 80 columns (clap's wrap_help; narrower terminals
    // get narrower help).
    max_term_width = 80
)]
pub struct Cli {
    /// Access logs to read: plain or gzip, '-' for stdin
    /// [default: /var/log/nginx/okome_access.log]
    #[arg(value_name = "FILE", verbatim_doc_comment)]
    pub files: Vec<PathBuf>,

    /// Log format of the input
    #[arg(
        long,
        value_enum,
        default_value = "okome",
        env = "OKOME_HIT_RATIO_FORMAT"
    )]
    pub format: FormatName,

    /// An nginx log_format string as written in nginx.conf
    /// (overrides --format)
    #[arg(
        long,
        value_name = "SPEC",
        env = "OKOME_HIT_RATIO_LOG_FORMAT",
        verbatim_doc_comment
    )]
    pub log_format: Option<String>,

    /// Write the report as JSON (schema okome-hit-ratio/1)
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,

    /// Write Prometheus text exposition
    /// (for node_exporter's textfile collector)
    #[arg(long, verbatim_doc_comment)]
    pub prometheus: bool,

    /// Write the output to FILE atomically instead of stdout
    #[arg(short, long, value_name = "FILE", env = "OKOME_HIT_RATIO_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Exit 1 when the request hit ratio is below RATIO (0.8 or 80%)
    #[arg(long, value_name = "RATIO", env = "OKOME_HIT_RATIO_FAIL_BELOW")]
    pub fail_below: Option<String>,

    /// Count only requests at or after TIME
    /// (2h, 30m, 1d, 2026-11-20, 2026-11-20T10:00+01:00, ...)
    #[arg(long, value_name = "TIME", verbatim_doc_comment)]
    pub since: Option<String>,

    /// Count only requests before TIME
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Show the request hit ratio over time, per minute, hour or day (UTC)
    #[arg(long, value_enum, value_name = "UNIT")]
    pub by: Option<By>,

    /// Show the N most-missed paths (MISS + EXPIRED): prewarm candidates
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: Option<u16>,

    /// Show request-time percentiles (p50 p95 p99) per cache status
    #[arg(long)]
    pub latency: bool,

    /// The detail report: --latency, --top 10 and --by hour unless given
    #[arg(short, long)]
    pub detail: bool,

    /// Path-group prefixes, comma-separated (besides "/" itself and "other")
    #[arg(
        long,
        value_name = "PREFIXES",
        default_value = DEFAULT_GROUPS,
        env = "OKOME_HIT_RATIO_GROUPS"
    )]
    pub groups: String,

    /// Count okome-prewarm's own requests too
    #[arg(long)]
    pub include_warm: bool,

    /// Parsing threads [default: all cores]; gzip inputs also get one
    /// decompression thread each
    #[arg(short = 'j', long, value_name = "N", env = "OKOME_HIT_RATIO_THREADS")]
    pub threads: Option<usize>,

    /// Show the first malformed lines with their line numbers
    #[arg(short, long)]
    pub verbose: bool,
}

/// The command, for `--help`, man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// A validated run.
#[derive(Debug)]
pub struct Config {
    /// Inputs in order.
    pub files: Vec<PathBuf>,
    /// The compiled log format.
    pub format: LogFormat,
    /// Its name for the report.
    pub format_name: String,
    /// What to count.
    pub options: Options,
    /// `--by` name.
    pub by: Option<&'static str>,
    /// `--top N`.
    pub top: Option<usize>,
    /// Output form.
    pub output: Output,
    /// Where to write it (stdout when `None`).
    pub output_file: Option<PathBuf>,
    /// `--fail-below`.
    pub fail_below: Option<f64>,
    /// Worker threads.
    pub threads: usize,
    /// `-v`.
    pub verbose: bool,
}

/// `0.8`, `80%` or `80 %` as a ratio in 0..=1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0),
        None => (trimmed, 1.0),
    };
    match number.parse::<f64>() {
        Ok(value) if (0.0..=scale).contains(&value) => Ok(value / scale),
        _ => Err(format!(
            "--fail-below {text:?}: expected a ratio between 0 and 1 (0.8) or a percentage (80%)"
        )),
    }
}

impl Config {
    /// Validate parsed flags; `now` (unix seconds) anchors relative times.
    pub fn from_cli(cli: Cli, now: i64) -> Result<Config, Error> {
        let (format, format_name) = match &cli.log_format {
            Some(spec) => (
                LogFormat::from_nginx(spec)
                    .map_err(|e| Error::Usage(format!("--log-format: {e}")))?,
                spec.trim().to_string(),
            ),
            None => match cli.format {
                FormatName::Okome => (LogFormat::okome(), "okome".to_string()),
                FormatName::Combined => (LogFormat::combined(), "combined".to_string()),
            },
        };
        let time = |flag: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| crate::timespec::parse(text, now))
                .transpose()
                .map_err(|e| Error::Usage(format!("--{flag}: {e}")))
        };
        let since = time("since", &cli.since)?;
        let until = time("until", &cli.until)?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(Error::Usage("--since must be before --until".into()));
        }
        let by = cli.by.or(cli.detail.then_some(By::Hour));
        if (since.is_some() || until.is_some() || by.is_some()) && !format.has_time() {
            return Err(Error::Usage(
                "--since, --until and --by need a format with $time_local, $time_iso8601 or $msec"
                    .into(),
            ));
        }
        let top = cli.top.map(usize::from).or(cli.detail.then_some(10));
        let groups: Vec<Vec<u8>> = cli
            .groups
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| g.as_bytes().to_vec())
            .collect();
        if let Some(bad) = groups
            .iter()
            .find(|g| !g.starts_with(b"/") || g.as_slice() == b"/")
        {
            return Err(Error::Usage(format!(
                "--groups: {:?} is not a path prefix like /api (\"/\" is always its own group)",
                String::from_utf8_lossy(bad)
            )));
        }
        if groups.len() > 32 {
            return Err(Error::Usage("--groups: at most 32 prefixes".into()));
        }
        let fail_below = cli
            .fail_below
            .as_deref()
            .map(parse_ratio)
            .transpose()
            .map_err(Error::Usage)?;
        let threads = match cli.threads {
            Some(0) | None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) => n.min(256),
        };
        let files = if cli.files.is_empty() {
            vec![okome_common::root::rooted(DEFAULT_LOG)]
        } else {
            cli.files
        };
        let output = if cli.json {
            Output::Json
        } else if cli.prometheus {
            Output::Prometheus
        } else {
            Output::Human
        };
        Ok(Config {
            files,
            format,
            format_name,
            options: Options {
                groups,
                include_warm: cli.include_warm,
                since,
                until,
                by: by.map(By::seconds),
                top_capacity: top
                    .map(|n| (n * TOP_COUNTERS_PER_ENTRY).clamp(TOP_COUNTERS.0, TOP_COUNTERS.1)),
                latency: cli.latency || cli.detail,
            },
            by: by.map(By::name),
            top,
            output,
            output_file: cli.output,
            fail_below,
            threads,
            verbose: cli.verbose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, Error> {
        let mut argv = vec!["okome-hit-ratio"];
        argv.extend_from_slice(args);
        Config::from_cli(
            Cli::try_parse_from(argv).expect("flags parse"),
            1_795_165_200,
        )
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn ratios_accept_fractions_and_percentages() {
        assert_eq!(parse_ratio("0.8"), Ok(0.8));
        assert_eq!(parse_ratio("80%"), Ok(0.8));
        assert_eq!(parse_ratio("80 %"), Ok(0.8));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("abc").is_err());
    }

    #[test]
    fn detail_turns_on_the_expensive_parts() {
        let c = config(&["--detail", "x.log"]).unwrap();
        assert_eq!(c.by, Some("hour"));
        assert_eq!(c.top, Some(10));
        assert!(c.options.latency);
        let c = config(&["x.log"]).unwrap();
        assert!(c.by.is_none() && c.top.is_none() && !c.options.latency);
    }

    #[test]
    fn usage_errors_are_found_before_reading() {
        assert!(config(&["--since", "tomorrow"]).is_err());
        assert!(config(&["--since", "1h", "--until", "2h"]).is_err());
        assert!(config(&["--groups", "api"]).is_err());
        assert!(config(&["--log-format", "'$a$b'"]).is_err());
        assert!(
            config(&[
                "--log-format",
                "'$status $upstream_cache_status'",
                "--by",
                "hour"
            ])
            .is_err()
        );
        assert!(config(&["--fail-below", "2"]).is_err());
    }

    #[test]
    fn relative_times_anchor_on_now() {
        let c = config(&["--since", "2h"]).unwrap();
        assert_eq!(c.options.since, Some(1_795_165_200 - 7200));
    }
}

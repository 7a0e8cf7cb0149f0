//! From log lines to demand counters: which requests count as demand.
//!
//! Parsing is the shared `okome_accesslog` parser; this module only
//! decides what a parsed line is worth. Demand is a successful (2xx, 304)
//! `GET`/`HEAD` of a safe UI path by a user. Not demand: prewarm's own
//! requests (`warm=1` or its User-Agent — otherwise it votes for itself, the
//! GUIDE §1 trap), known monitors (configurable User-Agent substrings), the
//! `debug` canary (diagnostics), `/api/`, and anything the path check
//! refuses. Every skipped line is counted by reason for `--dry-run`/`--json`.

use crate::pathsafe::{self, Refusal};
use crate::rank;
use crate::state::PathStats;
use okome_accesslog::{Entry, LogFormat, Record};
use serde::Serialize;
use std::collections::BTreeMap;

/// The User-Agent prefix prewarm sends (`okome-prewarm/<version>`).
pub const OWN_UA_PREFIX: &[u8] = b"okome-prewarm/";

/// Default monitor User-Agent substrings (case-insensitive).
pub const DEFAULT_MONITORS: &str = "okome-health-probe,okome-hit-ratio,kube-probe,prometheus,blackbox_exporter,uptimerobot,pingdom,statuscake,uptime-kuma,check_http,zabbix,googlehc,elb-healthchecker,nagios,monit/,keepalived";

/// Per-reason counts of what was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines read.
    pub lines: u64,
    /// Lines cut at the reader's line cap.
    pub truncated: u64,
    /// Lines that did not match the log format.
    pub malformed: u64,
    /// Prewarm's own requests.
    pub own: u64,
    /// Monitor requests.
    pub monitors: u64,
    /// Not GET/HEAD.
    pub method: u64,
    /// Not 2xx/304.
    pub status: u64,
    /// `debug` canary.
    pub debug_canary: u64,
    /// `/api/` requests.
    pub api: u64,
    /// Refused by the path check (unsafe or not a safe pattern).
    pub refused: u64,
    /// No usable timestamp.
    pub no_time: u64,
    /// Counted as demand.
    pub counted: u64,
    /// Newest timestamp seen (log clock), 0 if none.
    pub newest: i64,
}

/// Case-insensitive substring test; `needle` is already lower-case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > hay.len() {
        return needle.is_empty();
    }
    (0..=hay.len() - needle.len()).any(|i| {
        hay[i].to_ascii_lowercase() == needle[0]
            && hay[i..i + needle.len()]
                .iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

/// Counts demand from lines into a path → stats map.
#[derive(Debug)]
pub struct Ingest<'a> {
    format: &'a LogFormat,
    monitors: Vec<Vec<u8>>,
    /// The counts so far.
    pub counts: Counts,
    /// Verdicts for recently seen User-Agents: logs repeat a few agents.
    ua_cache: Vec<(Vec<u8>, bool)>,
    /// Reused buffer for the normalised path.
    path: String,
    /// The first line read (its first [`FIRST_LINE`] bytes), for the
    /// warning when no line fits the format.
    pub first_line: Option<Vec<u8>>,
}

/// How much of the first line [`Ingest`] keeps.
const FIRST_LINE: usize = 4096;

/// User-Agents remembered by the monitor check before the cache is reset.
const UA_CACHE: usize = 32;

impl<'a> Ingest<'a> {
    /// A counter for `format`, treating User-Agents containing any of
    /// `monitors` (case-insensitive) as monitors.
    pub fn new(format: &'a LogFormat, monitors: &[String]) -> Self {
        Ingest {
            format,
            monitors: monitors
                .iter()
                .map(|m| m.trim().to_ascii_lowercase().into_bytes())
                .filter(|m| !m.is_empty())
                .collect(),
            counts: Counts::default(),
            ua_cache: Vec::new(),
            path: String::new(),
            first_line: None,
        }
    }

    fn is_monitor(&mut self, ua: &[u8]) -> bool {
        if let Some((_, verdict)) = self.ua_cache.iter().find(|(seen, _)| seen == ua) {
            return *verdict;
        }
        let verdict = self.monitors.iter().any(|m| contains_ci(ua, m));
        if self.ua_cache.len() >= UA_CACHE {
            self.ua_cache.clear();
        }
        self.ua_cache.push((ua.to_vec(), verdict));
        verdict
    }

    /// Classify one entry: `Some(time)` if it is demand, with the
    /// normalised path left in `self.path`.
    fn demand(&mut self, entry: &Entry<'_>) -> Option<i64> {
        let c = &mut self.counts;
        let ua = entry.user_agent().unwrap_or(b"");
        if entry.warm() || ua.starts_with(OWN_UA_PREFIX) {
            c.own += 1;
            return None;
        }
        if !matches!(entry.method(), Some(b"GET" | b"HEAD")) {
            c.method += 1;
            return None;
        }
        if !matches!(entry.status(), Some(200..=299 | 304)) {
            self.counts.status += 1;
            return None;
        }
        if entry.canary() == Some(b"debug") {
            self.counts.debug_canary += 1;
            return None;
        }
        let target = entry.target().unwrap_or(b"");
        match pathsafe::normalise_into(target, &mut self.path) {
            Ok(()) => {}
            Err(Refusal::Api) => {
                self.counts.api += 1;
                return None;
            }
            Err(_) => {
                self.counts.refused += 1;
                return None;
            }
        };
        if self.is_monitor(ua) {
            self.counts.monitors += 1;
            return None;
        }
        let Some(t) = entry.time_local() else {
            self.counts.no_time += 1;
            return None;
        };
        Some(t)
    }

    /// Take one line (as read, maybe cut) and count it into `paths`.
    pub fn line(&mut self, line: &[u8], truncated: bool, paths: &mut BTreeMap<String, PathStats>) {
        self.counts.lines += 1;
        if self.first_line.is_none() {
            self.first_line = Some(line[..line.len().min(FIRST_LINE)].to_vec());
        }
        if truncated {
            // A cut line cannot be trusted to end where the format says.
            self.counts.truncated += 1;
            self.counts.malformed += 1;
            return;
        }
        let Some(entry) = self.format.parse(line) else {
            self.counts.malformed += 1;
            return;
        };
        let Some(t) = self.demand(&entry) else {
            return;
        };
        self.counts.counted += 1;
        self.counts.newest = self.counts.newest.max(t);
        match paths.get_mut(self.path.as_str()) {
            Some(stats) => rank::record(stats, t),
            None => rank::record(paths.entry(self.path.clone()).or_default(), t),
        }
        // Keep memory bounded against a log of a million distinct paths.
        if paths.len() > 2 * rank::MAX_TRACKED {
            rank::prune(paths, self.counts.newest);
        }
    }
}

/// The warning for a tail none of whose lines fits the log format: how
/// many, the first line (escaped, cut) and the setting that would read it.
pub fn wrong_format(format: &LogFormat, lines: u64, first: &[u8]) -> String {
    use okome_accesslog::{COMBINED_LOG_FORMAT, builtin_format_of};
    let name = if format.is_okome() {
        "okome"
    } else {
        "configured"
    };
    let mut message = format!(
        "none of the {lines} new lines fits the {name} log format: no demand counted; first line: \"{}\"",
        okome_common::text::escape(first, 160)
    );
    let hint = match builtin_format_of(first) {
        Some("combined") if format.source() != COMBINED_LOG_FORMAT => format!(
            "it is nginx's combined format: --log-format '{COMBINED_LOG_FORMAT}' (OKOME_PREWARM_LOG_FORMAT)"
        ),
        Some("okome") if !format.is_okome() => {
            "it is the okome format: drop --log-format (OKOME_PREWARM_LOG_FORMAT)".to_string()
        }
        _ => "paste the access log's log_format string from nginx.conf: --log-format '…' (OKOME_PREWARM_LOG_FORMAT)".to_string(),
    };
    message.push_str("; ");
    message.push_str(&hint);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_format_hint_names_the_setting_that_reads_the_line() {
        let combined =
            br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 304 - "-" "ua""#;
        let okome = LogFormat::okome();
        let message = wrong_format(&okome, 7, combined);
        assert!(message.contains("none of the 7 new lines fits the okome log format"));
        assert!(
            message.contains("--log-format '$remote_addr - $remote_user"),
            "{message}"
        );
        let as_combined = LogFormat::combined();
        let okome_line = line(
            "20/Nov/2026:10:00:00 +0100",
            "GET / HTTP/1.1",
            200,
            "ua",
            "control",
            "-",
        );
        let message = wrong_format(&as_combined, 1, okome_line.trim_end().as_bytes());
        assert!(
            message.contains("it is the okome format: drop --log-format"),
            "{message}"
        );
        let message = wrong_format(&okome, 1, b"\x1b]0;pwned\x07\nfake line");
        assert!(
            message.contains("\\x1b]0;pwned\\x07\\nfake line"),
            "{message}"
        );
        assert!(
            message.contains("paste the access log's log_format"),
            "{message}"
        );
        assert!(!message.contains('\n'));
    }

    pub(crate) fn line(
        ts: &str,
        request: &str,
        status: u16,
        ua: &str,
        canary: &str,
        warm: &str,
    ) -> String {
        format!(
            "192.0.2.7 - - [{ts}] \"{request}\" {status} 512 \"-\" \"{ua}\" cache=MISS rt=0.010 urt=\"0.009\" rid=abc canary={canary} warm={warm}"
        )
    }

    fn ingest(lines: &[String]) -> (BTreeMap<String, PathStats>, Counts) {
        let format = LogFormat::okome();
        let monitors: Vec<String> = DEFAULT_MONITORS.split(',').map(String::from).collect();
        let mut ing = Ingest::new(&format, &monitors);
        let mut paths = BTreeMap::new();
        for l in lines {
            ing.line(l.as_bytes(), false, &mut paths);
        }
        (paths, ing.counts)
    }

    const TS: &str = "20/Nov/2026:10:00:00 +0000";
    const FF: &str = "Mozilla/5.0 (X11; Linux) Firefox/140.0";

    #[test]
    fn only_user_demand_for_safe_paths_counts() {
        let lines = vec![
            line(TS, "GET /assets/app.js HTTP/1.1", 200, FF, "control", "-"),
            line(TS, "HEAD /assets/app.js HTTP/1.1", 304, FF, "-", "-"),
            line(TS, "GET /assets/%61pp.js HTTP/1.1", 200, FF, "canary", "-"),
            line(
                TS,
                "HEAD /assets/app.js HTTP/1.1",
                200,
                "okome-prewarm/0.1.0",
                "control",
                "1",
            ),
            line(
                TS,
                "HEAD /version HTTP/1.1",
                200,
                "okome-prewarm/0.1.0",
                "control",
                "-",
            ),
            line(TS, "HEAD /ui-schema/x HTTP/1.1", 200, FF, "control", "1"),
            line(
                TS,
                "GET /health HTTP/1.1",
                200,
                "okome-health-probe/0.1.0",
                "control",
                "-",
            ),
            line(TS, "GET / HTTP/1.1", 200, "Prometheus/2.45", "control", "-"),
            line(TS, "POST /assets/app.js HTTP/1.1", 200, FF, "control", "-"),
            line(
                TS,
                "GET /assets/missing.js HTTP/1.1",
                404,
                FF,
                "control",
                "-",
            ),
            line(TS, "GET /ui-schema/x HTTP/1.1", 200, FF, "debug", "-"),
            line(TS, "GET /api/v1/chat HTTP/1.1", 200, FF, "control", "-"),
            line(
                TS,
                "GET http://evil.example/assets/a.js HTTP/1.1",
                200,
                FF,
                "control",
                "-",
            ),
            line(TS, "GET /assets/../api/x HTTP/1.1", 200, FF, "control", "-"),
            "garbage \u{0} line".to_string(),
            line(TS, "GET / HTTP/1.1", 200, FF, "-", "-"),
        ];
        let (paths, counts) = ingest(&lines);
        assert_eq!(paths.keys().collect::<Vec<_>>(), ["/", "/assets/app.js"]);
        assert_eq!(
            paths["/assets/app.js"].slow, 3.0,
            "GET, conditional HEAD and the %61 spelling"
        );
        assert_eq!(
            counts,
            Counts {
                lines: 16,
                truncated: 0,
                malformed: 1,
                own: 3,
                monitors: 2,
                method: 1,
                status: 1,
                debug_canary: 1,
                api: 1,
                refused: 2,
                no_time: 0,
                counted: 4,
                newest: 1_795_168_800,
            }
        );
    }

    #[test]
    fn a_forged_cache_field_in_the_user_agent_is_not_the_cache_field() {
        let ua = "x\\x22 cache=HIT warm=1";
        let lines = vec![line(TS, "GET /version HTTP/1.1", 200, ua, "control", "-")];
        let (paths, counts) = ingest(&lines);
        assert_eq!(counts.counted, 1, "{counts:?}");
        assert!(paths.contains_key("/version"));
    }

    #[test]
    fn monitor_matching_is_case_insensitive_substring() {
        assert!(contains_ci(
            b"Mozilla/5.0 (compatible; UptimeRobot/2.0)",
            b"uptimerobot"
        ));
        assert!(!contains_ci(b"Mozilla", b"uptimerobot"));
        assert!(!contains_ci(b"", b"x"));
    }
}

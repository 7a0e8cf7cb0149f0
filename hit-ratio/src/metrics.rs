//! `--prometheus`: the report as text exposition for node_exporter's
//! textfile collector.
//!
//! Every figure is a gauge: the tool describes the log it was given, which
//! shrinks when logrotate runs, so nothing here is a monotonic counter. The
//! time series and top-N stay out (their label sets are unbounded). Every
//! name is listed in docs/metrics.md.

use okome_common::prom::{Kind, Metrics};

use crate::report::Report;

/// Every metric name this tool writes, for docs/metrics.md and its test.
pub const NAMES: [&str; 17] = [
    "okome_hit_ratio_lines",
    "okome_hit_ratio_input_errors",
    "okome_hit_ratio_request_hit_ratio",
    "okome_hit_ratio_hit_ratio",
    "okome_hit_ratio_byte_hit_ratio",
    "okome_hit_ratio_requests",
    "okome_hit_ratio_body_bytes",
    "okome_hit_ratio_origin_requests",
    "okome_hit_ratio_upstream_seconds",
    "okome_hit_ratio_upstream_avoided_seconds",
    "okome_hit_ratio_http_responses",
    "okome_hit_ratio_group_requests",
    "okome_hit_ratio_group_request_hit_ratio",
    "okome_hit_ratio_canary_requests",
    "okome_hit_ratio_canary_request_hit_ratio",
    "okome_hit_ratio_request_duration_seconds",
    "okome_hit_ratio_window_end_timestamp_seconds",
];

fn gauge(metrics: &mut Metrics, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
    metrics.sample(name, Kind::Gauge, help, labels, value);
}

/// The report as exposition text. Ratios with no denominator are left out
/// rather than written as NaN, so an alert on "ratio < x" does not fire on
/// an empty log (`okome_hit_ratio_lines` tells that case apart).
pub fn render(report: &Report) -> Metrics {
    let mut m = Metrics::new();
    let l = &report.lines;
    for (kind, value) in [
        ("total", l.total),
        ("parsed", l.parsed),
        ("malformed", l.malformed),
        ("prewarm_excluded", l.prewarm_excluded),
        ("outside_window", l.outside_window),
        ("counted", l.counted),
    ] {
        gauge(
            &mut m,
            "okome_hit_ratio_lines",
            "Access-log lines in the analysed logs, by what became of them.",
            &[("kind", kind)],
            value as f64,
        );
    }
    let errors = report.inputs.iter().filter(|i| i.error.is_some()).count();
    m.gauge(
        "okome_hit_ratio_input_errors",
        "Input logs that could not be read completely.",
        errors as f64,
    );
    let r = &report.ratios;
    for (name, help, value) in [
        (
            "okome_hit_ratio_request_hit_ratio",
            "(HIT+STALE+UPDATING+REVALIDATED) / requests with a cache status.",
            r.request_hit_ratio,
        ),
        (
            "okome_hit_ratio_hit_ratio",
            "HIT / (HIT+MISS+EXPIRED).",
            r.hit_ratio,
        ),
        (
            "okome_hit_ratio_byte_hit_ratio",
            "Body bytes answered from the cache / body bytes of requests with a cache status.",
            r.byte_hit_ratio,
        ),
    ] {
        if let Some(value) = value {
            m.gauge(name, help, value);
        }
    }
    for row in &report.cache_status {
        gauge(
            &mut m,
            "okome_hit_ratio_requests",
            "Counted requests by nginx cache status.",
            &[("cache_status", &row.status)],
            row.requests as f64,
        );
    }
    for row in &report.cache_status {
        gauge(
            &mut m,
            "okome_hit_ratio_body_bytes",
            "Body bytes sent by nginx cache status.",
            &[("cache_status", &row.status)],
            row.bytes as f64,
        );
    }
    let o = &report.origin;
    m.gauge(
        "okome_hit_ratio_origin_requests",
        "Requests for which nginx asked the orchestrator (an upstream time is logged).",
        o.requests as f64,
    );
    m.gauge(
        "okome_hit_ratio_upstream_seconds",
        "Summed upstream response time of those requests.",
        o.upstream_seconds,
    );
    m.gauge(
        "okome_hit_ratio_upstream_avoided_seconds",
        "Estimated upstream time the cache saved (HIT+STALE+UPDATING x mean MISS+EXPIRED upstream time, per path group).",
        o.upstream_seconds_avoided,
    );
    for (code, count) in &report.http_status {
        gauge(
            &mut m,
            "okome_hit_ratio_http_responses",
            "Counted requests by HTTP status code.",
            &[("code", code)],
            *count as f64,
        );
    }
    for row in &report.groups {
        gauge(
            &mut m,
            "okome_hit_ratio_group_requests",
            "Counted requests by path group.",
            &[("group", &row.name)],
            row.requests as f64,
        );
    }
    for row in &report.groups {
        if let Some(value) = row.ratios.request_hit_ratio {
            gauge(
                &mut m,
                "okome_hit_ratio_group_request_hit_ratio",
                "Request hit ratio by path group.",
                &[("group", &row.name)],
                value,
            );
        }
    }
    for row in &report.canary {
        gauge(
            &mut m,
            "okome_hit_ratio_canary_requests",
            "Counted requests by canary variant.",
            &[("variant", &row.name)],
            row.requests as f64,
        );
    }
    for row in &report.canary {
        if let Some(value) = row.ratios.request_hit_ratio {
            gauge(
                &mut m,
                "okome_hit_ratio_canary_request_hit_ratio",
                "Request hit ratio by canary variant.",
                &[("variant", &row.name)],
                value,
            );
        }
    }
    if let Some(latency) = &report.latency {
        for row in latency {
            // `percentile`, not `quantile`: that label is reserved for
            // summaries, and these are gauges computed from the log.
            for (percentile, value) in [("50", row.p50), ("95", row.p95), ("99", row.p99)] {
                if let Some(value) = value {
                    gauge(
                        &mut m,
                        "okome_hit_ratio_request_duration_seconds",
                        "Request time percentiles by cache status.",
                        &[("cache_status", &row.status), ("percentile", percentile)],
                        value,
                    );
                }
            }
        }
    }
    if let Some(last) = report.window.last {
        m.gauge(
            "okome_hit_ratio_window_end_timestamp_seconds",
            "Time of the latest counted request (when request times were read).",
            last as f64,
        );
    }
    m
}

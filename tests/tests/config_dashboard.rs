//! The Grafana dashboard (configs/dashboards/grafana/) queries only metrics
//! listed in docs/metrics.md, and its queries parse (promtool).

use std::collections::BTreeSet;
use std::process::Command;

use okome_lab::check::{TempDir, describe, read, run, shipped, write};

const PROMQL_WORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// Metric names a PromQL expression reads: identifiers that are not
/// functions (followed by `(`), keywords, label names (inside `{}` or a
/// `by (…)` list), strings, ranges or Grafana `$variables`.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_parens_after_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_parens_after_keyword => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                skip_parens_after_keyword = false;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let rest: String = chars[next..].iter().take(8).collect();
                // `sum by (x) (…)`: an aggregation with its clause first.
                let clause_follows = ["by", "without"].iter().any(|kw| {
                    rest.strip_prefix(kw).is_some_and(|after| {
                        after
                            .chars()
                            .next()
                            .is_some_and(|c| c == '(' || c.is_whitespace())
                    })
                });
                let is_call = (next < chars.len() && chars[next] == '(') || clause_follows;
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    skip_parens_after_keyword = is_call;
                } else if !is_call && !PROMQL_WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (5m, 1e3).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every `expr` (and string `query`) anywhere in the dashboard JSON.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    // Template variables: label_values(metric, label) reads
                    // `metric`; the label is not a metric.
                    ("query", serde_json::Value::String(s)) => {
                        if let Some(args) = s.trim().strip_prefix("label_values(") {
                            let metric = args.split([',', ')']).next().unwrap_or("");
                            out.push(metric.to_string());
                        } else if s.contains("okome_") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_queries(item, out);
            }
        }
        _ => {}
    }
}

fn dashboard_titles(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(title)) = map.get("title") {
                out.push(title.to_lowercase());
            }
            for v in map.values() {
                dashboard_titles(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| dashboard_titles(i, out)),
        _ => {}
    }
}

/// Metrics the queries use that docs/metrics.md does not list.
fn unlisted(queries: &[String], listed: &BTreeSet<String>) -> BTreeSet<String> {
    queries
        .iter()
        .flat_map(|q| promql_metrics(q))
        .filter(|name| !listed.contains(name))
        .collect()
}

/// `promtool check rules` on the queries, each wrapped as a recording rule
/// (JSON is YAML), with Grafana's variables given concrete values: Ok when
/// Prometheus' own parser accepts every expression.
fn promtool_check(queries: &[String]) -> Result<(), String> {
    let dir = TempDir::new("promtool");
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*");
            serde_json::json!({ "record": format!("okome:dashboard:q{i}"), "expr": expr })
        })
        .collect();
    let file = dir.join("dashboard-rules.yml");
    write(
        &file,
        &serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] }).to_string(),
    );
    let mut command = Command::new("promtool");
    command.args(["check", "rules"]).arg(&file);
    let output = run(&mut command);
    if output.status.success() {
        Ok(())
    } else {
        Err(describe(&command, &output))
    }
}

#[test]
fn dashboard_queries_only_metrics_listed_in_docs() {
    let path = shipped("dashboards/grafana/okome-cache-hitmiss.json");
    let json: serde_json::Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut queries = Vec::new();
    dashboard_queries(&json, &mut queries);
    assert!(
        queries.len() >= 4,
        "the dashboard queries something: {queries:?}"
    );
    // Every query is valid PromQL to Prometheus' own parser (package
    // prometheus: promtool); a broken one is caught.
    let exprs: Vec<String> = queries
        .iter()
        .filter(|q| q.contains('(') || q.contains('{'))
        .cloned()
        .collect();
    if let Err(report) = promtool_check(&exprs) {
        panic!("the dashboard's PromQL does not parse:\n{report}");
    }
    promtool_check(&["sum(okome_upstream_up".to_string()])
        .expect_err("an unclosed parenthesis must fail promtool");
    let listed = okome_testkit::metrics::documented();
    assert!(
        !listed.is_empty(),
        "docs/metrics.md lists the emitted metrics"
    );
    let used: BTreeSet<String> = queries.iter().flat_map(|q| promql_metrics(q)).collect();
    assert_eq!(unlisted(&queries, &listed), BTreeSet::new());
    assert!(used.iter().all(|m| m.starts_with("okome_")), "{used:?}");

    // It covers what the issue asks for.
    let mut titles = Vec::new();
    dashboard_titles(&json, &mut titles);
    for topic in ["hit ratio", "cache status", "upstream", "prewarm"] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }

    // The check can fail: an unlisted name, also behind a function or a
    // label matcher that contains a metric-like word.
    let bad = vec![
        "sum by (status) (rate(okome_not_emitted_total{job=\"okome_upstream_up\"}[5m]))"
            .to_string(),
        "node_load1 > bool 2".to_string(),
        // Aggregation clauses before or after the body are not metrics.
        "max without (instance) (okome_upstream_up) or sum(okome_upstream_up) by (x)".to_string(),
    ];
    assert_eq!(
        unlisted(&bad, &listed),
        ["node_load1", "okome_not_emitted_total"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

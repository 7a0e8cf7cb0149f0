//! The four outputs of one [`Report`] and its exit status: the 80-column
//! human report grouped by node (colour only on a terminal) ending with the
//! runbook pointers, the versioned JSON document (also what peers send back
//! under `--cluster`, so it is parsed here too), the Nagios line with
//! perfdata, and the Prometheus exposition.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use okome_common::exit;
use okome_common::prom::{Kind, Metrics};

use crate::model::{self, Finding, Role, Severity, Status};
use crate::run::{Facts, NodeReport};

/// The JSON schema id; bump on any incompatible change (validate/README.md).
pub const SCHEMA: &str = "okome-validate/1";

/// Everything one run found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `local` or `cluster`.
    pub mode: &'static str,
    /// Per node, in cluster-file order.
    pub nodes: Vec<NodeReport>,
    /// Cluster invariants.
    pub cluster: Vec<Finding>,
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Passed.
    pub pass: usize,
    /// Failed crit.
    pub crit: usize,
    /// Failed warn.
    pub warn: usize,
    /// Failed info.
    pub info: usize,
    /// Not run.
    pub not_run: usize,
    /// Skipped.
    pub skipped: usize,
    /// Waived.
    pub waived: usize,
    /// Our own errors.
    pub error: usize,
}

impl Report {
    /// Every finding, nodes first then the cluster's.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.nodes
            .iter()
            .flat_map(|n| n.findings.iter())
            .chain(self.cluster.iter())
    }

    /// Counts.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for f in self.findings() {
            match f.status {
                Status::Pass => t.pass += 1,
                Status::Fail(Severity::Crit) => t.crit += 1,
                Status::Fail(Severity::Warn) => t.warn += 1,
                Status::Fail(Severity::Info) => t.info += 1,
                Status::NotRun(_) => t.not_run += 1,
                Status::Skipped(_) => t.skipped += 1,
                Status::Waived(_) => t.waived += 1,
                Status::Error => t.error += 1,
            }
        }
        t
    }

    /// The toolkit's exit status: 1 when a warn/crit check failed, else 3
    /// when okome-validate could not run a check, else 0.
    pub fn exit_status(&self) -> u8 {
        let t = self.tally();
        if t.crit + t.warn > 0 {
            exit::PROBLEM
        } else if t.error > 0 {
            exit::INTERNAL
        } else {
            exit::OK
        }
    }

    /// Nagios: 2 CRITICAL, 1 WARNING, 3 UNKNOWN (our own error only), 0 OK.
    pub fn nagios_status(&self) -> u8 {
        let t = self.tally();
        if t.crit > 0 {
            2
        } else if t.warn > 0 {
            1
        } else if t.error > 0 {
            3
        } else {
            0
        }
    }
}

// ---- JSON ------------------------------------------------------------------

fn finding_json(f: &Finding) -> Value {
    let def = f.def();
    let severity = match &f.status {
        Status::Fail(s) | Status::Waived(s) => s.word(),
        _ => def.severity.word(),
    };
    json!({
        "id": f.id,
        "group": def.group.word(),
        "status": f.status.word(),
        "severity": severity,
        "observed": f.observed,
        "expected": f.expected,
        "incident": def.incident,
        "attempts": f.attempts,
        "elapsed_ms": (f.elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        "reason": match &f.status {
            Status::NotRun(r) | Status::Skipped(r) => Value::from(r.clone()),
            _ => Value::Null,
        },
    })
}

/// The JSON document.
pub fn to_json(report: &Report) -> Value {
    let t = report.tally();
    let nodes: Vec<Value> = report
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "role": n.role.word(),
                "facts": {
                    "holds_vip": n.facts.holds_vip,
                    "vip_answer": match &n.facts.vip_answer {
                        None => Value::Null,
                        Some(Ok(node)) => json!({"node": node}),
                        Some(Err(e)) => json!({"error": e}),
                    },
                    "fingerprints": n.facts.fingerprints,
                    "warmth": n.facts.warmth.as_ref().map(|w| json!({
                        "plan_node": w.plan_node,
                        "plan": w.plan,
                        "cached": w.cached,
                    })),
                },
                "checks": n.findings.iter().map(finding_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "version": env!("CARGO_PKG_VERSION"),
        "mode": report.mode,
        "generated_at": crate::probe::now().floor(),
        "exit_status": report.exit_status(),
        "summary": {
            "pass": t.pass, "crit": t.crit, "warn": t.warn, "info": t.info,
            "not_run": t.not_run, "skipped": t.skipped, "waived": t.waived, "error": t.error,
        },
        "nodes": nodes,
        "cluster": report.cluster.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

fn parse_status(status: &str, severity: &str, reason: Option<&str>) -> Option<Status> {
    let sev = match severity {
        "crit" => Severity::Crit,
        "warn" => Severity::Warn,
        "info" => Severity::Info,
        _ => return None,
    };
    Some(match status {
        "pass" => Status::Pass,
        "fail" => Status::Fail(sev),
        "waived" => Status::Waived(sev),
        "not_run" => Status::NotRun(reason.unwrap_or("").to_string()),
        "skipped" => Status::Skipped(reason.unwrap_or("").to_string()),
        "error" => Status::Error,
        _ => return None,
    })
}

/// A peer's `--local --json` answer back into its node report (`Err` says
/// what is wrong with it: another schema, an unknown check id).
pub fn node_from_json(text: &str) -> Result<NodeReport, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if doc["schema"] != SCHEMA {
        return Err(format!("schema {} (expected {SCHEMA})", doc["schema"]));
    }
    let node = doc["nodes"].get(0).ok_or("no node in the answer")?;
    let name = node["name"]
        .as_str()
        .ok_or("node without a name")?
        .to_string();
    let role = Role::parse(node["role"].as_str().unwrap_or("")).ok_or("node without a role")?;
    let mut findings = Vec::new();
    for check in node["checks"].as_array().into_iter().flatten() {
        let id = check["id"].as_str().unwrap_or("");
        let def = model::def(id).ok_or_else(|| format!("unknown check {id:?} (version skew?)"))?;
        let status = parse_status(
            check["status"].as_str().unwrap_or(""),
            check["severity"].as_str().unwrap_or(""),
            check["reason"].as_str(),
        )
        .ok_or_else(|| format!("{id}: bad status"))?;
        findings.push(Finding {
            id: def.id,
            node: name.clone(),
            status,
            observed: check["observed"].as_str().unwrap_or("").to_string(),
            expected: check["expected"].as_str().unwrap_or("").to_string(),
            attempts: check["attempts"].as_u64().unwrap_or(0) as u32,
            elapsed: Duration::from_secs_f64(check["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0),
        });
    }
    let f = &node["facts"];
    let facts = Facts {
        holds_vip: f["holds_vip"].as_bool(),
        vip_answer: if let Some(n) = f["vip_answer"]["node"].as_str() {
            Some(Ok(n.to_string()))
        } else {
            f["vip_answer"]["error"]
                .as_str()
                .map(|e| Err(e.to_string()))
        },
        fingerprints: f["fingerprints"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        // Value indexing (Null when a key is missing), never Map indexing,
        // which panics: a peer of another version must not crash the run.
        warmth: f["warmth"].is_object().then(|| {
            let w = &f["warmth"];
            let list = |key: &str| -> Vec<String> {
                w[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            };
            crate::judge::Warmth {
                plan_node: w["plan_node"].as_str().unwrap_or("").to_string(),
                plan: list("plan"),
                cached: list("cached"),
            }
        }),
    };
    Ok(NodeReport {
        name,
        role,
        findings,
        facts,
    })
}

// ---- human -------------------------------------------------------------------

const WIDTH: usize = 80;

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn label(status: &Status) -> (&'static str, &'static str) {
    match status {
        Status::Pass => ("ok  ", "\x1b[32m"),
        Status::Fail(Severity::Crit) => ("CRIT", "\x1b[1;31m"),
        Status::Fail(Severity::Warn) => ("WARN", "\x1b[33m"),
        Status::Fail(Severity::Info) => ("info", "\x1b[36m"),
        Status::NotRun(_) => ("----", "\x1b[2m"),
        Status::Skipped(_) => ("skip", "\x1b[2m"),
        Status::Waived(_) => ("waiv", "\x1b[35m"),
        Status::Error => ("ERR ", "\x1b[1;35m"),
    }
}

fn line(out: &mut String, f: &Finding, colour: bool) {
    let (word, code) = label(&f.status);
    let word = if colour {
        format!("{code}{word}\x1b[0m")
    } else {
        word.to_string()
    };
    let attempts = if f.attempts > 1 {
        format!(" ×{}", f.attempts)
    } else {
        String::new()
    };
    // "  WORD id (31) observed…" within 80 columns.
    let id = format!("{}{attempts}", f.id);
    let room = WIDTH - 2 - 4 - 1 - 31 - 1;
    let chunks = wrap(&f.observed, room, 3);
    let _ = writeln!(
        out,
        "  {word} {id:<31} {}",
        chunks.first().map_or("", String::as_str)
    );
    for chunk in chunks.iter().skip(1) {
        let _ = writeln!(out, "{:39}{chunk}", "");
    }
}

/// `text` in lines of at most `width` characters (at word breaks where it
/// can), at most `max` lines, the last one clipped.
fn wrap(text: &str, width: usize, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let len = current.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let mut rest = line.as_str();
        while rest.chars().count() > width {
            let cut = rest
                .char_indices()
                .nth(width)
                .map_or(rest.len(), |(i, _)| i);
            out.push(rest[..cut].to_string());
            rest = &rest[cut..];
        }
        out.push(rest.to_string());
    }
    if out.len() > max {
        out.truncate(max);
        let last = out.last_mut().expect("max > 0");
        *last = clip(&format!("{last} …"), width);
    }
    out
}

/// The 80-column report.
pub fn human(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let t = report.tally();
    let _ = writeln!(
        out,
        "okome-validate · {} · {} node(s)",
        report.mode,
        report.nodes.len()
    );
    for node in &report.nodes {
        let _ = writeln!(out, "\n{} ({})", node.name, node.role.word());
        for f in &node.findings {
            line(&mut out, f, colour);
        }
    }
    if !report.cluster.is_empty() {
        let _ = writeln!(out, "\ncluster");
        for f in &report.cluster {
            line(&mut out, f, colour);
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} crit, {} warn, {} not run, {} skipped, {} waived, {} errors",
        t.pass, t.crit, t.warn, t.not_run, t.skipped, t.waived, t.error
    );
    // Runbook pointers: each incident once, with the checks that lead there.
    let mut incidents: Vec<(&str, Vec<String>)> = Vec::new();
    for f in report.findings() {
        if !matches!(
            f.status,
            Status::Fail(Severity::Crit | Severity::Warn) | Status::Error
        ) {
            continue;
        }
        let incident = f.def().incident;
        let what = format!("{}@{}", f.id, f.node);
        match incidents.iter_mut().find(|(i, _)| *i == incident) {
            Some((_, list)) => list.push(what),
            None => incidents.push((incident, vec![what])),
        }
    }
    if !incidents.is_empty() {
        let _ = writeln!(
            out,
            "\nRunbook (docs/runbook.md, /usr/share/doc/okome-validate/runbook.md):"
        );
        for (incident, checks) in incidents {
            let _ = writeln!(
                out,
                "{}",
                clip(&format!("  {incident}: {}", checks.join(", ")), WIDTH)
            );
        }
    }
    out
}

// ---- Nagios --------------------------------------------------------------------

/// `OKOME CRITICAL - … | perfdata`.
pub fn nagios(report: &Report) -> String {
    let t = report.tally();
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(report.nagios_status())];
    let bad: Vec<String> = report
        .findings()
        .filter(|f| {
            matches!(
                f.status,
                Status::Fail(Severity::Crit | Severity::Warn) | Status::Error
            )
        })
        .map(|f| format!("{}@{} {}", f.id, f.node, f.status.word()))
        .collect();
    let summary = if bad.is_empty() {
        format!("{} checks passed", t.pass)
    } else {
        bad.join(", ")
    };
    format!(
        "OKOME {word} - {summary} | pass={} crit={} warn={} not_run={} waived={} error={}",
        t.pass, t.crit, t.warn, t.not_run, t.waived, t.error
    )
}

// ---- Prometheus -------------------------------------------------------------------

/// `okome_validate_check_status{node,check,incident}`: 0 good, 1 warn,
/// 2 crit, 3 our error, -1 not run; plus the run's timestamp and counts.
pub fn prometheus(report: &Report) -> String {
    let mut m = Metrics::new();
    let t = report.tally();
    m.gauge(
        "okome_validate_last_run_timestamp_seconds",
        "unix time of the last okome-validate run",
        crate::probe::now().floor(),
    );
    for (status, count) in [
        ("pass", t.pass),
        ("crit", t.crit),
        ("warn", t.warn),
        ("not_run", t.not_run),
        ("skipped", t.skipped),
        ("waived", t.waived),
        ("error", t.error),
    ] {
        m.sample(
            "okome_validate_checks",
            Kind::Gauge,
            "checks of the last run by status",
            &[("status", status)],
            count as f64,
        );
    }
    for f in report.findings() {
        let value = match f.status {
            Status::Fail(Severity::Crit) => 2.0,
            Status::Fail(Severity::Warn) => 1.0,
            Status::Error => 3.0,
            Status::NotRun(_) => -1.0,
            _ => 0.0,
        };
        m.sample(
            "okome_validate_check_status",
            Kind::Gauge,
            "per check: 0 good (pass, skipped, waived, info), 1 warn, 2 crit, 3 okome-validate's own error, -1 not run",
            &[("node", &f.node), ("check", f.id), ("incident", f.def().incident)],
            value,
        );
    }
    m.render().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &'static str, status: Status) -> Finding {
        Finding {
            id,
            node: "frontend-a".into(),
            status,
            observed: "seen".into(),
            expected: "wanted".into(),
            attempts: 1,
            elapsed: Duration::from_millis(3),
        }
    }

    fn report(statuses: Vec<Finding>) -> Report {
        Report {
            mode: "local",
            nodes: vec![NodeReport {
                name: "frontend-a".into(),
                role: Role::Frontend,
                findings: statuses,
                facts: Facts {
                    holds_vip: Some(true),
                    vip_answer: Some(Ok("frontend-a".into())),
                    fingerprints: [("package okome-frontend".to_string(), "0.1.0".to_string())]
                        .into(),
                    warmth: Some(crate::judge::Warmth {
                        plan_node: "frontend-b".into(),
                        plan: vec!["/".into(), "/x".into()],
                        cached: vec!["/".into()],
                    }),
                },
            }],
            cluster: vec![],
        }
    }

    #[test]
    fn exit_statuses_follow_the_worst_finding() {
        let cases = [
            (vec![Status::Pass], 0, 0),
            (vec![Status::Pass, Status::Fail(Severity::Info)], 0, 0),
            (vec![Status::Waived(Severity::Crit)], 0, 0),
            (vec![Status::Fail(Severity::Warn)], 1, 1),
            (
                vec![Status::Fail(Severity::Warn), Status::Fail(Severity::Crit)],
                1,
                2,
            ),
            (vec![Status::Error], 3, 3),
            (vec![Status::Error, Status::Fail(Severity::Crit)], 1, 2),
            (
                vec![Status::NotRun("x".into()), Status::Skipped("y".into())],
                0,
                0,
            ),
        ];
        for (statuses, code, nagios) in cases {
            let r = report(
                statuses
                    .iter()
                    .cloned()
                    .map(|s| finding("node.memory", s))
                    .collect(),
            );
            assert_eq!(
                (r.exit_status(), r.nagios_status()),
                (code, nagios),
                "{statuses:?}"
            );
        }
    }

    #[test]
    fn json_round_trips_through_a_peer() {
        let r = report(vec![
            finding("node.memory", Status::Pass),
            finding("edge.gate", Status::Fail(Severity::Warn)),
            finding(
                "edge.headers",
                Status::NotRun("unit.nginx did not pass (fail)".into()),
            ),
            finding("node.throttle", Status::Skipped("no vcgencmd".into())),
            finding("edge.prewarm-fresh", Status::Waived(Severity::Warn)),
            finding("unit.nginx", Status::Error),
        ]);
        let text = to_json(&r).to_string();
        let back = node_from_json(&text).unwrap();
        assert_eq!(back.findings, r.nodes[0].findings);
        assert_eq!(back.facts, r.nodes[0].facts);
        assert!(
            node_from_json("{\"schema\":\"okome-validate/9\"}")
                .unwrap_err()
                .contains("schema")
        );
        assert!(
            node_from_json("ssh: connect")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn human_report_fits_80_columns_and_points_at_the_runbook() {
        let mut long = finding("edge.headers", Status::Fail(Severity::Crit));
        long.observed = "x".repeat(200);
        let r = report(vec![long, finding("node.memory", Status::Pass)]);
        let text = human(&r, false);
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(
            text.contains("INCIDENT 1: edge.headers@frontend-a"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
        assert!(human(&r, true).contains("\x1b[1;31mCRIT"));
    }

    #[test]
    fn nagios_and_prometheus_name_the_failures() {
        let r = report(vec![
            finding("edge.gate", Status::Fail(Severity::Crit)),
            finding("node.memory", Status::Pass),
        ]);
        let line = nagios(&r);
        assert!(
            line.starts_with("OKOME CRITICAL - edge.gate@frontend-a fail |"),
            "{line}"
        );
        assert!(
            line.ends_with("pass=1 crit=1 warn=0 not_run=0 waived=0 error=0"),
            "{line}"
        );
        let prom = prometheus(&r);
        assert!(prom.contains("okome_validate_check_status{node=\"frontend-a\",check=\"edge.gate\",incident=\"INCIDENT 5\"} 2"), "{prom}");
        // Every family it writes is a row of docs/metrics.md (the dashboard
        // may only query those).
        assert_eq!(
            okome_testkit::metrics::assert_documented(&prom).len(),
            3,
            "{prom}"
        );
    }
}

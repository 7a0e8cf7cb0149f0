//! okome-hit-ratio end to end: real nginx on the shipped frontend config
//! writes the access log, the real binary reads it (its default path under
//! the lab's `OKOME_ROOT`), and its figures must agree with the
//! `X-Cache-Status` headers nginx sent for the same requests.

use std::collections::BTreeMap;
use std::time::Duration;

use okome_lab::{Lab, Request};

#[test]
fn figures_from_a_real_nginx_log_match_what_nginx_answered() {
    let lab = Lab::start();
    // Client traffic, and one okome-prewarm request that must not count.
    let requests = [
        Request::get("/"),
        Request::get("/"),
        Request::get("/"),
        Request::get("/assets/app.js"),
        Request::get("/ui-schema/form").header("X-OKOME-Canary", "debug"),
        Request::get("/assets/app.js?v=2"),
    ];
    let mut answered: BTreeMap<String, u64> = BTreeMap::new();
    for request in requests {
        let response = lab.send(request);
        *answered
            .entry(response.cache_status().to_string())
            .or_default() += 1;
    }
    lab.send(
        Request::head("/ui-schema/next")
            .header("X-OKOME-Warm", "1")
            .header("User-Agent", "okome-prewarm/test"),
    );
    let lines = lab.wait_for_log_lines(7, Duration::from_secs(5));
    assert_eq!(lines.len(), 7, "{lines:#?}");

    let out = lab
        .tool("okome-hit-ratio")
        .args(["--json", "--detail"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lines"]["total"], 7, "{report:#}");
    assert_eq!(report["lines"]["malformed"], 0, "{lines:#?}");
    assert_eq!(report["lines"]["prewarm_excluded"], 1);
    assert_eq!(report["lines"]["counted"], 6);

    // Per cache status, exactly what nginx told the clients.
    let counted: BTreeMap<String, u64> = report["cache_status"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["requests"].as_u64().unwrap() > 0)
        .map(|row| {
            (
                row["status"].as_str().unwrap().to_string(),
                row["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let answered: BTreeMap<String, u64> = answered
        .into_iter()
        .map(|(status, n)| {
            (
                if status.is_empty() {
                    "-".into()
                } else {
                    status
                },
                n,
            )
        })
        .collect();
    assert_eq!(counted, answered, "{lines:#?}");
    assert!(counted.get("HIT").copied().unwrap_or(0) >= 2, "{counted:?}");
    assert_eq!(counted.get("BYPASS"), Some(&1), "debug canary bypasses");

    let hits = counted.get("HIT").copied().unwrap_or(0) as f64;
    let with_status: u64 = counted
        .iter()
        .filter(|(s, _)| s.as_str() != "-")
        .map(|(_, n)| n)
        .sum();
    let ratio = report["ratios"]["request_hit_ratio"].as_f64().unwrap();
    assert!((ratio - hits / with_status as f64).abs() < 1e-9, "{ratio}");

    // The canary variant nginx logged, and the path groups.
    let canary = report["canary"].as_array().unwrap();
    assert_eq!(canary[2]["name"], "debug");
    assert_eq!(canary[2]["requests"], 1);
    assert_eq!(canary[0]["name"], "control");
    assert_eq!(canary[0]["requests"], 5);
    let groups: BTreeMap<&str, u64> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(groups["/"], 3);
    assert_eq!(groups["/assets"], 2);
    assert_eq!(groups["/ui-schema"], 1);
    // nginx's own times: one series bucket holds every counted request.
    let buckets = report["series"]["buckets"].as_array().unwrap();
    let in_series: u64 = buckets
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(in_series, 6);
}

/// The log real nginx writes, read with the wrong format: not an empty
/// report and exit 0, but a warning showing the first line and the flag that
/// reads it, exit 1; read as it is, it counts.
#[test]
fn a_real_nginx_log_read_with_the_wrong_format_is_called_out() {
    let lab = Lab::start();
    lab.get("/");
    lab.get("/assets/app.js");
    let lines = lab.wait_for_log_lines(2, Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let out = lab
        .tool("okome-hit-ratio")
        .args(["--format", "combined"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none of the 2 lines read fits the combined log format"),
        "{stderr}"
    );
    assert!(stderr.contains("use --format okome"), "{stderr}");
    assert!(stderr.contains("\\\"GET / HTTP/1.1\\\" 200"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = lab.tool("okome-hit-ratio").arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

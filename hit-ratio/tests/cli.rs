//! okome-hit-ratio as an operator runs it: the real binary on fixture logs,
//! figures checked by hand, outputs parsed back (JSON with serde_json,
//! Prometheus with Debian's `promtool check metrics`), and the exit-status
//! contract.
//!
//! `fixtures/okome_access.log` has 20 lines: 16 parse (one behind a NUL run,
//! one with invalid UTF-8, one CRLF), 4 are malformed (an older combined
//! line, a NUL-only line, garbage, a cut-off last line without newline), 1
//! is okome-prewarm's own. The expected figures below are worked out by hand
//! from that file; the comments show the arithmetic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/okome_access.log")
}

fn hit_ratio() -> assert_cmd::Command {
    // Keep the machine's /etc/default and environment out of the tests.
    okome_testkit::tool!("okome-hit-ratio", Path::new("/nonexistent-okome-root"))
}

/// Run `cmd` (which writes JSON), require success, and parse its output.
fn json_of(mut cmd: assert_cmd::Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn json(args: &[&str]) -> Value {
    let mut cmd = hit_ratio();
    cmd.arg("--json").args(args);
    json_of(cmd)
}

fn close(value: &Value, expected: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn figures_of_the_fixture_log_match_the_hand_count() {
    let fixture = fixture();
    let report = json(&["--detail", fixture.to_str().unwrap()]);
    assert_eq!(report["schema"], "okome-hit-ratio/1");
    let lines = &report["lines"];
    assert_eq!(lines["total"], 20);
    assert_eq!(lines["parsed"], 16);
    assert_eq!(lines["malformed"], 4);
    assert_eq!(lines["prewarm_excluded"], 1);
    assert_eq!(lines["outside_window"], 0);
    assert_eq!(lines["counted"], 15);

    // Per cache status: HIT ×5 (1000+5000+5000+1000+50 bytes), MISS ×3
    // (5000+150+800), one each of the rest; SCARCE is unknown, by name.
    let statuses: Vec<(String, u64, u64)> = report["cache_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
                r["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("HIT", 5, 12_050),
        ("MISS", 3, 5_950),
        ("EXPIRED", 1, 2_000),
        ("STALE", 1, 2_000),
        ("UPDATING", 1, 4_000),
        ("REVALIDATED", 1, 0),
        ("BYPASS", 1, 300),
        ("-", 1, 100),
        ("SCARCE", 1, 700),
    ];
    let expected: Vec<(String, u64, u64)> = expected
        .iter()
        .map(|(s, r, b)| (s.to_string(), *r, *b))
        .collect();
    assert_eq!(statuses, expected);

    // request hit ratio: (5 HIT + STALE + UPDATING + REVALIDATED) / 14 with a status
    close(&report["ratios"]["request_hit_ratio"], 8.0 / 14.0);
    // HIT ratio: 5 / (5 + 3 MISS + 1 EXPIRED)
    close(&report["ratios"]["hit_ratio"], 5.0 / 9.0);
    // byte hit ratio: (12050 + 2000 + 4000 + 0) / 27000
    close(&report["ratios"]["byte_hit_ratio"], 18_050.0 / 27_000.0);

    // Origin: 7 lines with an upstream time: 0.2 + (0.002+1.0+0.4) + 0.3
    // + 0.04 + 2.0 + 0.009 + 0.1 s. Miss mean (0.2+0.3+2.0+0.1)/4 = 0.65 s.
    let origin = &report["origin"];
    assert_eq!(origin["requests"], 7);
    close(&origin["upstream_seconds"], 4.051);
    close(&origin["miss_mean_seconds"], 0.65);
    // Avoided, per group: / 2×0.65 (overall mean), /assets 2×0.15,
    // /static 1×0.65, /ui-schema 1×0.3, /api 1×2.0, other 0.
    close(&origin["upstream_seconds_avoided"], 4.55);

    assert_eq!(
        report["http_status"],
        serde_json::json!({"200": 12, "304": 1, "502": 1, "503": 1})
    );

    let groups: Vec<(String, u64, Value)> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["requests"].as_u64().unwrap(),
                g["request_hit_ratio"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        names,
        ["/", "/assets", "/static", "/ui-schema", "/api", "other"]
    );
    let requests: Vec<u64> = groups.iter().map(|g| g.1).collect();
    assert_eq!(requests, [2, 4, 2, 2, 3, 2]);
    close(&groups[0].2, 1.0);
    close(&groups[1].2, 0.5);
    close(&groups[2].2, 1.0);
    close(&groups[3].2, 0.5);
    close(&groups[4].2, 1.0 / 3.0); // BYPASS, MISS, HIT
    close(&groups[5].2, 0.0); // SCARCE; /health has no cache status

    let canary = report["canary"].as_array().unwrap();
    let requests: Vec<u64> = canary
        .iter()
        .map(|c| c["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(requests, [10, 3, 1, 1, 0]);
    close(&canary[0]["request_hit_ratio"], 0.6); // 4 HIT + REVALIDATED + UPDATING of 10
    close(&canary[1]["request_hit_ratio"], 2.0 / 3.0); // HIT, STALE of HIT/EXPIRED/STALE
    assert!(canary[4]["request_hit_ratio"].is_null());

    // By hour: 10:00 has 9 counted (8 with a status, 5 from cache), 11:00 has 6 (3 of 6).
    let series = &report["series"];
    assert_eq!(series["by"], "hour");
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["start"], 1_795_168_800); // 2026-11-20 10:00 UTC
    assert_eq!(buckets[0]["requests"], 9);
    close(&buckets[0]["request_hit_ratio"], 5.0 / 8.0);
    assert_eq!(buckets[1]["requests"], 6);
    close(&buckets[1]["request_hit_ratio"], 0.5);

    // Missed paths, query strings dropped: app.js twice (one with ?v=\xff\xfe).
    let top = report["top_missed"].as_array().unwrap();
    assert_eq!(top[0]["path"], "/assets/app.js");
    assert_eq!(top[0]["misses"], 2);
    assert_eq!(top[0]["overcount"], 0);
    assert_eq!(top.len(), 3);

    // Latency: HIT times 1,2,1,1,1 ms; MISS 250, 2000, 120 ms.
    let latency = report["latency"].as_array().unwrap();
    assert_eq!(latency[0]["status"], "HIT");
    close(&latency[0]["p50"], 0.001);
    close(&latency[0]["p99"], 0.002);
    assert_eq!(latency[1]["status"], "MISS");
    close(&latency[1]["p50"], 0.250);
    close(&latency[1]["p95"], 2.000);

    // The four malformed lines, by number.
    let samples: Vec<u64> = report["malformed_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    assert_eq!(samples, [14, 15, 19, 20]);
}

#[test]
fn the_default_report_is_a_table_that_fits_80_columns() {
    let out = hit_ratio().arg(fixture()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(text.contains("request hit ratio   57.1 %"), "{text}");
    assert!(text.contains("HIT ratio           55.6 %"), "{text}");
    assert!(text.contains("byte hit ratio      66.9 %"), "{text}");
    assert!(
        text.contains("upstream time avoided by the cache: 4.55 s"),
        "{text}"
    );
    assert!(
        text.contains("parsed 16 · malformed 4 · prewarm excluded 1"),
        "{text}"
    );
    // The default report leaves out the detail sections.
    assert!(!text.contains("Top missed"));
    assert!(!text.contains("First malformed"));
}

#[test]
fn verbose_shows_the_first_malformed_line_numbers() {
    let fixture = fixture();
    let out = hit_ratio().arg("-v").arg(&fixture).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let name = fixture.display().to_string();
    for line in [14, 15, 19, 20] {
        assert!(
            text.contains(&format!("{name}:{line}: ")),
            "line {line} in {text}"
        );
    }
    // With --json, -v puts them on stderr instead.
    let out = hit_ratio()
        .args(["-v", "--json"])
        .arg(&fixture)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{name}:14: malformed")),
        "{stderr}"
    );
}

#[test]
fn rotated_plain_and_gzip_files_and_stdin_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(fixture()).unwrap();
    let plain = dir.path().join("okome_access.log.1");
    let gz = dir.path().join("okome_access.log.2.gz");
    std::fs::write(&plain, &data).unwrap();
    std::fs::write(&gz, gzip(&data)).unwrap();
    let report = json(&[
        fixture().to_str().unwrap(),
        plain.to_str().unwrap(),
        gz.to_str().unwrap(),
    ]);
    assert_eq!(report["lines"]["total"], 60);
    assert_eq!(report["lines"]["malformed"], 12);
    assert_eq!(report["lines"]["counted"], 45);
    assert_eq!(report["inputs"][2]["gzip"], true);
    assert_eq!(report["inputs"][2]["lines"], 20);
    close(&report["ratios"]["request_hit_ratio"], 8.0 / 14.0);
    // Line numbers restart per file.
    let samples = report["malformed_samples"].as_array().unwrap();
    assert_eq!(samples[4]["input"], plain.to_str().unwrap());
    assert_eq!(samples[4]["line"], 14);

    // gzip on stdin, recognised by content.
    let mut cmd = hit_ratio();
    cmd.args(["--json", "-"]).write_stdin(gzip(&data));
    let report = json_of(cmd);
    assert_eq!(report["lines"]["counted"], 15);
}

#[test]
fn a_big_log_counts_the_same_whatever_the_thread_count() {
    // 30 MB: several 8 MiB chunks, cut at newline boundaries.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.log");
    let data = std::fs::read(fixture()).unwrap();
    let mut whole = Vec::new();
    let copies = 30_000_000 / data.len() + 1;
    for _ in 0..copies {
        whole.extend_from_slice(&data);
        whole.push(b'\n'); // the fixture's last line has none
    }
    std::fs::write(&big, &whole).unwrap();
    let one = json(&["--detail", "--threads", "1", big.to_str().unwrap()]);
    let many = json(&["--detail", "--threads", "3", big.to_str().unwrap()]);
    assert_eq!(one, many);
    assert_eq!(one["lines"]["total"], 20 * copies as u64);
    assert_eq!(one["lines"]["malformed"], 4 * copies as u64);
    assert_eq!(one["lines"]["counted"], 15 * copies as u64);
}

#[test]
fn since_and_until_select_a_window() {
    let fixture = fixture();
    let report = json(&["--since", "2026-11-20T11:00Z", fixture.to_str().unwrap()]);
    assert_eq!(report["lines"]["counted"], 6);
    assert_eq!(report["lines"]["outside_window"], 9);
    assert_eq!(report["window"]["since"], 1_795_172_400);
    let report = json(&[
        "--since",
        "20/Nov/2026:11:00:00 +0100", // 10:00 UTC
        "--until",
        "2026-11-20T10:02:00Z",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(report["lines"]["counted"], 5);
    // A relative age reaching back to 1970 counts everything.
    let report = json(&["--since", "3000w", fixture.to_str().unwrap()]);
    assert_eq!(report["lines"]["counted"], 15);
}

#[test]
fn since_on_a_big_plain_log_skips_the_old_part_and_counts_the_same() {
    // 33 hours of one request a second, in time order, ~25 MB.
    let base = 1_795_100_000i64;
    let n = 120_000i64;
    let mut text = String::new();
    for i in 0..n {
        let t = base + i;
        let (secs, day) = (
            t.rem_euclid(86_400),
            19 + (t - 1_795_046_400).div_euclid(86_400), // 2026-11-19 00:00 UTC
        );
        let cache = ["HIT", "HIT", "MISS", "STALE", "-"][(i % 5) as usize];
        text.push_str(&format!(
            "192.0.2.1 - - [{day:02}/Nov/2026:{:02}:{:02}:{:02} +0000] \"GET /p{} HTTP/1.1\" 200 {} \"-\" \"ua\" cache={cache} rt=0.001 urt=\"-\" rid=r canary=control warm=-\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            i % 97,
            i % 1000,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    std::fs::write(&log, &text).unwrap();
    let since = format!("@{}", base + n - 5 * 3600);

    let seeked = json(&["--since", &since, log.to_str().unwrap()]);
    let mut cmd = hit_ratio();
    cmd.args(["--json", "--since", &since, "-"])
        .write_stdin(text.clone());
    let streamed = json_of(cmd);

    assert_eq!(seeked["lines"]["counted"], 5 * 3600);
    assert_eq!(seeked["lines"]["counted"], streamed["lines"]["counted"]);
    assert_eq!(seeked["cache_status"], streamed["cache_status"]);
    assert_eq!(seeked["ratios"], streamed["ratios"]);
    assert_eq!(seeked["groups"], streamed["groups"]);
    // Most of the file was never read; the slack hour before --since was.
    let skipped = seeked["inputs"][0]["skipped_bytes"].as_u64().unwrap();
    assert!(skipped > text.len() as u64 / 2, "{skipped}");
    assert_eq!(streamed["inputs"][0]["skipped_bytes"], 0);
    let read = seeked["lines"]["total"].as_u64().unwrap();
    assert!((5 * 3600..=6 * 3600 + 2000).contains(&read), "{read}");
}

#[test]
fn prewarm_requests_are_counted_only_when_asked() {
    let report = json(&["--include-warm", fixture().to_str().unwrap()]);
    assert_eq!(report["lines"]["counted"], 16);
    assert_eq!(report["lines"]["prewarm_excluded"], 0);
}

#[test]
fn groups_are_configurable_by_flag_and_environment() {
    let report = json(&["--groups", "/api,/assets/", fixture().to_str().unwrap()]);
    let names: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/", "/api", "/assets/", "other"]);
    let mut cmd = hit_ratio();
    cmd.env("OKOME_HIT_RATIO_GROUPS", "/static")
        .arg("--json")
        .arg(fixture());
    let report = json_of(cmd);
    assert_eq!(report["groups"][1]["name"], "/static");
    assert_eq!(report["groups"][1]["requests"], 2);
}

#[test]
fn a_pasted_nginx_log_format_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("site.log");
    std::fs::write(
        &log,
        concat!(
            "2026-11-20T10:00:00+00:00 HIT 200 \"GET /a HTTP/1.1\" 0.001\n",
            "2026-11-20T10:00:01+00:00 MISS 200 \"GET /b HTTP/1.1\" 0.300\n",
            "2026-11-20T10:00:02+00:00 HIT 200 \"GET /a HTTP/1.1\" 0.001\n",
        ),
    )
    .unwrap();
    let spec = r#"log_format site '$time_iso8601 $upstream_cache_status $status '
                      '"$request" $request_time';"#;
    let report = json(&[
        "--log-format",
        spec,
        "--by",
        "minute",
        log.to_str().unwrap(),
    ]);
    assert_eq!(report["lines"]["parsed"], 3);
    close(&report["ratios"]["request_hit_ratio"], 2.0 / 3.0);
    assert_eq!(report["series"]["buckets"][0]["requests"], 3);
}

#[test]
fn prometheus_output_passes_promtool_and_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("okome-hit-ratio.prom");
    hit_ratio()
        .args(["--prometheus", "--detail", "--output"])
        .arg(&target)
        .arg(fixture())
        .assert()
        .success()
        .stdout("");
    let text = std::fs::read_to_string(&target).unwrap();
    // Only the target is left in the directory: no temp file behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
            .parse()
            .unwrap()
    };
    assert!((value("okome_hit_ratio_request_hit_ratio") - 8.0 / 14.0).abs() < 1e-12);
    assert_eq!(value("okome_hit_ratio_lines{kind=\"malformed\"}"), 4.0);
    assert_eq!(
        value("okome_hit_ratio_requests{cache_status=\"SCARCE\"}"),
        1.0
    );
    assert_eq!(value("okome_hit_ratio_http_responses{code=\"200\"}"), 12.0);
    assert_eq!(value("okome_hit_ratio_upstream_avoided_seconds"), 4.55);
    assert_eq!(
        value("okome_hit_ratio_request_duration_seconds{cache_status=\"MISS\",percentile=\"50\"}"),
        0.25
    );

    // Every family written is one of the tool's declared names, and every
    // declared name is a row of docs/metrics.md.
    okome_testkit::metrics::assert_documented(&text);
    let documented = okome_testkit::metrics::documented();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            okome_hit_ratio::metrics::NAMES.contains(&name),
            "{name} undeclared"
        );
    }
    for name in okome_hit_ratio::metrics::NAMES {
        assert!(
            documented.contains(name),
            "{name} is not a row of docs/metrics.md"
        );
    }
}

#[test]
fn fail_below_exits_1_under_the_threshold_and_0_above() {
    hit_ratio()
        .args(["--fail-below", "0.6"])
        .arg(fixture())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("57.1 % is below 60.0 %"));
    hit_ratio()
        .args(["--fail-below", "50%"])
        .arg(fixture())
        .assert()
        .code(0);
    // Nothing to compute a ratio from is a problem too.
    hit_ratio()
        .args(["--fail-below", "0.5", "--since", "2030-01-01"])
        .arg(fixture())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no request with a cache status"));
}

#[test]
fn when_nothing_is_readable_no_report_is_written_and_the_last_metrics_survive() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("okome-hit-ratio.prom");
    hit_ratio()
        .args(["--prometheus", "--output"])
        .arg(&metrics)
        .arg(fixture())
        .assert()
        .success();
    let good = std::fs::read(&metrics).unwrap();

    let missing = "/nonexistent/okome_access.log";
    let out = hit_ratio()
        .args(["--prometheus", "--output"])
        .arg(&metrics)
        .arg(missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(missing), "{stderr}");
    assert!(
        !stderr.contains("other inputs"),
        "there are no others: {stderr}"
    );
    assert_eq!(
        std::fs::read(&metrics).unwrap(),
        good,
        "metrics overwritten"
    );

    let out = hit_ratio().arg(missing).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "an empty report was printed");
}

#[test]
fn an_unreadable_file_is_named_the_others_still_count_and_the_exit_is_3() {
    let missing = "/nonexistent/okome_access.log.3.gz";
    let out = hit_ratio()
        .args(["--json", missing])
        .arg(fixture())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(missing), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear error: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lines"]["counted"], 15);
    assert!(
        report["inputs"][0]["error"]
            .as_str()
            .unwrap()
            .contains(missing)
    );

    // A corrupt gzip (cut short, as after a power cut) is an error too,
    // after counting what could be decompressed.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.log.gz");
    let compressed = gzip(&std::fs::read(fixture()).unwrap());
    std::fs::write(&cut, &compressed[..compressed.len() / 2]).unwrap();
    hit_ratio()
        .arg(&cut)
        .assert()
        .code(3)
        .stderr(predicates::str::contains(cut.to_str().unwrap()));
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    hit_ratio().arg("--no-such-flag").assert().code(2);
    hit_ratio().args(["--by", "week"]).assert().code(2);
    hit_ratio()
        .args(["--json", "--prometheus"])
        .assert()
        .code(2);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.prom");
    hit_ratio()
        .args(["--prometheus", "--since", "yesterday", "--output"])
        .arg(&output)
        .arg(fixture())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--since"));
    assert!(!output.exists());
    hit_ratio()
        .args(["--log-format", "'$remote_addr$status'"])
        .arg(fixture())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--log-format"));
}

#[test]
fn the_default_log_is_read_under_okome_root() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("var/log/nginx");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(fixture(), logs.join("okome_access.log")).unwrap();
    let mut cmd = hit_ratio();
    cmd.env("OKOME_ROOT", root.path()).arg("--json");
    let report = json_of(cmd);
    assert_eq!(report["lines"]["counted"], 15);
}

#[test]
fn help_defines_the_ratios_and_the_exit_statuses() {
    let out = hit_ratio().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "(HIT + STALE + UPDATING + REVALIDATED)",
        "HIT / (HIT + MISS + EXPIRED)",
        "byte hit ratio",
        "the other files are",
        "Exit status:",
        "okome-hit-ratio/1",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from --help");
    }
}

const COMBINED_LINES: &str = concat!(
    "192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] \"GET / HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"\n",
    "192.0.2.7 - - [20/Nov/2026:10:00:01 +0100] \"GET /assets/a.js HTTP/1.1\" 304 - \"-\" \"Mozilla/5.0\"\n",
);

/// A log in another format than the one asked for is not "no traffic": a
/// warning names the line count, shows the first line (escaped) and the
/// flag that reads it, nothing is written, exit 1. An empty log is not
/// this (nothing to judge): exit 0.
#[test]
fn a_log_in_another_format_is_a_warning_with_a_hint_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("combined.log");
    std::fs::write(&combined, COMBINED_LINES).unwrap();
    let metrics = dir.path().join("okome-hit-ratio.prom");
    let out = hit_ratio()
        .args(["--prometheus", "--output"])
        .arg(&metrics)
        .arg(&combined)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "warning: none of the 2 lines read fits the okome log format",
        ":1): \"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] \\\"GET / HTTP/1.1\\\" 200",
        "use --format combined",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    assert!(!metrics.exists(), "no textfile of zeros");

    // The other way round: an okome log read as combined.
    let okome = dir.path().join("okome.log");
    std::fs::write(
        &okome,
        "192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] \"GET / HTTP/1.1\" 200 10 \"-\" \"ua\" cache=HIT rt=0.001 urt=\"-\" rid=1 canary=control warm=-\n",
    )
    .unwrap();
    let out = hit_ratio()
        .args(["--format", "combined"])
        .arg(&okome)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("use --format okome"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no empty report: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Garbage with control characters: shown escaped, the generic hint.
    let garbage = dir.path().join("garbage.log");
    std::fs::write(&garbage, b"\x1b[2Jforged\rline\n").unwrap();
    let out = hit_ratio().arg(&garbage).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\\x1b[2Jforged\\rline"), "{stderr}");
    assert!(stderr.contains("--log-format '"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // An empty log: nothing to judge, exit 0.
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    hit_ratio().arg(&empty).assert().code(0).stderr("");
}

/// `-` for the body size (Apache's `%b`, some proxies) is 0 bytes, not a
/// malformed line: a real combined log keeps its 304s in the status mix.
#[test]
fn a_dash_body_size_keeps_the_304s_of_a_combined_log() {
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("combined.log");
    std::fs::write(&combined, COMBINED_LINES).unwrap();
    let report = json(&["--format", "combined", combined.to_str().unwrap()]);
    assert_eq!(report["lines"]["malformed"], 0, "{}", report["lines"]);
    assert_eq!(report["http_status"]["304"], 1, "{}", report["http_status"]);
}

/// Forged byte counts near u64::MAX never wrap the sums.
#[test]
fn forged_byte_counts_saturate_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("okome.log");
    let line = "192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] \"GET /assets/a.js HTTP/1.1\" 200 18446744073709551615 \"-\" \"ua\" cache=HIT rt=0.001 urt=\"-\" rid=1 canary=control warm=-\n";
    std::fs::write(&log, line.repeat(3)).unwrap();
    let report = json(&["-j1", log.to_str().unwrap()]);
    let text = report.to_string();
    assert!(
        text.contains("18446744073709551615"),
        "saturated at u64::MAX: {text}"
    );
}

//! okome-prewarm end to end on the lab: real nginx on the shipped frontend
//! config, the recording stub orchestrator, real redis. Demand is written
//! into nginx's own access log in the `okome` format (with the current
//! time), the binary runs with `OKOME_ROOT` at the lab root, and every
//! assertion is on what reached the stub (the origin) or what nginx now
//! answers from its cache.

use std::io::Write;
use std::process::Output;
use std::time::Duration;

use okome_common::time::format_time_local;
use okome_lab::Lab;
use okome_lab::render::LAB_REDIS_ORCHESTRATOR_PASSWORD;
use okome_testkit::tool::json as report;

const FF: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One access-log line as nginx writes it in the `okome` format.
fn log_line(request: &str, status: u16, ua: &str) -> String {
    format!(
        "198.51.100.9 - - [{}] \"{request}\" {status} 1234 \"-\" \"{ua}\" cache=HIT rt=0.001 urt=\"-\" rid=0123456789abcdef0123456789abcdef canary=control warm=-\n",
        format_time_local(now())
    )
}

fn append(path: &std::path::Path, text: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text)
        .unwrap();
}

/// Users asked for `paths` (n times each) — as far as the log knows.
fn demand(lab: &Lab, paths: &[(&str, usize)]) {
    let mut text = String::new();
    for (path, n) in paths {
        for _ in 0..*n {
            text.push_str(&log_line(&format!("GET {path} HTTP/1.1"), 200, FF));
        }
    }
    append(&lab.access_log_path(), text.as_bytes());
}

fn prewarm(lab: &Lab, args: &[&str]) -> Output {
    let output = lab
        .tool("okome-prewarm")
        .arg("--target")
        .arg(lab.url(""))
        .arg("--json")
        .args(args)
        .output()
        .expect("running okome-prewarm");
    eprintln!(
        "okome-prewarm {args:?}: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn warm_paths_at_stub(lab: &Lab) -> Vec<String> {
    let mut paths: Vec<String> = lab
        .stub
        .requests()
        .iter()
        .filter(|r| r.is_warm())
        .map(|r| r.target.clone())
        .collect();
    paths.sort();
    paths
}

/// The access-log lines nginx wrote for prewarm's requests (`warm=1`),
/// waiting up to 2 s for at least `n` (nginx logs just after answering).
fn warm_log_lines(lab: &Lab, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        // Read as bytes: a hostile log is not UTF-8.
        let bytes = std::fs::read(lab.access_log_path()).unwrap_or_default();
        let lines: Vec<String> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.ends_with(" warm=1"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || std::time::Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn warmed_paths_answer_hit_and_api_is_never_requested() {
    let lab = Lab::start();
    demand(
        &lab,
        &[
            ("/assets/app.js", 8),
            ("/static/site.css", 5),
            ("/ui-schema/form.json", 3),
            ("/version", 1),
            ("/api/v1/chat", 40),
        ],
    );
    let out = prewarm(&lab, &["--top-n", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    assert_eq!(doc["summary"]["warmed"], 3, "{doc}");
    assert_eq!(
        warm_paths_at_stub(&lab),
        ["/assets/app.js", "/static/site.css", "/ui-schema/form.json"],
        "the top 3, once each, and nothing else"
    );
    assert_eq!(lab.stub.total(), 3, "no /api/ and no /version (4th)");
    for request in lab.stub.requests() {
        assert_eq!(
            request.method, "GET",
            "HEAD miss fetched as GET (convert_head)"
        );
        assert_eq!(
            request.user_agent(),
            Some(concat!("okome-prewarm/", env!("CARGO_PKG_VERSION")))
        );
    }
    for path in ["/assets/app.js", "/static/site.css", "/ui-schema/form.json"] {
        let r = lab.get(path);
        assert_eq!(r.cache_status(), "HIT", "{path} is warm for users");
        assert_eq!(
            lab.stub.count(path),
            1,
            "{path}: the user did not reach the origin"
        );
    }
    assert_eq!(lab.stub.count("/api/v1/chat"), 0);
}

#[test]
fn a_hostile_log_only_ever_produces_safe_requests_to_the_target() {
    let lab = Lab::start();
    let mut text = Vec::new();
    for request in [
        "GET http://evil.example/assets/x.js HTTP/1.1",
        "GET //evil.example/assets/x.js HTTP/1.1",
        "GET http://127.0.0.1:1/assets/x.js HTTP/1.1",
        "GET /assets/a\\x0D\\x0AHost: evil.example HTTP/1.1",
        "GET /assets/../api/v1/admin HTTP/1.1",
        "GET /static/..%2f..%2fapi/v1/admin HTTP/1.1",
        "GET /assets/%2e%2e/%2e%2e/api/x HTTP/1.1",
        "GET /ui-schema/%5c..%5capi HTTP/1.1",
        "GET /assets/%252e%252e/api HTTP/1.1",
        "GET /api/v1/chat HTTP/1.1",
        "GET /admin/secret HTTP/1.1",
    ] {
        for _ in 0..30 {
            text.extend_from_slice(log_line(request, 200, FF).as_bytes());
        }
    }
    text.extend_from_slice(
        log_line(
            &format!("GET /assets/{} HTTP/1.1", "a".repeat(100 * 1024)),
            200,
            FF,
        )
        .as_bytes(),
    );
    text.extend_from_slice(&[b'B'; 100 * 1024]);
    text.push(b'\n');
    text.extend_from_slice(&[0u8; 8192]);
    text.push(b'\n');
    text.extend((0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    text.push(b'\n');
    text.extend_from_slice(log_line("GET /assets/fine.js HTTP/1.1", 200, FF).as_bytes());
    append(&lab.access_log_path(), &text);

    let out = prewarm(&lab, &[]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    let seen = lab.stub.requests();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/assets/fine.js"], "{doc}");
    // What nginx itself received from prewarm (its log, warm=1): the same.
    let warm_lines = warm_log_lines(&lab, 1);
    assert_eq!(warm_lines.len(), 1, "{warm_lines:?}");
    assert!(
        warm_lines[0].contains("\"HEAD /assets/fine.js HTTP/1.1\""),
        "{}",
        warm_lines[0]
    );
}

#[test]
fn a_slow_origin_trips_the_emergency_stop() {
    let lab = Lab::start();
    let paths: Vec<String> = (0..8)
        .map(|i| format!("/assets/slow{i}.js?delay_ms=2600"))
        .collect();
    let spec: Vec<(&str, usize)> = paths.iter().map(|p| (p.as_str(), 1)).collect();
    demand(&lab, &spec);
    let out = prewarm(&lab, &[]);
    assert_eq!(out.status.code(), Some(4), "exit 4: emergency stop");
    let doc = report(&out);
    let why = doc["summary"]["emergency_stop"].as_str().expect("a reason");
    assert!(
        why.contains("origin latency") && why.contains("> 2000 ms"),
        "{why}"
    );
    // Two workers: at most the two in flight when it tripped.
    assert!(
        lab.stub.total() <= 2,
        "{} requests reached the slow origin",
        lab.stub.total()
    );
    assert!(doc["summary"]["skipped"].as_u64().unwrap() >= 6, "{doc}");
    let prom =
        std::fs::read_to_string(lab.root.path("/run/okome/metrics/okome-prewarm.prom")).unwrap();
    assert!(
        prom.contains("okome_prewarm_emergency_stops_total 1\n"),
        "{prom}"
    );
}

#[test]
fn the_origin_rate_cap_holds_per_second_at_the_stub() {
    let lab = Lab::start();
    let paths: Vec<String> = (0..24).map(|i| format!("/static/r{i}.css")).collect();
    let spec: Vec<(&str, usize)> = paths.iter().map(|p| (p.as_str(), 1)).collect();
    demand(&lab, &spec);
    let out = prewarm(&lab, &["--max-rps", "4", "--workers", "4", "--top-n", "24"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lab.stub.total(), 24);
    let per_second = lab.stub.per_second();
    // Token bucket: 1 saved token + 4/s, so no calendar second sees more than 5.
    assert!(
        per_second.values().all(|&n| n <= 5),
        "requests per second at the origin: {per_second:?}"
    );
    assert!(
        report(&out)["summary"]["rate_limit_waits"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn rotation_and_truncation_are_followed() {
    let lab = Lab::start();
    let log = lab.access_log_path();
    demand(&lab, &[("/assets/before.js", 2)]);
    let first = report(&prewarm(&lab, &[]));
    assert_eq!(first["log"]["start"], "first-run");

    // logrotate (create mode): rename, last lines still land in the old
    // file, then nginx reopens on USR1.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(
        &rotated,
        log_line("GET /assets/last-in-old.js HTTP/1.1", 200, FF).as_bytes(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lab.nginx.master_pid() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log.exists(), "nginx reopened its log");
    demand(&lab, &[("/assets/first-in-new.js", 1)]);
    let second = report(&prewarm(&lab, &[]));
    assert_eq!(second["log"]["start"], "rotated", "{second}");
    for path in ["/assets/last-in-old.js", "/assets/first-in-new.js"] {
        assert_eq!(lab.stub.count(path), 1, "{path} warmed after rotation");
    }

    // copytruncate.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    demand(&lab, &[("/assets/after-truncate.js", 1)]);
    let third = report(&prewarm(&lab, &[]));
    let start = third["log"]["start"].as_str().unwrap();
    assert!(start == "truncated" || start == "replaced", "{third}");
    assert_eq!(lab.stub.count("/assets/after-truncate.js"), 1);
}

#[test]
fn its_own_requests_do_not_count_on_the_next_run() {
    let lab = Lab::start();
    demand(&lab, &[("/assets/a.js", 3), ("/ui-schema/b", 2)]);
    let first = report(&prewarm(&lab, &[]));
    assert_eq!(first["summary"]["warmed"], 2, "{first}");
    // Its own two HEADs are in the log now (warm=1).
    assert_eq!(warm_log_lines(&lab, 2).len(), 2);
    let dry = lab
        .tool("okome-prewarm")
        .args(["--dry-run", "--json", "--target"])
        .arg(lab.url(""))
        .output()
        .unwrap();
    let doc = report(&dry);
    assert_eq!(doc["log"]["counts"]["own"], 2, "{doc}");
    assert_eq!(doc["log"]["counts"]["counted"], 0, "{doc}");
    let frequency = |doc: &serde_json::Value, path: &str| {
        doc["plan"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path)
            .map(|r| r["frequency"].as_f64().unwrap())
            .unwrap()
    };
    let dry_first = frequency(&doc, "/assets/a.js");
    // 3 requests decayed over seconds: no fourth vote from prewarm itself.
    assert!(dry_first < 3.0 * 3600.0 / 10_800.0 + 1e-6, "{dry_first}");
}

#[test]
fn refresh_refetches_through_the_localhost_bypass() {
    let lab = Lab::start();
    demand(&lab, &[("/ui-schema/form.json", 2)]);
    assert_eq!(prewarm(&lab, &[]).status.code(), Some(0));
    assert_eq!(lab.stub.count("/ui-schema/form.json"), 1);
    assert_eq!(prewarm(&lab, &[]).status.code(), Some(0));
    assert_eq!(
        lab.stub.count("/ui-schema/form.json"),
        1,
        "a plain run finds it hot"
    );
    let out = prewarm(&lab, &["--refresh", "--refresh-after-secs", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    assert_eq!(doc["results"][0]["cache_status"], "BYPASS", "{doc}");
    assert_eq!(doc["summary"]["warmed"], 1);
    assert_eq!(
        lab.stub.count("/ui-schema/form.json"),
        2,
        "re-fetched from the origin"
    );
    assert_eq!(lab.get("/ui-schema/form.json").cache_status(), "HIT");
}

#[test]
fn the_standby_warms_from_the_active_nodes_list() {
    let active = Lab::builder().redis(true).start();
    let standby = Lab::start();
    let redis = format!(
        "redis://orchestrator:{LAB_REDIS_ORCHESTRATOR_PASSWORD}@{}",
        active.redis().addr()
    );
    demand(
        &active,
        &[("/assets/app.js", 6), ("/static/site.css", 4), ("/", 2)],
    );

    // 127.0.0.1 is on lo: this node holds the "VIP".
    let out = prewarm(&active, &["--vip", "127.0.0.1", "--redis", &redis]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    assert_eq!(doc["role"], "active");
    assert_eq!(doc["summary"]["published"], true, "{doc}");
    let stored = active
        .redis()
        .command(&["GET", "okome:prewarm:plan"])
        .unwrap()
        .text()
        .unwrap();
    assert!(stored.contains("/assets/app.js"), "{stored}");
    let ttl = active
        .redis()
        .command(&["TTL", "okome:prewarm:plan"])
        .unwrap();
    assert!(
        matches!(ttl, okome_lab::redis::Reply::Integer(t) if t > 0 && t <= 600),
        "{ttl:?}"
    );

    // 127.0.0.2 answers on lo but is not an address of any interface: not held.
    let out = prewarm(&standby, &["--vip", "127.0.0.2", "--redis", &redis]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    assert_eq!(doc["role"], "standby");
    assert!(
        doc["source"].as_str().unwrap().starts_with("shared:"),
        "{doc}"
    );
    assert_eq!(doc["summary"]["warmed"], 3, "{doc}");
    for path in ["/assets/app.js", "/static/site.css", "/"] {
        assert_eq!(standby.stub.count(path), 1, "{path} warmed on the standby");
        assert_eq!(
            standby.get(path).cache_status(),
            "HIT",
            "{path} hot on failover"
        );
    }

    // Without Redis the standby warms from its own (empty) log: nothing.
    let standby2 = Lab::start();
    let out = prewarm(&standby2, &["--vip", "127.0.0.2"]);
    let doc = report(&out);
    assert_eq!(doc["source"], "log");
    assert_eq!(standby2.stub.total(), 0);
}

#[test]
fn a_redis_outage_is_logged_once_and_its_end_once() {
    let lab = Lab::builder().redis(true).start();
    let password = LAB_REDIS_ORCHESTRATOR_PASSWORD;
    let live = format!("redis://orchestrator:{password}@{}", lab.redis().addr());
    // Nothing listens there: Redis is down for this node.
    let down = format!(
        "redis://orchestrator:{password}@127.0.0.1:{}",
        okome_lab::free_port()
    );
    demand(&lab, &[("/assets/app.js", 3)]);
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let mut said = Vec::new();
    for _ in 0..3 {
        let out = prewarm(&lab, &["--vip", "127.0.0.1", "--redis", &down]);
        assert_eq!(report(&out)["summary"]["published"], false);
        said.push(stderr(&out));
    }
    assert_eq!(
        said[0].matches("cannot publish the plan").count(),
        1,
        "{}",
        said[0]
    );
    for (run, text) in said.iter().enumerate().skip(1) {
        assert!(
            !text.contains("cannot publish"),
            "run {run} of the same outage logged it again:\n{text}"
        );
        assert!(!text.contains(password), "{text}");
    }

    let out = prewarm(&lab, &["--vip", "127.0.0.1", "--redis", &live]);
    assert_eq!(report(&out)["summary"]["published"], true);
    assert_eq!(
        stderr(&out).matches("redis reachable again").count(),
        1,
        "{}",
        stderr(&out)
    );
    let out = prewarm(&lab, &["--vip", "127.0.0.1", "--redis", &live]);
    assert!(!stderr(&out).contains("redis"), "{}", stderr(&out));
}

#[test]
fn a_hot_plan_stays_under_nginxs_own_per_client_limit() {
    let lab = Lab::start();
    let paths: Vec<String> = (0..80).map(|i| format!("/static/h{i}.js")).collect();
    // Fill the cache from four other client addresses (20 each: well within
    // the shipped 20 r/s, burst 60 per address).
    for (i, path) in paths.iter().enumerate() {
        let from = format!("127.0.0.{}", 2 + i / 20).parse().unwrap();
        let r = lab.send(okome_lab::Request::get(path).from(from));
        assert_eq!(r.cache_status(), "MISS", "{path}");
    }
    let spec: Vec<(&str, usize)> = paths.iter().map(|p| (p.as_str(), 1)).collect();
    demand(&lab, &spec);
    // 80 hits in a burst from 127.0.0.1 would pass nginx's burst of 60 and
    // get 429s; the all-requests cap (15/s) keeps every answer a HIT.
    let out = prewarm(&lab, &["--top-n", "80"]);
    assert_eq!(out.status.code(), Some(0));
    let doc = report(&out);
    assert_eq!(doc["summary"]["already_hot"], 80, "{}", doc["summary"]);
    assert_eq!(doc["summary"]["failed"], 0);
    assert_eq!(doc["summary"]["origin_requests"], 0);
    assert_eq!(lab.stub.total(), 80, "only the fills reached the origin");
}

/// The health gate closed (orchestrator down): prewarm sends nothing at all,
/// not even to nginx, says so in one info line and exits 0; once the gate
/// reopens the same demand is warmed.
#[test]
fn a_closed_gate_skips_the_run_and_nothing_reaches_nginx() {
    let lab = Lab::start();
    demand(&lab, &[("/assets/app.js", 4), ("/static/site.css", 2)]);
    lab.close_gate();
    let lines_before = lab.access_log_lines().len();
    let out = prewarm(&lab, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(report(&out)["skipped"], "health gate closed");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("health gate closed"), "{stderr}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lab.access_log_lines().len(),
        lines_before,
        "no request reached nginx"
    );
    assert_eq!(lab.stub.total(), 0);
    let prom =
        std::fs::read_to_string(lab.root.path("/run/okome/metrics/okome-prewarm.prom")).unwrap();
    assert!(
        prom.contains("\nokome_prewarm_gate_closed_skips_total 1\n"),
        "{prom}"
    );

    lab.open_gate();
    let out = prewarm(&lab, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report(&out)["summary"]["warmed"], 2);
    assert_eq!(
        warm_paths_at_stub(&lab),
        ["/assets/app.js", "/static/site.css"]
    );
}

/// The shared plan comes from Redis, so its `node` is anyone's to choose: a
/// forged name with a newline must not forge a journal line (here one that
/// pretends the health probe reopened the gate).
#[test]
fn a_forged_plan_node_cannot_inject_log_lines() {
    let lab = Lab::builder().redis(true).start();
    let redis = format!(
        "redis://orchestrator:{LAB_REDIS_ORCHESTRATOR_PASSWORD}@{}",
        lab.redis().addr()
    );
    let forged = serde_json::json!({
        "version": 1,
        "node": "a\nokome-health-probe: info: gate opened\r\u{1b}[2K",
        "generated": now(),
        "strategy": "priority",
        "paths": ["/assets/app.js", "http://evil.example/x"],
    });
    lab.redis()
        .command(&["SET", "okome:prewarm:plan", &forged.to_string()])
        .unwrap();
    // 127.0.0.2 answers on lo but is no interface's address: standby.
    let out = prewarm(&lab, &["--vip", "127.0.0.2", "--redis", &redis]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("refusing path"),
        "the plan was read: {stderr}"
    );
    for line in stderr.lines() {
        assert!(
            line.starts_with("okome-prewarm: "),
            "forged line {line:?} in\n{stderr}"
        );
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("a\\nokome-health-probe"),
        "shown escaped: {stderr}"
    );
    assert_eq!(report(&out)["summary"]["warmed"], 1);
}

//! The `okome-prewarm` binary as an operator and the timer run it: flags,
//! exit statuses, dry runs, what it sends and what it remembers. The warm
//! target is a small recording HTTP server in the test (answers MISS the
//! first time a path is asked, HIT after, like a cache); the end-to-end
//! tests on real nginx are in `tests/tests/prewarm.rs`.

use assert_cmd::Command;
use okome_common::time::format_time_local;
use okome_prewarm::run::now_unix as now;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A recorded request: request line and headers.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A cache-like target: per path, `policy(path, nth)` gives (status, cache status).
struct Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Policy = dyn Fn(&str, usize) -> (u16, &'static str, u64) + Send + Sync;

fn target_with(policy: Arc<Policy>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = Arc::clone(&seen2);
            let policy = Arc::clone(&policy);
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let mut lines = text.split("\r\n");
                let line = lines.next().unwrap_or("").to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let entry = Seen { line, headers };
                let path = entry.path().to_string();
                let nth = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(entry);
                    seen.iter().filter(|s| s.path() == path).count()
                };
                let (status, cache, delay_ms) = policy(&path, nth);
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status} X\r\nX-Cache-Status: {cache}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
            });
        }
    });
    Target { addr, seen }
}

fn cache_like() -> Target {
    target_with(Arc::new(|_, nth| {
        (200, if nth == 1 { "MISS" } else { "HIT" }, 0)
    }))
}

impl Target {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn paths(&self) -> Vec<String> {
        let mut p: Vec<String> = self.seen().iter().map(|s| s.path().to_string()).collect();
        p.sort();
        p
    }
}

/// One `okome`-format line.
fn line(t: i64, request: &str, status: u16, ua: &str, warm: &str) -> String {
    format!(
        "192.0.2.7 - - [{}] \"{request}\" {status} 512 \"-\" \"{ua}\" cache=MISS rt=0.010 urt=\"0.009\" rid=abc canary=control warm={warm}\n",
        format_time_local(t)
    )
}

const FF: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/log/nginx")).unwrap();
        Node { root }
    }
    fn log(&self) -> PathBuf {
        self.root.path().join("var/log/nginx/okome_access.log")
    }
    fn append(&self, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p.trim_start_matches('/'))
    }
    /// The Prometheus textfile the last run wrote.
    fn prom(&self) -> String {
        std::fs::read_to_string(self.path("/run/okome/metrics/okome-prewarm.prom")).unwrap()
    }
    /// The state file the last run wrote.
    fn state(&self) -> serde_json::Value {
        json(&std::fs::read(self.path("/run/okome/prewarm.state")).unwrap())
    }
    fn cmd(&self, target: &str) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("okome-prewarm"));
        cmd.env_clear()
            .env("OKOME_ROOT", self.root.path())
            .env("OKOME_PREWARM_TARGET", target)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd
    }
}

fn demand(node: &Node, t: i64, paths: &[(&str, usize)]) {
    let mut text = String::new();
    for (path, n) in paths {
        for i in 0..*n {
            text.push_str(&line(
                t - i as i64,
                &format!("GET {path} HTTP/1.1"),
                200,
                FF,
                "-",
            ));
        }
    }
    node.append(&text);
}

fn json(output: &[u8]) -> serde_json::Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(output)))
}

#[test]
fn help_teaches_and_version_answers() {
    let node = Node::new();
    let out = node
        .cmd("http://127.0.0.1:1")
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for needle in [
        "OKOME_PREWARM_TARGET",
        "OKOME_PREWARM_TOP_N",
        "OKOME_PREWARM_LOG",
        "--dry-run",
        "Exit status",
        "emergency stop",
    ] {
        assert!(help.contains(needle), "{needle}");
    }
    // A password in OKOME_PREWARM_REDIS never shows in --help.
    let out = node
        .cmd("http://127.0.0.1:1")
        .env(
            "OKOME_PREWARM_REDIS",
            "redis://orchestrator:s3cret@127.0.0.1",
        )
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&out).contains("s3cret"));
    node.cmd("http://127.0.0.1:1")
        .arg("--version")
        .assert()
        .success()
        .stdout(predicates::str::starts_with(format!(
            "okome-prewarm {}",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn configuration_errors_exit_2_and_change_nothing() {
    let node = Node::new();
    demand(&node, now(), &[("/", 1)]);
    for (args, target, needle) in [
        (vec![], "https://127.0.0.1", "http://"),
        (vec![], "http://127.0.0.1/path", "no path"),
        (vec!["--strategy", "random"], "http://127.0.0.1", "strategy"),
        (vec!["--retries", "3"], "http://127.0.0.1", "retries"),
        (
            vec!["--deadline-secs", "150"],
            "http://127.0.0.1",
            "deadline",
        ),
        (vec!["--refresh"], "http://10.213.0.1", "loopback"),
        (vec!["--vip", "not-an-ip"], "http://127.0.0.1", "vip"),
        (vec!["--redis", "http://x"], "http://127.0.0.1", "redis"),
        (
            vec!["--accept-encoding", "gzip\r\nX: y"],
            "http://127.0.0.1",
            "accept-encoding",
        ),
        (
            vec!["--log", "/nonexistent/okome.log"],
            "http://127.0.0.1",
            "/nonexistent/okome.log",
        ),
        (vec!["--no-such-flag"], "http://127.0.0.1", "no-such-flag"),
    ] {
        node.cmd(target)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(needle));
    }
    assert!(!node.path("/run/okome/prewarm.state").exists());
}

#[test]
fn dry_run_prints_scores_and_reasons_and_writes_nothing() {
    let node = Node::new();
    let t = now();
    demand(
        &node,
        t,
        &[
            ("/assets/hot.js", 9),
            ("/ui-schema/form", 3),
            ("/api/v1/chat", 50),
            ("/", 1),
        ],
    );
    node.append(&line(
        t,
        "HEAD /version HTTP/1.1",
        200,
        "okome-prewarm/0.1.0",
        "1",
    ));
    let out = node
        .cmd("http://127.0.0.1:1")
        .args(["--dry-run", "--top-n", "2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("dry run") && lines[0].contains("strategy priority"),
        "{text}"
    );
    assert!(
        text.contains("1 own") && text.contains("50 /api/"),
        "{text}"
    );
    let ranked: Vec<&str> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .copied()
        .collect();
    assert_eq!(ranked.len(), 2, "{text}");
    assert!(
        ranked[0].contains("/assets/hot.js") && ranked[0].contains("/h x (1"),
        "{text}"
    );
    assert!(ranked[1].contains("/ui-schema/form"), "{text}");
    assert!(!text.contains("/api/v1"), "{text}");
    assert!(
        !node.path("/run/okome").exists(),
        "a dry run writes nothing"
    );

    let out = node
        .cmd("http://127.0.0.1:1")
        .args(["--dry-run", "--json", "--strategy", "breadth"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["plan"][0]["path"], "/");
    assert_eq!(doc["log"]["counts"]["api"], 50);
    assert!(doc["plan"][1]["score"].as_f64().unwrap() > 0.0);
}

#[test]
fn warms_with_real_client_headers_remembers_and_reports() {
    let node = Node::new();
    let target = cache_like();
    demand(
        &node,
        now(),
        &[
            ("/assets/app.js", 5),
            ("/static/site.css", 3),
            ("/api/v1/x", 9),
        ],
    );
    let out = node
        .cmd(&target.url())
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    assert_eq!(doc["summary"]["warmed"], 2, "{doc}");
    assert_eq!(doc["summary"]["origin_requests"], 2);
    assert_eq!(target.paths(), ["/assets/app.js", "/static/site.css"]);
    for seen in target.seen() {
        assert!(seen.line.starts_with("HEAD /"), "{seen:?}");
        assert_eq!(
            seen.header("User-Agent"),
            Some(concat!("okome-prewarm/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(seen.header("X-OKOME-Warm"), Some("1"));
        assert_eq!(seen.header("Accept-Encoding"), Some("gzip, deflate, br"));
        // The site's public name (OKOME_PREWARM_HOST's built-in default, as in
        // nginx's upstream.conf), with the target's port.
        let host = format!("192.168.86.18:{}", target.addr.port());
        assert_eq!(seen.header("Host"), Some(host.as_str()));
        assert_eq!(seen.header("X-OKOME-Canary"), None, "control variant only");
        assert_eq!(seen.header("Cookie"), None);
        assert_eq!(seen.header("X-OKOME-Refresh"), None);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("run: ")).count(),
        1,
        "one summary line: {stderr}"
    );
    assert!(stderr.contains("warmed=2 already_hot=0"), "{stderr}");

    let prom = node.prom();
    assert!(prom.contains("okome_prewarm_jobs_total 2\n"), "{prom}");
    assert!(
        prom.contains("okome_prewarm_origin_requests_total 2\n"),
        "{prom}"
    );
    let state = node.state();
    assert_eq!(
        state["log"]["offset"],
        std::fs::metadata(node.log()).unwrap().len()
    );

    // Second run, no new lines: same plan from remembered demand, now hot,
    // and no origin request.
    let out = node
        .cmd(&target.url())
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["summary"]["already_hot"], 2, "{doc}");
    assert_eq!(doc["summary"]["origin_requests"], 0);
    assert_eq!(doc["log"]["bytes"], 0);
    let prom = node.prom();
    assert!(
        prom.contains("okome_prewarm_jobs_total 4\n"),
        "totals accumulate: {prom}"
    );
}

#[test]
fn a_hostile_log_produces_only_safe_requests() {
    let node = Node::new();
    let target = cache_like();
    let t = now();
    let mut text = String::new();
    let hostile = [
        "GET http://evil.example/assets/a.js HTTP/1.1",
        "GET //evil.example/assets/a.js HTTP/1.1",
        "GET /assets/../api/v1/admin HTTP/1.1",
        "GET /assets/%2e%2e/api/x HTTP/1.1",
        "GET /assets/%2fetc%2fpasswd HTTP/1.1",
        "GET /assets/%5c..%5capi HTTP/1.1",
        "GET /assets/a\\x0D\\x0AHost: evil HTTP/1.1",
        "GET /static/a HTTP/1.1\\x0D\\x0AX-Evil: 1",
        "GET /api/v1/chat HTTP/1.1",
        "GET /admin HTTP/1.1",
        "CONNECT evil.example:443 HTTP/1.1",
    ];
    for request in hostile {
        for _ in 0..20 {
            text.push_str(&line(t, request, 200, FF, "-"));
        }
    }
    text.push_str(&format!("{}\n", "A".repeat(100 * 1024)));
    text.push_str(&line(
        t,
        &format!("GET /assets/{} HTTP/1.1", "x".repeat(100 * 1024)),
        200,
        FF,
        "-",
    ));
    text.push_str(&format!("{}\n", "\0".repeat(5000)));
    text.push_str("\u{1b}[2J\u{7f}\u{fffd}binary\u{0}garbage\r\n");
    text.push_str(&line(t, "GET /assets/ok.js HTTP/1.1", 200, FF, "-"));
    node.append(&text);
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    bytes.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(node.log())
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    node.append(&line(t, "GET /static/ok.css HTTP/1.1", 200, FF, "-"));

    let out = node
        .cmd(&target.url())
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(target.paths(), ["/assets/ok.js", "/static/ok.css"], "{doc}");
    assert!(
        doc["log"]["counts"]["malformed"].as_u64().unwrap() >= 4,
        "{doc}"
    );
    for seen in target.seen() {
        let host = format!("192.168.86.18:{}", target.addr.port());
        assert_eq!(
            seen.header("Host"),
            Some(host.as_str()),
            "never from the log"
        );
    }
}

#[test]
fn a_held_lock_makes_the_run_a_quiet_no_op() {
    let node = Node::new();
    let target = cache_like();
    demand(&node, now(), &[("/", 2)]);
    std::fs::create_dir_all(node.path("/run/okome")).unwrap();
    let lock = okome_common::fsutil::RunLock::try_acquire(&node.path("/run/okome/prewarm.lock"))
        .unwrap()
        .unwrap();
    node.cmd(&target.url())
        .assert()
        .code(0)
        .stderr(predicates::str::contains("another run holds"));
    assert!(target.seen().is_empty());
    assert!(!node.path("/run/okome/prewarm.state").exists());
    drop(lock);
    node.cmd(&target.url()).assert().code(0);
    assert_eq!(target.paths(), ["/"]);
}

#[test]
fn failures_exit_1_and_uncacheable_paths_are_quarantined_with_an_expiry() {
    let node = Node::new();
    let target = target_with(Arc::new(|path, _| match path {
        "/assets/gone.js" => (404, "MISS", 0),
        "/ui-schema/private" => (200, "MISS", 0),
        _ => (200, "HIT", 0),
    }));
    demand(
        &node,
        now(),
        &[("/assets/gone.js", 3), ("/ui-schema/private", 2), ("/", 1)],
    );
    node.cmd(&target.url())
        .args(["--quarantine-after", "2", "--quarantine-secs", "600"])
        .assert()
        .code(1);
    assert_eq!(
        target
            .seen()
            .iter()
            .filter(|s| s.path() == "/assets/gone.js")
            .count(),
        1,
        "4xx is never retried"
    );
    let out = node
        .cmd(&target.url())
        .args([
            "--json",
            "--quarantine-after",
            "2",
            "--quarantine-secs",
            "600",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    assert_eq!(json(&out)["summary"]["quarantined"], 1);
    let state = node.state();
    let q = &state["quarantine"]["/ui-schema/private"];
    assert!(
        q["reason"].as_str().unwrap().contains("MISS on 2 runs"),
        "{state}"
    );
    let until = q["until"].as_i64().unwrap();
    assert!(
        (now() + 500..=now() + 600).contains(&until),
        "expires, not forever: {until}"
    );
    let before = target.seen().len();
    let out = node
        .cmd(&target.url())
        .args(["--json", "--quarantine-after", "2"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["summary"]["skipped"], 1, "{doc}");
    let asked: Vec<String> = target.seen()[before..]
        .iter()
        .map(|s| s.path().to_string())
        .collect();
    assert!(
        !asked.contains(&"/ui-schema/private".to_string()),
        "{asked:?}"
    );
    let prom = node.prom();
    assert!(
        prom.contains("okome_prewarm_quarantined_urls 1\n"),
        "{prom}"
    );
}

#[test]
fn a_slow_origin_is_an_emergency_stop_with_exit_4() {
    let node = Node::new();
    let target = target_with(Arc::new(|_, _| (200, "MISS", 700)));
    let paths: Vec<String> = (0..10).map(|i| format!("/assets/{i}.js")).collect();
    let spec: Vec<(&str, usize)> = paths.iter().map(|p| (p.as_str(), 1)).collect();
    demand(&node, now(), &spec);
    let out = node
        .cmd(&target.url())
        .args(["--json", "--emergency-ms", "300", "--workers", "1"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    let why = doc["summary"]["emergency_stop"].as_str().unwrap();
    assert!(why.contains("origin latency"), "{why}");
    assert_eq!(
        target.seen().len(),
        1,
        "stopped after the first slow origin answer"
    );
    assert_eq!(doc["summary"]["skipped"], 9);
    assert!(String::from_utf8_lossy(&out.stderr).contains("emergency_stop=\"origin latency"));
    let prom = node.prom();
    assert!(
        prom.contains("okome_prewarm_emergency_stops_total 1\n")
            && prom.contains("okome_prewarm_emergency_stop 1\n"),
        "{prom}"
    );
}

#[test]
fn refresh_sends_the_bypass_only_for_entries_stored_long_enough_ago() {
    let node = Node::new();
    let target = target_with(Arc::new(|_, _| (200, "BYPASS", 0)));
    demand(&node, now(), &[("/version", 2)]);
    node.cmd(&target.url()).arg("--refresh").assert().code(0);
    let seen = target.seen();
    assert_eq!(
        seen[0].header("X-OKOME-Refresh"),
        Some("1"),
        "unknown store time: refresh"
    );
    node.cmd(&target.url())
        .args(["--refresh", "--refresh-after-secs", "3600"])
        .assert()
        .code(0);
    let seen = target.seen();
    assert_eq!(
        seen[1].header("X-OKOME-Refresh"),
        None,
        "stored just now: plain HEAD"
    );
}

/// While the health gate is closed the orchestrator is down: a run sends
/// nothing (it used to retry the gate's 503s for a minute and exit 4 every
/// 2 minutes of an outage), logs one info line, counts it, exits 0.
#[test]
fn a_closed_gate_skips_the_run_quietly() {
    let node = Node::new();
    let target = cache_like();
    demand(&node, now(), &[("/", 2), ("/assets/app.js", 3)]);
    std::fs::create_dir_all(node.path("/run/okome")).unwrap();
    std::fs::write(node.path("/run/okome/orchestrator.down"), "closed\n").unwrap();
    let output = node.cmd(&target.url()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        target.seen().is_empty(),
        "nothing sent: {:?}",
        target.paths()
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("info: health gate closed"), "{stderr}");
    assert!(
        node.prom()
            .contains("\nokome_prewarm_gate_closed_skips_total 1\n"),
        "{}",
        node.prom()
    );
    // The gate reopens: the next run warms what the log asked for.
    std::fs::remove_file(node.path("/run/okome/orchestrator.down")).unwrap();
    node.cmd(&target.url()).assert().code(0);
    let mut paths = target.paths();
    paths.sort();
    assert_eq!(paths, ["/", "/assets/app.js"]);
}

/// A log in another format than the one configured: a warning with the
/// line count, the first line (escaped) and the setting that reads it,
/// instead of a silent "nothing to warm" run after run. An empty tail says
/// nothing.
#[test]
fn a_log_in_another_format_is_a_warning_with_a_hint() {
    let combined = format!(
        "192.0.2.7 - - [{}] \"GET /assets/a.js HTTP/1.1\" 200 - \"-\" \"Mozilla/5.0\"\n",
        format_time_local(now())
    );
    let node = Node::new();
    let target = cache_like();
    node.append(&combined.repeat(3));
    let output = node.cmd(&target.url()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for needle in [
        "warning: ",
        "none of the 3 new lines fits the okome log format",
        "first line: \"192.0.2.7 - - [",
        "] \\\"GET /assets/a.js HTTP/1.1\\\" 200 - ",
        "it is nginx's combined format: --log-format '$remote_addr - $remote_user",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    assert!(target.seen().is_empty());
    // A run told the log is in nginx's combined format.
    let read_as_combined = |node: &Node| {
        node.cmd(&target.url())
            .env(
                "OKOME_PREWARM_LOG_FORMAT",
                okome_common::accesslog::COMBINED_LOG_FORMAT,
            )
            .output()
            .unwrap()
    };
    // Told the combined format, it reads the same log.
    let node = Node::new();
    node.append(&combined.repeat(3));
    let output = read_as_combined(&node);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("none of the"));
    assert_eq!(target.paths(), ["/assets/a.js"]);

    // The other way round: an okome log read with the combined format.
    let node = Node::new();
    demand(&node, now(), &[("/", 2)]);
    let output = read_as_combined(&node);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fits the configured log format"),
        "{stderr}"
    );
    assert!(
        stderr.contains("it is the okome format: drop --log-format"),
        "{stderr}"
    );

    // An empty log: nothing to judge, no warning.
    let node = Node::new();
    node.append("");
    let output = node.cmd(&target.url()).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("warning"),
        "{output:?}"
    );
}

/// The variables were `OKOME_WARM_*` (and `OKOME_NGINX_LOG`, …) before they
/// took the tool's name: an installed defaults file or a unit with the old
/// names still configures the tool, and a new name wins over an old one.
#[test]
fn the_old_variable_names_still_configure_the_tool() {
    let node = Node::new();
    demand(
        &node,
        now(),
        &[("/assets/a.js", 5), ("/static/b.css", 4), ("/", 3)],
    );
    let ranked = |cmd: &mut Command| {
        let out = cmd.args(["--dry-run", "--json"]).assert().success();
        json(&out.get_output().stdout)["plan"]
            .as_array()
            .unwrap()
            .len()
    };
    // Old name in the environment (the log elsewhere, so the old log name
    // must be honoured too for any plan at all).
    let moved = node.path("/srv/access.log");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::copy(node.log(), &moved).unwrap();
    std::fs::remove_file(node.log()).unwrap();
    let old_env = ranked(
        node.cmd("http://127.0.0.1:1")
            .env("OKOME_WARM_TOP_N", "1")
            .env("OKOME_NGINX_LOG", &moved),
    );
    assert_eq!(old_env, 1);
    // Old name in the defaults file; the new name in the environment wins.
    std::fs::create_dir_all(node.path("/etc/default")).unwrap();
    std::fs::write(
        node.path("/etc/default/okome-prewarm"),
        format!("OKOME_WARM_TOP_N=2\nOKOME_NGINX_LOG={}\n", moved.display()),
    )
    .unwrap();
    assert_eq!(ranked(&mut node.cmd("http://127.0.0.1:1")), 2);
    assert_eq!(
        ranked(
            node.cmd("http://127.0.0.1:1")
                .env("OKOME_PREWARM_TOP_N", "3")
        ),
        3
    );
}

//! The `okome-prewarm` binary as an operator and the timer run it: flags,
//! exit statuses, dry runs, what it sends and what it remembers. The warm
//! target is a small recording HTTP server in the test (answers MISS the
//! first time a path is asked, HIT after, like a cache); the end-to-end
//! tests on real nginx are in `tests/tests/prewarm.rs`.

use assert_cmd::Command;
use okome_common::time::format_time_local;
use okome_prewarm::run::now_unix as now;
use okome_testkit::tool::json_bytes as json;
use okome_testkit::{FakeHttp, Reply};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// A cache-like target on loopback: `policy(path, nth)` gives (status,
/// cache status, delay in ms); every request is recorded.
fn target_with(
    policy: impl Fn(&str, usize) -> (u16, &'static str, u64) + Send + Sync + 'static,
) -> FakeHttp {
    FakeHttp::start(move |seen, nth| {
        let (status, cache, delay_ms) = policy(seen.path(), nth);
        Reply::new(status, "")
            .header("X-Cache-Status", cache)
            .delay(Duration::from_millis(delay_ms))
    })
}

/// MISS the first time a path is asked, HIT after, like a cache.
fn cache_like() -> FakeHttp {
    target_with(|_, nth| (200, if nth == 1 { "MISS" } else { "HIT" }, 0))
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
        let mut cmd = okome_testkit::tool!("okome-prewarm", self.root.path());
        cmd.env("OKOME_PREWARM_TARGET", target);
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
    assert!(target.requests().is_empty());
    assert!(!node.path("/run/okome/prewarm.state").exists());
    drop(lock);
    node.cmd(&target.url()).assert().code(0);
    assert_eq!(target.paths(), ["/"]);
}

#[test]
fn failures_exit_1_and_uncacheable_paths_are_quarantined_with_an_expiry() {
    let node = Node::new();
    let target = target_with(|path, _| match path {
        "/assets/gone.js" => (404, "MISS", 0),
        "/ui-schema/private" => (200, "MISS", 0),
        _ => (200, "HIT", 0),
    });
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
            .requests()
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
    let before = target.requests().len();
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
    let asked: Vec<String> = target.requests()[before..]
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
    let target = target_with(|_, _| (200, "MISS", 700));
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
        target.requests().len(),
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
    let target = target_with(|_, _| (200, "BYPASS", 0));
    demand(&node, now(), &[("/version", 2)]);
    node.cmd(&target.url()).arg("--refresh").assert().code(0);
    let seen = target.requests();
    assert_eq!(
        seen[0].header("X-OKOME-Refresh"),
        Some("1"),
        "unknown store time: refresh"
    );
    node.cmd(&target.url())
        .args(["--refresh", "--refresh-after-secs", "3600"])
        .assert()
        .code(0);
    let seen = target.requests();
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
        target.requests().is_empty(),
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
    assert!(target.requests().is_empty());
    // A run told the log is in nginx's combined format.
    let read_as_combined = |node: &Node| {
        node.cmd(&target.url())
            .env(
                "OKOME_PREWARM_LOG_FORMAT",
                okome_accesslog::COMBINED_LOG_FORMAT,
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

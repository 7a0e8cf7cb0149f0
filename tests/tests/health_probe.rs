//! okome-health-probe end to end on the lab: the real binary drives the
//! flag file that the real nginx (shipped frontend config) checks per
//! request, in front of the stub orchestrator.
//!
//! Timing: the targets of issue 4 are asserted as upper bounds (closed
//! <= 8 s after a hang, reopened <= 20 s after recovery) with the product's
//! own defaults and a real 5 s tick, so that test takes about 30 s. The
//! flapping test ticks every second instead of every 5 s (with shorter
//! deadlines) only to keep it short: the hold-down is measured in wall-clock
//! time by the probe, not in ticks, so the property it checks is the same.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use okome_lab::render::LAB_REDIS_ORCHESTRATOR_PASSWORD;
use okome_lab::{Lab, Mode};
use okome_testkit::tool::json;

const PROBE: &str = "okome-health-probe";

/// The probe rooted in `lab` and isolated (`Lab::tool`), aimed at the stub
/// (never the shipped default address).
fn probe(lab: &Lab) -> Command {
    let mut command = lab.tool(PROBE);
    command
        .arg("--url")
        .arg(format!("{}/health", lab.stub.url()))
        .args(["--node", "lab-node"]);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One run the timer made.
#[derive(Debug, Clone)]
struct Run {
    finished: Instant,
    decision: serde_json::Value,
    stderr: String,
}

/// A stand-in for okome-health-probe.timer: runs the probe every `period`
/// on a thread until dropped.
struct Timer {
    runs: Arc<Mutex<Vec<Run>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    fn start(lab: &Lab, args: &[&str], period: Duration) -> Timer {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut command = probe(lab);
        command.arg("--json").args(args);
        let (runs2, stop2) = (Arc::clone(&runs), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let tick = Instant::now();
                let output = command.output().expect("running the probe");
                let decision =
                    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
                runs2.lock().unwrap().push(Run {
                    finished: Instant::now(),
                    decision,
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                });
                while tick.elapsed() < period && !stop2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Timer {
            runs,
            stop,
            thread: Some(thread),
        }
    }

    fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    /// Wait until `n` runs have finished; returns when the n-th finished.
    fn wait_runs(&self, n: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(run) = self.runs().get(n - 1) {
                return run.finished;
            }
            assert!(
                Instant::now() < deadline,
                "timer made fewer than {n} runs in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Poll until the gate is `closed`, returning when it was seen so.
fn wait_gate(lab: &Lab, closed: bool, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if lab.gate_closed() == closed {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "gate did not become closed={closed} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Cache `path` (with `max_age=1`) and wait until nginx considers it expired,
/// so a later request must ask upstream (or the gate) and can come back stale.
fn cache_and_expire(lab: &Lab, path: &str) {
    assert_eq!(lab.get(path).cache_status(), "MISS");
    assert_eq!(lab.get(path).cache_status(), "HIT");
    std::thread::sleep(Duration::from_millis(2_100));
}

#[test]
fn a_hung_orchestrator_closes_the_gate_in_time_and_recovery_reopens_it() {
    let lab = Lab::start();
    cache_and_expire(&lab, "/assets/app.js?max_age=1");
    // Product defaults (fall 2, rise 3, hold-down 10 s, 800 ms deadline), real 5 s tick.
    let timer = Timer::start(&lab, &[], Duration::from_secs(5));
    timer.wait_runs(1, Duration::from_secs(10));
    assert!(!lab.gate_closed());
    // Worst case for detection: hang just after a tick found it healthy.
    lab.stub.set_mode(Mode::Hung);
    let hung_at = Instant::now();
    let closed_at = wait_gate(&lab, true, Duration::from_secs(15));
    let took = closed_at - hung_at;
    // Issue 4 target: gate closed <= 8 s after the orchestrator hangs.
    assert!(
        took <= Duration::from_secs(8),
        "gate closed {took:?} after the hang"
    );
    eprintln!("gate closed {took:?} after the hang");

    // Cached UI: stale at once, from the gate, not after a 5 s read timeout.
    let r = lab.get("/assets/app.js?max_age=1");
    assert_eq!(
        (r.status, r.cache_status()),
        (200, "STALE"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-upstream"), Some("gate"));
    // "≪ 1 s": generous bound; the point is no upstream timeout was waited on.
    assert!(
        r.elapsed < Duration::from_millis(500),
        "stale answer took {:?}",
        r.elapsed
    );
    let r = lab.get("/never-cached-page");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("maintenance"), "{}", r.text());
    assert!(r.elapsed < Duration::from_millis(500), "{:?}", r.elapsed);
    let r = lab.get("/api/plan");
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("\"orchestrator_unavailable\""),
        "{}",
        r.text()
    );

    lab.stub.set_mode(Mode::Up);
    let back_at = Instant::now();
    let opened_at = wait_gate(&lab, false, Duration::from_secs(30));
    let took = opened_at - back_at;
    // The run that removed the flag may still be finishing: let it land.
    let seen = timer.runs().len();
    timer.wait_runs(seen + 1, Duration::from_secs(10));
    // Issue 4 target: reopened <= 20 s after the orchestrator recovers.
    assert!(
        took <= Duration::from_secs(20),
        "gate reopened {took:?} after recovery"
    );
    eprintln!("gate reopened {took:?} after recovery");
    let r = lab.get("/after-recovery");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some(&*lab.stub.addr().to_string()));
    let runs = timer.runs();
    drop(timer);

    // Exactly two transitions, each logged once, one line each; every other
    // run silent.
    let log: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert_eq!(
        log.matches("okome-health-probe: warning: gate closed")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("timeout waiting for the answer"), "{log}");
    assert_eq!(
        log.matches("okome-health-probe: info: gate opened").count(),
        1,
        "{log}"
    );
    assert!(log.contains("had been closed for"), "{log}");
    assert!(
        runs.iter().all(|r| r.decision.is_object()),
        "every run printed its decision"
    );
    let metrics =
        fs::read_to_string(lab.root.path("/run/okome/metrics/okome-health-probe.prom")).unwrap();
    assert!(
        metrics.contains("okome_gate_transitions_total{to=\"down\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("okome_gate_transitions_total{to=\"up\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("okome_upstream_up 1\n"), "{metrics}");
    assert_eq!(lab.nginx.reload_count(), 0, "the gate never reloads nginx");
}

#[test]
fn a_flapping_orchestrator_moves_the_gate_at_most_once_per_hold_down() {
    let lab = Lab::start();
    // Ticks every 1 s (see the file comment); hold-down 6 s; the orchestrator's
    // /health flips between up and 503 every 3 s, which without a hold-down
    // moves the gate about twice per 6 s cycle.
    let hold_down = Duration::from_secs(6);
    let timer = Timer::start(
        &lab,
        &[
            "--hold-down",
            "6s",
            "--rise",
            "2",
            "--timeout",
            "300ms",
            "--connect-timeout",
            "200ms",
            "--recheck-pause",
            "50ms",
        ],
        Duration::from_secs(1),
    );
    let started = Instant::now();
    let mut up = true;
    while started.elapsed() < Duration::from_secs(27) {
        std::thread::sleep(Duration::from_secs(3));
        up = !up;
        lab.stub.set_health(if up { Mode::Up } else { Mode::Down });
    }
    let runs = timer.runs();
    drop(timer);
    let transitions: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.decision["transition"]["at_unix_ms"].as_u64())
        .collect();
    let held = runs
        .iter()
        .filter(|r| r.decision.get("hold_down_remaining_seconds").is_some())
        .count();
    eprintln!(
        "{} runs, transitions at {transitions:?}, {held} runs held down",
        runs.len()
    );
    assert!(
        transitions.len() >= 2,
        "the gate follows a real change at all: {transitions:?}"
    );
    assert!(held >= 1, "the hold-down actually held a transition back");
    for pair in transitions.windows(2) {
        assert!(
            pair[1] - pair[0] >= hold_down.as_millis() as u64,
            "two transitions {} ms apart, hold-down {hold_down:?}",
            pair[1] - pair[0]
        );
    }
    let span = runs.last().unwrap().finished - runs[0].finished;
    assert!(transitions.len() as u64 <= span.as_secs() / hold_down.as_secs() + 1);
    // Each transition is one log line, nothing else is logged.
    let log: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    assert_eq!(log.lines().count(), transitions.len(), "{log}");
    assert_eq!(lab.nginx.reload_count(), 0);
}

#[test]
fn check_local_follows_the_local_nginx_not_the_orchestrator() {
    let mut lab = Lab::start();
    let check = |lab: &Lab| {
        probe(lab)
            .args([
                "--check-local",
                "--local-url",
                &lab.url("/nginx_status"),
                "--json",
            ])
            .output()
            .unwrap()
    };
    // Orchestrator dead: the local nginx is fine, so keepalived keeps the VIP.
    lab.stub.set_mode(Mode::Refused);
    let output = check(&lab);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output)["check"]["status"], 200);
    lab.stub.set_mode(Mode::Hung);
    assert_eq!(check(&lab).status.code(), Some(0));
    assert_eq!(
        lab.stub.count("/health"),
        0,
        "--check-local never asks the orchestrator"
    );
    assert!(
        !lab.root.path("/run/okome/health-probe.state").exists(),
        "and writes nothing"
    );
    // Orchestrator fine, local nginx gone: the check fails, so the VIP moves.
    lab.stub.set_mode(Mode::Up);
    let pid = nix::unistd::Pid::from_raw(lab.nginx.master_pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.nginx.is_running() {
        assert!(Instant::now() < deadline, "nginx did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = check(&lab);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(json(&output)["check"]["reason"], "refused");
}

/// Every file and directory under `root`: path -> (inode, mtime ns, size).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i128, u64)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, i128, u64)>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            out.insert(path.clone(), (meta.ino(), mtime, meta.size()));
            if meta.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

#[test]
fn a_hundred_steady_state_runs_change_nothing_after_the_first() {
    let lab = Lab::start();
    let run_dir = lab.root.path("/run");
    // nginx logs its start-up notices asynchronously: let them land first.
    let mut before = snapshot(lab.root.dir());
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = snapshot(lab.root.dir());
        if now == before {
            break;
        }
        before = now;
    }
    let first = probe(&lab).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stderr(&first).is_empty(), "{}", stderr(&first));
    let after_first = snapshot(lab.root.dir());
    let first_textfile =
        fs::read_to_string(lab.root.path("/run/okome/metrics/okome-health-probe.prom")).unwrap();
    // Outside /run nothing changed even on the first run.
    let outside = |snap: &BTreeMap<PathBuf, (u64, i128, u64)>| {
        snap.iter()
            .filter(|(path, _)| !path.starts_with(&run_dir))
            .map(|(p, v)| (p.clone(), *v))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outside(&before),
        outside(&after_first),
        "a run wrote outside /run"
    );
    for run in 0..100 {
        let output = probe(&lab).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "run {run}: {}",
            stderr(&output)
        );
        assert!(
            output.stderr.is_empty(),
            "run {run} logged: {}",
            stderr(&output)
        );
    }
    let after = snapshot(lab.root.dir());
    // The textfile (tmpfs) is rewritten whenever its last-run stamp (whole
    // seconds) moves, so a stopped probe shows, or a slow run lands in
    // another duration step: it and its directory are the only things
    // allowed to change, and only in those two lines.
    let textfile = lab.root.path("/run/okome/metrics/okome-health-probe.prom");
    let without_stamp = |text: String| -> String {
        text.lines()
            .filter(|l| {
                !l.starts_with("okome_health_probe_last_run_timestamp_seconds ")
                    && !l.starts_with("okome_probe_duration_seconds ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_stamp(first_textfile),
        without_stamp(fs::read_to_string(&textfile).unwrap()),
        "steady-state runs changed the textfile beyond its last-run stamp and duration"
    );
    let stamp_may_move = [textfile.clone(), textfile.parent().unwrap().to_path_buf()];
    let changed: Vec<_> = after
        .iter()
        .filter(|(path, _)| !stamp_may_move.contains(path))
        .filter(|(path, meta)| after_first.get(*path) != Some(meta))
        .map(|(path, _)| path.clone())
        .chain(
            after_first
                .keys()
                .filter(|p| !after.contains_key(*p))
                .cloned(),
        )
        .collect();
    assert!(changed.is_empty(), "steady-state runs changed {changed:?}");
    assert_eq!(lab.stub.count("/health"), 101);
}

#[test]
fn concurrent_runs_serialise_on_the_lock() {
    let lab = Lab::start();
    // /health hangs, so the run that gets the lock holds it for two full
    // checks (about 650 ms); the others start inside that window.
    lab.stub.set_health(Mode::Hung);
    let children: Vec<_> = (0..6)
        .map(|_| {
            probe(&lab)
                .args([
                    "--json",
                    "--timeout",
                    "300ms",
                    "--connect-timeout",
                    "200ms",
                    "--recheck-pause",
                    "50ms",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let modes: Vec<String> = outputs
        .iter()
        .map(|o| json(o)["mode"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "probe").count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| *m == "skipped").count(),
        5,
        "{modes:?}"
    );
    for output in &outputs {
        let decision = json(output);
        if decision["mode"] == "skipped" {
            assert_eq!(output.status.code(), Some(0));
            assert!(
                output.stderr.is_empty(),
                "a skipped run is quiet: {}",
                stderr(output)
            );
        }
    }
    assert_eq!(lab.stub.count("/health"), 2, "one run, two checks");
    assert!(lab.gate_closed());
}

#[test]
fn bad_config_exits_2_and_leaves_the_gate_as_it_was() {
    let lab = Lab::start();
    lab.stub.set_health(Mode::Down);
    assert_eq!(probe(&lab).output().unwrap().status.code(), Some(1));
    assert!(lab.gate_closed());
    let flag = fs::read(lab.root.flag_file()).unwrap();
    lab.stub.set_health(Mode::Up);
    let asked = lab.stub.count("/health");

    let output = probe(&lab)
        .args(["--url", "htp://nope", "--rise", "1", "--hold-down", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("htp://nope"),
        "{}",
        stderr(&output)
    );

    let not_a_dir = lab.root.path("/run/okome/not-a-dir");
    fs::write(&not_a_dir, "").unwrap();
    let output = probe(&lab)
        .args(["--rise", "1", "--hold-down", "0", "--state-dir"])
        .arg(&not_a_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not-a-dir"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not usable"),
        "{}",
        stderr(&output)
    );

    assert_eq!(
        fs::read(lab.root.flag_file()).unwrap(),
        flag,
        "gate left as it was"
    );
    assert_eq!(lab.stub.count("/health"), asked, "nothing was probed");
    assert_eq!(
        lab.get("/api/x").status,
        503,
        "nginx still answers from the gate"
    );
}

#[test]
fn the_redis_heartbeat_lands_in_real_redis_and_its_failure_never_touches_the_gate() {
    let lab = Lab::builder().redis(true).start();
    let redis = lab.redis();
    let good = format!(
        "redis://orchestrator:{LAB_REDIS_ORCHESTRATOR_PASSWORD}@{}",
        redis.addr()
    );
    let output = probe(&lab)
        .args(["--redis-url", &good, "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        json(&output)["heartbeat"]["ok"],
        true,
        "{}",
        stderr(&output)
    );
    let value = redis
        .command(&["GET", "okome:health:lab-node"])
        .unwrap()
        .text()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        (value["gate"].as_str(), value["upstream_up"].as_bool()),
        (Some("open"), Some(true))
    );
    match redis.command(&["TTL", "okome:health:lab-node"]).unwrap() {
        okome_lab::redis::Reply::Integer(ttl) => assert!((1..=30).contains(&ttl), "TTL {ttl}"),
        other => panic!("TTL: {other:?}"),
    }

    // Wrong password: the gate does not care, the outage is logged once.
    let bad = format!("redis://orchestrator:wrong@{}", redis.addr());
    let runs: Vec<Output> = (0..3)
        .map(|_| probe(&lab).args(["--redis-url", &bad]).output().unwrap())
        .collect();
    assert!(runs.iter().all(|o| o.status.code() == Some(0)));
    assert!(
        stderr(&runs[0]).contains("redis heartbeat"),
        "{}",
        stderr(&runs[0])
    );
    assert!(
        !stderr(&runs[0]).contains("wrong"),
        "the password is never logged"
    );
    assert!(
        runs[1..].iter().all(|o| o.stderr.is_empty()),
        "logged once per outage"
    );
    assert!(!lab.gate_closed());
    // Back: one "recovered" line.
    let output = probe(&lab).args(["--redis-url", &good]).output().unwrap();
    assert!(stderr(&output).contains("recovered"), "{}", stderr(&output));
}

/// The operator's maintenance pin: `--pin` closes the gate at once and no
/// run reopens it while the orchestrator is perfectly healthy, even with the
/// quickest policy; real nginx keeps answering from the gate; a flag file
/// removed by hand comes back; `--unpin` hands the gate back to the usual
/// hysteresis (`--rise` good runs), after which traffic flows again.
#[test]
fn a_maintenance_pin_keeps_nginx_gated_while_the_orchestrator_is_healthy() {
    let lab = Lab::start();
    let policy = ["--rise", "2", "--hold-down", "0"];
    assert_eq!(lab.get("/api/models").status, 200);
    assert_eq!(
        probe(&lab).args(policy).output().unwrap().status.code(),
        Some(0)
    );
    assert!(!lab.gate_closed());

    let output = probe(&lab)
        .args(["--pin", "upgrading the orchestrator to 2.3", "--json"])
        .args(policy)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "--pin: {}", stderr(&output));
    assert!(
        stderr(&output).contains("maintenance pin set"),
        "{}",
        stderr(&output)
    );
    assert!(lab.gate_closed(), "--pin closes the gate at once");
    assert!(lab.root.path("/var/lib/okome/maintenance.pin").exists());

    for run in 0..4 {
        if run == 2 {
            // An operator (or a script) removes the flag by hand: the next
            // run puts it back.
            lab.open_gate();
        }
        let output = probe(&lab).arg("--json").args(policy).output().unwrap();
        let decision = json(&output);
        assert_eq!(output.status.code(), Some(1), "run {run}: {decision}");
        assert_eq!(decision["upstream_up"], true, "the stub is healthy");
        assert_eq!(decision["gate"], "closed");
        assert_eq!(
            decision["pinned"]["reason"],
            "upgrading the orchestrator to 2.3"
        );
        assert!(lab.gate_closed(), "run {run} kept the gate closed");
        let api_before = lab.stub.count("/api/planner");
        let r = lab.send(okome_lab::Request::new("POST", "/api/planner").body("{}"));
        assert_eq!((r.status, r.header("x-upstream")), (503, Some("gate")));
        assert_eq!(
            lab.stub.count("/api/planner"),
            api_before,
            "nginx did not ask"
        );
    }
    let metrics =
        fs::read_to_string(lab.root.path("/run/okome/metrics/okome-health-probe.prom")).unwrap();
    assert!(metrics.contains("\nokome_gate_pinned 1\n"), "{metrics}");

    // Unpin: the gate stays closed until --rise (2) good runs.
    let output = probe(&lab)
        .args(["--unpin", "--json"])
        .args(policy)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "--unpin: {}",
        stderr(&output)
    );
    assert_eq!(json(&output)["pinned"], serde_json::Value::Null);
    assert!(lab.gate_closed(), "one good run is not --rise 2");
    let output = probe(&lab).arg("--json").args(policy).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!lab.gate_closed(), "reopened by the hysteresis");
    assert_eq!(lab.get("/api/models").status, 200);
    let metrics =
        fs::read_to_string(lab.root.path("/run/okome/metrics/okome-health-probe.prom")).unwrap();
    assert!(metrics.contains("\nokome_gate_pinned 0\n"), "{metrics}");
}

//! The binary against a real local HTTP listener: up, 503, hung, refused,
//! body mismatch; hysteresis across runs; what is (not) written; the lock;
//! configuration errors; `--check-local`; the defaults file.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::{FakeHttp, Node, Reply, bare, health_url, refused_url, status, up};
use okome_testkit::tool::json_bytes as json;
use predicates::prelude::*;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_teaches_and_lists_the_exit_statuses() {
    let node = Node::new();
    bare(node.dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit status:"))
        .stdout(predicate::str::contains("orchestrator.down"))
        .stdout(predicate::str::contains("--check-local"))
        .stdout(predicate::str::contains("OKOME_HEALTH_PROBE_URL"));
    bare(node.dir.path()).arg("--version").assert().success();
}

#[test]
fn a_healthy_orchestrator_keeps_the_gate_open_and_says_so_in_json() {
    let server = FakeHttp::always(up("{\"status\":\"ok\"}"));
    let node = Node::new();
    let output = node
        .probe(&health_url(&server))
        .args([
            "--json",
            "--expect-status",
            "200",
            "--expect-body",
            "\"ok\"",
        ])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let decision = json(&output.stdout);
    assert_eq!(decision["upstream_up"], true);
    assert_eq!(decision["gate"], "open");
    assert_eq!(decision["checks"].as_array().unwrap().len(), 1);
    assert_eq!(decision["checks"][0]["status"], 200);
    assert!(!node.gate().exists());
    let metrics = fs::read_to_string(node.textfile()).unwrap();
    assert!(metrics.contains("okome_upstream_up 1\n"), "{metrics}");
    assert!(metrics.contains("okome_gate_closed 0\n"), "{metrics}");
    assert!(
        stderr(&output).is_empty(),
        "steady state logs nothing: {}",
        stderr(&output)
    );
}

/// One run against a failing orchestrator: the fast re-check makes it two
/// failed checks, which meets `fall = 2` and closes the gate at once.
fn closes_in_one_run(url: &str, extra: &[&str], reason: &str, detail: &str) {
    let node = Node::new();
    let output = node
        .probe(url)
        .arg("--json")
        .args(extra)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let decision = json(&output.stdout);
    assert_eq!(decision["gate"], "closed", "{decision}");
    assert_eq!(decision["transition"]["to"], "closed");
    let checks = decision["checks"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        2,
        "failed first check is re-checked: {decision}"
    );
    for check in checks {
        assert_eq!(check["reason"], reason, "{decision}");
    }
    assert!(node.gate().exists(), "flag file created");
    let flag = fs::read_to_string(node.gate()).unwrap();
    assert!(flag.contains(detail), "{flag}");
    let log = stderr(&output);
    assert_eq!(log.lines().count(), 1, "one transition line: {log}");
    assert!(log.contains("warning: gate closed"), "{log}");
    assert!(log.contains(detail), "{log}");
    assert!(log.contains(url), "{log}");
    let metrics = fs::read_to_string(node.textfile()).unwrap();
    assert!(
        metrics.contains(&format!(
            "okome_probe_failures_total{{reason=\"{reason}\"}} 2\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("okome_gate_transitions_total{to=\"down\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("okome_gate_closed 1\n"), "{metrics}");
}

#[test]
fn http_503_closes_the_gate() {
    let server = FakeHttp::always(status(503));
    closes_in_one_run(&health_url(&server), &[], "http_status", "HTTP 503");
}

#[test]
fn a_refused_connection_closes_the_gate() {
    closes_in_one_run(&refused_url(), &[], "refused", "connection refused");
}

#[test]
fn a_body_mismatch_closes_the_gate() {
    let server = FakeHttp::always(up("{\"status\":\"degraded\"}"));
    closes_in_one_run(
        &health_url(&server),
        &["--expect-body", "\"ok\""],
        "body_mismatch",
        "body mismatch",
    );
}

#[test]
fn a_hung_orchestrator_closes_the_gate_within_the_default_deadlines() {
    let server = FakeHttp::always(Reply::hang());
    let node = Node::new();
    let started = Instant::now();
    // Default deadlines (800 ms per check, 200 ms pause): the run must fit well
    // inside the 5 s timer period. Generous bound, the spec's own target.
    let output = bare(node.dir.path())
        .args(["--url", &health_url(&server), "--node", "n", "--json"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "a hung orchestrator cost {took:?}"
    );
    let decision = json(&output.stdout);
    assert_eq!(decision["checks"][0]["reason"], "timeout");
    assert_eq!(decision["checks"][1]["reason"], "timeout");
    assert!(node.gate().exists());
    assert!(
        stderr(&output).contains("timeout waiting for the answer"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.hits(), 2);
}

#[test]
fn recovery_takes_rise_runs_and_logs_how_long_the_gate_was_closed() {
    let server = FakeHttp::always(status(503));
    let node = Node::new();
    let probe = |expect: i32| {
        node.probe(&health_url(&server))
            .args(["--hold-down", "0", "--json"])
            .assert()
            .code(expect)
            .get_output()
            .clone()
    };
    probe(1);
    assert!(node.gate().exists());
    // Still down: steady, silent, the gate stays closed with no re-check.
    let output = probe(1);
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    assert_eq!(json(&output.stdout)["checks"].as_array().unwrap().len(), 1);
    server.set_always(up("ok"));
    for run in 1..3 {
        let output = probe(1);
        assert!(node.gate().exists(), "still closed after {run} good runs");
        assert_eq!(json(&output.stdout)["streak"], run);
    }
    let output = probe(0);
    assert!(!node.gate().exists(), "reopened after rise = 3 good runs");
    let log = stderr(&output);
    assert!(log.contains("info: gate opened"), "{log}");
    assert!(log.contains("had been closed for"), "{log}");
    let metrics = fs::read_to_string(node.textfile()).unwrap();
    assert!(
        metrics.contains("okome_gate_transitions_total{to=\"up\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn the_hold_down_delays_a_second_transition() {
    let server = FakeHttp::always(status(503));
    let node = Node::new();
    let probe = || {
        node.probe(&health_url(&server))
            .args(["--rise", "1", "--hold-down", "1h", "--json"])
            .output()
            .unwrap()
    };
    assert_eq!(probe().status.code(), Some(1));
    server.set_always(up("ok"));
    let output = probe();
    assert_eq!(output.status.code(), Some(1), "held down: still closed");
    assert!(
        json(&output.stdout)["hold_down_remaining_seconds"]
            .as_f64()
            .unwrap()
            > 3000.0
    );
    assert!(node.gate().exists());
}

#[test]
fn steady_state_writes_nothing_after_the_first_run_and_logs_nothing() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    node.probe(&health_url(&server)).assert().code(0).stderr("");
    // The textfile's last-run timestamp changes every second by design
    // (every_run_stamps_the_textfile_so_a_dead_probe_shows); the state never.
    let watched = [node.state_file()];
    let without_stamp = |text: String| {
        text.lines()
            .filter(|l| !l.starts_with("okome_health_probe_last_run_timestamp_seconds "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let textfile = without_stamp(fs::read_to_string(node.textfile()).unwrap());
    let before: Vec<_> = watched.iter().map(|p| fs::metadata(p).unwrap()).collect();
    for _ in 0..20 {
        node.probe(&health_url(&server))
            .assert()
            .code(0)
            .stderr("")
            .stdout("");
    }
    for (path, old) in watched.iter().zip(&before) {
        let new = fs::metadata(path).unwrap();
        assert_eq!(
            (new.ino(), new.mtime_nsec(), new.mtime()),
            (old.ino(), old.mtime_nsec(), old.mtime()),
            "{} rewritten",
            path.display()
        );
    }
    assert_eq!(
        without_stamp(fs::read_to_string(node.textfile()).unwrap()),
        textfile
    );
    // Nothing else appeared (no temp files, no flag).
    let mut names: Vec<_> = fs::read_dir(node.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["health-probe.lock", "health-probe.state", "metrics"]
    );
}

fn last_run(node: &Node) -> u64 {
    let text = fs::read_to_string(node.textfile()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("okome_health_probe_last_run_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no last-run timestamp in\n{text}"))
        .parse()
        .unwrap()
}

/// A probe that stops running must not leave a textfile that looks healthy
/// forever: every run, even one that changes nothing, stamps it.
#[test]
fn every_run_stamps_the_textfile_so_a_dead_probe_shows() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    for _ in 0..2 {
        node.probe(&health_url(&server)).assert().code(0).stderr("");
    }
    let state = fs::metadata(node.state_file()).unwrap();
    let first = last_run(&node);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(first <= now && first + 60 > now, "{first} vs {now}");
    // Let the clock pass a whole second, then a steady run.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= first
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    node.probe(&health_url(&server)).assert().code(0).stderr("");
    assert!(
        last_run(&node) > first,
        "the steady run stamped the textfile"
    );
    let again = fs::metadata(node.state_file()).unwrap();
    assert_eq!(
        (again.ino(), again.mtime_nsec()),
        (state.ino(), state.mtime_nsec()),
        "the state file is still written on change only"
    );
}

#[test]
fn an_overlapping_run_exits_quietly() {
    let server = FakeHttp::always(status(503));
    let node = Node::new();
    fs::create_dir_all(node.state_dir()).unwrap();
    let held = okome_common_lock(&node.state_dir().join("health-probe.lock"));
    let output = node
        .probe(&health_url(&server))
        .arg("--json")
        .assert()
        .code(0)
        .stderr("")
        .get_output()
        .clone();
    assert_eq!(json(&output.stdout)["mode"], "skipped");
    assert_eq!(server.hits(), 0, "a skipped run does not probe");
    assert!(!node.gate().exists() && !node.state_file().exists());
    drop(held);
    node.probe(&health_url(&server)).assert().code(1);
}

/// Hold the run lock the way another run would (flock on the lock file).
fn okome_common_lock(path: &std::path::Path) -> fs::File {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    file.try_lock().unwrap();
    file
}

#[test]
fn an_unparsable_url_is_a_usage_error_that_changes_nothing() {
    let node = Node::new();
    for url in ["htp:/nope", "https://10.0.0.1/health", "http://:8000/"] {
        bare(node.dir.path())
            .args(["--url", url])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--url"))
            .stderr(predicate::str::contains(url));
    }
    assert!(!node.dir.path().join("run").exists(), "nothing created");
}

#[test]
fn an_unusable_state_dir_exits_2_and_leaves_the_gate_as_it_was() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    // The gate was closed; the state "directory" is a regular file.
    fs::create_dir_all(node.state_dir()).unwrap();
    fs::write(node.gate(), "closed by hand\n").unwrap();
    let bogus = node.dir.path().join("not-a-dir");
    fs::write(&bogus, "").unwrap();
    node.probe(&health_url(&server))
        .args(["--state-dir", bogus.to_str().unwrap(), "--rise", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(bogus.to_str().unwrap()))
        .stderr(predicate::str::contains("not usable"));
    assert_eq!(fs::read_to_string(node.gate()).unwrap(), "closed by hand\n");
    assert_eq!(server.hits(), 0, "no probe before the config is known good");
}

#[test]
fn a_state_dir_without_write_permission_exits_2() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    fs::create_dir_all(node.state_dir()).unwrap();
    fs::write(node.gate(), "closed\n").unwrap();
    // Traversable by nobody, writable only by root (as_nobody opens the two
    // directories above it the same way).
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(node.state_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let Some(output) = as_nobody(
        &node,
        &["--url", &health_url(&server), "--node", "n", "--rise", "1"],
    ) else {
        return;
    };
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Permission denied"),
        "{}",
        stderr(&output)
    );
    assert!(node.gate().exists(), "the gate stays as it was");
}

/// Run the binary as `nobody` (root ignores permission bits); `None` when
/// that is not possible here (not root, no setpriv).
fn as_nobody(node: &Node, args: &[&str]) -> Option<std::process::Output> {
    let is_root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !is_root || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv to drop to nobody");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    for dir in [node.dir.path().to_path_buf(), node.dir.path().join("run")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let output = okome_testkit::tool::isolated("/usr/bin/setpriv", node.dir.path())
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("okome-health-probe"))
        .args(args)
        .output()
        .unwrap();
    if output.status.code() == Some(126) || stderr(&output).contains("setpriv:") {
        eprintln!(
            "skipped: nobody cannot execute the test binary here: {}",
            stderr(&output)
        );
        return None;
    }
    Some(output)
}

#[test]
fn a_lock_file_left_by_root_does_not_stop_the_unprivileged_probe() {
    use std::os::unix::fs::PermissionsExt;
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    fs::create_dir_all(node.state_dir()).unwrap();
    // The unit's user owns /run/okome; here "world-writable" plays that role.
    fs::set_permissions(node.state_dir(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::create_dir_all(node.state_dir().join("metrics")).unwrap();
    fs::set_permissions(
        node.state_dir().join("metrics"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    node.probe(&health_url(&server)).assert().code(0); // as root: root-owned 0644 files
    let lock = node.state_dir().join("health-probe.lock");
    assert_eq!(fs::metadata(&lock).unwrap().mode() & 0o777, 0o644);
    server.set_always(status(503));
    let Some(output) = as_nobody(&node, &["--url", &health_url(&server), "--node", "n"]) else {
        return;
    };
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("gate closed"),
        "{}",
        stderr(&output)
    );
    assert!(node.gate().exists());
}

#[test]
fn a_corrupt_state_file_is_reported_and_replaced() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    fs::create_dir_all(node.state_dir()).unwrap();
    fs::write(node.state_file(), "garbage\n").unwrap();
    node.probe(&health_url(&server))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("unreadable"));
    assert!(
        fs::read_to_string(node.state_file())
            .unwrap()
            .contains("version=1")
    );
}

/// A torn or foreign state file that is not even UTF-8 is the same as any
/// corrupt one: a warning and a fresh start, never exit 3 with the gate stuck.
#[test]
fn a_state_file_that_is_not_utf8_means_starting_afresh() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    fs::create_dir_all(node.state_dir()).unwrap();
    fs::write(node.state_file(), b"version=1\nstreak=\xff\xfe\0\n").unwrap();
    node.probe(&health_url(&server)).assert().code(0).stderr(
        predicate::str::contains("not UTF-8").and(predicate::str::contains("starting afresh")),
    );
    assert!(
        fs::read_to_string(node.state_file())
            .unwrap()
            .contains("version=1")
    );
}

/// `--pin` refuses a reason that could forge log lines, and a pin file it
/// cannot write is a configuration error that changes nothing; a pinned
/// gate is never reopened by a healthy orchestrator, and the pin file's
/// existence is what counts (a garbled one still pins).
#[test]
fn the_maintenance_pin_is_validated_and_held() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    for bad in ["", "two\nlines"] {
        node.probe(&health_url(&server))
            .args(["--pin", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--pin"));
    }
    let blocker = node.dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    node.probe(&health_url(&server))
        .args(["--pin", "upgrade", "--pin-file"])
        .arg(blocker.join("maintenance.pin"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must run as root"));
    assert!(!node.gate().exists());

    let pin = node.dir.path().join("var/lib/okome/maintenance.pin");
    fs::create_dir_all(pin.parent().unwrap()).unwrap();
    fs::write(&pin, b"\xff garbled\n").unwrap();
    for _ in 0..3 {
        node.probe(&health_url(&server))
            .args(["--rise", "1", "--hold-down", "0"])
            .assert()
            .code(1);
        assert!(node.gate().exists());
    }
    node.probe(&health_url(&server))
        .arg("--unpin")
        .assert()
        .code(0);
    node.probe(&health_url(&server))
        .args(["--rise", "1", "--hold-down", "0"])
        .assert()
        .code(0);
    assert!(!node.gate().exists());
}

#[test]
fn check_local_follows_only_the_local_url_and_writes_nothing() {
    let local = FakeHttp::always(up("Active connections: 1"));
    let node = Node::new();
    let check = |url: &str| {
        // The orchestrator URL is refused on purpose: it must not matter.
        bare(node.dir.path())
            .args([
                "--check-local",
                "--local-url",
                url,
                "--url",
                &refused_url(),
                "--json",
            ])
            .output()
            .unwrap()
    };
    let output = check(&format!("{}/nginx_status", health_url(&local)));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output.stdout)["mode"], "check-local");
    local.set_always(status(500));
    assert_eq!(check(&health_url(&local)).status.code(), Some(1));
    local.set_always(Reply::hang());
    let started = Instant::now();
    assert_eq!(check(&health_url(&local)).status.code(), Some(1));
    // keepalived kills the script after 1 s: the default deadline is 500 ms.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(check(&refused_url()).status.code(), Some(1));
    assert_eq!(
        fs::read_dir(node.dir.path()).unwrap().count(),
        0,
        "check-local writes nothing"
    );
}

#[test]
fn the_defaults_file_configures_and_flags_or_env_override_it() {
    // The URL is always passed explicitly: a test must never fall back to the
    // shipped 192.168.86.25 default. The file sets fall and the body check.
    let server = FakeHttp::always(up("{\"status\":\"degraded\"}"));
    let node = Node::new();
    fs::create_dir_all(node.dir.path().join("etc/default")).unwrap();
    fs::write(
        node.dir.path().join("etc/default/okome-health-probe"),
        "# operator settings\nOKOME_HEALTH_FALL=1\nOKOME_HEALTH_EXPECT_BODY=\"ok\"\n",
    )
    .unwrap();
    let output = node
        .probe(&health_url(&server))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let decision = json(&output.stdout);
    assert_eq!(
        decision["checks"][0]["reason"], "body_mismatch",
        "{decision}"
    );
    assert_eq!(
        decision["checks"].as_array().unwrap().len(),
        1,
        "fall=1 from the file: {decision}"
    );
    let output = node
        .probe(&health_url(&server))
        .env("OKOME_HEALTH_PROBE_EXPECT_BODY", "degraded")
        .args(["--json", "--hold-down", "0", "--rise", "1"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "env beats the file: {}",
        stderr(&output)
    );
    let output = node
        .probe(&health_url(&server))
        .args(["--json", "--expect-body", "nope"])
        .output()
        .unwrap();
    assert_eq!(
        json(&output.stdout)["checks"][0]["reason"],
        "body_mismatch",
        "the flag beats both"
    );
}

/// 2 × 1.9 s + 0.2 s = 4 s passed the old "under 5 s" rule, but the unit's
/// TimeoutStartSec=4s kills such a run mid-check. Refused before anything is
/// touched, naming the settings and the sum.
#[test]
fn deadlines_the_unit_would_kill_are_a_configuration_error() {
    let server = FakeHttp::always(Reply::hang());
    let node = Node::new();
    let output = node
        .probe(&health_url(&server))
        .args(["--timeout", "1.9s", "--recheck-pause", "200ms"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    for word in [
        "--timeout 1.9s",
        "--recheck-pause 200ms",
        "= 4s",
        "TimeoutStartSec=4s",
    ] {
        assert!(text.contains(word), "{word:?} not in {text}");
    }
    assert_eq!(server.hits(), 0, "no check was made");
    assert!(!node.state_dir().exists(), "nothing was written");
}

/// systemd's `EnvironmentFile=` ignores an `export` line and keeps a `#`
/// after a value as part of it; run by hand, the probe must see the same
/// settings the timer's run sees (common/src/defaults.rs has the full table).
#[test]
fn the_defaults_file_is_read_as_systemds_environmentfile_reads_it() {
    let server = FakeHttp::always(up("healthy"));
    let node = Node::new();
    let file = node.dir.path().join("etc/default/okome-health-probe");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    // systemd sets no expected body from an `export` line: the check passes.
    fs::write(&file, "export OKOME_HEALTH_PROBE_EXPECT_BODY=nope\n").unwrap();
    let output = node
        .probe(&health_url(&server))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output.stdout)["checks"][0]["ok"], true);
    // systemd sets OKOME_HEALTH_PROBE_FALL to "1 # one strike": not a number, so
    // the unit's run is a configuration error, and so is the run by hand.
    fs::write(&file, "OKOME_HEALTH_PROBE_FALL=1 # one strike\n").unwrap();
    node.probe(&health_url(&server))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("1 # one strike"));
    // A backslash continues a line; quotes keep blanks.
    fs::write(&file, "OKOME_HEALTH_PROBE_EXPECT_BODY=\"heal\\\nthy\"\n").unwrap();
    let output = node
        .probe(&health_url(&server))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    fs::write(&file, "OKOME_HEALTH_PROBE_EXPECT_BODY=\"heal thy\"  \n").unwrap();
    let output = node
        .probe(&health_url(&server))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(json(&output.stdout)["checks"][0]["reason"], "body_mismatch");
    // Not UTF-8: systemd refuses the file; the probe says where, exit 2.
    fs::write(
        &file,
        b"OKOME_HEALTH_PROBE_FALL=1\nOKOME_HEALTH_NODE=n\xff\n",
    )
    .unwrap();
    node.probe(&health_url(&server))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("okome-health-probe:2: not UTF-8"));
}

#[test]
fn a_failing_heartbeat_never_touches_the_gate_and_is_logged_once() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    let redis = refused_url()
        .replace("http://", "redis://")
        .replace("/health", "");
    let run = || {
        node.probe(&health_url(&server))
            .args(["--redis-url", &redis, "--json"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("redis heartbeat"),
        "{}",
        stderr(&first)
    );
    assert_eq!(json(&first.stdout)["heartbeat"]["ok"], false);
    for _ in 0..3 {
        let again = run();
        assert_eq!(again.status.code(), Some(0));
        assert!(
            stderr(&again).is_empty(),
            "logged once per outage: {}",
            stderr(&again)
        );
    }
    assert!(!node.gate().exists());
    let metrics = fs::read_to_string(node.textfile()).unwrap();
    assert!(
        metrics.contains("okome_health_heartbeat_up 0\n"),
        "{metrics}"
    );
}

#[test]
fn a_gate_closed_by_hand_is_noticed_and_reopened_after_rise() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    let probe = || {
        node.probe(&health_url(&server))
            .args(["--rise", "2"])
            .output()
            .unwrap()
    };
    assert_eq!(probe().status.code(), Some(0));
    fs::write(node.gate(), "maintenance by hand\n").unwrap();
    let output = probe();
    assert_eq!(
        output.status.code(),
        Some(1),
        "still closed: one good check of two"
    );
    assert!(
        stderr(&output).contains("gate found closed by hand"),
        "{}",
        stderr(&output)
    );
    let output = probe();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("info: gate opened"),
        "{}",
        stderr(&output)
    );
    assert!(!node.gate().exists());
}

#[test]
fn an_unreadable_defaults_file_stops_the_probe_but_not_check_local() {
    let local = FakeHttp::always(up("Active connections: 1"));
    let node = Node::new();
    // A directory where the file should be: reading it fails (EISDIR), as a
    // root-only file does for keepalived's `nobody`.
    fs::create_dir_all(node.dir.path().join("etc/default/okome-health-probe")).unwrap();
    node.probe(&health_url(&local))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("etc/default/okome-health-probe"));
    bare(node.dir.path())
        .args(["--check-local", "--local-url", &health_url(&local)])
        .assert()
        .code(0);
}

/// Fixture trees (input root → expected root, zram-generator style): a node
/// whose only settings are in its /etc/default/okome-health-probe (a refused
/// orchestrator, fall 1) is probed once, rooted there; the run reads that
/// file, closes the gate and leaves exactly the expected files (unix times
/// masked), nothing else — no metrics with `--no-metrics`.
#[test]
fn a_node_set_up_by_its_defaults_file_leaves_the_expected_tree() {
    use okome_testkit::tree;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/closed-by-defaults");
    let node = Node::new();
    tree::copy(&fixture.join("input"), node.dir.path());
    bare(node.dir.path())
        .arg("--no-metrics")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gate closed"));
    tree::assert_same(node.dir.path(), &fixture.join("expected"), tree::mask_times);
}

//! okome-validate's local checks against the loopback lab's REAL programs
//! (nginx on the rendered shipped configs, redis-server on the shipped
//! redis.conf, the real okome-health-probe and okome-prewarm textfiles):
//! a healthy lab passes every check, and each injected fault turns exactly
//! the expected checks red, with the expected severity and incident.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use common::*;
use okome_lab::render::lab_node_name;
use okome_lab::stub::Mode;

fn set(items: &[Red]) -> BTreeSet<Red> {
    items.iter().cloned().collect()
}

/// A healthy lab node, `/` cached so an orchestrator outage is served stale.
fn healthy() -> okome_lab::lab::Lab {
    let lab = lab();
    assert_eq!(lab.get("/").status, 200);
    lab
}

/// Frontend + backend runs merged into one set of red findings.
fn red_now(lab: &okome_lab::lab::Lab) -> (BTreeSet<Red>, i32, i32) {
    let (front_code, front) = run_json(validate(lab, "frontend").args(["--role", "frontend"]));
    let (back_code, back) = run_json(validate(lab, "backend").args(["--role", "backend"]));
    for doc in [&front, &back] {
        assert!(with_status(doc, "error").is_empty(), "own errors: {doc:#}");
    }
    let mut all = red(&front);
    all.extend(red(&back));
    (all, front_code, back_code)
}

#[test]
fn a_healthy_lab_passes_every_check() {
    let lab = healthy();
    let (red, front, back) = red_now(&lab);
    assert!(red.is_empty(), "{red:?}");
    assert_eq!((front, back), (0, 0));
    let (_, doc) = run_json(validate(&lab, "frontend").args(["--role", "frontend"]));
    // Only vcgencmd is absent (not a Pi); nothing else skipped or not run.
    assert_eq!(
        with_status(&doc, "skipped"),
        BTreeSet::from([format!("{NODE}:node.throttle")])
    );
    assert!(with_status(&doc, "not_run").is_empty(), "{doc:#}");
    let checks = doc["nodes"][0]["checks"].as_array().unwrap();
    let headers = checks.iter().find(|c| c["id"] == "edge.headers").unwrap();
    assert!(
        headers["observed"]
            .as_str()
            .unwrap()
            .contains(&format!("X-OKOME-Node {}", lab_node_name())),
        "{headers}"
    );
    assert_eq!(doc["schema"], "okome-validate/1");
}

#[test]
fn nginx_stopped_turns_only_the_header_check_red() {
    let lab = healthy();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lab.nginx.master_pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Its listener is gone once the master has exited.
    for _ in 0..200 {
        if std::net::TcpStream::connect(lab.addr()).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (red, front, back) = red_now(&lab);
    assert_eq!(red, set(&[r(NODE, "edge.headers", "crit", "INCIDENT 1")]));
    assert_eq!((front, back), (1, 0));
    // Nagios: CRITICAL, exit 2.
    let out = validate(&lab, "frontend")
        .args(["--role", "frontend", "--nagios"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("OKOME CRITICAL - edge.headers@frontend-cache fail |"),
        "{line}"
    );
}

#[test]
fn redis_maxmemory_at_or_above_ram_is_critical() {
    let lab = healthy();
    // 1 GiB against the fixture's 926 MiB of RAM.
    lab.redis()
        .command_as(
            "operator",
            okome_lab::render::LAB_REDIS_OPERATOR_PASSWORD,
            &["CONFIG", "SET", "maxmemory", "1gb"],
        )
        .unwrap();
    let (red, _, back) = red_now(&lab);
    assert_eq!(
        red,
        set(&[r("backend", "redis.maxmemory", "crit", "INCIDENT 2")])
    );
    assert_eq!(back, 1);
}

#[test]
fn redis_default_user_on_and_policy_changed() {
    let lab = healthy();
    let op = |args: &[&str]| {
        lab.redis()
            .command_as(
                "operator",
                okome_lab::render::LAB_REDIS_OPERATOR_PASSWORD,
                args,
            )
            .unwrap()
    };
    op(&["ACL", "SETUSER", "default", "on", "nopass"]);
    op(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let (red, _, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[
            r("backend", "redis.default-user", "crit", "INCIDENT 2"),
            r("backend", "redis.policy", "warn", "INCIDENT 2"),
        ])
    );
}

#[test]
fn redis_down_is_one_failure_and_its_dependents_not_run() {
    let mut lab = healthy();
    // Dropping the guard stops redis-server (by PID).
    drop(lab.redis.take());
    let (red, _, back) = red_now(&lab);
    assert_eq!(
        red,
        set(&[r("backend", "redis.ping", "crit", "INCIDENT 2")])
    );
    assert_eq!(back, 1);
    let (_, doc) = run_json(validate(&lab, "backend").args(["--role", "backend"]));
    let not_run = with_status(&doc, "not_run");
    let want: BTreeSet<String> = [
        "redis.maxmemory",
        "redis.policy",
        "redis.persistence",
        "redis.default-user",
    ]
    .iter()
    .map(|id| format!("backend:{id}"))
    .collect();
    assert_eq!(not_run, want);
}

#[test]
fn a_stale_probe_textfile_is_critical() {
    let lab = healthy();
    let path = at(&lab, "/run/okome/metrics/okome-health-probe.prom");
    let text = fs::read_to_string(&path).unwrap();
    let name = "okome_health_probe_last_run_timestamp_seconds";
    let stale: String = text
        .lines()
        .map(|l| match l.strip_prefix(name) {
            Some(value) if !l.starts_with('#') => {
                let at: f64 = value.trim().parse().unwrap();
                format!("{name} {}", at - 600.0)
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&path, stale + "\n").unwrap();
    let (red, front, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[r(NODE, "edge.probe-fresh", "crit", "INCIDENT 5")])
    );
    assert_eq!(front, 1);
}

#[test]
fn orchestrator_down_with_the_gate_open_then_closed_by_the_probe() {
    let lab = healthy();
    lab.stub.set_mode(Mode::Down);
    let (red, _, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[
            r(NODE, "edge.orchestrator", "crit", "INCIDENT 5"),
            r(NODE, "edge.gate", "crit", "INCIDENT 5"),
        ])
    );
    // The real probe closes the gate (fall = 2 checks): the gate agrees again.
    for _ in 0..3 {
        run_probe(&lab);
    }
    assert!(lab.gate_closed(), "the probe did not close the gate");
    let (red, _, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[r(NODE, "edge.orchestrator", "crit", "INCIDENT 5")])
    );
}

#[test]
fn low_memory_and_sd_wear_settings() {
    let lab = healthy();
    fs::write(
        at(&lab, "/proc/meminfo"),
        MEMINFO.replace("MemAvailable:     612000 kB", "MemAvailable:      30000 kB"),
    )
    .unwrap();
    fs::write(
        at(&lab, "/etc/systemd/journald.conf.d/zz-local.conf"),
        "[Journal]\nStorage=persistent\n",
    )
    .unwrap();
    let (red, _, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[
            r(NODE, "node.memory", "crit", "INCIDENT 8"),
            r(NODE, "node.sd-wear", "warn", "INCIDENT 8"),
            r("backend", "node.memory", "crit", "INCIDENT 8"),
            r("backend", "node.sd-wear", "warn", "INCIDENT 8"),
        ])
    );
}

#[test]
fn a_broken_site_config_fails_nginx_t_while_nginx_still_serves() {
    let lab = healthy();
    let site = at(&lab, "/etc/nginx/sites-enabled/okome-frontend.conf");
    let mut text = fs::read_to_string(&site).unwrap();
    text.push_str("\nproxy_cache_valid_typo 200 1m;\n");
    fs::write(&site, text).unwrap();
    let (red, _, _) = red_now(&lab);
    assert_eq!(
        red,
        set(&[r(NODE, "edge.nginx-config", "crit", "INCIDENT 1")])
    );
}

#[test]
fn waivers_apply_until_expiry_and_malformed_ones_refuse_the_file() {
    let lab = healthy();
    fs::remove_file(at(&lab, "/run/okome/metrics/okome-prewarm.prom")).unwrap();
    write_cluster_conf(
        &lab,
        &format!("waive edge.prewarm-fresh {NODE} 2999-12-31 prewarm off during the SD swap\n"),
    );
    let (code, doc) = run_json(validate(&lab, "frontend").args(["--role", "frontend"]));
    assert_eq!(code, 0, "{doc:#}");
    let checks = doc["nodes"][0]["checks"].as_array().unwrap();
    let waived = checks
        .iter()
        .find(|c| c["id"] == "edge.prewarm-fresh")
        .unwrap();
    assert_eq!(waived["status"], "waived");
    assert!(
        waived["observed"]
            .as_str()
            .unwrap()
            .contains("prewarm off during the SD swap")
    );
    // Expired: red again.
    write_cluster_conf(
        &lab,
        &format!("waive edge.prewarm-fresh {NODE} 2020-01-01 old\n"),
    );
    let (code, doc) = run_json(validate(&lab, "frontend").args(["--role", "frontend"]));
    assert_eq!(code, 1);
    assert_eq!(
        red(&doc),
        set(&[r(NODE, "edge.prewarm-fresh", "warn", "INCIDENT 6")])
    );
    // Malformed: refused at load, exit 2, nothing checked.
    write_cluster_conf(&lab, "waive edge.prewarm-fresh * 2026-13-01 bad month\n");
    let out = validate(&lab, "frontend").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster.conf:") && err.contains("not YYYY-MM-DD"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn wait_retries_until_green_and_counts_attempts() {
    let lab = healthy();
    lab.stub.set_mode(Mode::Down);
    let stub = &lab.stub;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            stub.set_mode(Mode::Up);
        });
        let (code, doc) = run_json(validate(&lab, "frontend").args([
            "--role",
            "frontend",
            "--only",
            "edge.orchestrator,edge.gate",
            "--wait",
            "60s",
        ]));
        assert_eq!(code, 0, "{doc:#}");
        let checks = doc["nodes"][0]["checks"].as_array().unwrap();
        let orchestrator = checks
            .iter()
            .find(|c| c["id"] == "edge.orchestrator")
            .unwrap();
        assert!(
            orchestrator["attempts"].as_u64().unwrap() >= 2,
            "{orchestrator}"
        );
    });
}

#[test]
fn prometheus_output_is_written_atomically() {
    let lab = healthy();
    let file = at(&lab, "/run/okome/metrics/okome-validate.prom");
    let out = validate(&lab, "frontend")
        .args(["--role", "frontend", "--prometheus", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("okome_validate_check_status{{node=\"{NODE}\",check=\"edge.headers\",incident=\"INCIDENT 1\"}} 0")),
        "{text}"
    );
    assert!(text.contains("okome_validate_last_run_timestamp_seconds "));
    // What the real binary wrote is documented, name by name.
    okome_testkit::metrics::assert_documented(&text);
}

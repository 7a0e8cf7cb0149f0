//! The answers the edge owes its users when the orchestrator is gone
//! (issue 12, part 2), on real nginx running the shipped configs: a big
//! /api/ POST with the gate closed gets the gate's JSON 503 (not a 413 from
//! the gate's own body limit), canary /ui-schema/ requests get the
//! maintenance page when the orchestrator is down or hung (not a bare
//! 502/504), and nginx comes back after it was killed with SIGKILL.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use okome_lab::nginx::Nginx;
use okome_lab::{Lab, Mode, Request};

fn assert_json_503(r: &okome_lab::Response, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert!(
        r.text()
            .starts_with("{\"error\":\"orchestrator_unavailable\""),
        "{what}: {}",
        r.text()
    );
}

#[test]
fn a_big_api_post_with_the_gate_closed_gets_the_json_503() {
    let lab = Lab::start();
    lab.close_gate();
    for size in [2 << 20, (16 << 20) - 4096] {
        let r = lab.send(
            Request::new("POST", "/api/upload")
                .header("Content-Type", "application/octet-stream")
                .body(vec![b'x'; size]),
        );
        assert_json_503(&r, &format!("POST of {size} bytes"));
    }
    assert_eq!(lab.stub.total(), 0);
    // Over the frontend's own 16 MiB limit it is still a 413, from the edge.
    let r = lab.send(Request::new("POST", "/api/upload").body(vec![b'x'; (16 << 20) + 1]));
    assert_eq!(r.status, 413);
    // The same 2 MiB POST reaches the orchestrator when the gate is open.
    lab.open_gate();
    let r = lab.send(Request::new("POST", "/api/upload").body(vec![b'x'; 2 << 20]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lab.stub.requests_to("/api/upload")[0].body.len(), 2 << 20);
}

/// The three ways a client picks a canary variant other than control.
fn canary_requests(path: &str) -> Vec<(&'static str, Request)> {
    vec![
        (
            "header canary",
            Request::get(path).header("X-OKOME-Canary", "canary"),
        ),
        (
            "cookie canary",
            Request::get(path).header("Cookie", "okome_canary=canary"),
        ),
        (
            "header debug",
            Request::get(path).header("X-OKOME-Canary", "debug"),
        ),
    ]
}

fn assert_maintenance(r: &okome_lab::Response, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{what}"
    );
    assert!(r.text().contains("maintenance"), "{what}: {}", r.text());
    assert_eq!(r.header("retry-after"), Some("30"), "{what}");
}

#[test]
fn canary_ui_schema_gets_the_maintenance_page_when_the_orchestrator_is_refused() {
    let lab = Lab::start();
    lab.stub.set_mode(Mode::Refused);
    for (what, request) in canary_requests("/ui-schema/never.json") {
        assert_maintenance(&lab.send(request), what);
    }
    // Control, for comparison (it always had the page).
    assert_maintenance(&lab.get("/ui-schema/never.json"), "control");
}

#[test]
fn canary_ui_schema_gets_the_maintenance_page_when_the_orchestrator_hangs() {
    let lab = Lab::start();
    lab.stub.set_mode(Mode::Hung);
    // Each waits for nginx's 5 s read timeout (504), then gets the page.
    let (what, request) = canary_requests("/ui-schema/hung.json").remove(0);
    let r = lab.send(request.timeout(Duration::from_secs(20)));
    lab.stub.set_mode(Mode::Up);
    assert_maintenance(&r, what);
}

#[test]
fn nginx_starts_again_after_it_was_killed_with_sigkill() {
    let mut lab = Lab::start();
    let first = lab.get("/static/kept.css");
    assert_eq!(first.status, 200);
    lab.close_gate();
    assert_eq!(lab.get("/api/x").status, 503, "the gate server answers");
    lab.open_gate();

    // An unclean death: master and workers at once (the OOM killer, a
    // power cut, `systemctl kill -s KILL`), so nginx removes nothing.
    let master = lab.nginx.master_pid();
    killpg(Pid::from_raw(master as i32), Signal::SIGKILL).expect("SIGKILL to nginx");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lab.nginx.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its workers die with it (same process group); wait for the port.
    while std::net::TcpStream::connect(lab.addr()).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the port stayed open");
        std::thread::sleep(Duration::from_millis(10));
    }

    // The same config, the same root, the same port: it must start and serve.
    let again = Nginx::try_start(&lab.root, &lab.main_conf, lab.ports.http, lab.ports.ipv6)
        .unwrap_or_else(|e| panic!("nginx does not start again after SIGKILL: {e}"));
    let r = lab.get("/static/kept.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "HIT", "the cache on disk survived");
    assert_eq!(r.body, first.body);
    lab.close_gate();
    let r = lab.get("/api/x");
    assert_eq!(r.status, 503, "the gate server is back too: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    drop(again);
}

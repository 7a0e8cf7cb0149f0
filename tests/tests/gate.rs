//! The health gate (health_state.conf) on the lab: with the flag file
//! present nginx answers without asking the orchestrator — cached UI stale,
//! uncached UI the maintenance page, /api/ a JSON 503 — per request, with no
//! reload; without it, traffic flows again.
//!
//! Timing bounds here are deliberately generous upper bounds (1 s) against
//! the spec's "stale in under 10 ms, maintenance in under 1 ms" (measured by
//! `cargo xtask lab`): what they prove is that no request waited on an
//! upstream timeout (the UI read timeout is 5 s, /health's 3 s).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use okome_lab::{Lab, Mode, Request};

/// Generous bound for "answered without waiting on the orchestrator".
const NO_UPSTREAM_WAIT: Duration = Duration::from_secs(1);

/// Cache `path` (which must carry max_age=1) and wait until it has expired.
fn cache_and_expire(lab: &Lab, path: &str) -> Vec<u8> {
    let first = lab.get(path);
    assert_eq!(first.cache_status(), "MISS", "{path}");
    let entry = lab
        .cache_entries()
        .into_iter()
        .find(|e| e.key.contains(path))
        .unwrap_or_else(|| panic!("no cache entry for {path}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "{path} did not expire within 10 s"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if now > entry.valid_until {
            return first.body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn closed_gate_serves_expired_ui_stale_without_asking_the_orchestrator() {
    let lab = Lab::start();
    let body = cache_and_expire(&lab, "/assets/app.js?max_age=1");
    lab.close_gate();
    let asked = lab.stub.total();
    let r = lab.get("/assets/app.js?max_age=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "STALE");
    assert_eq!(r.header("x-upstream"), Some("gate"));
    assert_eq!(r.body, body);
    assert!(r.elapsed < NO_UPSTREAM_WAIT, "stale took {:?}", r.elapsed);
    assert_eq!(lab.stub.total(), asked, "the orchestrator was not asked");
}

#[test]
fn closed_gate_keeps_fresh_entries_as_hits() {
    let lab = Lab::start();
    lab.get("/static/site.css");
    lab.close_gate();
    assert_eq!(lab.get("/static/site.css").cache_status(), "HIT");
}

#[test]
fn closed_gate_gives_uncached_ui_the_maintenance_page() {
    let lab = Lab::start();
    lab.close_gate();
    let r = lab.get("/static/never-seen.css");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert!(r.text().contains("maintenance"), "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("gate"));
    assert!(
        r.elapsed < NO_UPSTREAM_WAIT,
        "maintenance took {:?}",
        r.elapsed
    );
    assert_eq!(lab.stub.total(), 0);
    // And the 503 was not cached: with the gate open the page comes back.
    lab.open_gate();
    let r = lab.get("/static/never-seen.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "MISS");
}

#[test]
fn closed_gate_answers_api_with_json_503() {
    let lab = Lab::start();
    lab.close_gate();
    for request in [
        Request::get("/api/models"),
        Request::new("POST", "/api/planner").body("{\"prompt\":\"x\"}"),
    ] {
        let r = lab.send(request);
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("retry-after"), Some("30"));
        assert!(
            r.text()
                .starts_with("{\"error\":\"orchestrator_unavailable\""),
            "{}",
            r.text()
        );
        assert!(r.elapsed < NO_UPSTREAM_WAIT);
    }
    assert_eq!(lab.stub.total(), 0);
}

#[test]
fn closed_gate_with_a_hung_orchestrator_still_serves_fast() {
    let lab = Lab::start();
    // /ui-schema/ ignores the origin's max-age (24 h TTL): a fresh entry.
    let body = lab.get("/ui-schema/form.json").body;
    let stale_body = cache_and_expire(&lab, "/assets/x.js?max_age=1");
    lab.stub.set_mode(Mode::Hung);
    lab.close_gate();
    let start = Instant::now();
    let stale = lab.get("/assets/x.js?max_age=1");
    assert_eq!(stale.cache_status(), "STALE");
    assert_eq!(stale.body, stale_body);
    let hit = lab.get("/ui-schema/form.json");
    assert_eq!(hit.cache_status(), "HIT");
    assert_eq!(hit.body, body);
    let maintenance = lab.get("/never-cached");
    assert_eq!(maintenance.status, 503);
    let api = lab.get("/api/x");
    assert_eq!(api.status, 503);
    assert!(
        start.elapsed() < NO_UPSTREAM_WAIT,
        "took {:?} with a hung orchestrator",
        start.elapsed()
    );
}

#[test]
fn the_gate_opens_and_closes_per_request_without_a_reload() {
    let lab = Lab::start();
    let pid = lab.nginx.master_pid();
    for round in 0..3 {
        lab.close_gate();
        let closed = lab.get(&format!("/api/round{round}"));
        assert_eq!(closed.status, 503, "round {round}");
        lab.open_gate();
        let open = lab.get(&format!("/api/round{round}"));
        assert_eq!(open.status, 200, "round {round}");
        assert_eq!(
            open.header("x-upstream"),
            Some(lab.stub.addr().to_string().as_str())
        );
    }
    assert_eq!(lab.nginx.master_pid(), pid);
    assert_eq!(
        lab.nginx.reload_count(),
        0,
        "{}",
        lab.nginx.error_log_text()
    );
}

#[test]
fn without_the_gate_an_unreachable_orchestrator_still_gets_maintenance_not_a_bare_502() {
    let lab = Lab::start();
    let body = cache_and_expire(&lab, "/static/s.css?max_age=1");
    lab.stub.set_mode(Mode::Refused);
    let stale = lab.get("/static/s.css?max_age=1");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.cache_status(), "STALE");
    assert_eq!(stale.body, body);
    let page = lab.get("/static/other.css");
    assert_eq!(page.status, 503);
    assert!(page.text().contains("maintenance"));
    let api = lab.get("/api/x");
    assert_eq!(api.status, 503);
    assert_eq!(api.header("content-type"), Some("application/json"));
}

#[test]
fn expired_ui_is_served_at_once_while_the_update_runs_in_the_background() {
    let lab = Lab::start();
    lab.stub.release();
    let old = cache_and_expire(&lab, "/static/bg.css?max_age=1&hold=1");
    // From now on the origin holds this path's requests until released.
    lab.stub.hold();
    let r = lab.get("/static/bg.css?max_age=1&hold=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, old, "the stale copy was served");
    assert!(
        lab.stub.wait_held(1, Duration::from_secs(5)),
        "the background update reached the origin"
    );
    lab.stub.release();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = lab.get("/static/bg.css?max_age=1&hold=1");
        if r.body != old {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background update never landed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

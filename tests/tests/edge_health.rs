//! `/health` at the edge tells the truth: the orchestrator's own answer
//! when the gate is open (never cached), "down" when it cannot be reached,
//! "down" at once when the gate is closed.
//!
//! The one timing bound (10 s for a hung orchestrator) is a generous upper
//! bound on the spec's "a hung orchestrator must not hold a request for
//! 60 s"; /health's own read timeout is 3 s.

use std::time::Duration;

use okome_lab::{Lab, Mode};

#[test]
fn edge_health_follows_the_orchestrator_and_is_never_cached() {
    let lab = Lab::start();
    let up = lab.get("/health");
    assert_eq!(up.status, 200);
    assert_eq!(up.text(), "{\"status\":\"ok\"}\n");
    assert_eq!(up.cache_status(), "", "no cache on /health");
    lab.stub.set_health(Mode::Down);
    let down = lab.get("/health");
    assert_eq!(down.status, 503, "never a cached up");
    lab.stub.set_health(Mode::Up);
    assert_eq!(lab.get("/health").status, 200);
    assert_eq!(
        lab.stub.count("/health"),
        3,
        "each check reached the orchestrator"
    );
}

#[test]
fn edge_health_says_down_when_the_orchestrator_is_unreachable() {
    let lab = Lab::start();
    lab.stub.set_mode(Mode::Refused);
    let refused = lab.get("/health");
    assert_eq!(refused.status, 503);
    assert!(
        refused.text().contains("\"status\":\"down\""),
        "{}",
        refused.text()
    );
    lab.stub.set_mode(Mode::Up);
    lab.stub.set_health(Mode::Hung);
    let hung = lab.get("/health");
    assert_eq!(hung.status, 503);
    assert!(hung.text().contains("\"status\":\"down\""));
    assert!(
        hung.elapsed < Duration::from_secs(10),
        "took {:?}",
        hung.elapsed
    );
}

#[test]
fn edge_health_says_down_at_once_when_the_gate_is_closed() {
    let lab = Lab::start();
    lab.close_gate();
    let r = lab.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-upstream"), Some("gate"));
    assert!(r.text().contains("\"status\":\"down\""));
    assert_eq!(
        lab.stub.count("/health"),
        0,
        "the gate answered, not the orchestrator"
    );
    lab.open_gate();
    assert_eq!(lab.get("/health").status, 200);
}

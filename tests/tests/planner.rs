//! The stub orchestrator's `/api/planner` on the lab's real redis-server
//! (shipped redis.conf, the okome library loaded): MISS then HIT with the
//! seed's headers, 429 + Retry-After past the agent's budget, an operator's
//! clamp taking effect, and fail-open within a few ms when Redis is gone.

use std::time::{Duration, Instant};

use okome_lab::budgets::{Conn, keys};
use okome_lab::planner::{Backend, prompt_hash};
use okome_lab::render::LAB_REDIS_OPERATOR_PASSWORD;
use okome_lab::{Lab, Request, Response};

fn plan(lab: &Lab, agent: &str, prompt: &str) -> Response {
    Request::get(&format!("/api/planner?model=gpt-4&prompt={prompt}"))
        .header("X-OKOME-Agent", agent)
        .header("X-Repo-Hash", "abc123")
        .send(lab.stub.addr())
        .expect("asking the stub's planner")
}

fn operator(lab: &Lab) -> Conn {
    Conn::connect(
        lab.redis().addr(),
        Some(("operator", LAB_REDIS_OPERATOR_PASSWORD)),
        Duration::from_secs(5),
    )
    .unwrap()
}

#[test]
fn planner_misses_then_hits_and_names_its_key() {
    let lab = Lab::builder().redis(true).start();
    let first = plan(&lab, "agent-1", "make-a-plan");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-okome-cache"), Some("MISS"));
    let key = keys::planner("gpt-4", &prompt_hash("make-a-plan"), "v1", "abc123");
    assert_eq!(first.header("x-okome-cache-key"), Some(key.as_str()));
    assert_eq!(first.header("x-okome-agent-rate-remaining"), Some("59"));
    let second = plan(&lab, "agent-2", "make-a-plan");
    assert_eq!(second.header("x-okome-cache"), Some("HIT"));
    assert_eq!(second.body, first.body, "the HIT is the stored plan");
    assert_eq!(lab.stub.planner_counts(), (0, 1), "(fail-open, computed)");
}

#[test]
fn planner_answers_429_with_retry_after_past_the_budget_and_obeys_a_clamp() {
    let lab = Lab::builder().redis(true).start();
    for i in 0..60 {
        let r = plan(&lab, "greedy", &format!("p{i}"));
        assert_eq!(r.status, 200, "request {} refused", i + 1);
    }
    let refused = plan(&lab, "greedy", "one-more");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-okome-agent-rate-remaining"), Some("0"));
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another agent is not affected, until the operator clamps it.
    assert_eq!(plan(&lab, "modest", "a").status, 200);
    operator(&lab).clamp(Some("modest"), "rate", 2, 60).unwrap();
    let r = plan(&lab, "modest", "b");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-okome-agent-rate-remaining"), Some("0"));
    assert_eq!(plan(&lab, "modest", "c").status, 429);
}

#[test]
fn planner_fails_open_fast_when_redis_is_unreachable() {
    let lab = Lab::builder().redis(true).start();
    // A port nobody listens on (bound then closed).
    lab.stub.set_backend(Some(Backend {
        addr: okome_testkit::http::refused_addr(),
        user: "orchestrator".into(),
        password: "x".into(),
    }));
    let r = Request::get("/api/planner?prompt=down&compute_ms=0")
        .header("X-OKOME-Agent", "a")
        .send(lab.stub.addr())
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-okome-budget"), Some("fail-open"));
    assert_eq!(r.header("x-okome-cache"), Some("MISS"));
    let decided: u64 = r
        .header("x-okome-budget-decided-in-ms")
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("fail-open decision with Redis refusing connections: {decided} ms");
    assert_eq!(lab.stub.planner_counts().0, 1, "fail-open not counted");
    // A Redis that accepts and never answers: bounded by the timeouts.
    let hung = okome_testkit::FakeRedis::silent();
    lab.stub.set_backend(Some(Backend {
        addr: hung.addr(),
        user: "orchestrator".into(),
        password: "x".into(),
    }));
    let started = Instant::now();
    let r = Request::get("/api/planner?prompt=hung&compute_ms=0")
        .header("X-OKOME-Agent", "a")
        .send(lab.stub.addr())
        .unwrap();
    eprintln!(
        "fail-open with a hung Redis: answered in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(r.header("x-okome-budget"), Some("fail-open"));
    assert_eq!(lab.stub.planner_counts().0, 2);
}

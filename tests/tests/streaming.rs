//! /api/ and streaming responses are passed through unbuffered and never
//! cached (runbook 5b): the client gets the first chunk while the
//! orchestrator is still in the middle of the response.

use std::time::Duration;

use okome_lab::{Lab, Request};

#[test]
fn first_chunk_arrives_before_the_orchestrator_finishes() {
    let lab = Lab::start();
    let mut open = Request::get("/api/stream?hold=1&chunks=3")
        .open(lab.addr())
        .expect("opening the stream through nginx");
    assert_eq!(open.status, 200);
    assert_eq!(open.header("x-cache-status"), None, "/api/ is not cached");
    let first = open.next_piece().expect("reading").expect("a first chunk");
    assert_eq!(String::from_utf8_lossy(&first), "data: chunk 1 of 3\n\n");
    // The orchestrator is still holding the rest of this response.
    assert!(lab.stub.wait_held(1, Duration::from_secs(5)));
    assert_eq!(lab.stub.held(), 1);
    lab.stub.release();
    let rest = String::from_utf8(open.read_to_end().expect("the rest")).unwrap();
    assert_eq!(rest, "data: chunk 2 of 3\n\ndata: chunk 3 of 3\n\n");
}

#[test]
fn api_responses_are_never_cached() {
    let lab = Lab::start();
    let a = lab.get("/api/models");
    let b = lab.get("/api/models");
    assert_eq!((a.status, b.status), (200, 200));
    assert_ne!(
        a.body, b.body,
        "each answer came fresh from the orchestrator"
    );
    assert_eq!(lab.stub.count("/api/models"), 2);
    assert!(lab.cache_entries().is_empty(), "nothing stored for /api/");
}

#[test]
fn api_request_bodies_reach_the_orchestrator_intact() {
    let lab = Lab::start();
    let body = "x".repeat(200_000);
    let r = lab.send(Request::new("POST", "/api/planner").body(body.clone()));
    assert_eq!(r.status, 200);
    let seen = lab.stub.requests_to("/api/planner");
    assert_eq!(seen[0].body.len(), body.len());
    assert_eq!(seen[0].method, "POST");
}

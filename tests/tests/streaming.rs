//! /api/ and streaming responses are passed through unbuffered and never
//! cached (runbook 5b): the client gets the first chunk while the
//! orchestrator is still in the middle of the response, and a slow client
//! slows the orchestrator down instead of nginx spooling the stream.

use std::time::Duration;

use okome_lab::{Lab, Request};

#[test]
fn chunks_arrive_while_the_orchestrator_is_still_streaming() {
    let lab = Lab::start();
    // The stub sends chunks 1 and 2 (100 ms apart), then holds chunk 3
    // until released: both must reach the client before that.
    let mut open = Request::get("/api/stream?hold=1&chunks=3&interval_ms=100")
        .open(lab.addr())
        .expect("opening the stream through nginx");
    assert_eq!(open.status, 200);
    assert_eq!(open.header("x-cache-status"), None, "/api/ is not cached");
    let mut received = String::new();
    while !received.contains("chunk 2 of 3") {
        let piece = open
            .next_piece()
            .expect("reading")
            .expect("more of the stream");
        received.push_str(&String::from_utf8_lossy(&piece));
    }
    assert_eq!(received, "data: chunk 1 of 3\n\ndata: chunk 2 of 3\n\n");
    // The orchestrator has not finished: it is (about to be) holding chunk 3.
    assert!(lab.stub.wait_held(1, Duration::from_secs(5)));
    assert_eq!(lab.stub.streams_finished(), 0);
    lab.stub.release();
    let rest = String::from_utf8(open.read_to_end().expect("the rest")).unwrap();
    assert_eq!(rest, "data: chunk 3 of 3\n\n");
}

#[test]
fn a_slow_client_holds_the_orchestrator_back_instead_of_nginx_spooling() {
    // Unbuffered: nginx reads from the orchestrator only as fast as the
    // client reads. 48 MB is far more than every socket buffer on the way
    // (a few MB each), so while the client reads nothing the stream cannot
    // finish. (With proxy_buffering on, nginx would spool it to a temp
    // file and the orchestrator would finish at once.)
    let lab = Lab::start();
    let mut open = Request::get("/api/stream?chunks=768&interval_ms=0&chunk_bytes=65536")
        .open(lab.addr())
        .expect("opening the stream");
    assert_eq!(open.status, 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        lab.stub.streams_finished(),
        0,
        "the orchestrator finished without a reader"
    );
    let body = open.read_to_end().expect("the whole stream");
    assert!(body.len() > 768 * 65536, "{} bytes", body.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lab.stub.streams_finished() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lab.stub.streams_finished(), 1);
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

//! The edge cache at work on the lab: MISS → HIT with the origin asked once,
//! the observability headers, X-Request-ID propagated to the orchestrator,
//! HEAD filling the GET entry (proxy_cache_convert_head), a key without the
//! Host, and prewarm's requests marked in the access log.

use std::time::Duration;

use okome_lab::render::{LAB_PI_A_NAME, LAB_VIP_NAME, lab_node_name};
use okome_lab::{Lab, Request};

#[test]
fn ui_miss_then_hit_reaches_the_origin_once() {
    let lab = Lab::start();
    for path in [
        "/",
        "/assets/app.js",
        "/static/site.css",
        "/ui-schema/form.json",
        "/version",
    ] {
        let first = lab.get(path);
        assert_eq!(first.status, 200, "{path}");
        assert_eq!(first.cache_status(), "MISS", "{path}");
        let second = lab.get(path);
        assert_eq!(second.cache_status(), "HIT", "{path}");
        assert_eq!(
            second.body, first.body,
            "{path}: a HIT serves the stored copy"
        );
        assert_eq!(lab.stub.count(path), 1, "{path}: the origin was asked once");
    }
}

#[test]
fn observability_headers_and_request_id_reach_both_sides() {
    let lab = Lab::start();
    let r = lab.get("/static/x.css");
    // The shipped $hostname: this machine's name, as `hostname` prints it.
    let node = lab_node_name();
    let hostname = std::process::Command::new("hostname").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), node);
    assert_eq!(r.header("x-okome-node"), Some(node.as_str()));
    assert_eq!(
        r.header("x-upstream"),
        Some(lab.stub.addr().to_string().as_str())
    );
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    let rid = r
        .header("x-request-id")
        .expect("X-Request-ID on the response");
    assert_eq!(rid.len(), 32, "{rid}");
    let seen = lab.stub.requests_to("/static/x.css");
    assert_eq!(
        seen[0].header("x-request-id"),
        Some(rid),
        "the same id went to the orchestrator"
    );
    // Errors carry them too (add_header … always).
    let missing = lab.get("/static/missing?status=404");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-okome-node"), Some(node.as_str()));
    assert!(missing.header("x-request-id").is_some());
}

#[test]
fn head_fills_the_get_entry_and_the_host_is_not_in_the_key() {
    let lab = Lab::start();
    let head = lab.send(Request::head("/assets/logo.svg"));
    assert_eq!(head.cache_status(), "MISS");
    assert!(head.body.is_empty());
    let seen = lab.stub.requests_to("/assets/logo.svg");
    assert_eq!(seen[0].method, "GET", "convert_head: the origin saw a GET");
    // Same path under the site's other names (VIP, a node address): same
    // entry (an unknown name gets 421: tests/tests/edge_hardening.rs).
    for name in [LAB_VIP_NAME, LAB_PI_A_NAME] {
        let get = lab.send(Request::get("/assets/logo.svg").header("Host", name));
        assert_eq!(get.cache_status(), "HIT", "Host: {name}");
        assert!(!get.body.is_empty());
    }
    assert_eq!(lab.stub.count("/assets/logo.svg"), 1);
}

#[test]
fn the_query_string_is_part_of_the_key() {
    let lab = Lab::start();
    assert_eq!(lab.get("/static/app.js?v=1").cache_status(), "MISS");
    assert_eq!(lab.get("/static/app.js?v=2").cache_status(), "MISS");
    assert_eq!(lab.get("/static/app.js?v=1").cache_status(), "HIT");
}

#[test]
fn responses_the_origin_forbids_caching_are_not_cached() {
    let lab = Lab::start();
    lab.get("/private?max_age=0");
    let again = lab.get("/private?max_age=0");
    assert_ne!(again.cache_status(), "HIT");
    assert_eq!(lab.stub.count("/private"), 2);
}

#[test]
fn prewarm_requests_are_marked_in_the_log_and_reach_the_origin_with_their_headers() {
    let lab = Lab::start();
    lab.send(
        Request::head("/version")
            .header("User-Agent", "okome-prewarm/0.1.0")
            .header("X-OKOME-Warm", "1"),
    );
    lab.get("/version");
    let lines = lab.wait_for_log_lines(2, Duration::from_secs(5));
    assert!(
        lines[0].contains("\"HEAD /version HTTP/1.1\""),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("\"okome-prewarm/0.1.0\""), "{}", lines[0]);
    assert!(lines[0].ends_with(" warm=1"), "{}", lines[0]);
    assert!(lines[1].ends_with(" warm=-"), "{}", lines[1]);
    assert!(
        lines[1].contains(" cache=HIT "),
        "the warm-up filled the cache: {}",
        lines[1]
    );
    let seen = lab.stub.requests_to("/version");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].is_warm());
    assert_eq!(seen[0].user_agent(), Some("okome-prewarm/0.1.0"));
}

#[test]
fn concurrent_misses_for_one_url_reach_the_origin_once() {
    // proxy_cache_lock: while the first miss is being fetched, the others
    // wait for it instead of stampeding the orchestrator.
    let lab = std::sync::Arc::new(Lab::start());
    let path = "/static/lock.css?hold=1";
    let first = {
        let lab = std::sync::Arc::clone(&lab);
        std::thread::spawn(move || lab.get(path))
    };
    assert!(lab.stub.wait_held(1, Duration::from_secs(5)));
    let others: Vec<_> = (0..4)
        .map(|_| {
            let lab = std::sync::Arc::clone(&lab);
            std::thread::spawn(move || lab.get(path))
        })
        .collect();
    // Give the followers time to arrive at nginx and queue on the lock.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.stub.held(), 1, "only the first miss reached the origin");
    lab.stub.release();
    let first = first.join().unwrap();
    assert_eq!(first.cache_status(), "MISS");
    for other in others {
        let r = other.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, first.body);
    }
    assert_eq!(lab.stub.count("/static/lock.css"), 1);
}

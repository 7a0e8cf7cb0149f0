//! The cache-refresh bypass (`X-OKOME-Refresh: 1`) is honoured only from
//! the node itself (127.0.0.1, ::1), decided on the TCP peer address. The
//! other client here really is another address: the test binds its socket
//! to 127.0.0.2 (the lab's "LAN") before connecting. Also: stub_status is
//! readable from this node only (127.0.0.1, ::1).

use std::net::IpAddr;

use okome_lab::{Lab, Request};

fn refresh() -> Request {
    Request::get("/static/app.css").header("X-OKOME-Refresh", "1")
}

#[test]
fn refresh_from_localhost_fetches_and_stores_a_fresh_copy() {
    let lab = Lab::start();
    let old = lab.get("/static/app.css");
    let r = lab.send(refresh().from("127.0.0.1".parse().unwrap()));
    assert_eq!(r.cache_status(), "BYPASS");
    assert_ne!(r.body, old.body);
    assert_eq!(lab.stub.count("/static/app.css"), 2);
    let after = lab.get("/static/app.css");
    assert_eq!(after.cache_status(), "HIT");
    assert_eq!(
        after.body, r.body,
        "the refreshed copy replaced the old one"
    );
}

#[test]
fn refresh_from_ipv6_localhost_is_honoured() {
    let lab = Lab::start();
    let Some(v6) = lab.nginx.addr_v6() else {
        eprintln!("no IPv6 loopback on this machine: ::1 case not run");
        return;
    };
    lab.get("/static/app.css");
    let r = refresh().send(v6).unwrap();
    assert_eq!(r.cache_status(), "BYPASS");
}

#[test]
fn refresh_from_any_other_address_is_ignored() {
    let lab = Lab::start();
    let old = lab.get("/static/app.css");
    for source in ["127.0.0.2", "127.0.0.3"] {
        let r = lab.send(refresh().from(source.parse::<IpAddr>().unwrap()));
        assert_eq!(r.cache_status(), "HIT", "from {source}");
        assert_eq!(r.body, old.body);
    }
    assert_eq!(lab.stub.count("/static/app.css"), 1);
    // The peer address was really the one we bound (the log proves it).
    let lines = lab.wait_for_log_lines(3, std::time::Duration::from_secs(5));
    assert!(lines[1].starts_with("127.0.0.2 "), "{}", lines[1]);
}

#[test]
fn a_forged_forwarded_for_does_not_make_a_client_local() {
    let lab = Lab::start();
    lab.get("/static/app.css");
    let r = lab.send(
        refresh()
            .header("X-Forwarded-For", "127.0.0.1")
            .header("X-Real-IP", "127.0.0.1")
            .from("127.0.0.2".parse().unwrap()),
    );
    assert_eq!(r.cache_status(), "HIT");
}

#[test]
fn stub_status_is_for_this_node_only() {
    let lab = Lab::start();
    for (source, expected) in [("127.0.0.1", 200), ("127.0.0.2", 403), ("127.0.0.3", 403)] {
        let r = lab.send(Request::get("/nginx_status").from(source.parse().unwrap()));
        assert_eq!(r.status, expected, "from {source}");
        if expected == 200 {
            assert!(r.text().starts_with("Active connections:"), "{}", r.text());
        }
    }
}

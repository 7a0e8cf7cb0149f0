//! Rate limits on the lab: UI 20 r/s burst 60, API 5 r/s burst 10, 30
//! connections per address — past them nginx answers 429 (with the
//! observability headers), never 503.
//!
//! The counting assertions allow for the tokens refilled while the test
//! ran (rate × elapsed), so a slow machine cannot make them flaky.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use okome_lab::{Lab, Request};

/// Fire `n` sequential requests for `path`; (accepted, rejected, elapsed).
fn burst(lab: &Lab, path: &str, n: usize) -> (usize, usize, Duration) {
    let start = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..n {
        let r = lab.get(path);
        match r.status {
            429 => {
                limited += 1;
                assert_eq!(
                    r.header("x-okome-node"),
                    Some(okome_lab::render::lab_node_name().as_str())
                );
            }
            200 => ok += 1,
            other => panic!("{path}: unexpected {other}"),
        }
    }
    (ok, limited, start.elapsed())
}

#[test]
fn ui_past_20_per_second_burst_60_gets_429() {
    let lab = Lab::start();
    lab.get("/assets/hot.js"); // cached: the origin is not what limits
    let (ok, limited, elapsed) = burst(&lab, "/assets/hot.js", 200);
    let allowed = 60 + 20.0f64.mul_add(elapsed.as_secs_f64(), 2.0).ceil() as usize;
    assert!(
        ok <= allowed,
        "{ok} accepted in {elapsed:?}, at most {allowed} allowed"
    );
    assert!(ok >= 60, "only {ok} accepted: the burst is 60");
    assert!(
        limited > 0 || elapsed > Duration::from_secs(6),
        "no 429 in {elapsed:?}"
    );
}

#[test]
fn api_past_5_per_second_burst_10_gets_429() {
    let lab = Lab::start();
    let (ok, limited, elapsed) = burst(&lab, "/api/models", 40);
    let allowed = 10 + 5.0f64.mul_add(elapsed.as_secs_f64(), 2.0).ceil() as usize;
    assert!(
        ok <= allowed,
        "{ok} accepted in {elapsed:?}, at most {allowed} allowed"
    );
    assert!(ok >= 10, "only {ok} accepted: the burst is 10");
    assert!(
        limited > 0 || elapsed > Duration::from_secs(5),
        "no 429 in {elapsed:?}"
    );
    assert_eq!(
        lab.stub.count("/api/models"),
        ok,
        "rejected requests never reached the origin"
    );
}

#[test]
fn more_than_30_connections_in_flight_from_one_address_get_429() {
    let lab = Arc::new(Lab::start());
    // 34 slow requests (held by the origin) from the same address.
    let workers: Vec<_> = (0..34)
        .map(|i| {
            let lab = Arc::clone(&lab);
            thread::spawn(move || {
                lab.send(
                    Request::get(&format!("/static/slow{i}.css?hold=1"))
                        .timeout(Duration::from_secs(20)),
                )
                .status
            })
        })
        .collect();
    // 30 reach the origin; the other 4 are turned away at the edge.
    assert!(
        lab.stub.wait_held(30, Duration::from_secs(4)),
        "only {} held",
        lab.stub.held()
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while workers.iter().filter(|w| w.is_finished()).count() < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lab.stub.held(), 30);
    lab.stub.release();
    let statuses: Vec<u16> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        30,
        "{statuses:?}"
    );
}

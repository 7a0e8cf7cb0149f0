//! End-to-end: the cluster lab for real — booted Debian nodes with the
//! real packages, keepalived moving the VIP, nginx, redis-server and the
//! okome timers under systemd. Each behaviour of the tour (VIP holder,
//! MISS → HIT, standby warming, edge failure, orchestrator hang, node loss
//! by link and by power, nopreempt, split brain) is a named check; a test
//! fails naming every check that failed. Then: nothing left behind.
//!
//! Needs root, systemd-nspawn and the built packages (`OKOME_DEB_DIR`):
//! `cargo xtask test` runs these (ignored in a plain `cargo test`).

use std::time::Duration;

use okome_cluster::cluster::{ClusterSpec, leftovers};
use okome_cluster::{Cluster, tour};

fn assert_torn_down() {
    let left = leftovers(std::process::id());
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
#[ignore = "needs root, systemd-nspawn and OKOME_DEB_DIR: run by cargo xtask test"]
fn the_tour_holds_on_two_frontends() {
    let spec = ClusterSpec::from_env(2).expect("packages");
    let cluster = Cluster::up(&spec).expect("cluster up");
    let mut out = std::io::stderr();
    let report = tour::run(cluster, &mut out).expect("tour ran");
    assert!(
        report.failed == 0 && report.passed > 0,
        "failed checks:\n{}",
        report.failures.join("\n")
    );
    assert_torn_down();
}

#[test]
#[ignore = "needs root, systemd-nspawn and OKOME_DEB_DIR: run by cargo xtask test"]
fn three_frontends_pass_the_vip_down_the_chain() {
    let spec = ClusterSpec::from_env(3).expect("packages");
    let mut cluster = Cluster::up(&spec).expect("cluster up");
    let deadline = Duration::from_secs(20);
    // Priorities a 150, b 100, c 90: whoever holds first, each failure
    // moves the VIP to the highest-priority frontend still healthy.
    let order = ["frontend-a", "frontend-b", "frontend-c"];
    let first = cluster.wait_one_holder(deadline).expect("one holder");
    cluster
        .node(&first)
        .unwrap()
        .kill_unit("nginx.service", "SIGKILL")
        .unwrap();
    let second = *order.iter().find(|n| **n != first).unwrap();
    cluster
        .wait_holder(second, deadline)
        .expect("edge failure: the next in line");
    cluster.node_mut(second).unwrap().power_cut().unwrap();
    let third = *order
        .iter()
        .find(|n| **n != first && **n != second)
        .unwrap();
    cluster
        .wait_holder(third, deadline)
        .expect("node loss: the last in line");
    let r = cluster.get("/ui/chain").unwrap();
    assert_eq!((r.status, r.node()), (200, third), "{r:?}");
    for path in tour::HOT {
        cluster.get(path).unwrap();
    }
    // The first holder's nginx back: a standby again, and it warms from
    // the new holder's plan (the hot paths were only ever asked of it).
    cluster
        .node(&first)
        .unwrap()
        .start_unit("nginx.service")
        .unwrap();
    cluster
        .node(third)
        .unwrap()
        .start_unit("okome-prewarm.service")
        .unwrap();
    cluster
        .node(&first)
        .unwrap()
        .start_unit("okome-prewarm.service")
        .unwrap();
    for path in tour::HOT {
        assert_eq!(
            tour::local_cache(&cluster, &first, path).unwrap(),
            "HIT",
            "{path} on {first} after warming from {third}'s plan"
        );
    }
    // Both failed nodes back: the VIP stays on the last in line, whatever
    // the priorities (nopreempt on every node). The second holder outranks
    // it (b 100 > c 90 when a went first): before every node carried
    // nopreempt, b took the VIP back from c here.
    let held = tour::nopreempt(&cluster, &first, Some(third), |_| Ok(()));
    assert!(held.is_ok(), "{first}'s nginx back: {held:?}");
    cluster.node_mut(second).unwrap().boot().unwrap();
    let held = tour::nopreempt(&cluster, second, Some(third), |_| Ok(()));
    assert!(held.is_ok(), "{second} powered on again: {held:?}");
    drop(cluster);
    assert_torn_down();
}

//! okome-chaos across the cluster lab (okome-cluster: booted Debian nodes
//! with the real packages on a private bridge in 10.213.0.0/16), one
//! cluster, three experiments in a row, each run on the current VIP holder
//! and probing the service through the VIP:
//!
//! 1. `nginx-stop`: the hypothesis holds (exit 0), the VIP moves to the
//!    standby; afterwards nginx runs again on the old holder;
//! 2. `vip-failover` on the new holder: keepalived stopped natively, the VIP
//!    moves back, the hypothesis holds; keepalived runs again;
//! 3. `origin-blackhole` on the holder: the VIP stays put (the gate, not
//!    the VIP, follows the orchestrator), a verdict is reached.
//!
//! After each: the node's whole nft ruleset byte-identical, `status` clean.
//! Needs root, systemd-nspawn and the built packages (`OKOME_DEB_DIR`):
//! `cargo xtask dist --cluster` (and `cargo xtask test`) run it; it is
//! ignored in a plain `cargo test`.

use std::time::Duration;

use okome_cluster::Cluster;
use okome_cluster::cluster::{ClusterSpec, Node};

/// The lab's orchestrator (the shipped 192.168.86.25, renumbered).
const ORIGIN: &str = "10.213.86.25:8000";

/// Run `scenario` on `node` with `extra` flags; (exit status, output).
fn experiment(node: &Node, vip: &str, scenario: &str, extra: &str) -> (Option<i32>, String) {
    let name = node.name().to_string();
    node.sh(&format!(
        "mkdir -p /etc/okome && umask 077 && \
         printf 'expires=%s\\nscenarios={scenario}\\nnodes={name}\\n' \
           \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\" > /etc/okome/CHAOS_ENABLE"
    ))
    .expect("guard");
    let before = node.sh("nft list ruleset").expect("ruleset");
    // The lab now sets up what the preflight (okome-validate --cluster)
    // needs — the operator's key, pinned known_hosts, the cluster file
    // (render::validate_conf) — and validate's cluster_lab test runs it
    // there green. Not enabled here yet: a fresh lab's standby is not warm
    // and the experiments follow each other within one prewarm period, so
    // a preflight would need the warm-up and `--wait` first (issue 15).
    let out = node
        .try_sh(&format!(
            "okome-chaos run {scenario} --execute --node {name} --preflight '' \
             --service-url http://{vip}/ --origin {ORIGIN} {extra}"
        ))
        .expect("okome-chaos ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("[{name}] {text}");
    assert_eq!(
        node.sh("nft list ruleset").expect("ruleset"),
        before,
        "{scenario}: ruleset changed on {name}"
    );
    let status = node.try_sh("okome-chaos status").expect("status");
    assert!(status.status.success(), "{scenario}: {status:?}");
    (out.status.code(), text)
}

#[test]
#[ignore = "needs root, systemd-nspawn and OKOME_DEB_DIR: run by cargo xtask dist --cluster"]
fn scenarios_on_the_holder_move_the_vip_or_keep_it_as_promised() {
    let spec = ClusterSpec::from_env(2).expect("packages");
    let cluster = Cluster::up(&spec).expect("cluster up");
    let vip = cluster.vip();
    let first = cluster
        .wait_one_holder(Duration::from_secs(30))
        .expect("one holder");
    let bound = "--duration 15s --grace 10s --reaction-bound 6s";

    // 1. nginx-stop on the holder: the VIP moves, the service holds.
    let node = cluster.node(&first).expect("holder");
    let (code, text) = experiment(node, &vip, "nginx-stop", bound);
    assert_eq!(
        code,
        Some(0),
        "nginx-stop: hypothesis did not hold:\n{text}"
    );
    let second = cluster.vip_holder().expect("holders");
    assert!(
        second.as_deref().is_some_and(|n| n != first),
        "nginx-stop: the VIP did not move off {first}: {second:?}"
    );
    assert_eq!(node.active_state("nginx.service").unwrap(), "active");
    let second = second.unwrap();

    // 2. vip-failover on the new holder: keepalived stopped natively, the
    // VIP moves back to the first (its nginx runs again), service holds.
    let node = cluster.node(&second).expect("new holder");
    let (code, text) = experiment(node, &vip, "vip-failover", bound);
    assert_eq!(
        code,
        Some(0),
        "vip-failover: hypothesis did not hold:\n{text}"
    );
    assert_eq!(
        cluster.vip_holder().unwrap().as_deref(),
        Some(first.as_str()),
        "vip-failover: the VIP did not move back"
    );
    assert_eq!(node.active_state("keepalived.service").unwrap(), "active");

    // 3. origin-blackhole on the holder: a verdict, and the VIP stays put.
    let node = cluster.node(&first).expect("holder");
    let (code, text) = experiment(
        node,
        &vip,
        "origin-blackhole",
        "--duration 20s --grace 10s --reaction-bound 10s",
    );
    assert!(matches!(code, Some(0 | 1)), "origin-blackhole:\n{text}");
    assert_eq!(
        cluster.vip_holder().unwrap().as_deref(),
        Some(first.as_str()),
        "origin-blackhole moved the VIP"
    );
}

//! `cargo xtask bench chaos-reactions` (also the second half of `cargo
//! xtask bench chaos`): each okome-chaos scenario run once for real on the
//! cluster lab, where the tests run it (chaos/tests/cluster.rs), with the
//! real default preflight (`okome-validate --cluster`), and the time from
//! inject to the detected reaction read from the run's own journal
//! (`effect`: the fault proven; `reaction`: the first failed probe sample,
//! the gate closed; `verdict`). The packaged okome-chaos runs, not a
//! binary under test.

use std::time::Duration;

use serde_json::Value;

use okome_cluster::cluster::Node;
use okome_cluster::{Cluster, ClusterSpec};

use crate::Result;

/// The lab's orchestrator (the shipped 192.168.86.25, renumbered).
const ORIGIN: &str = "10.213.86.25:8000";
const SCENARIOS: &str =
    "nginx-stop,redis-stop,vip-failover,origin-blackhole,origin-loss,disk-pressure";

/// One row: scenario, node, and what its journal says.
struct Row {
    scenario: &'static str,
    node: String,
    exit: Option<i32>,
    effect_ms: Option<u64>,
    first_failed_ms: Option<u64>,
    gate_closed_ms: Option<u64>,
    verdict: String,
}

/// Packages from `$OKOME_DEB_DIR` when set (what the tests use), else
/// built now.
pub fn main() -> Result {
    crate::deps::ensure_apt(&["systemd-container", "debootstrap", "nftables"])?;
    let debs = match ClusterSpec::from_env(2) {
        Ok(spec) => spec.debs,
        Err(_) => crate::dist::amd64_debs()?,
    };
    reactions(debs)
}

/// Bring a lab up, run every scenario once, print the table.
pub fn reactions(debs: Vec<std::path::PathBuf>) -> Result {
    let _fence = crate::contain::SiteLanFence::raise();
    let cluster = Cluster::up(&ClusterSpec { frontends: 2, debs })?;
    for name in ["frontend-a", "frontend-b", "backend"] {
        cluster.node(name)?.sh(&format!(
            "mkdir -p /etc/okome && umask 077 && printf 'expires=%s\\nscenarios=%s\\nnodes=%s\\n' \
             \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\" {SCENARIOS} \
             frontend-a,frontend-b,backend > /etc/okome/CHAOS_ENABLE"
        ))?;
    }
    let vip = cluster.vip();
    let hot = okome_cluster::tour::HOT[0];
    let holder = cluster.wait_one_holder(Duration::from_secs(30))?;
    let standby = cluster
        .frontends()
        .map(|n| n.name().to_string())
        .find(|n| *n != holder)
        .ok_or("no standby")?;
    // The standby's cache on a filesystem of its own (as on a Pi with a
    // cache partition; the lab's / is the build host's disk), just room for
    // nginx's max_size=2g, as in the tests: filling 5 % of it is pressure.
    cluster.node(&standby)?.sh(
        "mount -t tmpfs -o size=2100m,mode=755 okome-lab-cache /var/cache/nginx && systemctl restart nginx",
    )?;
    let standby_url = format!("http://{}{hot}", cluster.node(&standby)?.address());
    // The flags and nodes the tests use.
    let bound =
        format!("--duration 15s --grace 10s --reaction-bound 6s --service-url http://{vip}/");
    let mut rows = Vec::new();
    let mut run = |scenario: &'static str, node: &str, flags: &str| -> Result {
        let settled = cluster.settle_green(node)?;
        if !settled.status.success() {
            return Err(format!(
                "the cluster is not green from {node} before {scenario}:\n{}",
                String::from_utf8_lossy(&settled.stdout)
            )
            .into());
        }
        rows.push(one(cluster.node(node)?, scenario, flags)?);
        Ok(())
    };
    run("nginx-stop", &holder, &bound)?;
    let second = cluster.wait_one_holder(Duration::from_secs(30))?;
    run("vip-failover", &second, &bound)?;
    let holder = cluster.wait_one_holder(Duration::from_secs(30))?;
    run(
        "origin-blackhole",
        &holder,
        &format!("--duration 20s --grace 10s --reaction-bound 0s --service-url http://{vip}{hot}"),
    )?;
    // The first standby (its cache on the tmpfs): the standby again once
    // the VIP went there and back.
    run(
        "origin-loss",
        &standby,
        &format!("--duration 25s --grace 10s --service-url {standby_url}"),
    )?;
    run(
        "redis-stop",
        "backend",
        &format!("--duration 20s --grace 10s --reaction-bound 0s --service-url http://{vip}/"),
    )?;
    run(
        "disk-pressure",
        &standby,
        &format!(
            "--duration 20s --grace 10s --reaction-bound 0s --cache-dir /var/cache/nginx \
             --disk-threshold 5 --max-fill-mib 200 --service-url {standby_url}"
        ),
    )?;
    drop(cluster);
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    println!(
        "| scenario (node) | fault proven after | first failed sample | gate closed | verdict (exit) |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| `{}` ({}) | {} | {} | {} | {} ({}) |",
            row.scenario,
            row.node,
            ms(row.effect_ms),
            ms(row.first_failed_ms),
            ms(row.gate_closed_ms),
            row.verdict,
            row.exit.map_or("-".to_string(), |c| c.to_string())
        );
    }
    println!("(times after the injection, from each run's journal; probes every 1 s)");
    Ok(())
}

/// `okome-chaos run SCENARIO --execute` on `node`; its journal's figures.
fn one(node: &Node, scenario: &'static str, flags: &str) -> Result<Row> {
    let out = node.try_sh(&format!(
        "okome-chaos run {scenario} --execute --node {} --origin {ORIGIN} {flags}",
        node.name()
    ))?;
    eprintln!(
        "bench chaos: {scenario} on {}: exit {:?}\n{}",
        node.name(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = node.sh(&format!(
        "cd /var/lib/okome/chaos && cat $(ls -1d *-{scenario} | tail -n 1)/journal.jsonl"
    ))?;
    let journal: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let event = |name: &str| journal.iter().find(|e| e["event"] == name);
    let reaction = event("reaction");
    Ok(Row {
        scenario,
        node: node.name().to_string(),
        exit: out.status.code(),
        effect_ms: event("effect").and_then(|e| e["ms"].as_u64()),
        first_failed_ms: reaction.and_then(|r| r["first_failed_sample_ms"].as_u64()),
        gate_closed_ms: reaction.and_then(|r| r["gate_closed_ms"].as_u64()),
        verdict: event("verdict")
            .and_then(|v| v["verdict"].as_str())
            .unwrap_or("none")
            .to_string(),
    })
}

//! `cargo xtask bench failover`: how fast the VIP moves on the cluster lab,
//! and what a client sees meanwhile — measured, never asserted in a test.
//!
//! One cluster (two frontends), then 10 trials of each failure: the
//! holder's nginx SIGKILLed (edge failure: keepalived's track script,
//! interval 1 s × fall 2) and the holder's power cut (node loss: the peer
//! misses 3 adverts). Per trial: seconds from the injection until the VIP is
//! on the standby alone (polled every 50 ms from the namespaces), and the
//! requests that failed for a client sending 20 req/s through the VIP
//! (curl in the client node, 1 s deadline each) from the injection until 5 s
//! after the move. Then one 60 s orchestrator hang: VIP transitions and
//! failed requests (goal 0 and 0). The old holder is restored between
//! trials and the cluster settled (`nopreempt`: it stays BACKUP). Last, the
//! new holder's hit ratio in its first 30 s after an edge failover, with the
//! standby warmed from the holder's plan and without (its timer stopped),
//! against the holder's steady hit ratio on the same 20 paths.

use std::time::{Duration, Instant, SystemTime};

use okome_cluster::cluster::STUB_UNIT;
use okome_cluster::{Cluster, ClusterSpec};

use crate::Result;

const TRIALS: usize = 10;
/// The client's rate: one request every 50 ms.
const LOAD: &str = "/usr/local/lib/okome-lab/load.sh";
const LOAD_SCRIPT: &str = r#"#!/bin/sh
# 20 req/s through the VIP; one line per request: UNIX time and HTTP status.
while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://$1/static/app.js")
    echo "$(date +%s.%N) $code"
    sleep 0.05
done
"#;
const HANG: Duration = Duration::from_secs(60);
/// The client for the hit-ratio runs: PATHS round-robin at 20 req/s for
/// SECS seconds; one line per request: HTTP status and X-Cache-Status.
const PATHS_LOAD: &str = "/usr/local/lib/okome-lab/paths.sh";
const PATHS_SCRIPT: &str = r#"#!/bin/sh
vip=$1; secs=$2; shift 2
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
    for path in "$@"; do
        curl -s -o /dev/null -m 1 -w '%{http_code} %header{x-cache-status}\n' "http://$vip$path"
        sleep 0.05
    done
done
"#;
/// The window after a failover in which the new holder's hit ratio counts.
const FIRST: u64 = 30;

pub fn main(args: &[String]) -> Result {
    let trials = match args {
        [] => TRIALS,
        [flag, n] if flag == "--trials" => n.parse().map_err(|_| "--trials takes a number")?,
        _ => return Err(format!("bench failover [--trials N] ({args:?})").into()),
    };
    crate::deps::ensure_apt(&["systemd-container", "debootstrap", "nftables"])?;
    let _fence = crate::contain::SiteLanFence::raise();
    let debs = crate::dist::amd64_debs()?;
    let mut cluster = Cluster::up(&ClusterSpec { frontends: 2, debs })?;
    let client = cluster.node("client")?;
    client.sh(&format!(
        "mkdir -p /usr/local/lib/okome-lab && cat > {LOAD} <<'EOF'\n{LOAD_SCRIPT}EOF\nchmod 755 {LOAD}\n\
         cat > {PATHS_LOAD} <<'EOF'\n{PATHS_SCRIPT}EOF\nchmod 755 {PATHS_LOAD}"
    ))?;
    cluster.get("/static/app.js")?;

    let mut edge = Vec::new();
    let mut node = Vec::new();
    for trial in 0..trials {
        edge.push(trial_run(&mut cluster, Fault::Edge)?);
        eprintln!("bench failover: edge trial {trial}: {:?}", edge.last());
    }
    for trial in 0..trials {
        node.push(trial_run(&mut cluster, Fault::PowerCut)?);
        eprintln!("bench failover: node-loss trial {trial}: {:?}", node.last());
    }
    let (transitions, hang_failed, hang_sent) = hang(&cluster)?;
    let warm = hit_ratios(&mut cluster, "bw", true)?;
    let cold = hit_ratios(&mut cluster, "bc", false)?;

    println!(
        "failover on the cluster lab (2 frontends), {trials} trials each, client at 20 req/s through the VIP\n"
    );
    println!(
        "| failure | VIP on the standby, median | max | failed requests, median | max | goal |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, goal, trials) in [
        ("edge: nginx SIGKILLed on the holder", "< 2 s", &edge),
        ("node loss: the holder's power cut", "< 4 s", &node),
    ] {
        let mut took: Vec<f64> = trials.iter().map(|t| t.0).collect();
        let mut failed: Vec<f64> = trials.iter().map(|t| t.1 as f64).collect();
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.0} | {:.0} | {goal}, failed ≤ 20/s × that |",
            median(&mut took),
            max(&took),
            median(&mut failed),
            max(&failed)
        );
    }
    println!(
        "| orchestrator hung {} s | {transitions} VIP transitions | | {hang_failed} of {hang_sent} failed | | 0 and 0 |",
        HANG.as_secs()
    );
    println!(
        "\nhit ratio of the new holder in its first {FIRST} s (20 paths, 20 req/s), after an edge failover:\n"
    );
    println!(
        "| standby | holder's steady hit ratio | new holder, first {FIRST} s | share of steady |"
    );
    println!("|---|---|---|---|");
    for (name, (steady, first)) in [
        ("warmed from the holder's plan", warm),
        ("not warmed (its prewarm timer stopped)", cold),
    ] {
        println!(
            "| {name} | {:.1} % | {:.1} % | {:.0} % |",
            steady * 100.0,
            first * 100.0,
            first / steady * 100.0
        );
    }
    Ok(())
}

/// The fraction of 200 answers that were HITs, from PATHS_LOAD's lines.
fn hit_ratio(log: &str) -> f64 {
    let answered: Vec<&str> = log.lines().filter(|l| l.starts_with("200")).collect();
    let hits = answered.iter().filter(|l| l.ends_with(" HIT")).count();
    hits as f64 / answered.len().max(1) as f64
}

/// The holder's steady hit ratio on 20 fresh paths (its second 30 s of
/// traffic on them), then an edge failover and the new holder's hit ratio
/// in its first 30 s on the same paths; the standby warmed from the
/// holder's plan first, or its prewarm timer stopped and nothing run.
fn hit_ratios(cluster: &mut Cluster, tag: &str, warm: bool) -> Result<(f64, f64)> {
    let holder = cluster.wait_one_holder(Duration::from_secs(30))?;
    let paths: Vec<String> = (0..20).map(|i| format!("/static/{tag}-{i}.js")).collect();
    let client = cluster.node("client")?;
    let load = |secs: u64| -> Result<String> {
        client.sh(&format!(
            "{PATHS_LOAD} {} {secs} {}",
            cluster.vip(),
            paths.join(" ")
        ))
    };
    let standbys: Vec<String> = cluster
        .frontends()
        .filter(|n| n.name() != holder)
        .map(|n| n.name().to_string())
        .collect();
    for standby in &standbys {
        let node = cluster.node(standby)?;
        if warm {
            node.start_unit("okome-prewarm.timer")?;
        } else {
            node.stop_unit("okome-prewarm.timer")?;
        }
    }
    load(FIRST)?;
    let steady = hit_ratio(&load(FIRST)?);
    if warm {
        cluster.node(&holder)?.start_unit("okome-prewarm.service")?;
        for standby in &standbys {
            cluster.node(standby)?.start_unit("okome-prewarm.service")?;
        }
    }
    cluster
        .node(&holder)?
        .kill_unit("nginx.service", "SIGKILL")?;
    let mut holders = Vec::new();
    okome_cluster::cluster::wait_for("the VIP on a standby", Duration::from_secs(30), || {
        holders = cluster.vip_holders()?;
        Ok(holders.len() == 1 && holders[0] != holder)
    })?;
    let first = hit_ratio(&load(FIRST)?);
    cluster.node(&holder)?.start_unit("nginx.service")?;
    for standby in &standbys {
        cluster.node(standby)?.start_unit("okome-prewarm.timer")?;
    }
    let back = cluster.node(&holder)?;
    okome_cluster::cluster::wait_for("the old holder BACKUP", Duration::from_secs(60), || {
        Ok(back.vrrp_state()? == "BACKUP")
    })?;
    Ok((steady, first))
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Edge,
    PowerCut,
}

/// One failover: seconds until the standby holds the VIP alone, and the
/// client's failed requests.
fn trial_run(cluster: &mut Cluster, fault: Fault) -> Result<(f64, usize)> {
    let holder = cluster.wait_one_holder(Duration::from_secs(30))?;
    let client = cluster.node("client")?;
    client.sh(&format!(
        "systemd-run --quiet --unit=okc-load --collect sh -c '{LOAD} {} > /run/okc-load.log'",
        cluster.vip()
    ))?;
    std::thread::sleep(Duration::from_secs(1));
    let injected = Instant::now();
    let wall = SystemTime::now();
    match fault {
        Fault::Edge => cluster
            .node(&holder)?
            .kill_unit("nginx.service", "SIGKILL")?,
        Fault::PowerCut => cluster.node_mut(&holder)?.power_cut()?,
    }
    let took = loop {
        let holders = cluster.vip_holders()?;
        if holders.len() == 1 && holders[0] != holder {
            break injected.elapsed().as_secs_f64();
        }
        if injected.elapsed() > Duration::from_secs(30) {
            return Err(format!("{fault:?}: the VIP did not move in 30 s ({holders:?})").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(5));
    let client = cluster.node("client")?;
    client.sh("systemctl stop okc-load.service || true")?;
    let log = client.sh("cat /run/okc-load.log; rm -f /run/okc-load.log")?;
    let from = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "clock")?
        .as_secs_f64();
    let failed = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, _)| t.parse::<f64>().is_ok_and(|t| t >= from))
        .filter(|(_, code)| code.trim() != "200")
        .count();
    // Restore the old holder; it must come back as BACKUP (nopreempt).
    match fault {
        Fault::Edge => cluster.node(&holder)?.start_unit("nginx.service")?,
        Fault::PowerCut => cluster.node_mut(&holder)?.boot()?,
    }
    let back = cluster.node(&holder)?;
    okome_cluster::cluster::wait_for("the old holder BACKUP", Duration::from_secs(60), || {
        Ok(back.vrrp_state()? == "BACKUP")
    })?;
    Ok((took, failed))
}

/// A 60 s orchestrator hang under load: keepalived transitions on every
/// frontend, and the client's failed requests / requests sent.
fn hang(cluster: &Cluster) -> Result<(usize, usize, usize)> {
    let client = cluster.node("client")?;
    client.sh(&format!(
        "systemd-run --quiet --unit=okc-load --collect sh -c '{LOAD} {} > /run/okc-load.log'",
        cluster.vip()
    ))?;
    // Settled first: the holder MASTER, every other frontend BACKUP (a node
    // just back from the last trial may still be finishing its rise).
    okome_cluster::cluster::wait_for("the frontends settled", Duration::from_secs(60), || {
        let mut masters = 0;
        for node in cluster.frontends() {
            match node.vrrp_state()?.as_str() {
                "MASTER" => masters += 1,
                "BACKUP" => {}
                _ => return Ok(false),
            }
        }
        Ok(masters == 1)
    })?;
    std::thread::sleep(Duration::from_secs(5));
    let since = SystemTime::now();
    let orchestrator = cluster.node("orchestrator")?;
    orchestrator.kill_unit(STUB_UNIT, "SIGSTOP")?;
    std::thread::sleep(HANG);
    orchestrator.kill_unit(STUB_UNIT, "SIGCONT")?;
    let mut transitions = 0;
    for node in cluster.frontends() {
        let lines = node.journal_tag("okome-keepalived", since)?;
        for line in lines.lines() {
            eprintln!("bench failover: during the hang, {}: {line}", node.name());
        }
        transitions += lines.lines().count();
    }
    client.sh("systemctl stop okc-load.service || true")?;
    let log = client.sh("cat /run/okc-load.log")?;
    let sent = log.lines().count();
    let failed = log
        .lines()
        .filter(|l| l.split_once(' ').is_some_and(|(_, c)| c.trim() != "200"))
        .count();
    Ok((transitions, failed, sent))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

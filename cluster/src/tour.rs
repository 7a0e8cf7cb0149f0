//! The cluster tour: what `cargo xtask lab` shows a newcomer, each line
//! also a check, run in this order on one cluster (each scene leaves the
//! cluster healthy for the next):
//!
//! 1. the VIP holder, and its name in `X-OKOME-Node` through the VIP;
//! 2. the client through the VIP: MISS, then HIT;
//! 3. the standby warms from the holder's published plan (its cache holds
//!    the hot paths before any failover);
//! 4. edge failure (nginx SIGKILLed on the holder) → the VIP on the
//!    standby, which answers HIT; nginx back → `nopreempt` holds;
//! 5. orchestrator hung (its stub SIGSTOPped) → every gate closes, stale
//!    UI is served, the VIP does not move;
//! 6. node loss (the holder's link cut, then a holder's power cut) → the
//!    VIP moves, the new holder answers HIT; the node back → no second
//!    failover;
//! 7. split brain (VRRP dropped in the switch) → what each node does and
//!    what the client sees, printed plainly; healed → one holder again.
//!
//! The end-to-end tests run exactly this (cluster/tests/cluster.rs).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use crate::Result;
use crate::cluster::{Cluster, STUB_UNIT, wait_for};

/// The hot paths the client asks for several times: what the holder's
/// prewarm ranks and publishes (prewarm warms only /assets/, /static/ and
/// /ui-schema/: pathsafe::SAFE_PREFIXES).
pub const HOT: &[&str] = &[
    "/ui-schema/home",
    "/ui-schema/menu",
    "/assets/app.js",
    "/static/app.js",
];
/// Primed before the hang, expired during it: shows STALE.
const STALE_PATH: &str = "/static/app.css?max_age=1";
/// How long a failover may take before the check fails (the bench
/// measures the real figure; keepalived's goal is 2-4 s).
const FAILOVER: Duration = Duration::from_secs(20);
/// How long every gate may take to close (probe every 5 s, FALL 2).
const GATE: Duration = Duration::from_secs(40);
/// The window in which a node back must NOT take the VIP back.
const NOPREEMPT_WINDOW: Duration = Duration::from_secs(8);
const FLAG: &str = "/run/okome/orchestrator.down";

/// What the tour found.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// The failed checks, by title.
    pub failures: Vec<String>,
}

struct Tour<'o> {
    out: &'o mut dyn Write,
    report: Report,
}

impl Tour<'_> {
    fn scene(&mut self, title: &str) -> Result {
        writeln!(self.out, "\n== {title}")?;
        Ok(())
    }
    /// One check: `ok`/`FAIL`, its title and what was seen.
    fn check(&mut self, title: &str, result: Result<String>) -> Result {
        match result {
            Ok(seen) => {
                self.report.passed += 1;
                writeln!(self.out, "  ok    {title}: {seen}")?;
            }
            Err(error) => {
                self.report.failed += 1;
                self.report.failures.push(format!("{title}: {error}"));
                writeln!(self.out, "  FAIL  {title}: {error}")?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
    fn say(&mut self, text: &str) -> Result {
        writeln!(self.out, "        {text}")?;
        Ok(())
    }
}

/// Run the tour on `cluster` (consumed: it is torn down at the end),
/// printing to `out`.
pub fn run(mut cluster: Cluster, out: &mut dyn Write) -> Result<Report> {
    let mut tour = Tour {
        out,
        report: Report::default(),
    };
    let vip = cluster.vip();

    tour.scene("The VIP and who answers behind it")?;
    let holder = cluster.wait_one_holder(Duration::from_secs(30))?;
    tour.check(
        &format!("exactly one frontend holds the VIP {vip}"),
        Ok(format!("{holder} (others BACKUP: {})", states(&cluster)?)),
    )?;
    tour.check(
        "through the VIP, X-OKOME-Node names the holder",
        names(&cluster, "/", &holder),
    )?;

    tour.scene("The client through the VIP: MISS, then HIT")?;
    tour.check("GET /ui/tour twice", miss_then_hit(&cluster, "/ui/tour"))?;
    for _ in 0..3 {
        for path in HOT {
            cluster.get(path)?;
        }
    }
    tour.say(&format!(
        "the client asked {} three times each: the holder's hot paths",
        HOT.join(" ")
    ))?;

    tour.scene("The standby warms from the holder's published plan")?;
    tour.check(
        "standby caches hold the hot paths before any failover",
        standby_warm(&cluster, &holder),
    )?;

    tour.scene("Edge failure: nginx killed on the holder")?;
    let edge = edge_failure(&cluster, &holder);
    let standby = edge.as_ref().ok().map(|(s, _)| s.clone());
    tour.check(
        "the VIP moves to a standby, which answers HIT",
        edge.map(|(s, took)| format!("{s} holds it {took:.1} s after the kill, and answers HIT")),
    )?;
    tour.check(
        "nginx back on the old holder: nopreempt holds",
        nopreempt(&cluster, &holder, standby.as_deref(), |c| {
            c.node(&holder)?.start_unit("nginx.service")
        }),
    )?;

    tour.scene("Orchestrator hung (its process stopped, connections accepted, nothing answered)")?;
    tour.check(
        "every gate closes, stale UI is served, the VIP stays put",
        orchestrator_hung(&cluster),
    )?;

    tour.scene("Node loss: the holder's cable pulled")?;
    let holder = cluster.wait_one_holder(Duration::from_secs(10))?;
    let moved = node_loss(&cluster, &holder, |c| c.cut_link(&holder));
    let standby = moved.as_ref().ok().map(|(s, _)| s.clone());
    tour.check(
        "the VIP moves, the new holder answers HIT",
        moved.map(|(s, took)| format!("{s} holds it {took:.1} s after the cut, and answers HIT")),
    )?;
    tour.check(
        "cable back: nopreempt holds",
        nopreempt(&cluster, &holder, standby.as_deref(), |c| {
            c.restore_link(&holder)
        }),
    )?;

    tour.scene("Node loss: the holder's power cut")?;
    let holder = cluster.wait_one_holder(Duration::from_secs(10))?;
    let cut = cluster.node_mut(&holder)?.power_cut();
    let moved = cut.and_then(|()| node_loss(&cluster, &holder, |_| Ok(())));
    let standby = moved.as_ref().ok().map(|(s, _)| s.clone());
    tour.check(
        "the VIP moves, the new holder answers HIT",
        moved.map(|(s, took)| {
            format!("{s} holds it {took:.1} s after the power cut, and answers HIT")
        }),
    )?;
    let booted = cluster.node_mut(&holder)?.boot();
    tour.check(
        "power back, the node boots: nopreempt holds",
        booted.and_then(|()| nopreempt(&cluster, &holder, standby.as_deref(), |_| Ok(()))),
    )?;

    tour.scene("Split brain: VRRP between the frontends dropped")?;
    let split = split_brain(&cluster, &mut tour);
    tour.check(
        "both frontends claim the VIP; healed, one holder again",
        split,
    )?;

    let report = std::mem::take(&mut tour.report);
    let out = tour.out;
    drop(cluster);
    writeln!(
        out,
        "\n{} check(s) passed, {} failed.",
        report.passed, report.failed
    )?;
    Ok(report)
}

/// Each frontend's keepalived state, `name=STATE`.
fn states(cluster: &Cluster) -> Result<String> {
    let mut words = Vec::new();
    for node in cluster.frontends() {
        let state = if node.is_up() {
            node.vrrp_state()?
        } else {
            "off".into()
        };
        words.push(format!("{}={state}", node.name()));
    }
    Ok(words.join(" "))
}

fn names(cluster: &Cluster, path: &str, holder: &str) -> Result<String> {
    let r = cluster.get(path)?;
    if r.status == 200 && r.node() == holder {
        Ok(format!("{} {}, X-OKOME-Node: {}", r.status, path, r.node()))
    } else {
        Err(format!(
            "GET {path}: {} X-OKOME-Node {:?}, holder {holder}",
            r.status,
            r.node()
        )
        .into())
    }
}

fn miss_then_hit(cluster: &Cluster, path: &str) -> Result<String> {
    let first = cluster.get(path)?;
    let second = cluster.get(path)?;
    if first.status == 200
        && first.cache() == "MISS"
        && second.status == 200
        && second.cache() == "HIT"
    {
        Ok(format!(
            "{} then {} (from {})",
            first.cache(),
            second.cache(),
            second.node()
        ))
    } else {
        Err(format!(
            "{} {} then {} {}",
            first.status,
            first.cache(),
            second.status,
            second.cache()
        )
        .into())
    }
}

/// `X-Cache-Status` of `path` asked on `node`'s own nginx (loopback, the
/// public Host): what its cache holds, without the VIP.
pub fn local_cache(cluster: &Cluster, node: &str, path: &str) -> Result<String> {
    let r = cluster.get_from(
        node,
        &format!("http://127.0.0.1{path}"),
        &[&format!("Host: {}", cluster.vip())],
    )?;
    Ok(r.cache().to_string())
}

fn standby_warm(cluster: &Cluster, holder: &str) -> Result<String> {
    let since = SystemTime::now();
    // The timers would run these within 2 min; the tour does not wait.
    cluster.node(holder)?.start_unit("okome-prewarm.service")?;
    let mut seen = Vec::new();
    for node in cluster.frontends().filter(|n| n.name() != holder) {
        node.start_unit("okome-prewarm.service")?;
        let journal = node.journal("okome-prewarm.service", since)?;
        let mut cold = Vec::new();
        for path in HOT {
            // Asked on the standby's own nginx: HIT only if warming put it
            // there (this request would otherwise be the MISS that fills it).
            let status = local_cache(cluster, node.name(), path)?;
            if status != "HIT" {
                cold.push(format!("{path}={status}"));
            }
        }
        if !cold.is_empty() {
            return Err(format!(
                "{} not warm: {}; prewarm said:\n{journal}",
                node.name(),
                cold.join(" ")
            )
            .into());
        }
        let plan_line = journal
            .lines()
            .find(|l| l.contains("plan"))
            .map(|l| l.split_once(": ").map_or(l, |(_, m)| m).trim().to_string())
            .unwrap_or_default();
        seen.push(format!(
            "{} HIT on all {} ({plan_line})",
            node.name(),
            HOT.len()
        ));
    }
    Ok(seen.join("; "))
}

/// Wait for a frontend other than `old` to hold the VIP alone; its name
/// and the seconds since `from`.
fn moved_from(cluster: &Cluster, old: &str, from: Instant) -> Result<(String, f64)> {
    let mut holders = Vec::new();
    wait_for(
        &format!("the VIP off {old}, on one other frontend"),
        FAILOVER,
        || {
            holders = cluster.vip_holders()?;
            Ok(holders.len() == 1 && holders[0] != old)
        },
    )
    .map_err(|e| format!("{e} (holders: {holders:?})"))?;
    Ok((holders.remove(0), from.elapsed().as_secs_f64()))
}

/// The new holder answers a hot path through the VIP with HIT.
fn answers_hit(cluster: &Cluster, holder: &str) -> Result {
    let mut last = None;
    wait_for(
        "the new holder answering through the VIP",
        Duration::from_secs(10),
        || {
            let r = cluster.get(HOT[0])?;
            let ok = r.status == 200 && r.node() == holder;
            last = Some(r);
            Ok(ok)
        },
    )
    .map_err(|e| format!("{e}: last {last:?}"))?;
    let r = cluster.get(HOT[0])?;
    if r.cache() != "HIT" {
        return Err(format!(
            "{} answered {} {} for {}",
            r.node(),
            r.status,
            r.cache(),
            HOT[0]
        )
        .into());
    }
    Ok(())
}

fn edge_failure(cluster: &Cluster, holder: &str) -> Result<(String, f64)> {
    let node = cluster.node(holder)?;
    let killed = Instant::now();
    node.kill_unit("nginx.service", "SIGKILL")?;
    let (standby, took) = moved_from(cluster, holder, killed)?;
    answers_hit(cluster, &standby)?;
    Ok((standby, took))
}

fn node_loss(
    cluster: &Cluster,
    holder: &str,
    inject: impl FnOnce(&Cluster) -> Result,
) -> Result<(String, f64)> {
    let from = Instant::now();
    inject(cluster)?;
    let (standby, took) = moved_from(cluster, holder, from)?;
    answers_hit(cluster, &standby)?;
    Ok((standby, took))
}

/// Undo the fault on `old` (`restore`), wait until its keepalived is back
/// in BACKUP, then hold [`NOPREEMPT_WINDOW`]: the VIP must stay on `now`.
/// Public for the three-frontend test: every returning node, not only A.
pub fn nopreempt(
    cluster: &Cluster,
    old: &str,
    now: Option<&str>,
    restore: impl FnOnce(&Cluster) -> Result,
) -> Result<String> {
    restore(cluster)?;
    let now = now.ok_or("the failover before did not happen")?;
    let node = cluster.node(old)?;
    wait_for(
        &format!("{old} back in BACKUP"),
        Duration::from_secs(60),
        || Ok(node.vrrp_state()? == "BACKUP"),
    )?;
    let back = Instant::now();
    while back.elapsed() < NOPREEMPT_WINDOW {
        let holders = cluster.vip_holders()?;
        if holders != [now] {
            return Err(format!("{old} came back and the VIP is on {holders:?}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(format!(
        "{old} BACKUP again, the VIP still on {now} {} s later",
        NOPREEMPT_WINDOW.as_secs()
    ))
}

fn gates(cluster: &Cluster) -> Result<Vec<bool>> {
    cluster
        .frontends()
        .map(|n| n.succeeds(&format!("test -e {FLAG}")))
        .collect()
}

fn orchestrator_hung(cluster: &Cluster) -> Result<String> {
    let orchestrator = cluster.node("orchestrator")?;
    let holder = cluster.wait_one_holder(Duration::from_secs(10))?;
    let primed = cluster.get(STALE_PATH)?;
    if primed.status != 200 {
        return Err(format!("priming {STALE_PATH}: {}", primed.status).into());
    }
    std::thread::sleep(Duration::from_millis(1500));
    let since = SystemTime::now();
    orchestrator.kill_unit(STUB_UNIT, "SIGSTOP")?;
    let result = (|| -> Result<String> {
        let closed = Instant::now();
        wait_for("every frontend's gate closed", GATE, || {
            Ok(gates(cluster)?.iter().all(|c| *c))
        })?;
        let took = closed.elapsed().as_secs_f64();
        let stale = cluster.get(STALE_PATH)?;
        if stale.status != 200 || stale.cache() != "STALE" {
            return Err(format!(
                "{STALE_PATH}: {} {} (want 200 STALE)",
                stale.status,
                stale.cache()
            )
            .into());
        }
        let api = cluster.get("/api/tour")?;
        let holders = cluster.vip_holders()?;
        if holders != [holder.as_str()] {
            return Err(format!("the VIP moved: {holders:?} (was {holder})").into());
        }
        let mut transitions = 0;
        for node in cluster.frontends() {
            transitions += node.journal_tag("okome-keepalived", since)?.lines().count();
        }
        if transitions != 0 {
            return Err(format!("{transitions} keepalived transition(s) during the hang").into());
        }
        Ok(format!(
            "gates closed {took:.0} s after the hang; {STALE_PATH} 200 STALE, /api/ {}; VIP still on {holder}, 0 transitions",
            api.status
        ))
    })();
    orchestrator.kill_unit(STUB_UNIT, "SIGCONT")?;
    wait_for("every gate open again", GATE, || {
        Ok(gates(cluster)?.iter().all(|c| !*c))
    })?;
    result
}

fn split_brain(cluster: &Cluster, tour: &mut Tour) -> Result<String> {
    cluster.wait_one_holder(Duration::from_secs(20))?;
    let frontends: Vec<String> = cluster
        .frontends()
        .filter(|n| n.is_up())
        .map(|n| n.name().to_string())
        .collect();
    cluster.block_vrrp(true)?;
    let result = (|| -> Result<String> {
        let mut holders = Vec::new();
        wait_for("every frontend holding the VIP", FAILOVER, || {
            holders = cluster.vip_holders()?;
            Ok(holders.len() == frontends.len())
        })
        .map_err(|e| format!("{e} (holders: {holders:?})"))?;
        tour.say(&format!(
            "no advertisement gets through: every frontend is MASTER ({})",
            states(cluster)?
        ))?;
        tour.say(&format!(
            "each adds {} to its eth0 and answers ARP for it: {holders:?}",
            cluster.vip()
        ))?;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let r = cluster.get(HOT[0])?;
            seen.push(format!("{} {} from {}", r.status, r.cache(), r.node()));
        }
        tour.say(&format!(
            "the client reaches whichever MAC its ARP cache holds (the last gratuitous ARP): {}",
            seen.join(", ")
        ))?;
        tour.say("users still get pages (both caches serve), but two nodes claim one address: fix the link")?;
        Ok(holders.join(" and "))
    })();
    cluster.block_vrrp(false)?;
    let claimed = result?;
    let one = cluster.wait_one_holder(FAILOVER)?;
    Ok(format!("{claimed} during the split; healed, {one} alone"))
}

//! The experiment and the operator commands, on top of the pure pieces:
//! guard → lock → preflight → plan on disk → arm → inject → prove → observe
//! → revert → prove the baseline → verdict.
//!
//! Every revert path — the run's own, Ctrl-C, the armed timer, the boot-time
//! recover unit, `revert`, `halt` — is [`revert_one`] on the plan read back
//! from disk, so there is one revert to test. Nothing here reverts from a
//! destructor: the release profile aborts on panic, and a run killed with
//! `kill -9` leaves the armed timer to do it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use okome_common::fetch::{Method, Request};
use okome_common::fsutil::RunLock;
use serde_json::{Value, json};

use crate::cli::{Action, Config, RunConfig};
use crate::guard::{self, Guard};
use crate::host::{self, Host};
use crate::nft;
use crate::peers;
use crate::plan::{self, Check, Plan, Scenario};
use crate::store::{Store, now_ms};
use crate::verdict::{self, Sample, Verdict};
use crate::{Error, metrics};

/// How long the effect of an injection may take to show.
const EFFECT_WITHIN: Duration = Duration::from_secs(5);
/// How long the baseline may take to come back after the revert commands.
const BASELINE_WITHIN: Duration = Duration::from_secs(15);
/// How long a revert waits for another revert of the same node.
const REVERT_LOCK_WITHIN: Duration = Duration::from_secs(20);
/// The lock a runner holds from before its peers are asked to its verdict.
const RUN_LOCK: &str = "run.lock";
/// Probe period.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Carry out `config`; the exit status.
pub fn execute(config: &Config, host: &mut dyn Host, stop: &AtomicBool) -> Result<u8, Error> {
    let store = Store::new(config.state_dir.clone());
    let status = match &config.action {
        Action::Run(run) => experiment(config, run, &store, host, stop)?,
        Action::Status => status(config, &store)?,
        Action::Revert(id) => revert_command(&store, host, id.as_deref(), "okome-chaos revert")?,
        Action::Halt => halt(config, &store, host)?,
        Action::Report(id) => report(&store, id)?,
    };
    if !matches!(config.action, Action::Status | Action::Report(_)) {
        metrics::write(&store, &config.metrics_dir);
    }
    Ok(status)
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn check_guard(config: &Config, scenario: Scenario) -> Result<Guard, Error> {
    let facts = guard::load(&config.guard).map_err(|r| Error::Refused(r.to_string()))?;
    guard::judge(&facts, now_secs(), scenario.name(), &config.node)
        .map_err(|r| Error::Refused(r.to_string()))
}

fn who() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            format!(
                "uid {}",
                std::fs::metadata("/proc/self")
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                    .unwrap_or(u32::MAX)
            )
        })
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn shell(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn ran_json(argv: &[String], ran: &host::Ran) -> Value {
    json!({"argv": argv, "code": ran.code, "stderr": ran.stderr})
}

/// Measure what the plan needs and refuse when the scenario cannot be
/// injected and proven here.
fn preflight(
    run: &RunConfig,
    me: &str,
    host: &mut dyn Host,
    store: &Store,
) -> Result<(String, u64, Value), Error> {
    let refuse = |why: String| Err(Error::Refused(why));
    for info in store.runs()? {
        if !info.reverted {
            return refuse(format!(
                "run {} is not reverted: okome-chaos revert {} first",
                info.id, info.id
            ));
        }
    }
    // One run at a time across the cluster: our lock is held; now the peers.
    let peers = match peers::check(host, &run.cluster_file, me, &run.ssh) {
        Ok(snapshot) => snapshot,
        Err((_, why)) => return refuse(why),
    };
    let listing = host::ruleset(host).map_err(Error::Refused)?;
    if nft::has_our_table(&listing) {
        return refuse(format!(
            "nft table {} exists but no run owns it: okome-chaos revert, or inspect it",
            nft::TABLE
        ));
    }
    let before = nft::without_our_table(&listing);
    let mut fill = 0;
    let mut snapshot = json!({ "peers": peers });
    match run.scenario {
        Scenario::NginxStop | Scenario::RedisStop | Scenario::VipFailover => {
            let unit = run.scenario.unit().unwrap_or_default();
            let state = host::active_state(host, unit).map_err(Error::Refused)?;
            snapshot["unit"] = json!({"unit": unit, "active_state": state});
            if state != "active" {
                return refuse(format!(
                    "{unit} is {state}, not active: only a running unit is stopped (and restarted)"
                ));
            }
        }
        Scenario::OriginBlackhole | Scenario::OriginLoss => {
            if run.scenario.gate_bound_ms().is_some() && run.gate_file.exists() {
                return refuse(format!(
                    "the health gate is already closed ({} exists): its closing could not be observed",
                    run.gate_file.display()
                ));
            }
            let ok = host.connects(run.origin, Duration::from_secs(1));
            snapshot["origin"] = json!({"addr": run.origin.to_string(), "connects": ok});
            if !ok {
                return refuse(format!(
                    "the origin {} does not answer now: the fault could not be proven",
                    run.origin
                ));
            }
        }
        Scenario::DiskPressure => {
            let (used, avail) = host
                .disk(&run.cache_dir)
                .map_err(|e| Error::Refused(format!("{}: {e}", run.cache_dir.display())))?;
            fill = plan::fill_bytes(used, avail, run.disk_percent);
            snapshot["disk"] = json!({"used": used, "available": avail,
                "percent": host::used_percent((used, avail)), "fill": fill});
            if fill == 0 {
                return refuse(format!(
                    "{} is already ≥ {} % full: nothing to inject",
                    run.cache_dir.display(),
                    run.disk_percent
                ));
            }
            if fill > run.max_fill_bytes {
                return refuse(format!(
                    "reaching {} % on {} takes {} MiB, more than --max-fill-mib {}",
                    run.disk_percent,
                    run.cache_dir.display(),
                    fill >> 20,
                    run.max_fill_bytes >> 20
                ));
            }
        }
    }
    if !run.preflight.is_empty() {
        let ran = host.run(&run.preflight);
        snapshot["preflight"] = ran_json(&run.preflight, &ran);
        if !ran.ok() {
            return refuse(format!(
                "preflight `{}` is not green ({}): {}",
                shell(&run.preflight),
                ran.code
                    .map_or("killed".to_string(), |code| format!("exit {code}")),
                why_not_green(&ran)
            ));
        }
    }
    Ok((before, fill, snapshot))
}

/// What a red preflight said: okome-validate's failed checks (its lines
/// starting CRIT, WARN or ERR), else the last lines any command printed.
fn why_not_green(ran: &host::Ran) -> String {
    let lines: Vec<&str> = ran
        .stdout
        .lines()
        .chain(ran.stderr.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let red: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| ["CRIT ", "WARN ", "ERR "].iter().any(|w| l.starts_with(w)))
        .collect();
    if red.is_empty() {
        lines[lines.len().saturating_sub(3)..].join(" | ")
    } else {
        red.join(" | ")
    }
}

fn print_plan(plan: &Plan, run: &RunConfig, store: &Store) {
    println!(
        "okome-chaos: DRY RUN of {} on {} (run {}): nothing was changed; --execute acts.",
        plan.scenario.name(),
        plan.node,
        plan.run_id
    );
    println!("hypothesis: {}", plan.scenario.hypothesis());
    let dir = store.run_dir(&plan.run_id);
    println!(
        "1. write the revert plan {} (atomic, fsynced)",
        dir.join("plan.json").display()
    );
    for file in &plan.files {
        println!("   and {}:", file.path.display());
        for line in file.contents.lines() {
            println!("     {line}");
        }
    }
    println!("2. arm the revert: {}", shell(&plan.arm));
    for step in &plan.inject {
        println!("3. inject: {}", shell(step));
    }
    for check in &plan.effect {
        println!("4. prove it took effect: {}", check.describe());
    }
    println!(
        "5. probe http://{}{} every {} s for {} s (failures allowed for the first {} ms)",
        run.service_url.authority(),
        run.service_url.path,
        PROBE_EVERY.as_secs(),
        plan.duration_secs,
        run.reaction_bound_ms
    );
    for step in &plan.revert {
        println!("6. revert: {}", shell(step));
    }
    for check in &plan.baseline {
        println!("7. prove the baseline: {}", check.describe());
    }
    println!("8. disarm: {}", shell(&plan.disarm));
}

fn experiment(
    config: &Config,
    run: &RunConfig,
    store: &Store,
    host: &mut dyn Host,
    stop: &AtomicBool,
) -> Result<u8, Error> {
    let guard = check_guard(config, run.scenario)?;
    if run.execute {
        store.ensure()?;
    }
    let _lock = if run.execute {
        Some(
            RunLock::try_acquire(&store.dir.join(RUN_LOCK))?
                .ok_or_else(|| Error::Refused("another okome-chaos run is in progress".into()))?,
        )
    } else {
        None
    };
    let (before, fill, snapshot) = preflight(run, &config.node, host, store)?;
    let now = now_secs();
    let run_id = plan::run_id(now, run.scenario);
    let run_dir = store.run_dir(&run_id);
    let exe = std::env::current_exe()?;
    let root = std::env::var_os(okome_common::root::ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let plan = plan::build(&plan::Inputs {
        run_id: &run_id,
        scenario: run.scenario,
        node: &config.node,
        now,
        duration_secs: run.duration_secs,
        grace_secs: run.grace_secs,
        run_dir: &run_dir,
        exe: &exe,
        root: root.as_deref(),
        origin: run.origin,
        loss_percent: run.loss_percent,
        cache_dir: &run.cache_dir,
        disk_percent: run.disk_percent,
        fill_bytes: fill,
        ruleset_before: &before,
    });
    if !run.execute {
        print_plan(&plan, run, store);
        return Ok(0);
    }
    if store.run_dir(&run_id).exists() {
        return Err(Error::Refused(format!(
            "run {run_id} already exists: wait a second"
        )));
    }

    // The revert is on disk before anything else happens.
    store.write_plan(&plan)?;
    store.mark_boot(&run_id)?;
    for file in &plan.files {
        okome_common::fsutil::atomic_write(&file.path, file.contents.as_bytes(), 0o600)?;
    }
    let journal = |event: &str, fields: Value| {
        if let Err(error) = store.journal(&run_id, event, fields) {
            log::warn!("journal of run {run_id}: {error}");
        }
    };
    journal(
        "start",
        json!({"who": who(), "guard_sha256": guard.hash, "scenario": plan.scenario.name(),
               "node": plan.node, "duration_secs": plan.duration_secs,
               "deadline_secs": plan.deadline_secs, "preflight": snapshot}),
    );
    log::info!("run {run_id}: {} on {}", plan.scenario.name(), plan.node);

    // Re-read the guard before each step.
    let step_guard = |what: &str| -> Result<(), String> {
        check_guard(config, run.scenario)
            .map(|_| ())
            .map_err(|e| format!("before {what}: {e}"))
    };
    let finish = |verdict: Verdict, why: &str, host: &mut dyn Host| -> Result<u8, Error> {
        finish(store, &plan, verdict, why, host)
    };

    if let Err(why) = step_guard("arming") {
        store.mark_reverted(&run_id)?;
        return finish(Verdict::Refused, &why, host);
    }
    let ran = host.run(&plan.arm);
    journal("arm", ran_json(&plan.arm, &ran));
    if !ran.ok() {
        store.mark_reverted(&run_id)?;
        return finish(
            Verdict::Refused,
            &format!("could not arm the revert timer: {}", ran.stderr),
            host,
        );
    }
    if let Err(why) = step_guard("injecting") {
        return revert_and_finish(store, &plan, host, Verdict::Refused, &why);
    }
    let injected_at = Instant::now();
    for step in &plan.inject {
        let ran = host.run(step);
        journal("inject", ran_json(step, &ran));
        if !ran.ok() {
            let why = format!("`{}` failed: {}", shell(step), ran.stderr);
            return revert_and_finish(store, &plan, host, Verdict::InjectionIneffective, &why);
        }
    }
    let proof = settle(host, &plan.effect, EFFECT_WITHIN);
    journal(
        "effect",
        json!({"checks": proof, "ms": injected_at.elapsed().as_millis() as u64}),
    );
    if let Some(failed) = first_failure(&proof) {
        return revert_and_finish(
            store,
            &plan,
            host,
            Verdict::InjectionIneffective,
            &format!("the fault did not take effect: {failed}"),
        );
    }
    log::info!(
        "run {run_id}: injected and proven; observing for {} s",
        plan.duration_secs
    );

    // Observe: the service every second; for a scenario whose hypothesis
    // names the health gate, its flag file every 50 ms.
    let mut gate_closed_ms = None;
    let watch_gate = |closed: &mut Option<u64>| {
        if run.scenario.gate_bound_ms().is_some() && closed.is_none() && run.gate_file.exists() {
            *closed = Some(injected_at.elapsed().as_millis() as u64);
        }
    };
    let mut samples = Vec::new();
    let mut abort = None;
    let until = injected_at + Duration::from_secs(plan.duration_secs);
    let mut next = Instant::now();
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            abort = Some("interrupted (SIGINT/SIGTERM)".to_string());
            break;
        }
        if let Err(why) = step_guard("probing") {
            abort = Some(why);
            break;
        }
        let sample = probe(run, injected_at);
        journal("sample", json!(sample));
        samples.push(sample);
        next += PROBE_EVERY;
        while Instant::now() < next.min(until) && !stop.load(Ordering::SeqCst) {
            watch_gate(&mut gate_closed_ms);
            sleep(Duration::from_millis(50));
        }
    }
    let (verdict, why) = match abort {
        Some(why) => (Verdict::Aborted, why),
        None => {
            let judged = verdict::judge(&samples, run.reaction_bound_ms);
            match run.scenario.gate_bound_ms() {
                Some(bound) => verdict::with_gate(judged, gate_closed_ms, bound),
                None => judged,
            }
        }
    };
    let first_failed = verdict::first_reaction_ms(&samples);
    if first_failed.is_some() || gate_closed_ms.is_some() {
        journal(
            "reaction",
            json!({"first_failed_sample_ms": first_failed, "gate_closed_ms": gate_closed_ms}),
        );
    }
    revert_and_finish(store, &plan, host, verdict, &why)
}

fn probe(run: &RunConfig, since: Instant) -> Sample {
    let at_ms = since.elapsed().as_millis() as u64;
    let request = Request::new(Method::Get, &run.service_url, Duration::from_secs(1));
    match request.send() {
        Ok(response) => Sample {
            at_ms,
            ok: response.status < 500,
            detail: format!("HTTP {}", response.status),
        },
        Err(error) => Sample {
            at_ms,
            ok: false,
            detail: error.to_string(),
        },
    }
}

fn revert_and_finish(
    store: &Store,
    plan: &Plan,
    host: &mut dyn Host,
    verdict: Verdict,
    why: &str,
) -> Result<u8, Error> {
    match revert_one(store, host, &plan.run_id, "okome-chaos run")? {
        Reverted::Now | Reverted::Already => finish(store, plan, verdict, why, host),
        Reverted::Failed(detail) => finish(
            store,
            plan,
            Verdict::RevertFailed,
            &format!("{why}; then the revert failed: {detail}"),
            host,
        ),
    }
}

fn finish(
    store: &Store,
    plan: &Plan,
    verdict: Verdict,
    why: &str,
    host: &mut dyn Host,
) -> Result<u8, Error> {
    store.write_verdict(&plan.run_id, verdict.name())?;
    let summary = format!(
        "run {} {} on {}: {} ({why})",
        plan.run_id,
        plan.scenario.name(),
        plan.node,
        verdict.name()
    );
    let _ = store.journal(
        &plan.run_id,
        "verdict",
        json!({"verdict": verdict.name(), "why": why, "exit": verdict.exit_status()}),
    );
    // One line in the system journal.
    let logger = ["logger", "-t", "okome-chaos", &summary].map(String::from);
    let _ = host.run(&logger);
    println!("okome-chaos: {summary}");
    if verdict == Verdict::RevertFailed {
        eprintln!(
            "okome-chaos: THE NODE MAY STILL CARRY THE FAULT. Run `okome-chaos status`, then \
             `okome-chaos revert {}`; every step is in {}",
            plan.run_id,
            store.run_dir(&plan.run_id).join("plan.json").display()
        );
    }
    Ok(verdict.exit_status())
}

/// Run `check` once.
pub fn check(host: &mut dyn Host, check: &Check) -> Result<(), String> {
    match check {
        Check::UnitActive { unit } => match host::active_state(host, unit)?.as_str() {
            "active" => Ok(()),
            other => Err(format!("{unit} is {other}")),
        },
        Check::UnitInactive { unit } => match host::active_state(host, unit)?.as_str() {
            "active" => Err(format!("{unit} is still active")),
            _ => Ok(()),
        },
        Check::TablePresent => {
            if nft::has_our_table(&host::ruleset(host)?) {
                Ok(())
            } else {
                Err(format!("no table {}", nft::TABLE))
            }
        }
        Check::TableAbsent => {
            if nft::has_our_table(&host::ruleset(host)?) {
                Err(format!("table {} still there", nft::TABLE))
            } else {
                Ok(())
            }
        }
        Check::RulesetRestored { before } => {
            let now = host::ruleset(host)?;
            let comparison = nft::compare(before, &now);
            if comparison.ours_left {
                Err(format!("table {} still there", nft::TABLE))
            } else if !comparison.removed.is_empty() {
                let gone: Vec<String> = comparison.removed.iter().map(|o| o.to_string()).collect();
                Err(format!(
                    "foreign nft objects present before the run are gone or changed (we never touch them: find out who did):\n  {}",
                    gone.join("\n  ")
                ))
            } else {
                Ok(())
            }
        }
        Check::Reachable { addr } => {
            if host.connects(*addr, Duration::from_secs(1)) {
                Ok(())
            } else {
                Err(format!("{addr} does not connect"))
            }
        }
        Check::Lossy { addr } => {
            for _ in 0..30 {
                if !host.connects(*addr, Duration::from_millis(300)) {
                    return Ok(());
                }
            }
            Err(format!("30 of 30 connections to {addr} succeeded"))
        }
        Check::DiskAtLeast { path, percent } => {
            let usage = host
                .disk(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let now = host::used_percent(usage);
            if now >= *percent {
                Ok(())
            } else {
                Err(format!("{} is {now:.2} % full", path.display()))
            }
        }
        Check::Absent { path } => {
            if path.exists() {
                Err(format!("{} still exists", path.display()))
            } else {
                Ok(())
            }
        }
    }
}

/// Run every check until all pass or `within` has passed; each check's
/// last result.
fn settle(host: &mut dyn Host, checks: &[Check], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let results: Vec<Result<(), String>> = checks.iter().map(|c| check(host, c)).collect();
        if results.iter().all(Result::is_ok) || Instant::now() >= deadline {
            return checks
                .iter()
                .zip(results)
                .map(|(c, r)| match r {
                    Ok(()) => json!({"check": c.describe(), "ok": true}),
                    Err(e) => json!({"check": c.describe(), "ok": false, "detail": e}),
                })
                .collect();
        }
        sleep(Duration::from_millis(200));
    }
}

fn first_failure(results: &[Value]) -> Option<String> {
    results.iter().find(|r| r["ok"] == false).map(|r| {
        format!(
            "{}: {}",
            r["check"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        )
    })
}

/// How a revert ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reverted {
    /// Reverted now, baseline proven.
    Now,
    /// It was already reverted: nothing was done.
    Already,
    /// The baseline could not be proven back.
    Failed(String),
}

/// Revert one run from its plan on disk. Idempotent: a reverted run is left
/// alone (its unit may have been stopped on purpose since).
pub fn revert_one(
    store: &Store,
    host: &mut dyn Host,
    id: &str,
    by: &str,
) -> Result<Reverted, Error> {
    if store.info(id).reverted {
        return Ok(Reverted::Already);
    }
    let plan = match store.read_plan(id) {
        Ok(plan) => plan,
        Err(why) => return Ok(Reverted::Failed(why)),
    };
    let lock_path = store.dir.join("revert.lock");
    let started = Instant::now();
    let _lock = loop {
        if let Some(lock) = RunLock::try_acquire(&lock_path)? {
            break lock;
        }
        if started.elapsed() > REVERT_LOCK_WITHIN {
            return Ok(Reverted::Failed("another revert holds the lock".into()));
        }
        sleep(Duration::from_millis(100));
    };
    if store.info(id).reverted {
        return Ok(Reverted::Already);
    }
    let journal = |event: &str, fields: Value| {
        if let Err(error) = store.journal(id, event, fields) {
            log::warn!("journal of run {id}: {error}");
        }
    };
    journal("revert-start", json!({"by": by, "pid": std::process::id()}));
    for file in &plan.files {
        if !file.path.exists() {
            okome_common::fsutil::atomic_write(&file.path, file.contents.as_bytes(), 0o600)?;
        }
    }
    for step in &plan.revert {
        let ran = host.run(step);
        journal("revert-step", ran_json(step, &ran));
    }
    // After a reboot the other tables are rebuilt by their owners (or not
    // yet): only ours can be checked.
    let same_boot = store.boot_marker(id).exists();
    let baseline: Vec<Check> = plan
        .baseline
        .iter()
        .map(|c| match c {
            Check::RulesetRestored { .. } if !same_boot => Check::TableAbsent,
            other => other.clone(),
        })
        .collect();
    if !same_boot {
        journal(
            "rebooted",
            json!({"note": "the node booted since the injection: the firewall is checked for our table only"}),
        );
    }
    let results = settle(host, &baseline, BASELINE_WITHIN);
    journal("post-check", json!({"checks": results}));
    // Others may change the firewall while a run lasts (a fail2ban ban, an
    // unban): on record, never called our residue.
    for check in &baseline {
        if let Check::RulesetRestored { before } = check
            && let Ok(now) = host::ruleset(host)
        {
            let comparison = nft::compare(before, &now);
            if comparison.foreign_changes() {
                let list = |objects: &[nft::Object]| -> Vec<String> {
                    objects.iter().map(|o| o.to_string()).collect()
                };
                log::info!(
                    "run {id}: the firewall was changed by others during the run (not ours): {} added, {} set elements removed",
                    comparison.added.len(),
                    comparison.elements_removed.len()
                );
                journal(
                    "foreign-changes",
                    json!({"note": "made by others during the run (e.g. fail2ban bans and unbans); not okome-chaos's residue",
                           "added": list(&comparison.added),
                           "elements_removed": list(&comparison.elements_removed)}),
                );
            }
        }
    }
    if let Some(failed) = first_failure(&results) {
        log::error!("run {id}: baseline not back: {failed}");
        return Ok(Reverted::Failed(failed));
    }
    store.mark_reverted(id)?;
    let _ = std::fs::remove_file(store.boot_marker(id));
    let ran = host.run(&plan.disarm);
    journal("disarm", ran_json(&plan.disarm, &ran));
    journal("reverted", json!({"by": by}));
    Ok(Reverted::Now)
}

fn revert_command(
    store: &Store,
    host: &mut dyn Host,
    id: Option<&str>,
    by: &str,
) -> Result<u8, Error> {
    let ids: Vec<String> = match id {
        Some(id) => {
            if !store.exists(id) {
                return Err(Error::Refused(format!(
                    "no run {id} in {}",
                    store.dir.display()
                )));
            }
            vec![id.to_string()]
        }
        None => store
            .runs()?
            .into_iter()
            .filter(|r| !r.reverted)
            .map(|r| r.id)
            .collect(),
    };
    if ids.is_empty() {
        println!("okome-chaos: nothing to revert");
        return Ok(0);
    }
    let mut status = 0;
    for id in ids {
        match revert_one(store, host, &id, by)? {
            Reverted::Now => {
                // A run reverted by anyone but itself (timer, recover unit,
                // operator) whose runner is gone gets a verdict here.
                if store.info(&id).verdict.is_none() {
                    store.write_verdict(&id, Verdict::Aborted.name())?;
                    let _ = store.journal(
                        &id,
                        "verdict",
                        json!({"verdict": "aborted", "why": format!("reverted by {by}"), "exit": 2}),
                    );
                }
                let line = format!("run {id} reverted by {by}, baseline back");
                let _ = host.run(&["logger", "-t", "okome-chaos", &line].map(String::from));
                println!("okome-chaos: {line}");
            }
            Reverted::Already => println!("okome-chaos: run {id} was already reverted"),
            Reverted::Failed(why) => {
                eprintln!("okome-chaos: error: run {id}: revert NOT verified: {why}");
                status = 3;
            }
        }
    }
    Ok(status)
}

fn halt(config: &Config, store: &Store, host: &mut dyn Host) -> Result<u8, Error> {
    if okome_common::fsutil::remove_durably(&config.guard)? {
        println!(
            "okome-chaos: guard {} removed: chaos disarmed",
            config.guard.display()
        );
    }
    revert_command(store, host, None, "okome-chaos halt")
}

fn status(config: &Config, store: &Store) -> Result<u8, Error> {
    match guard::load(&config.guard).and_then(|f| guard::parse(&f, now_secs())) {
        Ok(g) => println!(
            "guard: ARMED until {} for {} on {}",
            guard::format_utc(g.expires),
            g.scenarios.join(","),
            g.nodes.join(",")
        ),
        Err(why) => println!("guard: disarmed ({why})"),
    }
    let runs = store.runs()?;
    let mut status = 0;
    // A runner holds the lock from before it asks its peers until its
    // verdict: a peer asking now must see it, plan on disk or not yet.
    if run_in_progress(store)? {
        status = 1;
        println!(
            "IN PROGRESS: an okome-chaos run holds {}",
            store.dir.join(RUN_LOCK).display()
        );
    }
    for info in &runs {
        let (scenario, node) = match &info.plan {
            Ok(p) => (p.scenario.name().to_string(), p.node.clone()),
            Err(_) => ("?".into(), "?".into()),
        };
        if !info.reverted {
            status = 1;
        }
        println!(
            "{}  {scenario:<16} {node:<12} {:<13} {}",
            info.id,
            if info.reverted {
                "reverted"
            } else {
                "NOT REVERTED"
            },
            info.verdict.as_deref().unwrap_or("-")
        );
    }
    if runs.is_empty() {
        println!("no runs");
    }
    Ok(status)
}

/// Whether a runner holds the run lock now.
fn run_in_progress(store: &Store) -> Result<bool, Error> {
    let path = store.dir.join(RUN_LOCK);
    if !path.exists() {
        return Ok(false);
    }
    Ok(RunLock::try_acquire(&path)?.is_none())
}

fn report(store: &Store, id: &str) -> Result<u8, Error> {
    if !store.exists(id) {
        return Err(Error::Refused(format!(
            "no run {id} in {}",
            store.dir.display()
        )));
    }
    let lines = store.read_journal(id)?;
    let start = lines.first().and_then(|l| l["ts"].as_u64()).unwrap_or(0);
    for line in &lines {
        let at = line["ts"].as_u64().unwrap_or(0).saturating_sub(start);
        let mut rest = line.clone();
        if let Value::Object(map) = &mut rest {
            map.remove("ts");
            map.remove("event");
        }
        println!(
            "{:>8.1}s  {:<13} {}",
            at as f64 / 1000.0,
            line["event"].as_str().unwrap_or("?"),
            rest
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Ran;
    use std::net::SocketAddrV4;
    use std::path::Path;

    /// A node whose units and ruleset are plain data: commands edit them.
    struct Fake {
        ran: Vec<Vec<String>>,
        redis_active: bool,
        ruleset: String,
        /// What `okome-chaos status` on a peer answers (exit code, stdout).
        peer: (i32, &'static str),
    }

    impl Host for Fake {
        fn run(&mut self, argv: &[String]) -> Ran {
            self.ran.push(argv.to_vec());
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            let stdout = match words.as_slice() {
                ["systemctl", "start", "redis-server.service"] => {
                    self.redis_active = true;
                    String::new()
                }
                ["systemctl", "show", .., "redis-server.service"] => if self.redis_active {
                    "active\n"
                } else {
                    "inactive\n"
                }
                .to_string(),
                ["nft", "list", "ruleset"] => self.ruleset.clone(),
                ["timeout", .., "sudo -n okome-chaos status"] => {
                    return Ran {
                        code: Some(self.peer.0),
                        stdout: self.peer.1.into(),
                        stderr: String::new(),
                    };
                }
                _ => String::new(),
            };
            Ran {
                code: Some(0),
                stdout,
                stderr: String::new(),
            }
        }
        fn connects(&mut self, _: SocketAddrV4, _: Duration) -> bool {
            true
        }
        fn disk(&mut self, _: &Path) -> std::io::Result<(u64, u64)> {
            Ok((0, 1))
        }
    }

    /// A store under `dir`, its boot marker beside it.
    fn store_in(dir: &Path) -> Store {
        Store {
            dir: dir.join("chaos"),
            boot_dir: dir.join("boot"),
        }
    }

    impl Fake {
        /// A host whose ruleset is `ruleset`, with Redis up or down, and
        /// peers idle.
        fn new(ruleset: &str, redis_active: bool) -> Fake {
            Fake {
                ran: Vec::new(),
                redis_active,
                ruleset: ruleset.into(),
                peer: (0, ""),
            }
        }
    }

    fn stored_run(store: &Store, ruleset: &str) -> Plan {
        store.ensure().unwrap();
        let run_dir = store.run_dir("r1");
        let plan = plan::build(&plan::Inputs {
            run_id: "r1",
            ruleset_before: ruleset,
            ..plan::test_inputs(Scenario::RedisStop, &run_dir)
        });
        store.write_plan(&plan).unwrap();
        // Injected during this boot: the whole ruleset is compared.
        store.mark_boot("r1").unwrap();
        plan
    }

    #[test]
    fn a_revert_runs_once_and_then_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        stored_run(&store, "table inet f2b-table {\n}\n");
        let mut host = Fake::new("table inet f2b-table {\n}\n", false);
        assert_eq!(
            revert_one(&store, &mut host, "r1", "test").unwrap(),
            Reverted::Now
        );
        assert!(host.redis_active);
        assert!(
            host.ran.contains(
                &["systemctl", "start", "redis-server.service"]
                    .map(String::from)
                    .to_vec()
            )
        );
        // The operator stops Redis on purpose afterwards: a second revert
        // must not start it again.
        host.redis_active = false;
        host.ran.clear();
        assert_eq!(
            revert_one(&store, &mut host, "r1", "test").unwrap(),
            Reverted::Already
        );
        assert!(host.ran.is_empty(), "{:?}", host.ran);
        assert!(!host.redis_active);
    }

    fn config(dir: &Path, args: &[&str]) -> Config {
        let state = dir.join("chaos");
        let guard = dir.join("CHAOS_ENABLE");
        let cluster = dir.join("cluster.conf");
        let mut argv = vec![
            "okome-chaos",
            "--node",
            "frontend-a",
            "--state-dir",
            state.to_str().unwrap(),
            "--guard",
            guard.to_str().unwrap(),
        ];
        argv.extend_from_slice(args);
        if argv.contains(&"run") {
            argv.extend(["--cluster-file", cluster.to_str().unwrap()]);
        }
        let matches = crate::command().try_get_matches_from(argv).unwrap();
        Config::from_matches(&matches).unwrap()
    }

    #[test]
    fn a_run_on_a_peer_or_a_peer_that_cannot_be_asked_refuses_this_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cluster.conf"),
            "node frontend-a frontend 10.213.86.20\nnode frontend-b frontend 10.213.86.21\n",
        )
        .unwrap();
        let config = config(dir.path(), &["run", "redis-stop", "--preflight", ""]);
        let Action::Run(run) = &config.action else {
            panic!()
        };
        let store = Store::new(config.state_dir.clone());
        let mut host = Fake {
            ran: Vec::new(),
            redis_active: true,
            ruleset: String::new(),
            peer: (0, "guard: disarmed\nno runs\n"),
        };
        let (_, _, snapshot) = preflight(run, "frontend-a", &mut host, &store).unwrap();
        assert_eq!(snapshot["peers"]["peers"][0]["peer"], "frontend-b");
        let asked: Vec<&Vec<String>> = host.ran.iter().filter(|a| a[0] == "timeout").collect();
        assert_eq!(asked.len(), 1, "only the peer, never this node: {asked:?}");
        for (peer, want) in [
            (
                (
                    1,
                    "IN PROGRESS: an okome-chaos run holds /var/lib/okome/chaos/run.lock\n",
                ),
                "peer frontend-b has a chaos run in progress or unreverted (IN PROGRESS",
            ),
            ((255, ""), "cannot tell peer frontend-b's chaos state"),
        ] {
            host.peer = peer;
            match preflight(run, "frontend-a", &mut host, &store) {
                Err(Error::Refused(why)) => assert!(why.contains(want), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_red_preflight_says_what_is_red() {
        let ran = Ran {
            code: Some(1),
            stdout: "okome-validate: cluster\n  CRIT backend redis   connection refused\n  ok   edge.gate\n  WARN frontend-a edge.cache-disk  room 1994 MiB\n2 failed\n".into(),
            stderr: String::new(),
        };
        assert_eq!(
            why_not_green(&ran),
            "CRIT backend redis   connection refused | WARN frontend-a edge.cache-disk  room 1994 MiB"
        );
        let other = Ran {
            code: Some(1),
            stdout: "a\nb\n".into(),
            stderr: "c\n\nd\n".into(),
        };
        assert_eq!(why_not_green(&other), "b | c | d");
    }

    #[test]
    fn status_reports_a_run_holding_the_lock_before_its_plan_exists() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &["status"]);
        let store = Store::new(config.state_dir.clone());
        store.ensure().unwrap();
        assert_eq!(status(&config, &store).unwrap(), 0);
        let lock = RunLock::try_acquire(&store.dir.join(RUN_LOCK))
            .unwrap()
            .unwrap();
        assert_eq!(status(&config, &store).unwrap(), 1);
        drop(lock);
        assert_eq!(status(&config, &store).unwrap(), 0);
    }

    #[test]
    fn a_ban_fail2ban_adds_during_the_run_is_journaled_not_residue() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let before = "table inet f2b-table {\n\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t}\n}\n";
        stored_run(&store, before);
        let banned = "table inet f2b-table {\n\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t\telements = { 10.213.99.2 }\n\t}\n}\n";
        let mut host = Fake::new(banned, false);
        assert_eq!(
            revert_one(&store, &mut host, "r1", "test").unwrap(),
            Reverted::Now
        );
        assert!(store.info("r1").reverted);
        let journal = store.read_journal("r1").unwrap();
        let foreign = journal
            .iter()
            .find(|l| l["event"] == "foreign-changes")
            .expect("foreign changes on record");
        assert_eq!(
            foreign["added"][0],
            "table inet f2b-table > set addr-set-sshd > element 10.213.99.2"
        );
    }

    #[test]
    fn a_foreign_rule_deleted_during_the_run_fails_the_revert() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let before = "table ip site {\n\tchain input {\n\t\tip saddr 10.0.0.1 drop\n\t}\n}\n";
        stored_run(&store, before);
        let mut host = Fake::new("table ip site {\n\tchain input {\n\t}\n}\n", true);
        match revert_one(&store, &mut host, "r1", "test").unwrap() {
            Reverted::Failed(why) => assert!(why.contains("ip saddr 10.0.0.1 drop"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_foreign_change_to_the_ruleset_fails_the_revert_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        stored_run(&store, "table inet f2b-table {\n}\n");
        // Our table left behind (a revert step that did nothing): the
        // baseline is not back, the run stays unreverted.
        let mut host = Fake::new("table inet okome_chaos {\n}\n", true);
        match revert_one(&store, &mut host, "r1", "test").unwrap() {
            Reverted::Failed(why) => assert!(why.contains("okome_chaos"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!store.info("r1").reverted);
    }
}

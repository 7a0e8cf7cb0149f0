//! One run, start to finish: lock, gate, plan by role, publish, warm,
//! account, persist, report, each a named step of [`run_with`].
//!
//! Kept apart from `lib.rs` so the seams are explicit: the clock (`now`) and
//! the interface-address source ([`crate::vip::LocalAddrs`]) are passed in,
//! which is how tests make a node "hold" or "not hold" the VIP.

use crate::config::Config;
use crate::ingest::Ingest;
use crate::plan_store::{self, SharedPlan};
use crate::rank::{self, Ranked};
use crate::report::{self, LogInfo, Report, Summary};
use crate::state::{Quarantine, State};
use crate::tail;
use crate::vip::{self, LocalAddrs};
use crate::warm::{self, Job, Outcome};
use crate::{EXIT_EMERGENCY_STOP, Error, VERSION};
use okome_common::exit;
use okome_common::fsutil::RunLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Timeout for each Redis operation.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's part in a VIP pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No VIP configured.
    Single,
    /// Holds the VIP: plans from its log, publishes.
    Active,
    /// Does not hold the VIP: warms from the active node's plan.
    Standby,
    /// Could not tell (e.g. `ip` failed): plans from its own log, publishes nothing.
    Unknown(String),
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Active => "active",
            Role::Standby => "standby",
            Role::Unknown(_) => "unknown",
        }
    }
}

/// Which part this node plays, from the configured VIP and the addresses
/// on its interfaces. A failing address source is not fatal: the node then
/// warms from its own log and publishes nothing.
pub fn detect_role(vip: Option<std::net::IpAddr>, addrs: &dyn LocalAddrs) -> Role {
    match vip {
        None => Role::Single,
        Some(ip) => match vip::holds(addrs, ip) {
            Ok(true) => Role::Active,
            Ok(false) => Role::Standby,
            Err(e) => {
                log::warn!(
                    "cannot tell whether this node holds VIP {ip}: {e}; warming from the local log"
                );
                Role::Unknown(e.to_string())
            }
        },
    }
}

/// Current unix time.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Run with the real clock and the real interface list; returns the exit status.
pub fn run(config: &Config) -> Result<u8, Error> {
    run_with(config, &vip::IpCommand, now_unix())
}

/// Who publishes the shared plan (`unknown` if the node has no name).
fn host_name() -> String {
    okome_common::host::host_name().unwrap_or_else(|| "unknown".into())
}

/// Plan from the log: read the new tail, count, prune, rank.
fn plan_from_log(
    config: &Config,
    state: &mut State,
    now: i64,
) -> Result<(Vec<Ranked>, LogInfo), Error> {
    let tail = tail::plan(&config.log, state.log.as_ref(), config.tail_bytes)
        .map_err(|e| Error::Log(config.log.clone(), e))?;
    let mut ingest = Ingest::new(&config.log_format, &config.monitors);
    for segment in &tail.segments {
        tail::read_lines(segment, |line, cut| {
            ingest.line(line, cut, &mut state.paths)
        })
        .map_err(|e| Error::Log(segment.path.clone(), e))?;
    }
    if ingest.counts.lines > 0 {
        rank::prune(&mut state.paths, now.max(ingest.counts.newest));
    }
    // Lines, and not one fits the format: the log is in another format, and
    // "nothing to warm" would hide it run after run.
    if ingest.counts.lines > 0 && ingest.counts.malformed == ingest.counts.lines {
        log::warn!(
            "{}: {}",
            config.log.display(),
            crate::ingest::wrong_format(
                &config.log_format,
                ingest.counts.lines,
                ingest.first_line.as_deref().unwrap_or_default()
            )
        );
    }
    let info = LogInfo {
        start: tail.start,
        bytes: tail.bytes(),
        counts: ingest.counts,
    };
    state.log = Some(tail.pos);
    let plan = rank::rank(
        &state.paths,
        &state.quarantine,
        now,
        config.strategy,
        config.top_n,
    );
    Ok((plan, info))
}

/// Plan from the active node's shared list, every path re-validated.
fn plan_from_shared(shared: &SharedPlan, state: &State, top_n: usize) -> Vec<Ranked> {
    let mut plan = Vec::new();
    let mut taken = 0;
    for (index, raw) in shared.paths.iter().enumerate() {
        if taken >= top_n {
            break;
        }
        let path = match crate::pathsafe::revalidate(raw) {
            Ok(path) => path,
            Err(why) => {
                log::warn!(
                    "shared plan from {}: refusing path {raw:?} ({why})",
                    shared.node
                );
                continue;
            }
        };
        if plan.iter().any(|r: &Ranked| r.path == path) {
            continue;
        }
        let quarantined = state
            .quarantine
            .get(&path)
            .map(|q| format!("quarantined until {}: {}", q.until, q.reason));
        taken += usize::from(quarantined.is_none());
        plan.push(Ranked {
            depth: rank::depth(&path),
            path,
            score: (shared.paths.len() - index) as f64,
            frequency: 0.0,
            recent: 0.0,
            growth: 0.0,
            bonus: 1.0,
            age: 0,
            why: format!(
                "rank {} in {}'s plan of {}",
                index + 1,
                shared.node,
                shared.generated
            ),
            quarantined,
        });
    }
    plan
}

/// Run with an explicit address source and clock: the steps below, in
/// order. Each is one function so the trip reads top to bottom: lock,
/// gate, plan (its source chosen by the node's role), publish, warm,
/// account, persist, report.
pub fn run_with(config: &Config, addrs: &dyn LocalAddrs, now: i64) -> Result<u8, Error> {
    let started = Instant::now();
    let _lock = match lock(config)? {
        Lock::Busy => return Ok(exit::OK),
        held_or_dry => held_or_dry,
    };
    let mut state = State::load(&config.state_path);
    state.expire_quarantine(now);
    if !config.dry_run && config.gate_file.exists() {
        return skip_gated(config, &mut state, started, now);
    }

    let role = detect_role(config.vip, addrs);
    let (plan, log_info, source) = plan_by_role(config, &role, &mut state, now)?;
    let mut report = Report {
        agent: format!("okome-prewarm/{VERSION}"),
        strategy: config.strategy.to_string(),
        role: role.name().to_string(),
        source,
        log: log_info,
        plan,
        results: Vec::new(),
        summary: Summary::default(),
    };
    if config.dry_run {
        return print_dry_run(config, &report);
    }

    let jobs = jobs(config, &report.plan, &state, now);
    let mut summary = Summary {
        planned: jobs.len(),
        skipped: report.plan.len() - jobs.len(),
        published: publish(config, &role, &jobs, &mut state, now),
        ..Summary::default()
    };
    if !jobs.is_empty() {
        let pool = warm(config, &jobs, started)?;
        summary.pool = pool.counters;
        report.results = pool.results;
    }
    account(config, &mut state, &report.results, &mut summary, now);
    summary.duration_seconds = started.elapsed().as_secs_f64();
    persist(config, &state, &summary, now)?;
    report.summary = summary;
    finish(config, &report)
}

/// The run lock, or why there is none.
enum Lock {
    /// This run holds it until dropped.
    Held(#[allow(dead_code)] RunLock),
    /// A dry run changes nothing and takes no lock.
    DryRun,
    /// Another run holds it: nothing to do.
    Busy,
}

/// Step 1: take the run lock (a dry run needs none).
fn lock(config: &Config) -> Result<Lock, Error> {
    if config.dry_run {
        return Ok(Lock::DryRun);
    }
    if let Some(dir) = config.lock_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
    }
    match RunLock::try_acquire(&config.lock_path).map_err(|e| Error::Internal(e.to_string()))? {
        Some(lock) => Ok(Lock::Held(lock)),
        None => {
            log::info!(
                "another run holds {}; nothing to do",
                config.lock_path.display()
            );
            Ok(Lock::Busy)
        }
    }
}

/// Step 2, when the health gate is closed: the orchestrator is down, so
/// every warm request would get the gate's 503, be retried for a minute and
/// end in an emergency stop. Send nothing; say so once; count it.
fn skip_gated(config: &Config, state: &mut State, started: Instant, now: i64) -> Result<u8, Error> {
    log::info!(
        "health gate closed ({} exists: the orchestrator is down); skipping this run, nothing sent",
        config.gate_file.display()
    );
    state.totals.gate_skips += 1;
    state
        .save(&config.state_path)
        .map_err(|e| Error::Internal(format!("state: {e}")))?;
    let summary = Summary {
        duration_seconds: started.elapsed().as_secs_f64(),
        ..Summary::default()
    };
    write_metrics(config, &summary, state, now);
    if config.json {
        println!(
            "{}",
            serde_json::json!({
                "agent": format!("okome-prewarm/{VERSION}"),
                "skipped": "health gate closed",
                "gate_file": config.gate_file.display().to_string(),
            })
        );
    }
    Ok(exit::OK)
}

/// Step 3: the plan, from the active node's shared list when this node is
/// the standby and one is there, else from the local log. Returns the plan,
/// the log reading (log plans only) and the source's name for the report.
fn plan_by_role(
    config: &Config,
    role: &Role,
    state: &mut State,
    now: i64,
) -> Result<(Vec<Ranked>, Option<LogInfo>, String), Error> {
    if *role == Role::Standby
        && let Some(url) = &config.redis
    {
        match plan_store::fetch(url, &config.plan_key, REDIS_TIMEOUT) {
            Ok(Some(mut shared)) => {
                // The node name comes from Redis: anyone who can write the
                // key chooses it. Escaped once here, it can never inject a
                // journal line in the warnings, the summary or the dry run.
                shared.node = okome_common::text::escape(shared.node.as_bytes(), 64);
                log_redis(state, now, Ok(()));
                let plan = plan_from_shared(&shared, state, config.top_n);
                return Ok((plan, None, format!("shared:{}", shared.node)));
            }
            Ok(None) => {
                log_redis(state, now, Ok(()));
                log::warn!(
                    "standby: no shared plan in redis key {}; warming from the local log",
                    config.plan_key
                )
            }
            Err(e) => log_redis(
                state,
                now,
                Err(format!(
                    "standby: cannot fetch the shared plan ({e}); warming from the local log"
                )),
            ),
        }
    }
    let (plan, info) = plan_from_log(config, state, now)?;
    Ok((plan, Some(info), "log".to_string()))
}

/// A dry run ends here: the plan, as text or JSON.
fn print_dry_run(config: &Config, report: &Report) -> Result<u8, Error> {
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        print!("{}", report::dry_run_text(report));
    }
    Ok(exit::OK)
}

/// The plan's paths that are not quarantined, as warm jobs (with the
/// refresh bypass where `--refresh` asks and the entry is old enough).
fn jobs(config: &Config, plan: &[Ranked], state: &State, now: i64) -> Vec<Job> {
    plan.iter()
        .filter(|r| r.quarantined.is_none())
        .map(|r| Job {
            path: r.path.clone(),
            refresh: config.refresh
                && now - state.paths.get(&r.path).map_or(0, |s| s.stored)
                    >= config.refresh_after_secs,
        })
        .collect()
}

/// Step 4: the active node shares what it is about to warm. `None` when
/// that is not this node's job, else whether it worked (a failure is a
/// warning and exit 1, never a stop: the standby then plans on its own).
fn publish(
    config: &Config,
    role: &Role,
    jobs: &[Job],
    state: &mut State,
    now: i64,
) -> Option<bool> {
    let url = config.redis.as_ref().filter(|_| *role == Role::Active)?;
    let plan = SharedPlan {
        version: 1,
        node: host_name(),
        generated: now,
        strategy: config.strategy.to_string(),
        paths: jobs.iter().map(|j| j.path.clone()).collect(),
    };
    match plan_store::publish(
        url,
        &config.plan_key,
        &plan,
        config.plan_ttl_secs,
        REDIS_TIMEOUT,
    ) {
        Ok(()) => {
            log_redis(state, now, Ok(()));
            Some(true)
        }
        Err(e) => {
            log_redis(
                state,
                now,
                Err(format!(
                    "cannot publish the plan to redis ({e}): the standby will warm from its own log"
                )),
            );
            Some(false)
        }
    }
}

/// Logs how a run's Redis call went, once per outage ([`redis_note`]).
fn log_redis(state: &mut State, now: i64, outcome: Result<(), String>) {
    if let Some((level, line)) = redis_note(state, now, outcome) {
        log::log!(level, "{line}");
    }
}

/// What to log of a Redis call, once per outage like the probe's heartbeat:
/// the first failing run warns, later ones say it only at debug level (a
/// Redis outage must not fill the journal every two minutes), and the first
/// run that reaches Redis again says how long it was gone.
fn redis_note(
    state: &mut State,
    now: i64,
    outcome: Result<(), String>,
) -> Option<(log::Level, String)> {
    match (outcome, state.redis_down_since) {
        (Ok(()), None) => None,
        (Ok(()), Some(since)) => {
            state.redis_down_since = None;
            Some((
                log::Level::Info,
                format!("redis reachable again after {} s", (now - since).max(0)),
            ))
        }
        (Err(line), None) => {
            state.redis_down_since = Some(now);
            Some((
                log::Level::Warn,
                format!("{line} (logged once until redis is back)"),
            ))
        }
        (Err(line), Some(_)) => Some((log::Level::Debug, line)),
    }
}

/// Step 5: warm the jobs through the pool, within what is left of the run
/// deadline (planning and Redis count against it).
fn warm(config: &Config, jobs: &[Job], started: Instant) -> Result<warm::PoolRun, Error> {
    let addr = config
        .target
        .resolve()
        .map_err(|e| Error::Config(format!("warm target {}: {e}", config.target.url.host)))?;
    let mut settings = config.warm.clone();
    settings.deadline = settings
        .deadline
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    Ok(warm::run(addr, &config.target, jobs, &settings))
}

/// Step 6: count the outcomes, remember each path (stored when, MISS
/// streaks, quarantine), decide the exit status and add the run to the
/// totals.
fn account(
    config: &Config,
    state: &mut State,
    results: &[warm::JobResult],
    summary: &mut Summary,
    now: i64,
) {
    for result in results {
        match result.outcome {
            Outcome::Warmed => summary.warmed += 1,
            Outcome::AlreadyHot => summary.already_hot += 1,
            Outcome::Uncacheable => summary.uncacheable += 1,
            Outcome::Failed => summary.failed += 1,
            Outcome::Skipped => summary.skipped += 1,
        }
        remember(state, result, config, now, &mut summary.quarantined);
    }
    summary.exit_status = if summary.pool.emergency_stop.is_some() {
        EXIT_EMERGENCY_STOP
    } else if summary.failed > 0 || summary.published == Some(false) {
        exit::PROBLEM
    } else {
        exit::OK
    };
    let t = &mut state.totals;
    t.runs += 1;
    for r in results.iter().filter(|r| r.outcome != Outcome::Skipped) {
        t.jobs += 1;
        if r.outcome == Outcome::Failed {
            t.failure += 1;
        } else {
            t.success += 1;
        }
    }
    t.origin_requests += summary.pool.origin_requests;
    t.rate_limit_waits += summary.pool.rate_limit_waits;
    t.emergency_stops += u64::from(summary.pool.emergency_stop.is_some());
}

/// Step 7: save the state and write the textfile.
fn persist(config: &Config, state: &State, summary: &Summary, now: i64) -> Result<(), Error> {
    state
        .save(&config.state_path)
        .map_err(|e| Error::Internal(format!("state: {e}")))?;
    write_metrics(config, summary, state, now);
    Ok(())
}

/// Step 8: one log line for the run (info, or warning when it did not end
/// well), the JSON report if asked, and the exit status.
fn finish(config: &Config, report: &Report) -> Result<u8, Error> {
    let line = report::summary_line(report);
    match report.summary.exit_status {
        0 => log::info!("{line}"),
        _ => log::warn!("{line}"),
    }
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| Error::Internal(e.to_string()))?
        );
    }
    Ok(report.summary.exit_status)
}

/// Write the textfile; a failure is a warning (metrics never stop a run).
fn write_metrics(config: &Config, summary: &Summary, state: &State, now: i64) {
    if let Some(path) = &config.metrics_path {
        let metrics = report::metrics(summary, &state.totals, state.quarantine.len(), now);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| metrics.write_textfile(path));
        if let Err(e) = written {
            log::warn!("metrics textfile {}: {e}", path.display());
        }
    }
}

/// Fold one result into the per-path memory: when it was stored, and the
/// MISS streak that leads to a (time-limited) quarantine.
fn remember(
    state: &mut State,
    result: &warm::JobResult,
    config: &Config,
    now: i64,
    newly: &mut usize,
) {
    let cache = result.cache_status.as_deref();
    let stats = state.paths.entry(result.path.clone()).or_default();
    match result.outcome {
        Outcome::AlreadyHot => stats.misses = 0,
        Outcome::Warmed => {
            stats.stored = now;
            // EXPIRED/REVALIDATED/refresh prove the entry was cacheable; a
            // plain MISS run after run means nginx never keeps it.
            if cache == Some("MISS") {
                stats.misses += 1;
            } else {
                stats.misses = 0;
            }
        }
        Outcome::Uncacheable => stats.misses += 1,
        Outcome::Failed | Outcome::Skipped => return,
    }
    if stats.misses >= config.quarantine_after {
        let hint = result
            .uncacheable_hint
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        let reason = format!(
            "{} on {} runs in a row{hint}",
            cache.unwrap_or("no X-Cache-Status"),
            stats.misses
        );
        log::info!(
            "quarantining {} for {} s: {reason}",
            result.path,
            config.quarantine_secs
        );
        stats.misses = 0;
        state.quarantine.insert(
            result.path.clone(),
            Quarantine {
                until: now + config.quarantine_secs,
                reason,
            },
        );
        *newly += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vip::Fixed;

    struct Broken;
    impl LocalAddrs for Broken {
        fn addrs(&self) -> std::io::Result<Vec<std::net::IpAddr>> {
            Err(std::io::Error::other("ip: not found"))
        }
    }

    #[test]
    fn a_redis_outage_is_logged_when_it_starts_and_when_it_ends() {
        let mut state = State::new();
        let level = |note: Option<(log::Level, String)>| note.map(|(level, _)| level);
        assert_eq!(level(redis_note(&mut state, 100, Ok(()))), None);
        let first = redis_note(&mut state, 100, Err("cannot publish".into()));
        assert_eq!(level(first.clone()), Some(log::Level::Warn));
        assert!(first.unwrap().1.starts_with("cannot publish"));
        for now in [220, 340, 460] {
            assert_eq!(
                level(redis_note(&mut state, now, Err("cannot publish".into()))),
                Some(log::Level::Debug),
                "run at {now} of the same outage"
            );
        }
        let back = redis_note(&mut state, 580, Ok(()));
        assert_eq!(
            back,
            Some((log::Level::Info, "redis reachable again after 480 s".into()))
        );
        assert_eq!(state.redis_down_since, None);
        assert_eq!(level(redis_note(&mut state, 700, Ok(()))), None);
        // A second outage warns again.
        assert_eq!(
            level(redis_note(&mut state, 820, Err("x".into()))),
            Some(log::Level::Warn)
        );
    }

    #[test]
    fn a_shared_plan_is_revalidated_deduplicated_and_capped() {
        let shared = SharedPlan {
            version: 1,
            node: "frontend-a".into(),
            generated: 1,
            strategy: "priority".into(),
            paths: [
                "/assets/a.js",
                "http://evil.example/assets/x",
                "//evil.example/x",
                "/assets/../api/x",
                "/api/v1/chat",
                "/assets/%41.js",
                "/assets/a\r\nHost: evil",
                "/assets/a.js",
                "/ui-schema/q",
                "/static/b.css",
                "/static/c.css",
            ]
            .map(String::from)
            .to_vec(),
        };
        let mut state = State::new();
        state.quarantine.insert(
            "/ui-schema/q".into(),
            Quarantine {
                until: i64::MAX,
                reason: "test".into(),
            },
        );
        let plan = plan_from_shared(&shared, &state, 2);
        let got: Vec<(&str, bool)> = plan
            .iter()
            .map(|r| (r.path.as_str(), r.quarantined.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("/assets/a.js", false),
                ("/ui-schema/q", true),
                ("/static/b.css", false)
            ]
        );
    }

    #[test]
    fn the_role_follows_the_vip_through_the_address_seam() {
        let vip: std::net::IpAddr = "10.213.0.18".parse().unwrap();
        let holder = Fixed(vec!["127.0.0.1".parse().unwrap(), vip]);
        let other = Fixed(vec![
            "127.0.0.1".parse().unwrap(),
            "10.213.0.21".parse().unwrap(),
        ]);
        assert_eq!(detect_role(None, &holder), Role::Single);
        assert_eq!(detect_role(Some(vip), &holder), Role::Active);
        assert_eq!(detect_role(Some(vip), &other), Role::Standby);
        assert!(matches!(detect_role(Some(vip), &Broken), Role::Unknown(_)));
    }
}

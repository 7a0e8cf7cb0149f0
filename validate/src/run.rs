//! Running the local checks: pick the ones this node's role and `--only`
//! select, honour dependencies (NOT_RUN, never a cascade), retry within the
//! per-check budget, apply waivers, and with `--wait` go round again on what
//! is still red until the deadline; also gather the facts `--cluster` needs
//! from each node (VIP held, who answers through the VIP, fingerprints).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cli::Config;
use crate::judge::{self, Level, Verdict};
use crate::model::{CATALOGUE, CheckDef, Finding, Role, Severity, Status};
use crate::probe::{self, Internal};

/// What a node tells `--cluster` besides its findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Whether `ip addr` lists the VIP here (frontends; None when unknown).
    pub holds_vip: Option<bool>,
    /// `X-OKOME-Node` of a GET through the VIP from here, or the error.
    pub vip_answer: Option<Result<String, String>>,
    /// Package versions and config checksums (frontends).
    pub fingerprints: BTreeMap<String, String>,
    /// How much of the published prewarm plan this node's cache holds.
    pub warmth: Option<judge::Warmth>,
}

/// One node's results.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Findings, in catalogue order.
    pub findings: Vec<Finding>,
    /// Facts for the cluster invariants.
    pub facts: Facts,
}

/// Whether `check` is selected by `--only`.
pub fn selected(config: &Config, check: &CheckDef) -> bool {
    config.only.is_empty() || config.only.contains(&check.id)
}

/// The checks a node of `role` runs under this config, in order.
pub fn plan(config: &Config, role: Role) -> Vec<&'static CheckDef> {
    CATALOGUE
        .iter()
        .filter(|c| c.applies.to(role) && selected(config, c))
        .collect()
}

/// Results the checks share within one round (the orchestrator is asked
/// once: edge.gate waits for edge.orchestrator's answer, or asks itself when
/// it runs first).
/// And every unit check's first attempt reads one `systemctl show` of all
/// the planned units.
#[derive(Default)]
struct Memo {
    orchestrator: std::sync::Mutex<Option<Result<u16, String>>>,
    /// The planned units, and their states once asked.
    units: Vec<String>,
    unit_states: std::sync::Mutex<Option<Option<Vec<judge::UnitState>>>>,
}

/// The unit a `unit.*` check reads (`unit.nginx` → `nginx.service`).
fn unit_of(id: &str) -> Option<String> {
    let unit = id.strip_prefix("unit.")?;
    Some(if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    })
}

impl Memo {
    fn new(plan: &[&CheckDef]) -> Memo {
        Memo {
            units: plan.iter().filter_map(|c| unit_of(c.id)).collect(),
            ..Memo::default()
        }
    }

    /// `unit`'s state from the one call for every planned unit.
    fn unit_state(
        &self,
        config: &Config,
        unit: &str,
        deadline: Duration,
    ) -> Option<judge::UnitState> {
        let mut states = self
            .unit_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let states =
            states.get_or_insert_with(|| probe::units_state(config, &self.units, deadline));
        let at = self.units.iter().position(|u| u == unit)?;
        states.as_ref()?.get(at).cloned()
    }
}

fn skip(why: &str) -> Verdict {
    Verdict {
        level: Level::Skip(why.to_string()),
        observed: "-".into(),
        expected: "-".into(),
    }
}

/// Run one attempt of `check`.
/// `first`: the check's first attempt of the round (a retry asks afresh).
fn attempt(
    config: &Config,
    check: &CheckDef,
    memo: &Memo,
    first: bool,
) -> Result<Verdict, Internal> {
    let deadline = check.deadline;
    if let Some(unit) = unit_of(check.id) {
        if first && let Some(state) = memo.unit_state(config, &unit, deadline) {
            return Ok(judge::judge_unit(&unit, &state, check.severity));
        }
        return probe::unit(config, &unit, check.severity, deadline);
    }
    let th = &config.thresholds;
    Ok(match check.id {
        "node.memory" => judge::judge_memory(&probe::meminfo(config)?, th),
        "node.swap" => judge::judge_swap(&probe::meminfo(config)?, th),
        "node.disk" => {
            let root = okome_common::root::under(&config.root, std::path::Path::new("/"));
            judge::judge_disk("/", &probe::fs_use(&root)?, th)
        }
        "node.sd-wear" => probe::sd_wear(config)?,
        "node.throttle" => probe::throttle(config, deadline)?,
        "edge.nginx-config" => probe::nginx_t(config, deadline)?,
        "edge.cache-disk" => probe::cache_disk(config, deadline)?,
        "edge.headers" => {
            let answer = probe::edge_get(&config.address, config.http_port, &config.host, deadline);
            let own = config
                .conf
                .node(&config.self_name)
                .map_or(config.self_name.as_str(), |n| n.header_name());
            judge::judge_edge_answer(&answer, own)
        }
        "edge.orchestrator" | "edge.gate" => {
            let Some(url) = &config.orchestrator else {
                return Err(Internal(
                    "no orchestrator URL (cluster file or --orchestrator)".into(),
                ));
            };
            let health = {
                let mut asked = memo
                    .orchestrator
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if asked.is_none() || check.id == "edge.orchestrator" {
                    *asked = Some(probe::orchestrator(url, deadline));
                }
                asked.clone().expect("just set")
            };
            if check.id == "edge.orchestrator" {
                judge::judge_orchestrator(&health)
            } else {
                let healthy = matches!(health, Ok(s) if (200..300).contains(&s));
                let (closed, pinned) = probe::gate_files(config);
                judge::judge_gate(closed, pinned, healthy)
            }
        }
        "edge.probe-fresh" => judge::judge_fresh(
            probe::textfile(config, "okome-health-probe.prom").as_deref(),
            "okome_health_probe_last_run_timestamp_seconds",
            probe::now(),
            config.probe_max_age.as_secs_f64(),
            check.severity,
        ),
        "edge.prewarm-fresh" => judge::judge_fresh(
            probe::textfile(config, "okome-prewarm.prom").as_deref(),
            "okome_prewarm_last_run_timestamp_seconds",
            probe::now(),
            config.prewarm_max_age.as_secs_f64(),
            check.severity,
        ),
        "edge.vrrp" => match &config.conf.vip {
            None => skip("no vip in the cluster file"),
            Some(vip) => {
                let holds = probe::holds_vip(config, vip, deadline)?;
                let state = probe::keepalived_state(config, deadline);
                // Asked only for a FAULT: is it the local nginx (expected)
                // or the track script itself?
                let nginx = if state.as_deref() == Some("FAULT") {
                    memo.unit_state(config, "nginx.service", deadline)
                        .or_else(|| {
                            probe::units_state(config, &["nginx.service".into()], deadline)?.pop()
                        })
                        .map(|s| s.active == "active" && s.sub == "running")
                } else {
                    None
                };
                judge::judge_vrrp(holds, state.as_deref(), nginx)
            }
        },
        "redis.ping" => match &config.redis_url {
            None => return Err(Internal("no --redis-url (OKOME_VALIDATE_REDIS_URL)".into())),
            Some(url) => {
                let mut v = judge::judge_redis_ping(&probe::redis_ping(url, deadline));
                v.observed = format!("{}: {}", probe::redis_where(url), v.observed);
                v
            }
        },
        "redis.maxmemory" | "redis.policy" | "redis.persistence" | "redis.default-user" => {
            let Some(url) = &config.redis_admin_url else {
                return Ok(skip("no --redis-admin-url (operator user) configured"));
            };
            let settings = match probe::redis_settings(url, deadline) {
                Ok(s) => s,
                Err(e) => {
                    return Ok(Verdict {
                        level: Level::Fail(Severity::Crit),
                        observed: format!("{}: {e}", probe::redis_where(url)),
                        expected: "CONFIG GET and ACL GETUSER answered".into(),
                    });
                }
            };
            let get = |k: &str| settings.config.get(k).cloned().unwrap_or_default();
            match check.id {
                "redis.maxmemory" => {
                    let max = get("maxmemory").parse().unwrap_or(0);
                    judge::judge_maxmemory(max, probe::ram_bytes(config)?)
                }
                "redis.policy" => judge::judge_policy(&get("maxmemory-policy")),
                "redis.persistence" => judge::judge_persistence(&get("save"), &get("appendonly")),
                _ => judge::judge_default_user(settings.default_flags.as_deref()),
            }
        }
        "redis.kernel" => probe::kernel(config),
        other => return Err(Internal(format!("{other} is not a local check"))),
    })
}

/// A verdict (or our own error) as a status, waivers applied.
pub fn status_of(
    config: &Config,
    node: &str,
    id: &str,
    verdict: &Result<Verdict, Internal>,
) -> (Status, String, String) {
    match verdict {
        Err(Internal(e)) => (Status::Error, e.clone(), String::new()),
        Ok(v) => {
            let status = match &v.level {
                Level::Pass => Status::Pass,
                Level::Skip(why) => Status::Skipped(why.clone()),
                Level::Fail(sev) => Status::Fail(*sev),
            };
            let mut observed = v.observed.clone();
            if let Level::Skip(why) = &v.level {
                observed = why.clone();
            }
            let status = match status {
                Status::Fail(sev) => match waiver_for(config, id, node) {
                    Some(w) => {
                        observed = format!("{observed} [waived until {}: {}]", w.until, w.reason);
                        Status::Waived(sev)
                    }
                    None => Status::Fail(sev),
                },
                other => other,
            };
            (status, observed, v.expected.clone())
        }
    }
}

fn today() -> i64 {
    (probe::now() / 86_400.0).floor() as i64
}

fn waiver_for<'a>(
    config: &'a Config,
    id: &str,
    node: &str,
) -> Option<&'a crate::cluster_conf::Waiver> {
    config
        .conf
        .waivers
        .iter()
        .find(|w| w.covers(id, node, today()))
}

/// Run every planned check once (with its retries): every check whose
/// dependencies are settled at once, each on its own thread (they wait on
/// programs, sockets and the disk, not the CPU: the round takes as long as
/// its slowest check, not their sum), then the checks that depend on them.
/// Findings stay in catalogue order.
fn round(config: &Config, role: Role, previous: Option<&[Finding]>) -> Vec<Finding> {
    let plan = plan(config, role);
    let memo = Memo::new(&plan);
    let mut done: Vec<Option<Finding>> = vec![None; plan.len()];
    loop {
        // A dependency outside the plan (--only) does not hold a check back.
        let settled = |done: &[Option<Finding>], dep: &str| {
            plan.iter()
                .position(|c| c.id == dep)
                .is_none_or(|at| done[at].is_some())
        };
        let ready: Vec<usize> = (0..plan.len())
            .filter(|&i| done[i].is_none() && plan[i].depends.iter().all(|d| settled(&done, d)))
            .collect();
        if ready.is_empty() {
            break;
        }
        let mut to_run = Vec::new();
        for i in ready {
            let check = plan[i];
            let before = previous.and_then(|p| p.iter().find(|f| f.id == check.id));
            // --wait: a check already good stays as it was.
            if let Some(before) = before
                && before.status.is_good()
            {
                done[i] = Some(before.clone());
                continue;
            }
            let attempts_before = before.map_or(0, |f| f.attempts);
            let blocked = check.depends.iter().find_map(|dep| {
                done.iter()
                    .flatten()
                    .find(|f| f.id == *dep && !f.status.is_good())
                    .map(|f| format!("{dep} did not pass ({})", f.status.word()))
            });
            if let Some(reason) = blocked {
                done[i] = Some(Finding {
                    attempts: attempts_before,
                    ..Finding::not_run(check.id, &config.self_name, reason)
                });
                continue;
            }
            to_run.push((i, attempts_before));
        }
        let memo = &memo;
        let results: Vec<(usize, Finding)> = std::thread::scope(|scope| {
            let jobs: Vec<_> = to_run
                .iter()
                .map(|&(i, attempts_before)| {
                    let check = plan[i];
                    scope.spawn(move || (i, run_check(config, check, attempts_before, memo)))
                })
                .collect();
            jobs.into_iter()
                .map(|job| job.join().expect("a check panicked"))
                .collect()
        });
        for (i, finding) in results {
            done[i] = Some(finding);
        }
    }
    done.into_iter().flatten().collect()
}

/// One check with its retries.
fn run_check(config: &Config, check: &CheckDef, attempts_before: u32, memo: &Memo) -> Finding {
    let mut tries = 0;
    let (status, observed, expected, elapsed) = loop {
        tries += 1;
        let start = Instant::now();
        let verdict = attempt(config, check, memo, tries == 1);
        let elapsed = start.elapsed();
        let (status, observed, expected) = status_of(config, &config.self_name, check.id, &verdict);
        let retry = matches!(status, Status::Fail(_)) && tries <= u32::from(check.retries);
        if !retry {
            break (status, observed, expected, elapsed);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Finding {
        id: check.id,
        node: config.self_name.clone(),
        status,
        observed,
        expected,
        attempts: attempts_before + tries,
        elapsed,
    }
}

/// Run this node's checks (with `--wait`, until green or the deadline); the
/// facts for `--cluster` are gathered beside the first round, and again
/// after the last when `--wait` went round more than once (they must say
/// what holds at the end).
pub fn run_local(config: &Config) -> NodeReport {
    let role = config.role;
    let start = Instant::now();
    let (mut findings, mut facts) = std::thread::scope(|scope| {
        let facts = scope.spawn(|| facts(config, role));
        let findings = round(config, role, None);
        (findings, facts.join().expect("gathering facts panicked"))
    });
    let mut rounds = 1;
    if let Some(wait) = config.wait {
        while findings.iter().any(|f| !f.status.is_good()) && start.elapsed() < wait {
            std::thread::sleep(Duration::from_secs(2).min(wait.saturating_sub(start.elapsed())));
            findings = round(config, role, Some(&findings));
            rounds += 1;
        }
    }
    if rounds > 1 {
        facts = self::facts(config, role);
    }
    NodeReport {
        name: config.self_name.clone(),
        role,
        findings,
        facts,
    }
}

/// The facts a frontend reports for the cluster invariants.
pub fn facts(config: &Config, role: Role) -> Facts {
    let mut facts = Facts::default();
    if role != Role::Frontend {
        return facts;
    }
    let deadline = Duration::from_secs(2);
    if let Some(vip) = &config.conf.vip {
        facts.holds_vip = probe::holds_vip(config, vip, deadline).ok();
        facts.vip_answer = Some(
            probe::edge_get(vip, config.http_port, &config.host, deadline).and_then(|a| {
                a.node
                    .ok_or_else(|| format!("HTTP {} without X-OKOME-Node", a.status))
            }),
        );
    }
    facts.fingerprints = probe::fingerprints(config, deadline);
    facts.warmth = probe::warmth(config, deadline);
    facts
}

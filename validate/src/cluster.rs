//! `--cluster`: every peer asked over OpenSSH in parallel under one overall
//! deadline, their `--local --json` answers merged with this node's own, and
//! the cluster invariants judged from the merged facts.
//!
//! ssh runs with `BatchMode=yes` (never a password prompt at 3 a.m.),
//! `ConnectTimeout`, and `ControlMaster=auto` with a per-run control
//! directory: one connection per peer, which ends with its session
//! (`ControlPersist=no`, said explicitly because ssh takes the first value
//! it reads and an operator's ssh_config or --ssh-option often says
//! `ControlPersist`: otherwise a master outlives the run, on a socket whose
//! directory the run then removes). StrictHostKeyChecking is left to ssh's
//! default (ask, which BatchMode turns into a refusal): never `no`. A
//! peer that does not answer by the deadline is killed (each peer's thread
//! kills the ssh it started, before reaping it: never a PID that may have
//! been reused) and reported once: node.ssh CRITICAL, every check it would
//! have run NOT_RUN "node unreachable".
//!
//! With `--wait`, a peer that cannot be reached is asked again until the
//! deadline: after a deploy or a reflash a Pi is often still booting (sshd
//! refuses, or pam_nologin closes the session while boot finishes), and
//! "retry until green" has to include "until it answers". Its remaining
//! wait goes along to the peer's own `--wait`.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::Config;
use crate::cluster_conf::Node;
use crate::judge::{self, Level, Verdict};
use crate::model::{Finding, Role};
use crate::report::{self, Report};
use crate::run::{self, NodeReport, status_of};

/// Pause between two tries of a peer that could not be reached (`--wait`).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How often a peer's thread looks whether its ssh has ended.
const POLL: Duration = Duration::from_millis(20);

/// The ssh command line for one peer; `wait` is the peer's own `--wait`.
pub fn ssh_args(
    config: &Config,
    node: &Node,
    control_dir: &std::path::Path,
    wait: Option<Duration>,
) -> Vec<String> {
    let secs = config.connect_timeout.as_secs().max(1);
    let mut args: Vec<String> = [
        "-o",
        "BatchMode=yes",
        "-o",
        &format!("ConnectTimeout={secs}"),
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=no",
        "-o",
        &format!("ControlPath={}/%C", control_dir.display()),
        "-o",
        "ServerAliveInterval=2",
        "-o",
        "ServerAliveCountMax=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for option in &config.ssh_options {
        args.push("-o".into());
        args.push(option.clone());
    }
    args.push(node.ssh_dest().to_string());
    let mut remote = vec![
        config.remote_command.clone(),
        "--local".into(),
        "--json".into(),
        "--self".into(),
        node.name.clone(),
    ];
    if !config.only.is_empty() {
        remote.push("--only".into());
        remote.push(config.only.join(","));
    }
    if let Some(wait) = wait.filter(|w| !w.is_zero()) {
        remote.push("--wait".into());
        remote.push(format!("{}ms", wait.as_millis()));
    }
    // One argument: ssh joins its words with spaces for the remote shell.
    args.push(remote.join(" "));
    args
}

/// What asking one peer gave, and how many times it was asked.
#[derive(Debug)]
enum PeerResult {
    Answer(Box<NodeReport>, Duration, u32),
    Unreachable(String, Duration, u32),
}

/// Ask one peer, again after [`RETRY_PAUSE`] while it cannot be reached and
/// `--wait` leaves time before `deadline`.
fn ask_peer(
    config: &Config,
    node: &Node,
    control_dir: &std::path::Path,
    start: Instant,
    deadline: Instant,
) -> PeerResult {
    let mut attempts = 0;
    loop {
        attempts += 1;
        // The peer waits for its own checks as long as ours is left, less
        // the base deadline its answer needs to come back.
        let peer_wait = config.wait.map(|_| {
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(config.deadline)
        });
        let outcome = ask_once(config, node, control_dir, peer_wait, deadline);
        let elapsed = start.elapsed();
        match outcome {
            Ok(report) => return PeerResult::Answer(report, elapsed, attempts),
            Err(Failure::Deadline) => {
                let why = format!(
                    "no answer within the {} ms deadline",
                    deadline.duration_since(start).as_millis()
                );
                return PeerResult::Unreachable(why, elapsed, attempts);
            }
            Err(Failure::Unreachable(why)) => {
                let again = config.wait.is_some() && Instant::now() + RETRY_PAUSE < deadline;
                if !again {
                    return PeerResult::Unreachable(why, elapsed, attempts);
                }
                log::debug!("{}: {why}; asking again (--wait)", node.name);
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
}

/// Why one try gave no report.
enum Failure {
    /// The overall deadline passed: its ssh was killed.
    Deadline,
    Unreachable(String),
}

/// One ssh to the peer, killed at `deadline`.
fn ask_once(
    config: &Config,
    node: &Node,
    control_dir: &std::path::Path,
    peer_wait: Option<Duration>,
    deadline: Instant,
) -> Result<Box<NodeReport>, Failure> {
    let mut child = Command::new(&config.programs.ssh)
        .args(ssh_args(config, node, control_dir, peer_wait))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Unreachable(format!("{}: {e}", config.programs.ssh)))?;
    let (status, stdout, stderr) = std::thread::scope(|scope| {
        let stdout = drain(scope, child.stdout.take());
        let stderr = drain(scope, child.stderr.take());
        let status = wait_until(&mut child, deadline);
        (
            status,
            stdout.join().unwrap_or_default(),
            stderr.join().unwrap_or_default(),
        )
    });
    let status = status.ok_or(Failure::Deadline)?;
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    let last_err = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    // 255: ssh itself failed (refused, timeout, key); killed: no code.
    if status.code() == Some(255) || status.code().is_none() || stdout.trim().is_empty() {
        return Err(Failure::Unreachable(if last_err.is_empty() {
            format!("ssh {status}")
        } else {
            last_err
        }));
    }
    match report::node_from_json(&stdout) {
        Ok(report) if report.name == node.name => Ok(Box::new(report)),
        Ok(report) => Err(Failure::Unreachable(format!(
            "answered as {} (check its --self/host name)",
            report.name
        ))),
        Err(e) => Err(Failure::Unreachable(format!("bad answer: {e}; {last_err}"))),
    }
}

/// Read a child's pipe to its end on a thread of `scope` (both pipes at
/// once: a full stderr must not stall a peer's stdout).
fn drain<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    pipe: Option<R>,
) -> std::thread::ScopedJoinHandle<'scope, Vec<u8>> {
    scope.spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The child's exit status, or None when `deadline` came first: then it is
/// killed and reaped here (its PID still ours until reaped).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn ssh_finding(
    node: &str,
    verdict: Verdict,
    attempts: u32,
    elapsed: Duration,
    config: &Config,
) -> Finding {
    let (status, observed, expected) = status_of(config, node, "node.ssh", &Ok(verdict));
    Finding {
        id: "node.ssh",
        node: node.to_string(),
        status,
        observed,
        expected,
        attempts,
        elapsed,
    }
}

/// The NOT_RUN findings of a node that could not be asked.
fn unreachable_report(
    config: &Config,
    node: &Node,
    why: &str,
    elapsed: Duration,
    attempts: u32,
) -> NodeReport {
    let mut findings = vec![ssh_finding(
        &node.name,
        Verdict {
            level: Level::Fail(crate::model::Severity::Crit),
            observed: why.to_string(),
            expected: "answers over SSH".into(),
        },
        attempts,
        elapsed,
        config,
    )];
    for check in run::plan(config, node.role) {
        findings.push(Finding {
            observed: "node unreachable".into(),
            ..Finding::not_run(check.id, &node.name, format!("node unreachable: {why}"))
        });
    }
    NodeReport {
        name: node.name.clone(),
        role: node.role,
        findings,
        facts: Default::default(),
    }
}

/// Ask every selected node (this one in-process), merge, judge the invariants.
pub fn run_cluster(config: &Config) -> Report {
    let nodes: Vec<&Node> = config
        .conf
        .nodes
        .iter()
        .filter(|n| config.nodes.is_empty() || config.nodes.contains(&n.name))
        .collect();
    let control = tempfile_dir();
    let start = Instant::now();
    let deadline = start + config.deadline + config.wait.unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for (index, node) in nodes.iter().enumerate() {
            if node.name == config.self_name {
                continue;
            }
            let (tx, control) = (tx.clone(), control.clone());
            scope.spawn(move || {
                let _ = tx.send((index, ask_peer(config, node, &control, start, deadline)));
            });
        }
        drop(tx);
        // This node's own checks, meanwhile.
        let mut own = nodes
            .iter()
            .any(|n| n.name == config.self_name)
            .then(|| run::run_local(config));
        // Every peer's thread ends by the deadline (it kills its own ssh).
        let mut answers: Vec<Option<PeerResult>> = nodes.iter().map(|_| None).collect();
        for (index, result) in rx.iter() {
            answers[index] = Some(result);
        }
        let mut reports = Vec::new();
        for (node, answer) in nodes.iter().zip(answers) {
            if node.name == config.self_name {
                reports.extend(own.take());
                continue;
            }
            reports.push(match answer {
                Some(PeerResult::Answer(mut report, elapsed, attempts)) => {
                    let ok = Verdict {
                        level: Level::Pass,
                        observed: format!("answered in {} ms", elapsed.as_millis()),
                        expected: "answers over SSH".into(),
                    };
                    report
                        .findings
                        .insert(0, ssh_finding(&node.name, ok, attempts, elapsed, config));
                    *report
                }
                Some(PeerResult::Unreachable(why, elapsed, attempts)) => {
                    unreachable_report(config, node, &why, elapsed, attempts)
                }
                None => unreachable_report(
                    config,
                    node,
                    "its thread gave no answer",
                    start.elapsed(),
                    1,
                ),
            });
        }
        let _ = std::fs::remove_dir_all(&control);
        let cluster = invariants(config, &reports);
        Report {
            mode: "cluster",
            nodes: reports,
            cluster,
        }
    })
}

fn tempfile_dir() -> std::path::PathBuf {
    // ControlPath must be short (a Unix socket path); /tmp and the PID suffice.
    let dir = std::env::temp_dir().join(format!("okv-ssh-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    dir
}

fn cluster_finding(config: &Config, id: &'static str, verdict: Verdict) -> Finding {
    let (status, observed, expected) = status_of(config, "cluster", id, &Ok(verdict));
    Finding {
        id,
        node: "cluster".into(),
        status,
        observed,
        expected,
        attempts: 1,
        elapsed: Duration::ZERO,
    }
}

/// The cluster invariants from every node's facts.
pub fn invariants(config: &Config, reports: &[NodeReport]) -> Vec<Finding> {
    let selected = |id: &str| config.only.is_empty() || config.only.contains(&id);
    let frontends: Vec<&NodeReport> = reports
        .iter()
        .filter(|r| r.role == Role::Frontend)
        .collect();
    let reachable = |r: &&NodeReport| {
        !r.findings
            .iter()
            .any(|f| f.id == "node.ssh" && !f.status.is_good())
    };
    let mut out = Vec::new();
    let mut holder_ok = None;
    if selected("cluster.vip-holder") && config.conf.vip.is_some() {
        let holders: Vec<String> = frontends
            .iter()
            .filter(|r| r.facts.holds_vip == Some(true))
            .map(|r| r.name.clone())
            .collect();
        let unknown: Vec<String> = frontends
            .iter()
            .filter(|r| r.facts.holds_vip.is_none())
            .map(|r| r.name.clone())
            .collect();
        let verdict = judge::judge_vip_holders(&holders, &unknown);
        holder_ok = Some((verdict.level == Level::Pass).then(|| holders[0].clone()));
        out.push(cluster_finding(config, "cluster.vip-holder", verdict));
    }
    if selected("cluster.vip-response") && config.conf.vip.is_some() {
        let finding = match &holder_ok {
            Some(None) => Finding::not_run(
                "cluster.vip-response",
                "cluster",
                "cluster.vip-holder did not pass".into(),
            ),
            _ => {
                let holder = holder_ok.clone().flatten().or_else(|| {
                    frontends
                        .iter()
                        .find(|r| r.facts.holds_vip == Some(true))
                        .map(|r| r.name.clone())
                });
                let header = holder
                    .as_deref()
                    .and_then(|h| config.conf.node(h))
                    .map_or(holder.clone().unwrap_or_default(), |n| {
                        n.header_name().to_string()
                    });
                let seen: Vec<(String, Result<String, String>)> = frontends
                    .iter()
                    .filter(|r| reachable(r))
                    .filter_map(|r| Some((r.name.clone(), r.facts.vip_answer.clone()?)))
                    .collect();
                cluster_finding(
                    config,
                    "cluster.vip-response",
                    judge::judge_vip_response(&header, &seen),
                )
            }
        };
        out.push(finding);
    }
    if selected("cluster.standby-warm") && config.conf.vip.is_some() {
        let finding = match &holder_ok {
            Some(Some(holder)) => {
                let standbys: Vec<(String, Option<judge::Warmth>)> = frontends
                    .iter()
                    .filter(|r| reachable(r) && &r.name != holder)
                    .map(|r| (r.name.clone(), r.facts.warmth.clone()))
                    .collect();
                let holder_warmth = frontends
                    .iter()
                    .find(|r| &r.name == holder)
                    .and_then(|r| r.facts.warmth.as_ref());
                cluster_finding(
                    config,
                    "cluster.standby-warm",
                    judge::judge_standby_warm(holder_warmth, &standbys),
                )
            }
            _ => Finding::not_run(
                "cluster.standby-warm",
                "cluster",
                "cluster.vip-holder did not pass".into(),
            ),
        };
        out.push(finding);
    }
    if selected("cluster.drift") {
        let prints: Vec<(String, BTreeMap<String, String>)> = frontends
            .iter()
            .filter(|r| reachable(r))
            .filter(|r| !r.facts.fingerprints.is_empty())
            .map(|r| (r.name.clone(), r.facts.fingerprints.clone()))
            .collect();
        if prints.len() >= 2 {
            out.push(cluster_finding(
                config,
                "cluster.drift",
                judge::judge_drift(&prints),
            ));
        }
    }
    out
}

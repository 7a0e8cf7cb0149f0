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
//! peer that does not answer by the deadline is killed (by the PID of the
//! ssh we started) and reported once: node.ssh CRITICAL, every check it
//! would have run NOT_RUN "node unreachable".

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::Config;
use crate::cluster_conf::Node;
use crate::judge::{self, Level, Verdict};
use crate::model::{Finding, Role};
use crate::report::{self, Report};
use crate::run::{self, NodeReport, status_of};

/// The ssh command line for one peer.
pub fn ssh_args(config: &Config, node: &Node, control_dir: &std::path::Path) -> Vec<String> {
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
    if let Some(wait) = config.wait {
        remote.push("--wait".into());
        remote.push(format!("{}ms", wait.as_millis()));
    }
    // One argument: ssh joins its words with spaces for the remote shell.
    args.push(remote.join(" "));
    args
}

/// What asking one peer gave.
#[derive(Debug)]
enum PeerResult {
    Answer(Box<NodeReport>, Duration),
    Unreachable(String, Duration),
}

fn ask_peer(
    config: &Config,
    node: &Node,
    index: usize,
    control_dir: &std::path::Path,
    pids: &mpsc::Sender<(usize, u32)>,
) -> PeerResult {
    let start = Instant::now();
    let child = Command::new(&config.programs.ssh)
        .args(ssh_args(config, node, control_dir))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            return PeerResult::Unreachable(
                format!("{}: {e}", config.programs.ssh),
                start.elapsed(),
            );
        }
    };
    let _ = pids.send((index, child.id()));
    let out = match child.wait_with_output() {
        Ok(out) => out,
        Err(e) => return PeerResult::Unreachable(format!("ssh: {e}"), start.elapsed()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_err = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    // 255: ssh itself failed (refused, timeout, key); killed: no code.
    if out.status.code() == Some(255) || out.status.code().is_none() || stdout.trim().is_empty() {
        let why = if last_err.is_empty() {
            format!("ssh {}", out.status)
        } else {
            last_err
        };
        return PeerResult::Unreachable(why, start.elapsed());
    }
    match report::node_from_json(&stdout) {
        Ok(report) if report.name == node.name => {
            PeerResult::Answer(Box::new(report), start.elapsed())
        }
        Ok(report) => PeerResult::Unreachable(
            format!("answered as {} (check its --self/host name)", report.name),
            start.elapsed(),
        ),
        Err(e) => PeerResult::Unreachable(format!("bad answer: {e}; {last_err}"), start.elapsed()),
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
fn unreachable_report(config: &Config, node: &Node, why: &str, elapsed: Duration) -> NodeReport {
    let mut findings = vec![ssh_finding(
        &node.name,
        Verdict {
            level: Level::Fail(crate::model::Severity::Crit),
            observed: why.to_string(),
            expected: "answers over SSH".into(),
        },
        1,
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
    let (tx, rx) = mpsc::channel();
    let (pid_tx, pid_rx) = mpsc::channel::<(usize, u32)>();
    let deadline = config.deadline + config.wait.unwrap_or_default();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (index, node) in nodes.iter().enumerate() {
            if node.name == config.self_name {
                continue;
            }
            let (tx, pid_tx, control) = (tx.clone(), pid_tx.clone(), control.clone());
            scope.spawn(move || {
                let _ = tx.send((index, ask_peer(config, node, index, &control, &pid_tx)));
            });
        }
        drop(tx);
        drop(pid_tx);
        let mut answers: BTreeMap<usize, PeerResult> = BTreeMap::new();
        // This node's own checks, meanwhile.
        let own = nodes
            .iter()
            .position(|n| n.name == config.self_name)
            .map(|_| run::run_local(config));
        let peers = nodes.iter().filter(|n| n.name != config.self_name).count();
        while answers.len() < peers {
            let left = deadline.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok((index, result)) => {
                    answers.insert(index, result);
                }
                Err(_) => break,
            }
        }
        // Past the deadline: kill the ssh processes we started that still run.
        let mut killed = std::collections::BTreeSet::new();
        for (index, pid) in pid_rx.try_iter() {
            if answers.contains_key(&index) {
                continue;
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed.insert(index);
        }
        // A late answer that arrived meanwhile still counts (each kept under
        // its own index: none dropped while looking for another).
        for (index, result) in rx.try_iter() {
            answers.entry(index).or_insert(result);
        }
        let mut reports = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.name == config.self_name {
                if let Some(own) = own.clone() {
                    reports.push(own);
                }
                continue;
            }
            // Our own kill's "ssh signal: 9" is not the reason: the deadline is.
            let result = match answers.remove(&index) {
                Some(PeerResult::Unreachable(..)) if killed.contains(&index) => None,
                result => result,
            };
            reports.push(match result {
                Some(PeerResult::Answer(mut report, elapsed)) => {
                    let ok = Verdict {
                        level: Level::Pass,
                        observed: format!("answered in {} ms", elapsed.as_millis()),
                        expected: "answers over SSH".into(),
                    };
                    report
                        .findings
                        .insert(0, ssh_finding(&node.name, ok, 1, elapsed, config));
                    *report
                }
                Some(PeerResult::Unreachable(why, elapsed)) => {
                    unreachable_report(config, node, &why, elapsed)
                }
                None => unreachable_report(
                    config,
                    node,
                    &format!("no answer within the {} ms deadline", deadline.as_millis()),
                    start.elapsed(),
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

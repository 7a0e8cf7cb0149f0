//! The stub orchestrator's planner endpoint (`/api/planner`): what the real
//! orchestrator does per seed 002, server-side through the `okome` function
//! library — the rate budget, get-or-lead on the planner key, the write
//! budget and live-key cap before a commit — and the client contract of
//! docs/budgets.md when Redis is unreachable: fail open, fast, counted.
//!
//! Request: `GET|POST /api/planner?model=M&prompt=P&toolset=T&compute_ms=N`
//! with `X-OKOME-Agent` and `X-Repo-Hash` headers. Answer headers:
//! `X-OKOME-Cache: HIT|MISS`, `X-OKOME-Cache-Key`,
//! `X-OKOME-Agent-Rate-Remaining`, and `429` + `Retry-After` past the budget;
//! `X-OKOME-Budget: fail-open` when Redis could not decide.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::budgets::{
    Commit, Conn, DEFAULT_KEY_CAP, DEFAULT_RATE, DEFAULT_WINDOW_MS, DEFAULT_WRITES, Error,
    PlanAnswer, keys,
};

/// Planner results live 10 minutes (seed 002: 5-15 min).
pub const PLAN_TTL_MS: u64 = 600_000;
/// A leader holds the lease this long and renews it while computing.
pub const LEASE_MS: u64 = 5_000;
/// The client contract: connect and each command within these, else fail open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(50);
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Where the planner's Redis is and who it logs in as.
#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
}

/// Counters a real orchestrator exports as metrics.
#[derive(Debug, Default)]
pub struct PlannerStats {
    /// Decisions Redis could not make (unreachable, library missing): the
    /// request was let through uncached.
    pub fail_open: AtomicU64,
    /// Plans computed (MISS answers).
    pub computed: AtomicU64,
}

/// One planner answer: status, extra headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The parameters of one planner request.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub agent: String,
    pub model: String,
    pub prompt: String,
    pub toolset: String,
    pub repo_hash: String,
    pub compute: Duration,
}

/// FNV-1a 64 of the prompt: the `prompt_hash` of the key schema.
pub fn prompt_hash(prompt: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prompt.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Answer one planner request; `backend` None = no Redis configured (the
/// same as unreachable: fail open).
pub fn handle(request: &PlanRequest, backend: Option<&Backend>, stats: &PlannerStats) -> Answer {
    let key = keys::planner(
        &request.model,
        &prompt_hash(&request.prompt),
        &request.toolset,
        &request.repo_hash,
    );
    let started = Instant::now();
    match backend
        .ok_or(None)
        .and_then(|b| cached(request, &key, b, stats).map_err(Some))
    {
        Ok(answer) => answer,
        Err(error) => {
            // Fail open: Redis is non-authoritative. Answer without it, now.
            stats.fail_open.fetch_add(1, Ordering::Relaxed);
            let mut answer = compute(request, &key, stats);
            answer.headers.push(("X-OKOME-Budget", "fail-open".into()));
            answer.headers.push((
                "X-OKOME-Budget-Error",
                error.map_or("no backend".into(), |e| e.to_string()),
            ));
            answer.headers.push((
                "X-OKOME-Budget-Decided-In-Ms",
                started.elapsed().as_millis().to_string(),
            ));
            answer
        }
    }
}

fn compute(request: &PlanRequest, key: &str, stats: &PlannerStats) -> Answer {
    thread::sleep(request.compute);
    let n = stats.computed.fetch_add(1, Ordering::Relaxed) + 1;
    Answer {
        status: 200,
        headers: vec![
            ("X-OKOME-Cache", "MISS".into()),
            ("X-OKOME-Cache-Key", key.to_owned()),
        ],
        body: format!(
            "{{\"model\":\"{}\",\"plan\":\"stub plan #{n}\",\"agent\":\"{}\"}}\n",
            request.model, request.agent
        ),
    }
}

fn cached(
    request: &PlanRequest,
    key: &str,
    backend: &Backend,
    stats: &PlannerStats,
) -> Result<Answer, Error> {
    let mut conn = Conn::connect(
        backend.addr,
        Some((&backend.user, &backend.password)),
        CONNECT_TIMEOUT,
    )?;
    conn.set_timeout(COMMAND_TIMEOUT)?;
    let agent = &request.agent;
    let rate = conn.rate(agent, DEFAULT_RATE, DEFAULT_WINDOW_MS)?;
    let remaining = ("X-OKOME-Agent-Rate-Remaining", rate.remaining.to_string());
    if !rate.allowed {
        return Ok(Answer {
            status: 429,
            headers: vec![
                remaining,
                (
                    "Retry-After",
                    rate.retry_after_ms.div_ceil(1000).to_string(),
                ),
            ],
            body: format!("{{\"error\":\"agent {agent} is over its request budget\"}}\n"),
        });
    }
    // Waiters poll (WAIT ms ≤ 25) for at most two leases, then compute
    // uncached rather than hang.
    let deadline = Instant::now() + Duration::from_millis(2 * LEASE_MS);
    let mut answer = loop {
        match conn.plan_get(key, LEASE_MS, None)? {
            PlanAnswer::Hit { value, .. } => {
                break Answer {
                    status: 200,
                    headers: vec![
                        ("X-OKOME-Cache", "HIT".into()),
                        ("X-OKOME-Cache-Key", key.to_owned()),
                    ],
                    body: value,
                };
            }
            PlanAnswer::Lead { token, .. } => {
                let answer = compute(request, key, stats);
                let write = conn.write(agent, DEFAULT_WRITES, DEFAULT_WINDOW_MS)?;
                let tracked =
                    write.allowed && conn.track_key(agent, key, PLAN_TTL_MS, DEFAULT_KEY_CAP)?.0;
                if tracked {
                    // Stale / NotHolder: a newer leader's plan wins; ours
                    // still answers this request.
                    let _: Commit = conn.plan_commit(key, token, &answer.body, PLAN_TTL_MS)?;
                } else {
                    conn.plan_release(key, token)?;
                }
                break answer;
            }
            PlanAnswer::Wait { ms } if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(ms));
            }
            PlanAnswer::Wait { .. } => break compute(request, key, stats),
        }
    };
    answer.headers.push(remaining);
    Ok(answer)
}

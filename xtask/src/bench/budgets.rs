//! `cargo xtask bench budgets [--decisions N]`: the `okome` function
//! library's rate decision against the seed's and against a plain EVAL, on a
//! real loopback redis-server, plus the memory each agent costs.
//!
//! * Latency, one client, N decisions each (default 20,000) spread over 1,000
//!   agents at the seed's 60 requests/min: `FCALL okome_rate` (one round
//!   trip), the seed's `INCR` then `EXPIRE` (two round trips, fixed window,
//!   not atomic), and `EVAL` of the same Lua (the library's source turned
//!   into a script, sent with every call as a client without functions would).
//! * Throughput: decisions per second with 1 and 50 concurrent clients.
//! * Three rounds, schemes interleaved; the table shows the medians.
//! * Memory: `MEMORY USAGE` of one agent's keys after a minute at its full
//!   budget (60 requests, 30 writes), and of a live-key set at the 5,000 cap.
//!   Goals: ≤ 1.5 KB per agent at 60/min, ≤ 600 KB at 5,000 live keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use okome_lab::budgets::{Conn, LIBRARY_SOURCE, TestRedis, keys, rate_command};
use okome_lab::redis::Reply;

use crate::Result;
use crate::deps;

const USAGE: &str = "usage: cargo xtask bench budgets [--decisions N]";
const AGENTS: u64 = 1000;
const ROUNDS: usize = 3;

pub fn main(args: &[String]) -> Result {
    let mut decisions: u64 = 20_000;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--decisions" => {
                decisions = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("--decisions needs a positive number\n{USAGE}"))?
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    deps::ensure_apt(&["redis-server"])?;
    let redis = TestRedis::start("dump.rdb");
    let mut operator = redis.conn("operator");
    operator.load_library()?;
    let version = operator.version()?;
    let eval = eval_source();

    println!(
        "okome {version} on redis-server {} (loopback; {decisions} decisions over {AGENTS} agents at 60/min; median of {ROUNDS} rounds)\n",
        server_version(&mut operator)?
    );
    println!(
        "| scheme                          | round trips | p50 µs | p99 µs | decisions/s 1 client | decisions/s 50 clients |"
    );
    println!(
        "|---------------------------------|-------------|--------|--------|----------------------|------------------------|"
    );
    // Rounds interleave the schemes so a noisy neighbour (2 shared cores)
    // hits all three alike; each figure is the median over the rounds.
    let schemes = [Scheme::Fcall, Scheme::Seed, Scheme::Eval];
    let mut figures = vec![Vec::new(); schemes.len()];
    for _ in 0..ROUNDS {
        for (scheme, figures) in schemes.iter().zip(&mut figures) {
            figures.push(measure(&redis, &mut operator, *scheme, decisions, &eval)?);
        }
    }
    for (scheme, figures) in schemes.iter().zip(&figures) {
        let median = |f: fn(&[f64; 4]) -> f64| {
            let mut v: Vec<f64> = figures.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {:<31} | {:>11} | {:>6.0} | {:>6.0} | {:>20.0} | {:>22.0} |",
            scheme.label(),
            scheme.round_trips(),
            median(|f| f[0]),
            median(|f| f[1]),
            median(|f| f[2]),
            median(|f| f[3]),
        );
    }

    flush_budgets(&mut operator)?;
    let mut c = redis.conn("orchestrator");
    for _ in 0..60 {
        c.rate("mem", 60, 60_000)?;
    }
    for _ in 0..30 {
        c.write("mem", 30, 60_000)?;
    }
    let rl = memory(&mut operator, &keys::rate("mem"))?;
    let writes = memory(&mut operator, &keys::writes("mem"))?;
    for i in 0..5000 {
        c.track_key(
            "mem",
            &keys::planner("gpt-4", &format!("{i:016x}"), "v1", "abc123"),
            600_000,
            5000,
        )?;
    }
    let live = memory(&mut operator, &keys::agent_keys("mem"))?;
    let (_, count, _) = c.track_key("mem", "okome:planner:one-more", 600_000, 5000)?;
    println!("\n| memory (MEMORY USAGE … SAMPLES 0)                 | bytes  | goal     |");
    println!("|---------------------------------------------------|--------|----------|");
    println!("| rate log, 60 requests in the window               | {rl:>6} |          |");
    println!("| write log, 30 writes in the window                | {writes:>6} |          |");
    println!(
        "| per agent at full budget (both logs)              | {:>6} | ≤ 1536   |",
        rl + writes
    );
    println!("| live-key set at the cap ({count} keys)               | {live:>6} | ≤ 614400 |");
    let ok = rl + writes <= 1536 && live <= 600 * 1024;
    println!(
        "\ngoals {}: {} B per agent at 60 requests + 30 writes a minute, live-key set {} KB at 5,000 keys",
        if ok { "met" } else { "MISSED" },
        rl + writes,
        live / 1024
    );
    Ok(())
}

/// One round of one scheme: [p50 µs, p99 µs, decisions/s with 1 client,
/// decisions/s with 50 clients].
fn measure(
    redis: &TestRedis,
    operator: &mut Conn,
    scheme: Scheme,
    decisions: u64,
    eval: &str,
) -> Result<[f64; 4]> {
    flush_budgets(operator)?;
    let mut conn = redis.conn("operator");
    let mut lat = Vec::with_capacity(decisions as usize);
    for i in 0..decisions {
        let start = Instant::now();
        scheme.decide(&mut conn, &format!("bench-{}", i % AGENTS), eval)?;
        lat.push(start.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    flush_budgets(operator)?;
    let one = throughput(redis, scheme, 1, eval)?;
    flush_budgets(operator)?;
    let fifty = throughput(redis, scheme, 50, eval)?;
    Ok([p(0.50), p(0.99), one, fifty])
}

#[derive(Debug, Clone, Copy)]
enum Scheme {
    Fcall,
    Seed,
    Eval,
}

impl Scheme {
    fn label(self) -> &'static str {
        match self {
            Self::Fcall => "FCALL okome_rate (sliding log)",
            Self::Seed => "seed INCR + EXPIRE (fixed)",
            Self::Eval => "EVAL of the same Lua",
        }
    }

    fn round_trips(self) -> u32 {
        match self {
            Self::Seed => 2,
            _ => 1,
        }
    }

    fn decide(self, conn: &mut Conn, agent: &str, eval: &str) -> Result {
        match self {
            Self::Fcall => {
                conn.rate(agent, 60, 60_000)?;
            }
            Self::Seed => {
                let key = format!("okome:budget:rl:{agent}:seed");
                expect_ok(conn.call(&["INCR", &key])?)?;
                expect_ok(conn.call(&["EXPIRE", &key, "60"])?)?;
            }
            Self::Eval => {
                let args = rate_command("EVAL", eval, agent, 60, 60_000);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                expect_ok(conn.call(&args)?)?;
            }
        }
        Ok(())
    }
}

fn expect_ok(reply: Reply) -> Result {
    match reply {
        Reply::Error(e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The library as an EVAL script: the same code, `okome_rate`'s callback run
/// directly instead of registered.
fn eval_source() -> String {
    let mut out: String = LIBRARY_SOURCE
        .lines()
        .filter(|l| !l.starts_with("#!lua"))
        .take_while(|l| !l.starts_with("redis.register_function"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("return budget('rate')(KEYS, ARGV)\n");
    out
}

/// Decisions per second over 2 s with `clients` concurrent connections.
fn throughput(redis: &TestRedis, scheme: Scheme, clients: u64, eval: &str) -> Result<f64> {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|s| {
        for client in 0..clients {
            let mut conn = redis.conn("operator");
            let (stop, done, failed) = (&stop, &done, &failed);
            s.spawn(move || {
                let mut i = client;
                while !stop.load(Ordering::Relaxed) {
                    let agent = format!("bench-{}", i % AGENTS);
                    if scheme.decide(&mut conn, &agent, eval).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += clients;
                }
            });
        }
        thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
    });
    if failed.load(Ordering::Relaxed) > 0 {
        return Err(format!("{} {clients}-client run: a decision failed", scheme.label()).into());
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Forget every budget between runs (SCAN + UNLINK, as the runbook would).
fn flush_budgets(conn: &mut Conn) -> Result {
    let mut cursor = "0".to_owned();
    loop {
        let reply = conn.call(&["SCAN", &cursor, "MATCH", "okome:budget:*", "COUNT", "1000"])?;
        let Reply::Array(Some(parts)) = reply else {
            return Err(format!("SCAN: {reply:?}").into());
        };
        cursor = parts[0].text().unwrap_or_default();
        if let Reply::Array(Some(found)) = &parts[1] {
            let names: Vec<String> = found.iter().filter_map(Reply::text).collect();
            if !names.is_empty() {
                let mut args = vec!["UNLINK"];
                args.extend(names.iter().map(String::as_str));
                expect_ok(conn.call(&args)?)?;
            }
        }
        if cursor == "0" {
            return Ok(());
        }
    }
}

fn memory(conn: &mut Conn, key: &str) -> Result<u64> {
    match conn.call(&["MEMORY", "USAGE", key, "SAMPLES", "0"])? {
        Reply::Integer(n) => Ok(n as u64),
        other => Err(format!("MEMORY USAGE {key}: {other:?}").into()),
    }
}

fn server_version(conn: &mut Conn) -> Result<String> {
    let info = conn.call(&["INFO", "server"])?.text().unwrap_or_default();
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned())
}

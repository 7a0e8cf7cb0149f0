//! The validated configuration, from flags, `OKOME_*` variables,
//! `/etc/default/okome-prewarm` and built-in defaults (in that order).
//!
//! Everything is checked here, before anything runs, so a bad value is exit
//! status 2 with nothing changed. Built-in default paths are placed under
//! `OKOME_ROOT` (tests run on a fixture tree); a path the operator gave
//! explicitly is used as given.

use crate::plan_store::RedisUrl;
use crate::rank::Strategy;
use crate::target::Target;
use crate::warm::Settings;
use crate::{Error, VERSION};
use clap::ArgMatches;
use clap::parser::ValueSource;
use okome_accesslog::LogFormat;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Longest run deadline accepted: below the 2-minute timer period so two
/// runs never overlap even before the lock is consulted.
pub const MAX_DEADLINE_SECS: u64 = 110;

/// Everything one run needs.
#[derive(Debug)]
pub struct Config {
    /// Where warm requests go.
    pub target: Target,
    /// How many paths to warm.
    pub top_n: usize,
    /// The nginx access log.
    pub log: PathBuf,
    /// Its format.
    pub log_format: LogFormat,
    /// Ranking strategy.
    pub strategy: Strategy,
    /// At most this many bytes of log are read per run.
    pub tail_bytes: u64,
    /// Worker pool and origin protection.
    pub warm: Settings,
    /// Monitor User-Agent substrings (not demand).
    pub monitors: Vec<String>,
    /// Runs in a row a path may MISS before it is quarantined.
    pub quarantine_after: u32,
    /// How long a quarantine lasts, seconds.
    pub quarantine_secs: i64,
    /// Re-fetch through the localhost-only refresh bypass.
    pub refresh: bool,
    /// With `refresh`: only paths last stored at least this long ago.
    pub refresh_after_secs: i64,
    /// The keepalived VIP, if this node is one of a pair.
    pub vip: Option<IpAddr>,
    /// Redis for sharing the plan with the standby.
    pub redis: Option<RedisUrl>,
    /// Redis key of the plan.
    pub plan_key: String,
    /// TTL of the published plan, seconds.
    pub plan_ttl_secs: u64,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Print the report as JSON on stdout.
    pub json: bool,
    /// The state file.
    pub state_path: PathBuf,
    /// The run lock.
    pub lock_path: PathBuf,
    /// The health gate's flag file: present = orchestrator down, skip.
    pub gate_file: PathBuf,
    /// The Prometheus textfile, unless disabled.
    pub metrics_path: Option<PathBuf>,
}

fn path_arg(m: &ArgMatches, id: &str) -> PathBuf {
    let value = PathBuf::from(m.get_one::<String>(id).cloned().unwrap_or_default());
    if m.value_source(id) == Some(ValueSource::DefaultValue) {
        okome_common::root::rooted(value)
    } else {
        value
    }
}

fn num<T>(m: &ArgMatches, id: &str, min: T, max: T) -> Result<T, Error>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let raw = m.get_one::<String>(id).map(String::as_str).unwrap_or("");
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("--{id}: {raw:?} is not a number")))?;
    if value < min || value > max {
        return Err(Error::Config(format!(
            "--{id}: {value} is outside {min}..={max}"
        )));
    }
    Ok(value)
}

fn header_value_ok(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ,;=.*-_/".contains(&b))
}

/// `--host`: a host name or IP address (IPv6 without brackets), or empty
/// for the target's own authority.
fn warm_host(value: &str) -> Result<Option<String>, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 253
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    {
        return Err(Error::Config(format!(
            "--host: {value:?} is not a host name or IP address"
        )));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

impl Config {
    /// Build and validate from parsed flags.
    pub fn from_matches(m: &ArgMatches) -> Result<Config, Error> {
        let s = |id: &str| m.get_one::<String>(id).cloned().unwrap_or_default();
        let target = Target::parse(&s("target")).map_err(|e| Error::Config(e.to_string()))?;
        let strategy = Strategy::parse(&s("strategy")).ok_or_else(|| {
            Error::Config(format!(
                "--strategy: {:?} is not selective, priority or breadth",
                s("strategy")
            ))
        })?;
        let log_format = match m.get_one::<String>("log-format") {
            Some(spec) if !spec.trim().is_empty() => LogFormat::from_nginx(spec)
                .map_err(|e| Error::Config(format!("--log-format: {e}")))?,
            _ => LogFormat::okome(),
        };
        let accept_encoding = s("accept-encoding");
        if !header_value_ok(&accept_encoding) {
            return Err(Error::Config(format!(
                "--accept-encoding: {accept_encoding:?} is not a plain header value"
            )));
        }
        let refresh = m.get_flag("refresh");
        let deadline_secs: u64 = num(m, "deadline-secs", 1, MAX_DEADLINE_SECS)?;
        let timeout_ms: u64 = num(m, "timeout-ms", 50, 60_000)?;
        let warm = Settings {
            workers: num(m, "workers", 1, 16)?,
            max_rps: num(m, "max-rps", 0.01, 1000.0)?,
            burst: 1.0,
            max_total_rps: num(m, "max-total-rps", 0.1, 1000.0)?,
            timeout: Duration::from_millis(timeout_ms),
            retries: num(m, "retries", 0, 2)?,
            backoff_base: Duration::from_millis(num(m, "backoff-ms", 1, 10_000)?),
            deadline: Duration::from_secs(deadline_secs),
            emergency_latency: Duration::from_millis(num(m, "emergency-ms", 1, 600_000)?),
            max_errors: num(m, "max-errors", 1, 10_000)?,
            headers: vec![
                ("User-Agent".into(), format!("okome-prewarm/{VERSION}")),
                ("Accept-Encoding".into(), accept_encoding),
                ("X-OKOME-Warm".into(), "1".into()),
            ],
            host: warm_host(&s("host"))?,
        };
        if refresh && !target.is_loopback() {
            return Err(Error::Config(format!(
                "--refresh needs a loopback target (nginx honours X-OKOME-Refresh only from 127.0.0.1/::1), not {}",
                target.url.host
            )));
        }
        let vip = match m.get_one::<String>("vip").map(|v| v.trim()) {
            Some("") | None => None,
            Some(v) => Some(
                v.parse::<IpAddr>()
                    .map_err(|_| Error::Config(format!("--vip: {v:?} is not an IP address")))?,
            ),
        };
        let redis = match m.get_one::<String>("redis").map(|v| v.trim()) {
            Some("") | None => None,
            Some(v) => Some(
                v.parse::<RedisUrl>()
                    .map_err(|e| Error::Config(format!("--redis: {e}")))?,
            ),
        };
        let plan_key = s("plan-key");
        if plan_key.is_empty() || !plan_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(format!(
                "--plan-key: {plan_key:?} is not a plain key"
            )));
        }
        let state_dir = path_arg(m, "state-dir");
        let metrics_path = if m.get_flag("no-metrics") {
            None
        } else {
            Some(path_arg(m, "metrics-dir").join("okome-prewarm.prom"))
        };
        let monitors = s("exclude-ua")
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        Ok(Config {
            target,
            top_n: num(m, "top-n", 1, 1000)?,
            log: path_arg(m, "log"),
            log_format,
            strategy,
            tail_bytes: num(m, "tail-bytes", 4096, 1 << 40)?,
            warm,
            monitors,
            quarantine_after: num(m, "quarantine-after", 1, 1000)?,
            quarantine_secs: num(m, "quarantine-secs", 60, 30 * 86_400)?,
            refresh,
            refresh_after_secs: num(m, "refresh-after-secs", 0, 30 * 86_400)?,
            vip,
            redis,
            plan_key,
            plan_ttl_secs: num(m, "plan-ttl-secs", 10, 86_400)?,
            dry_run: m.get_flag("dry-run"),
            json: m.get_flag("json"),
            state_path: state_dir.join("prewarm.state"),
            lock_path: state_dir.join("prewarm.lock"),
            gate_file: path_arg(m, "gate-file"),
            metrics_path,
        })
    }
}

//! The I/O half of every check: read a file under `OKOME_ROOT`, run a
//! program with a deadline, ask nginx or the orchestrator over HTTP (ureq),
//! ask Redis (the redis crate); then hand what was seen to `judge.rs`.
//!
//! Every call is bounded by the check's deadline (sockets by their timeouts,
//! child processes killed by PID when they overrun), and none changes
//! state: `systemctl show`, `nginx -t`, `ip addr`, `journalctl`, GET,
//! PING, CONFIG GET, ACL GETUSER. An [`Internal`] error is okome-validate's
//! own failure (a missing `systemctl`, an unreadable /proc), which the
//! outputs keep apart from what the node did wrong (Nagios UNKNOWN).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cli::Config;
use crate::judge::{self, EdgeAnswer, FsUse, Level, Verdict, WearFacts};
use crate::model::Severity;

/// okome-validate could not run the check itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal(pub String);

/// What a program run said.
#[derive(Debug)]
pub struct ProgramOutput {
    /// Exit success.
    pub success: bool,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Why a program run failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// Not installed.
    NotFound(String),
    /// Ran past the deadline; killed.
    Timeout(String, Duration),
    /// Could not start or read.
    Io(String),
}

impl std::fmt::Display for ProgramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramError::NotFound(p) => write!(f, "{p}: not found"),
            ProgramError::Timeout(p, d) => write!(f, "{p}: no answer within {d:?} (killed)"),
            ProgramError::Io(m) => f.write_str(m),
        }
    }
}

/// Run `program args…` with `deadline`; the child is killed by PID when it
/// overruns. stdin is closed so nothing can prompt.
pub fn run_program(
    program: &str,
    args: &[&str],
    deadline: Duration,
) -> Result<ProgramOutput, ProgramError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ProgramError::NotFound(program.to_string()),
            _ => ProgramError::Io(format!("{program}: {e}")),
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProgramError::Timeout(program.to_string(), deadline));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(ProgramError::Io(format!("{program}: {e}"))),
        }
    };
    Ok(ProgramOutput {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `path` under the root prefix.
fn rooted(config: &Config, path: &str) -> PathBuf {
    okome_common::root::under(&config.root, Path::new(path))
}

fn read(path: &Path) -> Result<String, Internal> {
    std::fs::read_to_string(path).map_err(|e| Internal(format!("{}: {e}", path.display())))
}

/// `systemctl show` of one unit, judged.
pub fn unit(
    config: &Config,
    unit: &str,
    fail: Severity,
    deadline: Duration,
) -> Result<Verdict, Internal> {
    let args = ["show", "-p", "LoadState,ActiveState,SubState,Result", unit];
    match run_program(&config.programs.systemctl, &args, deadline) {
        Ok(out) if out.success => Ok(judge::judge_unit(
            unit,
            &judge::parse_unit_show(&out.stdout),
            fail,
        )),
        Ok(out) => Err(Internal(format!(
            "systemctl show {unit}: {}",
            out.stderr.trim()
        ))),
        Err(e) => Err(Internal(e.to_string())),
    }
}

/// `systemctl show` of every unit in one call (one process and one bus
/// connection instead of one per unit): each unit's state, in the order
/// asked (systemctl prints one blank-line-separated block per unit, an
/// unknown unit as `LoadState=not-found`). `None` when the blocks do not
/// line up with the units (each check then asks for its own).
pub fn units_state(
    config: &Config,
    units: &[String],
    deadline: Duration,
) -> Option<Vec<judge::UnitState>> {
    let mut args = vec!["show", "-p", "LoadState,ActiveState,SubState,Result"];
    args.extend(units.iter().map(String::as_str));
    let out = run_program(&config.programs.systemctl, &args, deadline).ok()?;
    if !out.success {
        return None;
    }
    let states: Vec<judge::UnitState> = out
        .stdout
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(judge::parse_unit_show)
        .collect();
    (states.len() == units.len()).then_some(states)
}

/// /proc/meminfo under the root.
pub fn meminfo(config: &Config) -> Result<judge::MemInfo, Internal> {
    let path = rooted(config, "/proc/meminfo");
    judge::parse_meminfo(&read(&path)?)
        .ok_or_else(|| Internal(format!("{}: no MemTotal/MemAvailable", path.display())))
}

/// statvfs of `path`.
pub fn fs_use(path: &Path) -> Result<FsUse, Internal> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| Internal(format!("statvfs {}: {e}", path.display())))?;
    let frag = st.fragment_size() as u64;
    Ok(FsUse {
        size: st.blocks() as u64 * frag,
        free: st.blocks_free() as u64 * frag,
        avail: st.blocks_available() as u64 * frag,
        files: st.files() as u64,
        files_free: st.files_available() as u64,
    })
}

/// Bytes of regular files under `dir` (the nginx cache), stopping at the deadline.
fn dir_bytes(dir: &Path, until: Instant) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if Instant::now() > until {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// The cache dir's filesystem vs nginx's max_size.
pub fn cache_disk(config: &Config, deadline: Duration) -> Result<Verdict, Internal> {
    let site = read(&config.site_conf)?;
    let (dir, max) = judge::parse_proxy_cache_path(&site).ok_or_else(|| {
        Internal(format!(
            "{}: no proxy_cache_path",
            config.site_conf.display()
        ))
    })?;
    let dir = PathBuf::from(dir);
    // The lab and fixture trees render the path already under their root.
    let dir = if dir.exists() {
        dir
    } else {
        rooted(config, &dir.display().to_string())
    };
    let fs = fs_use(&dir)?;
    let used = dir_bytes(&dir, Instant::now() + deadline / 2);
    Ok(judge::judge_cache_disk(max, &fs, used, &config.thresholds))
}

/// /proc/mounts, journald.conf and its drop-ins, judged.
pub fn sd_wear(config: &Config) -> Result<Verdict, Internal> {
    let mounts = read(&rooted(config, "/proc/mounts"))?;
    let mut journald = Vec::new();
    if let Ok(text) = std::fs::read_to_string(rooted(config, "/etc/systemd/journald.conf")) {
        journald.push(text);
    }
    let mut drop_ins: Vec<PathBuf> =
        std::fs::read_dir(rooted(config, "/etc/systemd/journald.conf.d"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
    drop_ins.sort();
    for path in drop_ins {
        journald.push(read(&path)?);
    }
    Ok(judge::judge_sd_wear(&WearFacts { mounts, journald }))
}

/// `vcgencmd get_throttled`, skipped where vcgencmd is absent.
pub fn throttle(config: &Config, deadline: Duration) -> Result<Verdict, Internal> {
    match run_program(&config.programs.vcgencmd, &["get_throttled"], deadline) {
        Err(ProgramError::NotFound(_)) => Ok(judge::judge_throttle(None)),
        Ok(out) if out.success => Ok(judge::judge_throttle(Some(&out.stdout))),
        Ok(out) => Ok(judge::judge_throttle(Some(out.stderr.trim()))),
        Err(e) => Err(Internal(e.to_string())),
    }
}

/// `nginx -t` on the configured main file.
pub fn nginx_t(config: &Config, deadline: Duration) -> Result<Verdict, Internal> {
    let conf = config.nginx_conf.display().to_string();
    let mut args = vec!["-t", "-c", conf.as_str()];
    let root = config.root.display().to_string();
    let error_log = rooted(config, "/var/log/nginx/error.log")
        .display()
        .to_string();
    if config.root != Path::new("/") {
        args.extend(["-p", root.as_str(), "-e", error_log.as_str()]);
    }
    match run_program(&config.programs.nginx, &args, deadline) {
        Ok(out) => Ok(judge::judge_nginx_t(out.success, &out.stderr)),
        Err(ProgramError::NotFound(p)) => Ok(Verdict {
            level: Level::Fail(Severity::Crit),
            observed: format!("{p} not installed"),
            expected: "exit 0".into(),
        }),
        Err(e) => Err(Internal(e.to_string())),
    }
}

fn agent(deadline: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(deadline))
        .timeout_connect(Some(deadline))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// GET `/` on `address` with the public Host: status and the two headers.
pub fn edge_get(
    address: &str,
    port: u16,
    host: &str,
    deadline: Duration,
) -> Result<EdgeAnswer, String> {
    let url = format!("http://{}/", host_port(address, port));
    let answer = agent(deadline)
        .get(&url)
        .header("Host", host)
        .header(
            "User-Agent",
            concat!("okome-validate/", env!("CARGO_PKG_VERSION")),
        )
        .call()
        .map_err(|e| format!("GET {url} (Host {host}): {}", http_error(&e)))?;
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(EdgeAnswer {
        status: answer.status().as_u16(),
        node: header("x-okome-node"),
        cache: header("x-cache-status"),
    })
}

fn http_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timeout".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        other => other.to_string(),
    }
}

/// The orchestrator's health: its status, or how the request failed.
pub fn orchestrator(url: &str, deadline: Duration) -> Result<u16, String> {
    agent(deadline)
        .get(url)
        .call()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("GET {url}: {}", http_error(&e)))
}

/// The gate flag and the pin.
pub fn gate_files(config: &Config) -> (bool, bool) {
    (config.gate_file.exists(), config.pin_file.exists())
}

/// A textfile under the metrics dir, if present.
pub fn textfile(config: &Config, name: &str) -> Option<String> {
    std::fs::read_to_string(config.metrics_dir.join(name)).ok()
}

/// Unix now, in seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether `ip -o addr show` lists the VIP on any interface.
pub fn holds_vip(config: &Config, vip: &str, deadline: Duration) -> Result<bool, Internal> {
    let out = run_program(&config.programs.ip, &["-o", "addr", "show"], deadline)
        .map_err(|e| Internal(e.to_string()))?;
    let needle = format!(" {vip}/");
    Ok(out.stdout.lines().any(|line| line.contains(&needle)))
}

/// keepalived's last state from its notify lines in the journal
/// (`logger -t okome-keepalived`, configs/keepalived): `None` when none.
pub fn keepalived_state(config: &Config, deadline: Duration) -> Option<String> {
    let args = [
        "-t",
        "okome-keepalived",
        "-n",
        "1",
        "-o",
        "cat",
        "--no-pager",
        "-q",
    ];
    let out = run_program(&config.programs.journalctl, &args, deadline).ok()?;
    out.stdout
        .split_whitespace()
        .rev()
        .find(|w| matches!(*w, "MASTER" | "BACKUP" | "FAULT" | "STOP"))
        .map(str::to_string)
}

/// A Redis connection with read/write deadlines; the password never appears
/// in an error (only host:port).
fn redis_conn(url: &str, deadline: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("redis URL: {}", e.kind_str()))?;
    let conn = client
        .get_connection_with_timeout(deadline)
        .map_err(|e| redis_error(&e))?;
    conn.set_read_timeout(Some(deadline))
        .map_err(|e| redis_error(&e))?;
    conn.set_write_timeout(Some(deadline))
        .map_err(|e| redis_error(&e))?;
    Ok(conn)
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> String {
        format!("{:?}", self.kind())
    }
}

fn redis_error(e: &redis::RedisError) -> String {
    match e.code() {
        Some(code) => format!("{code} {}", e.detail().unwrap_or(""))
            .trim()
            .to_string(),
        None if e.is_timeout() => "timeout".into(),
        None if e.is_connection_refusal() => "connection refused".into(),
        None => e.to_string(),
    }
}

/// Where a redis URL points (host:port), for messages.
pub fn redis_where(url: &str) -> String {
    let rest = url.trim_start_matches("redis://");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// PING as the tools' user.
pub fn redis_ping(url: &str, deadline: Duration) -> Result<String, String> {
    let mut conn = redis_conn(url, deadline)?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map_err(|e| redis_error(&e))
}

/// What the settings checks read from Redis as the operator.
#[derive(Debug, Clone, Default)]
pub struct RedisSettings {
    /// CONFIG GET results.
    pub config: BTreeMap<String, String>,
    /// `ACL GETUSER default` flags (None: no such user).
    pub default_flags: Option<Vec<String>>,
}

/// CONFIG GET the settings and ACL GETUSER default.
pub fn redis_settings(url: &str, deadline: Duration) -> Result<RedisSettings, String> {
    let mut conn = redis_conn(url, deadline)?;
    let mut settings = RedisSettings::default();
    for name in ["maxmemory", "maxmemory-policy", "save", "appendonly"] {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(&mut conn)
            .map_err(|e| format!("CONFIG GET {name}: {}", redis_error(&e)))?;
        if let [_, value] = pair.as_slice() {
            settings.config.insert(name.to_string(), value.clone());
        }
    }
    let user: redis::Value = redis::cmd("ACL")
        .arg("GETUSER")
        .arg("default")
        .query(&mut conn)
        .map_err(|e| format!("ACL GETUSER default: {}", redis_error(&e)))?;
    settings.default_flags = acl_flags(&user);
    Ok(settings)
}

fn value_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The `flags` list of an `ACL GETUSER` reply (RESP2 array or RESP3 map).
fn acl_flags(user: &redis::Value) -> Option<Vec<String>> {
    let pairs: Vec<(&redis::Value, &redis::Value)> = match user {
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        redis::Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(k, v)| {
        (value_text(k)?.as_str() == "flags").then(|| match v {
            redis::Value::Array(flags) | redis::Value::Set(flags) => {
                flags.iter().filter_map(value_text).collect()
            }
            _ => Vec::new(),
        })
    })
}

/// Physical RAM in bytes (MemTotal).
pub fn ram_bytes(config: &Config) -> Result<u64, Internal> {
    Ok(meminfo(config)?.total * 1024)
}

/// vm.overcommit_memory and THP, under the root.
pub fn kernel(config: &Config) -> Verdict {
    let overcommit = std::fs::read_to_string(rooted(config, "/proc/sys/vm/overcommit_memory")).ok();
    let thp = std::fs::read_to_string(rooted(
        config,
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ))
    .ok();
    judge::judge_kernel(overcommit.as_deref(), thp.as_deref())
}

/// Config files the frontend packages ship and that must be equal on every
/// frontend (keepalived's master/backup files differ by design and are left out).
pub const DRIFT_FILES: &[&str] = &[
    "/etc/nginx/sites-available/okome-frontend.conf",
    "/etc/nginx/sites-enabled/okome-frontend.conf",
    "/etc/nginx/okome/upstream.conf",
    "/etc/nginx/okome/health_state.conf",
    "/etc/nginx/okome/okome-logformat.conf",
    "/etc/nginx/okome/canary_maps.conf",
    "/etc/nginx/okome/canary_policies.conf",
    "/etc/fail2ban/jail.d/okome.local",
    "/etc/fail2ban/fail2ban.d/okome.local",
    "/etc/sysctl.d/90-okome.conf",
    "/etc/systemd/journald.conf.d/okome.conf",
    "/etc/ssh/sshd_config.d/okome.conf",
    "/etc/default/okome-health-probe",
    "/etc/default/okome-prewarm",
];

/// Package versions (`okome-*`) and, per [`DRIFT_FILES`] entry, `RAW|MASKED`:
/// its SHA-256 as is and with this node's own name and address masked
/// ([`judge::without_identity`]; [`judge::judge_drift`] takes either).
pub fn fingerprints(config: &Config, deadline: Duration) -> BTreeMap<String, String> {
    let mut prints = BTreeMap::new();
    if let Ok(out) = run_program(
        &config.programs.dpkg_query,
        &["-W", "-f", "${Package} ${Version}\\n", "okome-*"],
        deadline,
    ) {
        for line in out.stdout.lines() {
            if let Some((package, version)) = line.split_once(' ')
                && !version.is_empty()
            {
                prints.insert(format!("package {package}"), version.to_string());
            }
        }
    }
    let me = config.conf.node(&config.self_name);
    let header = me.map_or(config.self_name.as_str(), |n| n.header_name());
    let identity = [
        (config.self_name.as_str(), "@NODE@"),
        (header, "@NODE@"),
        (config.address.as_str(), "@ADDRESS@"),
    ];
    for file in DRIFT_FILES {
        if let Ok(bytes) = std::fs::read(rooted(config, file)) {
            let hex = |bytes: &[u8]| -> String {
                Sha256::digest(bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            };
            let masked = judge::without_identity(&bytes, &identity);
            prints.insert(
                (*file).to_string(),
                format!("{}|{}", hex(&bytes), hex(&masked)),
            );
        }
    }
    prints
}

/// Plan paths checked against the standby's cache (the plan's best ones).
const PLAN_TOP: usize = 20;

/// The published prewarm plan (Redis `okome:prewarm:plan`, read as the
/// tools' user) against this node's nginx cache keys; `None` without a
/// Redis URL, a plan or a cache dir.
pub fn warmth(config: &Config, deadline: Duration) -> Option<judge::Warmth> {
    let url = config.redis_url.as_ref()?;
    let mut conn = redis_conn(url, deadline).ok()?;
    let plan: Option<String> = redis::cmd("GET")
        .arg("okome:prewarm:plan")
        .query(&mut conn)
        .ok()?;
    let plan: serde_json::Value = serde_json::from_str(&plan?).ok()?;
    let node = plan["node"].as_str().unwrap_or("?").to_string();
    let paths: Vec<String> = plan["paths"]
        .as_array()?
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .take(PLAN_TOP)
        .collect();
    let site = std::fs::read_to_string(&config.site_conf).ok()?;
    let (dir, _) = judge::parse_proxy_cache_path(&site)?;
    let dir = PathBuf::from(dir);
    let dir = if dir.exists() {
        dir
    } else {
        rooted(config, &dir.display().to_string())
    };
    let keys = cache_keys(&dir, Instant::now() + deadline);
    Some(judge::plan_coverage(&node, &paths, &keys))
}

/// The `KEY:` line of every nginx cache file under `dir` (each file's head only).
fn cache_keys(dir: &Path, until: Instant) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if Instant::now() > until {
                return keys;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut head = [0u8; 2048];
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let Ok(n) = file.read(&mut head) else {
                continue;
            };
            let head = &head[..n];
            let marker = b"\nKEY: ";
            if let Some(at) = head.windows(marker.len()).position(|w| w == marker) {
                let rest = &head[at + marker.len()..];
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                keys.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    keys
}

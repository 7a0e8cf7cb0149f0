//! The judging: pure functions from what a probe saw to a [`Verdict`].
//!
//! Nothing here touches a socket, a file or a child process; `probe.rs`
//! gathers the text and numbers and hands them over. That split is what lets
//! every threshold and every edge (a timer that is `active/waiting`, a
//! `maxmemory 0`, a journald drop-in that wins over the main file) be pinned
//! by table tests, and the end-to-end tests only prove the gathering.

use std::collections::BTreeMap;

use crate::model::Severity;

/// The outcome of judging one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Good.
    Pass,
    /// Bad, this much.
    Fail(Severity),
    /// Does not apply here.
    Skip(String),
}

/// A judged check: level, what was seen and what passing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Pass, fail (with severity) or skip.
    pub level: Level,
    /// What was seen.
    pub observed: String,
    /// What passing needs.
    pub expected: String,
}

impl Verdict {
    fn new(level: Level, observed: impl Into<String>, expected: impl Into<String>) -> Self {
        Verdict {
            level,
            observed: observed.into(),
            expected: expected.into(),
        }
    }
    fn pass(observed: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::new(Level::Pass, observed, expected)
    }
    fn fail(sev: Severity, observed: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::new(Level::Fail(sev), observed, expected)
    }
}

/// Warn/crit thresholds (percent), set by flags or /etc/default/okome-validate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// MemAvailable below this share of MemTotal: warn.
    pub mem_warn: f64,
    /// … below this: crit.
    pub mem_crit: f64,
    /// Swap used above this share: warn.
    pub swap_warn: f64,
    /// Disk or inode use above this: warn.
    pub disk_warn: f64,
    /// … above this: crit.
    pub disk_crit: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            mem_warn: 10.0,
            mem_crit: 5.0,
            swap_warn: 50.0,
            disk_warn: 85.0,
            disk_crit: 95.0,
        }
    }
}

// ---- systemd units ---------------------------------------------------------

/// `systemctl show -p LoadState,ActiveState,SubState,Result UNIT` parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `masked`.
    pub load: String,
    /// `active`, `inactive`, `failed`, `activating`.
    pub active: String,
    /// `running`, `waiting`, `dead`, `exited`, `auto-restart`.
    pub sub: String,
    /// `success`, `exit-code`, `signal`, `core-dump`.
    pub result: String,
}

/// Parse `systemctl show` output (`Key=value` lines).
pub fn parse_unit_show(text: &str) -> UnitState {
    let mut state = UnitState::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let slot = match key {
            "LoadState" => &mut state.load,
            "ActiveState" => &mut state.active,
            "SubState" => &mut state.sub,
            "Result" => &mut state.result,
            _ => continue,
        };
        *slot = value.trim().to_string();
    }
    state
}

/// A service must be `active/running`; a timer `active/waiting` (or
/// `running` while it fires). `is-active` would call `activating` or
/// `reloading` good and hide a `Result=` from the last crash.
pub fn judge_unit(unit: &str, state: &UnitState, fail: Severity) -> Verdict {
    let timer = unit.ends_with(".timer");
    let expected = if timer {
        "active/waiting"
    } else {
        "active/running"
    };
    let mut observed = format!("{}/{}", state.active, state.sub);
    if !state.result.is_empty() && state.result != "success" {
        observed.push_str(&format!(", last result {}", state.result));
    }
    if state.load != "loaded" && !state.load.is_empty() {
        return Verdict::fail(fail, format!("{unit} {}", state.load), expected);
    }
    let good =
        state.active == "active" && (state.sub == "running" || (timer && state.sub == "waiting"));
    if good {
        Verdict::pass(observed, expected)
    } else {
        Verdict::fail(fail, observed, expected)
    }
}

// ---- memory, swap, disk ----------------------------------------------------

/// The /proc/meminfo fields the checks read, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// MemTotal.
    pub total: u64,
    /// MemAvailable.
    pub available: u64,
    /// SwapTotal.
    pub swap_total: u64,
    /// SwapFree.
    pub swap_free: u64,
}

/// Parse /proc/meminfo; `None` when MemTotal or MemAvailable is missing.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next())
            && let Ok(value) = value.parse::<u64>()
        {
            fields.insert(key.trim_end_matches(':').to_string(), value);
        }
    }
    Some(MemInfo {
        total: *fields.get("MemTotal")?,
        available: *fields.get("MemAvailable")?,
        swap_total: fields.get("SwapTotal").copied().unwrap_or(0),
        swap_free: fields.get("SwapFree").copied().unwrap_or(0),
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// MemAvailable as a share of MemTotal against the thresholds.
pub fn judge_memory(mem: &MemInfo, th: &Thresholds) -> Verdict {
    let share = percent(mem.available, mem.total);
    let observed = format!(
        "MemAvailable {} MiB of {} MiB ({share:.0} %)",
        mem.available / 1024,
        mem.total / 1024
    );
    let expected = format!("≥ {:.0} % (crit < {:.0} %)", th.mem_warn, th.mem_crit);
    if share < th.mem_crit {
        Verdict::fail(Severity::Crit, observed, expected)
    } else if share < th.mem_warn {
        Verdict::fail(Severity::Warn, observed, expected)
    } else {
        Verdict::pass(observed, expected)
    }
}

/// Swap in use as a share of swap; no swap at all passes.
pub fn judge_swap(mem: &MemInfo, th: &Thresholds) -> Verdict {
    let expected = format!("< {:.0} % used", th.swap_warn);
    if mem.swap_total == 0 {
        return Verdict::pass("no swap", expected);
    }
    let used = mem.swap_total.saturating_sub(mem.swap_free);
    let share = percent(used, mem.swap_total);
    let observed = format!(
        "swap {} MiB of {} MiB used ({share:.0} %)",
        used / 1024,
        mem.swap_total / 1024
    );
    if share >= th.swap_warn {
        Verdict::fail(Severity::Warn, observed, expected)
    } else {
        Verdict::pass(observed, expected)
    }
}

/// One filesystem's use, from statvfs (sizes in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUse {
    /// Size.
    pub size: u64,
    /// Free, the root-reserved blocks included.
    pub free: u64,
    /// Available to unprivileged users.
    pub avail: u64,
    /// Inodes in all (0: the filesystem has no fixed inode table, e.g. btrfs).
    pub files: u64,
    /// Inodes free.
    pub files_free: u64,
}

impl FsUse {
    /// Use as df(1) shows it: used / (used + available to users), so the
    /// blocks reserved for root count neither as used nor as free (counting
    /// them as used read 86 % on a disk df calls 60 % full).
    fn used_pct(&self) -> f64 {
        let used = self.size.saturating_sub(self.free);
        percent(used, used + self.avail)
    }
    fn inodes_pct(&self) -> f64 {
        percent(self.files.saturating_sub(self.files_free), self.files)
    }
}

fn worst(levels: &[Level]) -> Level {
    let mut out = Level::Pass;
    for level in levels {
        if let Level::Fail(s) = level {
            match out {
                Level::Fail(t) if t >= *s => {}
                _ => out = Level::Fail(*s),
            }
        }
    }
    out
}

fn pct_level(pct: f64, th: &Thresholds) -> Level {
    if pct >= th.disk_crit {
        Level::Fail(Severity::Crit)
    } else if pct >= th.disk_warn {
        Level::Fail(Severity::Warn)
    } else {
        Level::Pass
    }
}

/// Space and inode use of a filesystem (`/`) against the thresholds.
pub fn judge_disk(mount: &str, fs: &FsUse, th: &Thresholds) -> Verdict {
    let (space, inodes) = (fs.used_pct(), fs.inodes_pct());
    let observed = format!("{mount}: {space:.0} % space, {inodes:.0} % inodes used");
    let expected = format!("< {:.0} % (crit ≥ {:.0} %)", th.disk_warn, th.disk_crit);
    let level = worst(&[pct_level(space, th), pct_level(inodes, th)]);
    Verdict::new(level, observed, expected)
}

/// Parse an nginx size (`2g`, `512m`, `100k`, `1048576`) into bytes.
pub fn parse_nginx_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1u64 << 10),
        'm' | 'M' => (&text[..text.len() - 1], 1 << 20),
        'g' | 'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// The cache dir and `max_size` of the first `proxy_cache_path` in an nginx
/// config text (comments ignored).
pub fn parse_proxy_cache_path(conf: &str) -> Option<(String, Option<u64>)> {
    let text: String = conf
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    let at = text.find("proxy_cache_path")?;
    let statement = text[at..].split(';').next()?;
    let mut words = statement.split_whitespace().skip(1);
    let dir = words.next()?.to_string();
    let max = words
        .find_map(|w| w.strip_prefix("max_size="))
        .and_then(parse_nginx_size);
    Some((dir, max))
}

/// Can the cache's filesystem hold `max_size` (free space plus what the cache
/// already holds), and are its inodes below the thresholds? A cache that
/// cannot reach max_size fills the disk under nginx's feet instead.
pub fn judge_cache_disk(
    max_size: Option<u64>,
    fs: &FsUse,
    cache_bytes: u64,
    th: &Thresholds,
) -> Verdict {
    let mib = |b: u64| b >> 20;
    let room = fs.avail.saturating_add(cache_bytes);
    let inodes = fs.inodes_pct();
    let observed = format!(
        "cache {} MiB + free {} MiB = room {} MiB, max_size {}, inodes {inodes:.0} %",
        mib(cache_bytes),
        mib(fs.avail),
        mib(room),
        max_size.map_or("unset".to_string(), |m| format!("{} MiB", mib(m)))
    );
    let expected = "room ≥ max_size, max_size set".to_string();
    let space = match max_size {
        None => Level::Fail(Severity::Warn),
        Some(max) if room < max => Level::Fail(Severity::Warn),
        Some(_) => Level::Pass,
    };
    Verdict::new(worst(&[space, pct_level(inodes, th)]), observed, expected)
}

// ---- SD-card wear ---------------------------------------------------------

/// What the SD-wear check reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WearFacts {
    /// /proc/mounts text.
    pub mounts: String,
    /// journald.conf, then its drop-ins in order (later wins).
    pub journald: Vec<String>,
}

/// `Storage=` as journald would read it (last assignment wins, default `auto`).
pub fn journald_storage(files: &[String]) -> String {
    let mut storage = "auto".to_string();
    for text in files {
        for line in text.lines() {
            let line = line.trim();
            if let Some(value) = line.strip_prefix("Storage=") {
                storage = value.trim().to_string();
            }
        }
    }
    storage
}

/// `/` noatime, `/tmp` a tmpfs, journald volatile: each miss named.
pub fn judge_sd_wear(facts: &WearFacts) -> Verdict {
    let mut root_opts = None;
    let mut tmp_fs = None;
    for line in facts.mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        match fields[1] {
            "/" => root_opts = Some(fields[3].to_string()),
            "/tmp" => tmp_fs = Some(fields[2].to_string()),
            _ => {}
        }
    }
    let mut misses = Vec::new();
    match &root_opts {
        Some(opts) if opts.split(',').any(|o| o == "noatime") => {}
        Some(opts) => misses.push(format!("/ mounted {opts} (no noatime)")),
        None => misses.push("/ not in /proc/mounts".to_string()),
    }
    match tmp_fs.as_deref() {
        Some("tmpfs") => {}
        Some(other) => misses.push(format!("/tmp is {other}")),
        None => misses.push("/tmp not a separate tmpfs".to_string()),
    }
    let storage = journald_storage(&facts.journald);
    if storage != "volatile" && storage != "none" {
        misses.push(format!("journald Storage={storage}"));
    }
    let expected = "/ noatime, /tmp tmpfs, journald Storage=volatile";
    if misses.is_empty() {
        Verdict::pass("/ noatime, /tmp tmpfs, journald volatile", expected)
    } else {
        Verdict::fail(Severity::Warn, misses.join("; "), expected)
    }
}

// ---- Pi power --------------------------------------------------------------

/// `vcgencmd get_throttled` (`throttled=0x50005`); `None` when vcgencmd is absent.
pub fn judge_throttle(output: Option<&str>) -> Verdict {
    let expected = "throttled=0x0";
    let Some(output) = output else {
        return Verdict::new(Level::Skip("no vcgencmd (not a Pi)".into()), "-", expected);
    };
    let hex = output
        .trim()
        .trim_start_matches("throttled=")
        .trim_start_matches("0x");
    let Ok(bits) = u32::from_str_radix(hex, 16) else {
        return Verdict::fail(
            Severity::Warn,
            format!("unreadable: {}", output.trim()),
            expected,
        );
    };
    const NOW: [(u32, &str); 4] = [
        (0, "under-voltage now"),
        (1, "frequency capped now"),
        (2, "throttled now"),
        (3, "soft temperature limit now"),
    ];
    const PAST: [(u32, &str); 4] = [
        (16, "under-voltage since boot"),
        (17, "capped since boot"),
        (18, "throttled since boot"),
        (19, "soft temperature limit since boot"),
    ];
    let names = |table: &[(u32, &'static str)]| {
        table
            .iter()
            .filter(|(bit, _)| bits & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
    };
    let (now, past) = (names(&NOW), names(&PAST));
    let observed = format!("throttled=0x{bits:x}");
    if !now.is_empty() {
        Verdict::fail(
            Severity::Crit,
            format!("{observed}: {}", now.join(", ")),
            expected,
        )
    } else if !past.is_empty() {
        Verdict::fail(
            Severity::Warn,
            format!("{observed}: {}", past.join(", ")),
            expected,
        )
    } else {
        Verdict::pass(observed, expected)
    }
}

// ---- edge ------------------------------------------------------------------

/// `nginx -t`: its exit status and the last line of what it printed.
pub fn judge_nginx_t(success: bool, stderr: &str) -> Verdict {
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.contains("emerg") || l.contains("failed") || l.contains("[warn]"))
        .or_else(|| stderr.lines().last())
        .unwrap_or("")
        .trim()
        .to_string();
    if success {
        Verdict::pass("nginx -t: syntax is ok, test is successful", "exit 0")
    } else {
        Verdict::fail(Severity::Crit, format!("nginx -t: {last}"), "exit 0")
    }
}

/// What a GET to a frontend answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeAnswer {
    /// HTTP status.
    pub status: u16,
    /// `X-OKOME-Node`.
    pub node: Option<String>,
    /// `X-Cache-Status`.
    pub cache: Option<String>,
}

/// The frontend answered by its own address must name itself and carry a
/// cache status; `Err` is how the request failed (nginx down, refused).
pub fn judge_edge_answer(answer: &Result<EdgeAnswer, String>, own_name: &str) -> Verdict {
    let expected = format!("2xx/3xx, X-OKOME-Node {own_name}, X-Cache-Status set");
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Verdict::fail(Severity::Crit, e.clone(), expected),
    };
    let node = answer.node.as_deref().unwrap_or("(none)");
    let cache = answer.cache.as_deref().unwrap_or("(none)");
    let observed = format!(
        "HTTP {}, X-OKOME-Node {node}, X-Cache-Status {cache}",
        answer.status
    );
    let good = (200..400).contains(&answer.status)
        && answer.node.as_deref() == Some(own_name)
        && answer.cache.as_deref().is_some_and(|c| !c.is_empty());
    if good {
        Verdict::pass(observed, expected)
    } else {
        Verdict::fail(Severity::Crit, observed, expected)
    }
}

/// The orchestrator's health: a 2xx answer, or how it failed.
pub fn judge_orchestrator(answer: &Result<u16, String>) -> Verdict {
    match answer {
        Ok(status) if (200..300).contains(status) => Verdict::pass(format!("HTTP {status}"), "2xx"),
        Ok(status) => Verdict::fail(Severity::Crit, format!("HTTP {status}"), "2xx"),
        Err(e) => Verdict::fail(Severity::Crit, e.clone(), "2xx"),
    }
}

/// The gate flag vs the orchestrator's health. Open while the orchestrator
/// is down is CRITICAL (nginx waits on a dead upstream: users see errors and
/// hangs); closed while it is healthy is WARNING (the probe's rise
/// hysteresis may not have run yet: `--wait` sees it settle); a maintenance
/// pin explains a closed gate.
pub fn judge_gate(gate_closed: bool, pinned: bool, orchestrator_ok: bool) -> Verdict {
    let state = if gate_closed { "closed" } else { "open" };
    let health = if orchestrator_ok { "healthy" } else { "down" };
    let observed = format!(
        "gate {state}{}, orchestrator {health}",
        if pinned { " (maintenance pin)" } else { "" }
    );
    let expected = "open while healthy, closed while down";
    match (gate_closed, orchestrator_ok) {
        (false, false) => Verdict::fail(Severity::Crit, observed, expected),
        (true, true) if pinned => Verdict::fail(Severity::Info, observed, expected),
        (true, true) => Verdict::fail(Severity::Warn, observed, expected),
        _ => Verdict::pass(observed, expected),
    }
}

/// The value of an unlabelled sample `name` in a Prometheus textfile.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == name).then(|| words.next()?.parse().ok())?
        })
}

/// A `*_last_run_timestamp_seconds` no older than `max_age` seconds; a
/// missing file or sample is stale too (the tool never ran since boot).
pub fn judge_fresh(
    text: Option<&str>,
    name: &str,
    now: f64,
    max_age: f64,
    fail: Severity,
) -> Verdict {
    let expected = format!("{name} younger than {max_age:.0} s");
    let Some(text) = text else {
        return Verdict::fail(fail, "no textfile (never ran since boot?)", expected);
    };
    match metric_value(text, name) {
        None => Verdict::fail(fail, format!("no {name} sample"), expected),
        Some(at) => {
            let age = now - at;
            let observed = format!("last run {age:.0} s ago");
            if age <= max_age {
                Verdict::pass(observed, expected)
            } else {
                Verdict::fail(fail, observed, expected)
            }
        }
    }
}

/// keepalived's last reported state vs whether this node holds the VIP.
/// `nginx_running`: whether the local nginx.service is active/running (None:
/// unknown). FAULT is keepalived's answer to a failing track script
/// (`okome-health-probe --check-local`, the LOCAL nginx): with nginx down
/// that is expected (unit.nginx says it, once); with nginx running it means
/// the track script itself fails and this frontend can never take the VIP —
/// on both frontends, the VIP held by none while every nginx serves.
pub fn judge_vrrp(
    holds_vip: bool,
    keepalived_state: Option<&str>,
    nginx_running: Option<bool>,
) -> Verdict {
    let held = if holds_vip {
        "holds the VIP"
    } else {
        "does not hold the VIP"
    };
    let expected = "MASTER ⇔ holds the VIP; no FAULT while nginx runs";
    let Some(state) = keepalived_state else {
        return Verdict::new(
            Level::Skip("keepalived reported no state (journal)".into()),
            held,
            expected,
        );
    };
    let observed = format!("keepalived {state}, {held}");
    if (state == "MASTER") != holds_vip {
        Verdict::fail(Severity::Crit, observed, expected)
    } else if state == "FAULT" && nginx_running == Some(true) {
        Verdict::fail(
            Severity::Crit,
            format!("{observed}, while nginx runs: its track script fails"),
            expected,
        )
    } else {
        Verdict::pass(observed, expected)
    }
}

// ---- backend ----------------------------------------------------------------

/// PING through the tools' user: `Ok(reply)` or the error. `NOPERM` still
/// proves the server is up and the password right (the `edge` user may only
/// SET/GET), so it passes.
pub fn judge_redis_ping(reply: &Result<String, String>) -> Verdict {
    match reply {
        Ok(reply) => Verdict::pass(reply.clone(), "PONG (or NOPERM after a good AUTH)"),
        Err(e) if e.contains("NOPERM") => {
            Verdict::pass("authenticated; PING not in this user's ACL", "PONG")
        }
        Err(e) => Verdict::fail(Severity::Crit, e.clone(), "PONG"),
    }
}

/// maxmemory set, below physical RAM (crit), at most half of it (warn).
pub fn judge_maxmemory(maxmemory: u64, ram: u64) -> Verdict {
    let mib = |b: u64| b >> 20;
    let observed = format!("maxmemory {} MiB, RAM {} MiB", mib(maxmemory), mib(ram));
    let expected = "0 < maxmemory ≤ RAM/2";
    if maxmemory == 0 || maxmemory >= ram {
        Verdict::fail(Severity::Crit, observed, expected)
    } else if maxmemory > ram / 2 {
        Verdict::fail(Severity::Warn, observed, expected)
    } else {
        Verdict::pass(observed, expected)
    }
}

/// maxmemory-policy allkeys-lru.
pub fn judge_policy(policy: &str) -> Verdict {
    let observed = format!("maxmemory-policy {policy}");
    if policy == "allkeys-lru" {
        Verdict::pass(observed, "allkeys-lru")
    } else {
        Verdict::fail(Severity::Warn, observed, "allkeys-lru")
    }
}

/// `save ""` and `appendonly no`.
pub fn judge_persistence(save: &str, appendonly: &str) -> Verdict {
    let observed = format!("save \"{save}\", appendonly {appendonly}");
    if save.trim().is_empty() && appendonly == "no" {
        Verdict::pass(observed, "save \"\", appendonly no")
    } else {
        Verdict::fail(Severity::Warn, observed, "save \"\", appendonly no")
    }
}

/// The `flags` of `ACL GETUSER default`: must hold `off`.
pub fn judge_default_user(flags: Option<&[String]>) -> Verdict {
    let expected = "default user off";
    match flags {
        None => Verdict::pass("no default user", expected),
        Some(flags) if flags.iter().any(|f| f == "off") => {
            Verdict::pass(format!("default user flags {}", flags.join(" ")), expected)
        }
        Some(flags) => Verdict::fail(
            Severity::Crit,
            format!("default user flags {}", flags.join(" ")),
            expected,
        ),
    }
}

/// `vm.overcommit_memory` 1 and THP not `[always]`.
pub fn judge_kernel(overcommit: Option<&str>, thp: Option<&str>) -> Verdict {
    let mut misses = Vec::new();
    let overcommit = overcommit.map(str::trim);
    if overcommit != Some("1") {
        misses.push(format!(
            "vm.overcommit_memory {}",
            overcommit.unwrap_or("unreadable")
        ));
    }
    if let Some(thp) = thp
        && thp.contains("[always]")
    {
        misses.push("transparent_hugepage [always]".to_string());
    }
    let expected = "vm.overcommit_memory 1, THP madvise/never";
    if misses.is_empty() {
        Verdict::pass("vm.overcommit_memory 1, THP not always", expected)
    } else {
        Verdict::fail(Severity::Warn, misses.join("; "), expected)
    }
}

// ---- cluster -----------------------------------------------------------------

/// Exactly one holder among the frontends that answered (`holders` lists
/// the ones that hold the VIP; `unknown` those we could not ask).
pub fn judge_vip_holders(holders: &[String], unknown: &[String]) -> Verdict {
    let observed = if holders.is_empty() {
        "no frontend holds the VIP".to_string()
    } else {
        format!("held by {}", holders.join(" and "))
    };
    let observed = if unknown.is_empty() {
        observed
    } else {
        format!("{observed} (not asked: {})", unknown.join(", "))
    };
    if holders.len() == 1 {
        Verdict::pass(observed, "exactly one holder")
    } else if holders.is_empty() && !unknown.is_empty() {
        // The unreachable node may hold it: node.ssh already says CRITICAL.
        Verdict::fail(Severity::Warn, observed, "exactly one holder")
    } else {
        Verdict::fail(Severity::Crit, observed, "exactly one holder")
    }
}

/// Every frontend's request through the VIP names `holder`.
pub fn judge_vip_response(holder: &str, seen: &[(String, Result<String, String>)]) -> Verdict {
    let mut wrong = Vec::new();
    for (from, answer) in seen {
        match answer {
            Ok(node) if node == holder => {}
            Ok(node) => wrong.push(format!("from {from}: X-OKOME-Node {node}")),
            Err(e) => wrong.push(format!("from {from}: {e}")),
        }
    }
    let expected = format!("X-OKOME-Node {holder} from every frontend");
    if wrong.is_empty() {
        Verdict::pass(
            format!("{holder} from {} frontend(s)", seen.len()),
            expected,
        )
    } else {
        Verdict::fail(Severity::Crit, wrong.join("; "), expected)
    }
}

/// A config file with this node's own identity (its name, its
/// `X-OKOME-Node`, its address) replaced by placeholders, longest first, so
/// two frontends' files compare equal when they differ only where each must
/// name itself; a file naming the OTHER node (copied across) still differs.
pub fn without_identity(text: &[u8], identity: &[(&str, &str)]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(text) else {
        return text.to_vec();
    };
    let mut pairs: Vec<&(&str, &str)> = identity
        .iter()
        .filter(|(from, _)| !from.is_empty())
        .collect();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut out = text.to_string();
    for (from, to) in pairs {
        out = out.replace(from, to);
    }
    out.into_bytes()
}

/// Fingerprints (`key → value`, e.g. package → version, file → sha256) per
/// node: every key must have one value across nodes; the minority is named.
pub fn judge_drift(per_node: &[(String, BTreeMap<String, String>)]) -> Verdict {
    let mut keys: Vec<&String> = per_node.iter().flat_map(|(_, m)| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut differ = Vec::new();
    for key in keys {
        let values: Vec<(&str, &str)> = per_node
            .iter()
            .map(|(node, m)| {
                (
                    node.as_str(),
                    m.get(key).map_or("(missing)", String::as_str),
                )
            })
            .collect();
        // A file's value is `RAW|MASKED` (its hash as is, and with the
        // node's own identity masked): nodes agree when every raw hash is
        // equal (a list naming all nodes) or every masked one is (a file
        // where each node names itself).
        let part = |v: &str, i: usize| v.split('|').nth(i).unwrap_or(v).to_string();
        let agree = |i: usize| {
            values
                .iter()
                .all(|(_, v)| part(v, i) == part(values[0].1, i))
        };
        if !agree(0) && !agree(1) {
            let short = |v: &str| v.chars().take(12).collect::<String>();
            let list: Vec<String> = values
                .iter()
                .map(|(n, v)| format!("{n}={}", short(v)))
                .collect();
            differ.push(format!("{key}: {}", list.join(" ")));
        }
    }
    let expected = "same versions and checksums on every frontend";
    if differ.is_empty() {
        Verdict::pass(format!("{} frontends agree", per_node.len()), expected)
    } else {
        Verdict::fail(Severity::Warn, differ.join("; "), expected)
    }
}

/// Which paths of the published prewarm plan one frontend's cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warmth {
    /// Who published the plan.
    pub plan_node: String,
    /// The plan's paths checked (its best ones).
    pub plan: Vec<String>,
    /// Those this node has a cache file for.
    pub cached: Vec<String>,
}

/// The paths of `plan` that one of `keys` (nginx cache keys,
/// `okome$request_uri`, a canary suffix allowed) holds.
pub fn plan_coverage(plan_node: &str, plan: &[String], keys: &[String]) -> Warmth {
    let cached = plan
        .iter()
        .filter(|path| {
            let key = format!("okome{path}");
            keys.iter().any(|k| {
                k == &key || k.starts_with(&format!("{key}|")) || k.starts_with(&format!("{key}:"))
            })
        })
        .cloned()
        .collect();
    Warmth {
        plan_node: plan_node.to_string(),
        plan: plan.to_vec(),
        cached,
    }
}

/// Each standby (a frontend that does not hold the VIP) must cache ≥ 90 %
/// of the plan paths the holder itself has cached (a path the holder does
/// not cache, `/health` say, is not cacheable and does not count), or the
/// next failover starts cold: a miss storm.
pub fn judge_standby_warm(
    holder: Option<&Warmth>,
    standbys: &[(String, Option<Warmth>)],
) -> Verdict {
    let expected = "each standby caches ≥ 90 % of what the holder caches of its plan";
    if standbys.is_empty() {
        return Verdict::new(
            Level::Skip("no standby frontend answered".into()),
            "-",
            expected,
        );
    }
    let Some(holder) = holder.filter(|h| !h.cached.is_empty()) else {
        return Verdict::new(
            Level::Skip("no published prewarm plan the holder caches".into()),
            "-",
            expected,
        );
    };
    let mut parts = Vec::new();
    let mut cold = false;
    for (name, warmth) in standbys {
        let have: Vec<&String> = warmth
            .as_ref()
            .map(|w| {
                holder
                    .cached
                    .iter()
                    .filter(|p| w.cached.contains(p))
                    .collect()
            })
            .unwrap_or_default();
        let total = holder.cached.len();
        let good = warmth.is_some() && have.len() * 10 >= total * 9;
        cold |= !good;
        let mut part = format!(
            "{name} {}/{total} of {}'s plan",
            have.len(),
            holder.plan_node
        );
        if warmth.is_none() {
            part = format!("{name}: plan not readable");
        } else if !good {
            let missing: Vec<&str> = holder
                .cached
                .iter()
                .filter(|p| !have.contains(p))
                .take(5)
                .map(String::as_str)
                .collect();
            part.push_str(&format!(" (missing {})", missing.join(" ")));
        }
        parts.push(part);
    }
    let level = if cold {
        Level::Fail(Severity::Warn)
    } else {
        Level::Pass
    };
    Verdict::new(level, parts.join("; "), expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::{Crit, Info, Warn};

    fn level(v: Verdict) -> Level {
        v.level
    }

    #[test]
    fn standby_warmth_against_the_plan() {
        let plan: Vec<String> = (0..11).map(|i| format!("/p{i}")).collect();
        let keys = |n: usize| (0..n).map(|i| format!("okome/p{i}")).collect::<Vec<_>>();
        // The holder caches ten of the eleven (/p10 is not cacheable).
        let holder = plan_coverage("frontend-a", &plan, &keys(10));
        assert_eq!(holder.cached.len(), 10);
        let standby = |n| {
            (
                "b".to_string(),
                Some(plan_coverage("frontend-a", &plan, &keys(n))),
            )
        };
        assert_eq!(
            level(judge_standby_warm(Some(&holder), &[standby(9)])),
            Level::Pass
        );
        let v = judge_standby_warm(Some(&holder), &[standby(5)]);
        assert_eq!(v.level, Level::Fail(Warn));
        assert!(
            v.observed
                .contains("b 5/10 of frontend-a's plan (missing /p5"),
            "{}",
            v.observed
        );
        assert!(!v.observed.contains("/p10"), "{}", v.observed);
        assert_eq!(
            level(judge_standby_warm(Some(&holder), &[("b".into(), None)])),
            Level::Fail(Warn)
        );
        assert!(matches!(
            level(judge_standby_warm(Some(&holder), &[])),
            Level::Skip(_)
        ));
        assert!(matches!(
            level(judge_standby_warm(None, &[standby(5)])),
            Level::Skip(_)
        ));
        // "/p1" must not be satisfied by "okome/p10".
        let w = plan_coverage("a", &["/p1".to_string()], &["okome/p10".to_string()]);
        assert!(w.cached.is_empty());
    }

    #[test]
    fn units_need_active_running_or_waiting_timers() {
        let show = |a: &str, s: &str, r: &str| {
            parse_unit_show(&format!(
                "LoadState=loaded\nActiveState={a}\nSubState={s}\nResult={r}\n"
            ))
        };
        let cases = [
            (
                "nginx.service",
                show("active", "running", "success"),
                Level::Pass,
            ),
            (
                "nginx.service",
                show("failed", "failed", "exit-code"),
                Level::Fail(Crit),
            ),
            (
                "nginx.service",
                show("activating", "auto-restart", "exit-code"),
                Level::Fail(Crit),
            ),
            (
                "nginx.service",
                show("inactive", "dead", "success"),
                Level::Fail(Crit),
            ),
            ("x.timer", show("active", "waiting", "success"), Level::Pass),
            ("x.timer", show("active", "running", "success"), Level::Pass),
            (
                "x.timer",
                show("inactive", "dead", "success"),
                Level::Fail(Crit),
            ),
            (
                "nginx.service",
                show("active", "exited", "success"),
                Level::Fail(Crit),
            ),
        ];
        for (unit, state, want) in cases {
            assert_eq!(
                level(judge_unit(unit, &state, Crit)),
                want,
                "{unit} {state:?}"
            );
        }
        let missing = parse_unit_show("LoadState=not-found\nActiveState=inactive\nSubState=dead\n");
        let v = judge_unit("fail2ban.service", &missing, Warn);
        assert_eq!(v.level, Level::Fail(Warn));
        assert!(v.observed.contains("not-found"), "{}", v.observed);
        let crashed = show("failed", "failed", "core-dump");
        assert!(
            judge_unit("nginx.service", &crashed, Crit)
                .observed
                .contains("core-dump")
        );
    }

    #[test]
    fn memory_and_swap_thresholds() {
        let th = Thresholds::default();
        let mem = |avail, swap_total, swap_free| MemInfo {
            total: 1000,
            available: avail,
            swap_total,
            swap_free,
        };
        let cases = [
            (500, Level::Pass),
            (100, Level::Pass),
            (99, Level::Fail(Warn)),
            (49, Level::Fail(Crit)),
        ];
        for (avail, want) in cases {
            assert_eq!(level(judge_memory(&mem(avail, 0, 0), &th)), want, "{avail}");
        }
        assert_eq!(level(judge_swap(&mem(500, 0, 0), &th)), Level::Pass);
        assert_eq!(level(judge_swap(&mem(500, 100, 60), &th)), Level::Pass);
        assert_eq!(
            level(judge_swap(&mem(500, 100, 50), &th)),
            Level::Fail(Warn)
        );
        let parsed = parse_meminfo("MemTotal:  948304 kB\nMemFree: 1 kB\nMemAvailable:   612000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").unwrap();
        assert_eq!((parsed.total, parsed.available), (948_304, 612_000));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn disk_space_and_inodes_each_count() {
        let th = Thresholds::default();
        let fs = |size, avail, files, free| FsUse {
            size,
            free: avail,
            avail,
            files,
            files_free: free,
        };
        let cases = [
            (fs(100, 50, 100, 50), Level::Pass),
            (fs(100, 14, 100, 50), Level::Fail(Warn)),
            (fs(100, 4, 100, 50), Level::Fail(Crit)),
            (fs(100, 50, 100, 4), Level::Fail(Crit)),
            (fs(100, 10, 100, 4), Level::Fail(Crit)),
            (fs(100, 50, 0, 0), Level::Pass),
        ];
        // 5 % reserved for root: df's 60 % is 60 %, not 65 %.
        let reserved = FsUse {
            size: 100,
            free: 40,
            avail: 35,
            files: 0,
            files_free: 0,
        };
        assert!(
            judge_disk("/", &reserved, &th)
                .observed
                .starts_with("/: 63 % space"),
            "{}",
            judge_disk("/", &reserved, &th).observed
        );
        for (fs, want) in cases {
            assert_eq!(level(judge_disk("/", &fs, &th)), want, "{fs:?}");
        }
    }

    #[test]
    fn cache_room_against_max_size() {
        let th = Thresholds::default();
        let gib = 1u64 << 30;
        let fs = FsUse {
            size: 8 * gib,
            free: gib,
            avail: gib,
            files: 100,
            files_free: 90,
        };
        assert_eq!(
            level(judge_cache_disk(Some(2 * gib), &fs, gib, &th)),
            Level::Pass
        );
        assert_eq!(
            level(judge_cache_disk(Some(2 * gib), &fs, 0, &th)),
            Level::Fail(Warn)
        );
        assert_eq!(
            level(judge_cache_disk(None, &fs, 0, &th)),
            Level::Fail(Warn)
        );
        let conf = "# proxy_cache_path /nope\nproxy_cache_path /var/cache/nginx/okome levels=1:2 keys_zone=okome_cache:20m\n   max_size=2g inactive=7d;\n";
        assert_eq!(
            parse_proxy_cache_path(conf),
            Some(("/var/cache/nginx/okome".to_string(), Some(2 * gib)))
        );
        assert_eq!(parse_nginx_size("512m"), Some(512 << 20));
        assert_eq!(parse_nginx_size("12"), Some(12));
        assert_eq!(parse_nginx_size("x"), None);
    }

    #[test]
    fn sd_wear_names_each_miss() {
        let good = WearFacts {
            mounts: "/dev/root / ext4 rw,noatime,commit=60 0 0\ntmpfs /tmp tmpfs rw,noatime 0 0\n"
                .into(),
            journald: vec!["[Journal]\nStorage=volatile\n".into()],
        };
        assert_eq!(level(judge_sd_wear(&good)), Level::Pass);
        let relatime = WearFacts {
            mounts: "/dev/root / ext4 rw,relatime 0 0\n".into(),
            journald: vec![
                "[Journal]\nStorage=volatile\n".into(),
                "Storage=persistent\n".into(),
            ],
        };
        let v = judge_sd_wear(&relatime);
        assert_eq!(v.level, Level::Fail(Warn));
        for word in ["no noatime", "/tmp not", "Storage=persistent"] {
            assert!(v.observed.contains(word), "{word} in {}", v.observed);
        }
        assert_eq!(journald_storage(&[]), "auto");
    }

    #[test]
    fn throttle_bits() {
        let cases = [
            (None, Level::Skip("no vcgencmd (not a Pi)".into())),
            (Some("throttled=0x0\n"), Level::Pass),
            (Some("throttled=0x50000"), Level::Fail(Warn)),
            (Some("throttled=0x50005"), Level::Fail(Crit)),
            (Some("garbage"), Level::Fail(Warn)),
        ];
        for (out, want) in cases {
            assert_eq!(level(judge_throttle(out)), want, "{out:?}");
        }
        assert!(
            judge_throttle(Some("throttled=0x1"))
                .observed
                .contains("under-voltage now")
        );
    }

    #[test]
    fn edge_answer_must_name_this_node() {
        let answer = |status, node: Option<&str>, cache: Option<&str>| {
            Ok(EdgeAnswer {
                status,
                node: node.map(Into::into),
                cache: cache.map(Into::into),
            })
        };
        let cases = [
            (answer(200, Some("frontend-a"), Some("HIT")), Level::Pass),
            (answer(302, Some("frontend-a"), Some("MISS")), Level::Pass),
            (
                answer(200, Some("frontend-b"), Some("HIT")),
                Level::Fail(Crit),
            ),
            (answer(200, Some("frontend-a"), None), Level::Fail(Crit)),
            (
                answer(502, Some("frontend-a"), Some("MISS")),
                Level::Fail(Crit),
            ),
            (Err("connection refused".to_string()), Level::Fail(Crit)),
        ];
        for (a, want) in cases {
            assert_eq!(level(judge_edge_answer(&a, "frontend-a")), want, "{a:?}");
        }
    }

    #[test]
    fn gate_against_health() {
        let cases = [
            (false, false, true, Level::Pass),
            (true, false, false, Level::Pass),
            (false, false, false, Level::Fail(Crit)),
            (true, false, true, Level::Fail(Warn)),
            (true, true, true, Level::Fail(Info)),
            (true, true, false, Level::Pass),
        ];
        for (closed, pinned, ok, want) in cases {
            assert_eq!(
                level(judge_gate(closed, pinned, ok)),
                want,
                "{closed} {pinned} {ok}"
            );
        }
        assert_eq!(level(judge_orchestrator(&Ok(204))), Level::Pass);
        assert_eq!(level(judge_orchestrator(&Ok(503))), Level::Fail(Crit));
        assert_eq!(
            level(judge_orchestrator(&Err("timeout".into()))),
            Level::Fail(Crit)
        );
    }

    #[test]
    fn freshness_of_textfile_metrics() {
        let name = "okome_health_probe_last_run_timestamp_seconds";
        let text = format!("# HELP {name} x\n# TYPE {name} gauge\n{name} 1000\nother 5\n");
        let cases = [
            (Some(text.as_str()), 1010.0, Level::Pass),
            (Some(text.as_str()), 1031.0, Level::Fail(Crit)),
            (Some("other 5\n"), 1000.0, Level::Fail(Crit)),
            (None, 1000.0, Level::Fail(Crit)),
        ];
        for (t, now, want) in cases {
            assert_eq!(
                level(judge_fresh(t, name, now, 30.0, Crit)),
                want,
                "{t:?} {now}"
            );
        }
    }

    #[test]
    fn vrrp_state_against_ip_addr() {
        let up = Some(true);
        assert_eq!(level(judge_vrrp(true, Some("MASTER"), up)), Level::Pass);
        assert_eq!(level(judge_vrrp(false, Some("BACKUP"), up)), Level::Pass);
        assert_eq!(
            level(judge_vrrp(false, Some("MASTER"), up)),
            Level::Fail(Crit)
        );
        assert_eq!(
            level(judge_vrrp(true, Some("BACKUP"), up)),
            Level::Fail(Crit)
        );
        assert!(matches!(level(judge_vrrp(true, None, up)), Level::Skip(_)));
        // Stopped (the cluster lab: keepalived's notify says STOP on its way
        // out): agrees with not holding; unit.keepalived says it is down.
        assert_eq!(level(judge_vrrp(false, Some("STOP"), up)), Level::Pass);
        assert_eq!(level(judge_vrrp(true, Some("STOP"), up)), Level::Fail(Crit));
    }

    #[test]
    fn vrrp_fault_while_nginx_runs_is_a_failing_track_script() {
        // FAULT with nginx down: what keepalived must do (unit.nginx is red).
        assert_eq!(
            level(judge_vrrp(false, Some("FAULT"), Some(false))),
            Level::Pass
        );
        // FAULT with nginx up: the track script fails on its own; this
        // frontend can never take the VIP (the cluster lab: both frontends
        // FAULT, the VIP held by none, every nginx serving).
        let v = judge_vrrp(false, Some("FAULT"), Some(true));
        assert_eq!(v.level, Level::Fail(Crit));
        assert!(v.observed.contains("track script"), "{}", v.observed);
        // nginx's state unknown: not judged on it.
        assert_eq!(level(judge_vrrp(false, Some("FAULT"), None)), Level::Pass);
    }

    #[test]
    fn redis_settings() {
        let mib = 1u64 << 20;
        let cases = [
            (256 * mib, 1024 * mib, Level::Pass),
            (0, 1024 * mib, Level::Fail(Crit)),
            (1024 * mib, 1024 * mib, Level::Fail(Crit)),
            (4096 * mib, 1024 * mib, Level::Fail(Crit)),
            (600 * mib, 1024 * mib, Level::Fail(Warn)),
        ];
        for (max, ram, want) in cases {
            assert_eq!(level(judge_maxmemory(max, ram)), want, "{max} {ram}");
        }
        assert_eq!(level(judge_policy("allkeys-lru")), Level::Pass);
        assert_eq!(level(judge_policy("noeviction")), Level::Fail(Warn));
        assert_eq!(level(judge_persistence("", "no")), Level::Pass);
        assert_eq!(level(judge_persistence("3600 1", "no")), Level::Fail(Warn));
        assert_eq!(level(judge_persistence("", "yes")), Level::Fail(Warn));
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            level(judge_default_user(Some(&flags(&[
                "off",
                "sanitize-payload"
            ])))),
            Level::Pass
        );
        assert_eq!(
            level(judge_default_user(Some(&flags(&["on", "nopass"])))),
            Level::Fail(Crit)
        );
        assert_eq!(level(judge_redis_ping(&Ok("PONG".into()))), Level::Pass);
        assert_eq!(
            level(judge_redis_ping(&Err(
                "NOPERM this user has no permissions".into()
            ))),
            Level::Pass
        );
        assert_eq!(
            level(judge_redis_ping(&Err("WRONGPASS".into()))),
            Level::Fail(Crit)
        );
        assert_eq!(
            level(judge_kernel(Some("1\n"), Some("always madvise [never]"))),
            Level::Pass
        );
        assert_eq!(level(judge_kernel(Some("0"), None)), Level::Fail(Warn));
        assert_eq!(
            level(judge_kernel(Some("1"), Some("[always] madvise never"))),
            Level::Fail(Warn)
        );
    }

    #[test]
    fn drift_agrees_on_raw_or_on_masked_hashes() {
        let node = |name: &str, v: &str| {
            (
                name.to_string(),
                [("/etc/f".to_string(), v.to_string())]
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        // A list of all nodes: raw equal, masked differs.
        assert_eq!(
            level(judge_drift(&[node("a", "r1|m1"), node("b", "r1|m2")])),
            Level::Pass
        );
        // Each names itself: raw differs, masked equal.
        assert_eq!(
            level(judge_drift(&[node("a", "r1|m1"), node("b", "r2|m1")])),
            Level::Pass
        );
        // Edited: both differ.
        assert_eq!(
            level(judge_drift(&[node("a", "r1|m1"), node("b", "r2|m2")])),
            Level::Fail(Warn)
        );
        // Versions have no mask.
        assert_eq!(
            level(judge_drift(&[node("a", "1:0.1"), node("b", "1:0.2")])),
            Level::Fail(Warn)
        );
    }

    #[test]
    fn own_identity_does_not_count_as_drift() {
        let a = b"add_header X-OKOME-Node frontend-a always;\nlisten 10.213.86.20:80;\n";
        let b = b"add_header X-OKOME-Node frontend-b always;\nlisten 10.213.86.21:80;\n";
        let id_a = [("frontend-a", "@NODE@"), ("10.213.86.20", "@ADDRESS@")];
        let id_b = [("frontend-b", "@NODE@"), ("10.213.86.21", "@ADDRESS@")];
        assert_eq!(without_identity(a, &id_a), without_identity(b, &id_b));
        // A file copied from the other node still differs.
        assert_ne!(without_identity(a, &id_a), without_identity(a, &id_b));
        assert_eq!(without_identity(b"x", &[("", "@NODE@")]), b"x");
    }

    #[test]
    fn cluster_invariants() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(level(judge_vip_holders(&s(&["a"]), &[])), Level::Pass);
        assert_eq!(
            level(judge_vip_holders(&s(&["a", "b"]), &[])),
            Level::Fail(Crit)
        );
        assert_eq!(level(judge_vip_holders(&[], &[])), Level::Fail(Crit));
        assert_eq!(level(judge_vip_holders(&[], &s(&["b"]))), Level::Fail(Warn));
        let seen = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(f, n)| (f.to_string(), Ok(n.to_string())))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            level(judge_vip_response("a", &seen(&[("a", "a"), ("b", "a")]))),
            Level::Pass
        );
        assert_eq!(
            level(judge_vip_response("a", &seen(&[("a", "a"), ("b", "b")]))),
            Level::Fail(Crit)
        );
        let fp = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let same = vec![
            (
                "a".to_string(),
                fp(&[("okome-frontend", "0.1.0"), ("/etc/nginx/x", "abc")]),
            ),
            (
                "b".to_string(),
                fp(&[("okome-frontend", "0.1.0"), ("/etc/nginx/x", "abc")]),
            ),
        ];
        assert_eq!(level(judge_drift(&same)), Level::Pass);
        let mut drifted = same.clone();
        drifted[1].1.insert("/etc/nginx/x".into(), "def".into());
        let v = judge_drift(&drifted);
        assert_eq!(v.level, Level::Fail(Warn));
        assert!(
            v.observed.contains("/etc/nginx/x: a=abc b=def"),
            "{}",
            v.observed
        );
    }
}

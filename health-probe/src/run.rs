//! One run: lock, load state, check (and re-check), move the gate on a
//! transition only, heartbeat, save what changed.
//!
//! The order matters. Configuration problems (state directory missing or not
//! writable) are found before anything is touched, so a bad config exits 2
//! with the gate as it was. The gate file is written before the state that
//! counts the transition, so a crash in between repeats the transition rather
//! than forgetting it. The heartbeat runs after the gate decision with its own
//! deadline, so Redis can never delay or change the gate.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use okome_common::exit;
use okome_common::fsutil::{self, RunLock};

use crate::check::{self, Check, Deadlines};
use crate::cli::{Config, Mode};
use crate::heartbeat;
use crate::hysteresis::{self, Gate, State, Step};
use crate::json;
use crate::metrics;
use crate::pin::{self, Pin};

/// State file name inside the state directory.
pub const STATE_FILE: &str = "health-probe.state";
/// Lock file name inside the state directory.
pub const LOCK_FILE: &str = "health-probe.lock";
/// Textfile name inside the metrics directory.
pub const TEXTFILE: &str = "okome-health-probe.prom";

/// Why a run could not do its job.
#[derive(Debug)]
pub enum Error {
    /// A setting clap could not check alone (deadlines over the run budget,
    /// …): exit 2, nothing was read or written.
    Config(crate::cli::ConfigError),
    /// The state directory (or the gate file's) is missing and cannot be
    /// created, or is not writable: a deployment problem, exit 2.
    StateDir {
        /// The directory or file that failed.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// `--pin`/`--unpin` could not write or remove the pin file (not root?):
    /// exit 2, nothing changed.
    Pin {
        /// The pin file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Writing the gate or the state failed mid-run: exit 3.
    Io {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(error) => write!(f, "{error}"),
            Error::StateDir { path, source } => write!(
                f,
                "state directory {} is not usable: {source} (the probe needs to write there; nothing was changed)",
                path.display()
            ),
            Error::Pin { path, source } => write!(
                f,
                "maintenance pin {}: {source} (--pin and --unpin must run as root; nothing was changed)",
                path.display()
            ),
            Error::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::cli::ConfigError> for Error {
    fn from(error: crate::cli::ConfigError) -> Error {
        Error::Config(error)
    }
}

impl exit::ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Config(_) | Error::StateDir { .. } | Error::Pin { .. } => exit::USAGE,
            Error::Io { .. } => exit::INTERNAL,
        }
    }
}

/// What one probe run decided.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The URL probed.
    pub url: String,
    /// The checks made (one, or two with the re-check).
    pub checks: Vec<Check>,
    /// Gate before the run.
    pub gate_before: Gate,
    /// Gate after the run.
    pub gate: Gate,
    /// What the last check did to the hysteresis.
    pub step: Step,
    /// Heartbeat outcome (`None` when not configured).
    pub heartbeat: Option<Result<(), String>>,
    /// Whether the state file was rewritten.
    pub state_written: bool,
    /// Whether the textfile was rewritten.
    pub metrics_written: bool,
    /// Wall time of the checks and pause.
    pub probe_duration: Duration,
    /// Unix time (ms) of the last transition, this run's or an earlier one.
    pub last_transition_ms: Option<u64>,
    /// The maintenance pin holding the gate closed, if any.
    pub pinned: Option<Pin>,
    /// What `--pin` or `--unpin` did before this run's check.
    pub pin_action: Option<PinAction>,
}

/// What `--pin` or `--unpin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAction {
    /// The pin file was written.
    Pinned,
    /// The pin file was removed.
    Unpinned,
    /// `--unpin` found no pin.
    WasNotPinned,
}

impl Decision {
    /// The run's final check passed.
    pub fn upstream_up(&self) -> bool {
        self.checks.last().is_some_and(Check::ok)
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A probe run.
    Probe(Decision),
    /// A `--check-local` run.
    Local {
        /// The local URL.
        url: String,
        /// Its check.
        check: Check,
    },
    /// Another run held the lock; this one did nothing.
    Skipped {
        /// The lock file.
        lock: PathBuf,
    },
}

impl Outcome {
    /// Exit status per the documented table.
    pub fn exit_status(&self) -> u8 {
        match self {
            // --pin and --unpin did what was asked, whatever the gate is now.
            Outcome::Probe(decision) if decision.pin_action.is_some() => exit::OK,
            Outcome::Probe(decision) if decision.gate == Gate::Closed => exit::PROBLEM,
            Outcome::Local { check, .. } if !check.ok() => exit::PROBLEM,
            _ => exit::OK,
        }
    }

    /// One line for a human at a terminal.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Probe(decision) => {
                let last = decision
                    .checks
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let gate = match decision.step {
                    Step::Transition { to, .. } => format!("gate {} (transition)", to.word()),
                    Step::Counting { streak, needed } => {
                        format!(
                            "gate {} ({streak}/{needed} checks towards a transition)",
                            decision.gate.word()
                        )
                    }
                    Step::HeldDown { remaining_ms } => format!(
                        "gate {} (transition held down for {:.1} s more)",
                        decision.gate.word(),
                        remaining_ms as f64 / 1000.0
                    ),
                    Step::Steady => format!("gate {}", decision.gate.word()),
                };
                let word = if decision.upstream_up() { "up" } else { "DOWN" };
                let pinned = match &decision.pinned {
                    Some(pin) => format!(" (pinned for maintenance: {pin})"),
                    None => String::new(),
                };
                format!("{} {word}: {last}; {gate}{pinned}", decision.url)
            }
            Outcome::Local { url, check } => {
                format!(
                    "local nginx {url} {}: {check}",
                    if check.ok() { "up" } else { "DOWN" }
                )
            }
            Outcome::Skipped { lock } => format!("another run holds {}; skipped", lock.display()),
        }
    }

    /// The decision as one JSON object.
    pub fn to_json(&self) -> String {
        let mut object = json::Object::new();
        match self {
            Outcome::Probe(decision) => {
                let checks: Vec<String> = decision.checks.iter().map(check_json).collect();
                object
                    .str("mode", "probe")
                    .str("url", &decision.url)
                    .bool("upstream_up", decision.upstream_up())
                    .str("gate_before", decision.gate_before.word())
                    .str("gate", decision.gate.word())
                    .raw("checks", &json::array(&checks))
                    .num("probe_seconds", decision.probe_duration.as_secs_f64());
                match decision.step {
                    Step::Transition { to, lasted_ms } => {
                        let mut t = json::Object::new();
                        t.str("to", to.word())
                            .num("previous_lasted_seconds", lasted_ms as f64 / 1000.0)
                            .num(
                                "at_unix_ms",
                                decision.last_transition_ms.unwrap_or(0) as f64,
                            );
                        object.raw("transition", &t.finish());
                    }
                    _ => {
                        object.raw("transition", "null");
                    }
                }
                if let Step::Counting { streak, needed } = decision.step {
                    object
                        .num("streak", f64::from(streak))
                        .num("needed", f64::from(needed));
                }
                if let Step::HeldDown { remaining_ms } = decision.step {
                    object.num("hold_down_remaining_seconds", remaining_ms as f64 / 1000.0);
                }
                match &decision.heartbeat {
                    None => object.raw("heartbeat", "null"),
                    Some(Ok(())) => object.raw("heartbeat", "{\"ok\":true}"),
                    Some(Err(error)) => {
                        let mut h = json::Object::new();
                        h.bool("ok", false).str("error", error);
                        object.raw("heartbeat", &h.finish())
                    }
                };
                match &decision.pinned {
                    None => object.raw("pinned", "null"),
                    Some(pin) => {
                        let mut p = json::Object::new();
                        p.str("reason", &pin.reason);
                        match &pin.by {
                            Some(by) => p.str("by", by),
                            None => p.raw("by", "null"),
                        };
                        match pin.at_s {
                            Some(at) => p.num("at", at as f64),
                            None => p.raw("at", "null"),
                        };
                        object.raw("pinned", &p.finish())
                    }
                };
                object
                    .bool("state_written", decision.state_written)
                    .bool("metrics_written", decision.metrics_written);
            }
            Outcome::Local { url, check } => {
                object
                    .str("mode", "check-local")
                    .str("url", url)
                    .bool("ok", check.ok())
                    .raw("check", &check_json(check));
            }
            Outcome::Skipped { lock } => {
                object
                    .str("mode", "skipped")
                    .str("reason", &format!("another run holds {}", lock.display()));
            }
        }
        object.num("exit_status", f64::from(self.exit_status()));
        object.finish()
    }
}

fn check_json(check: &Check) -> String {
    let mut object = json::Object::new();
    object.bool("ok", check.ok());
    match check.status {
        Some(status) => object.num("status", f64::from(status)),
        None => object.raw("status", "null"),
    };
    object.num("seconds", check.elapsed.as_secs_f64());
    if let Some((reason, detail)) = &check.failure {
        object.str("reason", reason.label()).str("detail", detail);
    }
    object.finish()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `3h12m`, `45s`, `1.2s`: how long a gate position lasted, for the log.
pub fn human_duration(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..10 => format!("{:.1}s", ms as f64 / 1000.0),
        10..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds / 3600 % 24),
    }
}

/// Run as configured.
pub fn run(config: &Config) -> Result<Outcome, Error> {
    match config.mode {
        Mode::CheckLocal => Ok(check_local(config)),
        Mode::Probe | Mode::Pin | Mode::Unpin => probe(config),
    }
}

/// keepalived's check: the local nginx only; writes nothing, takes no lock
/// (keepalived runs it as `nobody`).
fn check_local(config: &Config) -> Outcome {
    let deadlines = Deadlines {
        connect: config.local_timeout,
        total: config.local_timeout,
    };
    let check = check::check(&config.local_url, &deadlines, &check::Expect::default());
    if !check.ok() {
        log::debug!("local nginx {}: {check}", config.local_url);
    }
    Outcome::Local {
        url: config.local_url.to_string(),
        check,
    }
}

/// Make sure `dir` exists and is a directory we can create files in
/// (`access(2)`, so checking writes nothing). `create_dir_all` already fails
/// when `dir` exists as anything but a directory.
fn usable_dir(dir: &Path) -> Result<(), Error> {
    use nix::unistd::{AccessFlags, access};
    let fail = |source| Error::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(fail)?;
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| fail(io::Error::from(errno)))
}

fn probe(config: &Config) -> Result<Outcome, Error> {
    // 1. Everything that can be a deployment error, before touching anything.
    usable_dir(&config.state_dir)?;
    let gate_dir = match config.gate_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // By default the gate file lives in the state directory: check it once.
    if gate_dir != config.state_dir {
        usable_dir(gate_dir)?;
    }
    let lock_path = config.state_dir.join(LOCK_FILE);
    let mut lock = RunLock::try_acquire(&lock_path).map_err(|source| Error::StateDir {
        path: lock_path.clone(),
        source,
    })?;
    // --pin/--unpin wait for a timer run in progress (one run's budget at
    // most) instead of skipping: the operator's action must not be lost.
    let waiting = Instant::now();
    while lock.is_none() && config.mode != Mode::Probe && waiting.elapsed() < crate::cli::RUN_BUDGET
    {
        std::thread::sleep(Duration::from_millis(20));
        lock = RunLock::try_acquire(&lock_path).map_err(|source| Error::StateDir {
            path: lock_path.clone(),
            source,
        })?;
    }
    let Some(_lock) = lock else {
        log::debug!("another run holds {}; exiting", lock_path.display());
        return Ok(Outcome::Skipped { lock: lock_path });
    };

    // 2. What the last runs left behind.
    // The text read is kept: step 6 compares against it instead of reading
    // the file a second time (the lock keeps it unchanged meanwhile).
    let state_path = config.state_dir.join(STATE_FILE);
    // Corrupt bytes (not UTF-8: a torn write, a stray editor) are like any
    // other unreadable state: warn and start afresh, never fail the gate.
    let state_text = match fs::read(&state_path) {
        Ok(bytes) => Some(String::from_utf8(bytes).map_err(|error| {
            hysteresis::ParseError(format!(
                "not UTF-8 at byte {}",
                error.utf8_error().valid_up_to()
            ))
        })),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Io {
                what: "reading the state file",
                path: state_path,
                source,
            });
        }
    };
    let parsed = state_text.as_ref().map(|text| match text {
        Ok(text) => hysteresis::parse(text),
        Err(error) => Err(error.clone()),
    });
    let state_text = state_text.and_then(Result::ok);
    let state_known = matches!(parsed, Some(Ok(_)));
    let mut state = match parsed {
        Some(Ok(state)) => state,
        Some(Err(error)) => {
            log::warn!(
                "state file {} is unreadable ({}); starting afresh",
                state_path.display(),
                error.0
            );
            State::new(now_ms())
        }
        None => State::new(now_ms()),
    };
    // The flag file is the truth about the gate (it is what nginx sees).
    let gate_before = match fs::symlink_metadata(&config.gate_file) {
        Ok(_) => Gate::Closed,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Gate::Open,
        Err(source) => {
            return Err(Error::Io {
                what: "looking at the gate file",
                path: config.gate_file.clone(),
                source,
            });
        }
    };

    // The operator's pin: set or cleared first when asked, then read under
    // the lock (so a run never reopens a gate pinned meanwhile).
    let pin_action = apply_pin_action(config)?;
    let pinned = match pin::read(&config.pin_file) {
        Ok(pinned) => pinned,
        Err(error) => {
            log::warn!(
                "cannot read the maintenance pin {} ({error}); keeping the gate pinned closed",
                config.pin_file.display()
            );
            Some(pin::parse(b""))
        }
    };

    // Someone created or removed the flag by hand: count from now, so the
    // next transition and its "lasted" are about the gate as it really is.
    if pinned.is_none() && state_known && state.gate_closed != (gate_before == Gate::Closed) {
        log::info!(
            "gate found {} by hand ({} {}); the probe takes it from here",
            gate_before.word(),
            config.gate_file.display(),
            if gate_before == Gate::Closed {
                "appeared"
            } else {
                "disappeared"
            }
        );
        state.streak = 0;
        state.since_ms = now_ms();
    }

    // 3. Check, and re-check once after a failure while the gate is open;
    // 4. move the gate, on a transition only. A pin replaces both.
    let started = Instant::now();
    let (checks, gate, step) = match &pinned {
        Some(pin) => pinned_run(config, &mut state, gate_before, pin)?,
        None => checked_run(config, &mut state, gate_before)?,
    };
    let probe_duration = started.elapsed();

    // 5. Heartbeat: best effort, logged once per outage.
    let heartbeat = config.redis.as_ref().map(|redis| {
        let key = format!("okome:health:{}", config.node);
        let mut value = json::Object::new();
        value
            .str("node", &config.node)
            .bool("upstream_up", checks.last().is_some_and(Check::ok))
            .str("gate", gate.word())
            .num("at", (now_ms() / 1000) as f64);
        let result = heartbeat::send(redis, &key, &value.finish(), config.redis_timeout)
            .map_err(|error| error.to_string());
        match (&result, state.redis_down) {
            (Err(error), false) => {
                log::warn!(
                    "redis heartbeat to {redis} failed: {error}; the gate is unaffected, further failures are not logged until it recovers"
                );
                state.redis_down = true;
            }
            (Err(error), true) => log::debug!("redis heartbeat to {redis} still failing: {error}"),
            (Ok(()), true) => {
                log::info!("redis heartbeat to {redis} recovered");
                state.redis_down = false;
            }
            (Ok(()), false) => log::debug!("redis heartbeat {key} set"),
        }
        result
    });

    // 6. Save what changed.
    state.gate_closed = gate == Gate::Closed;
    let rendered = hysteresis::render(&state);
    let state_written = state_text.as_deref() != Some(rendered.as_str());
    if state_written {
        fsutil::atomic_write(&state_path, rendered.as_bytes(), 0o644).map_err(|source| {
            Error::Io {
                what: "writing the state file",
                path: state_path.clone(),
                source,
            }
        })?;
    }
    let metrics_written = match &config.metrics_dir {
        None => false,
        Some(dir) => {
            let facts = metrics::RunFacts {
                upstream_up: checks.last().is_some_and(Check::ok),
                gate,
                duration: probe_duration,
                state: &state,
                heartbeat_ok: heartbeat.as_ref().map(Result::is_ok),
                now_s: now_ms() / 1000,
                pinned: pinned.is_some(),
            };
            let path = dir.join(TEXTFILE);
            // Metrics are for humans: a broken textfile directory must not
            // stop the gate, so it is a warning, not an error.
            match fs::create_dir_all(dir)
                .and_then(|()| metrics::render(&facts).write_textfile(&path))
            {
                Ok(written) => written,
                Err(error) => {
                    log::warn!(
                        "cannot write the metrics textfile {}: {error}",
                        path.display()
                    );
                    false
                }
            }
        }
    };
    Ok(Outcome::Probe(Decision {
        url: config.url.to_string(),
        checks,
        gate_before,
        gate,
        step,
        heartbeat,
        state_written,
        metrics_written,
        probe_duration,
        last_transition_ms: state.last_transition_ms,
        pinned,
        pin_action,
    }))
}

/// `--pin`: write the pin file; `--unpin`: remove it. Root's job: the
/// sandboxed timer run cannot write there, and must not.
fn apply_pin_action(config: &Config) -> Result<Option<PinAction>, Error> {
    let fail = |source| Error::Pin {
        path: config.pin_file.clone(),
        source,
    };
    match config.mode {
        Mode::Pin => {
            let pin = Pin {
                reason: config.pin_reason.clone().unwrap_or_default(),
                by: ["SUDO_USER", "USER"]
                    .iter()
                    .find_map(|key| std::env::var(key).ok())
                    .filter(|by| pin::validate_reason(by).is_ok()),
                at_s: Some(now_ms() / 1000),
            };
            if let Some(dir) = config.pin_file.parent() {
                fs::create_dir_all(dir).map_err(fail)?;
            }
            fsutil::atomic_write(&config.pin_file, pin::render(&pin).as_bytes(), 0o644)
                .map_err(fail)?;
            log::warn!(
                "maintenance pin set: {pin}; the gate stays closed until okome-health-probe --unpin"
            );
            Ok(Some(PinAction::Pinned))
        }
        Mode::Unpin => match pin::read(&config.pin_file) {
            Ok(None) => {
                log::info!("no maintenance pin at {}", config.pin_file.display());
                Ok(Some(PinAction::WasNotPinned))
            }
            Ok(Some(pin)) => {
                fsutil::remove_durably(&config.pin_file).map_err(fail)?;
                log::info!(
                    "maintenance pin {pin} removed; the gate reopens after {} good runs",
                    config.policy.rise
                );
                Ok(Some(PinAction::Unpinned))
            }
            Err(source) => Err(fail(source)),
        },
        Mode::Probe | Mode::CheckLocal => Ok(None),
    }
}

/// A pinned run: one check for the record (metrics, --json), the gate
/// closed whatever it says, the rise streak kept at zero so that after
/// `--unpin` the gate reopens only through `--rise` good runs.
fn pinned_run(
    config: &Config,
    state: &mut State,
    gate_before: Gate,
    pin: &Pin,
) -> Result<(Vec<Check>, Gate, Step), Error> {
    let check = check::check(&config.url, &config.deadlines, &config.expect);
    if let Some((reason, _)) = &check.failure {
        state.failures[reason.index()] += 1;
    }
    log::debug!(
        "gate pinned closed for maintenance {pin}; check {}: {check}",
        config.url
    );
    let mut step = Step::Steady;
    if gate_before == Gate::Open {
        let now = now_ms();
        let lasted_ms = now.saturating_sub(state.since_ms);
        let text = format!(
            "closed for maintenance by the operator: {pin}\nclosed at unix time {} by okome-health-probe --pin; reopened after okome-health-probe --unpin\n",
            now / 1000
        );
        fsutil::atomic_write(&config.gate_file, text.as_bytes(), 0o644).map_err(|source| {
            Error::Io {
                what: "creating the gate file",
                path: config.gate_file.clone(),
                source,
            }
        })?;
        log::warn!(
            "gate closed: pinned for maintenance {pin}; the gate had been open for {}",
            human_duration(lasted_ms)
        );
        state.since_ms = now;
        state.last_transition_ms = Some(now);
        state.closed_total += 1;
        step = Step::Transition {
            to: Gate::Closed,
            lasted_ms,
        };
    }
    state.streak = 0;
    Ok((vec![check], Gate::Closed, step))
}

/// An unpinned run: check, re-check once after a failure while the gate is
/// open, feed the hysteresis, move the gate on a transition only.
fn checked_run(
    config: &Config,
    state: &mut State,
    gate_before: Gate,
) -> Result<(Vec<Check>, Gate, Step), Error> {
    let mut checks = Vec::with_capacity(2);
    let mut gate = gate_before;
    let mut step;
    loop {
        let check = check::check(&config.url, &config.deadlines, &config.expect);
        if let Some((reason, detail)) = &check.failure {
            state.failures[reason.index()] += 1;
            log::debug!("check {} failed: {detail}", config.url);
        } else {
            log::debug!("check {}: {check}", config.url);
        }
        step = hysteresis::step(gate, state, &config.policy, check.ok(), now_ms());
        let ok = check.ok();
        checks.push(check);
        if let Step::Transition { to, .. } = step {
            gate = to;
        }
        let held = matches!(step, Step::HeldDown { .. });
        if ok || held || gate == Gate::Closed || checks.len() >= 2 {
            break;
        }
        std::thread::sleep(config.recheck_pause);
    }
    if let Step::Transition { to, lasted_ms } = step {
        apply_transition(config, to, lasted_ms, &checks, state)?;
    } else {
        log::debug!("gate {} ({step:?})", gate.word());
    }
    Ok((checks, gate, step))
}

fn apply_transition(
    config: &Config,
    to: Gate,
    lasted_ms: u64,
    checks: &[Check],
    state: &State,
) -> Result<(), Error> {
    let last = checks.last().map(ToString::to_string).unwrap_or_default();
    let lasted = human_duration(lasted_ms);
    let io_error = |what| {
        move |source| Error::Io {
            what,
            path: config.gate_file.clone(),
            source,
        }
    };
    match to {
        Gate::Closed => {
            let text = format!(
                "orchestrator {} unhealthy: {last}\nclosed at unix time {} by okome-health-probe; removed when it is healthy again\n",
                config.url,
                state.since_ms / 1000
            );
            fsutil::atomic_write(&config.gate_file, text.as_bytes(), 0o644)
                .map_err(io_error("creating the gate file"))?;
            log::warn!(
                "gate closed: orchestrator {} failed {} checks in a row, last: {last}; the gate had been open for {lasted}",
                config.url,
                config.policy.fall
            );
        }
        Gate::Open => {
            fsutil::remove_durably(&config.gate_file)
                .map_err(io_error("removing the gate file"))?;
            log::info!(
                "gate opened: orchestrator {} healthy for {} checks in a row ({last}); the gate had been closed for {lasted}",
                config.url,
                config.policy.rise
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well_in_a_log_line() {
        assert_eq!(human_duration(1_234), "1.2s");
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(192_000), "3m12s");
        assert_eq!(human_duration(11_520_000), "3h12m");
        assert_eq!(human_duration(90_000_000), "1d01h");
    }
}

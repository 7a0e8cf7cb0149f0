//! Proof that every shipped node config under `configs/` (except nginx, which
//! the lab tests own) is accepted by the real program that reads it, and says
//! what the design promises.
//!
//! Each config is checked by its own program, started for real on loopback or
//! in a temp directory: `redis-server` (then queried with `redis-cli`),
//! `keepalived --config-test` (and the master/backup pair really run in two
//! network namespaces on 10.213.0.0/16, moving the VIP when the local nginx
//! dies), `sshd -t`/`sshd -T`, `fail2ban-client -t`,
//! `systemd-analyze verify|security|timespan`, `prometheus-node-exporter`,
//! `sysctl --dry-run`, `findmnt --verify`, and the journald binary's own table
//! of keys. A config is rendered for the test only by substituting addresses,
//! ports, paths (and Redis' placeholder password hashes); `render` fails
//! loudly if a substituted string disappears from the shipped file.
//!
//! Every check is paired with a negative case (a deliberately broken copy, or
//! a positive control next to each refusal) so a check that silently passes
//! everything would fail here. These checks need no lab: they take the
//! workspace, the tool binaries and free ports from the lab crate, and keep
//! their own temp dir and kill-on-drop process guard (SIGTERM first, so
//! nginx and keepalived shut down cleanly).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use okome_lab::{free_port, tool_bin, try_tool_bin, workspace_root};

// ---------------------------------------------------------------------------
// Small local harness (the rest comes from okome_lab)
// ---------------------------------------------------------------------------

fn shipped(relative: &str) -> PathBuf {
    workspace_root().join("configs").join(relative)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A directory under the system temp dir, removed on drop (even on panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "okome-configs-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Owns a process this test started; kills it by PID on drop, even on panic.
struct Guard {
    child: Child,
    what: &'static str,
}

impl Guard {
    fn spawn(what: &'static str, command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} ({command:?}): {e}"));
        Guard { child, what }
    }

    /// Panics (with `log`) if the process already exited: it was meant to run.
    fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); its log {}:\n{}",
                self.what,
                log.display(),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Guard {
    /// SIGTERM by PID (nginx and keepalived shut down cleanly and take their
    /// workers/children with them), then SIGKILL if it has not exited in 5 s.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(port: u16, guard: &mut Guard, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        guard.assert_running(log);
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on 127.0.0.1:{port} within 15 s",
        guard.what
    );
}

/// Runs a command to completion, stdin closed, output captured.
fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {command:?}: {e} (cargo xtask test installs every program these tests use)"
        )
    })
}

fn text_of(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn describe(command: &Command, output: &Output) -> String {
    format!(
        "command: {command:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The shipped text with each `(from, to)` substituted; `from` must occur, so
/// a config edit that drops a substituted value breaks this test loudly
/// instead of silently testing the shipped address.
fn render(text: &str, substitutions: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in substitutions {
        assert!(
            out.contains(from),
            "the shipped config no longer contains {from:?}: update the test's substitution"
        );
        out = out.replace(from, to);
    }
    out
}

/// The built tool if it exists, otherwise `/usr/bin/true` as a stand-in. Only
/// used where a validator insists the program exists (systemd-analyze verify
/// fails on a missing ExecStart binary, keepalived on a missing script): the
/// file's content is what is checked, not the tool.
fn tool_or_stand_in(tool: &str) -> String {
    try_tool_bin(tool).map_or_else(
        || "/usr/bin/true".to_string(),
        |built| built.display().to_string(),
    )
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

const ORCHESTRATOR_PLACEHOLDER: &str =
    "#0000000000000000000000000000000000000000000000000000000000000000";
const OPERATOR_PLACEHOLDER: &str =
    "#1111111111111111111111111111111111111111111111111111111111111111";
const TEST_PASSWORD: &str = "okome-configs-test-password";

/// First value of a `directive value…` line in a redis.conf-like file.
fn directive<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix(name)?;
        rest.starts_with(' ').then(|| rest.trim())
    })
}

/// Redis memory units: `256mb`, `1gb`, `100000` (bytes), as redis.conf documents.
fn redis_bytes(value: &str) -> u64 {
    let value = value.to_ascii_lowercase();
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    let number: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("not a size: {value}"));
    let unit = &value[digits.len()..];
    let factor = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        other => panic!("unknown redis size unit {other:?} in {value}"),
    };
    number * factor
}

fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

struct Redis {
    port: u16,
    _guard: Guard,
    _dir: TempDir,
}

impl Redis {
    /// `redis-cli` as `user` (None = unauthenticated), stdout and stderr merged.
    fn cli(&self, user: Option<&str>, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(user) = user {
            command.args(["--user", user, "--pass", TEST_PASSWORD, "--no-auth-warning"]);
        }
        command.args(args);
        text_of(&run(&mut command)).trim().to_string()
    }

    /// `CONFIG GET name` as the operator: the value line.
    fn config_get(&self, name: &str) -> String {
        let reply = self.cli(Some("operator"), &["CONFIG", "GET", name]);
        let mut lines = reply.lines();
        assert_eq!(lines.next(), Some(name), "CONFIG GET {name}: {reply}");
        lines.next().unwrap_or("").to_string()
    }
}

fn render_redis(shipped_text: &str, dir: &TempDir, port: u16) -> String {
    let hash = format!("#{}", sha256_hex(TEST_PASSWORD));
    render(
        shipped_text,
        &[
            // Never the node's LAN address here: loopback only.
            ("bind 127.0.0.1 192.168.86.19", "bind 127.0.0.1"),
            ("port 6379", &format!("port {port}")),
            ("/run/redis/", &format!("{}/", dir.path().display())),
            (
                "dir /var/lib/redis",
                &format!("dir {}", dir.path().display()),
            ),
            // The shipped users are locked (no known password); give the test
            // one password for both.
            (ORCHESTRATOR_PLACEHOLDER, &hash),
            (OPERATOR_PLACEHOLDER, &hash),
        ],
    )
}

fn start_redis(conf_text: &str) -> Redis {
    let dir = TempDir::new("redis");
    let port = free_port();
    let conf = dir.join("redis.conf");
    write(&conf, &render_redis(conf_text, &dir, port));
    let log = dir.join("redis.log");
    let log_file = fs::File::create(&log).expect("create redis log");
    let mut guard = Guard::spawn(
        "redis-server",
        Command::new("redis-server")
            .arg(&conf)
            .stdout(log_file.try_clone().expect("clone log"))
            .stderr(log_file),
    );
    wait_for_port(port, &mut guard, &log);
    Redis {
        port,
        _guard: guard,
        _dir: dir,
    }
}

#[test]
fn redis_maxmemory_is_sized_for_a_1_gb_pi() {
    // GUIDE §1: the seed's 4GB would be "unlimited" on a 1 GB Pi 3.
    let text = read(&shipped("redis-backend/redis.conf"));
    let value = directive(&text, "maxmemory").expect("maxmemory is set");
    let bytes = redis_bytes(value);
    let half_of_a_pi = 512 * 1024 * 1024;
    assert!(
        bytes > 0 && bytes < half_of_a_pi,
        "maxmemory {value} must be well under half of a 1 GB Pi"
    );
    // The check can fail: the seed's value would be refused.
    assert!(redis_bytes("4gb") >= half_of_a_pi);
    assert_eq!(directive(&text, "maxmemory-policy"), Some("allkeys-lru"));
    assert!(
        text.contains("SEED CORRECTION"),
        "the GUIDE §1 correction stays visible in the file"
    );
}

#[test]
fn redis_server_runs_the_config_with_its_memory_and_persistence_settings() {
    let text = read(&shipped("redis-backend/redis.conf"));
    let redis = start_redis(&text);

    // An unauthenticated client gets nothing: the default user is off.
    let anonymous = redis.cli(None, &["PING"]);
    assert!(anonymous.contains("NOAUTH"), "anonymous PING: {anonymous}");
    assert_eq!(redis.cli(Some("operator"), &["PING"]), "PONG");

    let maxmemory = directive(&text, "maxmemory").expect("maxmemory");
    assert_eq!(
        redis.config_get("maxmemory"),
        redis_bytes(maxmemory).to_string()
    );
    // Persistence off, as the running server sees it.
    assert_eq!(redis.config_get("save"), "");
    assert_eq!(redis.config_get("appendonly"), "no");
    assert_eq!(redis.config_get("bind"), "127.0.0.1");
    // Every other setting the issue asks for: the running value is the file's.
    for name in [
        "maxmemory-policy",
        "protected-mode",
        "timeout",
        "tcp-keepalive",
        "maxclients",
    ] {
        let want = directive(&text, name).unwrap_or_else(|| panic!("{name} is set"));
        assert_eq!(redis.config_get(name), want, "{name}");
    }
}

#[test]
fn redis_acl_refuses_the_orchestrator_flushes_keys_config_and_debug() {
    let redis = start_redis(&read(&shipped("redis-backend/redis.conf")));
    let orchestrator = Some("orchestrator");

    // Positive controls: the orchestrator can do its job on okome:* keys.
    assert_eq!(
        redis.cli(orchestrator, &["SET", "okome:configs-test", "1"]),
        "OK"
    );
    assert_eq!(redis.cli(orchestrator, &["GET", "okome:configs-test"]), "1");
    let scan = redis.cli(orchestrator, &["SCAN", "0", "MATCH", "okome:*"]);
    assert!(scan.contains("okome:configs-test"), "SCAN: {scan}");

    // Refusals, for real.
    for command in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["KEYS", "*"],
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "SET", "maxmemory", "1gb"],
        // Outside the cache key schema.
        &["SET", "not-okome", "1"],
    ] {
        let reply = redis.cli(orchestrator, command);
        assert!(
            reply.starts_with("NOPERM"),
            "orchestrator {command:?} must be refused, got: {reply}"
        );
    }
    // DEBUG is also disabled server-wide; ask the ACL itself.
    for command in [
        &["debug", "sleep", "0"][..],
        &["flushall"],
        &["flushdb"],
        &["keys", "*"],
        &["config", "get", "maxmemory"],
    ] {
        let mut args = vec!["ACL", "DRYRUN", "orchestrator"];
        args.extend_from_slice(command);
        let reply = redis.cli(Some("operator"), &args);
        assert!(
            reply.contains("no permissions"),
            "ACL DRYRUN orchestrator {command:?}: {reply}"
        );
    }
    // The DRYRUN check can fail: allowed commands pass it — among them
    // exactly what the OKOME tools send with this user (okome-health-probe's
    // heartbeat, okome-prewarm's shared plan: SELECT, SET … EX, GET).
    for command in [
        &["get", "okome:x"][..],
        &["select", "0"],
        &["set", "okome:health:frontend-cache", "1", "ex", "30"],
        &["set", "okome:prewarm:plan", "[]", "ex", "600"],
        &["get", "okome:prewarm:plan"],
        &["unlink", "okome:budget:rl:agent:1"],
    ] {
        let mut args = vec!["ACL", "DRYRUN", "orchestrator"];
        args.extend_from_slice(command);
        assert_eq!(
            redis.cli(Some("operator"), &args),
            "OK",
            "orchestrator may {command:?}"
        );
    }

    // The operator may CONFIG but not FLUSH or KEYS either (GUIDE §1).
    for command in [&["FLUSHALL"][..], &["FLUSHDB"], &["KEYS", "*"]] {
        let reply = redis.cli(Some("operator"), command);
        assert!(reply.starts_with("NOPERM"), "operator {command:?}: {reply}");
    }
    // And after all those attempts the cache is still there.
    assert_eq!(redis.cli(Some("operator"), &["DBSIZE"]), "1");
}

#[test]
fn redis_server_refuses_a_broken_copy() {
    let text = read(&shipped("redis-backend/redis.conf"));
    let broken = text.replace(
        "maxmemory-policy allkeys-lru",
        "maxmemory-policy allkeys-lruu",
    );
    assert_ne!(broken, text);
    let dir = TempDir::new("redis-broken");
    let conf = dir.join("redis.conf");
    write(&conf, &render_redis(&broken, &dir, free_port()));
    let mut command = Command::new("timeout");
    command.args(["10", "redis-server"]).arg(&conf);
    let output = run(&mut command);
    assert!(
        !output.status.success() && output.status.code() != Some(124),
        "redis-server must reject the typo at once:\n{}",
        describe(&command, &output)
    );
}

// ---------------------------------------------------------------------------
// keepalived
// ---------------------------------------------------------------------------

const PROBE_SCRIPT: &str = "/usr/bin/okome-health-probe --check-local";

/// `keepalived --config-test`: Ok when it prints nothing and exits 0. Debian
/// 12's keepalived 2.2.7 kills itself with SIGTERM at the end of a config test
/// whenever scripts are configured (keepalived issue #2587, fixed in 2.2.8),
/// so that status is accepted too — but only with no output: every config
/// error is printed, one line each.
fn keepalived_config_test(path: &Path) -> Result<(), String> {
    let mut command = Command::new("keepalived");
    command
        .args(["--log-console", "--config-test", "-f"])
        .arg(path);
    let output = run(&mut command);
    let quiet = text_of(&output).trim().is_empty();
    let status_ok = output.status.success() || output.status.signal() == Some(15);
    if quiet && status_ok {
        Ok(())
    } else {
        Err(describe(&command, &output))
    }
}

/// The rendered keepalived file: only the probe binary's path changes, to the
/// built binary (or a stand-in), because keepalived drops a track script whose
/// program does not exist.
fn render_keepalived(text: &str) -> String {
    let probe = tool_or_stand_in("okome-health-probe");
    render(text, &[("/usr/bin/okome-health-probe", &probe)])
}

/// `keyword value` pairs of a keepalived file (comments removed), in order.
fn keepalived_words(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((key, value)) => (key.to_string(), value.trim().to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect()
}

fn keepalived_value(words: &[(String, String)], key: &str) -> Option<String> {
    words.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The first address line inside `block {`…`}`.
fn keepalived_block_first(text: &str, block: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with(block) && line.ends_with('{') {
            inside = true;
        } else if inside && !line.is_empty() {
            return Some(line.to_string());
        }
    }
    None
}

#[test]
fn keepalived_accepts_both_files_and_rejects_a_broken_copy() {
    let dir = TempDir::new("keepalived");
    for name in ["keepalived-master.conf", "keepalived-backup.conf"] {
        let rendered = render_keepalived(&read(&shipped(&format!("keepalived/{name}"))));
        let path = dir.join(name);
        write(&path, &rendered);
        if let Err(report) = keepalived_config_test(&path) {
            panic!("{name} fails keepalived --config-test:\n{report}");
        }

        // The same check on a deliberately broken copy must fail: an unknown
        // keyword and a fractional script interval (2.2.7 takes whole seconds).
        let broken = render(
            &rendered,
            &[
                ("advert_int 1", "advert_intt 1"),
                ("interval 2", "interval 1.5"),
            ],
        );
        let broken_path = dir.join(format!("broken-{name}"));
        write(&broken_path, &broken);
        let report = keepalived_config_test(&broken_path)
            .expect_err("a broken keepalived config must fail the check");
        assert!(report.contains("advert_intt"), "{report}");
        assert!(report.contains("1.5"), "{report}");
    }
}

#[test]
fn keepalived_pair_is_consistent_and_tracks_the_local_nginx() {
    let master_text = read(&shipped("keepalived/keepalived-master.conf"));
    let backup_text = read(&shipped("keepalived/keepalived-backup.conf"));
    let master = keepalived_words(&master_text);
    let backup = keepalived_words(&backup_text);

    for (name, words, text) in [
        ("master", &master, &master_text),
        ("backup", &backup, &backup_text),
    ] {
        // Both start as BACKUP (nopreempt needs it), track the LOCAL nginx
        // (GUIDE §1), run scripts unprivileged, log every transition.
        assert_eq!(
            keepalived_value(words, "state").as_deref(),
            Some("BACKUP"),
            "{name}"
        );
        assert_eq!(
            keepalived_value(words, "script").as_deref(),
            Some(format!("\"{PROBE_SCRIPT}\"").as_str()),
            "{name}"
        );
        let interval: u32 = keepalived_value(words, "interval")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: whole-second script interval"));
        assert!((1..=5).contains(&interval), "{name}: interval {interval}");
        assert!(
            keepalived_value(words, "enable_script_security").is_some(),
            "{name}"
        );
        let notify = keepalived_value(words, "notify").unwrap_or_default();
        assert!(
            notify.contains("logger -t okome-keepalived"),
            "{name}: notify {notify}"
        );
        assert!(
            keepalived_block_first(text, "track_script").as_deref() == Some("okome_local_nginx"),
            "{name}: track_script must reference the vrrp_script"
        );
        // Never the orchestrator: both Pis would see the same outage.
        assert!(
            !text.contains("192.168.86.25") && !text.contains(":8000"),
            "{name}"
        );
        assert!(
            text.contains("SEED CORRECTION"),
            "{name}: GUIDE §1 note kept"
        );
    }

    // One VRRP instance shared by both, distinct priorities, A preferred.
    for key in ["virtual_router_id", "advert_int", "interface"] {
        assert_eq!(
            keepalived_value(&master, key),
            keepalived_value(&backup, key),
            "{key} must match"
        );
    }
    assert_eq!(
        keepalived_block_first(&master_text, "virtual_ipaddress"),
        keepalived_block_first(&backup_text, "virtual_ipaddress")
    );
    assert!(
        keepalived_block_first(&master_text, "virtual_ipaddress")
            .unwrap_or_default()
            .starts_with("192.168.86.18/")
    );
    let priority = |words: &[(String, String)]| -> u32 {
        keepalived_value(words, "priority")
            .and_then(|v| v.parse().ok())
            .expect("priority")
    };
    assert!(priority(&master) > priority(&backup));
    // nopreempt on the preferred node: it does not take the VIP back.
    assert!(keepalived_value(&master, "nopreempt").is_some());
    // Unicast peers point at each other.
    let master_src = keepalived_value(&master, "unicast_src_ip").expect("master src");
    let backup_src = keepalived_value(&backup, "unicast_src_ip").expect("backup src");
    assert_ne!(master_src, backup_src);
    assert_eq!(
        keepalived_block_first(&master_text, "unicast_peer"),
        Some(backup_src)
    );
    assert_eq!(
        keepalived_block_first(&backup_text, "unicast_peer"),
        Some(master_src)
    );
}

#[test]
fn keepalived_track_script_flag_exists_in_the_probe() {
    let probe = tool_bin("okome-health-probe");
    let mut command = Command::new(&probe);
    command.arg("--help");
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    let help = text_of(&output);
    assert!(
        help.contains("--check-local"),
        "keepalived runs `{PROBE_SCRIPT}`; the probe's --help lacks it:\n{help}"
    );
    assert!(!help.contains("--no-such-flag-okome"), "the check can fail");
}

/// Two network namespaces ("Pi A" and "Pi B") joined by a veth pair named
/// `eth0` on both ends, on a /24 of 10.213.0.0/16 that a blackhole route in
/// the root namespace keeps contained for the test's lifetime. Deleted on
/// drop (after the processes in them, which are declared later and so
/// dropped first).
struct TwoPis {
    namespaces: [String; 2],
    subnet: String,
}

impl TwoPis {
    fn new() -> Self {
        let ip = |args: &[&str]| -> Output { run(Command::new("ip").args(args)) };
        // A /24 of our own: the blackhole route doubles as a lock against a
        // parallel test picking the same one.
        let third = okome_lab::net::claim_blackhole_24(100 + std::process::id() % 100);
        let subnet = format!("10.213.{third}.");
        let pid = std::process::id();
        let namespaces = [
            format!("okome-cfg-{pid}-{third}-a"),
            format!("okome-cfg-{pid}-{third}-b"),
        ];
        let pis = TwoPis { namespaces, subnet };
        let [a, b] = &pis.namespaces;
        let (va, vb) = (format!("okc{third}a"), format!("okc{third}b"));
        for args in [
            vec!["netns", "add", a.as_str()],
            vec!["netns", "add", b.as_str()],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", a],
            vec!["link", "set", &vb, "netns", b],
            vec!["-n", a, "link", "set", &va, "name", "eth0"],
            vec!["-n", b, "link", "set", &vb, "name", "eth0"],
        ] {
            let output = ip(&args);
            assert!(output.status.success(), "ip {args:?}: {}", text_of(&output));
        }
        for (ns, host) in [(a, "20"), (b, "21")] {
            let address = format!("{}{host}/24", pis.subnet);
            for args in [
                vec!["-n", ns, "addr", "add", &address, "dev", "eth0"],
                vec!["-n", ns, "link", "set", "lo", "up"],
                vec!["-n", ns, "link", "set", "eth0", "up"],
            ] {
                let output = ip(&args);
                assert!(output.status.success(), "ip {args:?}: {}", text_of(&output));
            }
        }
        pis
    }

    /// Does the namespace hold the VIP (`<subnet>.18`) on eth0? Asked inside
    /// the namespace; nothing here ever talks to it from the root namespace.
    fn holds_vip(&self, ns: usize) -> bool {
        let output = run(Command::new("ip").args([
            "-n",
            &self.namespaces[ns],
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ]));
        String::from_utf8_lossy(&output.stdout).contains(&format!(" {}18/", self.subnet))
    }

    fn holders(&self) -> (bool, bool) {
        (self.holds_vip(0), self.holds_vip(1))
    }

    /// A process inside namespace `ns`.
    fn spawn(
        &self,
        ns: usize,
        what: &'static str,
        program: &str,
        args: &[&str],
        log: &Path,
    ) -> Guard {
        let log_file = fs::File::create(log).expect("create log");
        Guard::spawn(
            what,
            Command::new("ip")
                .args(["netns", "exec", &self.namespaces[ns], program])
                .args(args)
                .stdout(log_file.try_clone().expect("clone log"))
                .stderr(log_file),
        )
    }
}

impl Drop for TwoPis {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let third = self
            .subnet
            .trim_end_matches('.')
            .rsplit('.')
            .next()
            .unwrap_or("");
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", &format!("10.213.{third}.0/24")])
            .status();
    }
}

/// A real nginx standing in for the frontend's, inside a namespace: its
/// stub_status on 127.0.0.1:80/nginx_status is what
/// `okome-health-probe --check-local` asks by default.
fn start_local_nginx(pis: &TwoPis, ns: usize, dir: &Path) -> Guard {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    write(
        &conf,
        &format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{ listen 127.0.0.1:80; location = /nginx_status {{ stub_status; }} }}\n}}\n"
        ),
    );
    pis.spawn(
        ns,
        "nginx",
        "nginx",
        &[
            "-p",
            &d.to_string(),
            "-c",
            &conf.display().to_string(),
            "-g",
            "daemon off;",
        ],
        &dir.join("nginx.log"),
    )
}

fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    // Generous: keepalived needs ~3-4 s per election and 2 x 2 s to mark a
    // script down; this bound only catches "never".
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        sleep(Duration::from_millis(200));
    }
    panic!("timed out after {seconds} s waiting for: {what}");
}

/// Runs the shipped master/backup pair (only addresses and the probe's path
/// substituted) in two namespaces with a real nginx each, kills Pi A's nginx,
/// brings it back, and returns who holds the VIP once Pi A is healthy again
/// (A, B) — plus Pi A's keepalived log.
fn vip_failover_scenario(master_text: &str, backup_text: &str) -> ((bool, bool), String) {
    let pis = TwoPis::new();
    let dir = TempDir::new("vip");
    let probe = tool_bin("okome-health-probe").display().to_string();
    let mut keepalived_guards = Vec::new();
    let mut nginx = Vec::new();
    for (ns, text) in [(0, master_text), (1, backup_text)] {
        let node = dir.join(["a", "b"][ns]);
        fs::create_dir_all(&node).expect("mkdir node");
        let conf = node.join("keepalived.conf");
        write(
            &conf,
            &render(
                text,
                &[
                    ("192.168.86.", &pis.subnet),
                    ("/usr/bin/okome-health-probe", &probe),
                ],
            ),
        );
        nginx.push(start_local_nginx(&pis, ns, &node));
        let n = node.display();
        let log = node.join("keepalived.log");
        keepalived_guards.push(pis.spawn(
            ns,
            "keepalived",
            "keepalived",
            &[
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "-f",
                &conf.display().to_string(),
                &format!("--pid={n}/keepalived.pid"),
                &format!("--vrrp_pid={n}/vrrp.pid"),
            ],
            &log,
        ));
        if ns == 0 {
            // Pi A first: it is the preferred holder.
            wait_until("Pi A takes the VIP", 20, || pis.holders() == (true, false));
        }
    }
    let a_log = dir.join("a").join("keepalived.log");
    // Pi B sees A's higher priority and stays backup.
    sleep(Duration::from_secs(3));
    assert_eq!(pis.holders(), (true, false), "A holds the VIP, B does not");

    // A's local nginx dies: A's track script fails, A goes to FAULT, B takes over.
    nginx[0].stop();
    wait_until("the VIP moves to Pi B", 20, || {
        pis.holders() == (false, true)
    });
    assert!(
        read(&a_log).contains("Entering FAULT STATE"),
        "{}",
        read(&a_log)
    );

    // A's nginx comes back: A leaves FAULT. Give it time to preempt if it would.
    nginx[0] = start_local_nginx(&pis, 0, &dir.join("a"));
    wait_until("Pi A recovers to BACKUP", 20, || {
        let log = read(&a_log);
        log.rfind("Entering FAULT STATE")
            .is_some_and(|fault| log[fault..].contains("Entering BACKUP STATE"))
    });
    sleep(Duration::from_secs(4));
    let holders = pis.holders();
    drop(keepalived_guards);
    drop(nginx);
    (holders, read(&a_log))
}

#[test]
fn keepalived_pair_moves_the_vip_when_the_local_nginx_dies_and_does_not_take_it_back() {
    let master = read(&shipped("keepalived/keepalived-master.conf"));
    let backup = read(&shipped("keepalived/keepalived-backup.conf"));
    let (holders, log) = vip_failover_scenario(&master, &backup);
    assert_eq!(
        holders,
        (false, true),
        "nopreempt: Pi A must leave the VIP on B after it recovers\n{log}"
    );
}

#[test]
fn keepalived_scenario_detects_a_pair_that_fails_back() {
    // The check can fail: without nopreempt, Pi A takes the VIP back (a
    // second failover) and the scenario sees it.
    let master = read(&shipped("keepalived/keepalived-master.conf"));
    let backup = read(&shipped("keepalived/keepalived-backup.conf"));
    let preempting = render(&master, &[("    nopreempt\n", "")]);
    let (holders, log) = vip_failover_scenario(&preempting, &backup);
    assert_eq!(
        holders,
        (true, false),
        "without nopreempt A fails back\n{log}"
    );
}

// ---------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------

/// A full sshd_config like Debian 12's stock file: the drop-in is included at
/// the top, and stock lines below it try to turn passwords, root login and X11
/// back on — the drop-in must win (sshd takes the first value).
fn sshd_full_config(dir: &TempDir, drop_in: &Path) -> PathBuf {
    fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (privilege separation dir)");
    let mut host_keys = String::new();
    for (kind, bits) in [("ed25519", None), ("rsa", Some("3072"))] {
        let key = dir.join(format!("ssh_host_{kind}_key"));
        if !key.exists() {
            let mut command = Command::new("ssh-keygen");
            command.args(["-q", "-t", kind, "-N", "", "-f"]).arg(&key);
            if let Some(bits) = bits {
                command.args(["-b", bits]);
            }
            let output = run(&mut command);
            assert!(output.status.success(), "{}", describe(&command, &output));
        }
        host_keys.push_str(&format!("HostKey {}\n", key.display()));
    }
    let config = dir.join(format!(
        "sshd_config-{}",
        drop_in.file_name().unwrap().to_string_lossy()
    ));
    write(
        &config,
        &format!(
            "Include {}\n\
             KbdInteractiveAuthentication yes\n\
             PasswordAuthentication yes\n\
             PermitRootLogin yes\n\
             UsePAM yes\n\
             X11Forwarding yes\n\
             PrintMotd no\n\
             AcceptEnv LANG LC_*\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n\
             {host_keys}PidFile {}/sshd.pid\n",
            drop_in.display(),
            dir.path().display()
        ),
    );
    config
}

/// `sshd -T`: the effective settings, keyword → value.
fn sshd_effective(config: &Path) -> BTreeMap<String, String> {
    let mut command = Command::new("sshd");
    command.arg("-T").arg("-f").arg(config);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything the drop-in promises, as problems found (empty = fine).
fn sshd_problems(effective: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let get = |key: &str| effective.get(key).map(String::as_str).unwrap_or("");
    for (key, want) in [
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("permitrootlogin", "no"),
        ("pubkeyauthentication", "yes"),
        ("permitemptypasswords", "no"),
        ("authenticationmethods", "publickey"),
        ("x11forwarding", "no"),
    ] {
        if get(key) != want {
            problems.push(format!("{key} is {:?}, want {want:?}", get(key)));
        }
    }
    let weak = |key: &str, bad: &[&str]| -> Vec<String> {
        get(key)
            .split(',')
            .filter(|alg| alg.is_empty() || bad.iter().any(|b| alg.contains(b)))
            .map(|alg| format!("{key} allows {alg:?}"))
            .collect()
    };
    problems.extend(weak("ciphers", &["cbc", "3des", "arcfour"]));
    problems.extend(weak("macs", &["sha1", "md5", "umac-64"]));
    problems.extend(
        get("macs")
            .split(',')
            .filter(|m| !m.ends_with("-etm@openssh.com"))
            .map(|m| format!("macs allows non-EtM {m:?}")),
    );
    problems.extend(weak("kexalgorithms", &["sha1", "group1-", "nistp"]));
    for key in ["hostkeyalgorithms", "pubkeyacceptedalgorithms"] {
        problems.extend(weak(key, &["ecdsa", "dss"]));
        problems.extend(
            get(key)
                .split(',')
                .filter(|alg| *alg == "ssh-rsa" || alg.starts_with("ssh-rsa-cert"))
                .map(|alg| format!("{key} allows SHA-1 {alg:?}")),
        );
    }
    problems
}

#[test]
fn sshd_accepts_the_drop_in_and_it_wins_over_the_stock_file() {
    let dir = TempDir::new("sshd");
    let drop_in = shipped("ssh/sshd_config.d/okome.conf");
    let config = sshd_full_config(&dir, &drop_in);
    let mut command = Command::new("sshd");
    command.arg("-t").arg("-f").arg(&config);
    let output = run(&mut command);
    assert!(
        output.status.success() && text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
    let problems = sshd_problems(&sshd_effective(&config));
    assert!(problems.is_empty(), "sshd -T: {problems:#?}");
}

#[test]
fn sshd_checks_fail_on_a_broken_or_weak_drop_in() {
    let dir = TempDir::new("sshd-broken");
    let text = read(&shipped("ssh/sshd_config.d/okome.conf"));

    // A bad value: sshd -t refuses it.
    let bad = dir.join("bad.conf");
    write(
        &bad,
        &render(
            &text,
            &[("PasswordAuthentication no", "PasswordAuthentication maybe")],
        ),
    );
    let mut command = Command::new("sshd");
    command
        .arg("-t")
        .arg("-f")
        .arg(sshd_full_config(&dir, &bad));
    let output = run(&mut command);
    assert!(!output.status.success(), "{}", describe(&command, &output));

    // A valid but weak drop-in: sshd accepts it, our checks do not.
    let weak = dir.join("weak.conf");
    write(
        &weak,
        &render(
            &text,
            &[
                ("PasswordAuthentication no", "PasswordAuthentication yes"),
                (
                    "Ciphers chacha20-poly1305@openssh.com,",
                    "Ciphers aes128-cbc,chacha20-poly1305@openssh.com,",
                ),
                (
                    "MACs hmac-sha2-512-etm@openssh.com,",
                    "MACs hmac-sha1,hmac-sha2-512-etm@openssh.com,",
                ),
            ],
        ),
    );
    let problems = sshd_problems(&sshd_effective(&sshd_full_config(&dir, &weak)));
    let all = problems.join("\n");
    assert!(all.contains("passwordauthentication"), "{all}");
    assert!(all.contains("aes128-cbc"), "{all}");
    assert!(all.contains("hmac-sha1"), "{all}");
}

// ---------------------------------------------------------------------------
// fail2ban
// ---------------------------------------------------------------------------

/// A copy of the system's /etc/fail2ban (filters, actions) with our
/// jail.local and fail2ban.local (possibly altered) where the okome-frontend
/// package installs them: jail.d/okome.local and fail2ban.d/okome.local.
fn fail2ban_dir(jail_local: &str, fail2ban_local: &str) -> TempDir {
    let dir = TempDir::new("fail2ban");
    let mut command = Command::new("cp");
    command.args(["-a", "/etc/fail2ban/."]).arg(dir.path());
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    for sub in ["jail.d", "fail2ban.d"] {
        fs::create_dir_all(dir.join(sub)).expect("mkdir .d");
    }
    write(&dir.join("jail.d/okome.local"), jail_local);
    write(&dir.join("fail2ban.d/okome.local"), fail2ban_local);
    dir
}

fn fail2ban_client(dir: &TempDir, arg: &str) -> (Command, Output) {
    let mut command = Command::new("fail2ban-client");
    command.arg("-c").arg(dir.path()).arg(arg);
    let output = run(&mut command);
    (command, output)
}

#[test]
fn fail2ban_accepts_the_jail_on_the_journal_with_its_state_in_ram() {
    let jail = read(&shipped("fail2ban/jail.local"));
    let daemon = read(&shipped("fail2ban/fail2ban.local"));
    let dir = fail2ban_dir(&jail, &daemon);

    let (command, output) = fail2ban_client(&dir, "-t");
    let text = text_of(&output);
    assert!(
        output.status.success() && !text.contains("WARNING") && !text.contains("ERROR"),
        "{}",
        describe(&command, &output)
    );

    // What fail2ban really makes of the files.
    let (command, output) = fail2ban_client(&dir, "-d");
    assert!(output.status.success(), "{}", describe(&command, &output));
    let dump = text_of(&output);
    for want in [
        "['add', 'sshd', 'systemd']",
        "['set', 'logtarget', 'SYSTEMD-JOURNAL']",
        "['set', 'dbfile', '/run/fail2ban/fail2ban.sqlite3']",
        "['set', 'sshd', 'addjournalmatch', '_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd']",
    ] {
        assert!(dump.contains(want), "fail2ban-client -d lacks {want}");
    }
}

#[test]
fn fail2ban_test_fails_on_a_broken_jail() {
    let jail = read(&shipped("fail2ban/jail.local"));
    let broken = render(&jail, &[("backend = systemd", "backend = nosuch")]);
    let dir = fail2ban_dir(&broken, &read(&shipped("fail2ban/fail2ban.local")));
    let (command, output) = fail2ban_client(&dir, "-t");
    assert!(!output.status.success(), "{}", describe(&command, &output));
}

// ---------------------------------------------------------------------------
// systemd units and timers
// ---------------------------------------------------------------------------

/// Every tool with a shipped unit, timer and /etc/default file, and its timer period.
const TOOLS: [&str; 3] = ["okome-health-probe", "okome-prewarm", "okome-hit-ratio"];
const PERIODS: [(&str, &str); 3] = [
    ("okome-health-probe", "5s"),
    ("okome-prewarm", "2min"),
    ("okome-hit-ratio", "5min"),
];

/// The four unit files in a temp dir, each service's ExecStart pointed at the
/// built binary (or /usr/bin/true): `systemd-analyze verify` fails on a
/// missing ExecStart binary, and /usr/bin is not ours to write here.
fn rendered_units() -> TempDir {
    let dir = TempDir::new("units");
    for tool in TOOLS {
        let service = read(&shipped(&format!("systemd/{tool}.service")));
        let exec = format!("ExecStart=/usr/bin/{tool}");
        let rendered = render(
            &service,
            &[(&exec, &format!("ExecStart={}", tool_or_stand_in(tool)))],
        );
        write(&dir.join(format!("{tool}.service")), &rendered);
        fs::copy(
            shipped(&format!("systemd/{tool}.timer")),
            dir.join(format!("{tool}.timer")),
        )
        .expect("copy timer");
    }
    dir
}

/// `systemd-analyze verify`: Ok only when it succeeds AND prints nothing (it
/// exits 0 on unknown keys and bad values, printing a warning). `--man=no`:
/// the man pages come with the .deb, not with this build machine.
fn systemd_verify(units: &[PathBuf], unit_path: Option<&Path>) -> Result<(), String> {
    let mut command = Command::new("systemd-analyze");
    command.args(["verify", "--man=no"]).args(units);
    if let Some(path) = unit_path {
        // A trailing ':' keeps the built-in search path after ours.
        command.env("SYSTEMD_UNIT_PATH", format!("{}:", path.display()));
    }
    let output = run(&mut command);
    if output.status.success() && text_of(&output).trim().is_empty() {
        Ok(())
    } else {
        Err(describe(&command, &output))
    }
}

#[test]
fn systemd_verify_is_silent_on_the_units_and_not_on_a_broken_copy() {
    let dir = rendered_units();
    let units: Vec<PathBuf> = TOOLS
        .iter()
        .flat_map(|tool| {
            [
                dir.join(format!("{tool}.service")),
                dir.join(format!("{tool}.timer")),
            ]
        })
        .collect();
    if let Err(report) = systemd_verify(&units, None) {
        panic!("systemd-analyze verify:\n{report}");
    }

    let timer = dir.join("okome-health-probe.timer");
    let text = read(&timer);
    write(&timer, &render(&text, &[("AccuracySec=", "AccuracySecc=")]));
    let report = systemd_verify(&units, None).expect_err("a typo must be reported");
    assert!(report.contains("AccuracySecc"), "{report}");

    write(&timer, &text);
    let service = dir.join("okome-prewarm.service");
    let text = read(&service);
    write(
        &service,
        &render(&text, &[("ProtectSystem=strict", "ProtectSystem=very")]),
    );
    systemd_verify(&units, None).expect_err("a bad value must be reported");
}

/// The overall exposure `systemd-analyze security --offline=yes` prints.
fn exposure(unit: &Path) -> (f64, Output, Command) {
    let mut command = Command::new("systemd-analyze");
    // --threshold is in tenths: 25 = exposure 2.5.
    command
        .args(["security", "--offline=yes", "--threshold=25", "--no-pager"])
        .arg(unit);
    let output = run(&mut command);
    let text = text_of(&output);
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", describe(&command, &output)));
    (score, output, command)
}

#[test]
fn systemd_security_exposure_is_at_most_2_5() {
    let dir = rendered_units();
    for tool in TOOLS {
        let (score, output, command) = exposure(&dir.join(format!("{tool}.service")));
        assert!(
            score <= 2.5 && output.status.success(),
            "{tool}: exposure {score}\n{}",
            describe(&command, &output)
        );
    }
    // The threshold can fail: an unsandboxed unit does.
    let bare = dir.join("okome-bare.service");
    write(&bare, "[Service]\nType=oneshot\nExecStart=/usr/bin/true\n");
    let (score, output, _) = exposure(&bare);
    assert!(
        score > 2.5 && !output.status.success(),
        "bare unit: {score}"
    );
}

/// `[Section]` → key → every value (systemd keys may repeat).
fn unit_sections(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
    }
    sections
}

fn unit_value(
    sections: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> Option<String> {
    sections
        .get(section)
        .and_then(|s| s.get(key))
        .and_then(|values| values.last().cloned())
}

/// A systemd time span in microseconds, parsed by systemd itself.
fn timespan_us(span: &str) -> u64 {
    let mut command = Command::new("systemd-analyze");
    command.args(["timespan", span]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    text_of(&output)
        .lines()
        .find_map(|l| l.trim().strip_prefix("μs:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no μs in {}", describe(&command, &output)))
}

/// What a periodic OKOME timer must say, as problems (empty = fine).
fn timer_problems(timer: &str, period: &str, randomized: bool) -> Vec<String> {
    let sections = unit_sections(timer);
    let get = |key: &str| unit_value(&sections, "Timer", key);
    let mut problems = Vec::new();
    match get("OnUnitActiveSec") {
        Some(v) if timespan_us(&v) == timespan_us(period) => {}
        other => problems.push(format!("OnUnitActiveSec={other:?}, want {period}")),
    }
    if get("OnBootSec").is_none() {
        problems.push("no OnBootSec: the timer would never start after boot".into());
    }
    // GUIDE §1: the default AccuracySec=1min would swamp a 5 s period.
    match get("AccuracySec") {
        Some(v) if timespan_us(&v) * 20 <= timespan_us(period) => {}
        other => problems.push(format!(
            "AccuracySec={other:?} must be set and at most 5 % of {period}"
        )),
    }
    let delay = get("RandomizedDelaySec")
        .map(|v| timespan_us(&v))
        .unwrap_or(0);
    if randomized && !(delay > 0 && delay < timespan_us(period)) {
        problems.push(format!("RandomizedDelaySec must be >0 and below {period}"));
    }
    if !randomized && delay != 0 {
        problems.push("no randomised delay on this timer".into());
    }
    if unit_value(&sections, "Install", "WantedBy").as_deref() != Some("timers.target") {
        problems.push("WantedBy=timers.target".into());
    }
    problems
}

/// What each sandboxed OKOME service must say, as problems (empty = fine).
fn service_problems(tool: &str, service: &str, period: &str) -> Vec<String> {
    let sections = unit_sections(service);
    let get = |key: &str| unit_value(&sections, "Service", key);
    let mut problems = Vec::new();
    let mut want = |key: &str, value: &str| {
        if get(key).as_deref() != Some(value) {
            problems.push(format!("{key}={:?}, want {value}", get(key)));
        }
    };
    want("Type", "oneshot");
    want("EnvironmentFile", &format!("-/etc/default/{tool}"));
    want("ProtectSystem", "strict");
    want("ReadWritePaths", "/run/okome");
    want("NoNewPrivileges", "yes");
    want("RuntimeDirectoryPreserve", "yes");
    let exec = get("ExecStart").unwrap_or_default();
    if exec.split_whitespace().next() != Some(format!("/usr/bin/{tool}").as_str()) {
        problems.push(format!("ExecStart={exec:?} must run /usr/bin/{tool}"));
    }
    if !get("RuntimeDirectory")
        .unwrap_or_default()
        .split_whitespace()
        .any(|d| d == "okome")
    {
        problems.push("RuntimeDirectory must include okome".into());
    }
    match get("User").as_deref() {
        None | Some("root") | Some("0") => {
            problems.push("must run as an unprivileged user".into());
        }
        Some(_) => {}
    }
    match get("TimeoutStartSec") {
        Some(v) if timespan_us(&v) < timespan_us(period) => {}
        other => problems.push(format!("TimeoutStartSec={other:?} must be below {period}")),
    }
    problems
}

#[test]
fn timers_fire_on_their_periods_with_explicit_accuracy() {
    let probe_timer = read(&shipped("systemd/okome-health-probe.timer"));
    let prewarm_timer = read(&shipped("systemd/okome-prewarm.timer"));
    assert_eq!(
        timer_problems(&probe_timer, "5s", false),
        Vec::<String>::new()
    );
    assert_eq!(
        timer_problems(&prewarm_timer, "2min", true),
        Vec::<String>::new()
    );
    let hit_ratio_timer = read(&shipped("systemd/okome-hit-ratio.timer"));
    assert_eq!(
        timer_problems(&hit_ratio_timer, "5min", true),
        Vec::<String>::new()
    );
    assert!(
        probe_timer.contains("SEED CORRECTION"),
        "GUIDE §1's AccuracySec note stays visible"
    );

    // The checks can fail: the seed's timer (no AccuracySec), a wrong period,
    // a jittered health probe.
    let no_accuracy: String = probe_timer
        .lines()
        .filter(|l| !l.starts_with("AccuracySec="))
        .map(|l| format!("{l}\n"))
        .collect();
    let problems = timer_problems(&no_accuracy, "5s", false);
    assert!(
        problems.iter().any(|p| p.contains("AccuracySec")),
        "{problems:?}"
    );
    let slow = render(
        &probe_timer,
        &[("OnUnitActiveSec=5s", "OnUnitActiveSec=1min")],
    );
    assert!(!timer_problems(&slow, "5s", false).is_empty());
    let jittered = render(
        &probe_timer,
        &[("RandomizedDelaySec=0", "RandomizedDelaySec=3s")],
    );
    assert!(!timer_problems(&jittered, "5s", false).is_empty());
}

#[test]
fn services_are_sandboxed_oneshots_with_state_kept_in_run() {
    for (tool, period) in PERIODS {
        let text = read(&shipped(&format!("systemd/{tool}.service")));
        assert_eq!(
            service_problems(tool, &text, period),
            Vec::<String>::new(),
            "{tool}"
        );
    }
    for background in ["okome-prewarm", "okome-hit-ratio"] {
        let unit = unit_sections(&read(&shipped(&format!("systemd/{background}.service"))));
        assert_eq!(
            unit_value(&unit, "Service", "IOSchedulingClass").as_deref(),
            Some("idle"),
            "{background}"
        );
    }

    // The checks can fail.
    let text = read(&shipped("systemd/okome-health-probe.service"));
    let loose = render(
        &text,
        &[
            ("TimeoutStartSec=4s", "TimeoutStartSec=30s"),
            (
                "RuntimeDirectoryPreserve=yes",
                "RuntimeDirectoryPreserve=no",
            ),
            (
                "ReadWritePaths=/run/okome",
                "ReadWritePaths=/run/okome /var",
            ),
        ],
    );
    let problems = service_problems("okome-health-probe", &loose, "5s");
    assert_eq!(problems.len(), 3, "{problems:?}");
}

/// One `okome`-format access-log line (docs/design.md) at `time_local`.
fn okome_log_line(time_local: &str, path: &str, cache: &str, warm: &str) -> String {
    format!(
        "127.0.0.1 - - [{time_local}] \"GET {path} HTTP/1.1\" 200 100 \"-\" \"Mozilla/5.0\" \
         cache={cache} rt=0.001 urt=\"0.001\" rid=r canary=control warm={warm}\n"
    )
}

/// The hit-ratio unit's ExecStart run for real (systemd is not PID 1 here,
/// so not through systemd) with only its two paths remapped: the flags are
/// accepted and the textfile carries the dashboard's hit ratio.
#[test]
fn hit_ratio_unit_command_writes_the_dashboard_textfile() {
    let unit = unit_sections(&read(&shipped("systemd/okome-hit-ratio.service")));
    let exec = unit_value(&unit, "Service", "ExecStart").expect("ExecStart");
    let dir = TempDir::new("hit-ratio");
    let log = dir.join("okome_access.log");
    let prom = dir.join("okome-hit-ratio.prom");
    let run_unit_command = || {
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/okome-hit-ratio"));
        let args: Vec<String> = words
            .map(|w| match w {
                "/run/okome/metrics/okome-hit-ratio.prom" => prom.display().to_string(),
                "/var/log/nginx/okome_access.log" => log.display().to_string(),
                w => w.to_string(),
            })
            .collect();
        assert!(args.contains(&prom.display().to_string()), "{exec}");
        assert!(args.contains(&log.display().to_string()), "{exec}");
        let mut command = Command::new(tool_bin("okome-hit-ratio"));
        command.args(&args);
        let output = run(&mut command);
        (command, output)
    };

    // A quiet night: no request in the window. Still a success, and a
    // textfile without a ratio (nothing to divide by), not a stale one.
    write(&log, "");
    let (command, output) = run_unit_command();
    assert!(output.status.success(), "{}", describe(&command, &output));
    let quiet = read(&prom);
    assert!(
        quiet.contains("okome_hit_ratio_lines")
            && !quiet.contains("okome_hit_ratio_request_hit_ratio "),
        "{quiet}"
    );

    // Three hits, one miss, and one prewarm request that must not count.
    let mut date = Command::new("date");
    date.args(["-u", "+%d/%b/%Y:%H:%M:%S +0000"]);
    let now = text_of(&run(&mut date)).trim().to_string();
    let mut text = String::new();
    for (path, cache, warm) in [
        ("/assets/a.js", "HIT", "-"),
        ("/assets/b.js", "HIT", "-"),
        ("/", "HIT", "-"),
        ("/ui-schema/x", "MISS", "-"),
        ("/ui-schema/y", "MISS", "1"),
    ] {
        text.push_str(&okome_log_line(&now, path, cache, warm));
    }
    write(&log, &text);
    let (command, output) = run_unit_command();
    assert!(output.status.success(), "{}", describe(&command, &output));
    let metrics = read(&prom);
    let ratio: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("okome_hit_ratio_request_hit_ratio "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request hit ratio in:\n{metrics}"));
    assert!((ratio - 0.75).abs() < 1e-9, "ratio {ratio}\n{metrics}");
    // What the timer writes is in the one list of emitted names.
    let listed = listed_metrics();
    let written: BTreeSet<String> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    assert!(!written.is_empty());
    let missing: Vec<&String> = written.iter().filter(|n| !listed.contains(*n)).collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
}

/// A temp root with our sysusers.d and tmpfiles.d entries installed where
/// systemd looks, after running systemd-sysusers and systemd-tmpfiles on it
/// as the .deb would at install time and at boot.
fn sysusers_and_tmpfiles_root(tmpfiles: &str) -> (TempDir, Output, Command) {
    let root = TempDir::new("sysroot");
    for (dir, text) in [
        (
            "usr/lib/sysusers.d",
            read(&shipped("systemd/okome.sysusers.conf")),
        ),
        ("usr/lib/tmpfiles.d", tmpfiles.to_string()),
    ] {
        fs::create_dir_all(root.join(dir)).expect("mkdir");
        write(&root.join(dir).join("okome.conf"), &text);
    }
    fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    let mut command = Command::new("systemd-sysusers");
    command.arg(format!("--root={}", root.path().display()));
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    let mut command = Command::new("systemd-tmpfiles");
    command
        .arg(format!("--root={}", root.path().display()))
        .arg("--create");
    let output = run(&mut command);
    (root, output, command)
}

#[test]
fn sysusers_and_tmpfiles_create_the_okome_user_and_run_okome() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmpfiles = read(&shipped("systemd/okome.tmpfiles.conf"));
    let (root, output, command) = sysusers_and_tmpfiles_root(&tmpfiles);
    assert!(
        output.status.success() && text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
    let passwd = read(&root.join("etc/passwd"));
    let okome = passwd
        .lines()
        .find(|l| l.starts_with("okome:"))
        .unwrap_or_else(|| panic!("no okome user in {passwd}"));
    let fields: Vec<&str> = okome.split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system user: {okome}");
    assert!(fields[6].ends_with("nologin"), "no login shell: {okome}");
    for dir in ["run/okome", "run/okome/metrics"] {
        let meta = fs::metadata(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.uid(), uid, "{dir} owned by okome");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "{dir}");
    }
    // The units run as that user.
    for tool in TOOLS {
        let unit = unit_sections(&read(&shipped(&format!("systemd/{tool}.service"))));
        assert_eq!(
            unit_value(&unit, "Service", "User").as_deref(),
            Some("okome"),
            "{tool}"
        );
    }

    // The check can fail: an unknown owner is refused by systemd-tmpfiles.
    let broken = render(
        &tmpfiles,
        &[("0755 okome okome", "0755 okome-nosuch okome")],
    );
    let (_root, output, command) = sysusers_and_tmpfiles_root(&broken);
    assert!(
        !output.status.success() || !text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
}

/// Debian's node_exporter unit plus our drop-in, in a unit search path of our own.
fn node_exporter_units() -> TempDir {
    let dir = TempDir::new("node-exporter");
    fs::copy(
        "/lib/systemd/system/prometheus-node-exporter.service",
        dir.join("prometheus-node-exporter.service"),
    )
    .expect("Debian's prometheus-node-exporter.service (package prometheus-node-exporter)");
    let drop_in_dir = dir.join("prometheus-node-exporter.service.d");
    fs::create_dir_all(&drop_in_dir).expect("mkdir drop-in dir");
    fs::copy(
        shipped("systemd/prometheus-node-exporter.service.d/okome.conf"),
        drop_in_dir.join("okome.conf"),
    )
    .expect("copy drop-in");
    dir
}

#[test]
fn node_exporter_drop_in_verifies_and_serves_our_textfiles_from_run() {
    let units = node_exporter_units();
    if let Err(report) = systemd_verify(
        &[units.join("prometheus-node-exporter.service")],
        Some(units.path()),
    ) {
        panic!("node_exporter with the drop-in:\n{report}");
    }

    // Start node_exporter exactly as the drop-in's ExecStart says, on a free
    // loopback port, with the textfile directory remapped to a temp dir.
    let drop_in = read(&shipped(
        "systemd/prometheus-node-exporter.service.d/okome.conf",
    ));
    let sections = unit_sections(&drop_in);
    let execs = sections
        .get("Service")
        .and_then(|s| s.get("ExecStart"))
        .expect("ExecStart in the drop-in");
    assert_eq!(
        execs.first().map(String::as_str),
        Some(""),
        "the drop-in must reset ExecStart"
    );
    let exec = execs.last().expect("a new ExecStart");
    assert!(exec.contains("--collector.textfile.directory=/run/okome/metrics"));

    let metrics = TempDir::new("metrics");
    write(
        &metrics.join("okome-health-probe.prom"),
        "# HELP okome_upstream_up test\n# TYPE okome_upstream_up gauge\nokome_upstream_up 1\n",
    );
    let port = free_port();
    let mut words = exec.split_whitespace();
    let program = words.next().expect("a program");
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let args: Vec<String> = words
        .map(|w| match w {
            "$ARGS" => listen.clone(),
            w => w.replace("/run/okome/metrics", &metrics.path().display().to_string()),
        })
        .collect();
    assert!(args.contains(&listen), "ExecStart keeps $ARGS: {exec}");
    let log = metrics.join("node-exporter.log");
    let log_file = fs::File::create(&log).expect("log");
    let mut guard = Guard::spawn(
        "prometheus-node-exporter",
        Command::new(program)
            .args(&args)
            .stdout(log_file.try_clone().expect("clone"))
            .stderr(log_file),
    );
    wait_for_port(port, &mut guard, &log);
    let body = http_get(port, "/metrics");
    assert!(
        body.lines().any(|l| l == "okome_upstream_up 1"),
        "node_exporter does not serve the textfile metric"
    );
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "textfile collector reported an error"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

// ---------------------------------------------------------------------------
// sysctl, journald, fstab
// ---------------------------------------------------------------------------

/// Keys of a sysctl.d file missing under /proc/sys (empty = fine).
fn sysctl_missing_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|key| {
            !Path::new("/proc/sys")
                .join(key.trim_start_matches('-').replace('.', "/"))
                .exists()
        })
        .collect()
}

fn sysctl_dry_run(path: &Path) -> (Command, Output) {
    let mut command = Command::new("sysctl");
    // --dry-run: parse and check every key, write nothing.
    command.arg("--dry-run").arg("-p").arg(path);
    let output = run(&mut command);
    (command, output)
}

#[test]
fn sysctl_keys_exist_and_sysctl_parses_the_file() {
    let path = shipped("sysctl-okome.conf");
    let text = read(&path);
    assert_eq!(sysctl_missing_keys(&text), Vec::<String>::new());
    for key in [
        "vm.swappiness",
        "vm.dirty_writeback_centisecs",
        "vm.dirty_expire_centisecs",
    ] {
        assert!(text.contains(&format!("\n{key} = ")), "{key} is set");
    }
    let (command, output) = sysctl_dry_run(&path);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        describe(&command, &output)
    );

    // Both checks fail on an unknown key.
    let dir = TempDir::new("sysctl");
    let broken = dir.join("broken.conf");
    write(&broken, &format!("{text}vm.okome_no_such_knob = 1\n"));
    assert_eq!(
        sysctl_missing_keys(&read(&broken)),
        vec!["vm.okome_no_such_knob".to_string()]
    );
    let (command, output) = sysctl_dry_run(&broken);
    assert!(!output.status.success(), "{}", describe(&command, &output));
}

/// Problems with a journald.conf (empty = fine). Every key must be one this
/// systemd-journald knows: its gperf table holds `Journal.<Key>` strings.
fn journald_problems(text: &str, journald_binary: &[u8]) -> Vec<String> {
    let sections = unit_sections(text);
    let mut problems = Vec::new();
    let Some(journal) = sections.get("Journal") else {
        return vec!["no [Journal] section".into()];
    };
    for key in journal.keys() {
        let needle = format!("Journal.{key}\0");
        if !journald_binary
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            problems.push(format!("systemd-journald does not know {key}="));
        }
    }
    let get = |key: &str| unit_value(&sections, "Journal", key);
    if get("Storage").as_deref() != Some("volatile") {
        problems.push("Storage must be volatile (logs in RAM)".into());
    }
    if get("ForwardToSyslog").as_deref() != Some("no") {
        problems.push("ForwardToSyslog=no, or rsyslog writes every line to the card".into());
    }
    match get("RuntimeMaxUse").map(|v| size_bytes(&v)) {
        Some(Some(bytes)) if bytes > 0 && bytes <= 64 * 1024 * 1024 => {}
        other => problems.push(format!(
            "RuntimeMaxUse {other:?} must cap the RAM journal at ≤ 64M"
        )),
    }
    problems
}

/// systemd sizes: `48M`, `1G`, `512K`, bytes (base 1024).
fn size_bytes(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    Some(number * factor)
}

#[test]
fn journald_conf_keeps_logs_in_capped_ram() {
    let binary = [
        "/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ]
    .iter()
    .find_map(|p| fs::read(p).ok())
    .expect("systemd-journald binary (package systemd)");
    let text = read(&shipped("journald.conf"));
    assert_eq!(journald_problems(&text, &binary), Vec::<String>::new());

    // The checks can fail: a typo'd key, persistent storage, no cap.
    let broken = render(
        &text,
        &[
            ("RuntimeMaxUse=", "RuntimeMaxUsee="),
            ("Storage=volatile", "Storage=persistent"),
        ],
    );
    let problems = journald_problems(&broken, &binary);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// `findmnt --verify` on an fstab: problems other than the placeholder
/// PARTUUIDs (and /boot/firmware, absent on a non-Pi), which only exist on
/// the node itself.
fn fstab_verify_problems(path: &Path) -> Vec<String> {
    let mut command = Command::new("findmnt");
    command
        .args(["--verify", "--verbose", "--tab-file"])
        .arg(path);
    let output = run(&mut command);
    let text = text_of(&output);
    // findmnt prints each target unindented, then its findings indented.
    let mut target = String::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            target = line.trim().to_string();
            continue;
        }
        let finding = line.trim();
        if !(finding.starts_with("[E]") || finding.starts_with("[W]")) {
            continue;
        }
        let placeholder_source =
            finding.contains("unreachable on boot required source: PARTUUID=01234567-0");
        let no_firmware_dir_here = target == "/boot/firmware"
            && finding.contains("unreachable on boot required target: No such file");
        if !(placeholder_source || no_firmware_dir_here) {
            problems.push(format!("{target}: {finding}"));
        }
    }
    if !text.contains("0 parse errors") {
        problems.push(format!("parse errors:\n{}", describe(&command, &output)));
    }
    problems
}

/// The mount table as libmount parses it: target → (fstype, options).
fn fstab_entries(path: &Path) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut command = Command::new("findmnt");
    command.args(["--tab-file"]).arg(path).args([
        "--json",
        "--list",
        "--output",
        "TARGET,FSTYPE,OPTIONS",
    ]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("findmnt --json output");
    json["filesystems"]
        .as_array()
        .expect("filesystems")
        .iter()
        .map(|entry| {
            let s = |k: &str| entry[k].as_str().unwrap_or("").to_string();
            let options = s("options").split(',').map(str::to_string).collect();
            (s("target"), (s("fstype"), options))
        })
        .collect()
}

fn fstab_problems(path: &Path) -> Vec<String> {
    let entries = fstab_entries(path);
    let mut problems = Vec::new();
    match entries.get("/") {
        Some((_, options)) if options.contains("noatime") && options.contains("commit=60") => {}
        other => problems.push(format!("/ needs noatime,commit=60: {other:?}")),
    }
    for target in ["/tmp", "/var/tmp"] {
        match entries.get(target) {
            Some((fstype, options))
                if fstype == "tmpfs"
                    && ["nosuid", "nodev", "noatime"]
                        .iter()
                        .all(|o| options.contains(*o))
                    && options.iter().any(|o| o.starts_with("size=")) => {}
            other => problems.push(format!(
                "{target} needs a capped nosuid,nodev tmpfs: {other:?}"
            )),
        }
    }
    for (target, (fstype, _)) in &entries {
        let must_persist = ["/var/cache", "/var/lib", "/var/log", "/home", "/etc"];
        if fstype == "tmpfs" && must_persist.iter().any(|p| target.starts_with(p)) {
            problems.push(format!("{target} must not be tmpfs"));
        }
    }
    problems
}

#[test]
fn fstab_parses_and_says_what_stays_off_tmpfs() {
    let path = shipped("fstab-hardened.conf");
    assert_eq!(fstab_verify_problems(&path), Vec::<String>::new());
    assert_eq!(fstab_problems(&path), Vec::<String>::new());
    let text = read(&path);
    assert!(
        text.contains("/var/cache/nginx") && text.contains("NOT in tmpfs"),
        "the file explains what must not go to tmpfs"
    );

    // The checks can fail: a malformed line; commit=60 lost; the 2 GB nginx
    // cache put in RAM.
    let dir = TempDir::new("fstab");
    let malformed = dir.join("malformed");
    write(&malformed, &format!("{text}tmpfs /mnt/x\n"));
    assert!(!fstab_verify_problems(&malformed).is_empty());
    let typo = dir.join("typo");
    write(&typo, &render(&text, &[("  /var/tmp  ", "  /var/tmpp ")]));
    let problems = fstab_verify_problems(&typo);
    assert!(
        problems.iter().any(|p| p.starts_with("/var/tmpp")),
        "{problems:?}"
    );
    let weak = dir.join("weak");
    write(
        &weak,
        &format!(
            "{}tmpfs /var/cache/nginx tmpfs defaults,size=2G 0 0\n",
            render(&text, &[(",commit=60", "")])
        ),
    );
    let problems = fstab_problems(&weak);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

// ---------------------------------------------------------------------------
// Grafana dashboard
// ---------------------------------------------------------------------------

/// Metric names listed in docs/metrics.md (first cell of each table row).
fn listed_metrics() -> BTreeSet<String> {
    read(&workspace_root().join("docs/metrics.md"))
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

const PROMQL_WORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// Metric names a PromQL expression reads: identifiers that are not
/// functions (followed by `(`), keywords, label names (inside `{}` or a
/// `by (…)` list), strings, ranges or Grafana `$variables`.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_parens_after_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_parens_after_keyword => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                skip_parens_after_keyword = false;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let rest: String = chars[next..].iter().take(8).collect();
                // `sum by (x) (…)`: an aggregation with its clause first.
                let clause_follows = ["by", "without"].iter().any(|kw| {
                    rest.strip_prefix(kw).is_some_and(|after| {
                        after
                            .chars()
                            .next()
                            .is_some_and(|c| c == '(' || c.is_whitespace())
                    })
                });
                let is_call = (next < chars.len() && chars[next] == '(') || clause_follows;
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    skip_parens_after_keyword = is_call;
                } else if !is_call && !PROMQL_WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (5m, 1e3).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every `expr` (and string `query`) anywhere in the dashboard JSON.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    // Template variables: label_values(metric, label) reads
                    // `metric`; the label is not a metric.
                    ("query", serde_json::Value::String(s)) => {
                        if let Some(args) = s.trim().strip_prefix("label_values(") {
                            let metric = args.split([',', ')']).next().unwrap_or("");
                            out.push(metric.to_string());
                        } else if s.contains("okome_") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_queries(item, out);
            }
        }
        _ => {}
    }
}

fn dashboard_titles(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(title)) = map.get("title") {
                out.push(title.to_lowercase());
            }
            for v in map.values() {
                dashboard_titles(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| dashboard_titles(i, out)),
        _ => {}
    }
}

/// Metrics the queries use that docs/metrics.md does not list.
fn unlisted(queries: &[String], listed: &BTreeSet<String>) -> BTreeSet<String> {
    queries
        .iter()
        .flat_map(|q| promql_metrics(q))
        .filter(|name| !listed.contains(name))
        .collect()
}

/// `promtool check rules` on the queries, each wrapped as a recording rule
/// (JSON is YAML), with Grafana's variables given concrete values: Ok when
/// Prometheus' own parser accepts every expression.
fn promtool_check(queries: &[String]) -> Result<(), String> {
    let dir = TempDir::new("promtool");
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*");
            serde_json::json!({ "record": format!("okome:dashboard:q{i}"), "expr": expr })
        })
        .collect();
    let file = dir.join("dashboard-rules.yml");
    write(
        &file,
        &serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] }).to_string(),
    );
    let mut command = Command::new("promtool");
    command.args(["check", "rules"]).arg(&file);
    let output = run(&mut command);
    if output.status.success() {
        Ok(())
    } else {
        Err(describe(&command, &output))
    }
}

#[test]
fn dashboard_queries_only_metrics_listed_in_docs() {
    let path = shipped("dashboards/grafana/okome-cache-hitmiss.json");
    let json: serde_json::Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut queries = Vec::new();
    dashboard_queries(&json, &mut queries);
    assert!(
        queries.len() >= 4,
        "the dashboard queries something: {queries:?}"
    );
    // Every query is valid PromQL to Prometheus' own parser (package
    // prometheus: promtool); a broken one is caught.
    let exprs: Vec<String> = queries
        .iter()
        .filter(|q| q.contains('(') || q.contains('{'))
        .cloned()
        .collect();
    if let Err(report) = promtool_check(&exprs) {
        panic!("the dashboard's PromQL does not parse:\n{report}");
    }
    promtool_check(&["sum(okome_upstream_up".to_string()])
        .expect_err("an unclosed parenthesis must fail promtool");
    let listed = listed_metrics();
    assert!(
        !listed.is_empty(),
        "docs/metrics.md lists the emitted metrics"
    );
    let used: BTreeSet<String> = queries.iter().flat_map(|q| promql_metrics(q)).collect();
    assert_eq!(unlisted(&queries, &listed), BTreeSet::new());
    assert!(used.iter().all(|m| m.starts_with("okome_")), "{used:?}");

    // It covers what the issue asks for.
    let mut titles = Vec::new();
    dashboard_titles(&json, &mut titles);
    for topic in ["hit ratio", "cache status", "upstream", "prewarm"] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }

    // The check can fail: an unlisted name, also behind a function or a
    // label matcher that contains a metric-like word.
    let bad = vec![
        "sum by (status) (rate(okome_not_emitted_total{job=\"okome_upstream_up\"}[5m]))"
            .to_string(),
        "node_load1 > bool 2".to_string(),
        // Aggregation clauses before or after the body are not metrics.
        "max without (instance) (okome_upstream_up) or sum(okome_upstream_up) by (x)".to_string(),
    ];
    assert_eq!(
        unlisted(&bad, &listed),
        ["node_load1", "okome_not_emitted_total"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

// ---------------------------------------------------------------------------
// /etc/default files
// ---------------------------------------------------------------------------

/// Variables that every tool reads outside clap (docs/design.md: logging and
/// the root prefix), so they need not appear in a tool's --help.
const GLOBAL_VARIABLES: &[&str] = &["OKOME_LOG", "OKOME_ROOT"];

/// The environment variables clap accepts, from the `[env: NAME=…]` markers
/// it prints in `--help` (prose that merely mentions a variable is ignored).
fn clap_env_variables(help: &str) -> BTreeSet<String> {
    help.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with("OKOME_"))
        .collect()
}

/// Names of the settings a defaults file assigns, commented out or not.
fn defaults_assignments(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| {
            k.starts_with("OKOME_")
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

/// clap's `[default: …]` per environment variable, from `--help` (the
/// default line that follows an option's `[env: …]` line).
fn clap_env_defaults(help: &str) -> BTreeMap<String, String> {
    let mut defaults = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines().map(str::trim) {
        if line.starts_with('-') {
            current = None;
        } else if let Some(rest) = line.strip_prefix("[env: ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            current = Some(name);
        } else if let (Some(name), Some(rest)) = (&current, line.strip_prefix("[default: ")) {
            let value = rest.strip_suffix(']').unwrap_or(rest);
            defaults.insert(name.clone(), unquote(value).to_string());
        }
    }
    defaults
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// `NAME=value` of every (commented or not) assignment in a defaults file.
fn defaults_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("OKOME_"))
        .map(|(k, v)| (k.trim().to_string(), unquote(v).to_string()))
        .collect()
}

/// Differences between a defaults file and the variables a tool's clap
/// command accepts, both ways (empty = in sync).
fn defaults_problems(tool: &str, defaults: &str, help: &str) -> Vec<String> {
    let assigned = defaults_assignments(defaults);
    let accepted = clap_env_variables(help);
    let mut problems = Vec::new();
    if assigned.is_empty() || accepted.is_empty() {
        problems.push(format!(
            "{tool}: no settings found ({assigned:?} / {accepted:?})"
        ));
    }
    for name in &assigned {
        if !accepted.contains(name) && !GLOBAL_VARIABLES.contains(&name.as_str()) {
            problems.push(format!(
                "{tool}: the defaults file sets {name}, which `{tool} --help` does not accept"
            ));
        }
    }
    // The values shown are the built-in defaults: they must match the tool's.
    let shown = defaults_values(defaults);
    for (name, default) in clap_env_defaults(help) {
        if let Some(value) = shown.get(&name)
            && *value != default
        {
            problems.push(format!(
                "{tool}: the defaults file shows {name}={value:?}, the tool's default is {default:?}"
            ));
        }
    }
    for name in &accepted {
        if !assigned.contains(name) {
            problems.push(format!(
                "{tool}: --help accepts {name}, missing from configs/default/{tool}"
            ));
        }
    }
    problems
}

#[test]
fn every_tools_help_fits_80_columns_however_wide_the_terminal() {
    for tool in TOOLS {
        for flag in ["-h", "--help"] {
            let mut command = Command::new(tool_bin(tool));
            command.env("COLUMNS", "200").arg(flag);
            let output = run(&mut command);
            assert!(output.status.success(), "{}", describe(&command, &output));
            let help = text_of(&output);
            let wide: Vec<&str> = help
                .lines()
                .filter(|line| line.chars().count() > 80)
                .collect();
            assert_eq!(wide, Vec::<&str>::new(), "{tool} {flag}");
        }
    }
}

#[test]
fn defaults_files_list_exactly_the_variables_each_tool_accepts() {
    for tool in TOOLS {
        let text = read(&shipped(&format!("default/{tool}")));
        let mut command = Command::new(tool_bin(tool));
        command.arg("--help");
        let output = run(&mut command);
        assert!(output.status.success(), "{}", describe(&command, &output));
        let help = text_of(&output);
        assert_eq!(defaults_problems(tool, &text, &help), Vec::<String>::new());

        // The check can fail both ways: a setting the tool does not know, and
        // one the file forgot.
        let typo = format!("{text}#OKOME_NOT_A_SETTING=1\n");
        assert_eq!(defaults_problems(tool, &typo, &help).len(), 1);
        let first = defaults_assignments(&text)
            .into_iter()
            .find(|name| !GLOBAL_VARIABLES.contains(&name.as_str()))
            .expect("a tool setting");
        let forgot: String = text
            .lines()
            .filter(|l| !l.contains(&format!("{first}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(defaults_problems(tool, &forgot, &help).len(), 1, "{first}");
        // ...and on a shown default that is not the tool's.
        let (name, default) = clap_env_defaults(&help)
            .into_iter()
            .next()
            .expect("a documented default");
        let stale = render(
            &text,
            &[(&format!("{name}={default}"), &format!("{name}={default}0"))],
        );
        assert_eq!(defaults_problems(tool, &stale, &help).len(), 1, "{name}");
    }
}

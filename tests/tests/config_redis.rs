//! The shipped Redis config (configs/redis-backend/redis.conf) run by the real
//! redis-server on loopback and queried with redis-cli: memory sized for a
//! 1 GB Pi, persistence, and the ACL that keeps the orchestrator from
//! flushing keys, reading the config or debugging; a broken copy is refused.

use std::io::Write;
use std::process::{Command, Stdio};

use okome_lab::check::{
    TempDir, describe, read, render, run, shipped, start, text_of, wait_for_port, write,
};
use okome_lab::{ProcessGuard, free_port};

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
    _guard: ProcessGuard,
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
    let mut guard = start(
        "redis-server",
        Command::new("redis-server").arg(&conf),
        &dir.join("redis.log"),
    );
    wait_for_port(port, &mut guard);
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

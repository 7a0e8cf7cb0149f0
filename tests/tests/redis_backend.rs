//! The backend Pi's Redis, run for real on the SHIPPED files: it comes back on
//! its own when its LAN address appears after it started (a power cut with
//! dhcpcd/NetworkManager), and its ACL gives each client exactly its job.
//!
//! The late-address test runs redis-server in a network namespace of its own
//! on 10.213.0.0/16 (a blackhole route in the root namespace fences the
//! subnet; every client runs inside the namespace), with the shipped sysctl
//! drop-in applied there (its keys are per namespace) and the shipped
//! redis.conf rendered by the lab's one substitution table, the LAN address
//! then replaced by the namespace's. The ACL tests run the real
//! okome-health-probe and okome-prewarm as the `edge` user against the lab's
//! redis, and try every command that user and the orchestrator must not run.
//! The redis-server.service drop-in is checked with `systemd-analyze verify`
//! against Debian's own unit; that it restarts Redis is for a booted systemd.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use okome_lab::redis::Reply;
use okome_lab::render::{
    LAB_REDIS_EDGE_PASSWORD, LAB_REDIS_OPERATOR_PASSWORD, LAB_REDIS_ORCHESTRATOR_PASSWORD,
    LabPorts, render_redis,
};
use okome_lab::{Lab, LabRoot, ProcessGuard, configs_dir, free_port};
use okome_testkit::tool::json;

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

fn ok(args: &[&str]) {
    let output = ip(args);
    assert!(output.status.success(), "ip {args:?}: {}", text(&output));
}

/// A network namespace with only loopback and a veth `eth0` on a /24 of
/// 10.213.0.0/16 that a blackhole route in the root namespace keeps
/// contained (the route also reserves the /24 against parallel tests).
/// Deleted on drop, after the processes declared after it.
struct Node {
    name: String,
    third: u32,
}

impl Node {
    fn new() -> Self {
        let third = okome_lab::net::claim_blackhole_24(150 + std::process::id() % 50);
        let node = Node {
            name: format!("okome-rb-{}-{third}", std::process::id()),
            third,
        };
        ok(&["netns", "add", &node.name]);
        ok(&["-n", &node.name, "link", "set", "lo", "up"]);
        // No dummy driver on this kernel: a veth pair with both ends inside.
        ok(&[
            "-n", &node.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        ok(&["-n", &node.name, "link", "set", "eth0", "up"]);
        ok(&["-n", &node.name, "link", "set", "eth1", "up"]);
        node
    }

    /// The node's "LAN" address (not configured until [`Node::address_up`]).
    fn address(&self) -> String {
        format!("10.213.{}.19", self.third)
    }

    fn address_up(&self) {
        let cidr = format!("{}/24", self.address());
        ok(&["-n", &self.name, "addr", "add", &cidr, "dev", "eth0"]);
    }

    /// A command run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args([
                "route",
                "del",
                "blackhole",
                &format!("10.213.{}.0/24", self.third),
            ])
            .status();
    }
}

/// The `key = value` lines of a sysctl.d file.
fn sysctl_settings(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l:?}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// The shipped redis.conf, rendered by the lab's table, listening on
/// loopback and `lan` (where the shipped file names the node's LAN address).
fn redis_conf_on(root: &LabRoot, port: u16, lan: &str) -> PathBuf {
    let shipped = fs::read_to_string(configs_dir().join("redis-backend/redis.conf")).unwrap();
    assert!(
        shipped.lines().any(|l| l == "bind 127.0.0.1 192.168.86.19"),
        "the shipped redis.conf binds loopback and the LAN address"
    );
    let ports = LabPorts {
        http: 0,
        ipv6: false,
        orchestrator: "127.0.0.1:9".parse().unwrap(),
        gate: 0,
        redis: port,
    };
    let conf = render_redis(root, &ports).expect("rendering redis.conf");
    let rendered = fs::read_to_string(&conf).unwrap();
    let relisted = rendered.replace("\nbind 127.0.0.1\n", &format!("\nbind 127.0.0.1 {lan}\n"));
    assert_ne!(relisted, rendered, "the rendered bind line");
    fs::write(&conf, relisted).unwrap();
    conf
}

/// GUIDE §1: `bind 127.0.0.1 <LAN>` and a LAN address that comes up after
/// Redis started (power cut, DHCP). Redis must answer on the address within
/// 15 s of it appearing, with no restart by anyone.
#[test]
fn redis_answers_on_its_lan_address_when_the_address_comes_up_ten_seconds_late() {
    let node = Node::new();
    // The shipped sysctl drop-in, applied in the namespace: only per-namespace
    // (net.*) keys, so nothing outside the namespace changes.
    let sysctl = configs_dir().join("redis-backend/sysctl-okome-backend.conf");
    let settings = sysctl_settings(&sysctl);
    assert!(!settings.is_empty(), "{} sets nothing", sysctl.display());
    for (key, value) in &settings {
        assert!(
            key.starts_with("net."),
            "{key} is not per network namespace"
        );
        let output = run(node
            .exec("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")]));
        assert!(output.status.success(), "sysctl {key}: {}", text(&output));
    }

    let root = LabRoot::new();
    let port = free_port();
    let conf = redis_conf_on(&root, port, &node.address());
    let log = root.path("/var/log/redis/late-address.log");
    let mut redis = ProcessGuard::spawn(
        "redis-server",
        node.exec("redis-server").arg(&conf),
        Some(&log),
    )
    .expect("starting redis-server (apt-get install redis-server)");

    let cli = |host: &str| -> String {
        text(&run(node.exec("redis-cli").args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "--user",
            "operator",
            "--pass",
            LAB_REDIS_OPERATOR_PASSWORD,
            "--no-auth-warning",
            "PING",
        ])))
        .trim()
        .to_owned()
    };
    // Boot: the address is not there for 10 s. Redis must still be alive,
    // serving loopback meanwhile.
    let boot = Instant::now();
    let mut loopback = String::new();
    while boot.elapsed() < Duration::from_secs(10) {
        if let Some(status) = redis.try_wait() {
            panic!(
                "redis-server exited ({status}) while its LAN address was not up yet; \
                 it never comes back without a restart:\n{}",
                redis.log_tail(20)
            );
        }
        if loopback != "PONG" {
            loopback = cli("127.0.0.1");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(loopback, "PONG", "loopback while the LAN address is down");

    node.address_up();
    let up = Instant::now();
    let mut answer = String::new();
    while up.elapsed() < Duration::from_secs(15) {
        answer = cli(&node.address());
        if answer == "PONG" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        answer,
        "PONG",
        "redis-server did not answer on {} within 15 s of the address coming up:\n{}",
        node.address(),
        redis.log_tail(20)
    );
    assert!(redis.try_wait().is_none(), "the same redis-server answered");
}

/// The unit drop-in is valid on Debian's own redis-server.service (a typo
/// would be a silent no-op), and asks for what a power cut needs.
#[test]
fn the_redis_unit_drop_in_restarts_without_a_start_limit_and_verifies() {
    let debian_unit = Path::new("/lib/systemd/system/redis-server.service");
    assert!(debian_unit.exists(), "redis-server is installed");
    let shipped =
        okome_lab::workspace_root().join("debian/okome-backend/redis-server.service.d/okome.conf");
    let drop_in = fs::read_to_string(&shipped).unwrap();
    for line in [
        "Restart=always",
        "RestartSec=2s",
        "StartLimitIntervalSec=0",
        "After=network-online.target",
        "Wants=network-online.target",
    ] {
        assert!(
            drop_in.lines().any(|l| l.trim() == line),
            "{} lacks {line}",
            shipped.display()
        );
    }
    let verify = |text: &str| -> Output {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(debian_unit, dir.path().join("redis-server.service")).unwrap();
        fs::create_dir(dir.path().join("redis-server.service.d")).unwrap();
        fs::write(dir.path().join("redis-server.service.d/okome.conf"), text).unwrap();
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("redis-server.service"))
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display())))
    };
    let output = verify(&drop_in);
    assert!(
        output.status.success() && text(&output).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&output)
    );
    // The check can fail: a misspelt key is reported.
    let output = verify(&drop_in.replace("RestartSec=", "RestartSecs="));
    assert!(text(&output).contains("RestartSecs"), "{}", text(&output));
}

fn is_noperm(reply: &std::io::Result<Reply>) -> bool {
    matches!(reply, Ok(Reply::Error(e)) if e.starts_with("NOPERM"))
}

/// The `edge` user does the frontends' two jobs — with the real tools —
/// and nothing else.
#[test]
fn the_edge_user_can_heartbeat_and_share_the_plan_and_nothing_else() {
    let lab = Lab::builder().redis(true).start();
    let redis = lab.redis();
    let edge = format!("redis://edge:{LAB_REDIS_EDGE_PASSWORD}@{}/0", redis.addr());
    // Something of the orchestrator's that must survive everything below.
    assert_eq!(
        redis
            .command_as(
                "orchestrator",
                LAB_REDIS_ORCHESTRATOR_PASSWORD,
                &["SET", "okome:planner:q1", "plan"],
            )
            .unwrap(),
        Reply::Simple("OK".into())
    );

    // okome-health-probe's heartbeat, as the edge user.
    let probe = lab
        .tool("okome-health-probe")
        .args(["--url", &format!("{}/health", lab.stub.url())])
        .args(["--node", "edge-test", "--redis-url", &edge, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        json(&probe)["heartbeat"]["ok"],
        true,
        "heartbeat as edge: {}",
        text(&probe)
    );
    let beat = redis.command(&["GET", "okome:health:edge-test"]).unwrap();
    assert!(
        beat.text().is_some_and(|t| t.contains('{')),
        "heartbeat stored: {beat:?}"
    );

    // okome-prewarm's shared plan: published by the VIP holder, read by the
    // other node, both as the edge user.
    for _ in 0..2 {
        assert_eq!(lab.get("/assets/edge.js").status, 200);
    }
    lab.wait_for_log_lines(2, Duration::from_secs(5));
    let active = lab
        .tool("okome-prewarm")
        .args(["--target", &lab.url(""), "--json"])
        .args(["--vip", "127.0.0.1", "--redis", &edge])
        .output()
        .unwrap();
    assert_eq!(
        json(&active)["summary"]["published"],
        true,
        "plan published as edge: {}",
        text(&active)
    );
    let standby = Lab::start();
    let out = standby
        .tool("okome-prewarm")
        .args(["--target", &standby.url(""), "--json"])
        .args(["--vip", "127.0.0.2", "--redis", &edge])
        .output()
        .unwrap();
    assert!(
        json(&out)["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("shared:")),
        "plan read as edge: {}",
        text(&out)
    );
    assert_eq!(
        standby.stub.count("/assets/edge.js"),
        1,
        "warmed from the plan"
    );

    // Exactly those commands on exactly those keys.
    let as_edge = |args: &[&str]| redis.command_as("edge", LAB_REDIS_EDGE_PASSWORD, args);
    let mut allowed = Vec::new();
    for command in [
        &["SET", "okome:health:edge-test", "{}", "EX", "30"][..],
        &["SET", "okome:prewarm:plan", "{}", "EX", "600"],
        &["GET", "okome:prewarm:plan"],
    ] {
        let reply = as_edge(command);
        if !matches!(reply, Ok(Reply::Simple(_) | Reply::Bulk(_))) {
            allowed.push(format!("{command:?} → {reply:?}"));
        }
    }
    assert!(allowed.is_empty(), "edge must be able to: {allowed:#?}");
    let mut leaks = Vec::new();
    for command in [
        // Code of its own choosing.
        &["EVAL", "return redis.call('FLUSHALL')", "0"][..],
        &["EVAL_RO", "return 1", "0"],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        &["FCALL", "okome_lock", "0"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function('x', function() return 1 end)",
        ],
        &["FUNCTION", "FLUSH"],
        &["FUNCTION", "LIST"],
        &["SCRIPT", "LOAD", "return 1"],
        &["SCRIPT", "FLUSH"],
        // Enumerating or wiping the cache.
        &["SCAN", "0"],
        &["KEYS", "*"],
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["DBSIZE"],
        &["RANDOMKEY"],
        // The server itself.
        &["CONFIG", "GET", "*"],
        &["CONFIG", "SET", "maxmemory", "1mb"],
        &["INFO"],
        &["CLIENT", "LIST"],
        &["MONITOR"],
        &["SHUTDOWN"],
        &["ACL", "LIST"],
        &["SELECT", "1"],
        &["SUBSCRIBE", "okome:events"],
        &["PUBLISH", "okome:events", "x"],
        // The orchestrator's keys, and the heartbeats of other nodes.
        &["GET", "okome:planner:q1"],
        &["SET", "okome:planner:q1", "poisoned"],
        &["UNLINK", "okome:planner:q1"],
        &["GET", "okome:health:edge-test"],
        &["SET", "okome:health:edge-test", "x", "GET"],
        &["UNLINK", "okome:prewarm:plan"],
        &["EXPIRE", "okome:prewarm:plan", "1"],
        &["SET", "not-okome", "x"],
    ] {
        let reply = as_edge(command);
        if !is_noperm(&reply) {
            leaks.push(format!("{command:?} → {reply:?}"));
        }
    }
    assert!(leaks.is_empty(), "edge must be refused: {leaks:#?}");
    assert_eq!(
        redis.command(&["GET", "okome:planner:q1"]).unwrap().text(),
        Some("plan".into()),
        "the orchestrator's entry survived"
    );
}

/// The orchestrator keeps its cache commands and FCALL, but cannot run code
/// of its own choosing or replace the function library.
#[test]
fn the_orchestrator_may_fcall_but_not_eval_or_load_scripts() {
    let lab = Lab::builder().redis(true).start();
    let redis = lab.redis();
    let as_orchestrator =
        |args: &[&str]| redis.command_as("orchestrator", LAB_REDIS_ORCHESTRATOR_PASSWORD, args);
    // The operator loads a library (the orchestrator cannot: below). Not
    // named `okome`: the lab has already loaded the real one.
    let library = "#!lua name=okome_acl_probe\n\
                   redis.register_function('okome_touch', function(keys, args) \
                   return redis.call('SET', keys[1], args[1], 'EX', 60) end)\n\
                   redis.register_function{function_name='okome_peek', \
                   callback=function(keys) return redis.call('GET', keys[1]) end, \
                   flags={'no-writes'}}";
    assert_eq!(
        redis.command(&["FUNCTION", "LOAD", library]).unwrap(),
        Reply::Bulk(Some(b"okome_acl_probe".to_vec()))
    );
    let mut refused = Vec::new();
    for (command, want) in [
        (
            &["FCALL", "okome_touch", "1", "okome:lock:q1", "v"][..],
            Reply::Simple("OK".into()),
        ),
        (
            &["FCALL_RO", "okome_peek", "1", "okome:lock:q1"],
            Reply::Bulk(Some(b"v".to_vec())),
        ),
        (&["UNLINK", "okome:lock:q1"], Reply::Integer(1)),
    ] {
        let reply = as_orchestrator(command);
        if reply.as_ref().ok() != Some(&want) {
            refused.push(format!("{command:?} → {reply:?}"));
        }
    }
    assert!(
        matches!(as_orchestrator(&["FUNCTION", "LIST"]), Ok(Reply::Array(_))),
        "FUNCTION LIST"
    );
    assert!(
        refused.is_empty(),
        "the orchestrator must be able to: {refused:#?}"
    );
    let mut leaks = Vec::new();
    for command in [
        &["EVAL", "return 1", "0"][..],
        &["EVAL_RO", "return 1", "0"],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        &[
            "EVALSHA_RO",
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
            "0",
        ],
        &["SCRIPT", "LOAD", "return 1"],
        &["SCRIPT", "FLUSH"],
        &["SCRIPT", "KILL"],
        &["FUNCTION", "LOAD", "REPLACE", library],
        &["FUNCTION", "DELETE", "okome"],
        &["FUNCTION", "FLUSH"],
        &["FUNCTION", "RESTORE", "x"],
        &["FUNCTION", "KILL"],
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["KEYS", "*"],
        &["CONFIG", "GET", "maxmemory"],
    ] {
        let reply = as_orchestrator(command);
        if !is_noperm(&reply) {
            leaks.push(format!("{command:?} → {reply:?}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "the orchestrator must be refused: {leaks:#?}"
    );
    // The libraries the operator loaded are still in place.
    assert_eq!(
        as_orchestrator(&["FCALL", "okome_touch", "1", "okome:lock:q2", "w"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert!(
        matches!(
            as_orchestrator(&["FCALL_RO", "okome_version", "0"]),
            Ok(Reply::Bulk(Some(_)))
        ),
        "the okome library survived"
    );
}

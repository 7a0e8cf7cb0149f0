//! The shipped keepalived pair (configs/keepalived/) checked by
//! `keepalived --config-test`, and really run in two network namespaces on
//! 10.213.0.0/16: the VIP moves when the local nginx dies and does not come
//! back by itself; the track script is okome-health-probe's `--check-local`.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use okome_lab::check::{
    TempDir, describe, read, render, run, shipped, start, text_of, tool_or_stand_in, write,
};
use okome_lab::{ProcessGuard, tool_bin};

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
                ("    interval 1\n", "    interval 1.5\n"),
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
    // nopreempt on EVERY node (a site copies the backup file for a third
    // Pi: a returning B must not take the VIP back from C).
    for (name, words) in [("master", &master), ("backup", &backup)] {
        assert!(keepalived_value(words, "nopreempt").is_some(), "{name}");
    }
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

/// README's "Failover, measured": the VIP leaves a dead nginx within
/// interval × fall (the last passing check just before the kill) plus the
/// peer's skew, under one advert_int. The median goal is < 2 s; this is the
/// worst case the shipped timers allow.
const EDGE_FAILOVER_WORST_S: u32 = 3;
/// okome-health-probe's default `--local-timeout`, in ms (its --help).
const PROBE_LOCAL_TIMEOUT_MS: u32 = 500;

#[test]
fn keepalived_timers_bound_the_edge_failover_without_flapping() {
    for name in ["keepalived-master.conf", "keepalived-backup.conf"] {
        let words = keepalived_words(&read(&shipped(&format!("keepalived/{name}"))));
        let number = |key: &str| -> u32 {
            keepalived_value(&words, key)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name}: {key} in whole seconds"))
        };
        let (interval, timeout, fall, rise) = (
            number("interval"),
            number("timeout"),
            number("fall"),
            number("rise"),
        );
        let advert = number("advert_int");
        assert!(
            interval * fall + advert <= EDGE_FAILOVER_WORST_S,
            "{name}: interval {interval} × fall {fall} + advert_int {advert} > {EDGE_FAILOVER_WORST_S} s"
        );
        // One slow answer (or one slow start) never moves the VIP.
        assert!(fall >= 2 && rise >= 2, "{name}: fall {fall}, rise {rise}");
        // Runs never overlap: keepalived's hard stop fits in the interval,
        // and the probe's own deadline comes first.
        assert!(
            timeout <= interval,
            "{name}: timeout {timeout} > interval {interval}"
        );
        assert!(
            PROBE_LOCAL_TIMEOUT_MS < timeout * 1000,
            "{name}: timeout {timeout}"
        );
    }
    let probe = tool_bin("okome-health-probe");
    let output = run(Command::new(&probe).arg("--help"));
    let help = text_of(&output);
    assert!(
        help.contains(&format!("[default: {PROBE_LOCAL_TIMEOUT_MS}ms]")),
        "the probe's --local-timeout default changed:\n{help}"
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
    ) -> ProcessGuard {
        start(
            what,
            Command::new("ip")
                .args(["netns", "exec", &self.namespaces[ns], program])
                .args(args),
            log,
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
fn start_local_nginx(pis: &TwoPis, ns: usize, dir: &Path) -> ProcessGuard {
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

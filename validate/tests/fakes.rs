//! The two checks nothing real can drive here, on the loopback lab with the
//! real binary and stand-in programs on their paths: `node.throttle` with a
//! fake `vcgencmd get_throttled` (a Pi's firmware tool), and `edge.vrrp`
//! with a fake `journalctl` (keepalived's notify line) and a fake `ip`
//! whose answers disagree. Each fault turns exactly that check red, with
//! its severity and incident; every other check stays green.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{LOOPBACK_CHECKS, Red, lab, r, red, run_json, validate_only, with_status};

const VIP: &str = "10.213.255.18";

/// An executable shell script `name` in `dir` printing `out`.
fn fake(dir: &Path, name: &str, out: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\ncat <<'EOF'\n{out}\nEOF\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The frontend's checks `only` (after the loopback ones), with each of
/// `fakes` — a program's name and what it prints — as a stand-in on its
/// `--NAME` path; fails on any error of the tool's own.
fn run_with(
    lab: &okome_lab::lab::Lab,
    dir: &Path,
    only: &str,
    fakes: &[(&str, String)],
) -> (BTreeSet<Red>, serde_json::Value) {
    let mut command = validate_only(lab, "frontend", &format!("{LOOPBACK_CHECKS},{only}"));
    command.args(["--role", "frontend"]);
    for (name, out) in fakes {
        command.arg(format!("--{name}")).arg(fake(dir, name, out));
    }
    let (_, doc) = run_json(&mut command);
    assert!(with_status(&doc, "error").is_empty(), "own errors: {doc:#}");
    (red(&doc), doc)
}

/// The interfaces `ip` shows, with the VIP on eth0 or not.
fn addresses(with_vip: bool) -> String {
    let mut text = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                    2: eth0    inet 10.213.255.20/24 scope global eth0"
        .to_string();
    if with_vip {
        text.push_str(&format!("\n2: eth0    inet {VIP}/32 scope global eth0"));
    }
    text
}

/// keepalived's last notify line, as its journal holds it.
fn notify(state: &str) -> String {
    format!("okome-keepalived: INSTANCE OKOME_VIP {state}")
}

/// `node.throttle` and `edge.vrrp` with a stand-in `vcgencmd` saying
/// `throttled`, `ip` with or without the VIP, and keepalived's last notify
/// line `keepalived`.
fn run(
    lab: &okome_lab::lab::Lab,
    dir: &Path,
    throttled: &str,
    ip_has_vip: bool,
    keepalived: &str,
) -> (BTreeSet<Red>, serde_json::Value) {
    run_with(
        lab,
        dir,
        "edge.vrrp",
        &[
            ("vcgencmd", format!("throttled={throttled}")),
            ("ip", addresses(ip_has_vip)),
            ("journalctl", notify(keepalived)),
        ],
    )
}

#[test]
fn a_fake_vcgencmd_and_a_disagreeing_keepalived_turn_exactly_their_check_red() {
    let lab = lab();
    assert_eq!(lab.get("/").status, 200);
    common::write_cluster_conf(&lab, &format!("vip {VIP}\n"));
    let dir = tempfile::tempdir().unwrap();
    let node = common::NODE;

    // A Pi that never throttled, keepalived MASTER and holding the VIP.
    let (got, doc) = run(&lab, dir.path(), "0x0", true, "MASTER");
    assert_eq!(got, BTreeSet::new(), "{doc:#}");
    let passed = with_status(&doc, "pass");
    for id in ["node.throttle", "edge.vrrp"] {
        assert!(passed.contains(&format!("{node}:{id}")), "{id}: {doc:#}");
    }
    // BACKUP and not holding it: agreement too.
    let (got, doc) = run(&lab, dir.path(), "0x0", false, "BACKUP");
    assert_eq!(got, BTreeSet::new(), "{doc:#}");

    // Under-voltage now (bit 0) and since boot (bit 16): crit.
    let (got, doc) = run(&lab, dir.path(), "0x50005", true, "MASTER");
    assert_eq!(
        got,
        set(&[r(node, "node.throttle", "crit", "INCIDENT 8")]),
        "{doc:#}"
    );
    // Only since boot: warn.
    let (got, doc) = run(&lab, dir.path(), "0x50000", true, "MASTER");
    assert_eq!(
        got,
        set(&[r(node, "node.throttle", "warn", "INCIDENT 8")]),
        "{doc:#}"
    );

    // keepalived says BACKUP while ip addr holds the VIP (an address left
    // behind), and MASTER while the VIP is gone (removed under it).
    for (holds, state) in [(true, "BACKUP"), (false, "MASTER")] {
        let (got, doc) = run(&lab, dir.path(), "0x0", holds, state);
        assert_eq!(
            got,
            set(&[r(node, "edge.vrrp", "crit", "INCIDENT 3")]),
            "{state}, holds {holds}: {doc:#}"
        );
    }
}

/// A stand-in that marks `mine`, then waits up to 1.5 s for `theirs`, and
/// says all is well only if it came: it passes only while the other check
/// runs at the same time.
fn rendezvous(dir: &Path, name: &str, mine: &str, theirs: &str, ok: &str, bad: &str) -> PathBuf {
    let path = dir.join(name);
    let d = dir.display();
    fs::write(
        &path,
        format!(
            "#!/bin/sh\ntouch {d}/{mine}\ni=0\n\
             while [ ! -e {d}/{theirs} ] && [ $i -lt 30 ]; do sleep 0.05; i=$((i+1)); done\n\
             if [ -e {d}/{theirs} ]; then {ok}; else {bad}; fi\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The local checks run at once, not one after another (a round takes as
/// long as its slowest check): `vcgencmd` and `nginx -t` each wait for the
/// other to have started. One at a time, the first gives up and its check
/// turns red (this failed before the checks ran in parallel).
#[test]
fn local_checks_run_at_the_same_time() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let vcgencmd = rendezvous(
        dir.path(),
        "vcgencmd",
        "started-throttle",
        "started-nginx",
        "echo throttled=0x0",
        "echo throttled=0x1",
    );
    let nginx = rendezvous(
        dir.path(),
        "nginx",
        "started-nginx",
        "started-throttle",
        "echo 'nginx: configuration file test is successful' >&2",
        "echo 'nginx: the other check never started' >&2; exit 1",
    );
    let mut command = validate_only(&lab, "frontend", "node.throttle,edge.nginx-config");
    command
        .args(["--role", "frontend"])
        .arg("--vcgencmd")
        .arg(vcgencmd)
        .arg("--nginx")
        .arg(nginx);
    let (code, doc) = run_json(&mut command);
    assert_eq!(red(&doc), BTreeSet::new(), "{doc:#}");
    let passed = with_status(&doc, "pass");
    let node = common::NODE;
    for id in ["node.throttle", "edge.nginx-config"] {
        assert!(passed.contains(&format!("{node}:{id}")), "{id}: {doc:#}");
    }
    assert_eq!(code, 0);
}

/// Every unit is read by one `systemctl show` (one process, one bus
/// connection), not one per unit: a stand-in systemctl counts its calls and
/// answers for each unit it is given (this failed with one call per unit),
/// and a unit it reports down is still judged as its own (crit, nothing
/// else red).
#[test]
fn one_systemctl_call_reads_every_unit() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let systemctl = dir.path().join("systemctl");
    fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\nsep=\n\
             for u in \"$@\"; do\n\
               case $u in show|-p|*=*|*,*) continue;; esac\n\
               printf '%s' \"$sep\"; sep='\n'\n\
               case $u in\n\
                 *.timer) echo LoadState=loaded; echo ActiveState=active; echo SubState=waiting; echo Result=success;;\n\
                 $DOWN) echo LoadState=loaded; echo ActiveState=failed; echo SubState=failed; echo Result=exit-code;;\n\
                 *) echo LoadState=loaded; echo ActiveState=active; echo SubState=running; echo Result=success;;\n\
               esac\n\
             done\n",
            calls = calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
    let units = "unit.nginx,unit.keepalived,unit.fail2ban,unit.okome-health-probe.timer,unit.okome-prewarm.timer";
    let run = |down: &str| {
        let _ = fs::remove_file(&calls);
        let mut command = validate_only(&lab, "frontend", units);
        command
            .args(["--role", "frontend"])
            .arg("--systemctl")
            .arg(&systemctl)
            .env("DOWN", down);
        let (_, doc) = run_json(&mut command);
        let calls = fs::read_to_string(&calls).unwrap();
        (doc, calls.lines().map(str::to_string).collect::<Vec<_>>())
    };
    let node = common::NODE;
    let (doc, calls) = run("none");
    assert_eq!(red(&doc), BTreeSet::new(), "{doc:#}");
    assert_eq!(with_status(&doc, "pass").len(), 5, "{doc:#}");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].contains("nginx.service keepalived.service fail2ban.service"),
        "{calls:?}"
    );
    let (doc, calls) = run("keepalived.service");
    assert_eq!(
        red(&doc),
        set(&[r(node, "unit.keepalived", "crit", "INCIDENT 3")]),
        "{doc:#}"
    );
    assert_eq!(calls[0].split_whitespace().count(), 8, "{calls:?}");
}

fn set(items: &[Red]) -> BTreeSet<Red> {
    items.iter().cloned().collect()
}

/// keepalived's state with a stand-in `systemctl` for its unit (and
/// nginx's, asked on a FAULT), `ip` without the VIP and `journalctl`'s last
/// notify line `notify`.
fn run_keepalived(
    lab: &okome_lab::lab::Lab,
    dir: &Path,
    unit: &str,
    notify_state: &str,
) -> (BTreeSet<Red>, serde_json::Value) {
    let (active, sub) = unit.split_once('/').unwrap();
    run_with(
        lab,
        dir,
        "unit.keepalived,edge.vrrp",
        &[
            (
                "systemctl",
                format!("LoadState=loaded\nActiveState={active}\nSubState={sub}\nResult=success"),
            ),
            ("ip", addresses(false)),
            ("journalctl", notify(notify_state)),
        ],
    )
}

/// Seen on the cluster lab: keepalived stopped on both frontends, and on
/// the one that had just become MASTER its STOP notify never reached the
/// journal. The stale MASTER line is no finding of its own: unit.keepalived
/// says keepalived is down, once, and edge.vrrp is NOT_RUN behind it.
/// A FAULT while nginx runs (the track script failing) is edge.vrrp's.
#[test]
fn a_stopped_keepalived_is_its_unit_check_not_a_stale_vrrp_state() {
    let lab = lab();
    common::write_cluster_conf(&lab, &format!("vip {VIP}\n"));
    let dir = tempfile::tempdir().unwrap();
    let node = common::NODE;

    let (got, doc) = run_keepalived(&lab, dir.path(), "inactive/dead", "MASTER");
    assert_eq!(
        got,
        set(&[r(node, "unit.keepalived", "crit", "INCIDENT 3")]),
        "{doc:#}"
    );
    assert!(
        with_status(&doc, "not_run").contains(&format!("{node}:edge.vrrp")),
        "{doc:#}"
    );

    // Running, FAULT, nginx running (the stand-in says so for every unit).
    let (got, doc) = run_keepalived(&lab, dir.path(), "active/running", "FAULT");
    assert_eq!(
        got,
        set(&[r(node, "edge.vrrp", "crit", "INCIDENT 3")]),
        "{doc:#}"
    );
}

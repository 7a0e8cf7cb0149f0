//! The booted suite: the amd64 packages installed with apt on a booted
//! Debian 12 (systemd as PID 1 in `systemd-nspawn --private-network`, booted.rs), where what
//! the chroot install test cannot see is real: units load and run under
//! their sandbox as the okome user, timers fire, maintainer scripts start
//! and restart services, journald is the only log, fail2ban reads it.
//!
//! Two containers, one after the other, each on its own unpacked copy of
//! the same cached tree (a boot takes ~1 s, the apt install of the
//! dependencies most of a minute): the frontend role (the tools,
//! okome-frontend, okome-node) and the backend role (okome-node,
//! okome-backend on Debian's redis-server). Each: install → checks →
//! upgrade to revision 2 → checks → reboot → checks (the backend reboots
//! twice: power cuts with its LAN address absent, ip_nonlocal_bind on and
//! off). Every check runs even when an earlier one
//! failed (each failure is a finding; the suite fails at the end naming all
//! of them), so one run shows everything that is wrong. Nothing here times
//! the tools: the only durations asserted are schedule properties systemd
//! itself reports (its timers' next elapse, the journal's start times).
//!
//! Inside the container, loopback only: a python3 stub orchestrator on
//! 127.0.0.1:8000 (its /health answers 503 while /run/okome-stub/down
//! exists), nginx's upstream and the probe's URL pointed at it, and one
//! 10.213.99.2 address on `lo` as the source of failed SSH logins (fail2ban
//! never bans 127.0.0.0/8, see configs/fail2ban/jail.local).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::booted::{BootedNode, Network, Rootfs, RootfsSpec};
use super::{Dist, TOOLS};
use crate::Result;

/// What the suite proves, in failures found (empty: all proven).
#[derive(Debug, Default)]
struct Findings {
    failed: Vec<String>,
}

impl Findings {
    /// Record `what` as proven or as a finding; never stops the suite.
    fn check(&mut self, what: &str, result: Result) {
        match result {
            Ok(()) => eprintln!("xtask booted: ok: {what}"),
            Err(error) => {
                eprintln!("xtask booted: FAILED: {what}: {error}");
                self.failed.push(format!("{what}: {error}"));
            }
        }
    }
}

/// The periods the registry promises (testkit/src/tools.rs), as systemd
/// must have parsed them: (timer, OnUnitActiveSec, RandomizedDelaySec) in µs.
fn timers() -> Vec<(String, u64, u64)> {
    TOOLS
        .iter()
        .filter_map(|t| {
            let timer = t.timer?;
            Some((
                format!("{}.timer", t.package),
                timer.period_us(),
                timer.randomized_delay_us(),
            ))
        })
        .collect()
}

/// The highest `systemd-analyze security` exposure an okome service may
/// have (the issue's bar; 0 = fully sandboxed, 10 = not at all).
const MAX_EXPOSURE: f64 = 2.0;

/// A timer's AccuracySec may be at most this share of its period: systemd's
/// default (1 min) would let a "5 s" timer fire once a minute (GUIDE §1).
const MAX_ACCURACY_SHARE: u64 = 10;

/// The AccuracySec systemd applies to `timer`, in µs, refused when it is
/// more than a tenth of `period`.
fn accuracy(node: &BootedNode, timer: &str, period: u64) -> Result<u64> {
    let accuracy = node.bus_u64(Some(timer), "Timer", "AccuracyUSec")?;
    if accuracy > period / MAX_ACCURACY_SHARE {
        return Err(format!(
            "{timer}: AccuracySec {accuracy} µs, more than a tenth of its {period} µs period"
        )
        .into());
    }
    Ok(accuracy)
}

/// How late a 5 s probe run may start beyond its AccuracySec: the host's
/// scheduling on a loaded 2-core machine, not the timer's.
const PROBE_SLACK: f64 = 0.5;

use super::booted::NODE_EXPORTER;

/// The failed-login source; 10.213.0.0/16 is the tests' range, and it
/// exists only on the container's own `lo` (private network).
const INTRUDER: &str = "10.213.99.2";

/// Run in each okome service's own sandbox in place of the tool (a runtime
/// drop-in swaps ExecStart only): what the sandbox lets a process do.
/// /run/lock is world-writable (1777): only `ProtectSystem=strict` keeps
/// the okome user from writing there, and the same script run as okome
/// without a sandbox must manage it, or the check proves nothing.
const SANDBOX_PROBE: &str = r#"say() { echo "sandbox: $*"; }
say "user=$(id -un)"
say "capabilities=$(awk '$1 == "CapEff:" || $1 == "CapBnd:" { printf "%s%s", sep, $2; sep = "/" }' /proc/self/status)"
for dir in /run/lock /run/okome /run/okome/metrics; do
    if touch "$dir/okome-sandbox-test" 2>/dev/null; then
        rm -f "$dir/okome-sandbox-test"; say "write $dir=yes"
    else
        say "write $dir=no"
    fi
done
"#;

/// Run the suite on the amd64 packages of `dist` (revision 1), building
/// revision 2 of them for the upgrade step.
pub fn run(dist: &Dist) -> Result {
    let started = Instant::now();
    let sets = package_sets(dist)?;
    let mut every = sets.frontend.0.clone();
    every.extend(sets.backend.0.iter().cloned());
    let spec = RootfsSpec::for_debs(&every)?;
    let _fence = TestRangeFence::raise();
    let mut findings = Findings::default();
    frontend(&spec, &sets.frontend, &mut findings)?;
    let frontend_took = started.elapsed().as_secs_f64();
    backend(&spec, &sets.backend, &mut findings)?;
    eprintln!(
        "xtask booted: suite took {:.0} s (frontend {frontend_took:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if findings.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the booted suite found {} problem(s):\n  {}",
            findings.failed.len(),
            findings.failed.join("\n  ")
        )
        .into())
    }
}

/// The frontend role: the tools, okome-frontend and okome-node.
fn frontend(
    spec: &RootfsSpec,
    (v1, v2): &(Vec<PathBuf>, Vec<PathBuf>),
    findings: &mut Findings,
) -> Result {
    let started = Instant::now();
    let rootfs = Rootfs::unpack(spec, "okome-booted")?;
    let v1_args = rootfs.copy_in(v1, "/root/okome-debs/v1")?.join(" ");
    let v2_args = rootfs.copy_in(v2, "/root/okome-debs/v2")?.join(" ");
    std::fs::write(
        rootfs.path("/root/environment-file-cases.json"),
        std::fs::read(ENV_CASES)?,
    )?;
    std::fs::create_dir_all(rootfs.path("/usr/local/lib/okome-test"))?;
    std::fs::write(
        rootfs.path("/usr/local/lib/okome-test/stub.py"),
        okome_cluster::cluster::stub_orchestrator("127.0.0.1"),
    )?;
    std::fs::write(
        rootfs.path("/usr/local/lib/okome-test/sandbox.sh"),
        SANDBOX_PROBE,
    )?;
    let prepared = started.elapsed().as_secs_f64();

    let node = BootedNode::boot(&rootfs, Network::Private)?;
    // An admin who can sudo and logs in with a key, there before okome-node
    // (which arms the sshd hardening only for such a login).
    add_admin(&node)?;
    // A node that already runs node_exporter (okome-frontend ships a
    // drop-in for it, and must get it applied). Without recommends:
    // prometheus-node-exporter-collectors would bring nvme-cli, whose
    // nvmf-autoconnect.service fails in any container.
    node.sh(&format!(
        "apt-get install -y -q --no-install-recommends {NODE_EXPORTER}"
    ))?;
    // The dependencies come from the tree's apt cache, with their
    // recommends, as `apt install ./okome-*.deb` does on a node.
    let install = Instant::now();
    node.sh(&format!("apt-get install -y -q {v1_args}"))?;
    eprintln!(
        "xtask booted: apt install took {:.0} s",
        install.elapsed().as_secs_f64()
    );

    // --- After install ---
    findings.check(
        "fail2ban is running after install",
        active(&node, "fail2ban.service"),
    );
    findings.check("no failed unit after install", no_failed(&node));
    findings.check("every okome unit loads", units_load(&node));
    findings.check(
        "systemd-analyze verify prints nothing for the okome units",
        verify(&node),
    );
    findings.check(
        "node_exporter runs with okome's drop-in after install",
        node_exporter(&node),
    );
    findings.check(
        &format!("systemd-analyze security ≤ {MAX_EXPOSURE} for each okome service"),
        security(&node),
    );
    findings.check(
        "the okome timers are enabled and waiting",
        timers_active(&node),
    );
    findings.check(
        "each okome service's sandbox: user okome, /run read-only but /run/okome (root: only /run/okome/metrics)",
        sandboxes(&node),
    );

    findings.check(
        "the running sshd refuses passwords and takes the admin's key after install",
        sshd_armed(&node),
    );
    findings.check(
        "systemd's EnvironmentFile= gives each case's value (environment-file-cases.json)",
        environment_files(&node),
    );

    // --- What the tools do, under their sandbox, against real nginx ---
    point_at_stub(&node)?;
    let quiet_from = SystemTime::now();
    findings.check(
        "the probe closes and opens the gate, nginx honours it",
        gate(&node),
    );
    let quiet_until = SystemTime::now();
    findings.check(
        "the probe timer fires every 5 s ± AccuracySec",
        probe_period(&node, quiet_from, quiet_until),
    );
    findings.check(
        "prewarm reads nginx's log and warms nginx under its sandbox",
        prewarm(&node),
    );
    findings.check(
        "prewarm's timer: next run 2 min after the last, within its random delay",
        next_elapse(&node, "okome-prewarm"),
    );
    findings.check("hit-ratio's run writes its textfile", hit_ratio(&node));
    findings.check(
        "hit-ratio's timer: next run 5 min after the last, within its random delay",
        next_elapse(&node, "okome-hit-ratio"),
    );
    findings.check(
        "okome-validate (root) leaves /run/okome okome:okome; the probe runs after it",
        validate_keeps_run_okome(&node),
    );

    // --- Upgrade to revision 2, then reboot ---
    node.sh(&format!("apt-get install -y -q {v2_args}"))?;
    findings.check(
        "the upgrade installed revision 2",
        versions(&node, v2, &format!("{}-2", super::deb::VERSION)),
    );
    findings.check("no failed unit after upgrade", no_failed(&node));
    findings.check("the okome timers survive the upgrade", timers_active(&node));
    let node = node.reboot(Network::Private)?;
    findings.check("no failed unit after a reboot", no_failed(&node));
    findings.check(
        "the okome timers are back after a reboot",
        timers_active(&node),
    );
    findings.check(
        "after a reboot node_exporter publishes the okome tools' metrics",
        node_exporter(&node).and_then(|()| {
            wait_for(
                &node,
                "okome_ metrics on :9100",
                Duration::from_secs(60),
                || {
                    Ok(node
                        .try_sh("curl -sf http://127.0.0.1:9100/metrics | grep -q '^okome_'")?
                        .status
                        .success())
                },
            )
        }),
    );
    findings.check(
        "journald runs with okome's RuntimeMaxUse=24M after a reboot",
        journald_limit(&node),
    );
    findings.check(
        "the running sshd still refuses passwords after a reboot",
        sshd_armed(&node),
    );
    findings.check(
        "/run/okome exists again after a reboot (tmpfiles)",
        node.sh("test -d /run/okome/metrics && stat -c %U /run/okome | grep -qx okome")
            .map(drop),
    );
    // Last: a fail2ban found dead is started here, which must not hide it
    // from the checks after the upgrade.
    findings.check(
        "fail2ban bans an address after failed SSH logins from the journal",
        fail2ban_bans(&node),
    );
    drop(node);
    drop(rootfs);
    eprintln!(
        "xtask booted: frontend took {:.0} s (rootfs ready in {prepared:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The test password of every okome ACL user on the backend node.
const REDIS_PASSWORD: &str = "okome-booted-redis-pw";

/// The backend's "LAN" address: on no interface at boot (the container's
/// private network has only `lo`), added later, as a DHCP lease or a late
/// link would after a power cut.
const BACKEND_ADDRESS: &str = "10.213.50.19";

/// `redis-cli` as the operator, on `host`.
fn redis(node: &BootedNode, host: &str, command: &str) -> Result<String> {
    node.sh(&format!(
        "redis-cli -h {host} --user operator --pass {REDIS_PASSWORD} --no-auth-warning {command}"
    ))
    .map(|out| out.trim().to_string())
}

fn redis_pid(node: &BootedNode) -> Result<u32> {
    Ok(node.show("redis-server.service", &["MainPID"])?[0].parse()?)
}

/// Redis answers as the operator (so it runs okome.conf: Debian's config
/// has no such user) and the okome library answers, nobody having loaded
/// it since the start.
fn redis_on_okome(node: &BootedNode) -> Result {
    let whoami = redis(node, "127.0.0.1", "ACL WHOAMI")?;
    if whoami != "operator" {
        return Err(format!("ACL WHOAMI as operator: {whoami:?} (not on okome.conf?)").into());
    }
    let version = redis(node, "127.0.0.1", "FCALL_RO okome_version 0")?;
    if version.is_empty() || version.contains("ERR") {
        return Err(format!("FCALL_RO okome_version 0: {version:?}").into());
    }
    Ok(())
}

/// Until `redis-server.service` runs a MainPID other than `old`, active,
/// and answers on okome.conf.
fn redis_back(node: &BootedNode, old: u32, within: Duration) -> Result {
    wait_for(node, "redis-server back with a new MainPID", within, || {
        let state = node.show("redis-server.service", &["ActiveState", "MainPID"])?;
        Ok(state[0] == "active" && state[1] != "0" && state[1] != old.to_string())
    })?;
    wait_for(node, "redis answers on okome.conf", within, || {
        Ok(redis_on_okome(node).is_ok())
    })?;
    redis_on_okome(node)
}

/// How soon systemd must bring back a Redis killed with SIGKILL: the
/// drop-in's RestartSec (2 s) and a start, with a loaded host's slack.
const KILLED_BACK: Duration = Duration::from_secs(20);

/// A sysctl.d file read after okome's 90-okome-backend.conf, turning
/// ip_nonlocal_bind off again: the node where systemd-sysctl did not help.
const LOCAL_BIND_OFF: &str = "/etc/sysctl.d/99-okome-test-local-bind-off.conf";

/// Just booted, BACKEND_ADDRESS on no interface: wait 10 s, add it to
/// `lo`, and Redis must answer PING on it within 15 s with nobody touching
/// Redis. Prints what systemd did meanwhile (NRestarts, the journal).
fn address_appears(node: &BootedNode) -> Result {
    let booted = SystemTime::now();
    std::thread::sleep(Duration::from_secs(10));
    let absent = node.show(
        "redis-server.service",
        &["ActiveState", "SubState", "NRestarts"],
    )?;
    eprintln!(
        "xtask booted: 10 s after boot, {BACKEND_ADDRESS} absent: redis-server {}/{} NRestarts={}",
        absent[0], absent[1], absent[2]
    );
    node.sh(&format!("ip addr add {BACKEND_ADDRESS}/32 dev lo"))?;
    let appeared = Instant::now();
    let pong = wait_for(
        node,
        &format!("PONG on {BACKEND_ADDRESS} after it appeared"),
        Duration::from_secs(15),
        || {
            Ok(node
                .try_sh(&format!(
                    "redis-cli -h {BACKEND_ADDRESS} --user operator --pass {REDIS_PASSWORD} \
                     --no-auth-warning PING | grep -qx PONG"
                ))?
                .status
                .success())
        },
    );
    let answered = appeared.elapsed().as_secs_f64();
    let restarts = node.show("redis-server.service", &["NRestarts"])?.remove(0);
    let journal = node.journal("redis-server.service", booted - Duration::from_secs(5))?;
    let lines: Vec<&str> = journal
        .lines()
        .filter(|l| !l.contains("redis-server[") || l.contains('#') || l.contains("Ready"))
        .collect();
    eprintln!(
        "xtask booted: PONG {answered:.1} s after the address appeared; redis-server \
         NRestarts={restarts}; its journal this boot:\n{}",
        super::chroot::tail(lines.join("\n").as_bytes())
    );
    pong.and_then(|()| redis_on_okome(node))
}

/// The backend role: okome-node and okome-backend on Debian's
/// redis-server, in a second container booted from the same cached tree.
fn backend(
    spec: &RootfsSpec,
    (v1, v2): &(Vec<PathBuf>, Vec<PathBuf>),
    findings: &mut Findings,
) -> Result {
    let started = Instant::now();
    let rootfs = Rootfs::unpack(spec, "okome-booted-backend")?;
    let v1_args = rootfs.copy_in(v1, "/root/okome-debs/v1")?.join(" ");
    let v2_args = rootfs.copy_in(v2, "/root/okome-debs/v2")?.join(" ");
    let node = BootedNode::boot(&rootfs, Network::Private)?;
    let said = node.sh(&format!("apt-get install -y -q {v1_args} 2>&1"))?;

    // --- Installed with the shipped placeholder hashes ---
    findings.check(
        "placeholder hashes: apt says to set the passwords and reconfigure",
        if said.contains("placeholder password") && said.contains("dpkg-reconfigure okome-backend")
        {
            Ok(())
        } else {
            Err(format!("apt's output:\n{}", super::chroot::tail(said.as_bytes())).into())
        },
    );
    findings.check(
        "placeholder hashes: redis-server runs on Debian's config, not okome.conf",
        active(&node, "redis-server.service").and_then(|()| {
            // Debian's config: the default user, no password. okome.conf
            // turns it off (NOAUTH / WRONGPASS).
            let who = node.sh("redis-cli ACL WHOAMI 2>&1")?;
            if who.trim() == "default" {
                Ok(())
            } else {
                Err(format!("unauthenticated ACL WHOAMI: {:?}", who.trim()).into())
            }
        }),
    );
    findings.check("no failed unit after the backend install", no_failed(&node));

    // --- Real hashes, the test address, reconfigure ---
    node.sh(&format!(
        "hash=$(printf %s '{REDIS_PASSWORD}' | sha256sum | cut -d' ' -f1)
         sed -i -e \"s/#0\\{{64\\}}/#$hash/\" -e \"s/#1\\{{64\\}}/#$hash/\" -e \"s/#2\\{{64\\}}/#$hash/\" \
             -e 's/^bind .*/bind 127.0.0.1 {BACKEND_ADDRESS}/' /etc/redis/okome.conf
         grep -c \"#$hash\" /etc/redis/okome.conf | grep -qx 3"
    ))?;
    let before = redis_pid(&node)?;
    let said = node.sh("dpkg-reconfigure okome-backend 2>&1")?;
    eprintln!(
        "xtask booted: dpkg-reconfigure okome-backend:\n{}",
        said.trim()
    );
    findings.check(
        "dpkg-reconfigure restarts redis-server onto okome.conf, library preloaded",
        redis_back(&node, before, Duration::from_secs(30)),
    );
    let before = redis_pid(&node)?;
    node.systemctl(&["restart", "redis-server.service"])?;
    findings.check(
        "the okome library is there after systemctl restart redis-server",
        redis_back(&node, before, Duration::from_secs(30)),
    );
    let before = redis_pid(&node)?;
    node.sh(&format!("kill -9 {before}"))?;
    findings.check(
        "kill -9 of redis-server: Restart=always brings it back with the library",
        redis_back(&node, before, KILLED_BACK),
    );

    // --- Upgrade with the config unchanged: no restart, the data stays ---
    // (A Redis the check above left down is started, so what follows is
    // still checked.)
    node.systemctl(&["start", "redis-server.service"])?;
    wait_for(&node, "redis answers", Duration::from_secs(40), || {
        Ok(redis(&node, "127.0.0.1", "PING").is_ok_and(|r| r == "PONG"))
    })?;
    redis(&node, "127.0.0.1", "SET okome:booted:kept 1")?;
    let before = redis_pid(&node)?;
    node.sh(&format!("apt-get install -y -q {v2_args}"))?;
    findings.check(
        "the backend upgrade installed revision 2",
        versions(&node, v2, &format!("{}-2", super::deb::VERSION)),
    );
    findings.check(
        "an upgrade with the config unchanged keeps redis-server and its keys",
        (|| -> Result {
            let after = redis_pid(&node)?;
            let kept = redis(&node, "127.0.0.1", "GET okome:booted:kept")?;
            if after != before || kept != "1" {
                return Err(format!(
                    "MainPID {before} → {after}, GET okome:booted:kept → {kept:?}"
                )
                .into());
            }
            Ok(())
        })(),
    );
    findings.check("no failed unit after the backend upgrade", no_failed(&node));

    // --- A power cut: the node comes back before its LAN address does ---
    let node = node.reboot(Network::Private)?;
    let nonlocal = node.sh("sysctl -n net.ipv4.ip_nonlocal_bind")?;
    eprintln!(
        "xtask booted: after boot: net.ipv4.ip_nonlocal_bind = {}",
        nonlocal.trim()
    );
    findings.check(
        "systemd-sysctl applied net.ipv4.ip_nonlocal_bind=1 at boot",
        if nonlocal.trim() == "1" {
            Ok(())
        } else {
            Err(format!("net.ipv4.ip_nonlocal_bind = {}", nonlocal.trim()).into())
        },
    );
    findings.check(
        &format!("after a reboot, Redis answers on {BACKEND_ADDRESS} within 15 s of it appearing"),
        address_appears(&node),
    );
    // The same power cut on a node where ip_nonlocal_bind is off (a later
    // sysctl.d file, or a kernel that refuses it): Redis cannot bind the
    // absent address, exits, and only the drop-in's Restart=always with a
    // short RestartSec and no start limit brings it up once it appears.
    node.sh(&format!(
        "echo 'net.ipv4.ip_nonlocal_bind = 0' > {LOCAL_BIND_OFF}"
    ))?;
    let node = node.reboot(Network::Private)?;
    findings.check(
        &format!(
            "ip_nonlocal_bind off: after a reboot, Redis answers on {BACKEND_ADDRESS} within \
             15 s of it appearing (Restart=always)"
        ),
        node.sh("sysctl -n net.ipv4.ip_nonlocal_bind")
            .and_then(|v| {
                if v.trim() == "0" {
                    Ok(())
                } else {
                    Err(format!("{LOCAL_BIND_OFF} not applied: {}", v.trim()).into())
                }
            })
            .and_then(|()| address_appears(&node)),
    );
    node.sh(&format!("rm {LOCAL_BIND_OFF}"))?;
    findings.check("no failed unit after the backend reboot", no_failed(&node));
    drop(node);
    drop(rootfs);
    eprintln!(
        "xtask booted: backend took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The packages of each role, revision 1 (what `dist` built) and 2 (for
/// the upgrade): amd64 and `all` packages.
struct PackageSets {
    frontend: (Vec<PathBuf>, Vec<PathBuf>),
    backend: (Vec<PathBuf>, Vec<PathBuf>),
}

/// A frontend node gets every package but okome-backend; a backend node
/// gets okome-node and okome-backend (the tools run on the frontend).
fn package_sets(dist: &Dist) -> Result<PackageSets> {
    let name = |p: &PathBuf| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let ours = |p: &PathBuf| name(p).ends_with("_amd64.deb") || name(p).ends_with("_all.deb");
    let frontend = |p: &PathBuf| ours(p) && !name(p).starts_with("okome-backend_");
    let backend = |p: &PathBuf| {
        ours(p) && (name(p).starts_with("okome-backend_") || name(p).starts_with("okome-node_"))
    };
    let v1: Vec<PathBuf> = dist.debs.iter().filter(|p| ours(p)).cloned().collect();
    let dir = super::out_dir().join("deb-booted-v2");
    std::fs::create_dir_all(&dir)?;
    let mut v2 = Vec::new();
    for binary in dist
        .binaries
        .iter()
        .filter(|b| b.target.deb_arch == "amd64")
    {
        v2.push(super::deb::tool_package(binary, "2", &dir)?);
    }
    v2.extend(super::deb::config_packages("2", &dir)?);
    let pick = |set: &[PathBuf], role: &dyn Fn(&PathBuf) -> bool| -> Vec<PathBuf> {
        set.iter().filter(|p| role(p)).cloned().collect()
    };
    Ok(PackageSets {
        frontend: (pick(&v1, &frontend), pick(&v2, &frontend)),
        backend: (pick(&v1, &backend), pick(&v2, &backend)),
    })
}

/// Every okome unit: each tool's service and timer.
fn okome_units() -> Vec<String> {
    TOOLS
        .iter()
        .filter(|t| t.has_timer())
        .flat_map(|t| {
            [
                format!("{}.service", t.package),
                format!("{}.timer", t.package),
            ]
        })
        .collect()
}

fn okome_services() -> Vec<String> {
    TOOLS
        .iter()
        .filter(|t| t.has_timer())
        .map(|t| format!("{}.service", t.package))
        .collect()
}

fn active(node: &BootedNode, unit: &str) -> Result {
    let state = node.show(unit, &["ActiveState", "SubState", "Result"])?;
    if state[0] == "active" {
        return Ok(());
    }
    let journal = node.journal(unit, SystemTime::UNIX_EPOCH)?;
    Err(format!(
        "{unit} is {}/{} (result {}); its journal ends:\n{}",
        state[0],
        state[1],
        state[2],
        super::chroot::tail(journal.as_bytes())
    )
    .into())
}

fn no_failed(node: &BootedNode) -> Result {
    let failed = node.failed_units()?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(" ")).into())
    }
}

/// Loaded, no load error, and the drop-ins okome ships are applied.
fn units_load(node: &BootedNode) -> Result {
    let mut problems = Vec::new();
    for unit in okome_units() {
        let got = node.show(&unit, &["LoadState", "LoadError"])?;
        if got[0] != "loaded" || !got[1].is_empty() && got[1] != "n/a \"n/a\"" {
            problems.push(format!("{unit}: LoadState={} LoadError={}", got[0], got[1]));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

/// `systemd-analyze verify` warns on typos and bad values but exits 0:
/// any output at all is a finding.
fn verify(node: &BootedNode) -> Result {
    let out = node.try_sh(&format!(
        "systemd-analyze verify {} 2>&1",
        okome_units().join(" ")
    ))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n{text}", out.status).into())
    }
}

fn node_exporter(node: &BootedNode) -> Result {
    const UNIT: &str = "prometheus-node-exporter.service";
    let dropins = node.show(UNIT, &["DropInPaths"])?.remove(0);
    if !dropins.contains("prometheus-node-exporter.service.d/okome.conf") {
        return Err(format!("okome.conf not among its drop-ins: {dropins:?}").into());
    }
    active(node, UNIT)?;
    let line = node.sh("tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value prometheus-node-exporter)/cmdline")?;
    if !line.contains("--collector.textfile.directory=/run/okome/metrics") {
        return Err(format!("runs without okome's textfile directory: {line}").into());
    }
    Ok(())
}

/// The "Overall exposure level" of `unit`, measured by the running
/// systemd (what it really applies, not an offline reading).
fn exposure(node: &BootedNode, unit: &str) -> Result<f64> {
    let out = node.try_sh(&format!("systemd-analyze security --no-pager {unit}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_exposure(&text).ok_or_else(|| {
        format!(
            "{unit}: no exposure level in:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

/// `→ Overall exposure level for x.service: 1.2 OK 🙂` → 1.2
fn parse_exposure(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, after) = line.rsplit_once(".service:")?;
    after.split_whitespace().next()?.parse().ok()
}

fn security(node: &BootedNode) -> Result {
    let mut over = Vec::new();
    for unit in okome_services() {
        let level = exposure(node, &unit)?;
        eprintln!("xtask booted: {unit}: exposure {level:.1}");
        if level > MAX_EXPOSURE {
            over.push(format!("{unit} {level:.1}"));
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!("above {MAX_EXPOSURE}: {}", over.join(", ")).into())
    }
}

/// What [`SANDBOX_PROBE`] prints in each service's sandbox, and what it
/// must print.
fn sandboxes(node: &BootedNode) -> Result {
    let control = node.sh(
        "systemd-run --quiet --wait --pipe -p User=okome /bin/sh /usr/local/lib/okome-test/sandbox.sh",
    )?;
    if !control.contains("write /run/lock=yes") {
        return Err(
            format!("without a sandbox okome cannot write /run/lock either:\n{control}").into(),
        );
    }
    let mut problems = Vec::new();
    for tool in TOOLS.iter().filter(|t| t.has_timer()) {
        let unit = format!("{}.service", tool.package);
        // Its registry user (root only where the registry says why), no
        // capability effective or even in the bounding set, and the one
        // writable run directory: /run/okome for the okome user; for root
        // without capabilities only the textfile directory (group okome,
        // 0775), not the okome user's gate and state.
        let as_root = tool.service_user() == "root";
        let expected = [
            format!("user={}", tool.service_user()),
            "capabilities=0000000000000000/0000000000000000".to_string(),
            "write /run/lock=no".to_string(),
            format!("write /run/okome={}", if as_root { "no" } else { "yes" }),
            "write /run/okome/metrics=yes".to_string(),
        ];
        let dropin = format!("/run/systemd/system/{unit}.d/zz-okome-sandbox-test.conf");
        node.sh(&format!(
            "mkdir -p /run/systemd/system/{unit}.d && printf '%s\\n' '[Service]' 'ExecStart=' \
             'ExecStart=/bin/sh /usr/local/lib/okome-test/sandbox.sh' > {dropin} \
             && systemctl daemon-reload"
        ))?;
        let since = SystemTime::now() - Duration::from_secs(1);
        let ran = node.try_sh(&format!("systemctl start {unit}"));
        node.sh(&format!("rm -f {dropin} && systemctl daemon-reload"))?;
        if !ran?.status.success() {
            problems.push(format!("{unit}: the sandbox probe failed to run"));
            continue;
        }
        let journal = node.journal(&unit, since)?;
        let said: Vec<&str> = journal
            .lines()
            .filter_map(|l| l.split_once("sandbox: ").map(|(_, said)| said.trim()))
            .collect();
        eprintln!("xtask booted: {unit} sandbox: {}", said.join(", "));
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !said.contains(&e.as_str()))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("{unit}: expected {missing:?}, got {said:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

fn timers_active(node: &BootedNode) -> Result {
    let mut problems = Vec::new();
    for (timer, _, _) in timers() {
        let enabled = node.show(&timer, &["UnitFileState", "ActiveState", "SubState"])?;
        if enabled[0] != "enabled" || enabled[1] != "active" || enabled[2] != "waiting" {
            problems.push(format!("{timer}: {}", enabled.join(" ")));
        }
    }
    eprintln!("{}", node.systemctl(&["list-timers", "okome-*"])?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

/// Site addresses → the stub: nginx's upstream, the probe's URL (as an
/// operator edits them), then the stub as a transient unit.
fn point_at_stub(node: &BootedNode) -> Result {
    node.sh(
        "sed -i 's/192\\.168\\.86\\.25:8000/127.0.0.1:8000/' /etc/nginx/okome/upstream.conf \
         && grep -q '127.0.0.1:8000' /etc/nginx/okome/upstream.conf \
         && echo 'OKOME_HEALTH_URL=http://127.0.0.1:8000/health' >> /etc/default/okome-health-probe \
         && nginx -t -q && systemctl reload nginx",
    )?;
    node.sh(
        "systemd-run --quiet --unit=okome-test-stub -p RuntimeDirectory=okome-stub \
         python3 /usr/local/lib/okome-test/stub.py",
    )?;
    wait_for(node, "the stub answers", Duration::from_secs(20), || {
        Ok(node
            .try_sh("curl -sf -o /dev/null http://127.0.0.1:8000/health")?
            .status
            .success())
    })
}

/// Poll `probe` every 200 ms until it holds or `deadline` passes.
fn wait_for(
    _node: &BootedNode,
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<bool>,
) -> Result {
    let started = Instant::now();
    loop {
        if probe()? {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(format!("{what}: not within {} s", deadline.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const FLAG: &str = "/run/okome/orchestrator.down";

/// `(status, body)` of a GET through the local nginx.
fn get(node: &BootedNode, path: &str) -> Result<(u16, String)> {
    let text = node.sh(&format!(
        "curl -s -A 'Mozilla/5.0 (okome booted test)' -w '\\n%{{http_code}}' http://127.0.0.1{path}"
    ))?;
    let (body, code) = text.rsplit_once('\n').ok_or("curl printed no status")?;
    Ok((code.trim().parse()?, body.to_string()))
}

/// The gate, driven by the real probe under its timer: it opens against a
/// healthy stub, closes when the stub's /health fails, opens again; the
/// flag is the okome user's file; nginx answers maintenance 503 while it
/// is closed and proxies while it is open.
fn gate(node: &BootedNode) -> Result {
    // The probe needs RISE (3) good runs and the 10 s hold-down to open,
    // FALL (2) bad checks to close: ~15-25 s each way at 5 s a run.
    let deadline = Duration::from_secs(60);
    let flag = |present: bool| -> Result<bool> {
        Ok(node.try_sh(&format!("test -e {FLAG}"))?.status.success() == present)
    };
    wait_for(node, "the gate opens (healthy stub)", deadline, || {
        flag(false)
    })?;
    let (code, body) = get(node, "/booted-open-1")?;
    if code != 200 || !body.contains("stub /booted-open-1") {
        return Err(format!("gate open: nginx answered {code} {body:?}, not the stub").into());
    }
    node.sh("touch /run/okome-stub/down")?;
    wait_for(node, "the gate closes (stub /health 503)", deadline, || {
        flag(true)
    })?;
    let owner = node.sh(&format!("stat -c %U {FLAG}"))?;
    if owner.trim() != "okome" {
        return Err(format!("{FLAG} owned by {owner:?}: the probe did not run as okome").into());
    }
    let (code, body) = get(node, "/booted-closed-1")?;
    if code != 503 || !body.contains("maintenance") {
        return Err(format!("gate closed: nginx answered {code} {body:?}, not maintenance").into());
    }
    node.sh("rm /run/okome-stub/down")?;
    wait_for(node, "the gate opens again", deadline, || flag(false))?;
    let (code, _) = get(node, "/booted-open-2")?;
    if code != 200 {
        return Err(format!("gate reopened: nginx answered {code}").into());
    }
    Ok(())
}

/// Consecutive probe starts in a window where nothing restarted its
/// timer are 5 s apart, late by at most AccuracySec (+ scheduling slack).
fn probe_period(node: &BootedNode, from: SystemTime, until: SystemTime) -> Result {
    const UNIT: &str = "okome-health-probe.service";
    let (timer, period, _) = timers()
        .into_iter()
        .find(|(t, _, _)| t == "okome-health-probe.timer")
        .ok_or("the registry has no okome-health-probe timer")?;
    let accuracy = accuracy(node, &timer, period)? as f64 / 1e6;
    let until = until.duration_since(SystemTime::UNIX_EPOCH)?.as_secs_f64();
    let starts: Vec<f64> = node
        .starts(UNIT, from)?
        .into_iter()
        .filter(|t| *t <= until)
        .collect();
    if starts.len() < 5 {
        return Err(format!(
            "only {} probe starts in the window: {starts:?}",
            starts.len()
        )
        .into());
    }
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("xtask booted: probe gaps (s): {gaps:.3?}, AccuracySec {accuracy} s");
    let bad: Vec<&f64> = gaps
        .iter()
        .filter(|g| **g < 5.0 - 0.05 || **g > 5.0 + accuracy + PROBE_SLACK)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "gaps outside 5 s … 5 s + {accuracy} s + {PROBE_SLACK} s: {bad:.3?} (all: {gaps:.3?})"
        )
        .into())
    }
}

/// Demand in nginx's log, an empty cache, one prewarm run (the service,
/// as its timer starts it): afterwards the path is a HIT, and the stub saw
/// prewarm's request.
fn prewarm(node: &BootedNode) -> Result {
    let paths = ["/static/booted-app.js", "/static/booted-app.css"];
    for _ in 0..3 {
        for path in paths {
            let (code, _) = get(node, path)?;
            if code != 200 {
                return Err(format!("demand request {path}: {code}").into());
            }
        }
    }
    // An empty cache: what prewarm fetches now, only prewarm put there.
    node.sh("systemctl stop nginx && rm -rf /var/cache/nginx/okome/* && systemctl start nginx")?;
    // Prewarm's timer may have run since the demand was logged (OnBootSec
    // is 2 min) and moved its offset past it: start from a fresh state, as
    // on a node's first run, which reads the log's tail.
    node.sh(": > /run/okome-stub/requests.log && rm -f /run/okome/prewarm.state")?;
    let run = node.try_sh("systemctl start okome-prewarm.service")?;
    let journal = node.journal(
        "okome-prewarm.service",
        SystemTime::now() - Duration::from_secs(150),
    )?;
    if !run.status.success() {
        return Err(format!(
            "okome-prewarm.service failed:\n{}",
            super::chroot::tail(journal.as_bytes())
        )
        .into());
    }
    let stub_log = node.sh("cat /run/okome-stub/requests.log")?;
    for path in paths {
        if !stub_log
            .lines()
            .any(|l| l.contains(path) && l.contains("okome-prewarm"))
        {
            return Err(format!(
                "the stub saw no prewarm request for {path}:\n{stub_log}\nprewarm's journal:\n{}",
                super::chroot::tail(journal.as_bytes())
            )
            .into());
        }
    }
    let status = node.sh(&format!(
        "curl -s -o /dev/null -D - http://127.0.0.1{} | tr -d '\\r' | sed -n 's/^X-Cache-Status: //p'",
        paths[0]
    ))?;
    if status.trim() != "HIT" {
        return Err(format!(
            "{} after prewarm: X-Cache-Status {status:?}, not HIT",
            paths[0]
        )
        .into());
    }
    Ok(())
}

/// hit-ratio's service (what its timer starts) writes the textfile as the
/// okome user under /run/okome/metrics.
fn hit_ratio(node: &BootedNode) -> Result {
    const FILE: &str = "/run/okome/metrics/okome-hit-ratio.prom";
    node.sh(&format!("rm -f {FILE}"))?;
    let run = node.try_sh("systemctl start okome-hit-ratio.service")?;
    if !run.status.success() {
        let journal = node.journal(
            "okome-hit-ratio.service",
            SystemTime::now() - Duration::from_secs(60),
        )?;
        return Err(format!("okome-hit-ratio.service failed:\n{journal}").into());
    }
    let owner = node.sh(&format!("stat -c %U {FILE}"))?;
    if owner.trim() != "okome" {
        return Err(format!("{FILE} owned by {owner:?}").into());
    }
    let text = node.sh(&format!("cat {FILE}"))?;
    if !text.lines().any(|l| l.starts_with("okome_")) {
        return Err(format!("{FILE} has no okome_ metric:\n{text}").into());
    }
    Ok(())
}

/// okome-validate runs as root, the probe as okome, and both write under
/// /run/okome. A root unit's `RuntimeDirectory=okome` would chown the shared
/// tree to root on every start (systemd chowns a unit's runtime directories
/// to its user), and a probe run overlapping it could not write its gate or
/// textfile. After a probe run and then a validate run (the probe's timer
/// stopped meanwhile, so it cannot chown the tree back before the look),
/// /run/okome and /run/okome/metrics are still okome:okome, validate wrote
/// its textfile, and the next probe run succeeds and writes its own.
fn validate_keeps_run_okome(node: &BootedNode) -> Result {
    const PROBE_PROM: &str = "/run/okome/metrics/okome-health-probe.prom";
    const VALIDATE_PROM: &str = "/run/okome/metrics/okome-validate.prom";
    node.sh("systemctl stop okome-health-probe.timer")?;
    let checked = (|| -> Result {
        let since = SystemTime::now() - Duration::from_secs(1);
        let probe = |what: &str| -> Result {
            let run = node.try_sh("systemctl start okome-health-probe.service")?;
            if run.status.success() {
                return Ok(());
            }
            let journal = node.journal("okome-health-probe.service", since)?;
            Err(format!("okome-health-probe.service failed {what}:\n{journal}").into())
        };
        probe("before okome-validate")?;
        node.sh(&format!("rm -f {VALIDATE_PROM}"))?;
        // A oneshot: `systemctl start` returns once the run has finished.
        // Its checks may fail here (exit 1, SuccessExitStatus=1): the
        // textfile is the point, so the result is printed, not judged.
        let run = node.try_sh("systemctl start okome-validate.service")?;
        eprintln!(
            "xtask booted: okome-validate.service ran: {} ({})",
            run.status,
            node.show("okome-validate.service", &["Result"])?.join(" ")
        );
        let mut problems = Vec::new();
        let owners = node.sh("stat -c '%n %U:%G %a' /run/okome /run/okome/metrics")?;
        for line in owners.lines() {
            if line.split_whitespace().nth(1) != Some("okome:okome") {
                problems.push(format!("after okome-validate: {line}"));
            }
        }
        if node
            .try_sh(&format!("test -s {VALIDATE_PROM}"))?
            .status
            .success()
        {
            let owner = node.sh(&format!("stat -c '%U:%G' {VALIDATE_PROM}"))?;
            eprintln!("xtask booted: {VALIDATE_PROM}: {}", owner.trim());
        } else {
            let journal = node.journal("okome-validate.service", since)?;
            problems.push(format!(
                "okome-validate wrote no {VALIDATE_PROM}; its journal:\n{}",
                super::chroot::tail(journal.as_bytes())
            ));
        }
        node.sh(&format!("rm -f {PROBE_PROM}"))?;
        match probe("after okome-validate") {
            Ok(()) => {
                let owner = node.try_sh(&format!("stat -c '%U' {PROBE_PROM}"))?;
                let owner = String::from_utf8_lossy(&owner.stdout).trim().to_string();
                if owner != "okome" {
                    problems.push(format!(
                        "the probe's run after okome-validate left {PROBE_PROM} owned by {owner:?}"
                    ));
                }
            }
            Err(error) => problems.push(error.to_string()),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; ").into())
        }
    })();
    node.sh("systemctl start okome-health-probe.timer")?;
    checked
}

/// Right after `tool`'s service ran, systemd's next elapse of its timer is
/// the period after that run (or OnBootSec after boot, if that is still
/// ahead), plus at most RandomizedDelaySec; and the timer was parsed with
/// the promised period and random delay.
fn next_elapse(node: &BootedNode, tool: &str) -> Result {
    let timer = format!("{tool}.timer");
    let service = format!("{tool}.service");
    let (_, period, random) = timers()
        .into_iter()
        .find(|(t, _, _)| *t == timer)
        .ok_or("no such timer")?;
    let monotonic = node.bus_property(Some(&timer), "Timer", "TimersMonotonic")?;
    let on_active = timer_value(&monotonic, "OnUnitActiveUSec")
        .ok_or_else(|| format!("{timer} has no OnUnitActiveSec: {monotonic}"))?;
    let on_boot = timer_value(&monotonic, "OnBootUSec");
    let got_random = node.bus_u64(Some(&timer), "Timer", "RandomizedDelayUSec")?;
    accuracy(node, &timer, period)?;
    if on_active != period || got_random != random {
        return Err(format!(
            "{timer}: OnUnitActiveSec {on_active} µs, RandomizedDelaySec {got_random} µs; \
             promised {period} µs and {random} µs"
        )
        .into());
    }
    let ran = node.bus_u64(Some(&service), "Unit", "InactiveExitTimestampMonotonic")?;
    let ended = node.bus_u64(Some(&service), "Unit", "InactiveEnterTimestampMonotonic")?;
    let last_trigger = node.bus_u64(Some(&timer), "Timer", "LastTriggerUSecMonotonic")?;
    let booted = node.bus_u64(None, "Manager", "UserspaceTimestampMonotonic")?;
    let next = node.bus_u64(Some(&timer), "Timer", "NextElapseUSecMonotonic")?;
    let mut due = ran.max(last_trigger) + on_active;
    if let Some(on_boot) = on_boot
        && booted + on_boot >= ended
    {
        due = due.min(booted + on_boot);
    }
    eprintln!(
        "xtask booted: {timer}: ran at {ran} µs, next elapse {next} µs = due + {} µs (random delay ≤ {random} µs)",
        next.saturating_sub(due)
    );
    if next < due || next > due + random {
        return Err(format!(
            "next elapse {next} µs outside [{due}, {due} + {random}] µs (run at {ran}, boot at {booted})"
        )
        .into());
    }
    Ok(())
}

/// One value of busctl's `a(stt) N "Base" value next …`.
fn timer_value(text: &str, base: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| w.trim_matches('"') == base)?;
    words.get(at + 1)?.parse().ok()
}

/// Failed SSH logins from INTRUDER (an unknown user: sshd logs "Invalid
/// user", which fail2ban's sshd filter matches in every mode) reach
/// fail2ban through the journal, and it bans the address in nftables.
fn fail2ban_bans(node: &BootedNode) -> Result {
    if active(node, "fail2ban.service").is_err() {
        // Already a finding of its own (no failed unit after reboot);
        // start it so the rest of the chain (journal → filter → ban) is
        // still proven.
        eprintln!("xtask booted: fail2ban is not running: starting it for the ban check");
        node.systemctl(&["restart", "fail2ban.service"])?;
    }
    active(node, "ssh.service")?;
    node.sh(&format!("ip addr add {INTRUDER}/32 dev lo"))?;
    wait_for(node, "the sshd jail is up", Duration::from_secs(30), || {
        Ok(node.try_sh("fail2ban-client status sshd")?.status.success())
    })?;
    let is_banned =
        || -> Result<bool> { Ok(node.sh("fail2ban-client status sshd")?.contains(INTRUDER)) };
    // maxretry is 5; a few more in case one is lost. Each exits 255
    // (refused), which is the point; once the ban lands, nftables drops
    // the next one's packets, hence `timeout`.
    for _ in 0..8 {
        if is_banned()? {
            break;
        }
        node.try_sh(&format!(
            "timeout 10 ssh -n -b {INTRUDER} -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 \
             okome-intruder@{INTRUDER} true"
        ))?;
    }
    let banned = wait_for(
        node,
        "the intruder is banned",
        Duration::from_secs(30),
        is_banned,
    );
    if let Err(error) = banned {
        let status = node.sh("fail2ban-client status sshd")?;
        let sshd = node.sh("journalctl --no-pager -q _COMM=sshd | tail -n 15")?;
        return Err(format!("{error}\n{status}\nsshd's journal:\n{sshd}").into());
    }
    let rules = node.sh("nft list ruleset")?;
    if !rules.contains(INTRUDER) {
        return Err(format!("banned, but no nftables rule names {INTRUDER}:\n{rules}").into());
    }
    Ok(())
}

/// The admin login of the frontend node: in group `sudo` (what okome-node's
/// postinst looks for; the sudo package itself is not needed), with a
/// password (so sshd would accept one, were passwords on) and an ed25519
/// authorized key whose private half stays in /root.
const ADMIN: &str = "okome-admin";
const ADMIN_KEY: &str = "/root/okome-admin-key";

fn add_admin(node: &BootedNode) -> Result {
    node.sh(&format!(
        "getent group sudo >/dev/null || groupadd --system sudo
         useradd -m -s /bin/sh -G sudo {ADMIN}
         echo '{ADMIN}:booted-test-password' | chpasswd
         ssh-keygen -q -t ed25519 -N '' -f {ADMIN_KEY}
         install -d -o {ADMIN} -g {ADMIN} -m 0700 /home/{ADMIN}/.ssh
         install -o {ADMIN} -g {ADMIN} -m 0600 {ADMIN_KEY}.pub /home/{ADMIN}/.ssh/authorized_keys"
    ))
    .map(drop)
}

/// What the RUNNING sshd does, not what its files say: `sshd -T` has
/// passwords off, a password login is refused with publickey as the only
/// method left, and the admin's key logs in.
fn sshd_armed(node: &BootedNode) -> Result {
    active(node, "ssh.service")?;
    let effective = node.sh("sshd -T | grep -i '^passwordauthentication '")?;
    if effective.trim() != "passwordauthentication no" {
        return Err(format!("sshd -T: {}", effective.trim()).into());
    }
    const OPTS: &str = "-n -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                        -o ConnectTimeout=5";
    let password = node.try_sh(&format!(
        "timeout 20 ssh {OPTS} -o BatchMode=yes -o PreferredAuthentications=password \
         -o PubkeyAuthentication=no {ADMIN}@127.0.0.1 true 2>&1"
    ))?;
    let said = String::from_utf8_lossy(&password.stdout).into_owned();
    if password.status.success() || !said.contains("Permission denied (publickey).") {
        return Err(format!(
            "a password login to the running sshd was not refused with publickey only \
             (the files say no, the daemon was not reloaded?): {}",
            said.trim()
        )
        .into());
    }
    let key = node.try_sh(&format!(
        "timeout 20 ssh {OPTS} -o BatchMode=yes -i {ADMIN_KEY} {ADMIN}@127.0.0.1 id -un 2>&1"
    ))?;
    let said = String::from_utf8_lossy(&key.stdout).into_owned();
    if !key.status.success() || said.trim().lines().last() != Some(ADMIN) {
        return Err(format!("the admin's key login failed: {}", said.trim()).into());
    }
    Ok(())
}

/// The cases our EnvironmentFile= loader (common) is table-tested against,
/// with the value systemd 252 gives.
const ENV_CASES: &str = "common/tests/data/environment-file-cases.json";

/// Each case's text as the EnvironmentFile= of a transient service that
/// prints its environment: the booted systemd must set exactly the
/// expected value (or leave the key unset). The cases are read inside by
/// python3 (xtask has no JSON parser); each mismatch is printed.
fn environment_files(node: &BootedNode) -> Result {
    const CHECK: &str = r#"import json, subprocess, sys
cases = json.load(open("/root/environment-file-cases.json"))["cases"]
bad = 0
for case in cases:
    with open("/tmp/okome-envcase", "w") as f:
        f.write(case["text"])
    run = subprocess.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                          "-p", "EnvironmentFile=/tmp/okome-envcase", "/usr/bin/env", "-0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if run.returncode != 0:
        # systemd refuses the whole file: the unit does not start, so no
        # key of it is set (what a null value says); printed, as a node
        # would not run the tool at all.
        print("text %r: systemd refuses the file, the unit does not start" % case["text"])
        env = {}
    else:
        env = dict(v.split("=", 1) for v in run.stdout.decode().split("\0") if "=" in v)
    got = env.get(case["key"])
    if got != case["value"]:
        bad += 1
        print("text %r: %s=%r from systemd, expected %r" % (case["text"], case["key"], got, case["value"]))
print("%d cases, %d differ" % (len(cases), bad))
sys.exit(1 if bad else 0)
"#;
    node.sh(&format!(
        "cat > /root/envcases.py <<'EOF'\n{CHECK}EOF\npython3 /root/envcases.py"
    ))
    .map(|out| eprintln!("xtask booted: environment files: {}", out.trim()))
}

/// journald's own start message for this boot names the runtime journal's
/// limit: okome's drop-in sets RuntimeMaxUse=24M (Storage=volatile).
fn journald_limit(node: &BootedNode) -> Result {
    let said = node.sh("journalctl -b --no-pager -o cat | grep 'Runtime Journal' | tail -n 1")?;
    eprintln!("xtask booted: journald: {}", said.trim());
    if said.contains("max 24.0M") {
        Ok(())
    } else {
        Err(format!("journald says: {:?}", said.trim()).into())
    }
}

fn versions(node: &BootedNode, debs: &[PathBuf], version: &str) -> Result {
    let mut wrong = Vec::new();
    for deb in debs {
        let name = deb
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let package = name.split('_').next().unwrap_or_default();
        let got = node.sh(&format!(
            "dpkg-query -W -f='${{Version}} ${{db:Status-Abbrev}}' {package}"
        ))?;
        if got.split_whitespace().collect::<Vec<_>>() != [version, "ii"] {
            wrong.push(format!("{package}: {got}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; ").into())
    }
}

/// While it lives, the host routes the tests' range 10.213.0.0/16 to a
/// blackhole (added only if absent, removed only if added here): the
/// container's extra address must never be reachable through the host's
/// default route, should a namespace ever be shared by mistake.
#[derive(Debug)]
struct TestRangeFence {
    added: bool,
}

impl TestRangeFence {
    fn raise() -> TestRangeFence {
        let present = std::process::Command::new("ip")
            .args(["route", "show", "type", "blackhole", "10.213.0.0/16"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        let added = !present
            && std::process::Command::new("ip")
                .args(["route", "add", "blackhole", "10.213.0.0/16"])
                .status()
                .is_ok_and(|s| s.success());
        TestRangeFence { added }
    }
}

impl Drop for TestRangeFence {
    fn drop(&mut self) {
        if self.added {
            let _ = std::process::Command::new("ip")
                .args(["route", "del", "blackhole", "10.213.0.0/16"])
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_read_from_systemd_analyze_security() {
        let text = "  ✓ SystemCallFilter=~@swap ...\n\n→ Overall exposure level for okome-prewarm.service: 1.7 OK 🙂\n";
        assert_eq!(parse_exposure(text), Some(1.7));
        // As printed with LC_ALL=C (what the suite runs with), for an
        // unsandboxed unit of the same container.
        let ascii = "-> Overall exposure level for dbus.service: 9.6 UNSAFE :-{\n";
        assert_eq!(parse_exposure(ascii), Some(9.6));
        assert_eq!(parse_exposure("nothing"), None);
    }

    #[test]
    fn timer_values_from_busctl() {
        let text = "a(stt) 2 \"OnBootUSec\" 120000000 0 \"OnUnitActiveUSec\" 120000000 99";
        assert_eq!(timer_value(text, "OnUnitActiveUSec"), Some(120_000_000));
        assert_eq!(timer_value(text, "OnBootUSec"), Some(120_000_000));
        assert_eq!(timer_value(text, "OnCalendar"), None);
    }
}

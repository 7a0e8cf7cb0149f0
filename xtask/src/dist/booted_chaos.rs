//! okome-chaos on a booted Debian 12 (systemd as PID 1 in `systemd-nspawn
//! --private-network`, booted.rs): the package installed with apt next to
//! the real nginx, redis-server, keepalived, fail2ban and nftables, and every
//! safety promise of issue 16 tried for real on one node:
//!
//! - each scenario injects (proven by okome-chaos itself: its journal's
//!   `effect` event) and reverts, and afterwards the node is as before: the
//!   whole `nft list ruleset` byte-identical (fail2ban's `f2b-table` with a
//!   ban in it, a foreign table of the site's), the same units active, no
//!   file of ours left;
//! - `kill -9` of the runner right after injecting: the armed transient
//!   timer restores the node by the deadline + 1 s;
//! - a power cut mid-experiment (the container's init SIGKILLed, then
//!   booted again): okome-chaos-recover.service cleans up at boot;
//! - revert twice: no error, no change; guard missing, expired,
//!   world-readable or naming another scenario, preflight red: refused with
//!   exit 2 and nothing changed; `halt` disarms.
//!
//! The kill -9 and power-cut promises are also proven on the cluster lab
//! (chaos/tests/cluster.rs, `a_killed_runner_or_a_power_cut_leaves_no_fault_behind`:
//! a network fault on the standby frontend, the cluster green afterwards);
//! both read the armed deadline from the run's journal
//! (`okome_chaos::store::ArmedRevert`).
//!
//! Loopback only: the "orchestrator" the network scenarios cut off is the
//! container's own nginx reached as 127.0.0.2:80 (the service probe uses
//! 127.0.0.1, so it keeps answering), keepalived holds a VIP on a veth pair
//! inside the container's own network namespace.
//! Every check runs even when an earlier one failed; the suite fails at the
//! end naming all of them. The figures it prints (reaction, restore after
//! kill -9) are measurements, not assertions, except the deadline.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use okome_chaos::store::ArmedRevert;
use serde_json::Value;

use super::Dist;
use super::booted::{BootedNode, Network, Rootfs, RootfsSpec};
use crate::Result;

/// What the suite installs beside okome-chaos (its own dependencies come
/// from the package).
const PRELOAD: &[&str] = &[
    "nginx",
    "redis-server",
    "keepalived",
    "fail2ban",
    "python3-systemd",
];

/// The node's name (host name, guard's `nodes=`).
const NODE: &str = "okx-chaos";

const STATE: &str = "/var/lib/okome/chaos";
const GUARD: &str = "/etc/okome/CHAOS_ENABLE";

/// Settings every run here uses: short faults, the loopback "orchestrator".
const DEFAULTS: &str = "\
OKOME_CHAOS_NODE=okx-chaos
OKOME_CHAOS_ORIGIN=127.0.0.2:80
OKOME_CHAOS_SERVICE_URL=http://127.0.0.1/
OKOME_CHAOS_DURATION=5s
OKOME_CHAOS_GRACE=2s
OKOME_CHAOS_REACTION_BOUND=2s
OKOME_CHAOS_PREFLIGHT=
OKOME_CHAOS_CACHE_DIR=/var/cache/nginx
";

/// A keepalived instance on a veth pair made inside the container
/// (keepalived refuses `lo`, the only link of a private network): enough for
/// keepalived.service to run and hold an address, which vip-failover stops
/// natively.
const KEEPALIVED: &str = "\
vrrp_instance OKX_VIP {
    state BACKUP
    interface okxa
    virtual_router_id 88
    priority 150
    advert_int 1
    virtual_ipaddress {
        10.213.88.18/32 dev okxa
    }
}
";

#[derive(Default)]
struct Findings {
    failed: Vec<String>,
    figures: Vec<String>,
}

impl Findings {
    fn check(&mut self, what: &str, result: Result) {
        match result {
            Ok(()) => eprintln!("xtask chaos: ok: {what}"),
            Err(error) => {
                eprintln!("xtask chaos: FAILED: {what}: {error}");
                self.failed.push(format!("{what}: {error}"));
            }
        }
    }
}

/// Run the chaos suite on the amd64 okome-chaos package of `dist`.
pub fn run(dist: &Dist) -> Result {
    let started = Instant::now();
    let rootfs = prepare(dist)?;
    let mut node = install(&rootfs)?;
    let mut findings = Findings::default();

    findings.check(
        "okome-chaos-recover.service is enabled by the package",
        enabled(&node, "okome-chaos-recover.service"),
    );
    findings.check("refusals change nothing", refusals(&node));
    for scenario in [
        "redis-stop",
        "nginx-stop",
        "vip-failover",
        "origin-blackhole",
        "origin-loss",
        "disk-pressure",
    ] {
        let result = scenario_round_trip(&node, scenario, &mut findings.figures);
        findings.check(
            &format!("{scenario}: injected, proven, reverted, node as before"),
            result,
        );
    }
    findings.check(
        "the runs wrote /run/okome/metrics/okome-chaos.prom (the package's tmpfiles entry)",
        textfile(&node),
    );
    findings.check(
        "SIGTERM mid-run: the runner reverts at once, verdict aborted (exit 2)",
        terminated(&node),
    );
    let result = killed(&node, &mut findings.figures);
    findings.check(
        "kill -9 after injecting: the armed revert restores by the deadline + 1 s",
        result,
    );
    match before_reboot(&node) {
        Ok(id) => {
            // A power cut: every process dies at once (the runner cannot
            // revert, the transient timer is lost), then the node boots.
            node.power_cut()?;
            node = BootedNode::boot(&rootfs, Network::Private)?;
            findings.check(
                "reboot mid-experiment: the recover unit cleans up at boot",
                after_reboot(&node, &id),
            );
            findings.check(
                "after a reboot /run/okome/metrics is back and the recover unit's textfile in it",
                textfile(&node),
            );
        }
        Err(error) => findings.check("reboot mid-experiment: run started", Err(error)),
    }
    findings.check("halt disarms and a run is then refused", halt(&node));
    drop(node);
    drop(rootfs);
    for figure in &findings.figures {
        eprintln!("xtask chaos: measured: {figure}");
    }
    eprintln!(
        "xtask chaos: suite took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if findings.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the chaos suite found {} problem(s):\n  {}",
            findings.failed.len(),
            findings.failed.join("\n  ")
        )
        .into())
    }
}

/// The tree with okome-chaos's package copied in and keepalived's config.
fn prepare(dist: &Dist) -> Result<Rootfs> {
    let deb: Vec<PathBuf> = dist
        .debs
        .iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("okome-chaos_")
                    && n.to_string_lossy().ends_with("_amd64.deb")
            })
        })
        .cloned()
        .collect();
    if deb.len() != 1 {
        return Err(format!("expected one okome-chaos amd64 package, found {deb:?}").into());
    }
    // What the suite installs, plus okome-chaos's own Depends and
    // Recommends (sudo, openssh-client): apt installs those too, and the
    // private network cannot download what the tree lacks.
    let mut spec = RootfsSpec::for_debs(&deb)?;
    spec.preload.extend(PRELOAD.iter().map(|p| p.to_string()));
    spec.preload.sort();
    spec.preload.dedup();
    let rootfs = Rootfs::unpack(&spec, NODE)?;
    rootfs.copy_in(&deb, "/root/okome-debs")?;
    std::fs::create_dir_all(rootfs.path("/etc/keepalived"))?;
    std::fs::write(rootfs.path("/etc/keepalived/keepalived.conf"), KEEPALIVED)?;
    Ok(rootfs)
}

/// Boot the tree, install everything with apt, set the node up.
fn install(rootfs: &Rootfs) -> Result<BootedNode> {
    let node = BootedNode::boot(rootfs, Network::Private)?;
    node.sh(&format!(
        "apt-get install -y -q {} /root/okome-debs/okome-chaos_*_amd64.deb",
        PRELOAD.join(" ")
    ))?;
    setup(&node)?;
    Ok(node)
}

/// `cargo xtask bench chaos`: `runs` runs of random scenarios, each runner
/// SIGKILLed at a random moment of its first 4 s (before arming, between
/// arming and injecting, or during the fault). Measured: how long after the
/// armed deadline the node was restored, and what was left behind once
/// every deadline passed — on the node (the ruleset, the units, fill
/// files: the goal is zero) and on record (runs killed before arming have
/// no timer: they stay unreverted until `okome-chaos revert` or the next
/// boot, and change nothing on the node).
pub fn bench(dist: &Dist, runs: usize) -> Result {
    let rootfs = prepare(dist)?;
    let node = install(&rootfs)?;
    let scenarios = [
        "redis-stop",
        "nginx-stop",
        "vip-failover",
        "origin-blackhole",
        "origin-loss",
    ];
    let baseline = snapshot(&node)?;
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .subsec_nanos() as u64
        | 1;
    let mut next = move || {
        // xorshift64: the bench needs spread, not quality.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut late_ms, mut node_residue, mut record_residue) = (Vec::new(), 0, 0);
    for round in 0..runs {
        let scenario = scenarios[(next() % scenarios.len() as u64) as usize];
        let kill_after = Duration::from_millis(next() % 4000);
        let old = runs_of(&node)?;
        let unit = format!("okx-chaos-bench-{round}");
        node.sh(&format!(
            "systemd-run --quiet --unit={unit} --collect okome-chaos run {scenario} --execute --duration 3s --grace 2s"
        ))?;
        std::thread::sleep(kill_after);
        node.sh(&format!(
            "systemctl kill -s KILL {unit}.service 2>/dev/null || true"
        ))?;
        // Every deadline passed (5 s after arming, which is within 1 s of
        // the start), plus a second.
        std::thread::sleep(Duration::from_secs(7).saturating_sub(kill_after));
        let id = runs_of(&node)?.into_iter().find(|r| !old.contains(r));
        let mut what = format!(
            "no run on disk (killed before its plan, or refused: {})",
            node.sh(&format!(
                "journalctl -u {unit} --no-pager -o cat | grep okome-chaos | tail -1"
            ))?
            .trim()
        );
        if let Some(id) = &id {
            let armed = ArmedRevert::from_journal(&journal(&node, id)?);
            what = match armed
                .as_ref()
                .map(|a| (a.reverted_by.as_deref(), a.late_ms()))
            {
                Some((Some("okome-chaos run"), _)) => {
                    "reverted by the runner itself before the kill".to_string()
                }
                Some((_, Some(late))) => {
                    late_ms.push(late);
                    format!("restored {late} ms after the armed deadline")
                }
                Some((_, None)) => "armed but NOT reverted".to_string(),
                None => {
                    record_residue += 1;
                    "killed before arming (nothing injected)".to_string()
                }
            };
        }
        let after = snapshot(&node)?;
        let clean = |text: &str| -> String {
            text.lines()
                .filter(|l| !l.starts_with("20"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let left = clean(&after) != clean(&baseline);
        if left {
            node_residue += 1;
        }
        eprintln!(
            "xtask bench chaos: run {round:>2} {scenario:<16} killed {:>4} ms after start: {what}{}",
            kill_after.as_millis(),
            if left { "; NODE NOT AS BEFORE" } else { "" }
        );
        // The operator's cleanup of records a pre-arm kill left (no-op
        // otherwise), so the next run is not refused.
        node.sh("okome-chaos revert >/dev/null")?;
    }
    late_ms.sort_unstable();
    let median = late_ms.get(late_ms.len() / 2).copied();
    let max = late_ms.last().copied();
    println!("| okome-chaos, {runs} runs SIGKILLed at random | figure |");
    println!("|---|---|");
    println!(
        "| restored after the armed deadline (median / max, {} runs that had armed) | {} / {} ms |",
        late_ms.len(),
        median.map_or("-".into(), |v| v.to_string()),
        max.map_or("-".into(), |v| v.to_string())
    );
    println!("| runs that left the node changed once every deadline passed | {node_residue} |");
    println!("| runs killed before arming (on record only, nothing injected) | {record_residue} |");
    drop(node);
    drop(rootfs);
    if node_residue > 0 {
        return Err(format!("{node_residue} run(s) left residue on the node").into());
    }
    Ok(())
}

/// fail2ban with okome's jail and one ban (its nft table then exists), a
/// site's own nft table, the guard, okome-chaos's defaults.
fn setup(node: &BootedNode) -> Result {
    let root = crate::cmd::workspace_root();
    for file in ["jail.local", "fail2ban.local"] {
        let text = std::fs::read_to_string(root.join("configs/fail2ban").join(file))?;
        std::fs::write(inside(node, &format!("/etc/fail2ban/{file}")), text)?;
    }
    node.sh("systemctl restart fail2ban && for i in $(seq 50); do fail2ban-client ping >/dev/null 2>&1 && break; sleep 0.2; done")?;
    node.sh("fail2ban-client set sshd banip 10.213.99.2 >/dev/null")?;
    node.sh(
        "nft add table ip okx_site && \
         nft add chain ip okx_site input '{ type filter hook input priority 0; policy accept; }' && \
         nft add rule ip okx_site input ip saddr 10.213.77.7 counter drop",
    )?;
    node.sh(
        "ip link add okxa type veth peer name okxb && ip link set okxa up && \
         ip link set okxb up && ip addr add 10.213.88.1/24 dev okxa && \
         systemctl restart keepalived",
    )?;
    // What okome-frontend's nginx config caches into (Debian's nginx alone
    // does not make it).
    node.sh("mkdir -p /var/cache/nginx")?;
    std::fs::write(inside(node, "/etc/default/okome-chaos"), DEFAULTS)?;
    write_guard(
        node,
        3600,
        "nginx-stop,redis-stop,vip-failover,origin-blackhole,origin-loss,disk-pressure",
        0o600,
    )?;
    let ruleset = node.sh("nft list ruleset")?;
    if !ruleset.contains("table inet f2b-table") || !ruleset.contains("10.213.99.2") {
        return Err(format!("fail2ban's ban is not in the ruleset:\n{ruleset}").into());
    }
    for unit in ["nginx", "redis-server", "keepalived", "fail2ban"] {
        let state = node.show(&format!("{unit}.service"), &["ActiveState"])?;
        if state[0] != "active" {
            return Err(format!("{unit} is {} before any run", state[0]).into());
        }
    }
    Ok(())
}

/// The host path of `path` inside the running container (through its init's
/// root, so it is right whatever tree the node booted).
fn inside(node: &BootedNode, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root", node.pid1())).join(path.trim_start_matches('/'))
}

fn write_guard(node: &BootedNode, expires_in: i64, scenarios: &str, mode: u32) -> Result {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs() as i64;
    let expires = okome_chaos::guard::format_utc((now + expires_in).max(0) as u64);
    node.sh(&format!(
        "mkdir -p /etc/okome && umask 077 && printf 'expires={expires}\\nscenarios={scenarios}\\nnodes={NODE}\\n' > {GUARD} && chmod {mode:o} {GUARD}"
    ))?;
    Ok(())
}

/// `okome-chaos ARGS…` inside, with extra environment.
fn chaos(node: &BootedNode, env: &[&str], args: &[&str]) -> Result<Output> {
    let mut argv = vec!["env"];
    argv.extend_from_slice(env);
    argv.push("okome-chaos");
    argv.extend_from_slice(args);
    eprintln!("+ [{NODE}] {}", argv.join(" "));
    node.try_command(&argv)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Everything a run could change: the whole ruleset, the units' states, the
/// run directories and any fill file. okome-chaos's lock files (its own
/// bookkeeping, made once an armed guard lets a run start) are left out.
fn snapshot(node: &BootedNode) -> Result<String> {
    node.sh(&format!(
        "nft list ruleset; \
         for u in nginx redis-server keepalived fail2ban; do echo \"$u $(systemctl show -p ActiveState --value $u)\"; done; \
         ls {STATE} 2>/dev/null | grep -v '\\.lock$' || true; \
         find /var/cache/nginx -name '.okome-chaos-fill-*'"
    ))
}

fn same(before: &str, after: &str, what: &str) -> Result {
    if before == after {
        Ok(())
    } else {
        Err(format!("{what} changed the node:\n--- before\n{before}\n--- after\n{after}").into())
    }
}

fn enabled(node: &BootedNode, unit: &str) -> Result {
    let state = node.sh(&format!("systemctl is-enabled {unit} || true"))?;
    if state.trim() == "enabled" {
        Ok(())
    } else {
        Err(format!("{unit} is {}", state.trim()).into())
    }
}

/// Guard missing, expired, world-readable, naming another scenario,
/// preflight red: exit 2, nothing changed.
fn refusals(node: &BootedNode) -> Result {
    let all = "nginx-stop,redis-stop,vip-failover,origin-blackhole,origin-loss,disk-pressure";
    let before = snapshot(node)?;
    // (what, guard: None = no file, else (expires in s, scenarios, mode), env)
    // and the words the refusal must say.
    type Case<'a> = (&'a str, Option<(i64, &'a str, u32)>, &'a [&'a str], &'a str);
    let cases: [Case; 5] = [
        ("guard missing", None, &[], "no guard file"),
        (
            "guard expired",
            Some((-60, all, 0o600)),
            &[],
            "guard expired",
        ),
        (
            "guard world-readable",
            Some((3600, all, 0o644)),
            &[],
            "mode 0644",
        ),
        (
            "guard naming another scenario",
            Some((3600, "redis-stop", 0o600)),
            &[],
            "does not allow scenario nginx-stop",
        ),
        (
            "preflight red",
            Some((3600, all, 0o600)),
            &["OKOME_CHAOS_PREFLIGHT=false"],
            "preflight `false` is not green",
        ),
    ];
    for (what, guard, env, says) in cases {
        match guard {
            None => {
                node.sh(&format!("rm -f {GUARD}"))?;
            }
            Some((expires_in, scenarios, mode)) => write_guard(node, expires_in, scenarios, mode)?,
        }
        let out = chaos(node, env, &["run", "nginx-stop", "--execute"])?;
        if out.status.code() != Some(2) {
            return Err(format!(
                "{what}: exit {:?}, not 2:\n{}",
                out.status.code(),
                text(&out)
            )
            .into());
        }
        if !text(&out).contains("refused") || !text(&out).contains(says) {
            return Err(format!("{what}: not refused with {says:?}:\n{}", text(&out)).into());
        }
        same(&before, &snapshot(node)?, what)?;
    }
    write_guard(node, 3600, all, 0o600)
}

fn runs_of(node: &BootedNode) -> Result<Vec<String>> {
    let out = node.sh(&format!("ls {STATE} 2>/dev/null || true"))?;
    Ok(out
        .lines()
        .filter(|l| !l.ends_with(".lock"))
        .map(str::to_string)
        .collect())
}

fn journal(node: &BootedNode, id: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(inside(node, &format!("{STATE}/{id}/journal.jsonl")))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn event<'j>(journal: &'j [Value], name: &str) -> Option<&'j Value> {
    journal.iter().find(|e| e["event"] == name)
}

/// The disk-pressure threshold that takes about 64 MiB more on the
/// container's /var/cache/nginx (the host's own filesystem: never more).
fn small_threshold(node: &BootedNode) -> Result<String> {
    let out = node.sh("df -B1 --output=used,avail /var/cache/nginx | tail -1")?;
    let mut words = out.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(used)), Some(Ok(avail))) = (words.next(), words.next()) else {
        return Err(format!("df: {out:?}").into());
    };
    Ok(format!(
        "{:.4}",
        (used + (64 << 20)) as f64 * 100.0 / (used + avail) as f64
    ))
}

/// One scenario for real: it runs to a verdict (exit 0 or 1), its journal
/// shows the effect proven and the baseline proven, and the node is as
/// before; reverting it twice more changes nothing.
fn scenario_round_trip(node: &BootedNode, scenario: &str, figures: &mut Vec<String>) -> Result {
    let before = snapshot(node)?;
    let old: Vec<String> = runs_of(node)?;
    let mut args = vec!["run", scenario, "--execute"];
    let threshold;
    if scenario == "disk-pressure" {
        threshold = small_threshold(node)?;
        args.extend(["--disk-threshold", &threshold, "--max-fill-mib", "256"]);
    }
    let out = chaos(node, &[], &args)?;
    let code = out.status.code();
    let id = runs_of(node)?
        .into_iter()
        .find(|r| !old.contains(r))
        .ok_or_else(|| format!("no run directory appeared:\n{}", text(&out)))?;
    if !matches!(code, Some(0 | 1)) {
        return Err(format!("exit {code:?}:\n{}", text(&out)).into());
    }
    let journal = journal(node, &id)?;
    let effect = event(&journal, "effect").ok_or("no effect event")?;
    if effect["checks"]
        .as_array()
        .is_none_or(|c| c.iter().any(|c| c["ok"] != true))
    {
        return Err(format!("effect not proven: {effect}").into());
    }
    let post = event(&journal, "post-check").ok_or("no post-check event")?;
    if post["checks"]
        .as_array()
        .is_none_or(|c| c.iter().any(|c| c["ok"] != true))
    {
        return Err(format!("baseline not proven: {post}").into());
    }
    let arm = event(&journal, "arm").ok_or("the revert was never armed")?;
    let inject = event(&journal, "inject").ok_or("no inject event")?;
    if arm["ts"].as_u64() > inject["ts"].as_u64() || arm["code"] != 0 {
        return Err(format!("armed after injecting or arming failed: {arm}").into());
    }
    let verdict = event(&journal, "verdict").ok_or("no verdict")?;
    let reaction = event(&journal, "reaction")
        .and_then(|r| r["first_failed_sample_ms"].as_u64())
        .map_or("no failed sample".to_string(), |ms| {
            format!("first failed sample {ms} ms after injecting")
        });
    figures.push(format!(
        "{scenario}: verdict {} (exit {}), {reaction}",
        verdict["verdict"],
        code.unwrap_or(-1)
    ));
    let mut after = snapshot(node)?;
    // The run's own directory is the one expected difference.
    after = after.replace(&format!("{id}\n"), "");
    same(&before, &after, scenario)?;
    // Revert twice more: no error, no change.
    for _ in 0..2 {
        let out = chaos(node, &[], &["revert", &id])?;
        if !out.status.success() || !text(&out).contains("already reverted") {
            return Err(format!(
                "revert of a reverted run: exit {:?}:\n{}",
                out.status.code(),
                text(&out)
            )
            .into());
        }
    }
    let out = chaos(node, &[], &["revert"])?;
    if !out.status.success() || !text(&out).contains("nothing to revert") {
        return Err(format!("revert with no run active: {}", text(&out)).into());
    }
    let again = snapshot(node)?.replace(&format!("{id}\n"), "");
    same(&before, &again, "revert twice")
}

/// okome-chaos alone on a node (as on a backend, whose only okome tools are
/// okome-chaos and okome-validate) still has /run/okome/metrics: its package
/// ships the okome sysusers and tmpfiles entries, so the directory is there
/// from the install and from boot (okome:okome, 0775), and the textfile the
/// runner and the recover unit write is in it. Without them the backend's
/// runs logged "metrics not written: /run/okome/metrics".
fn textfile(node: &BootedNode) -> Result {
    const PROM: &str = "/run/okome/metrics/okome-chaos.prom";
    let owner = node
        .try_sh("stat -c '%U:%G %a' /run/okome/metrics 2>&1")
        .map(|o| text(&o))?;
    if owner.trim() != "okome:okome 775" {
        return Err(format!("/run/okome/metrics: {}", owner.trim()).into());
    }
    let prom = node.try_sh(&format!("cat {PROM} 2>&1"))?;
    if !prom.status.success() || !text(&prom).contains("okome_chaos_runs_total") {
        return Err(format!("{PROM}: {}", text(&prom)).into());
    }
    Ok(())
}

/// Start a run as a transient unit (so it can be SIGKILLed like any
/// process) and wait until its journal says the fault took effect.
fn start_runner(node: &BootedNode, unit: &str, args: &[&str]) -> Result<String> {
    let old = runs_of(node)?;
    node.sh(&format!(
        "systemd-run --quiet --unit={unit} --collect okome-chaos {}",
        args.join(" ")
    ))?;
    let started = Instant::now();
    loop {
        if let Some(id) = runs_of(node)?.into_iter().find(|r| !old.contains(r))
            && let Ok(journal) = journal(node, &id)
            && event(&journal, "effect").is_some()
        {
            return Ok(id);
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "the runner never proved its injection:\n{}",
                node.sh(&format!("journalctl -u {unit} --no-pager | tail -20"))?
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM (what Ctrl-C and `systemctl stop` send) during a 60 s fault: the
/// runner itself reverts well before its armed deadline, and says aborted.
fn terminated(node: &BootedNode) -> Result {
    let before = snapshot(node)?;
    let id = start_runner(
        node,
        "okx-chaos-term",
        &["run", "redis-stop", "--execute", "--duration", "60s"],
    )?;
    node.sh("systemctl kill -s TERM okx-chaos-term.service")?;
    let started = Instant::now();
    let journal = loop {
        let journal = journal(node, &id)?;
        if event(&journal, "verdict").is_some() {
            break journal;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("no verdict 30 s after SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let by = event(&journal, "revert-start").map(|e| e["by"].clone());
    if by != Some(Value::from("okome-chaos run")) {
        return Err(format!("reverted by {by:?}, not the runner").into());
    }
    let verdict = event(&journal, "verdict").ok_or("no verdict event")?;
    if verdict["verdict"] != "aborted" || verdict["exit"] != 2 {
        return Err(format!("verdict {verdict}").into());
    }
    let after = snapshot(node)?.replace(&format!("{id}\n"), "");
    same(&before, &after, "SIGTERM")
}

/// kill -9 of the runner right after injecting: nginx back (and the run
/// marked reverted by the timer) by the armed deadline + 1 s.
fn killed(node: &BootedNode, figures: &mut Vec<String>) -> Result {
    let before = snapshot(node)?;
    let id = start_runner(
        node,
        "okx-chaos-runner",
        &[
            "run",
            "nginx-stop",
            "--execute",
            "--duration",
            "3s",
            "--grace",
            "2s",
        ],
    )?;
    node.sh("systemctl kill -s KILL okx-chaos-runner.service")?;
    let status = chaos(node, &[], &["status"])?;
    if status.status.code() != Some(1) || !text(&status).contains("NOT REVERTED") {
        return Err(format!(
            "status with a killed run: exit {:?}:\n{}",
            status.status.code(),
            text(&status)
        )
        .into());
    }
    let deadline_ms = ArmedRevert::from_journal(&journal(node, &id)?)
        .ok_or("the run was not armed")?
        .deadline_ms;
    let limit_ms = deadline_ms + 1_000;
    loop {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis() as u64;
        let active = node.show("nginx.service", &["ActiveState"])?[0] == "active";
        let reverted = inside(node, &format!("{STATE}/{id}/reverted")).exists();
        if active && reverted {
            figures.push(format!(
                "kill -9: nginx back and the run marked reverted {} ms after the armed deadline",
                now_ms as i64 - deadline_ms as i64
            ));
            break;
        }
        if now_ms > limit_ms {
            return Err(format!(
                "not restored by the deadline + 1 s (nginx active: {active}, marked: {reverted})"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let journal = journal(node, &id)?;
    let by = event(&journal, "revert-start").map(|e| e["by"].clone());
    if by != Some(Value::from("okome-chaos revert")) {
        return Err(format!("reverted by {by:?}, not the armed timer").into());
    }
    let after = snapshot(node)?.replace(&format!("{id}\n"), "");
    same(&before, &after, "kill -9 and the armed revert")
}

/// A power cut mid-experiment (the container's init SIGKILLed, before the
/// armed timer fires); at boot
/// okome-chaos-recover.service must remove the fill file and mark the run.
/// Returns the run id, to check after the reboot.
fn before_reboot(node: &BootedNode) -> Result<String> {
    let threshold = small_threshold(node)?;
    let id = start_runner(
        node,
        "okx-chaos-reboot",
        &[
            "run",
            "disk-pressure",
            "--execute",
            "--duration",
            "60s",
            "--disk-threshold",
            &threshold,
            "--max-fill-mib",
            "256",
        ],
    )?;
    node.sh(&format!("ls /var/cache/nginx/.okome-chaos-fill-{id}"))?;
    Ok(id)
}

fn after_reboot(node: &BootedNode, id: &str) -> Result {
    let fill = inside(node, &format!("/var/cache/nginx/.okome-chaos-fill-{id}"));
    if fill.exists() {
        return Err(format!("{} survived the boot", fill.display()).into());
    }
    if !inside(node, &format!("{STATE}/{id}/reverted")).exists() {
        return Err(format!("run {id} not marked reverted after boot").into());
    }
    let journal = journal(node, id)?;
    if event(&journal, "rebooted").is_none() {
        return Err("the revert did not notice the reboot".into());
    }
    let recover = node.sh("journalctl -u okome-chaos-recover --no-pager -b")?;
    if !recover.contains(id) {
        return Err(format!("the recover unit did not name run {id}:\n{recover}").into());
    }
    let status = chaos(node, &[], &["status"])?;
    if !status.status.success() {
        return Err(format!("status after boot: {}", text(&status)).into());
    }
    Ok(())
}

/// `halt`: the guard goes, every run stays reverted, the next run is refused.
fn halt(node: &BootedNode) -> Result {
    let out = chaos(node, &[], &["halt"])?;
    if !out.status.success() {
        return Err(format!("halt: exit {:?}: {}", out.status.code(), text(&out)).into());
    }
    if inside(node, GUARD).exists() {
        return Err("the guard survived halt".into());
    }
    let before = snapshot(node)?;
    let out = chaos(node, &[], &["run", "redis-stop", "--execute"])?;
    if out.status.code() != Some(2) {
        return Err(format!("a run after halt: exit {:?}", out.status.code()).into());
    }
    same(&before, &snapshot(node)?, "a run after halt")
}

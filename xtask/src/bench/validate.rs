//! `cargo xtask bench validate`: a full `okome-validate --cluster` of a
//! loopback cluster (two frontends and a backend, each its own lab root,
//! reached over a real sshd) against the seed's approach — a bash script
//! doing the same checks with one ssh, curl or redis-cli call each — in one
//! run: wall time of each (median and max of N runs, interleaved), the
//! ratio, and okome-validate's own peak RSS.
//!
//! The cluster is the loopback lab's real nginx, redis-server and stub
//! orchestrator, as in validate/tests/cluster_ssh.rs; the peers run the
//! release binary through a wrapper that picks the node's root. Both sides
//! check the same things: per node memory, swap, disk and inodes, SD-wear
//! settings, vcgencmd; per frontend nginx -t, the cache dir, its own
//! headers, the orchestrator, the gate, the two textfiles; on the backend
//! PING, the four settings and the kernel files; then the drift comparison.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use okome_lab::Lab;
use okome_lab::render::{LAB_PUBLIC_NAME, LAB_REDIS_EDGE_PASSWORD, LAB_REDIS_OPERATOR_PASSWORD};
use okome_lab::sshd::Sshd;

use crate::Result;
use crate::cmd::{cargo, have, run, workspace_root};

/// The seed's way: one ssh per remote check (no multiplexing), curl and
/// redis-cli from the operator's machine, one after the other.
const SCRIPT: &str = r#"#!/bin/bash
# okome-validate.sh, as seed 004 runs it: one call per check.
# usage: SCRIPT SSH_OPTS_FILE PORT HTTP_PORT ORCH REDIS_ADDR EDGE_PW OP_PW ROOT_A ROOT_B HOST
set -u
opts=$(cat "$1"); port=$2; http=$3; orch=$4; raddr=$5; edgepw=$6; oppw=$7
root_a=$8; root_b=$9; host=${10}
fail=0
r() { ssh $opts -o BatchMode=yes -o ControlMaster=no -p "$port" root@127.0.0.1 "$@"; }
check() { if ! "$@" >/dev/null 2>&1; then fail=1; fi; }
node() {
  local root=$1
  check r "grep -E 'MemTotal|MemAvailable' $root/proc/meminfo"
  check r "grep -E 'SwapTotal|SwapFree' $root/proc/meminfo"
  check r "df -P $root"
  check r "df -Pi $root"
  check r "grep ' / ' $root/proc/mounts | grep -q noatime"
  check r "grep -q '^tmpfs /tmp' $root/proc/mounts"
  check r "cat $root/etc/systemd/journald.conf.d/*.conf | grep -q Storage=volatile"
  r "vcgencmd get_throttled" >/dev/null 2>&1 || true
}
frontend() {
  local root=$1
  node "$root"
  check r "nginx -t -c $root/etc/nginx/nginx.conf -p $root -e $root/var/log/nginx/error.log"
  check r "df -P $root/var/cache/nginx/okome"
  curl -sI -H "Host: $host" "http://127.0.0.1:$http/" | grep -qi '^X-OKOME-Node' || fail=1
  curl -sf -o /dev/null "$orch" || fail=1
  check r "test ! -e $root/run/okome/orchestrator.down"
  check r "grep -q okome_health_probe_last_run_timestamp_seconds $root/run/okome/metrics/okome-health-probe.prom"
  check r "grep -q okome_prewarm_last_run_timestamp_seconds $root/run/okome/metrics/okome-prewarm.prom"
  r "sha256sum $root/etc/nginx/okome/*.conf $root/etc/nginx/sites-enabled/*" > "/tmp/okv-bench-sums-$(basename $root)" 2>/dev/null
}
frontend "$root_a"
frontend "$root_b"
node "$root_a"
h=${raddr%:*}; p=${raddr#*:}
redis-cli -h "$h" -p "$p" --user edge --pass "$edgepw" --no-auth-warning ping >/dev/null || fail=1
for k in maxmemory maxmemory-policy save appendonly; do
  redis-cli -h "$h" -p "$p" --user operator --pass "$oppw" --no-auth-warning config get "$k" >/dev/null || fail=1
done
redis-cli -h "$h" -p "$p" --user operator --pass "$oppw" --no-auth-warning acl getuser default >/dev/null || fail=1
check r "cat $root_a/proc/sys/vm/overcommit_memory $root_a/sys/kernel/mm/transparent_hugepage/enabled"
exit $fail
"#;

/// The fixture files a Pi's /proc, /sys and /etc hold (as the tests write them).
fn fixtures(root: &Path) -> Result {
    let write = |path: &str, text: &str| -> Result {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().expect("absolute"))?;
        fs::write(&path, text)?;
        Ok(())
    };
    write(
        "/proc/meminfo",
        "MemTotal: 948304 kB\nMemAvailable: 612000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    )?;
    write(
        "/proc/mounts",
        "/dev/root / ext4 rw,noatime 0 0\ntmpfs /tmp tmpfs rw,noatime 0 0\n",
    )?;
    write("/proc/sys/vm/overcommit_memory", "1\n")?;
    write(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    )?;
    let journald = fs::read_to_string(workspace_root().join("configs/journald.conf"))?;
    write("/etc/systemd/journald.conf.d/okome.conf", &journald)
}

fn median_max(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// Run `command`, polling its VmHWM (the peak RSS of this process alone,
/// not of the ssh children it starts); returns (wall seconds, KiB, success).
fn timed_hwm(command: &mut Command) -> Result<(f64, u64, bool)> {
    let start = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm = 0;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            hwm = hwm.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Ok((start.elapsed().as_secs_f64(), hwm, status.code() == Some(0)))
}

pub fn main(args: &[String]) -> Result {
    let mut runs: usize = 10;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--runs" => {
                runs = iter
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            other => return Err(format!("unknown argument {other:?} (accepted: --runs N)").into()),
        }
    }
    for program in ["bash", "curl", "redis-cli", "ssh"] {
        if !have(program) {
            return Err(format!("the comparison needs {program}").into());
        }
    }
    // What ships: the static musl build, built alone (no feature unification).
    let musl = "x86_64-unknown-linux-musl";
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "okome-validate",
        "--target",
        musl,
    ]))?;
    let validate = workspace_root()
        .join("target")
        .join(musl)
        .join("release/okome-validate");
    // The lab's textfiles come from the real probe and prewarm (debug builds).
    run(cargo().args(["build", "-p", "okome-health-probe", "-p", "okome-prewarm"]))?;

    let lab = Lab::builder().redis(true).start();
    fixtures(lab.root.dir())?;
    let health = format!("{}/health", lab.stub.url());
    run(lab.tool("okome-health-probe").args(["--url", &health]))?;
    let _ = lab
        .tool("okome-prewarm")
        .arg("--target")
        .arg(lab.url(""))
        .output()?;
    let _ = lab.get("/");
    let sshd = Sshd::start();
    let root_b = tempdir("okv-bench-root-b")?;
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", lab.root.dir().display()))
        .arg(&root_b)
        .status()?;
    if !copied.success() {
        return Err("copying the lab root".into());
    }
    let dest = sshd.dest();
    // The lab's nginx sends this machine's host name ($hostname).
    let header = okome_lab::render::lab_node_name();
    let conf = format!(
        "public-host {LAB_PUBLIC_NAME}\norchestrator {health}\n\
         node frontend-a frontend 127.0.0.1 ssh={dest} header={header}\n\
         node frontend-b frontend 127.0.0.1 ssh={dest} header={header}\n\
         node backend backend 127.0.0.1 ssh={dest}\n"
    );
    for root in [lab.root.dir(), root_b.as_path()] {
        fs::create_dir_all(root.join("etc/okome"))?;
        fs::write(root.join("etc/okome/cluster.conf"), &conf)?;
    }
    let redis_addr = format!("127.0.0.1:{}", lab.ports.redis);
    let edge = format!("redis://edge:{LAB_REDIS_EDGE_PASSWORD}@{redis_addr}/0");
    let operator = format!("redis://operator:{LAB_REDIS_OPERATOR_PASSWORD}@{redis_addr}/0");
    let wrapper = sshd.dir().join("okome-validate-peer");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nroot={a}\ncase \"$*\" in *'--self frontend-b'*) root={b};; esac\n\
             export OKOME_ROOT=$root OKOME_VALIDATE_HTTP_PORT={port} OKOME_VALIDATE_NGINX_CONF={nginx}\n\
             export OKOME_VALIDATE_REDIS_URL='{edge}' OKOME_VALIDATE_REDIS_ADMIN_URL='{operator}'\n\
             exec {bin} \"$@\"\n",
            a = lab.root.dir().display(),
            b = root_b.display(),
            port = lab.addr().port(),
            nginx = lab.main_conf.display(),
            bin = validate.display(),
        ),
    )?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    let only = "node.memory,node.swap,node.disk,node.sd-wear,node.throttle,edge.nginx-config,\
                edge.cache-disk,edge.headers,edge.orchestrator,edge.gate,edge.probe-fresh,\
                edge.prewarm-fresh,redis,node.ssh,cluster";
    let rust_cmd = || {
        let mut command = Command::new(&validate);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["--cluster", "--self", "operator", "--json", "--only", only])
            .arg("--config")
            .arg(lab.root.path("/etc/okome/cluster.conf"))
            .arg("--remote-command")
            .arg(&wrapper);
        for option in sshd.options() {
            command.arg("--ssh-option").arg(option);
        }
        command
    };
    let script = sshd.dir().join("okome-validate.sh");
    fs::write(&script, SCRIPT)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let opts_file = sshd.dir().join("ssh-opts");
    let opts: Vec<String> = sshd.options().iter().map(|o| format!("-o {o}")).collect();
    fs::write(&opts_file, opts.join(" "))?;
    let bash_cmd = || {
        let mut command = Command::new(&script);
        command
            .arg(&opts_file)
            .arg(sshd.port.to_string())
            .arg(lab.addr().port().to_string())
            .arg(&health)
            .arg(&redis_addr)
            .arg(LAB_REDIS_EDGE_PASSWORD)
            .arg(LAB_REDIS_OPERATOR_PASSWORD)
            .arg(lab.root.dir())
            .arg(&root_b)
            .arg(LAB_PUBLIC_NAME);
        command
    };
    // Both must pass on the healthy cluster, or the comparison means nothing.
    let (_, _, ok) = timed_hwm(&mut rust_cmd())?;
    let first_bash = bash_cmd().status()?;
    if !ok || !first_bash.success() {
        let out = rust_cmd().output()?;
        return Err(format!(
            "a side is not green on the healthy cluster (okome-validate ok={ok}, script {first_bash}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let (mut rust, mut bash, mut hwm) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let (seconds, kib, _) = timed_hwm(&mut rust_cmd())?;
        rust.push(seconds);
        hwm = hwm.max(kib);
        let start = Instant::now();
        bash_cmd()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        bash.push(start.elapsed().as_secs_f64());
    }
    let tree = super::gnu_time(&rust_cmd())?;
    // The floor of any --cluster run: one bare ssh session to a peer.
    let mut floor = Vec::new();
    for _ in 0..runs {
        let mut ssh = Command::new("ssh");
        ssh.args(["-o", "BatchMode=yes"]);
        for option in sshd.options() {
            ssh.arg("-o").arg(option);
        }
        ssh.arg(sshd.dest()).arg("true");
        let start = Instant::now();
        ssh.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
        floor.push(start.elapsed().as_secs_f64());
    }
    let (floor_med, _) = median_max(floor);
    let size = fs::metadata(&validate)?.len();
    let (rust_med, rust_max) = median_max(rust);
    let (bash_med, bash_max) = median_max(bash);
    println!(
        "okome-validate bench: full --cluster of the loopback cluster (frontend-a, frontend-b, backend over a real sshd; {runs} runs each, interleaved)\n\
         binary {} ({} KiB, static musl); comparison: {} (one ssh/curl/redis-cli call per check, as seed 004)\n",
        validate.display(),
        size / 1024,
        script.display()
    );
    println!("  {:<34} {:>10} {:>10}", "", "median", "max");
    println!(
        "  {:<34} {:>8.0} ms {:>7.0} ms",
        "okome-validate --cluster",
        rust_med * 1e3,
        rust_max * 1e3
    );
    println!(
        "  {:<34} {:>8.0} ms {:>7.0} ms",
        "bash + ssh/curl/redis-cli",
        bash_med * 1e3,
        bash_max * 1e3
    );
    println!(
        "  {:<34} {:>8.0} ms",
        "one bare `ssh peer true` (floor)",
        floor_med * 1e3
    );
    println!(
        "  ratio (bash / okome-validate, median): {:.1}×",
        bash_med / rust_med
    );
    println!(
        "  goal ≤ 1 s wall: {} ({:.0} ms median)",
        if rust_med <= 1.0 { "met" } else { "MISSED" },
        rust_med * 1e3
    );
    println!(
        "  okome-validate's own peak RSS (VmHWM): {:.1} MiB — goal ≤ 8 MiB: {}",
        hwm as f64 / 1024.0,
        if hwm <= 8192 { "met" } else { "MISSED" }
    );
    println!(
        "  with its ssh children (GNU time %M, largest process of the tree): {:.1} MiB",
        tree.rss_kib as f64 / 1024.0
    );
    drop(sshd);
    drop(lab);
    let _ = fs::remove_dir_all(&root_b);
    Ok(())
}

fn tempdir(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_comparison_script_is_valid_bash() {
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", super::SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! `cargo xtask bench health-probe [--runs N]`: one probe run of the release
//! binary against the seed's approach — a bash script doing the same job with
//! curl and a state-file compare — in CPU time and peak RSS per run.
//!
//! Both run N times, interleaved, against the same local HTTP listener
//! (a thread of this process on 127.0.0.1), in two steady states: upstream
//! healthy (gate open) and upstream answering 503 (gate closed). Each child
//! is reaped with `wait4`, whose rusage covers the child and every
//! descendant it reaped (curl under bash), so the figures are exactly what
//! one timer tick costs. The bash script is written to be honestly
//! equivalent: same deadlines, fast re-check, fall/rise/hold-down, state file
//! rewritten only on change, flag file on transitions; it writes no metrics
//! (an advantage to bash).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use okome_testkit::{FakeHttp, Reply};

use crate::Result;
use crate::cmd::{cargo, have, run, workspace_root};

/// The seed's approach, done carefully in bash.
const SCRIPT: &str = r#"#!/bin/bash
# okome-health-probe.sh — the seed's approach: curl the health URL every 5 s,
# keep rise/fall counters in a state file, flip the flag file nginx checks.
# Same policy as okome-health-probe: fall 2 (the fast re-check counts), rise 3,
# hold-down 10 s, 400 ms connect / 800 ms total deadline, 200 ms pause,
# state rewritten only when it changes. Usage: okome-health-probe.sh URL DIR
set -u
url=$1 dir=$2
fall=2 rise=3 hold_down=10 expect='"ok"'
state=$dir/health-probe.state flag=$dir/orchestrator.down
streak=0 last=0 old=
if [[ -r $state ]]; then
    read -r streak last < "$state"
    old="$streak $last"
fi
if [[ -e $flag ]]; then gate=closed; else gate=open; fi

check() {
    local body
    body=$(curl -sSf --connect-timeout 0.4 --max-time 0.8 "$url" 2>/dev/null) &&
        [[ $body == *"$expect"* ]]
}

# step OK: feed one check (1 = healthy) to the hysteresis.
step() {
    local need
    if [[ $gate == open ]]; then
        (( $1 == 1 )) && { streak=0; return; }
        need=$fall
    else
        (( $1 == 0 )) && { streak=0; return; }
        need=$rise
    fi
    (( streak = streak + 1 > need ? need : streak + 1 ))
    (( streak < need )) && return
    local now
    printf -v now '%(%s)T' -1
    (( last > 0 && now - last < hold_down )) && return
    streak=0 last=$now
    if [[ $gate == open ]]; then
        gate=closed
        echo "orchestrator $url unhealthy" > "$flag.tmp" && mv "$flag.tmp" "$flag"
        echo "warning: gate closed: $url" >&2
    else
        gate=open
        rm -f "$flag"
        echo "info: gate opened: $url" >&2
    fi
}

if check; then ok=1; else ok=0; fi
step $ok
if (( ok == 0 )) && [[ $gate == open ]]; then
    sleep 0.2
    if check; then ok=1; else ok=0; fi
    step $ok
fi
if [[ "$streak $last" != "$old" ]]; then
    printf '%s %s\n' "$streak" "$last" > "$state.tmp" && mv "$state.tmp" "$state"
fi
[[ $gate == open ]]
"#;

/// Runs per approach and state under GNU time for the peak RSS.
const RSS_RUNS: u32 = 20;

/// Resource use of one reaped child (and its reaped descendants).
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu: Duration,
    max_rss_kib: u64,
    wall: Duration,
}

/// Spawn `command` (output discarded) and reap it with wait4.
fn measure(command: &mut Command) -> Result<(Usage, i32)> {
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; `status` and `usage` are
    // valid for writes. std's Child is not waited on afterwards.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()).into());
    }
    let wall = started.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        Usage {
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss as u64,
            wall,
        },
        code,
    ))
}

/// Peak RSS of `command` as GNU time reports it (KiB); see
/// [`super::gnu_time`] for why not `wait4`'s figure.
fn peak_rss_kib(command: &Command) -> Result<u64> {
    super::gnu_time(command).map(|timed| timed.rss_kib)
}

/// Totals over N runs.
#[derive(Debug, Default)]
struct Totals {
    cpu: Duration,
    wall: Duration,
    peak_rss_kib: u64,
    runs: u32,
}

impl Totals {
    fn add(&mut self, usage: Usage) {
        self.cpu += usage.cpu;
        self.wall += usage.wall;
        self.peak_rss_kib = self.peak_rss_kib.max(usage.max_rss_kib);
        self.runs += 1;
    }
    fn cpu_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / f64::from(self.runs.max(1))
    }
    fn wall_ms(&self) -> f64 {
        self.wall.as_secs_f64() * 1000.0 / f64::from(self.runs.max(1))
    }
}

/// The answer of the local listener (the test kit's fake HTTP server):
/// `{"status":"ok"}` with 200, `{"status":"down"}` with any other code.
fn answer(code: u16) -> Reply {
    let body = if code == 200 {
        "{\"status\":\"ok\"}"
    } else {
        "{\"status\":\"down\"}"
    };
    Reply::new(code, body).header("Content-Type", "application/json")
}

pub fn main(args: &[String]) -> Result {
    let mut runs: u32 = 200;
    let mut target: Option<String> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--target" => target = Some(iter.next().ok_or("--target needs a triple")?.clone()),
            "--runs" => {
                runs = iter
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (accepted: --runs N, --target TRIPLE)"
                )
                .into());
            }
        }
    }
    if !have("curl") || !have("bash") {
        return Err("the comparison needs bash and curl (apt-get install curl)".into());
    }
    // Per package, so features are not unified with other tools. What ships
    // is a static musl binary: measure that when the target is installed.
    let target = target.or_else(|| {
        let sysroot =
            crate::cmd::output(Command::new("rustc").args(["--print", "sysroot"])).ok()?;
        let musl = "x86_64-unknown-linux-musl";
        Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(musl)
            .is_dir()
            .then(|| musl.to_string())
    });
    let mut build = cargo();
    build.args(["build", "--release", "-p", "okome-health-probe"]);
    let probe = match &target {
        Some(triple) => {
            build.args(["--target", triple]);
            workspace_root()
                .join("target")
                .join(triple)
                .join("release/okome-health-probe")
        }
        None => workspace_root().join("target/release/okome-health-probe"),
    };
    run(&mut build)?;
    let size = std::fs::metadata(&probe)?.len();
    let gnu_time = Path::new("/usr/bin/time").is_file();

    // State lives on tmpfs on a node (/run): use /dev/shm when there is one,
    // so fsync costs what it costs there.
    let tmpfs = Path::new("/dev/shm");
    let base = if tmpfs.is_dir() {
        tmpfs.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("okome-bench-health-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (rust_root, bash_dir) = (dir.join("rust"), dir.join("bash"));
    std::fs::create_dir_all(rust_root.join("run/okome"))?;
    std::fs::create_dir_all(&bash_dir)?;
    let script = dir.join("okome-health-probe.sh");
    std::fs::write(&script, SCRIPT)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;

    let upstream = FakeHttp::always(answer(200));
    let url = format!("{}/health", upstream.url());
    let rust_cmd = || {
        let mut command = Command::new(&probe);
        command
            .env("OKOME_ROOT", &rust_root)
            .env_remove("OKOME_LOG")
            .args(["--url", &url, "--expect-body", "\"ok\"", "--node", "bench"]);
        command
    };
    let bash_cmd = || {
        let mut command = Command::new(&script);
        command.arg(&url).arg(&bash_dir);
        command
    };
    let rust_flag = rust_root.join("run/okome/orchestrator.down");
    let bash_flag = bash_dir.join("orchestrator.down");

    println!(
        "okome-health-probe bench: {runs} runs each, interleaved, against a local listener ({url})\n\
         binary {} ({} KiB, target {}); comparison: bash + curl script ({}; state on {})\n\
         CPU = user+sys of the child and its reaped descendants (wait4); peak RSS = max over {RSS_RUNS} runs\n\
         under GNU time ({}); wall includes the upstream's answer.\n",
        probe.display(),
        size / 1024,
        target.as_deref().unwrap_or("host"),
        script.display(),
        base.display(),
        if gnu_time {
            "/usr/bin/time -f %M"
        } else {
            "not installed: wait4 ru_maxrss, which includes this spawner's image"
        },
    );
    // The floor: what exec'ing any program costs from this spawner.
    let mut floor = Totals::default();
    for _ in 0..runs {
        floor.add(measure(&mut Command::new("true"))?.0);
    }
    println!(
        "{:<44} {:>14} {:>10} {:>10}",
        "steady state / approach", "CPU/run (u+s)", "peak RSS", "wall/run"
    );
    println!(
        "{:<44} {:>11.3} ms {:>10} {:>7.2} ms",
        "(floor: exec of /bin/true)",
        floor.cpu_ms(),
        "",
        floor.wall_ms()
    );
    let mut verdicts = Vec::new();
    for (label, code, want_closed) in [
        ("healthy, gate open", 200u16, false),
        ("HTTP 503, gate closed", 503u16, true),
    ] {
        upstream.set_always(answer(code));
        // Reach the steady state (and check both agree on it): the 503
        // scenario closes the gate in its first run (fall 2 with re-check).
        for _ in 0..4 {
            measure(&mut rust_cmd())?;
            measure(&mut bash_cmd())?;
        }
        if rust_flag.exists() != want_closed || bash_flag.exists() != want_closed {
            return Err(format!(
                "{label}: the two approaches disagree or did not settle (probe gate closed: {}, bash gate closed: {})",
                rust_flag.exists(),
                bash_flag.exists()
            )
            .into());
        }
        let (mut rust, mut bash) = (Totals::default(), Totals::default());
        for _ in 0..runs {
            let (usage, exit) = measure(&mut rust_cmd())?;
            if exit != i32::from(want_closed) {
                return Err(format!("okome-health-probe exited {exit} in state {label:?}").into());
            }
            rust.add(usage);
            let (usage, exit) = measure(&mut bash_cmd())?;
            if exit != i32::from(want_closed) {
                return Err(format!("the bash script exited {exit} in state {label:?}").into());
            }
            bash.add(usage);
        }
        if gnu_time {
            for (totals, command) in [(&mut rust, rust_cmd()), (&mut bash, bash_cmd())] {
                totals.peak_rss_kib = 0;
                for _ in 0..RSS_RUNS {
                    totals.peak_rss_kib = totals.peak_rss_kib.max(peak_rss_kib(&command)?);
                }
            }
        }
        for (name, totals) in [("okome-health-probe", &rust), ("bash + curl", &bash)] {
            println!(
                "{:<44} {:>11.3} ms {:>6.2} MiB {:>7.2} ms",
                format!("{label}: {name}"),
                totals.cpu_ms(),
                totals.peak_rss_kib as f64 / 1024.0,
                totals.wall_ms()
            );
        }
        let cpu_ratio = bash.cpu_ms() / rust.cpu_ms().max(1e-9);
        let rss_ratio = bash.peak_rss_kib as f64 / rust.peak_rss_kib.max(1) as f64;
        println!(
            "{:<44} {:>13.1}x {:>9.1}x {:>9.1}x\n",
            format!("{label}: ratio bash/probe"),
            cpu_ratio,
            rss_ratio,
            bash.wall_ms() / rust.wall_ms().max(1e-9)
        );
        verdicts.push((label, cpu_ratio, rust.peak_rss_kib));
    }
    for (label, cpu_ratio, rss_kib) in verdicts {
        println!(
            "{label}: >= 10x less CPU per run: {} ({cpu_ratio:.1}x); <= 4 MiB peak RSS: {} ({:.2} MiB)",
            if cpu_ratio >= 10.0 { "met" } else { "MISSED" },
            if rss_kib <= 4096 { "met" } else { "MISSED" },
            rss_kib as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_script_is_valid_bash() {
        if !have("bash") {
            return;
        }
        let path =
            std::env::temp_dir().join(format!("okome-bench-script-{}.sh", std::process::id()));
        std::fs::write(&path, SCRIPT).unwrap();
        let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(status.success());
    }

    #[test]
    fn wait4_reports_a_childs_cpu_and_rss() {
        let (usage, code) = measure(Command::new("sh").args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
        ]))
        .unwrap();
        assert_eq!(code, 3);
        assert!(usage.cpu > Duration::ZERO);
        assert!(usage.max_rss_kib > 0);
    }
}

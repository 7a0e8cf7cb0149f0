//! `cargo xtask bench prewarm [--size-mb N]`: okome-prewarm against the
//! seed's shell approach, in one run, reported as ratios.
//!
//! Two measurements. *Plan*: rank the top 40 paths from a `--size-mb` (100)
//! MB log tail — `okome-prewarm --dry-run` (first run, empty state, so it
//! reads the whole tail) against `tail -c | awk | sort | uniq -c | sort -rn
//! | head -40`, with wall time and peak RSS from GNU time (target: ≤ 16 MiB
//! while planning). *Warm*: 40 cold URLs on a fresh loopback lab each (real
//! nginx on the shipped config, the stub orchestrator) — okome-prewarm at
//! its shipped origin budget (5 rps, so it is slower on purpose), at an
//! unthrottled budget (raw speed), and the seed's sequential `curl -I` loop —
//! with the peak requests per second the origin saw, which is the point.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use okome_common::time::format_time_local;
use okome_lab::Lab;

use super::Rng;
use crate::Result;
use crate::cmd::{cargo, run, workspace_root};
use crate::deps;

const USAGE: &str = "usage: cargo xtask bench prewarm [--size-mb N]";

/// Bump when the generated content changes.
const GENERATOR: u32 = 1;

/// The seed's safe patterns, as its awk would match `$7` (the path).
const SEED_AWK: &str = r#"$7 ~ /^\/(assets|static|ui-schema)\// || $7 == "/" || $7 == "/version" || $7 == "/health" { print $7 }"#;

pub fn main(args: &[String]) -> Result {
    let mut size_mb: u64 = 100;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size-mb" => {
                size_mb = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("--size-mb needs a positive number\n{USAGE}"))?
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    deps::ensure_apt(&["time", "curl", "nginx", "coreutils", "mawk"])?;
    run(cargo().args(["build", "--release", "-p", "okome-prewarm"]))?;
    let tool = workspace_root().join("target/release/okome-prewarm");

    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    // Timestamps are relative to now (recency matters to the predictor), so
    // the log is generated afresh each run rather than cached.
    let log = dir.join(format!("prewarm-{size_mb}mb-g{GENERATOR}.log"));
    eprintln!("xtask bench: generating {} ({size_mb} MB)", log.display());
    let lines = generate(&log, size_mb << 20)?;
    let tail_bytes = (size_mb << 20).to_string();
    run(Command::new("cat").arg(&log).stdout(Stdio::null()))?;

    // ---- plan ----
    let state_root = tempfile_path("root");
    let log_s = log.display().to_string();
    let tool_s = tool.display().to_string();
    let mut ours = None;
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&state_root);
        std::fs::create_dir_all(&state_root)?;
        let m = measure(
            &[
                &tool_s,
                "--dry-run",
                "--log",
                &log_s,
                "--tail-bytes",
                &tail_bytes,
                "--top-n",
                "40",
            ],
            &[("OKOME_ROOT", state_root.display().to_string())],
        )?;
        eprintln!(
            "  okome-prewarm --dry-run: {:.2} s, {} KiB",
            m.seconds, m.rss_kib
        );
        ours = Some(best(ours, m));
    }
    let _ = std::fs::remove_dir_all(&state_root);
    let script = format!(
        "tail -c {tail_bytes} '{log_s}' | awk '{SEED_AWK}' | sort | uniq -c | sort -rn | head -40"
    );
    let mut seed = None;
    for _ in 0..3 {
        let m = measure(&["sh", "-c", &script], &[])?;
        eprintln!(
            "  seed awk|sort|uniq pipeline: {:.2} s, {} KiB",
            m.seconds, m.rss_kib
        );
        seed = Some(best(seed, m));
    }
    let (ours, seed) = (ours.expect("measured"), seed.expect("measured"));

    // ---- warm ----
    let paths: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!("/assets/chunk-{i}.js"),
            1 => format!("/static/img/{i}.png"),
            2 => format!("/ui-schema/form-{i}.json"),
            _ => format!("/assets/css/{i}.css"),
        })
        .collect();
    let shipped = warm_prewarm(&tool, &paths, &[])?;
    let unthrottled = warm_prewarm(
        &tool,
        &paths,
        &["--max-rps", "1000", "--max-total-rps", "1000"],
    )?;
    let curl = warm_curl(&paths)?;

    print!(
        "{}",
        table(
            size_mb,
            lines,
            ours,
            seed,
            &[
                ("okome-prewarm (shipped: 5 rps, 2 workers)", shipped),
                ("okome-prewarm, origin budget off", unthrottled),
                ("seed: sequential curl -I loop", curl),
            ]
        )
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    seconds: f64,
    rss_kib: u64,
}

fn best(a: Option<Measure>, b: Measure) -> Measure {
    match a {
        Some(a) if a.seconds <= b.seconds => Measure {
            rss_kib: a.rss_kib.max(b.rss_kib),
            ..a
        },
        Some(a) => Measure {
            rss_kib: a.rss_kib.max(b.rss_kib),
            ..b
        },
        None => b,
    }
}

/// Run `argv` under GNU time: wall seconds and peak RSS (KiB).
fn measure(argv: &[&str], env: &[(&str, String)]) -> Result<Measure> {
    let mut command = Command::new(argv[0]);
    command
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let timed = super::gnu_time(&command)?;
    if !timed.status.success() {
        return Err(format!("{} failed: {}", argv.join(" "), timed.status).into());
    }
    Ok(Measure {
        seconds: timed.seconds,
        rss_kib: timed.rss_kib,
    })
}

fn tempfile_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("okome-bench-prewarm-{what}-{}", std::process::id()))
}

/// What one warm-up of 40 cold URLs cost.
#[derive(Debug, Clone, Copy)]
struct Warm {
    seconds: f64,
    origin_requests: usize,
    peak_per_second: usize,
    hot_after: usize,
}

fn finish(lab: &Lab, paths: &[String], started: Instant) -> Warm {
    let seconds = started.elapsed().as_secs_f64();
    let origin_requests = lab.stub.total();
    let peak_per_second = lab.stub.per_second().values().copied().max().unwrap_or(0);
    // Read the cache from disk rather than asking nginx: 40 checking GETs
    // right after 40 warm-ups would trip nginx's own per-client rate limit
    // (20 r/s, burst 60) and measure that instead.
    let keys: Vec<String> = lab.cache_entries().into_iter().map(|e| e.key).collect();
    let hot_after = paths
        .iter()
        .filter(|p| {
            let key = format!("okome{p}");
            keys.iter()
                .any(|k| k == &key || k.starts_with(&format!("{key}|")))
        })
        .count();
    Warm {
        seconds,
        origin_requests,
        peak_per_second,
        hot_after,
    }
}

fn warm_prewarm(tool: &Path, paths: &[String], extra: &[&str]) -> Result<Warm> {
    let lab = Lab::start();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut text = String::new();
    for (rank, path) in paths.iter().enumerate() {
        for _ in 0..(41 - rank) {
            text.push_str(&line(now, "GET", path, 200, UAS[0], "-"));
        }
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(lab.access_log_path())?
        .write_all(text.as_bytes())?;
    let started = Instant::now();
    let status = Command::new(tool)
        .env("OKOME_ROOT", lab.root.dir())
        .arg("--target")
        .arg(lab.url(""))
        .args(["--top-n", "40"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let warm = finish(&lab, paths, started);
    if !status.success() {
        return Err(format!("okome-prewarm exited {status}").into());
    }
    Ok(warm)
}

fn warm_curl(paths: &[String]) -> Result<Warm> {
    let lab = Lab::start();
    let list = tempfile_path("urls");
    std::fs::write(&list, paths.join("\n") + "\n")?;
    let script = format!(
        "while read -r p; do curl -sI -o /dev/null \"{}$p\"; done < '{}'",
        lab.url(""),
        list.display()
    );
    let started = Instant::now();
    let status = Command::new("sh").args(["-c", &script]).status()?;
    let warm = finish(&lab, paths, started);
    let _ = std::fs::remove_file(&list);
    if !status.success() {
        return Err(format!("curl loop exited {status}").into());
    }
    Ok(warm)
}

fn table(size_mb: u64, lines: u64, ours: Measure, seed: Measure, warms: &[(&str, Warm)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nokome-prewarm benchmark: plan from a {size_mb} MB log tail ({lines} lines), best of 3"
    );
    let _ = writeln!(out, "{:<44} {:>9} {:>11}", "plan", "seconds", "peak RSS");
    for (name, m) in [
        ("okome-prewarm --dry-run (first run)", ours),
        ("seed: tail|awk|sort|uniq -c|sort -rn|head", seed),
    ] {
        let _ = writeln!(
            out,
            "{name:<44} {:>9.2} {:>7.1} MiB",
            m.seconds,
            m.rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        out,
        "plan ratio: seed / okome-prewarm = {:.1}× (time), peak RSS {:.1} MiB",
        seed.seconds / ours.seconds.max(0.001),
        ours.rss_kib as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "\n{:<44} {:>9} {:>8} {:>12} {:>9}",
        "warm 40 cold URLs (fresh lab each)", "seconds", "origin", "peak req/s", "HIT after"
    );
    for (name, w) in warms {
        let _ = writeln!(
            out,
            "{name:<44} {:>9.2} {:>8} {:>12} {:>6}/40",
            w.seconds, w.origin_requests, w.peak_per_second, w.hot_after
        );
    }
    let curl = warms[warms.len() - 1].1;
    for (name, w) in &warms[..warms.len() - 1] {
        let _ = writeln!(
            out,
            "warm ratio: {name} / curl loop = {:.2}× (time)",
            w.seconds / curl.seconds.max(0.001)
        );
    }
    let _ = writeln!(out, "\ntargets:");
    let rss_ok = ours.rss_kib <= 16 * 1024;
    let _ = writeln!(
        out,
        "  [{}] peak RSS while planning ≤ 16 MiB: {:.1} MiB",
        if rss_ok { "met" } else { "MISSED" },
        ours.rss_kib as f64 / 1024.0
    );
    let shipped = warms[0].1;
    let _ = writeln!(
        out,
        "  [{}] shipped budget holds at the origin (≤ 5+1 req/s): peak {} req/s",
        if shipped.peak_per_second <= 6 {
            "met"
        } else {
            "MISSED"
        },
        shipped.peak_per_second
    );
    out
}

// ---- the generated log ----------------------------------------------------

const UAS: [&str; 5] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "okome-prewarm/0.1.0",
    "Prometheus/2.45.0",
];

fn line(t: i64, method: &str, path: &str, status: u16, ua: &str, warm: &str) -> String {
    format!(
        "10.213.0.{} - - [{}] \"{method} {path} HTTP/1.1\" {status} 5120 \"https://okome.lan/\" \"{ua}\" cache=HIT rt=0.002 urt=\"-\" rid=4f1c2b0e9d8a7c6b5a4f3e2d1c0b9a88 canary=control warm={warm}\n",
        t % 200 + 2,
        format_time_local(t)
    )
}

/// A realistic log: Zipf-ish popularity over 3000 UI paths, a third of the
/// traffic to /api/, prewarm's own HEADs and a monitor, spread over the
/// last three hours. Returns the number of lines.
fn generate(path: &Path, target_bytes: u64) -> Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng(0x0C0E_5EED);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let span = 3 * 3600;
    let estimate = target_bytes / 260;
    let (mut written, mut lines) = (0u64, 0u64);
    while written < target_bytes {
        let t = now - span + (lines as i64 * span / estimate.max(1) as i64).min(span);
        // Popularity ~ 1/rank: pick rank = floor(3000^u) - 1.
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = (3000f64.powf(u) as u64).saturating_sub(1);
        let ui = match rank % 5 {
            0 => format!("/assets/chunk-{rank}.js"),
            1 => format!("/static/img/{rank}.png"),
            2 => format!("/ui-schema/form-{rank}.json"),
            3 => format!("/assets/css/{rank}.css?v={}", rank % 7),
            _ => {
                if rank < 5 {
                    "/".to_string()
                } else {
                    format!("/static/font-{rank}.woff2")
                }
            }
        };
        let text = match rng.below(100) {
            0..=32 => line(
                t,
                "POST",
                &format!("/api/v1/chat/{}", rng.below(1000)),
                200,
                UAS[2],
                "-",
            ),
            33..=37 => line(t, "HEAD", &ui, 200, UAS[3], "1"),
            38..=39 => line(t, "GET", "/health", 200, UAS[4], "-"),
            40 => line(t, "GET", &ui, 404, UAS[0], "-"),
            n => line(t, "GET", &ui, 200, UAS[(n % 3) as usize], "-"),
        };
        out.write_all(text.as_bytes())?;
        written += text.len() as u64;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

//! `cargo xtask bench <tool>`: each tool against what an operator would
//! otherwise use, in one run, reported as ratios (`budgets`: the okome Redis
//! function library against the seed's INCR + EXPIRE and a plain EVAL;
//! `failover`: the VIP's moves on the cluster lab).

mod budgets;
mod chaos;
mod failover;
mod golden_image;
mod health_probe;
mod hit_ratio;
mod prewarm;
mod validate;

use std::process::{Command, ExitStatus, Stdio};

use crate::Result;

pub fn main(args: &[String]) -> Result {
    let Some((tool, rest)) = args.split_first() else {
        return Err(
            "usage: cargo xtask bench <hit-ratio|health-probe|prewarm|budgets|golden-image|failover|validate|chaos|chaos-reactions>".into(),
        );
    };
    match tool.as_str() {
        "hit-ratio" => hit_ratio::main(rest),
        "health-probe" => health_probe::main(rest),
        "prewarm" => prewarm::main(rest),
        "budgets" => budgets::main(rest),
        "golden-image" => golden_image::main(rest),
        "failover" => failover::main(rest),
        "validate" => validate::main(rest),
        // okome-chaos on a booted systemd: restore time and residue after
        // runners SIGKILLed at random (default 20 runs); then each scenario
        // once on the cluster lab: time from inject to the reaction.
        "chaos" => {
            crate::dist::chaos_bench(match rest.first() {
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("bench chaos [RUNS]: {n:?}"))?,
                None => 20,
            })?;
            chaos::main()
        }
        "chaos-reactions" => chaos::main(),
        _ => Err(format!("no benchmark for {tool:?} yet").into()),
    }
}

/// splitmix64: small, fast, deterministic, so every bench run generates
/// the same workload and figures from different runs compare.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Pick by weights.
    pub fn pick<T: Copy>(&mut self, table: &[(T, u32)]) -> T {
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for (value, weight) in table {
            if x < *weight {
                return *value;
            }
            x -= weight;
        }
        table[table.len() - 1].0
    }
}

/// What GNU time measured for one run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set size, KiB.
    pub rss_kib: u64,
    /// How the command exited; callers decide what counts as failure.
    pub status: ExitStatus,
}

/// Run `command` under `/usr/bin/time` with every stream discarded.
///
/// GNU time forks a small process before exec, so the peak RSS is the
/// command's own: a child spawned straight from xtask would inherit xtask's
/// higher water mark across exec in `wait4`'s `ru_maxrss`.
pub fn gnu_time(command: &Command) -> Result<Timed> {
    let report = std::env::temp_dir().join(format!("okome-bench-time-{}", std::process::id()));
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let text = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    // On failure GNU time writes "Command exited with non-zero status N"
    // first; the figures are always the last line.
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    match fields[..] {
        [seconds, user, system, rss_kib] => Ok(Timed {
            seconds,
            cpu: user + system,
            rss_kib: rss_kib as u64,
            status,
        }),
        _ => Err(format!("unexpected /usr/bin/time output {text:?} ({status})").into()),
    }
}

//! Flags, their help (which is also the man page), and the validated
//! [`Config`] they become before any file is read or command run.
//!
//! Precedence: flag > `OKOME_CHAOS_*` environment variable >
//! `/etc/default/okome-chaos` > built-in default.

use std::net::SocketAddrV4;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use okome_common::fetch::HttpUrl;

use crate::plan::{SCENARIOS, Scenario, valid_run_id};

/// The longest fault a run may hold.
pub const MAX_DURATION_SECS: u64 = 600;

const ABOUT: &str = "Inject one failure on this node, observe, revert, prove the baseline is back.";

const AFTER_LONG_HELP: &str = "\
Scenarios and their hypotheses (checked by probing --service-url every second;
failures within --reaction-bound of the injection are allowed, none after it,
and no data counts as failure):
  nginx-stop        on the VIP holder: the VIP moves to the standby within the
                    failover bound and the service URL keeps answering
  redis-stop        heartbeat and plan sharing degrade quietly (probe and
                    prewarm log one line per outage); the edge is
                    unaffected
  vip-failover      keepalived stopped (it sends a priority-0 advertisement:
                    native demotion; VRRP is never blocked, that makes two
                    masters): the standby takes the VIP
  origin-blackhole  our nft table `inet okome_chaos` drops TCP to --origin:
                    this node's gate closes within 8 s (--gate-file appears;
                    checked), stale pages keep being served, the VIP stays
  origin-loss       the same table drops --loss-percent of it at random
                    (nft numgen; tc netem is missing on this kernel)
  disk-pressure     a file of ours fills the filesystem of --cache-dir to
                    --disk-threshold percent: nginx keeps serving

Safety:
  Dry run by default: prints the commands, the revert plan and the timer it
  would arm; --execute acts. One run at a time across the cluster: a lock
  here, then every other node of --cluster-file asked `sudo -n okome-chaos
  status` over ssh (BatchMode; /etc/sudoers.d/okome-chaos allows the admins
  exactly that): a run in progress or unreverted there, or a peer
  that cannot be asked, refuses this one; then --preflight must be green. Nothing happens without the guard file
  /etc/okome/CHAOS_ENABLE, owned by root, mode 0600:
      expires=2026-12-08T06:00:00Z     (UTC, at most 24 h ahead)
      scenarios=nginx-stop,redis-stop
      nodes=frontend-a
  It is re-read before every step and every probe: delete it to stop a run.
  Before injecting, the revert plan is written (atomic, fsynced) under
  /var/lib/okome/chaos/<run-id>/ and armed on this node with
  `systemd-run --on-active=<duration+grace> okome-chaos revert <run-id>`;
  okome-chaos-recover.service reverts at boot whatever a power cut left.
  Ctrl-C or SIGTERM reverts at once. Only owned objects are touched: our own
  nft table, units that were active before, our own fill file.

Commands:
  run SCENARIO     one experiment (dry run unless --execute)
  status           runs on disk and whether each was reverted (exit 1 when
                   one is not, or a run is in progress)
  revert [RUN-ID]  revert that run, or every unreverted run; idempotent, fine
                   with no run active
  halt             delete the guard, then revert every run
  report RUN-ID    the run's journal for humans

Exit status:
  0  the hypothesis held, the fault was reverted and the baseline is back
     (status: nothing unreverted; revert/halt: baseline proven)
  1  the hypothesis did not hold (a finding); reverted, baseline back
     (status: a run is in progress or not reverted)
  2  refused by a safeguard (guard, lock, a peer's run, preflight, usage)
     with nothing changed, or aborted (signal, guard withdrawn, injection
     ineffective) with the revert verified
  3  the revert failed or the state is unknown: run `okome-chaos status`,
     then `okome-chaos revert`; the run's plan.json lists every step";

/// The flags, as clap parses them.
#[derive(Debug, Parser)]
#[command(
    name = "okome-chaos",
    version,
    about = ABOUT,
    after_long_help = AFTER_LONG_HELP,
    max_term_width = 80
)]
pub struct Cli {
    /// Run directories (plans, journals)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "OKOME_CHAOS_STATE_DIR",
        default_value = crate::store::STATE_DIR
    )]
    pub state_dir: PathBuf,

    /// The guard file
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "OKOME_CHAOS_GUARD",
        default_value = crate::guard::GUARD_PATH
    )]
    pub guard: PathBuf,

    /// node_exporter textfile directory
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "OKOME_CHAOS_METRICS_DIR",
        default_value = okome_common::prom::TEXTFILE_DIR
    )]
    pub metrics_dir: PathBuf,

    /// This node's name, as the guard lists it (default: the host name)
    #[arg(long, global = true, value_name = "NAME", env = "OKOME_CHAOS_NODE")]
    pub node: Option<String>,

    /// What to do
    #[command(subcommand)]
    pub command: Sub,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Run one experiment (dry run unless --execute)
    Run(Box<RunArgs>),
    /// Runs on disk and whether each was reverted
    Status,
    /// Revert a run, or every unreverted run (idempotent)
    Revert {
        /// The run (default: every unreverted run)
        run_id: Option<String>,
    },
    /// Delete the guard, then revert every run
    Halt,
    /// A run's journal for humans
    Report {
        /// The run
        run_id: String,
    },
}

/// `run`'s flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The failure to inject
    #[arg(value_name = "SCENARIO", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS.map(Scenario::name)))]
    pub scenario: String,

    /// Act (default: print what would be done)
    #[arg(long)]
    pub execute: bool,

    /// How long the fault stays (max 600s)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        env = "OKOME_CHAOS_DURATION"
    )]
    pub duration: String,

    /// Extra time before the armed revert fires
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15s",
        env = "OKOME_CHAOS_GRACE"
    )]
    pub grace: String,

    /// Failures of the service allowed this long after injecting (failover)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "4s",
        env = "OKOME_CHAOS_REACTION_BOUND"
    )]
    pub reaction_bound: String,

    /// What the hypothesis probes every second: any HTTP answer below 500
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1/",
        env = "OKOME_CHAOS_SERVICE_URL"
    )]
    pub service_url: String,

    /// The orchestrator (IPv4:port) the network scenarios cut off
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "192.168.86.25:8000",
        env = "OKOME_CHAOS_ORIGIN"
    )]
    pub origin: String,

    /// origin-loss: percent of packets dropped (1-99)
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "30",
        env = "OKOME_CHAOS_LOSS_PERCENT"
    )]
    pub loss_percent: u8,

    /// origin-blackhole: the health gate's flag file, which must appear
    /// within 8 s
    #[arg(
        long,
        value_name = "FILE",
        default_value = okome_common::paths::GATE_FILE,
        env = "OKOME_CHAOS_GATE_FILE"
    )]
    pub gate_file: PathBuf,

    /// disk-pressure: the cache directory whose filesystem is filled
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/cache/nginx",
        env = "OKOME_CHAOS_CACHE_DIR"
    )]
    pub cache_dir: PathBuf,

    /// disk-pressure: how full, in percent (e.g. 90 or 92.5)
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "90",
        env = "OKOME_CHAOS_DISK_THRESHOLD"
    )]
    pub disk_threshold: f64,

    /// disk-pressure: refuse when reaching the threshold takes more than this
    #[arg(
        long,
        value_name = "MIB",
        default_value = "4096",
        env = "OKOME_CHAOS_MAX_FILL_MIB"
    )]
    pub max_fill_mib: u64,

    /// The shared cluster file: every other node in it is asked
    /// `okome-chaos status` first, and a run there refuses this one
    #[arg(
        long,
        value_name = "FILE",
        default_value = crate::peers::CLUSTER_FILE,
        env = "OKOME_CHAOS_CLUSTER_FILE"
    )]
    pub cluster_file: PathBuf,

    /// The ssh program the peers are asked with (the transport okome-validate
    /// uses)
    #[arg(
        long,
        value_name = "PROGRAM",
        default_value = "ssh",
        env = "OKOME_CHAOS_SSH",
        hide = true
    )]
    pub ssh: String,

    /// An ssh -o option for asking the peers, after the tool's own
    /// (repeatable; env: space-separated): what okome-validate's
    /// --ssh-option says for the same peers
    #[arg(
        long = "ssh-option",
        value_name = "OPT",
        env = "OKOME_CHAOS_SSH_OPTIONS",
        value_delimiter = ' ',
        action = clap::ArgAction::Append
    )]
    pub ssh_options: Vec<String>,

    /// Steady-state preflight: a command that must exit 0 before anything is
    /// injected (split on blanks; empty: none)
    #[arg(
        long,
        value_name = "COMMAND",
        default_value = "okome-validate --cluster",
        env = "OKOME_CHAOS_PREFLIGHT"
    )]
    pub preflight: String,
}

/// What `run` does, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Scenario.
    pub scenario: Scenario,
    /// Act, not just print.
    pub execute: bool,
    /// Seconds of fault.
    pub duration_secs: u64,
    /// Seconds of grace after it.
    pub grace_secs: u64,
    /// Milliseconds the system may take to react.
    pub reaction_bound_ms: u64,
    /// Probed URL.
    pub service_url: HttpUrl,
    /// Orchestrator.
    pub origin: SocketAddrV4,
    /// origin-loss percent.
    pub loss_percent: u8,
    /// The health gate's flag file (under the root).
    pub gate_file: PathBuf,
    /// Cache directory (real path on the node).
    pub cache_dir: PathBuf,
    /// disk-pressure threshold.
    pub disk_percent: f64,
    /// disk-pressure: the most it may write.
    pub max_fill_bytes: u64,
    /// Preflight argv (empty: none).
    pub preflight: Vec<String>,
    /// The cluster file whose other nodes are asked first (under the root).
    pub cluster_file: PathBuf,
    /// How the peers are reached.
    pub ssh: crate::peers::Ssh,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// One experiment.
    Run(Box<RunConfig>),
    /// List runs.
    Status,
    /// Revert one run or all.
    Revert(Option<String>),
    /// Disarm and revert all.
    Halt,
    /// Print a journal.
    Report(String),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub action: Action,
    /// Run directories (under `OKOME_ROOT`).
    pub state_dir: PathBuf,
    /// Guard file (under `OKOME_ROOT`).
    pub guard: PathBuf,
    /// Metrics directory (under `OKOME_ROOT`).
    pub metrics_dir: PathBuf,
    /// This node's name.
    pub node: String,
}

/// The clap definition (man page and completions are generated from it).
pub fn command() -> clap::Command {
    Cli::command()
}

/// `60`, `60s`, `2m`, `500ms` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 60s, 2m, 500ms)"))?;
    let factor = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" | "min" => 60_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too long"))
}

impl Config {
    /// Validate parsed flags.
    pub fn from_matches(matches: &clap::ArgMatches) -> Result<Config, String> {
        use clap::FromArgMatches;
        let cli = Cli::from_arg_matches(matches).map_err(|e| e.to_string())?;
        Config::from_cli(cli)
    }

    /// Validate a parsed [`Cli`].
    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let node = match cli.node {
            Some(node) if !node.trim().is_empty() => node,
            _ => okome_common::host::host_name()
                .ok_or("cannot tell this node's name: give --node")?,
        };
        let run_id = |id: String| -> Result<String, String> {
            if valid_run_id(&id) {
                Ok(id)
            } else {
                Err(format!("{id:?} is not a run id (see okome-chaos status)"))
            }
        };
        let action = match cli.command {
            Sub::Run(args) => Action::Run(Box::new(run_config(*args)?)),
            Sub::Status => Action::Status,
            Sub::Revert { run_id: id } => Action::Revert(id.map(run_id).transpose()?),
            Sub::Halt => Action::Halt,
            Sub::Report { run_id: id } => Action::Report(run_id(id)?),
        };
        let rooted = |p: &PathBuf| okome_common::root::rooted(p);
        Ok(Config {
            action,
            state_dir: rooted(&cli.state_dir),
            guard: rooted(&cli.guard),
            metrics_dir: rooted(&cli.metrics_dir),
            node,
        })
    }
}

fn run_config(args: RunArgs) -> Result<RunConfig, String> {
    let scenario = Scenario::from_name(&args.scenario)
        .ok_or_else(|| format!("unknown scenario {:?}", args.scenario))?;
    let duration_ms = parse_duration_ms(&args.duration)?;
    if !(1000..=MAX_DURATION_SECS * 1000).contains(&duration_ms) || duration_ms % 1000 != 0 {
        return Err(format!(
            "--duration {}: whole seconds from 1s to {MAX_DURATION_SECS}s",
            args.duration
        ));
    }
    let grace_ms = parse_duration_ms(&args.grace)?;
    if !(1000..=300_000).contains(&grace_ms) || grace_ms % 1000 != 0 {
        return Err(format!(
            "--grace {}: whole seconds from 1s to 300s",
            args.grace
        ));
    }
    let reaction_bound_ms = parse_duration_ms(&args.reaction_bound)?;
    if reaction_bound_ms >= duration_ms {
        return Err(format!(
            "--reaction-bound {} leaves nothing to observe in --duration {}",
            args.reaction_bound, args.duration
        ));
    }
    let service_url: HttpUrl = args
        .service_url
        .parse()
        .map_err(|e| format!("--service-url: {e}"))?;
    let origin: SocketAddrV4 = args
        .origin
        .parse()
        .map_err(|_| format!("--origin {:?}: not IPv4:port", args.origin))?;
    if !(1..=99).contains(&args.loss_percent) {
        return Err(format!("--loss-percent {}: 1 to 99", args.loss_percent));
    }
    if !(args.disk_threshold > 0.0 && args.disk_threshold < 100.0) {
        return Err(format!(
            "--disk-threshold {}: above 0 and below 100",
            args.disk_threshold
        ));
    }
    if !args.cache_dir.is_absolute() {
        return Err(format!(
            "--cache-dir {}: must be absolute",
            args.cache_dir.display()
        ));
    }
    Ok(RunConfig {
        scenario,
        execute: args.execute,
        duration_secs: duration_ms / 1000,
        grace_secs: grace_ms / 1000,
        reaction_bound_ms,
        service_url,
        origin,
        loss_percent: args.loss_percent,
        gate_file: okome_common::root::rooted(&args.gate_file),
        cache_dir: args.cache_dir,
        disk_percent: args.disk_threshold,
        max_fill_bytes: args.max_fill_mib.saturating_mul(1 << 20),
        preflight: args
            .preflight
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        cluster_file: okome_common::root::rooted(&args.cluster_file),
        ssh: crate::peers::Ssh {
            program: args.ssh,
            options: args
                .ssh_options
                .into_iter()
                .filter(|o| !o.is_empty())
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["okome-chaos", "--node", "frontend-a"];
        argv.extend_from_slice(args);
        let matches = command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        Config::from_matches(&matches)
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn a_run_is_a_dry_run_with_safe_defaults() {
        let Action::Run(run) = config(&["run", "redis-stop"]).unwrap().action else {
            panic!()
        };
        assert!(!run.execute);
        assert_eq!(run.scenario, Scenario::RedisStop);
        assert_eq!((run.duration_secs, run.grace_secs), (60, 15));
        assert_eq!(run.preflight, ["okome-validate", "--cluster"]);
    }

    #[test]
    fn the_site_ssh_options_reach_the_peer_check() {
        let Action::Run(run) = config(&[
            "run",
            "redis-stop",
            "--ssh-option",
            "Port=2222",
            "--ssh-option",
            "IdentityFile=/etc/okome/id_ed25519",
        ])
        .unwrap()
        .action
        else {
            panic!()
        };
        assert_eq!(run.ssh.program, "ssh");
        assert_eq!(
            run.ssh.options,
            ["Port=2222", "IdentityFile=/etc/okome/id_ed25519"]
        );
        let Action::Run(run) = config(&["run", "redis-stop"]).unwrap().action else {
            panic!()
        };
        assert!(run.ssh.options.is_empty());
    }

    #[test]
    fn refusals_before_any_io() {
        for args in [
            &["run", "nginx-stop", "--duration", "601s"][..],
            &["run", "nginx-stop", "--duration", "0"],
            &["run", "nginx-stop", "--duration", "1500ms"],
            &[
                "run",
                "nginx-stop",
                "--duration",
                "5s",
                "--reaction-bound",
                "5s",
            ],
            &["run", "nginx-stop", "--grace", "0s"],
            &["run", "origin-loss", "--loss-percent", "100"],
            &["run", "origin-loss", "--origin", "orchestrator:8000"],
            &["run", "disk-pressure", "--disk-threshold", "100"],
            &["run", "disk-pressure", "--cache-dir", "cache"],
            &["run", "nginx-stop", "--service-url", "https://x/"],
            &["run", "fork-bomb"],
            &["revert", "../etc"],
            &["report", "a b"],
        ] {
            assert!(config(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("60"), Ok(60_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert!(parse_duration_ms("1h").is_err());
        assert!(parse_duration_ms("s").is_err());
    }
}

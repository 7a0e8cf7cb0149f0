//! okome-prewarm's command line: [`command`] (also used for the man page and
//! completions). Every option has an `OKOME_PREWARM_*` variable (the old
//! `OKOME_WARM_*` names are still accepted: `crate::SPEC`); the values become a validated [`crate::Config`] in `config.rs`, before
//! any I/O.

use crate::{VERSION, ingest, plan_store};
use clap::{Arg, ArgAction, Command};
use okome_common::paths;

const AFTER_HELP: &str = "\
Configuration (flag > environment > /etc/default/okome-prewarm > default):
  OKOME_PREWARM_TARGET    where HEADs go; scheme, host and port only
                       [http://127.0.0.1]
  OKOME_PREWARM_HOST      Host header sent: the site's public name, as in
                       nginx's upstream.conf [192.168.86.18]
  OKOME_PREWARM_TOP_N     paths warmed per run [40]
  OKOME_PREWARM_LOG      the okome-format access log
                       [/var/log/nginx/okome_access.log]
  OKOME_PREWARM_STRATEGY  selective | priority | breadth [priority]
  OKOME_PREWARM_MAX_RPS   requests per second that may reach the origin [5]
  OKOME_PREWARM_VIP       keepalived VIP: holder publishes, standby follows [unset]
  OKOME_PREWARM_REDIS     redis://[user:password@]host[:port][/db] [unset]
  …and every other flag's OKOME_PREWARM_* variable, shown next to it above.
  (The older OKOME_WARM_*, OKOME_NGINX_LOG* and OKOME_METRICS_DIR names
  still work.)

What counts as demand: successful GET/HEAD of /, /assets/*, /static/*,
/ui-schema/*, /version, /health by users. Never /api/, never prewarm's own
requests (X-OKOME-Warm: 1 / User-Agent okome-prewarm/…, logged as warm=1),
never monitors (--exclude-ua). Paths from the log are normalised and
refused unless they are plain origin-form paths (no absolute URIs, //host,
CR/LF, .., %2f, %2e, %5c; at most 512 bytes).

Origin budget: a token bucket charged before each request and refunded when
nginx answered from cache (so hits are free and origin requests never exceed
max-rps plus one; all requests, hits included, are capped at --max-total-rps
so nginx's own per-client limit never answers 429), per-request timeout, at
most 2 retries (jittered exponential backoff, Retry-After honoured, never on
4xx), a run deadline, and an emergency stop when a request that waited for the
origin took longer than --emergency-ms or --max-errors errors piled up.

Examples:
  okome-prewarm --dry-run                  show the plan with scores and why
  okome-prewarm --json                     warm, report as JSON
  okome-prewarm --refresh                  re-fetch entries stored > 30 min ago
  OKOME_PREWARM_VIP=10.213.0.18 OKOME_PREWARM_REDIS=redis://10.213.0.19 okome-prewarm

Files: /run/okome/prewarm.state (offset, inode, demand, quarantine),
/run/okome/prewarm.lock, /run/okome/metrics/okome-prewarm.prom.

While the health gate is closed (okome-health-probe created
/run/okome/orchestrator.down: the orchestrator is down) a run sends nothing:
one info line, okome_prewarm_gate_closed_skips_total + 1, exit 0.

While Redis cannot be reached, the first run warns (the standby then warms
from its own log, the holder's plan is not shared); later runs of the same
outage say it only at debug level, and the first run that reaches Redis
again logs one info line with how long it was gone.

Exit status:
  0  ran, all good (also: another run holds the lock, or the gate is closed)
  1  ran, some URLs failed (or the plan could not be published)
  2  usage or configuration error (nothing was changed)
  3  internal failure
  4  emergency stop: the origin was slow or failing; the run ended early";

fn opt(
    id: &'static str,
    env: &'static str,
    value: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Arg {
    let arg = Arg::new(id)
        .long(id)
        .env(env)
        .value_name(value)
        .action(ArgAction::Set)
        .help(help);
    match default {
        Some(d) => arg.default_value(d),
        None => arg,
    }
}

/// `--exclude-ua`'s long help. Its default is one 187-character word clap
/// cannot wrap, so clap does not show it (`hide_default_value`); this lists
/// it over lines that fit 80 columns, in `--help` and the man page.
fn exclude_ua_long_help() -> String {
    let mut text =
        String::from("Comma-separated User-Agent substrings of monitors (not demand)\n\nDefault:");
    let mut width = text.len() - text.rfind('\n').map_or(0, |n| n + 1);
    let monitors: Vec<&str> = ingest::DEFAULT_MONITORS.split(',').collect();
    for (i, monitor) in monitors.iter().enumerate() {
        let comma = if i + 1 < monitors.len() { "," } else { "" };
        // 70 = 80 columns less clap's indent of an option's long help.
        if width + 1 + monitor.len() + comma.len() > 70 {
            text.push('\n');
            width = 0;
        } else {
            text.push(' ');
            width += 1;
        }
        text.push_str(monitor);
        text.push_str(comma);
        width += monitor.len() + comma.len();
    }
    text
}

/// The command line, for `main`, man pages and completions.
pub fn command() -> Command {
    Command::new("okome-prewarm")
        .version(VERSION)
        .about("Warm the nginx edge cache with the paths users are about to ask for")
        .long_about(
            "Reads the new tail of the okome access log, ranks the safe UI paths by predicted \
             demand and sends HEAD requests for the top N to the local nginx, within an origin \
             budget. Meant to run every 2 minutes from okome-prewarm.timer.",
        )
        .after_help(AFTER_HELP)
        // -h and --help fit 80 columns (clap's wrap_help; narrower terminals
        // get narrower help).
        .max_term_width(80)
        .arg(opt("target", "OKOME_PREWARM_TARGET", "URL", Some("http://127.0.0.1"), "Warm target: http://host[:port], nothing else"))
        .arg(opt("host", "OKOME_PREWARM_HOST", "NAME", Some("192.168.86.18"), "Host header of warm requests: the site's public name (nginx's upstream.conf); empty: the target's"))
        .arg(opt("top-n", "OKOME_PREWARM_TOP_N", "N", Some("40"), "Paths to warm per run"))
        .arg(opt("log", "OKOME_PREWARM_LOG", "PATH", Some(paths::ACCESS_LOG), "nginx access log in the okome format"))
        .arg(opt("log-format", "OKOME_PREWARM_LOG_FORMAT", "SPEC", None, "nginx log_format string, if not the okome format"))
        .arg(opt("strategy", "OKOME_PREWARM_STRATEGY", "NAME", Some("priority"), "selective (top by frequency), priority (predictor), breadth (shallow first)"))
        .arg(opt("tail-bytes", "OKOME_PREWARM_TAIL_BYTES", "BYTES", Some("8388608"), "Read at most this much of the log per run"))
        .arg(opt("workers", "OKOME_PREWARM_WORKERS", "N", Some("2"), "Concurrent warm requests"))
        .arg(opt("max-rps", "OKOME_PREWARM_MAX_RPS", "RPS", Some("5"), "Requests per second that may reach the origin"))
        .arg(opt("max-total-rps", "OKOME_PREWARM_MAX_TOTAL_RPS", "RPS", Some("15"), "Cap on all warm requests per second, hits included (below nginx's 20 r/s per-client UI limit)"))
        .arg(opt("timeout-ms", "OKOME_PREWARM_TIMEOUT_MS", "MS", Some("5000"), "Per-request timeout"))
        .arg(opt("retries", "OKOME_PREWARM_RETRIES", "N", Some("2"), "Retries on 5xx/timeout/connection errors (0-2; never on 4xx)"))
        .arg(opt("backoff-ms", "OKOME_PREWARM_BACKOFF_MS", "MS", Some("100"), "Backoff base (doubles per retry, jittered)"))
        .arg(opt("deadline-secs", "OKOME_PREWARM_DEADLINE_SECS", "SECS", Some("90"), "The whole run ends by then (max 110: below the 2 min period)"))
        .arg(opt("emergency-ms", "OKOME_PREWARM_EMERGENCY_MS", "MS", Some("2000"), "Emergency stop when an origin request is slower than this"))
        .arg(opt("max-errors", "OKOME_PREWARM_MAX_ERRORS", "N", Some("5"), "Emergency stop after this many errors (5xx, 429, timeouts)"))
        .arg(opt("accept-encoding", "OKOME_PREWARM_ACCEPT_ENCODING", "VALUE", Some("gzip, deflate, br"), "Accept-Encoding sent, as real browsers do"))
        .arg(opt("exclude-ua", "OKOME_PREWARM_EXCLUDE_UA", "LIST", Some(ingest::DEFAULT_MONITORS), "Comma-separated User-Agent substrings of monitors (not demand) [default: see --help]").hide_default_value(true).long_help(exclude_ua_long_help()))
        .arg(opt("quarantine-after", "OKOME_PREWARM_QUARANTINE_AFTER", "RUNS", Some("3"), "Quarantine a path that MISSes this many runs in a row"))
        .arg(opt("quarantine-secs", "OKOME_PREWARM_QUARANTINE_SECS", "SECS", Some("21600"), "How long a quarantine lasts"))
        .arg(Arg::new("refresh").long("refresh").env("OKOME_PREWARM_REFRESH").action(ArgAction::SetTrue).value_parser(clap::builder::BoolishValueParser::new()).help("Re-fetch through the localhost-only X-OKOME-Refresh bypass (loopback target only)"))
        .arg(opt("refresh-after-secs", "OKOME_PREWARM_REFRESH_AFTER", "SECS", Some("1800"), "With --refresh: only paths stored at least this long ago"))
        .arg(opt("vip", "OKOME_PREWARM_VIP", "ADDR", None, "keepalived VIP: the holder publishes its plan, the other node warms from it"))
        .arg(opt("redis", "OKOME_PREWARM_REDIS", "URL", None, "Redis for the shared plan: redis://[user:password@]host[:port][/db] (prefer the env var: flags show in ps)").hide_env_values(true))
        .arg(opt("plan-key", "OKOME_PREWARM_PLAN_KEY", "KEY", Some(plan_store::DEFAULT_KEY), "Redis key of the shared plan"))
        .arg(opt("plan-ttl-secs", "OKOME_PREWARM_PLAN_TTL", "SECS", Some("600"), "TTL of the published plan"))
        .arg(opt("gate-file", "OKOME_PREWARM_GATE_FILE", "PATH", Some(paths::GATE_FILE), "The health gate's flag file: while it exists the orchestrator is down and the run is skipped (exit 0)"))
        .arg(opt("state-dir", "OKOME_PREWARM_STATE_DIR", "DIR", Some(paths::RUN_DIR), "Directory of prewarm.state and prewarm.lock"))
        .arg(opt("metrics-dir", "OKOME_PREWARM_METRICS_DIR", "DIR", Some(paths::METRICS_DIR), "node_exporter textfile directory"))
        .arg(Arg::new("no-metrics").long("no-metrics").action(ArgAction::SetTrue).help("Do not write the Prometheus textfile"))
        .arg(Arg::new("dry-run").long("dry-run").short('n').action(ArgAction::SetTrue).help("Print the plan with scores and why; send nothing, write nothing"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the report (or the dry-run plan) as JSON on stdout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_teaches_config_and_exit_status() {
        let help = command().render_long_help().to_string();
        for needle in [
            "OKOME_PREWARM_TARGET",
            "OKOME_PREWARM_TOP_N",
            "OKOME_PREWARM_LOG",
            "[default: 40]",
            "Exit status",
            "4  emergency stop",
            "Examples",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}");
        }
    }

    #[test]
    fn exclude_ua_help_lists_the_default_monitors() {
        let help = exclude_ua_long_help();
        let (_, listed) = help.split_once("Default:").expect("the default is listed");
        let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
        let default: Vec<&str> = ingest::DEFAULT_MONITORS.split(',').collect();
        assert_eq!(listed, default);
        assert!(
            help.lines().all(|line| line.chars().count() <= 70),
            "{help}"
        );
        // clap shows no `[default: …]` for it, so tests/tests/configs.rs cannot
        // compare the /etc/default file's copy with the tool's: done here.
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/default/okome-prewarm"
        );
        let text = std::fs::read_to_string(file).unwrap();
        let shown: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.trim_start_matches('#')
                    .strip_prefix("OKOME_PREWARM_EXCLUDE_UA=")
            })
            .collect();
        assert_eq!(shown, [ingest::DEFAULT_MONITORS]);
    }
}

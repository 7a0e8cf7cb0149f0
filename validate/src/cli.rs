//! The command line: `command()` (also the man page and completions) and its
//! translation into a validated [`Config`] before any I/O.
//!
//! Every option has an `OKOME_VALIDATE_*` environment variable, which
//! `/etc/default/okome-validate` can set (the timer's unit reads the same
//! file): flag > environment > defaults file > built-in default. Default
//! paths are placed under `$OKOME_ROOT`; paths given explicitly are used as
//! written. A bad value is a usage error (exit 2) naming the option.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use okome_common::root::rooted;

use crate::cluster_conf::{ClusterConf, ConfError};
use crate::judge::Thresholds;
use crate::model::{self, CATALOGUE, Role};

/// The tool's name, as in messages.
pub const TOOL: &str = "okome-validate";

/// How the result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The 80-column report.
    Human,
    /// One versioned JSON document.
    Json,
    /// A Nagios status line with perfdata.
    Nagios,
    /// Prometheus text exposition.
    Prometheus,
}

/// Colour in the human report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Only on a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// External programs the probes run (overridable for odd installs).
#[derive(Debug, Clone)]
pub struct Programs {
    /// systemctl.
    pub systemctl: String,
    /// journalctl.
    pub journalctl: String,
    /// nginx.
    pub nginx: String,
    /// vcgencmd (absent off a Pi).
    pub vcgencmd: String,
    /// ip (iproute2).
    pub ip: String,
    /// dpkg-query.
    pub dpkg_query: String,
    /// ssh.
    pub ssh: String,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--cluster`: also ask every peer over SSH.
    pub cluster: bool,
    /// Output format.
    pub output: Output,
    /// `--output FILE` (atomic write) instead of stdout.
    pub output_file: Option<PathBuf>,
    /// Colour choice.
    pub colour: Colour,
    /// `--only`: the check ids to run (empty: all).
    pub only: Vec<&'static str>,
    /// `--node`: the nodes to include with --cluster (empty: all).
    pub nodes: Vec<String>,
    /// `--wait`: retry failing checks, and ask unreachable peers again, until
    /// green or this long passed.
    pub wait: Option<Duration>,
    /// This node's name.
    pub self_name: String,
    /// This node's role.
    pub role: Role,
    /// The shared cluster file.
    pub conf: ClusterConf,
    /// This node's address for its own edge check (and port).
    pub address: String,
    /// nginx's port on every frontend.
    pub http_port: u16,
    /// Host header for edge requests.
    pub host: String,
    /// The orchestrator's health URL.
    pub orchestrator: Option<String>,
    /// Redis URL with the tools' ACL user (PING).
    pub redis_url: Option<String>,
    /// Redis URL with the operator user (CONFIG GET, ACL GETUSER).
    pub redis_admin_url: Option<String>,
    /// nginx main config for `nginx -t`.
    pub nginx_conf: PathBuf,
    /// The okome site config (proxy_cache_path).
    pub site_conf: PathBuf,
    /// The gate flag file.
    pub gate_file: PathBuf,
    /// The maintenance pin.
    pub pin_file: PathBuf,
    /// node_exporter textfile dir (probe/prewarm metrics).
    pub metrics_dir: PathBuf,
    /// Max age of the probe's last run.
    pub probe_max_age: Duration,
    /// Max age of prewarm's last run.
    pub prewarm_max_age: Duration,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// Programs run.
    pub programs: Programs,
    /// Extra ssh options (`-o X=Y` pairs as words).
    pub ssh_options: Vec<String>,
    /// ssh ConnectTimeout.
    pub connect_timeout: Duration,
    /// The whole --cluster run's deadline.
    pub deadline: Duration,
    /// The command peers run (`okome-validate`).
    pub remote_command: String,
    /// The root prefix (for reading /proc, /sys, /etc).
    pub root: PathBuf,
}

/// Why the flags do not make a config.
#[derive(Debug)]
pub enum ConfigError {
    /// A bad flag value.
    Usage(String),
    /// The cluster file was refused.
    Conf(ConfError),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Usage(m) => f.write_str(m),
            ConfigError::Conf(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

const ABOUT: &str = "Is the OKOME cache node (or, with --cluster, the whole cluster) right? Which runbook page if not";

fn long_about() -> String {
    let mut text = String::from(
        "\
Checks this node (systemd units, memory, disk, SD-card wear, nginx, the
health gate, Redis) or, with --cluster, every node named in the cluster file
over OpenSSH, plus the cluster invariants. Read-only: no check changes state.

Every check has an id, a severity (crit, warn, info), a per-check deadline
and retry, the observed value and the runbook incident (docs/runbook.md,
/usr/share/doc/okome-validate/runbook.md) to open when it fails. A check
whose dependency did not pass (or whose node could not be reached) is
NOT_RUN with the reason, never a cascade of failures.

Checks:
",
    );
    for check in CATALOGUE {
        text.push_str(&format!(
            "  {:<31} {:<4} {}\n",
            check.id,
            check.severity.word(),
            check.incident
        ));
        // Wrapped here with a hanging indent: clap's own wrapping would
        // start continuation lines at column 0.
        let mut line = String::from("      ");
        for word in check.what.split(' ') {
            if line.len() + word.len() + 1 > 78 && !line.trim().is_empty() {
                text.push_str(line.trim_end());
                text.push('\n');
                line = String::from("      ");
            }
            line.push_str(word);
            line.push(' ');
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str(
        "
The shared cluster file (--config, default /etc/okome/cluster.conf) names
nodes, roles, the VIP and waivers:
  vip 192.168.86.18
  public-host okome.lan
  orchestrator http://192.168.86.25:8000/health
  node frontend-a frontend 192.168.86.20 [ssh=root@…] [header=X-OKOME-Node]
  node backend backend 192.168.86.19
  waive CHECK NODE|* YYYY-MM-DD REASON…
A malformed waiver (unknown check or node, bad date, no reason) refuses the
whole file (exit 2). An expired one no longer applies.

--cluster runs `okome-validate --local --json` on every peer with ssh
-o BatchMode=yes -o ConnectTimeout=… and one multiplexed connection per
peer (ControlMaster=auto, ControlPersist=no: none outlives the run), all peers in parallel under one --deadline: an
unreachable peer costs the deadline once, and its checks are NOT_RUN behind
a CRITICAL node.ssh.

Configuration: flag > OKOME_VALIDATE_* environment variable >
/etc/default/okome-validate > built-in default. Default paths are placed
under $OKOME_ROOT (default /).",
    );
    text
}

const AFTER_LONG_HELP: &str = "\
Examples:
  okome-validate                       this node, human report
  okome-validate --cluster             every node + cluster invariants
  okome-validate --cluster --nagios    for Nagios/Icinga
  okome-validate --wait 2m             after a deploy: retry until green
  okome-validate --only redis,edge.gate --json

Exit status (default, --json, --prometheus):
  0  every check passed (info findings, waived and skipped checks allowed)
  1  a warn or crit check failed, or a node could not be reached
  2  usage or configuration error (nothing was checked)
  3  internal failure (okome-validate could not run a check itself)
Exit status with --nagios: 0 OK, 1 WARNING, 2 CRITICAL (an unreachable peer
is CRITICAL), 3 UNKNOWN (okome-validate's own error only).";

/// `OKOME_VALIDATE_<name>`; leaked because clap keeps `&'static str` names
/// (the command is built once per run).
fn env(name: &str) -> &'static str {
    Box::leak(format!("OKOME_VALIDATE_{name}").into_boxed_str())
}

/// The command definition.
pub fn command() -> Command {
    let path = |id: &'static str, var: &str, help: &'static str| {
        Arg::new(id)
            .long(id)
            .env(env(var))
            .value_name("PATH")
            .value_parser(value_parser!(PathBuf))
            .help(help)
    };
    let text = |id: &'static str, var: &str, name: &'static str, help: &'static str| {
        Arg::new(id)
            .long(id)
            .env(env(var))
            .value_name(name)
            .help(help)
    };
    let hidden = |id: &'static str, var: &str, default: &'static str| {
        Arg::new(id)
            .long(id)
            .env(env(var))
            .default_value(default)
            .hide(true)
    };
    Command::new(TOOL)
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(long_about())
        .after_long_help(AFTER_LONG_HELP)
        .max_term_width(80)
        .arg(Arg::new("local").long("local").action(ArgAction::SetTrue).conflicts_with("cluster")
            .help("Check this node only (the default; what peers run under --cluster)"))
        .arg(Arg::new("cluster").long("cluster").action(ArgAction::SetTrue)
            .help("Also check every node of the cluster file over SSH, and the cluster invariants"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)
            .conflicts_with_all(["nagios", "prometheus"])
            .help("Print one JSON document (schema in validate/README.md)"))
        .arg(Arg::new("nagios").long("nagios").action(ArgAction::SetTrue)
            .conflicts_with("prometheus")
            .help("Print a Nagios status line with perfdata; exit 0/1/2/3 as Nagios wants"))
        .arg(Arg::new("prometheus").long("prometheus").action(ArgAction::SetTrue)
            .help("Print Prometheus text exposition (with --output: write it atomically)"))
        .arg(path("output", "OUTPUT", "Write the output to this file atomically instead of stdout"))
        .arg(Arg::new("only").long("only").env(env("ONLY")).value_name("IDS").value_delimiter(',')
            .action(ArgAction::Append)
            .help("Run only these checks: ids or group prefixes (redis, edge.gate), comma-separated"))
        .arg(Arg::new("node").long("node").value_name("NAME").action(ArgAction::Append)
            .help("With --cluster: only these nodes (repeatable)"))
        .arg(Arg::new("wait").long("wait").value_name("DURATION")
            .value_parser(parse_duration)
            .help("Retry failing checks (with --cluster: ask unreachable peers again, a Pi still booting) until all pass or DURATION passed (e.g. 2m); attempts are reported per check"))
        .arg(path("config", "CONFIG", "The shared cluster file [default: /etc/okome/cluster.conf]"))
        .arg(text("self", "SELF", "NAME", "This node's name in the cluster file [default: the host name]"))
        .arg(text("role", "ROLE", "ROLE", "This node's role: frontend, backend, other [default: from the cluster file]")
            .value_parser(["frontend", "backend", "other"]))
        .arg(text("address", "ADDRESS", "ADDR", "This node's address for its own edge check [default: from the cluster file, else 127.0.0.1]"))
        .arg(text("http-port", "HTTP_PORT", "PORT", "nginx's port on the frontends").default_value("80")
            .value_parser(value_parser!(u16).range(1..)))
        .arg(text("orchestrator", "ORCHESTRATOR", "URL", "The orchestrator's health URL [default: from the cluster file]"))
        .arg(text("redis-url", "REDIS_URL", "URL",
            "Redis as the tools' ACL user, for redis.ping: redis://edge:PASSWORD@host:6379/0"))
        .arg(text("redis-admin-url", "REDIS_ADMIN_URL", "URL",
            "Redis as the operator user, for CONFIG GET and ACL GETUSER (the redis.* settings checks)"))
        .arg(path("nginx-conf", "NGINX_CONF", "nginx's main config for nginx -t [default: /etc/nginx/nginx.conf]"))
        .arg(path("site-conf", "SITE_CONF", "The okome site (proxy_cache_path) [default: /etc/nginx/sites-enabled/okome-frontend.conf]"))
        .arg(path("gate-file", "GATE_FILE", "The health gate's flag file [default: /run/okome/orchestrator.down]"))
        .arg(path("pin-file", "PIN_FILE", "The maintenance pin [default: /var/lib/okome/maintenance.pin]"))
        .arg(path("metrics-dir", "METRICS_DIR", "node_exporter textfile dir [default: /run/okome/metrics]"))
        .arg(text("probe-max-age", "PROBE_MAX_AGE", "DURATION", "Oldest acceptable health-probe run").default_value("30s")
            .value_parser(parse_duration))
        .arg(text("prewarm-max-age", "PREWARM_MAX_AGE", "DURATION", "Oldest acceptable prewarm run").default_value("6m")
            .value_parser(parse_duration))
        .arg(text("mem-warn", "MEM_WARN", "PCT", "MemAvailable below this % of RAM: warn").default_value("10")
            .value_parser(parse_pct))
        .arg(text("mem-crit", "MEM_CRIT", "PCT", "MemAvailable below this %: crit").default_value("5")
            .value_parser(parse_pct))
        .arg(text("swap-warn", "SWAP_WARN", "PCT", "Swap used above this %: warn").default_value("50")
            .value_parser(parse_pct))
        .arg(text("disk-warn", "DISK_WARN", "PCT", "Disk or inode use above this %: warn").default_value("85")
            .value_parser(parse_pct))
        .arg(text("disk-crit", "DISK_CRIT", "PCT", "Disk or inode use above this %: crit").default_value("95")
            .value_parser(parse_pct))
        .arg(text("connect-timeout", "CONNECT_TIMEOUT", "DURATION", "ssh ConnectTimeout (whole seconds)").default_value("3s")
            .value_parser(parse_duration))
        .arg(text("deadline", "DEADLINE", "DURATION", "The whole --cluster run, every peer in parallel").default_value("10s")
            .value_parser(parse_duration))
        .arg(text("ssh-option", "SSH_OPTIONS", "OPT", "Extra ssh -o option (repeatable; env: space-separated)")
            .action(ArgAction::Append).value_delimiter(' '))
        .arg(text("remote-command", "REMOTE_COMMAND", "CMD",
            "What peers run (as the ssh login: sudo -n, allowed by /etc/sudoers.d/okome-validate)")
            .default_value("sudo -n okome-validate"))
        .arg(Arg::new("color").long("color").env(env("COLOR")).value_name("WHEN")
            .value_parser(["auto", "always", "never"]).default_value("auto")
            .help("Colour in the human report"))
        .arg(hidden("systemctl", "SYSTEMCTL", "systemctl"))
        .arg(hidden("journalctl", "JOURNALCTL", "journalctl"))
        .arg(hidden("nginx", "NGINX", "nginx"))
        .arg(hidden("vcgencmd", "VCGENCMD", "vcgencmd"))
        .arg(hidden("ip", "IP", "ip"))
        .arg(hidden("dpkg-query", "DPKG_QUERY", "dpkg-query"))
        .arg(hidden("ssh", "SSH", "ssh"))
}

/// `250ms`, `2s`, `1.5s`, `2m`, `1h`, or bare seconds; zero refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 250ms, 2s, 2m, 1h)"))?;
    if !value.is_finite() || value <= 0.0 || value * scale > 86_400.0 {
        return Err(format!(
            "{text:?}: must be more than zero and at most a day"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_pct(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a percentage (0-100)")),
    }
}

/// `--only` words → catalogue ids (an id, or a prefix before a `.`).
pub fn select(words: &[String]) -> Result<Vec<&'static str>, String> {
    let mut ids = Vec::new();
    for word in words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        let matched: Vec<&'static str> = CATALOGUE
            .iter()
            .map(|c| c.id)
            .filter(|id| *id == word || id.starts_with(&format!("{word}.")))
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "--only: unknown check {word:?} (ids are listed in --help)"
            ));
        }
        for id in matched {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

impl Config {
    /// Validate parsed flags and load the cluster file.
    pub fn from_matches(m: &ArgMatches) -> Result<Config, ConfigError> {
        let usage = ConfigError::Usage;
        let path_or = |id: &str, default: &str| {
            m.get_one::<PathBuf>(id)
                .cloned()
                .unwrap_or_else(|| rooted(default))
        };
        let string = |id: &str| m.get_one::<String>(id).cloned();
        let dur = |id: &str| *m.get_one::<Duration>(id).expect("has a default");
        let pct = |id: &str| *m.get_one::<f64>(id).expect("has a default");

        let conf = ClusterConf::load(&path_or("config", "/etc/okome/cluster.conf"))
            .map_err(ConfigError::Conf)?;
        let only_words: Vec<String> = m
            .get_many::<String>("only")
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let only = select(&only_words).map_err(usage)?;
        let nodes: Vec<String> = m
            .get_many::<String>("node")
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let cluster = m.get_flag("cluster");
        for node in &nodes {
            if !cluster {
                return Err(usage(
                    "--node selects peers of --cluster; use --self to name this node".into(),
                ));
            }
            if conf.node(node).is_none() {
                return Err(usage(format!(
                    "--node {node}: not in {}",
                    conf.path.display()
                )));
            }
        }
        if cluster && conf.nodes.is_empty() {
            return Err(usage(format!(
                "--cluster needs nodes: {} names none",
                conf.path.display()
            )));
        }
        let self_name = string("self")
            .or_else(okome_common::host::host_name)
            .unwrap_or_else(|| "localhost".into());
        let me = conf.node(&self_name);
        let role = match string("role") {
            Some(word) => Role::parse(&word).expect("clap checked the value"),
            None => me.map_or(Role::Other, |n| n.role),
        };
        let output = if m.get_flag("json") {
            Output::Json
        } else if m.get_flag("nagios") {
            Output::Nagios
        } else if m.get_flag("prometheus") {
            Output::Prometheus
        } else {
            Output::Human
        };
        let output_file = m.get_one::<PathBuf>("output").cloned();
        if output_file.is_some() && output == Output::Human {
            return Err(usage(
                "--output needs --json, --nagios or --prometheus".into(),
            ));
        }
        let thresholds = Thresholds {
            mem_warn: pct("mem-warn"),
            mem_crit: pct("mem-crit"),
            swap_warn: pct("swap-warn"),
            disk_warn: pct("disk-warn"),
            disk_crit: pct("disk-crit"),
        };
        if thresholds.mem_crit > thresholds.mem_warn || thresholds.disk_crit < thresholds.disk_warn
        {
            return Err(usage("crit thresholds must be beyond the warn ones".into()));
        }
        let orchestrator = string("orchestrator").or_else(|| conf.orchestrator.clone());
        for (name, url) in [
            ("--orchestrator", &orchestrator),
            ("--redis-url", &string("redis-url")),
            ("--redis-admin-url", &string("redis-admin-url")),
        ] {
            if let Some(url) = url {
                let scheme = if name == "--orchestrator" {
                    "http://"
                } else {
                    "redis://"
                };
                if !url.starts_with(scheme) {
                    return Err(usage(format!("{name}: {scheme}… expected")));
                }
            }
        }
        let address = string("address")
            .or_else(|| me.map(|n| n.address.clone()))
            .unwrap_or_else(|| "127.0.0.1".into());
        let host = conf.host().map_or_else(|| address.clone(), str::to_string);
        let program = |id: &str| string(id).expect("has a default");
        let colour = match string("color").as_deref() {
            Some("always") => Colour::Always,
            Some("never") => Colour::Never,
            _ => Colour::Auto,
        };
        let _ = model::CATALOGUE;
        Ok(Config {
            cluster,
            output,
            output_file,
            colour,
            only,
            nodes,
            wait: m.get_one::<Duration>("wait").copied(),
            self_name,
            role,
            address,
            http_port: *m.get_one::<u16>("http-port").expect("has a default"),
            host,
            orchestrator,
            redis_url: string("redis-url"),
            redis_admin_url: string("redis-admin-url"),
            nginx_conf: path_or("nginx-conf", "/etc/nginx/nginx.conf"),
            site_conf: path_or("site-conf", "/etc/nginx/sites-enabled/okome-frontend.conf"),
            gate_file: path_or("gate-file", "/run/okome/orchestrator.down"),
            pin_file: path_or("pin-file", "/var/lib/okome/maintenance.pin"),
            metrics_dir: path_or("metrics-dir", "/run/okome/metrics"),
            probe_max_age: dur("probe-max-age"),
            prewarm_max_age: dur("prewarm-max-age"),
            thresholds,
            programs: Programs {
                systemctl: program("systemctl"),
                journalctl: program("journalctl"),
                nginx: program("nginx"),
                vcgencmd: program("vcgencmd"),
                ip: program("ip"),
                dpkg_query: program("dpkg-query"),
                ssh: program("ssh"),
            },
            ssh_options: m
                .get_many::<String>("ssh-option")
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            connect_timeout: dur("connect-timeout"),
            deadline: dur("deadline"),
            remote_command: program("remote-command"),
            root: okome_common::root::root(),
            conf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec![TOOL, "--config", "/nonexistent/cluster.conf"];
        all.extend_from_slice(args);
        let m = command()
            .try_get_matches_from(all)
            .map_err(|e| e.to_string())?;
        Config::from_matches(&m).map_err(|e| e.to_string())
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_names_every_check_and_exit_code_within_80_columns() {
        let help = command().render_long_help().to_string();
        for check in CATALOGUE {
            assert!(
                help.contains(&format!(
                    "  {:<31} {:<4} {}",
                    check.id,
                    check.severity.word(),
                    check.incident
                )),
                "{}",
                check.id
            );
        }
        for code in [
            "0  every check passed",
            "1  a warn or crit",
            "2  usage",
            "3  internal",
            "3 UNKNOWN",
        ] {
            assert!(help.contains(code), "{code}");
        }
        assert!(help.lines().all(|l| l.chars().count() <= 80), "{help}");
    }

    #[test]
    fn only_takes_ids_and_group_prefixes() {
        let config = parse(&["--only", "redis,edge.gate"]).unwrap();
        assert!(config.only.contains(&"redis.ping") && config.only.contains(&"redis.kernel"));
        assert!(config.only.contains(&"edge.gate"));
        assert!(!config.only.contains(&"edge.headers"));
        assert!(
            parse(&["--only", "redis.pong"])
                .unwrap_err()
                .contains("unknown check")
        );
        // `edge.g` is not a prefix before a dot.
        assert!(parse(&["--only", "edge.g"]).is_err());
    }

    #[test]
    fn refusals_before_any_io() {
        let cases: &[(&[&str], &str)] = &[
            (&["--cluster"], "names none"),
            (&["--node", "a"], "--self"),
            (&["--wait", "0"], "more than zero"),
            (&["--wait", "soon"], "not a duration"),
            (&["--json", "--nagios"], "cannot be used"),
            (&["--output", "/tmp/x"], "--output needs"),
            (&["--orchestrator", "https://x/health"], "http://"),
            (&["--redis-url", "x"], "redis://"),
            (&["--mem-warn", "101"], "percentage"),
            (&["--mem-warn", "5", "--mem-crit", "10"], "beyond"),
            (&["--role", "cache"], "invalid value"),
        ];
        for (args, want) in cases {
            let e = parse(args).expect_err(&format!("{args:?}"));
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn defaults_sit_under_the_root_and_role_defaults_to_other() {
        let config = parse(&["--self", "x"]).unwrap();
        assert_eq!(config.role, Role::Other);
        assert!(config.gate_file.ends_with("run/okome/orchestrator.down"));
        assert_eq!(config.output, Output::Human);
        assert_eq!(config.probe_max_age, Duration::from_secs(30));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}

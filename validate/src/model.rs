//! The check model: the closed catalogue of check ids, what each one means,
//! how bad its failure is, what it depends on and which runbook incident it
//! points to, and the [`Finding`] every run produces per check and node.
//!
//! The catalogue is one static table ([`CATALOGUE`]) because the same ids are
//! the `--only` vocabulary, the JSON `id`, the Prometheus `check` label, the
//! man page's list and the runbook's "detected by" lines: a check that is not
//! in the table cannot be run, printed or documented, and a test holds the
//! runbook and the table to each other.

use std::fmt;
use std::time::Duration;

/// How bad a failed check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing, never changes the exit status.
    Info,
    /// Degraded or about to break: exit 1, Nagios WARNING.
    Warn,
    /// Broken now (users see it, or the next failure will): exit 1, Nagios CRITICAL.
    Crit,
}

impl Severity {
    /// The word used in every output.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Crit => "crit",
        }
    }
}

/// The part of the cluster a check is about (the report's sections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The machine itself: units, memory, disk, SD card, power.
    Node,
    /// A frontend: nginx, its cache, the health gate.
    Edge,
    /// The backend: Redis.
    Backend,
    /// Across nodes: VIP, drift, standby warmth.
    Cluster,
}

impl Group {
    /// The word used in every output.
    pub fn word(self) -> &'static str {
        match self {
            Group::Node => "node",
            Group::Edge => "edge",
            Group::Backend => "backend",
            Group::Cluster => "cluster",
        }
    }
}

/// A node's job in the cluster (the shared config's `node` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// nginx edge cache + keepalived (holds or stands by for the VIP).
    Frontend,
    /// Redis.
    Backend,
    /// Any other node (orchestrator, client): node checks only.
    Other,
}

impl Role {
    /// The word used in the config and outputs.
    pub fn word(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Backend => "backend",
            Role::Other => "other",
        }
    }

    /// Parse a config / flag word.
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "frontend" => Some(Role::Frontend),
            "backend" => Some(Role::Backend),
            "other" => Some(Role::Other),
            _ => None,
        }
    }
}

/// Which roles a check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Every node.
    All,
    /// Frontends only.
    Frontend,
    /// The backend only.
    Backend,
    /// Frontends and the backend (not orchestrator/client).
    CacheNodes,
    /// Computed by `--cluster` from every node's answer.
    Cluster,
}

impl Applies {
    /// Whether a node of `role` runs the check locally.
    pub fn to(self, role: Role) -> bool {
        match self {
            Applies::All => true,
            Applies::Frontend => role == Role::Frontend,
            Applies::Backend => role == Role::Backend,
            Applies::CacheNodes => role != Role::Other,
            Applies::Cluster => false,
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CheckDef {
    /// Stable id (`--only`, JSON, metric label, runbook).
    pub id: &'static str,
    /// Report section.
    pub group: Group,
    /// Severity of a plain failure (some judges say warn before crit).
    pub severity: Severity,
    /// Which nodes run it.
    pub applies: Applies,
    /// Checks that must pass first; when one did not, this one is NOT_RUN
    /// with that reason instead of failing in cascade.
    pub depends: &'static [&'static str],
    /// Longest one attempt may take (sockets and child processes are bounded by it).
    pub deadline: Duration,
    /// Extra attempts within one run when an attempt fails (network blips).
    pub retries: u8,
    /// The runbook incident (docs/runbook.md heading) to open when it fails.
    pub incident: &'static str,
    /// One line: what passing means.
    pub what: &'static str,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runbook incidents, as their docs/runbook.md headings start.
pub mod incident {
    /// UI slow or blank (nginx).
    pub const UI: &str = "INCIDENT 1";
    /// Redis cache unavailable or misconfigured.
    pub const REDIS: &str = "INCIDENT 2";
    /// VIP not responding / held by none or by both.
    pub const VIP: &str = "INCIDENT 3";
    /// A node is dead or unreachable.
    pub const NODE_DEAD: &str = "INCIDENT 4";
    /// Orchestrator down / health gate wrong.
    pub const ORCHESTRATOR: &str = "INCIDENT 5";
    /// Cache miss storm (prewarm not running, cold standby).
    pub const MISS_STORM: &str = "INCIDENT 6";
    /// Node resources: memory, disk, SD-card wear, power.
    pub const RESOURCES: &str = "INCIDENT 8";
    /// fail2ban down: SSH and the edge unprotected.
    pub const FAIL2BAN: &str = "INCIDENT 9";
    /// Config or package drift between frontends.
    pub const DRIFT: &str = "INCIDENT 10";
}

macro_rules! unit_check {
    ($id:literal, $applies:expr, $sev:expr, $incident:expr, $what:literal) => {
        CheckDef {
            id: $id,
            group: Group::Node,
            severity: $sev,
            applies: $applies,
            depends: &[],
            deadline: ms(3000),
            retries: 0,
            incident: $incident,
            what: $what,
        }
    };
}

/// Every check okome-validate knows, in report order.
pub const CATALOGUE: &[CheckDef] = &[
    CheckDef {
        id: "node.ssh",
        group: Group::Node,
        severity: Severity::Crit,
        applies: Applies::Cluster,
        depends: &[],
        deadline: ms(5000),
        retries: 0,
        incident: incident::NODE_DEAD,
        what: "the peer answers `okome-validate --local --json` over SSH (--cluster)",
    },
    unit_check!(
        "unit.nginx",
        Applies::Frontend,
        Severity::Crit,
        incident::UI,
        "nginx.service active/running"
    ),
    unit_check!(
        "unit.keepalived",
        Applies::Frontend,
        Severity::Crit,
        incident::VIP,
        "keepalived.service active/running"
    ),
    unit_check!(
        "unit.redis-server",
        Applies::Backend,
        Severity::Crit,
        incident::REDIS,
        "redis-server.service active/running"
    ),
    unit_check!(
        "unit.fail2ban",
        Applies::CacheNodes,
        Severity::Warn,
        incident::FAIL2BAN,
        "fail2ban.service active/running"
    ),
    unit_check!(
        "unit.okome-health-probe.timer",
        Applies::Frontend,
        Severity::Crit,
        incident::ORCHESTRATOR,
        "the health gate's timer active/waiting"
    ),
    unit_check!(
        "unit.okome-prewarm.timer",
        Applies::Frontend,
        Severity::Warn,
        incident::MISS_STORM,
        "the prewarm timer active/waiting"
    ),
    CheckDef {
        id: "node.memory",
        group: Group::Node,
        severity: Severity::Crit,
        applies: Applies::All,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::RESOURCES,
        what: "MemAvailable above the warn/crit share of MemTotal",
    },
    CheckDef {
        id: "node.swap",
        group: Group::Node,
        severity: Severity::Warn,
        applies: Applies::All,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::RESOURCES,
        what: "swap (zram or file) used below the warn share",
    },
    CheckDef {
        id: "node.disk",
        group: Group::Node,
        severity: Severity::Crit,
        applies: Applies::All,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::RESOURCES,
        what: "space and inodes of / below the warn/crit use",
    },
    CheckDef {
        id: "node.sd-wear",
        group: Group::Node,
        severity: Severity::Warn,
        applies: Applies::CacheNodes,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::RESOURCES,
        what: "/ mounted noatime, /tmp on tmpfs, journald Storage=volatile",
    },
    CheckDef {
        id: "node.throttle",
        group: Group::Node,
        severity: Severity::Crit,
        applies: Applies::All,
        depends: &[],
        deadline: ms(2000),
        retries: 0,
        incident: incident::RESOURCES,
        what: "`vcgencmd get_throttled` 0x0 (skipped where vcgencmd is absent)",
    },
    CheckDef {
        id: "edge.nginx-config",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(5000),
        retries: 0,
        incident: incident::UI,
        what: "`nginx -t` accepts the running configuration",
    },
    CheckDef {
        id: "edge.cache-disk",
        group: Group::Edge,
        severity: Severity::Warn,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(3000),
        retries: 0,
        incident: incident::RESOURCES,
        what: "the cache dir's filesystem can hold nginx's max_size, inodes below warn",
    },
    CheckDef {
        id: "edge.headers",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &["unit.nginx"],
        deadline: ms(2000),
        retries: 1,
        incident: incident::UI,
        what: "GET / on this node's own address with the public Host: 2xx/3xx, its own X-OKOME-Node, an X-Cache-Status",
    },
    CheckDef {
        id: "edge.orchestrator",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(2000),
        retries: 1,
        incident: incident::ORCHESTRATOR,
        what: "the orchestrator's health URL answers 2xx from this frontend",
    },
    CheckDef {
        id: "edge.gate",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(2000),
        retries: 0,
        incident: incident::ORCHESTRATOR,
        what: "the gate flag agrees with the orchestrator's health (open while healthy, closed while down)",
    },
    CheckDef {
        id: "edge.probe-fresh",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::ORCHESTRATOR,
        what: "okome_health_probe_last_run_timestamp_seconds younger than the probe's max age",
    },
    CheckDef {
        id: "edge.prewarm-fresh",
        group: Group::Edge,
        severity: Severity::Warn,
        applies: Applies::Frontend,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::MISS_STORM,
        what: "okome_prewarm_last_run_timestamp_seconds younger than prewarm's max age",
    },
    CheckDef {
        id: "edge.vrrp",
        group: Group::Edge,
        severity: Severity::Crit,
        applies: Applies::Frontend,
        depends: &["unit.keepalived"],
        deadline: ms(2000),
        retries: 0,
        incident: incident::VIP,
        what: "keepalived's last state (journal) agrees with whether `ip addr` holds the VIP; no FAULT while nginx runs",
    },
    CheckDef {
        id: "redis.ping",
        group: Group::Backend,
        severity: Severity::Crit,
        applies: Applies::Backend,
        depends: &[],
        deadline: ms(1500),
        retries: 1,
        incident: incident::REDIS,
        what: "Redis accepts the tools' ACL user and answers PING",
    },
    CheckDef {
        id: "redis.maxmemory",
        group: Group::Backend,
        severity: Severity::Crit,
        applies: Applies::Backend,
        depends: &["redis.ping"],
        deadline: ms(1500),
        retries: 0,
        incident: incident::REDIS,
        what: "maxmemory set and below physical RAM (warn above half of it)",
    },
    CheckDef {
        id: "redis.policy",
        group: Group::Backend,
        severity: Severity::Warn,
        applies: Applies::Backend,
        depends: &["redis.ping"],
        deadline: ms(1500),
        retries: 0,
        incident: incident::REDIS,
        what: "maxmemory-policy allkeys-lru",
    },
    CheckDef {
        id: "redis.persistence",
        group: Group::Backend,
        severity: Severity::Warn,
        applies: Applies::Backend,
        depends: &["redis.ping"],
        deadline: ms(1500),
        retries: 0,
        incident: incident::REDIS,
        what: "save \"\" and appendonly no (a cache; the SD card is spared)",
    },
    CheckDef {
        id: "redis.default-user",
        group: Group::Backend,
        severity: Severity::Crit,
        applies: Applies::Backend,
        depends: &["redis.ping"],
        deadline: ms(1500),
        retries: 0,
        incident: incident::REDIS,
        what: "the default (anonymous) ACL user is off",
    },
    CheckDef {
        id: "redis.kernel",
        group: Group::Backend,
        severity: Severity::Warn,
        applies: Applies::Backend,
        depends: &[],
        deadline: ms(500),
        retries: 0,
        incident: incident::REDIS,
        what: "vm.overcommit_memory = 1 and transparent hugepages not `always` (Redis's start-up warnings)",
    },
    CheckDef {
        id: "cluster.vip-holder",
        group: Group::Cluster,
        severity: Severity::Crit,
        applies: Applies::Cluster,
        depends: &[],
        deadline: ms(0),
        retries: 0,
        incident: incident::VIP,
        what: "exactly one frontend holds the VIP",
    },
    CheckDef {
        id: "cluster.vip-response",
        group: Group::Cluster,
        severity: Severity::Crit,
        applies: Applies::Cluster,
        depends: &["cluster.vip-holder"],
        deadline: ms(0),
        retries: 0,
        incident: incident::VIP,
        what: "a request through the VIP, from every frontend, names the holder in X-OKOME-Node",
    },
    CheckDef {
        id: "cluster.standby-warm",
        group: Group::Cluster,
        severity: Severity::Warn,
        applies: Applies::Cluster,
        depends: &["cluster.vip-holder"],
        deadline: ms(0),
        retries: 0,
        incident: incident::MISS_STORM,
        what: "every standby's nginx cache holds ≥ 90 % of the holder's published prewarm plan",
    },
    CheckDef {
        id: "cluster.drift",
        group: Group::Cluster,
        severity: Severity::Warn,
        applies: Applies::Cluster,
        depends: &[],
        deadline: ms(0),
        retries: 0,
        incident: incident::DRIFT,
        what: "okome package versions and shipped config checksums equal across frontends",
    },
];

/// The catalogue entry for `id`.
pub fn def(id: &str) -> Option<&'static CheckDef> {
    CATALOGUE.iter().find(|check| check.id == id)
}

/// The outcome of one check on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed, with this severity.
    Fail(Severity),
    /// Not run, because something it depends on did not pass (or the node
    /// could not be reached): the reason says which.
    NotRun(String),
    /// Does not apply here (e.g. no vcgencmd on a non-Pi).
    Skipped(String),
    /// Failed, but a valid waiver covers it (reason and expiry in the note).
    Waived(Severity),
    /// okome-validate itself could not run the check (Nagios UNKNOWN).
    Error,
}

impl Status {
    /// The word used in every output (JSON `status`, report column).
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail(_) => "fail",
            Status::NotRun(_) => "not_run",
            Status::Skipped(_) => "skipped",
            Status::Waived(_) => "waived",
            Status::Error => "error",
        }
    }

    /// Whether it counts as good for dependents and `--wait`.
    pub fn is_good(&self) -> bool {
        matches!(
            self,
            Status::Pass | Status::Skipped(_) | Status::Waived(_) | Status::Fail(Severity::Info)
        )
    }
}

/// One check's result on one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Catalogue id.
    pub id: &'static str,
    /// The node it is about (for cluster checks: `cluster`).
    pub node: String,
    /// What happened.
    pub status: Status,
    /// What was seen (`MemAvailable 12 %`, `X-OKOME-Node frontend-b`).
    pub observed: String,
    /// What passing needs (`≥ 10 %`).
    pub expected: String,
    /// Attempts made (retries and `--wait` rounds included).
    pub attempts: u32,
    /// Wall time of the last attempt.
    pub elapsed: Duration,
}

impl Finding {
    /// A check that did not run, and why (a dependency that did not pass,
    /// an unreachable node): one NOT_RUN line, never a failure of its own.
    pub fn not_run(id: &'static str, node: &str, reason: String) -> Finding {
        Finding {
            id,
            node: node.to_string(),
            status: Status::NotRun(reason.clone()),
            observed: reason,
            expected: String::new(),
            attempts: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// The catalogue entry.
    pub fn def(&self) -> &'static CheckDef {
        def(self.id).expect("findings are made from catalogue ids")
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.node,
            self.id,
            self.status.word(),
            self.observed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_dependencies_exist_earlier() {
        for (index, check) in CATALOGUE.iter().enumerate() {
            assert_eq!(
                CATALOGUE.iter().filter(|c| c.id == check.id).count(),
                1,
                "{} twice",
                check.id
            );
            for dep in check.depends {
                let at = CATALOGUE.iter().position(|c| c.id == *dep);
                assert!(
                    at.is_some_and(|at| at < index),
                    "{} depends on {dep}, which must come before it",
                    check.id
                );
            }
            assert!(check.incident.starts_with("INCIDENT "), "{}", check.id);
        }
    }

    #[test]
    fn roles_pick_their_groups() {
        let ids = |role| {
            CATALOGUE
                .iter()
                .filter(|c| c.applies.to(role))
                .map(|c| c.id)
                .collect::<Vec<_>>()
        };
        assert!(ids(Role::Frontend).contains(&"edge.headers"));
        assert!(!ids(Role::Frontend).contains(&"redis.ping"));
        assert!(ids(Role::Backend).contains(&"redis.maxmemory"));
        assert!(!ids(Role::Other).contains(&"unit.fail2ban"));
        assert!(ids(Role::Other).contains(&"node.memory"));
        assert!(!ids(Role::Backend).contains(&"cluster.vip-holder"));
    }
}

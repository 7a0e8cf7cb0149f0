//! The shared cluster file (`/etc/okome/cluster.conf`): nodes, roles, the
//! VIP, the public Host, the orchestrator, and waivers.
//!
//! One small line format, the same file on every node, so `--cluster` from
//! any node sees the same cluster and a local run knows its own role:
//!
//! ```text
//! vip          192.168.86.18
//! public-host  okome.lan                       # Host header (default: the VIP)
//! orchestrator http://192.168.86.25:8000/health
//! node frontend-a frontend 192.168.86.20       # NAME ROLE ADDRESS [ssh=DEST] [header=X-OKOME-Node]
//! node frontend-b frontend 192.168.86.21
//! node backend    backend  192.168.86.19
//! waive edge.prewarm-fresh frontend-b 2026-12-31 prewarm disabled while the disk is replaced
//! ```
//!
//! Waivers need a known check id, a node (or `*`), an ISO date and a
//! reason: a waiver missing any of them is refused when the file is loaded
//! (exit 2), so a typo never silently waives the wrong thing. An expired
//! waiver no longer applies and the report says it expired.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{self, Role};

/// One `node` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Name (also the expected `X-OKOME-Node` unless `header=` says otherwise).
    pub name: String,
    /// Its job.
    pub role: Role,
    /// Address on the LAN (its own nginx is asked here, SSH goes here).
    pub address: String,
    /// SSH destination (`ssh=user@host`), default the address.
    pub ssh: Option<String>,
    /// The `X-OKOME-Node` its nginx sends (`header=`), default the name.
    pub header: Option<String>,
}

impl Node {
    /// What its nginx should send in `X-OKOME-Node`.
    pub fn header_name(&self) -> &str {
        self.header.as_deref().unwrap_or(&self.name)
    }
    /// Where `ssh` connects.
    pub fn ssh_dest(&self) -> &str {
        self.ssh.as_deref().unwrap_or(&self.address)
    }
}

/// One `waive` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// Catalogue id.
    pub check: String,
    /// Node name or `*`.
    pub node: String,
    /// Last day it applies (days since 1970-01-01, UTC).
    pub until_day: i64,
    /// `YYYY-MM-DD` as written.
    pub until: String,
    /// Why (printed with the waived finding).
    pub reason: String,
}

impl Waiver {
    /// Whether it covers `check` on `node` on day `today`.
    pub fn covers(&self, check: &str, node: &str, today: i64) -> bool {
        self.check == check && (self.node == "*" || self.node == node) && today <= self.until_day
    }
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConf {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The VIP (`vip`).
    pub vip: Option<String>,
    /// Host header for requests (`public-host`), default the VIP.
    pub public_host: Option<String>,
    /// Orchestrator health URL.
    pub orchestrator: Option<String>,
    /// Nodes, in file order.
    pub nodes: Vec<Node>,
    /// Waivers.
    pub waivers: Vec<Waiver>,
}

/// Why the file was refused.
#[derive(Debug)]
pub enum ConfError {
    /// Unreadable.
    Io(PathBuf, std::io::Error),
    /// A line that does not parse.
    Line {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            ConfError::Line { path, line, why } => write!(f, "{}:{line}: {why}", path.display()),
        }
    }
}

impl std::error::Error for ConfError {}

/// Days since 1970-01-01 of an ISO `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = okome_common::time::days_from_civil(y, m, d);
    // Refuse 2026-02-30 and the like: the day must round-trip.
    (okome_common::time::civil_from_days(days) == (y, m, d)).then_some(days)
}

impl ClusterConf {
    /// Read and parse `path`; a missing file is an empty config (local-only).
    pub fn load(path: &Path) -> Result<ClusterConf, ConfError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ClusterConf::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClusterConf {
                path: path.to_path_buf(),
                ..ClusterConf::default()
            }),
            Err(e) => Err(ConfError::Io(path.to_path_buf(), e)),
        }
    }

    /// Parse the text of the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ClusterConf, ConfError> {
        let mut conf = ClusterConf {
            path: path.to_path_buf(),
            ..ClusterConf::default()
        };
        for (index, raw) in text.lines().enumerate() {
            let err = |why: String| ConfError::Line {
                path: path.to_path_buf(),
                line: index + 1,
                why,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let one = |words: &[&str]| -> Result<String, ConfError> {
                match words {
                    [_, value] => Ok(value.to_string()),
                    _ => Err(err(format!("`{}` takes exactly one value", words[0]))),
                }
            };
            match words[0] {
                "vip" => conf.vip = Some(one(&words)?),
                "public-host" => conf.public_host = Some(one(&words)?),
                "orchestrator" => conf.orchestrator = Some(one(&words)?),
                "node" => {
                    let [_, name, role, address, rest @ ..] = words.as_slice() else {
                        return Err(err(
                            "`node NAME ROLE ADDRESS [ssh=DEST] [header=NAME]`".into()
                        ));
                    };
                    let role = Role::parse(role)
                        .ok_or_else(|| err(format!("role {role:?}: frontend, backend or other")))?;
                    if conf.nodes.iter().any(|n| n.name == *name) {
                        return Err(err(format!("node {name} twice")));
                    }
                    let mut node = Node {
                        name: name.to_string(),
                        role,
                        address: address.to_string(),
                        ssh: None,
                        header: None,
                    };
                    for option in rest {
                        match option.split_once('=') {
                            Some(("ssh", v)) => node.ssh = Some(v.to_string()),
                            Some(("header", v)) => node.header = Some(v.to_string()),
                            _ => return Err(err(format!("unknown node option {option:?}"))),
                        }
                    }
                    conf.nodes.push(node);
                }
                "waive" => {
                    let [_, check, node, until, reason @ ..] = words.as_slice() else {
                        return Err(err("`waive CHECK NODE|* YYYY-MM-DD REASON…`".into()));
                    };
                    if model::def(check).is_none() {
                        return Err(err(format!("waiver for unknown check {check:?}")));
                    }
                    let until_day = parse_day(until)
                        .ok_or_else(|| err(format!("waiver expiry {until:?} is not YYYY-MM-DD")))?;
                    if reason.is_empty() {
                        return Err(err(format!("waiver for {check} gives no reason")));
                    }
                    conf.waivers.push(Waiver {
                        check: check.to_string(),
                        node: node.to_string(),
                        until_day,
                        until: until.to_string(),
                        reason: reason.join(" "),
                    });
                }
                other => return Err(err(format!("unknown keyword {other:?}"))),
            }
        }
        for waiver in &conf.waivers {
            if waiver.node != "*" && !conf.nodes.iter().any(|n| n.name == waiver.node) {
                return Err(ConfError::Line {
                    path: path.to_path_buf(),
                    line: 0,
                    why: format!(
                        "waiver for {} names unknown node {}",
                        waiver.check, waiver.node
                    ),
                });
            }
        }
        Ok(conf)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Host header for requests to the edge.
    pub fn host(&self) -> Option<&str> {
        self.public_host.as_deref().or(self.vip.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# the lab
vip 10.213.0.18
orchestrator http://10.213.0.25:8000/health
node frontend-a frontend 10.213.0.20 ssh=root@10.213.0.20
node frontend-b frontend 10.213.0.21 header=pi-b   # note
node backend backend 10.213.0.19
waive edge.prewarm-fresh frontend-b 2026-12-31 disk swap in progress
";

    #[test]
    fn a_full_file_parses() {
        let conf = ClusterConf::parse(Path::new("c"), GOOD).unwrap();
        assert_eq!(conf.vip.as_deref(), Some("10.213.0.18"));
        assert_eq!(conf.host(), Some("10.213.0.18"));
        assert_eq!(conf.nodes.len(), 3);
        assert_eq!(conf.nodes[0].ssh_dest(), "root@10.213.0.20");
        assert_eq!(conf.nodes[1].header_name(), "pi-b");
        assert_eq!(conf.nodes[2].role, Role::Backend);
        let waiver = &conf.waivers[0];
        assert_eq!(waiver.reason, "disk swap in progress");
        let day = parse_day("2026-12-31").unwrap();
        assert!(waiver.covers("edge.prewarm-fresh", "frontend-b", day));
        assert!(!waiver.covers("edge.prewarm-fresh", "frontend-b", day + 1));
        assert!(!waiver.covers("edge.prewarm-fresh", "frontend-a", day));
    }

    #[test]
    fn malformed_lines_and_waivers_are_refused_with_their_line() {
        let cases = [
            ("node a frontend", "node NAME ROLE"),
            ("node a cache 1.2.3.4", "role"),
            ("node a frontend 1.2.3.4 sssh=x", "unknown node option"),
            ("vip", "exactly one value"),
            ("colour blue", "unknown keyword"),
            ("waive edge.nope * 2026-12-31 why", "unknown check"),
            ("waive edge.gate * 2026-02-30 why", "not YYYY-MM-DD"),
            ("waive edge.gate * 31/12/2026 why", "not YYYY-MM-DD"),
            ("waive edge.gate * 2026-12-31", "no reason"),
            ("waive edge.gate ghost 2026-12-31 why", "unknown node ghost"),
        ];
        for (text, want) in cases {
            let e = ClusterConf::parse(Path::new("/etc/okome/cluster.conf"), text)
                .expect_err(text)
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("/etc/okome/cluster.conf:"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_cluster() {
        let conf = ClusterConf::load(Path::new("/nonexistent/cluster.conf")).unwrap();
        assert!(conf.nodes.is_empty());
    }
}

//! Rendering the SHIPPED configs for the lab: the files in `configs/`,
//! byte for byte, except for the addresses, ports, paths (and placeholder
//! secrets) listed in [`table`] — the one substitution table, in one place.
//! There is no lab-only copy of any shipped file.
//!
//! Every entry of the table must match the shipped file it is for: when a
//! shipped file changes so that an entry no longer applies, rendering fails
//! and names the entry, instead of the lab silently testing something else.
//! After rendering, no non-comment line may still name a 192.168.x.x site
//! address: the lab never sends traffic off loopback.
//!
//! The only file the lab writes itself is nginx's main `nginx.conf`, which
//! OKOME does not ship (Debian does): [`main_nginx_conf`] is a stand-in that
//! relocates pid, logs and temp paths into the lab root and includes the
//! rendered site exactly as Debian's `include sites-enabled/*` does.

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::bins::configs_dir;
use crate::root::LabRoot;

/// The shipped nginx-frontend files and where they live on a node.
pub const FRONTEND_FILES: &[(&str, &str)] = &[
    (
        "okome-frontend.conf",
        "/etc/nginx/sites-enabled/okome-frontend.conf",
    ),
    ("upstream.conf", "/etc/nginx/okome/upstream.conf"),
    (
        "okome-logformat.conf",
        "/etc/nginx/okome/okome-logformat.conf",
    ),
    ("canary_maps.conf", "/etc/nginx/okome/canary_maps.conf"),
    (
        "canary_policies.conf",
        "/etc/nginx/okome/canary_policies.conf",
    ),
    ("health_state.conf", "/etc/nginx/okome/health_state.conf"),
];

/// The shipped redis config and where the lab puts it.
pub const REDIS_FILE: (&str, &str) = ("redis-backend/redis.conf", "/etc/redis/redis.conf");

/// The site names of the shipped upstream.conf as the lab renders them: the
/// VIP (also the public name, the only Host the orchestrator sees) and the
/// two frontend Pis. They are only names in a Host header here: nginx
/// listens on 127.0.0.1 and answers to them (and to 127.0.0.1/localhost).
pub const LAB_VIP_NAME: &str = "127.0.0.18";
/// Frontend Pi A's address, as the lab renders it.
pub const LAB_PI_A_NAME: &str = "127.0.0.20";
/// Frontend Pi B's address, as the lab renders it.
pub const LAB_PI_B_NAME: &str = "127.0.0.21";
/// The public name the orchestrator sees in the lab (the shipped default is
/// the VIP).
pub const LAB_PUBLIC_NAME: &str = LAB_VIP_NAME;

/// The `X-OKOME-Node` the lab's nginx sends: the shipped config says
/// `$hostname`, which nginx takes from gethostname(), and the lab's nginx
/// runs on this machine — so this machine's host name, read the same way.
pub fn lab_node_name() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .into_string()
        .expect("a UTF-8 host name")
}

/// Password the lab gives redis' `operator` ACL user (the shipped file
/// carries a placeholder hash that a site replaces).
pub const LAB_REDIS_OPERATOR_PASSWORD: &str = "okome-lab-operator";
/// Password the lab gives redis' `orchestrator` ACL user.
pub const LAB_REDIS_ORCHESTRATOR_PASSWORD: &str = "okome-lab-orchestrator";
/// Password the lab gives redis' `edge` ACL user (the frontends' tools).
pub const LAB_REDIS_EDGE_PASSWORD: &str = "okome-lab-edge";

/// The ports and peers a lab instance uses.
#[derive(Debug, Clone, Copy)]
pub struct LabPorts {
    /// nginx's HTTP port (on 127.0.0.1, and ::1 when `ipv6`).
    pub http: u16,
    /// Whether nginx also listens on `[::1]`.
    pub ipv6: bool,
    /// The stub orchestrator.
    pub orchestrator: SocketAddr,
    /// The gate backend inside nginx (on 127.0.0.1; shipped: 8099).
    pub gate: u16,
    /// redis-server's port.
    pub redis: u16,
}

/// Which shipped files an entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Frontend,
    Redis,
}

/// One substitution: `from` (as shipped) → `to` (in the lab).
#[derive(Debug, Clone)]
pub struct Substitution {
    pub target: Target,
    pub from: String,
    pub to: String,
}

/// THE substitution table: everything the lab changes in a shipped file.
pub fn table(root: &Path, ports: &LabPorts) -> Vec<Substitution> {
    let r = root.display().to_string();
    let r = r.trim_end_matches('/');
    let mut rows: Vec<(Target, &str, String)> = vec![
        // nginx-frontend: addresses and ports
        (
            Target::Frontend,
            "listen 80 default_server;",
            format!("listen 127.0.0.1:{} default_server;", ports.http),
        ),
        (
            Target::Frontend,
            "listen [::]:80 default_server;",
            if ports.ipv6 {
                format!("listen [::1]:{} default_server;", ports.http)
            } else {
                "# (lab: no IPv6 loopback on this machine)".to_owned()
            },
        ),
        (
            Target::Frontend,
            "192.168.86.25:8000",
            ports.orchestrator.to_string(),
        ),
        // The site's names (upstream.conf): the VIP (= the public name)
        // and the two frontend Pis become loopback-looking names.
        (Target::Frontend, "192.168.86.18", LAB_VIP_NAME.to_owned()),
        (Target::Frontend, "192.168.86.20", LAB_PI_A_NAME.to_owned()),
        (Target::Frontend, "192.168.86.21", LAB_PI_B_NAME.to_owned()),
        // The gate backend's loopback port (upstream.conf and the gate
        // server's listen): one per lab, so labs run in parallel.
        (
            Target::Frontend,
            "127.0.0.1:8099",
            format!("127.0.0.1:{}", ports.gate),
        ),
        // nginx-frontend: paths
        (
            Target::Frontend,
            "/etc/nginx/okome/",
            format!("{r}/etc/nginx/okome/"),
        ),
        (Target::Frontend, "/run/okome/", format!("{r}/run/okome/")),
        (
            Target::Frontend,
            "/var/log/nginx/",
            format!("{r}/var/log/nginx/"),
        ),
        (
            Target::Frontend,
            "/var/cache/nginx/okome",
            format!("{r}/var/cache/nginx/okome"),
        ),
        // redis-backend: addresses, ports, paths, placeholder secrets
        (
            Target::Redis,
            "bind 127.0.0.1 192.168.86.19",
            "bind 127.0.0.1".to_owned(),
        ),
        (Target::Redis, "port 6379", format!("port {}", ports.redis)),
        (Target::Redis, "/run/redis/", format!("{r}/run/redis/")),
        (
            Target::Redis,
            "/var/lib/redis",
            format!("{r}/var/lib/redis"),
        ),
        (
            Target::Redis,
            "#0000000000000000000000000000000000000000000000000000000000000000",
            format!(">{LAB_REDIS_ORCHESTRATOR_PASSWORD}"),
        ),
        (
            Target::Redis,
            "#1111111111111111111111111111111111111111111111111111111111111111",
            format!(">{LAB_REDIS_OPERATOR_PASSWORD}"),
        ),
        (
            Target::Redis,
            "#2222222222222222222222222222222222222222222222222222222222222222",
            format!(">{LAB_REDIS_EDGE_PASSWORD}"),
        ),
    ];
    rows.drain(..)
        .map(|(target, from, to)| Substitution {
            target,
            from: from.to_owned(),
            to,
        })
        .collect()
}

/// Why a shipped file could not be rendered.
#[derive(Debug)]
pub enum RenderError {
    Read(PathBuf, std::io::Error),
    Write(PathBuf, std::io::Error),
    /// A table entry matched none of its shipped files.
    Unused {
        target: Target,
        from: String,
    },
    /// A site address survived rendering.
    SiteAddress {
        file: PathBuf,
        line: String,
    },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(p, e) => write!(f, "reading shipped config {}: {e}", p.display()),
            Self::Write(p, e) => write!(f, "writing rendered config {}: {e}", p.display()),
            Self::Unused { target, from } => write!(
                f,
                "the lab's substitution table entry {from:?} ({target:?}) matches no shipped file: \
                 the shipped config changed; update tests/src/render.rs::table"
            ),
            Self::SiteAddress { file, line } => write!(
                f,
                "{} still names a site address after rendering: {line:?}; add it to tests/src/render.rs::table",
                file.display()
            ),
        }
    }
}

impl std::error::Error for RenderError {}

/// Replace every `from` of `subs` in `text` in ONE pass (a substituted
/// value is never substituted again; longer patterns win at a position).
pub fn substitute(text: &str, subs: &[&Substitution], used: &mut [bool]) -> String {
    let pairs: Vec<(&str, &str)> = subs
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str()))
        .collect();
    replace_all(text, &pairs, used)
}

/// The one substitution pass every rendered config goes through, the lab's
/// and the config checks' (`check::render`): each `(from, to)` replaced in
/// ONE pass over `text` (a substituted value is never substituted again;
/// longer patterns win at a position); `used[i]` is set when pair `i` applied.
pub fn replace_all(text: &str, pairs: &[(&str, &str)], used: &mut [bool]) -> String {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for &i in &order {
            let (from, to) = pairs[i];
            if !from.is_empty() && rest.starts_with(from) {
                out.push_str(to);
                rest = &rest[from.len()..];
                used[i] = true;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("non-empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

fn render_set(
    root: &LabRoot,
    ports: &LabPorts,
    target: Target,
    files: &[(&str, &str)],
) -> Result<Vec<PathBuf>, RenderError> {
    let all = table(root.dir(), ports);
    let subs: Vec<&Substitution> = all.iter().filter(|s| s.target == target).collect();
    let mut used = vec![false; subs.len()];
    let mut written = Vec::new();
    for (shipped, node_path) in files {
        let source = configs_dir().join(if target == Target::Frontend {
            format!("nginx-frontend/{shipped}")
        } else {
            (*shipped).to_owned()
        });
        let text = fs::read_to_string(&source).map_err(|e| RenderError::Read(source.clone(), e))?;
        let rendered = substitute(&text, &subs, &mut used);
        let dest = root.path(node_path);
        for line in rendered.lines() {
            let code = line.split('#').next().unwrap_or("");
            if code.contains("192.168.") {
                return Err(RenderError::SiteAddress {
                    file: source,
                    line: line.to_owned(),
                });
            }
        }
        fs::write(&dest, rendered).map_err(|e| RenderError::Write(dest.clone(), e))?;
        written.push(dest);
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(RenderError::Unused {
            target,
            from: subs[i].from.clone(),
        });
    }
    Ok(written)
}

/// Render the shipped nginx-frontend files into `root` and write the lab's
/// main nginx.conf; returns the main config's path.
pub fn render_frontend(root: &LabRoot, ports: &LabPorts) -> Result<PathBuf, RenderError> {
    render_set(root, ports, Target::Frontend, FRONTEND_FILES)?;
    let main = root.path("/etc/nginx/nginx.conf");
    fs::write(&main, main_nginx_conf(root)).map_err(|e| RenderError::Write(main.clone(), e))?;
    Ok(main)
}

/// Render the shipped redis.conf into `root`; returns its path.
pub fn render_redis(root: &LabRoot, ports: &LabPorts) -> Result<PathBuf, RenderError> {
    let written = render_set(root, ports, Target::Redis, &[REDIS_FILE])?;
    Ok(written.into_iter().next().expect("one file rendered"))
}

/// The lab's stand-in for Debian's /etc/nginx/nginx.conf (not shipped by
/// OKOME): relocates pid, error log and temp paths into the lab root and
/// includes `sites-enabled/*` inside `http {}` as Debian's does.
pub fn main_nginx_conf(root: &LabRoot) -> String {
    let r = root.dir().display();
    format!(
        "# okome-lab: stand-in for Debian's /etc/nginx/nginx.conf (not an OKOME file).\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {r}/run/nginx.pid;\n\
         error_log {r}/var/log/nginx/error.log notice;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   client_body_temp_path {r}/var/lib/nginx/body;\n\
         \x20   proxy_temp_path {r}/var/lib/nginx/proxy;\n\
         \x20   fastcgi_temp_path {r}/var/lib/nginx/fastcgi;\n\
         \x20   uwsgi_temp_path {r}/var/lib/nginx/uwsgi;\n\
         \x20   scgi_temp_path {r}/var/lib/nginx/scgi;\n\
         \x20   include {r}/etc/nginx/sites-enabled/*;\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(from: &str, to: &str) -> Substitution {
        Substitution {
            target: Target::Frontend,
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn one_pass_never_substitutes_a_substituted_value() {
        // A lab root under /run must not have its /run/ replaced again.
        let subs = [sub("/run/", "/run/lab/run/"), sub("/var/", "/run/lab/var/")];
        let refs: Vec<&Substitution> = subs.iter().collect();
        let mut used = [false; 2];
        let out = substitute("pid /run/x; log /var/y;", &refs, &mut used);
        assert_eq!(out, "pid /run/lab/run/x; log /run/lab/var/y;");
        assert_eq!(used, [true, true]);
    }

    #[test]
    fn the_longest_pattern_wins_and_unused_entries_are_reported() {
        let subs = [
            sub("/run/", "A"),
            sub("/run/nginx-okome-gate.sock", "B"),
            sub("absent", "C"),
        ];
        let refs: Vec<&Substitution> = subs.iter().collect();
        let mut used = [false; 3];
        assert_eq!(
            substitute("/run/nginx-okome-gate.sock /run/okome/", &refs, &mut used),
            "B Aokome/"
        );
        assert_eq!(used, [true, true, false]);
    }
}

//! [`Lab`]: one whole loopback lab — lab root, stub orchestrator, real
//! nginx on the rendered shipped frontend config, optionally real redis
//! (with the `okome` function library loaded and the stub's planner using it) —
//! with the helpers the end-to-end tests share. Dropping it stops every
//! process (by PID) and removes the root.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::budgets::Conn;
use crate::http::{Request, Response};
use crate::net::{free_port, free_port_dual, have_ipv6_loopback};
use crate::nginx::Nginx;
use crate::planner::Backend;
use crate::redis::Redis;
use crate::render::{
    LAB_REDIS_OPERATOR_PASSWORD, LAB_REDIS_ORCHESTRATOR_PASSWORD, LabPorts, render_frontend,
    render_redis,
};
use crate::root::LabRoot;
use crate::stub::StubOrchestrator;

/// How many ports the lab tries for nginx and redis before giving up.
const PORT_ATTEMPTS: u32 = 3;

/// Options for [`Lab`]; start with [`Lab::builder`].
#[derive(Debug, Clone, Default)]
pub struct LabBuilder {
    redis: bool,
}

impl LabBuilder {
    /// Also start redis-server on the shipped redis.conf.
    pub fn redis(mut self, yes: bool) -> Self {
        self.redis = yes;
        self
    }

    /// Bring the lab up; panics with the failing component's output.
    pub fn start(self) -> Lab {
        let root = LabRoot::new();
        let stub = StubOrchestrator::start();
        let ipv6 = have_ipv6_loopback();
        let pick_http = || if ipv6 { free_port_dual() } else { free_port() };
        let mut ports = LabPorts {
            http: pick_http(),
            ipv6,
            orchestrator: stub.addr(),
            gate: free_port(),
            redis: free_port(),
        };
        // A free port can be taken by a parallel test between picking and
        // binding: then pick another, a few times.
        let mut redis = None;
        for attempt in 1..=PORT_ATTEMPTS {
            if !self.redis {
                break;
            }
            let conf = render_redis(&root, &ports).unwrap_or_else(|e| panic!("{e}"));
            match Redis::try_start(&root, &conf, ports.redis) {
                Ok(started) => {
                    redis = Some(started);
                    break;
                }
                Err(e) if attempt < PORT_ATTEMPTS && e.contains("in use") => {
                    ports.redis = free_port()
                }
                Err(e) => panic!("{e}"),
            }
        }
        if let Some(redis) = &redis {
            // What the okome-backend package's preload does on a node: the
            // planner and budget functions are there before any client.
            load_okome_library(redis);
            stub.set_backend(Some(Backend {
                addr: redis.addr(),
                user: "orchestrator".into(),
                password: LAB_REDIS_ORCHESTRATOR_PASSWORD.into(),
            }));
        }
        let mut attempt = 1;
        let (nginx, main_conf) = loop {
            let main_conf = render_frontend(&root, &ports).unwrap_or_else(|e| panic!("{e}"));
            match Nginx::try_start(&root, &main_conf, ports.http, ipv6) {
                Ok(nginx) => break (nginx, main_conf),
                Err(e) if attempt < PORT_ATTEMPTS && e.contains("in use") => {
                    attempt += 1;
                    ports.http = pick_http();
                    ports.gate = free_port();
                }
                Err(e) => panic!("{e}"),
            }
        };
        Lab {
            nginx,
            redis,
            stub,
            ports,
            main_conf,
            root,
        }
    }
}

/// `FUNCTION LOAD REPLACE` the okome library as the lab's operator.
fn load_okome_library(redis: &Redis) {
    let mut conn = Conn::connect(
        redis.addr(),
        Some(("operator", LAB_REDIS_OPERATOR_PASSWORD)),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("connecting to the lab's redis: {e}"));
    conn.load_library()
        .unwrap_or_else(|e| panic!("loading configs/redis-backend/okome.lua: {e}"));
}

/// A running lab. Fields drop in order: nginx, redis, the stub, then the
/// root directory.
#[derive(Debug)]
pub struct Lab {
    pub nginx: Nginx,
    pub redis: Option<Redis>,
    pub stub: StubOrchestrator,
    pub ports: LabPorts,
    /// The lab's main nginx.conf (includes the rendered shipped site).
    pub main_conf: PathBuf,
    pub root: LabRoot,
}

impl Lab {
    /// Options: `Lab::builder().redis(true).start()`.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// Stub orchestrator + nginx (no redis).
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// nginx's address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.nginx.addr()
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Send `request` to nginx; panics on a transport error.
    pub fn send(&self, request: Request) -> Response {
        request.send(self.addr()).unwrap_or_else(|e| {
            panic!(
                "{} {} via nginx {}: {e}",
                request.method,
                request.target,
                self.addr()
            )
        })
    }

    /// `GET path` through nginx.
    pub fn get(&self, path: &str) -> Response {
        self.send(Request::get(path))
    }

    /// Close the health gate the way okome-health-probe does: create the
    /// flag file (atomically, as the probe does).
    pub fn close_gate(&self) {
        let flag = self.root.flag_file();
        let tmp = flag.with_extension("down.tmp");
        fs::write(&tmp, b"closed by okome-lab\n")
            .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        fs::rename(&tmp, &flag).unwrap_or_else(|e| panic!("creating {}: {e}", flag.display()));
    }

    /// Open the health gate: remove the flag file.
    pub fn open_gate(&self) {
        let flag = self.root.flag_file();
        match fs::remove_file(&flag) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", flag.display()),
        }
    }

    /// Whether the flag file exists.
    pub fn gate_closed(&self) -> bool {
        self.root.flag_file().exists()
    }

    /// `/var/log/nginx/okome_access.log` in the lab root.
    pub fn access_log_path(&self) -> PathBuf {
        self.root.path("/var/log/nginx/okome_access.log")
    }

    /// The access log's lines so far.
    pub fn access_log_lines(&self) -> Vec<String> {
        fs::read_to_string(self.access_log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Wait (up to `timeout`) until the access log has at least `n` lines;
    /// nginx writes a line when a request is finalised, just after the
    /// client got its response.
    pub fn wait_for_log_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.access_log_lines();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A `Command` for tool binary `name` (from `$OKOME_BIN_DIR`, else
    /// target/debug), isolated by the test kit (no `OKOME_*` or
    /// `JOURNAL_STREAM` of the caller) with `OKOME_ROOT` pointing at this
    /// lab's root and `OKOME_WARM_HOST` naming the lab's public name.
    pub fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(crate::bins::tool_bin(name));
        okome_testkit::tool::isolate(&mut command, self.root.dir());
        // The renderer substituted the site's public name in upstream.conf;
        // okome-prewarm's built-in default is the shipped one, which this
        // nginx would refuse (421). A site sets it in /etc/default/okome-prewarm.
        command.env("OKOME_WARM_HOST", crate::render::LAB_PUBLIC_NAME);
        command
    }

    /// The running redis (panics if the lab was started without it).
    pub fn redis(&self) -> &Redis {
        self.redis
            .as_ref()
            .expect("this lab was started without redis: Lab::builder().redis(true)")
    }

    /// Every entry in the proxy cache, read from the cache files.
    pub fn cache_entries(&self) -> Vec<CacheEntry> {
        let mut out = Vec::new();
        collect_cache(&self.root.path("/var/cache/nginx/okome"), &mut out);
        out
    }
}

/// One nginx proxy-cache file, as far as the tests need it.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub path: PathBuf,
    /// The cache key (the `KEY:` line).
    pub key: String,
    /// Unix time until which the entry is fresh.
    pub valid_until: i64,
}

fn collect_cache(dir: &std::path::Path, out: &mut Vec<CacheEntry>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_cache(&path, out);
        } else if let Some(parsed) = parse_cache_file(&path) {
            out.push(parsed);
        }
    }
}

/// Parse the head of an nginx (1.x, 64-bit) cache file: `ngx_http_file_
/// cache_header_t` starts with `version` then `valid_sec` (both 8 bytes,
/// little-endian here); after the header comes `\nKEY: <key>\n`.
pub fn parse_cache_file(path: &std::path::Path) -> Option<CacheEntry> {
    let bytes = fs::read(path).ok()?;
    if bytes.len() < 16 {
        return None;
    }
    let valid_until = i64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let marker = b"\nKEY: ";
    let start = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let end = start + bytes[start..].iter().position(|&b| b == b'\n')?;
    Some(CacheEntry {
        path: path.to_path_buf(),
        key: String::from_utf8_lossy(&bytes[start..end]).into_owned(),
        valid_until,
    })
}

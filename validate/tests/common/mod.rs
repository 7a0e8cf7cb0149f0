//! What okome-validate's end-to-end tests share: a loopback lab node (the
//! lab's real nginx on the rendered shipped configs, real redis-server, the
//! stub orchestrator, the real okome-health-probe and okome-prewarm writing
//! their textfiles) with the fixture files a node's /proc and /etc hold, a
//! way to run the real okome-validate binary against it, and the set of
//! checks a run turned red — the thing every fault test compares.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use okome_lab::lab::Lab;
use okome_lab::render::{LAB_PUBLIC_NAME, LAB_REDIS_EDGE_PASSWORD, LAB_REDIS_OPERATOR_PASSWORD};

/// The okome-validate binary cargo built for this test.
pub const VALIDATE: &str = env!("CARGO_BIN_EXE_okome-validate");

/// The lab frontend's name in cluster.conf. Its nginx sends the machine's
/// host name (the shipped `$hostname`), which cluster.conf's `header=`
/// names, as a site whose node names are not its host names would.
pub const NODE: &str = "frontend-cache";

/// A 1 GB Pi's /proc/meminfo.
pub const MEMINFO: &str = "MemTotal:         948304 kB\nMemFree:          200000 kB\nMemAvailable:     612000 kB\nSwapTotal:        102396 kB\nSwapFree:         102396 kB\n";

/// A lab started with redis, the fixture tree written and both timers' tools run once.
pub fn lab() -> Lab {
    let lab = Lab::builder().redis(true).start();
    fixtures(lab.root.dir());
    write_cluster_conf(&lab, "");
    // The real tools write the textfiles edge.*-fresh reads.
    run_probe(&lab);
    run_prewarm(&lab);
    lab
}

/// /proc, /sys and /etc files of a healthy Pi, under `root`.
pub fn fixtures(root: &Path) {
    let write = |path: &str, text: &str| {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    write("/proc/meminfo", MEMINFO);
    write(
        "/proc/mounts",
        "/dev/mmcblk0p2 / ext4 rw,noatime,commit=60 0 0\ntmpfs /tmp tmpfs rw,nosuid,nodev,noatime,size=65536k 0 0\n",
    );
    write("/proc/sys/vm/overcommit_memory", "1\n");
    write(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    );
    // The shipped journald drop-in, as the okome-node package installs it.
    let journald =
        fs::read_to_string(okome_lab::bins::configs_dir().join("journald.conf")).unwrap();
    write("/etc/systemd/journald.conf.d/okome.conf", &journald);
}

/// The shared cluster file for the one-node lab, plus `extra` lines.
pub fn write_cluster_conf(lab: &Lab, extra: &str) {
    let text = format!(
        "public-host {LAB_PUBLIC_NAME}\norchestrator {}/health\nnode {NODE} frontend 127.0.0.1 header={}\nnode backend backend 127.0.0.1\n{extra}",
        lab.stub.url(),
        okome_lab::render::lab_node_name()
    );
    let path = lab.root.path("/etc/okome/cluster.conf");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Run the real okome-health-probe once (it writes its textfile).
pub fn run_probe(lab: &Lab) {
    let out = lab
        .tool("okome-health-probe")
        .args(["--url", &format!("{}/health", lab.stub.url())])
        .output()
        .unwrap();
    assert!(
        lab.root
            .path("/run/okome/metrics/okome-health-probe.prom")
            .is_file(),
        "okome-health-probe wrote no textfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the real okome-prewarm once against the lab's nginx.
pub fn run_prewarm(lab: &Lab) {
    let out = lab
        .tool("okome-prewarm")
        .arg("--target")
        .arg(lab.url(""))
        .output()
        .unwrap();
    assert!(
        lab.root
            .path("/run/okome/metrics/okome-prewarm.prom")
            .is_file(),
        "okome-prewarm wrote no textfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The edge and operator Redis URLs of the lab.
pub fn redis_urls(lab: &Lab) -> (String, String) {
    // The port, not the guard: still the right address after a test killed redis.
    let addr = format!("127.0.0.1:{}", lab.ports.redis);
    (
        format!("redis://edge:{LAB_REDIS_EDGE_PASSWORD}@{addr}/0"),
        format!("redis://operator:{LAB_REDIS_OPERATOR_PASSWORD}@{addr}/0"),
    )
}

/// Every check that runs on the loopback lab: all but the systemd unit
/// checks (no systemd here; they are proven on the cluster lab) and
/// edge.vrrp (no keepalived).
pub const LOOPBACK_CHECKS: &str = "node.memory,node.swap,node.disk,node.sd-wear,node.throttle,edge.nginx-config,edge.cache-disk,edge.headers,edge.orchestrator,edge.gate,edge.probe-fresh,edge.prewarm-fresh,redis";

/// An okome-validate command set up for the lab as node `role`.
pub fn validate(lab: &Lab, role: &str) -> Command {
    validate_only(lab, role, LOOPBACK_CHECKS)
}

/// The same, running the checks `only` names.
pub fn validate_only(lab: &Lab, role: &str, only: &str) -> Command {
    let (edge, operator) = redis_urls(lab);
    let self_name = if role == "frontend" { NODE } else { "backend" };
    let mut command = Command::new(VALIDATE);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OKOME_") || key == "JOURNAL_STREAM" {
            command.env_remove(key);
        }
    }
    command
        .env("OKOME_ROOT", lab.root.dir())
        .args(["--self", self_name, "--only", only])
        // The test machine's disk is shared with every other job: its use is
        // not the lab's fault (node.disk's thresholds are table-tested).
        .args(["--disk-warn", "100", "--disk-crit", "100"])
        .args(["--http-port", &lab.addr().port().to_string()])
        .arg("--nginx-conf")
        .arg(&lab.main_conf)
        .args(["--redis-url", &edge, "--redis-admin-url", &operator]);
    command
}

/// Run it with `--json`: exit code and the document.
pub fn run_json(command: &mut Command) -> (i32, serde_json::Value) {
    let out = command
        .arg("--json")
        .output()
        .expect("running okome-validate");
    let text = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "okome-validate --json: {e}\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// `(node, check, severity, incident)` of one failed check.
pub type Red = (String, String, String, String);

/// `(node, check, severity, incident)` of every failed check.
pub fn red(doc: &serde_json::Value) -> BTreeSet<Red> {
    let mut out = BTreeSet::new();
    let mut take = |node: &str, check: &serde_json::Value| {
        if check["status"] == "fail" && check["severity"] != "info" {
            out.insert((
                node.to_string(),
                check["id"].as_str().unwrap().to_string(),
                check["severity"].as_str().unwrap().to_string(),
                check["incident"].as_str().unwrap().to_string(),
            ));
        }
    };
    for node in doc["nodes"].as_array().unwrap() {
        for check in node["checks"].as_array().unwrap() {
            take(node["name"].as_str().unwrap(), check);
        }
    }
    for check in doc["cluster"].as_array().unwrap() {
        take("cluster", check);
    }
    out
}

/// Ids with `status` (`not_run`, `error`, `skipped`) in a document.
pub fn with_status(doc: &serde_json::Value, status: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for node in doc["nodes"].as_array().unwrap() {
        for check in node["checks"].as_array().unwrap() {
            if check["status"] == status {
                out.insert(format!(
                    "{}:{}",
                    node["name"].as_str().unwrap(),
                    check["id"].as_str().unwrap()
                ));
            }
        }
    }
    out
}

/// Shorthand for one expected red finding.
pub fn r(node: &str, id: &str, sev: &str, incident: &str) -> Red {
    (node.into(), id.into(), sev.into(), incident.into())
}

/// A directory path as a string.
pub fn s(path: &Path) -> String {
    path.display().to_string()
}

/// `path` under the lab root.
pub fn at(lab: &Lab, path: &str) -> PathBuf {
    lab.root.path(path)
}

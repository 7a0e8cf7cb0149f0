//! `okome-validate --cluster` over a REAL sshd on loopback: two frontends and
//! a backend, each a lab root of its own (the peers run the real binary as
//! `okome-validate --local --json` through ssh), merged, the cluster
//! invariants judged; config drift, a refused SSH port and a peer that
//! never answers each turn exactly the expected checks red.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use okome_lab::lab::Lab;
use okome_lab::render::{LAB_PUBLIC_NAME, lab_node_name};
use okome_lab::sshd::Sshd;

struct Cluster {
    lab: Lab,
    sshd: Sshd,
    /// frontend-b's root (frontend-a and backend use the lab's own).
    root_b: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn conf(cluster: &Cluster, backend_dest: &str, extra: &str) -> String {
    let dest = cluster.sshd.dest();
    let header = lab_node_name();
    format!(
        "{extra}public-host {LAB_PUBLIC_NAME}\norchestrator {}/health\n\
         node frontend-a frontend 127.0.0.1 ssh={dest} header={header}\n\
         node frontend-b frontend 127.0.0.1 ssh={dest} header={header}\n\
         node backend backend 127.0.0.1 ssh={backend_dest}\n",
        cluster.lab.stub.url()
    )
}

impl Cluster {
    fn start() -> Cluster {
        let lab = lab();
        assert_eq!(lab.get("/").status, 200);
        let sshd = Sshd::start();
        let root_b = tempfile::Builder::new()
            .prefix("okv-root-b-")
            .tempdir()
            .unwrap();
        copy_tree(lab.root.dir(), root_b.path());
        let cluster = Cluster { lab, sshd, root_b };
        cluster.write_conf(&cluster.sshd.dest());
        cluster.write_wrapper();
        cluster
    }

    fn write_conf(&self, backend_dest: &str) {
        self.write_conf_with(backend_dest, "");
    }

    /// The cluster file with `extra` lines first (a `vip`).
    fn write_conf_with(&self, backend_dest: &str, extra: &str) {
        let text = conf(self, backend_dest, extra);
        for root in [self.lab.root.dir(), self.root_b.path()] {
            fs::write(root.join("etc/okome/cluster.conf"), &text).unwrap();
        }
    }

    /// What the peers run: the real okome-validate with the node's root and
    /// the lab's ports (the lab's stand-in for each Pi's /etc/default file).
    fn write_wrapper(&self) {
        let (edge, operator) = redis_urls(&self.lab);
        let script = format!(
            "#!/bin/sh\n# okv test: one lab root per node, chosen by --self\n\
             root={a}\ncase \"$*\" in *'--self frontend-b'*) root={b};; esac\n\
             export OKOME_ROOT=$root OKOME_VALIDATE_HTTP_PORT={port} OKOME_VALIDATE_NGINX_CONF={nginx}\n\
             export OKOME_VALIDATE_DISK_WARN=100 OKOME_VALIDATE_DISK_CRIT=100\n\
             export OKOME_VALIDATE_REDIS_URL='{edge}' OKOME_VALIDATE_REDIS_ADMIN_URL='{operator}'\n\
             exec {bin} \"$@\"\n",
            a = s(self.lab.root.dir()),
            b = s(self.root_b.path()),
            port = self.lab.addr().port(),
            nginx = s(&self.lab.main_conf),
            bin = VALIDATE,
        );
        let path = self.wrapper();
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn wrapper(&self) -> PathBuf {
        self.sshd.dir().join("okome-validate-peer")
    }

    /// `okome-validate --cluster` from a node not in the file (the operator's).
    fn validate(&self, extra: &[&str]) -> Command {
        self.validate_within("20s", extra)
    }

    /// The same with another overall `--deadline`.
    fn validate_within(&self, deadline: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(VALIDATE);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OKOME_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--cluster")
            .arg("--config")
            .arg(self.lab.root.path("/etc/okome/cluster.conf"))
            .args(["--self", "operator-laptop", "--deadline", deadline])
            .args(["--only", &format!("{LOOPBACK_CHECKS},node.ssh,cluster")])
            .arg("--remote-command")
            .arg(self.wrapper());
        for option in self.sshd.options() {
            command.arg("--ssh-option").arg(option);
        }
        command.args(extra);
        command
    }
}

fn set(items: &[Red]) -> BTreeSet<Red> {
    items.iter().cloned().collect()
}

#[test]
fn a_healthy_cluster_passes_and_every_peer_answers_over_ssh() {
    let cluster = Cluster::start();
    let (code, doc) = run_json(&mut cluster.validate(&[]));
    assert_eq!(red(&doc), BTreeSet::new(), "{doc:#}");
    assert_eq!(code, 0);
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["frontend-a", "frontend-b", "backend"]);
    for node in doc["nodes"].as_array().unwrap() {
        assert_eq!(node["checks"][0]["id"], "node.ssh");
        assert_eq!(node["checks"][0]["status"], "pass", "{node:#}");
    }
    let drift = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cluster.drift")
        .unwrap();
    assert_eq!(drift["status"], "pass", "{drift}");
    // The human report groups by node and fits 80 columns.
    let out = cluster.validate(&["--color", "never"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        text.contains("\nfrontend-b (frontend)\n") && text.contains("\ncluster\n"),
        "{text}"
    );
}

#[test]
fn a_config_edited_on_one_frontend_is_drift() {
    let cluster = Cluster::start();
    let upstream = cluster.root_b.path().join("etc/nginx/okome/upstream.conf");
    assert!(upstream.is_file(), "the lab renders {}", upstream.display());
    let mut text = fs::read_to_string(&upstream).unwrap();
    text.push_str("# edited by hand on frontend-b\n");
    fs::write(&upstream, text).unwrap();
    let (code, doc) = run_json(&mut cluster.validate(&[]));
    assert_eq!(
        red(&doc),
        set(&[r("cluster", "cluster.drift", "warn", "INCIDENT 10")]),
        "{doc:#}"
    );
    assert_eq!(code, 1);
    let drift = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cluster.drift")
        .unwrap();
    assert!(
        drift["observed"]
            .as_str()
            .unwrap()
            .contains("/etc/nginx/okome/upstream.conf"),
        "{drift}"
    );
}

#[test]
fn ssh_refused_is_one_critical_and_the_peers_checks_not_run() {
    let cluster = Cluster::start();
    // Nothing listens there.
    let closed = okome_lab::net::free_port();
    cluster.write_conf(&format!("ssh://root@127.0.0.1:{closed}"));
    let (code, doc) = run_json(&mut cluster.validate(&[]));
    assert_eq!(
        red(&doc),
        set(&[r("backend", "node.ssh", "crit", "INCIDENT 4")]),
        "{doc:#}"
    );
    assert_eq!(code, 1);
    let backend = &doc["nodes"][2];
    assert!(
        backend["checks"][0]["observed"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{backend:#}"
    );
    let not_run = with_status(&doc, "not_run");
    assert!(
        not_run.contains("backend:redis.ping") && not_run.contains("backend:node.memory"),
        "{not_run:?}"
    );
    assert!(
        !not_run.iter().any(|id| id.starts_with("frontend")),
        "{not_run:?}"
    );
    // Nagios: an unreachable peer is CRITICAL, not UNKNOWN.
    let out = cluster.validate(&["--nagios"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // --node leaves the unreachable one out: the frontends alone are green.
    let (code, doc) =
        run_json(&mut cluster.validate(&["--node", "frontend-a", "--node", "frontend-b"]));
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["frontend-a", "frontend-b"]);
    assert_eq!((code, red(&doc)), (0, BTreeSet::new()), "{doc:#}");
}

#[test]
fn a_peer_that_never_answers_costs_the_deadline_once() {
    let cluster = Cluster::start();
    // Accepts TCP, never sends an SSH banner.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    cluster.write_conf(&format!("ssh://root@127.0.0.1:{port}"));
    let mut short = cluster.validate_within("3s", &[]);
    let (code, doc) = run_json(&mut short);
    assert_eq!(
        red(&doc),
        set(&[r("backend", "node.ssh", "crit", "INCIDENT 4")]),
        "{doc:#}"
    );
    assert_eq!(code, 1);
    let observed = doc["nodes"][2]["checks"][0]["observed"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        observed.contains("deadline") || observed.contains("timed out"),
        "{observed}"
    );
    drop(hung);
}

/// A Pi still booting after a reflash: sshd accepts the key, then
/// pam_nologin closes the session ("System is booting up", ssh exits 255).
/// Without `--wait` that is node.ssh CRITICAL; with `--wait` the peer is
/// asked again until it answers, and node.ssh says how many tries it took.
#[test]
fn wait_asks_a_booting_peer_again_until_it_answers() {
    let cluster = Cluster::start();
    let count = cluster.sshd.dir().join("backend-tries");
    let booting = format!(
        "case \"$*\" in *'--self backend'*)\n\
         n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}\n\
         if [ \"$n\" -lt 2 ]; then\n\
         echo 'System is booting up. Unprivileged users are not permitted to log in yet.' >&2\n\
         exit 255; fi;;\nesac\n",
        count = count.display()
    );
    let wrapper = fs::read_to_string(cluster.wrapper()).unwrap();
    let (shebang, rest) = wrapper.split_once('\n').unwrap();
    fs::write(cluster.wrapper(), format!("{shebang}\n{booting}{rest}")).unwrap();

    // No --wait: one try, the reason as ssh saw it.
    let (code, doc) = run_json(&mut cluster.validate(&[]));
    assert_eq!(
        red(&doc),
        set(&[r("backend", "node.ssh", "crit", "INCIDENT 4")]),
        "{doc:#}"
    );
    assert_eq!(code, 1);
    let ssh = &doc["nodes"][2]["checks"][0];
    assert!(
        ssh["observed"].as_str().unwrap().contains("booting up"),
        "{ssh:#}"
    );
    assert_eq!(ssh["attempts"], 1, "{ssh:#}");

    // --wait: asked again (one refusal left, then it answers), green.
    let (code, doc) = run_json(&mut cluster.validate(&["--wait", "20s"]));
    assert_eq!((code, red(&doc)), (0, BTreeSet::new()), "{doc:#}");
    let ssh = &doc["nodes"][2]["checks"][0];
    assert_eq!(ssh["status"], "pass", "{ssh:#}");
    assert_eq!(ssh["attempts"], 2, "{ssh:#}");
    assert_eq!(fs::read_to_string(&count).unwrap().trim(), "3");
}

/// Both "frontends" run on this one machine, so both see the same `ip addr`:
/// a VIP of 127.0.0.1 is held by both (the split brain the real cluster shows
/// when VRRP between the Pis is cut); an address no interface has is held
/// by none. Either way exactly `cluster.vip-holder` is red, and the check
/// that depends on it says why it did not run.
#[test]
fn vip_held_by_both_or_by_none_is_critical() {
    let cluster = Cluster::start();
    for (vip, observed) in [
        ("127.0.0.1", "held by frontend-a and frontend-b"),
        ("127.0.0.77", "no frontend holds the VIP"),
    ] {
        cluster.write_conf_with(&cluster.sshd.dest(), &format!("vip {vip}\n"));
        let (code, doc) = run_json(&mut cluster.validate(&[]));
        assert_eq!(
            red(&doc),
            set(&[r("cluster", "cluster.vip-holder", "crit", "INCIDENT 3")]),
            "{doc:#}"
        );
        assert_eq!(code, 1);
        let cluster_checks = doc["cluster"].as_array().unwrap();
        let holder = cluster_checks
            .iter()
            .find(|c| c["id"] == "cluster.vip-holder")
            .unwrap();
        assert_eq!(holder["observed"], observed);
        let response = cluster_checks
            .iter()
            .find(|c| c["id"] == "cluster.vip-response")
            .unwrap();
        assert_eq!(response["status"], "not_run", "{response}");
        // Each frontend reported what it saw.
        let held = vip == "127.0.0.1";
        for node in &doc["nodes"].as_array().unwrap()[..2] {
            assert_eq!(node["facts"]["holds_vip"], held, "{node:#}");
        }
    }
}

/// Each frontend reports how much of the plan the holder published in Redis
/// (through okome-prewarm's own publish) its nginx cache holds, read from
/// the real cache files: `/` was fetched, `/assets/app.js` not yet, then is.
#[test]
fn frontends_report_how_much_of_the_published_plan_they_cache() {
    use okome_prewarm::plan_store::{RedisUrl, SharedPlan, publish};
    let cluster = Cluster::start();
    let (edge, _) = redis_urls(&cluster.lab);
    let url: RedisUrl = edge.parse().unwrap();
    let plan = SharedPlan {
        version: 1,
        node: "frontend-a".into(),
        generated: 0,
        strategy: "selective".into(),
        paths: vec!["/".into(), "/assets/app.js".into()],
    };
    publish(
        &url,
        "okome:prewarm:plan",
        &plan,
        300,
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    let warmth = |doc: &serde_json::Value| doc["nodes"][1]["facts"]["warmth"].clone();
    let (_, doc) = run_json(&mut cluster.validate(&[]));
    let w = warmth(&doc);
    assert_eq!(w["plan_node"], "frontend-a", "{w}");
    assert_eq!(w["plan"], serde_json::json!(["/", "/assets/app.js"]));
    assert_eq!(w["cached"], serde_json::json!(["/"]));
    assert_eq!(cluster.lab.get("/assets/app.js").status, 200);
    let (_, doc) = run_json(&mut cluster.validate(&[]));
    assert_eq!(
        warmth(&doc)["cached"],
        serde_json::json!(["/", "/assets/app.js"]),
        "{doc:#}"
    );
}

/// PIDs of processes whose command line names `needle` (ssh renames a
/// control master to `ssh: <ControlPath> [mux]`).
fn processes_naming(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

/// An operator's ssh_config often says `ControlPersist` (here as their
/// `--ssh-option`, which ssh reads after ours). okome-validate's master must
/// still end with its run: none left alive afterwards, and the run does not
/// wait on a backgrounded master holding its output pipe.
#[test]
fn an_operators_control_persist_leaves_no_master_behind() {
    let cluster = Cluster::start();
    let child = cluster
        .validate(&["--ssh-option", "ControlPersist=600", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let control_dir = format!("okv-ssh-{}/", child.id());
    let out = child.wait_with_output().unwrap();
    let left = processes_naming(&control_dir);
    for pid in &left {
        // Ours (its command line names this run's control directory).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(red(&doc), BTreeSet::new(), "{doc:#}");
    assert_eq!(out.status.code(), Some(0));
    assert!(left.is_empty(), "ssh masters left running: {left:?}");
}

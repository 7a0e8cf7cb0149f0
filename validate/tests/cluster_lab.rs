//! okome-validate on the cluster lab (issue 14, 15): booted Debian nodes
//! with the real packages (okome-validate's own .deb among them), systemd
//! as PID 1, keepalived moving a real VIP, nginx, redis-server, fail2ban,
//! the okome timers — and the shipped, hardened sshd (okome-node armed it:
//! keys only, no root login). The operator runs `okome-validate --cluster`
//! on frontend-a as a site would (`sudo`, root there): every peer over
//! OpenSSH as `pi` with the lab's operator key and the known_hosts pinned
//! from each node's own host key, the peers answering through the shipped
//! sudoers rule (`sudo -n okome-validate --local --json …`). The cluster
//! file and settings are the lab's one rendering (okome_cluster::render::
//! validate_conf). Healthy → green; each injected fault → exactly the
//! expected checks red.
//!
//! Needs root, systemd-nspawn and the built packages, okome-validate's
//! included (`OKOME_DEB_DIR`); ignored in a plain `cargo test`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{Red, r, red};
use okome_cluster::render::REDIS_PASSWORD;
use okome_cluster::{Cluster, ClusterSpec};

const NODES: [&str; 3] = ["frontend-a", "frontend-b", "backend"];
/// Where the operator runs `okome-validate --cluster`.
const OPERATOR_NODE: &str = "frontend-a";

struct Lab {
    cluster: Cluster,
}

impl Lab {
    fn up() -> Lab {
        let spec = ClusterSpec::from_env(2).expect("OKOME_DEB_DIR with the packages");
        assert!(
            spec.debs
                .iter()
                .any(|d| d.to_string_lossy().contains("okome-validate_")),
            "OKOME_DEB_DIR holds no okome-validate package"
        );
        let cluster = Cluster::up(&spec).expect("cluster up");
        let lab = Lab { cluster };
        lab.install_binary_under_test();
        lab
    }

    /// The package installed /usr/bin/okome-validate with apt; the binary
    /// this test was built from replaces it (the path the shipped sudoers
    /// rule names), so a change is proven without rebuilding the package
    /// and the node trees.
    fn install_binary_under_test(&self) {
        for name in NODES {
            let pid = self.cluster.node(name).unwrap().booted().unwrap().pid1();
            let status = Command::new("nsenter")
                .args(["-t", &pid.to_string(), "-m", "-u", "-i", "-n", "-p", "--root", "--wd", "--"])
                .args(["sh", "-c", "cat > /usr/bin/okome-validate.new && chmod 755 /usr/bin/okome-validate.new && mv /usr/bin/okome-validate.new /usr/bin/okome-validate"])
                .stdin(fs::File::open(common::VALIDATE).unwrap())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "installing the binary under test on {name}"
            );
        }
    }

    /// `okome-validate --cluster --json` by the operator on frontend-a,
    /// `--wait` for what settles.
    fn validate(&self, wait: &str) -> (i32, serde_json::Value) {
        let out = self
            .cluster
            .validate_from(
                OPERATOR_NODE,
                &["--json", "--deadline", "60s", "--wait", wait],
            )
            .expect("running okome-validate on the operator's node");
        let text = String::from_utf8_lossy(&out.stdout);
        let doc = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "okome-validate --cluster --json: {e}\nstdout: {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), doc)
    }
}

/// Where a healthy `--cluster` run spends its time (printed, not asserted:
/// `cargo xtask bench validate` measures): three runs' wall time on the
/// operator's node, each peer's SSH round trip, and every node's slowest
/// checks by their `elapsed_ms`.
fn profile(lab: &Lab) {
    for run in 1..=3 {
        let started = std::time::Instant::now();
        let out = lab
            .cluster
            .validate_from(OPERATOR_NODE, &["--json", "--deadline", "60s"])
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut line = format!(
            "profile run {run}: wall {wall:.2} s (exit {:?})",
            out.status.code()
        );
        for node in doc["nodes"].as_array().unwrap() {
            let mut checks: Vec<(f64, String)> = node["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["elapsed_ms"].as_f64().unwrap_or(0.0),
                        c["id"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            checks.sort_by(|a, b| b.0.total_cmp(&a.0));
            let top: Vec<String> = checks
                .iter()
                .take(5)
                .map(|(ms, id)| format!("{id} {ms:.0} ms"))
                .collect();
            line.push_str(&format!(
                "\n  {}: {}",
                node["name"].as_str().unwrap(),
                top.join(", ")
            ));
        }
        eprintln!("{line}");
    }
}

fn set(items: &[Red]) -> BTreeSet<Red> {
    items.iter().cloned().collect()
}

fn holder(lab: &Lab) -> String {
    lab.cluster
        .wait_one_holder(Duration::from_secs(30))
        .expect("one VIP holder")
}

#[test]
#[ignore = "needs root, systemd-nspawn and OKOME_DEB_DIR (with okome-validate): the cluster lab"]
fn the_cluster_lab_green_then_each_fault_exactly() {
    let mut lab = Lab::up();
    let first = holder(&lab);
    let standby = if first == "frontend-a" {
        "frontend-b"
    } else {
        "frontend-a"
    };
    // Warm the standby through the holder's plan: traffic, then prewarm on both.
    for path in okome_cluster::tour::HOT {
        lab.cluster.get(path).unwrap();
    }
    for name in [first.as_str(), standby] {
        lab.cluster
            .node(name)
            .unwrap()
            .start_unit("okome-prewarm.service")
            .unwrap();
    }

    // Healthy: every check green (node.sd-wear waived, vcgencmd absent).
    let (code, doc) = lab.validate("2m");
    eprintln!("healthy: {doc:#}");
    assert_eq!(red(&doc), BTreeSet::new(), "{doc:#}");
    assert_eq!(code, 0);
    let statuses: BTreeSet<String> = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["id"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "cluster.vip-holder pass",
        "cluster.vip-response pass",
        "cluster.drift pass",
    ] {
        assert!(statuses.contains(want), "{statuses:?}");
    }
    // The peers answered over OpenSSH (not in-process): their node.ssh.
    let passed = common::with_status(&doc, "pass");
    for peer in ["frontend-b", "backend"] {
        assert!(passed.contains(&format!("{peer}:node.ssh")), "{passed:?}");
    }

    profile(&lab);

    // The Redis operator's password in /etc/default/okome-validate is
    // root's alone, on the backend too (the postinst tightened only probe's
    // and prewarm's, and only where an okome group exists).
    for name in NODES {
        let mode = lab
            .cluster
            .node(name)
            .unwrap()
            .sh("stat -c '%a %U:%G' /etc/default/okome-validate")
            .unwrap();
        assert_eq!(mode.trim(), "600 root:root", "{name}");
    }

    // What the operator's access allows, and what it does not: root may not
    // log in; the sudoers rule lets `pi` run the peer's exact command
    // without a password and nothing else (no --output riding along).
    let operator = lab.cluster.node(OPERATOR_NODE).unwrap();
    let b = lab.cluster.node("frontend-b").unwrap().address();
    let ssh = "ssh -o BatchMode=yes -o IdentityFile=/root/.ssh/okome -o IdentitiesOnly=yes";
    let root_login = operator.try_sh(&format!("{ssh} root@{b} true")).unwrap();
    assert!(!root_login.status.success(), "{root_login:?}");
    let allowed = operator
        .try_sh(&format!(
            "{ssh} pi@{b} sudo -n okome-validate --local --json --self frontend-b --only node.memory"
        ))
        .unwrap();
    assert!(
        String::from_utf8_lossy(&allowed.stdout).contains("\"node.memory\""),
        "{allowed:?}"
    );
    let refused = operator
        .try_sh(&format!(
            "{ssh} pi@{b} sudo -n okome-validate --local --json --self frontend-b --output /etc/okome/x"
        ))
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password is required"),
        "{refused:?}"
    );
    assert!(
        !lab.cluster
            .node("frontend-b")
            .unwrap()
            .succeeds("test -e /etc/okome/x")
            .unwrap()
    );

    // fail2ban dead on the backend.
    lab.cluster
        .node("backend")
        .unwrap()
        .stop_unit("fail2ban.service")
        .unwrap();
    let (_, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r("backend", "unit.fail2ban", "warn", "INCIDENT 9")]),
        "{doc:#}"
    );
    lab.cluster
        .node("backend")
        .unwrap()
        .start_unit("fail2ban.service")
        .unwrap();

    // Redis maxmemory ≥ RAM.
    let backend = lab.cluster.node("backend").unwrap();
    backend
        .sh(&format!(
            "redis-cli --user operator --pass {REDIS_PASSWORD} --no-auth-warning CONFIG SET maxmemory 1024gb"
        ))
        .unwrap();
    let (_, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r("backend", "redis.maxmemory", "crit", "INCIDENT 2")]),
        "{doc:#}"
    );
    backend
        .sh(&format!(
            "redis-cli --user operator --pass {REDIS_PASSWORD} --no-auth-warning CONFIG SET maxmemory 256mb"
        ))
        .unwrap();

    // A config edited on one frontend.
    let edited = lab.cluster.node(standby).unwrap();
    edited
        .sh("echo '# edited by hand' >> /etc/nginx/okome/upstream.conf")
        .unwrap();
    let (_, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r("cluster", "cluster.drift", "warn", "INCIDENT 10")]),
        "{doc:#}"
    );
    edited
        .sh("sed -i '$d' /etc/nginx/okome/upstream.conf")
        .unwrap();

    // Split brain: VRRP between the frontends dropped.
    lab.cluster.block_vrrp(true).unwrap();
    okome_cluster::cluster::wait_for("both hold the VIP", Duration::from_secs(30), || {
        Ok(lab.cluster.vip_holders()?.len() == 2)
    })
    .unwrap();
    let (_, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r("cluster", "cluster.vip-holder", "crit", "INCIDENT 3")]),
        "{doc:#}"
    );
    lab.cluster.block_vrrp(false).unwrap();
    holder(&lab);

    // Orchestrator down and the gate left open: the standby's probe stopped.
    let holder_now = holder(&lab);
    let other = if holder_now == "frontend-a" {
        "frontend-b"
    } else {
        "frontend-a"
    };
    let node = lab.cluster.node(other).unwrap();
    node.stop_unit("okome-health-probe.timer").unwrap();
    node.sh("rm -f /run/okome/orchestrator.down").unwrap();
    lab.cluster
        .node("orchestrator")
        .unwrap()
        .stop_unit(okome_cluster::cluster::STUB_UNIT)
        .unwrap();
    // The holder's probe closes its gate after its fall count (5 s timer).
    let holder_node = lab.cluster.node(&holder_now).unwrap();
    okome_cluster::cluster::wait_for("the holder's gate closed", Duration::from_secs(60), || {
        holder_node.succeeds("test -e /run/okome/orchestrator.down")
    })
    .unwrap();
    let (_, doc) = lab.validate("1s");
    // Both frontends see the orchestrator down; only the one whose probe is
    // stopped has its gate open (and its timer down); the holder's gate agrees.
    assert_eq!(
        red(&doc),
        set(&[
            r(&holder_now, "edge.orchestrator", "crit", "INCIDENT 5"),
            r(other, "edge.orchestrator", "crit", "INCIDENT 5"),
            r(other, "edge.gate", "crit", "INCIDENT 5"),
            r(other, "unit.okome-health-probe.timer", "crit", "INCIDENT 5"),
        ]),
        "{doc:#}"
    );
    lab.cluster
        .node("orchestrator")
        .unwrap()
        .start_unit(okome_cluster::cluster::STUB_UNIT)
        .unwrap();
    node.start_unit("okome-health-probe.timer").unwrap();
    // The gates reopen after the probes' rise count.
    for name in ["frontend-a", "frontend-b"] {
        let frontend = lab.cluster.node(name).unwrap();
        okome_cluster::cluster::wait_for("the gate reopened", Duration::from_secs(90), || {
            Ok(!frontend.succeeds("test -e /run/okome/orchestrator.down")?)
        })
        .unwrap();
    }

    // nginx stopped on the holder: its unit red, its header check NOT_RUN
    // (said once), the VIP on the standby, which answers.
    let holder_now = holder(&lab);
    lab.cluster
        .node(&holder_now)
        .unwrap()
        .stop_unit("nginx.service")
        .unwrap();
    // keepalived tracks the local nginx: the VIP moves to the standby.
    let standby_now = if holder_now == "frontend-a" {
        "frontend-b"
    } else {
        "frontend-a"
    };
    lab.cluster
        .wait_holder(standby_now, Duration::from_secs(30))
        .unwrap();
    let (_, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r(&holder_now, "unit.nginx", "crit", "INCIDENT 1")]),
        "{doc:#}"
    );
    assert!(
        common::with_status(&doc, "not_run").contains(&format!("{holder_now}:edge.headers")),
        "{doc:#}"
    );

    lab.cluster
        .node(&holder_now)
        .unwrap()
        .start_unit("nginx.service")
        .unwrap();

    // SSH to a peer refused: sshd stopped on the backend. One CRITICAL
    // node.ssh naming the refusal, every check of the backend NOT_RUN,
    // nothing else red.
    let backend = lab.cluster.node("backend").unwrap();
    backend.stop_unit("ssh.service").unwrap();
    let (code, doc) = lab.validate("1s");
    assert_eq!(
        red(&doc),
        set(&[r("backend", "node.ssh", "crit", "INCIDENT 4")]),
        "{doc:#}"
    );
    assert_eq!(code, 1);
    let backend_doc = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "backend")
        .unwrap();
    let checks = backend_doc["checks"].as_array().unwrap();
    assert!(
        checks[0]["observed"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{backend_doc:#}"
    );
    assert!(checks.len() > 5, "{backend_doc:#}");
    for check in &checks[1..] {
        assert_eq!(check["status"], "not_run", "{check:#}");
    }
    backend.start_unit("ssh.service").unwrap();

    // The backend powered off: no answer at all (ConnectTimeout), the same.
    lab.cluster
        .node_mut("backend")
        .unwrap()
        .power_off()
        .unwrap();
    let (_, doc) = lab.validate("1s");
    let got = red(&doc);
    assert!(
        got.contains(&r("backend", "node.ssh", "crit", "INCIDENT 4")),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|f| f.0 == "backend" && f.1 != "node.ssh"),
        "{got:#?}"
    );
}

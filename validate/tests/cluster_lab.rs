//! okome-validate on the cluster lab (issue 14): booted Debian nodes with the
//! real packages (okome-validate's own .deb among them), systemd as PID 1,
//! keepalived moving a real VIP, nginx, redis-server, fail2ban and the okome
//! timers. `okome-validate --cluster` runs from the host; its "ssh" is a
//! wrapper that enters the named node (nsenter into its PID 1) and runs the
//! peer's command there — the OpenSSH transport itself is proven on loopback
//! (tests/cluster_ssh.rs); here every check runs on a real node. Healthy →
//! green; each injected fault → exactly the expected checks red.
//!
//! Needs root, systemd-nspawn and the built packages, okome-validate's
//! included (`OKOME_DEB_DIR`); ignored in a plain `cargo test`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Red, r, red, run_json};
use okome_cluster::render::REDIS_PASSWORD;
use okome_cluster::{Cluster, ClusterSpec};

const NODES: [&str; 3] = ["frontend-a", "frontend-b", "backend"];

struct Lab {
    cluster: Cluster,
    dir: tempfile::TempDir,
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
        let dir = tempfile::Builder::new()
            .prefix("okv-cluster-")
            .tempdir()
            .unwrap();
        let lab = Lab { cluster, dir };
        lab.install_binary_under_test();
        lab.configure("");
        lab.write_wrapper();
        lab
    }

    fn address(&self, name: &str) -> String {
        self.cluster.node(name).unwrap().address()
    }

    /// The shared cluster file and each node's /etc/default/okome-validate.
    fn configure(&self, extra: &str) {
        let backend = self.address("backend");
        let mut conf = format!(
            "vip {}\norchestrator http://{}:8000/health\n",
            self.cluster.vip(),
            self.address("orchestrator")
        );
        for name in NODES {
            let role = if name == "backend" {
                "backend"
            } else {
                "frontend"
            };
            conf.push_str(&format!(
                "node {name} {role} {} ssh={name}\n",
                self.address(name)
            ));
        }
        // Containers: / is an overlay of the host's disk, no SD card to spare.
        conf.push_str("waive node.sd-wear * 2999-12-31 lab containers have no SD card\n");
        // ...and their / is the build host's disk, whose fill level is the
        // host's business (node.disk's verdicts are table-tested in judge.rs;
        // the loopback lab runs it at 100 % thresholds for the same reason).
        conf.push_str("waive node.disk * 2999-12-31 lab containers share the build host's disk\n");
        conf.push_str(extra);
        let redis_host = |name: &str| {
            if name == "backend" {
                "127.0.0.1".to_string()
            } else {
                backend.clone()
            }
        };
        for name in NODES {
            let node = self.cluster.node(name).unwrap();
            let defaults = format!(
                "OKOME_VALIDATE_REDIS_URL=redis://edge:{REDIS_PASSWORD}@{h}:6379/0\n\
                 OKOME_VALIDATE_REDIS_ADMIN_URL=redis://operator:{REDIS_PASSWORD}@{h}:6379/0\n",
                h = redis_host(name)
            );
            node.sh(&format!(
                "mkdir -p /etc/okome && cat > /etc/okome/cluster.conf <<'EOF'\n{conf}EOF\n\
                 cat > /etc/default/okome-validate <<'EOF'\n{defaults}EOF\n"
            ))
            .unwrap();
        }
        fs::write(self.dir.path().join("cluster.conf"), conf).unwrap();
    }

    /// The package installed /usr/bin/okome-validate with apt; the peers run
    /// the binary this test was built from (/usr/local/bin), so a change is
    /// proven without rebuilding the package and the node trees.
    fn install_binary_under_test(&self) {
        for name in NODES {
            let pid = self.cluster.node(name).unwrap().booted().unwrap().pid1();
            let status = Command::new("nsenter")
                .args(["-t", &pid.to_string(), "-m", "-u", "-i", "-n", "-p", "--root", "--wd", "--"])
                .args(["sh", "-c", "cat > /usr/local/bin/okome-validate && chmod 755 /usr/local/bin/okome-validate"])
                .stdin(fs::File::open(common::VALIDATE).unwrap())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "installing the binary under test on {name}"
            );
        }
    }

    /// okome-validate's `--ssh`: `… DEST COMMAND` → the command inside DEST.
    fn write_wrapper(&self) {
        let mut map = String::new();
        for name in NODES {
            if let Ok(booted) = self.cluster.node(name).unwrap().booted() {
                map.push_str(&format!("{name} {}\n", booted.pid1()));
            }
        }
        fs::write(self.dir.path().join("pids"), map).unwrap();
        let script = format!(
            "#!/bin/bash\n# okv: ssh to a cluster-lab node = enter its namespaces\n\
             [[ \" $* \" == *' -O exit '* ]] && exit 0\n\
             args=(\"$@\"); n=${{#args[@]}}; cmd=${{args[n-1]}}; dest=${{args[n-2]}}\n\
             pid=$(awk -v d=\"$dest\" '$1==d {{print $2}}' {map})\n\
             [ -n \"$pid\" ] || {{ echo \"ssh: connect to host $dest port 22: Connection refused\" >&2; exit 255; }}\n\
             exec nsenter -t \"$pid\" -m -u -i -n -p --root --wd -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \"$cmd\"\n",
            map = self.dir.path().join("pids").display()
        );
        let path = self.wrapper();
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn wrapper(&self) -> PathBuf {
        self.dir.path().join("ssh")
    }

    /// `okome-validate --cluster` from the host, `--wait` for what settles.
    fn validate(&self, wait: &str) -> (i32, serde_json::Value) {
        let mut command = Command::new(common::VALIDATE);
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args([
                "--cluster",
                "--self",
                "operator",
                "--deadline",
                "60s",
                "--wait",
                wait,
            ])
            .args(["--remote-command", "/usr/local/bin/okome-validate"])
            .arg("--config")
            .arg(self.dir.path().join("cluster.conf"))
            .env("OKOME_VALIDATE_SSH", self.wrapper());
        run_json(&mut command)
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

    // SSH to a peer refused: the powered-off backend.
    lab.cluster
        .node_mut("backend")
        .unwrap()
        .power_off()
        .unwrap();
    lab.write_wrapper();
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

//! [`Cluster`] and [`Node`]: the lab's nodes brought up, driven and torn
//! down — the one node API the tour, the end-to-end tests and the validate
//! and chaos tests share (run a command, read a journal, kill or stop a
//! unit, cut or restore a link, read the VIP holder, power a node off and
//! boot it again).
//!
//! Bring-up: the cached role trees (roles.rs), the switch and one
//! namespace per node (net.rs), an overlay per node with its configs
//! rendered from the installed (shipped) files (render.rs), then every
//! node booted at once. The cluster is up when exactly one frontend holds
//! the VIP and the client gets an answer through it.
//!
//! Teardown (drop): every node stopped (in parallel), its overlay
//! unmounted and removed, every namespace deleted (the veths and the bridge
//! go with them). [`leftovers`] lists what a run left behind; a test
//! asserts it is empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::Result;
use crate::booted::{self, BootedNode, Network, Rootfs};
use crate::net::{self, Netns, Switch};
use crate::render::{self, Member, Role};
use crate::roles;

/// What to bring up.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// How many frontends (2 to [`render::MAX_FRONTENDS`]).
    pub frontends: usize,
    /// Every okome amd64/`all` package to install (each role takes its
    /// own: roles::debs_for). A later package (okome-validate, …) added
    /// here lands on the nodes with the rest.
    pub debs: Vec<PathBuf>,
}

/// The variable that names the directory of built packages for the tests
/// (`cargo xtask test` and `cargo xtask lab` set it).
pub const DEB_DIR_VAR: &str = "OKOME_DEB_DIR";

impl ClusterSpec {
    /// `frontends` frontends and every `*_amd64.deb` / `*_all.deb` in
    /// `$OKOME_DEB_DIR`.
    pub fn from_env(frontends: usize) -> Result<ClusterSpec> {
        let dir = std::env::var_os(DEB_DIR_VAR).ok_or_else(|| {
            format!(
                "{DEB_DIR_VAR} is not set: run through `cargo xtask test` (it builds the packages)"
            )
        })?;
        Ok(ClusterSpec {
            frontends,
            debs: debs_in(Path::new(&dir))?,
        })
    }
}

/// The okome amd64 and `all` packages in `dir` (revision-1 builds only:
/// the booted suite's upgrade packages live in another directory).
pub fn debs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("okome-")
                && (name.ends_with("_amd64.deb") || name.ends_with("_all.deb"))
        })
        .collect();
    debs.sort();
    if debs.is_empty() {
        return Err(format!("no okome amd64/all packages in {}", dir.display()).into());
    }
    Ok(debs)
}

/// One node: its namespace, its tree and, while powered on, its container.
/// Fields drop in order: the container, then the tree, then the namespace.
#[derive(Debug)]
pub struct Node {
    booted: Option<BootedNode>,
    rootfs: Rootfs,
    netns: Netns,
    member: Member,
}

/// How long a unit or the cluster may take to reach a wanted state.
pub const SETTLE: Duration = Duration::from_secs(60);

impl Node {
    pub fn name(&self) -> &str {
        &self.member.name
    }
    pub fn role(&self) -> Role {
        self.member.role
    }
    /// Its lab address (10.213.86.x on `eth0`).
    pub fn address(&self) -> String {
        self.member.address()
    }
    /// The namespace (for nft/ip from outside: `ip netns exec NAME …`).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
    /// A file of the node's tree on the host (write before boot, read any
    /// time).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.rootfs.path(inside)
    }
    /// Whether it runs (not powered off).
    pub fn is_up(&self) -> bool {
        self.booted.is_some()
    }

    /// The running container; an error while powered off.
    pub fn booted(&self) -> Result<&BootedNode> {
        self.booted
            .as_ref()
            .ok_or_else(|| format!("node {} is powered off", self.name()).into())
    }

    /// `sh -ec SCRIPT` on the node; non-zero is an error with its output.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.booted()?.sh(script)
    }
    /// `sh -ec SCRIPT` on the node, output whatever its status.
    pub fn try_sh(&self, script: &str) -> Result<std::process::Output> {
        self.booted()?.try_sh(script)
    }
    /// What `script` printed on the node (stdout, then stderr), whatever
    /// its status, or why it could not run: for diagnoses. Every command of
    /// it runs (`set +e`: one missing file must not hide the rest).
    pub fn seen(&self, script: &str) -> String {
        self.try_sh(&format!("set +e\n{script}"))
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|e| e.to_string())
    }
    /// Whether `script` exits 0 on the node (not echoed: for polling).
    pub fn succeeds(&self, script: &str) -> Result<bool> {
        Ok(self
            .booted()?
            .try_command(&["sh", "-ec", script])?
            .status
            .success())
    }
    /// `systemctl ARGS…`.
    pub fn systemctl(&self, args: &[&str]) -> Result<String> {
        self.booted()?.systemctl(args)
    }
    /// `systemctl show -p …` values, in the order asked.
    pub fn show(&self, unit: &str, properties: &[&str]) -> Result<Vec<String>> {
        self.booted()?.show(unit, properties)
    }
    /// `unit`'s ActiveState.
    pub fn active_state(&self, unit: &str) -> Result<String> {
        Ok(self.show(unit, &["ActiveState"])?.remove(0))
    }
    /// The journal of `unit` since `since` (`-o short-unix`).
    pub fn journal(&self, unit: &str, since: SystemTime) -> Result<String> {
        self.booted()?.journal(unit, since)
    }
    /// Journal lines tagged `tag` (`journalctl -t`) since `since`.
    pub fn journal_tag(&self, tag: &str, since: SystemTime) -> Result<String> {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| "a time before 1970")?
            .as_secs();
        self.sh(&format!(
            "journalctl --no-pager -q -o short-unix -t {} --since @{since}",
            booted::shell_quote(tag)
        ))
    }
    /// `systemctl kill -s SIGNAL UNIT` (every process of the unit):
    /// `SIGKILL` for a crash, `SIGSTOP` for a hang, `SIGCONT` to end it.
    pub fn kill_unit(&self, unit: &str, signal: &str) -> Result {
        self.systemctl(&["kill", "-s", signal, unit]).map(drop)
    }
    pub fn stop_unit(&self, unit: &str) -> Result {
        self.systemctl(&["stop", unit]).map(drop)
    }
    pub fn start_unit(&self, unit: &str) -> Result {
        self.systemctl(&["start", unit]).map(drop)
    }
    pub fn restart_unit(&self, unit: &str) -> Result {
        self.systemctl(&["restart", unit]).map(drop)
    }
    /// Whether `address` is on this node's `eth0` now (keepalived's VIP).
    pub fn holds(&self, address: &str) -> Result<bool> {
        let out = self
            .netns
            .exec_ok(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])?;
        Ok(out
            .split_whitespace()
            .any(|word| word.split('/').next() == Some(address)))
    }
    /// keepalived's own state of its instance (MASTER / BACKUP / FAULT),
    /// from its last transition in the journal.
    pub fn vrrp_state(&self) -> Result<String> {
        let text = self.journal_tag("okome-keepalived", SystemTime::UNIX_EPOCH)?;
        Ok(text
            .lines()
            .rev()
            .find_map(|line| {
                line.split_whitespace()
                    .skip_while(|w| *w != "OKOME_VIP")
                    .nth(1)
            })
            .unwrap_or("none")
            .to_string())
    }

    /// An orderly power-off (systemd shuts down; keepalived says goodbye),
    /// then the NIC goes dark with it: link down, addresses gone (a dead
    /// container alone would leave its namespace holding the VIP).
    pub fn power_off(&mut self) -> Result {
        drop(self.booted.take());
        self.nic(false)
    }
    /// A power cut: the container's init SIGKILLed, the NIC dark.
    pub fn power_cut(&mut self) -> Result {
        if let Some(node) = self.booted.take() {
            node.power_cut()?;
        }
        self.nic(false)
    }
    /// Boot the node again on its tree (what it wrote survives, as on a
    /// Pi's card), its NIC up with its own address only; no-op if it runs.
    /// Call it on a thread that outlives the node (nspawn's parent-death
    /// signal follows the spawning thread).
    pub fn boot(&mut self) -> Result {
        if self.booted.is_none() {
            self.nic(true)?;
            self.booted = Some(BootedNode::boot(
                &self.rootfs,
                Network::Namespace(self.netns.path()),
            )?);
        }
        Ok(())
    }

    fn nic(&self, on: bool) -> Result {
        if on {
            let has = self
                .netns
                .exec_ok(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])?;
            if !has.contains(&format!(" {}/", self.address())) {
                self.netns.ip(&[
                    "addr",
                    "add",
                    &format!("{}/24", self.address()),
                    "dev",
                    "eth0",
                ])?;
            }
            self.netns.ip(&["link", "set", "eth0", "up"])
        } else {
            self.netns.ip(&["link", "set", "eth0", "down"])?;
            self.netns.ip(&["addr", "flush", "dev", "eth0"])
        }
    }
}

/// One HTTP answer as the client saw it.
#[derive(Debug, Clone)]
pub struct Response {
    /// 0 when no answer came (connection refused or timed out).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `X-Cache-Status`, or "-".
    pub fn cache(&self) -> &str {
        self.header("x-cache-status").unwrap_or("-")
    }
    /// `X-OKOME-Node`, or "-".
    pub fn node(&self) -> &str {
        self.header("x-okome-node").unwrap_or("-")
    }
}

/// The cluster. Dropping it tears everything down.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
    switch: Option<Switch>,
    /// Seconds from `up` to a VIP answering.
    pub up_seconds: f64,
    /// The machine-wide lab lock, released (by the kernel, even on SIGKILL)
    /// after the drop has torn everything down.
    _lock: std::fs::File,
}

/// Where the lab's lock lives: one bridge name and one address plan per
/// machine, so two labs (a test run and `cargo xtask lab`, two CI jobs)
/// take turns instead of tearing down each other's switch.
const LOCK: &str = "/run/okome-cluster.lock";

/// Take the lab lock at `path`, waiting (and saying so) while another lab
/// holds it.
fn lock_the_lab(path: &str) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let try_lock = |op| unsafe { libc::flock(file.as_raw_fd(), op) };
    if try_lock(libc::LOCK_EX | libc::LOCK_NB) != 0 {
        eprintln!("okome-cluster: another cluster lab holds {path}; waiting for it");
        if try_lock(libc::LOCK_EX) != 0 {
            return Err(format!("{path}: {}", std::io::Error::last_os_error()).into());
        }
    }
    Ok(file)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the nodes in parallel (an orderly shutdown takes a second or
        // two each), then the switch.
        let nodes = std::mem::take(&mut self.nodes);
        std::thread::scope(|scope| {
            for node in nodes {
                scope.spawn(move || drop(node));
            }
        });
        drop(self.switch.take());
    }
}

impl Cluster {
    /// Bring the cluster up: trees (cached), network, configs, boot, and
    /// wait until one frontend holds the VIP and answers through it.
    pub fn up(spec: &ClusterSpec) -> Result<Cluster> {
        let lock = lock_the_lab(LOCK)?;
        let started = Instant::now();
        let members = render::plan(spec.frontends)?;
        let trees = roles::trees(&spec.debs)?;
        let prepared = Instant::now();
        let switch = Switch::create()?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            switch: Some(switch),
            up_seconds: 0.0,
            _lock: lock,
        };
        for member in &members {
            let netns = cluster.switch()?.plug(&member.name, &member.address())?;
            let rootfs = Rootfs::overlay(trees.for_role(member.role), &member.name)?;
            render_node(&rootfs, member, &members)?;
            cluster.nodes.push(Node {
                booted: None,
                rootfs,
                netns,
                member: member.clone(),
            });
        }
        // The operator's access, as a site sets it up: a key pair, and on
        // every okome node its own host keys, the operator's key and the
        // known_hosts pinned from those host keys.
        let operator = operator_key()?;
        let mut pinned = Vec::new();
        for node in cluster.nodes.iter().filter(|n| is_okome(n.role())) {
            pinned.push((node.address(), host_keys(&node.rootfs)?));
        }
        let known_hosts = render::known_hosts(&pinned);
        for node in cluster.nodes.iter().filter(|n| is_okome(n.role())) {
            render_operator(
                &node.rootfs,
                &node.member,
                &members,
                &operator,
                &known_hosts,
            )?;
        }
        // Boot every node at once: nspawn started here (its parent-death
        // signal follows the thread that spawns it: this one, which lives
        // as long as the cluster), the waits in parallel.
        let mut starting = Vec::new();
        for node in &cluster.nodes {
            starting.push(BootedNode::start(
                &node.rootfs,
                Network::Namespace(node.netns.path()),
            )?);
        }
        let errors: Vec<String> = std::thread::scope(|scope| {
            let jobs: Vec<_> = starting
                .iter_mut()
                .map(|booted| {
                    scope.spawn(move || {
                        booted
                            .wait_until_booted()
                            .map_err(|e| format!("{}: {e}", booted.label()))
                    })
                })
                .collect();
            jobs.into_iter()
                .filter_map(|job| {
                    job.join()
                        .unwrap_or_else(|_| Err("boot panicked".into()))
                        .err()
                })
                .collect()
        });
        for (node, booted) in cluster.nodes.iter_mut().zip(starting) {
            node.booted = Some(booted);
        }
        if !errors.is_empty() {
            return Err(format!("booting the cluster: {}", errors.join("; ")).into());
        }
        let errors: Vec<String> = std::thread::scope(|scope| {
            let jobs: Vec<_> = cluster
                .nodes
                .iter()
                .filter(|n| is_okome(n.role()))
                .map(|node| {
                    let public = &operator.public;
                    scope.spawn(move || {
                        arm_operator(node, public).map_err(|e| format!("{}: {e}", node.name()))
                    })
                })
                .collect();
            jobs.into_iter()
                .filter_map(|job| {
                    job.join()
                        .unwrap_or_else(|_| Err("arming sshd panicked".into()))
                        .err()
                })
                .collect()
        });
        if !errors.is_empty() {
            return Err(format!("the operator's login: {}", errors.join("; ")).into());
        }
        cluster.wait_ready()?;
        cluster.up_seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "okome-cluster: up in {:.1} s ({:.1} s of it the trees)",
            cluster.up_seconds,
            (prepared - started).as_secs_f64()
        );
        Ok(cluster)
    }

    fn switch(&self) -> Result<&Switch> {
        self.switch
            .as_ref()
            .ok_or_else(|| "the switch is gone".into())
    }

    /// What a failed bring-up needs to be understood: each node's failed
    /// units, and each frontend's keepalived and nginx state and journal.
    pub fn diagnose(&self) -> String {
        let mut text = String::new();
        for node in self.nodes.iter().filter(|n| n.is_up()) {
            let script = match node.role() {
                Role::Frontend => {
                    "systemctl --failed --no-legend --plain; systemctl is-active keepalived nginx; \
                     ip -o -4 addr show dev eth0; journalctl -q --no-pager -u keepalived -n 12"
                }
                _ => "systemctl --failed --no-legend --plain",
            };
            let out = node.seen(script);
            text.push_str(&format!("--- {}:\n{}\n", node.name(), out.trim_end()));
        }
        text
    }

    fn wait_ready(&self) -> Result {
        self.wait_ready_inner()
            .map_err(|e| format!("{e}\n{}", self.diagnose()).into())
    }

    fn wait_ready_inner(&self) -> Result {
        let holder = self.wait_one_holder(SETTLE)?;
        wait_for(
            &format!("an answer through the VIP from {holder}"),
            SETTLE,
            || Ok(self.get("/health")?.status == 200),
        )?;
        // The backend serves the plan store before anyone warms.
        let backend = self.node("backend")?;
        wait_for("redis-server on the backend", SETTLE, || {
            backend.succeeds(&format!(
                "redis-cli -h {} --user operator --pass {} --no-auth-warning PING | grep -qx PONG",
                backend.address(),
                render::REDIS_PASSWORD
            ))
        })
    }

    /// Every node, in plan order (frontends first).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| format!("no node {name:?}").into())
    }
    pub fn node_mut(&mut self, name: &str) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .ok_or_else(|| format!("no node {name:?}").into())
    }
    pub fn frontends(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role() == Role::Frontend)
    }
    /// The VIP (10.213.86.18).
    pub fn vip(&self) -> String {
        render::vip()
    }
    /// The frontends holding the VIP now (powered-off nodes hold nothing).
    pub fn vip_holders(&self) -> Result<Vec<String>> {
        let vip = self.vip();
        let mut holders = Vec::new();
        for node in self.frontends() {
            if node.holds(&vip)? {
                holders.push(node.name().to_string());
            }
        }
        Ok(holders)
    }
    /// The single VIP holder, None when no node or several hold it.
    pub fn vip_holder(&self) -> Result<Option<String>> {
        let holders = self.vip_holders()?;
        Ok((holders.len() == 1).then(|| holders[0].clone()))
    }
    /// Wait until exactly one frontend holds the VIP; its name.
    pub fn wait_one_holder(&self, deadline: Duration) -> Result<String> {
        let mut last = Vec::new();
        wait_for("exactly one VIP holder", deadline, || {
            last = self.vip_holders()?;
            Ok(last.len() == 1)
        })
        .map_err(|e| format!("{e} (holders: {last:?})"))?;
        Ok(last.remove(0))
    }
    /// Wait until `name` holds the VIP alone.
    pub fn wait_holder(&self, name: &str, deadline: Duration) -> Result {
        let mut last = Vec::new();
        wait_for(&format!("{name} holding the VIP alone"), deadline, || {
            last = self.vip_holders()?;
            Ok(last == [name])
        })
        .map_err(|e| format!("{e} (holders: {last:?})").into())
    }

    /// Pull `name`'s cable (its switch port down) or plug it back.
    pub fn cut_link(&self, name: &str) -> Result {
        self.node(name)?;
        self.switch()?.set_port(name, false)
    }
    pub fn restore_link(&self, name: &str) -> Result {
        self.node(name)?;
        self.switch()?.set_port(name, true)
    }
    /// Drop VRRP in the switch (both directions, every frontend): the
    /// split brain. `false` lets it through again.
    pub fn block_vrrp(&self, block: bool) -> Result {
        self.switch()?.block_vrrp(block)
    }

    /// `okome-validate --cluster ARGS` run by the operator on node `from`
    /// (`sudo okome-validate --cluster`: root there), with the lab's
    /// /etc/okome/cluster.conf and /etc/default/okome-validate: every peer
    /// over OpenSSH as `pi`, its key, the pinned known_hosts, the peers'
    /// `sudo -n okome-validate --local --json`. Output whatever its status.
    pub fn validate_from(&self, from: &str, args: &[&str]) -> Result<std::process::Output> {
        let mut argv = vec!["okome-validate", "--cluster"];
        argv.extend_from_slice(args);
        self.node(from)?.booted()?.try_command(&argv)
    }

    /// The steady state a chaos run's preflight wants, asked from `from`:
    /// the hot paths through the VIP, prewarm on the holder and then the
    /// standbys (they warm from the holder's plan), then `okome-validate
    /// --cluster --wait 2m` on `from`; its output, green or not.
    pub fn settle_green(&self, from: &str) -> Result<std::process::Output> {
        for path in crate::tour::HOT {
            self.get(path)?;
        }
        let holder = self.wait_one_holder(Duration::from_secs(30))?;
        let standbys = self.frontends().filter(|n| n.name() != holder);
        for node in std::iter::once(self.node(&holder)?).chain(standbys) {
            let _ = node.start_unit("okome-prewarm.service");
        }
        self.node(from)?
            .try_sh("okome-validate --cluster --wait 2m")
    }

    /// GET `path` through the VIP from the client node.
    pub fn get(&self, path: &str) -> Result<Response> {
        self.get_from("client", &format!("http://{}{path}", self.vip()), &[])
    }
    /// GET `url` with curl from node `from` (2 s deadline), extra
    /// `headers` as `Name: value`.
    pub fn get_from(&self, from: &str, url: &str, headers: &[&str]) -> Result<Response> {
        let mut script = String::from(
            "curl -s -m 2 -A 'Mozilla/5.0 (okome lab client)' -D /dev/stderr -o /dev/stdout",
        );
        for header in headers {
            script.push_str(" -H ");
            script.push_str(&booted::shell_quote(header));
        }
        script.push(' ');
        script.push_str(&booted::shell_quote(url));
        let out = self
            .node(from)?
            .booted()?
            .try_command(&["sh", "-c", &script])?;
        Ok(parse_response(
            &String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }
}

/// curl's `-D` dump (the last response's status line and headers).
fn parse_response(head: &str, body: String) -> Response {
    let mut status = 0;
    let mut headers = Vec::new();
    for line in head.lines() {
        let line = line.trim_end();
        if line.starts_with("HTTP/") {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            headers.clear();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Poll `probe` every 200 ms until it holds or `deadline` passes.
pub fn wait_for(what: &str, deadline: Duration, mut probe: impl FnMut() -> Result<bool>) -> Result {
    let started = Instant::now();
    loop {
        if probe()? {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(format!("{what}: not within {} s", deadline.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The stub orchestrator listening on `listen` (port 8000): 200 everywhere
/// with `Cache-Control: public, max-age=600` (`?max_age=N` sets N),
/// `/health` 200 `ok` (503 while `/run/okome-stub/down` exists); each
/// request logged to `/run/okome-stub/requests.log` with its Host and
/// User-Agent. A hang is `SIGSTOP` to its unit: the kernel still accepts
/// connections, nothing answers. The cluster lab's orchestrator node and
/// the booted suite's frontend (on loopback) run it.
pub fn stub_orchestrator(listen: &str) -> String {
    format!(
        r#"import http.server, os, urllib.parse
DOWN = "/run/okome-stub/down"
LOG = "/run/okome-stub/requests.log"
class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self): self.answer(True)
    def do_HEAD(self): self.answer(False)
    def answer(self, with_body):
        with open(LOG, "a") as log:
            log.write("%s %s host=%s ua=%s\n" % (self.command, self.path, self.headers.get("Host"), self.headers.get("User-Agent")))
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/health":
            code, body = (503, b"down\n") if os.path.exists(DOWN) else (200, b"ok\n")
            cache = "no-store"
        else:
            age = urllib.parse.parse_qs(url.query).get("max_age", ["600"])[0]
            code, body, cache = 200, ("stub " + self.path + "\n").encode(), "public, max-age=" + age
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if with_body:
            self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("{listen}", 8000), Stub).serve_forever()
"#
    )
}

/// The stub's unit on the orchestrator node.
pub const STUB_UNIT: &str = "okome-stub-orchestrator.service";

const STUB_SERVICE: &str = "[Unit]
Description=OKOME lab: stub orchestrator on :8000
After=network.target

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/okome-lab/stub.py
RuntimeDirectory=okome-stub
Restart=on-failure

[Install]
WantedBy=multi-user.target
";

/// Write `text` to `inside` of the tree (a new file 0644).
fn write(rootfs: &Rootfs, inside: &str, text: &str) -> Result {
    let path = rootfs.path(inside);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn read(rootfs: &Rootfs, inside: &str) -> Result<String> {
    let path = rootfs.path(inside);
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{} (is the package installed?): {e}", path.display()).into())
}

/// The node's configs, from the files its packages installed (= the
/// shipped ones) through the address table, before it boots.
fn render_node(rootfs: &Rootfs, me: &Member, members: &[Member]) -> Result {
    let table = render::table(members);
    let frontends: Vec<Member> = members
        .iter()
        .filter(|m| m.role == Role::Frontend)
        .cloned()
        .collect();
    let backend = members
        .iter()
        .find(|m| m.role == Role::Backend)
        .ok_or("no backend in the plan")?;
    match me.role {
        Role::Frontend => {
            let index = frontends
                .iter()
                .position(|f| f == me)
                .ok_or("frontend not in the plan")?;
            let master = read(rootfs, "/etc/keepalived/okome/keepalived-master.conf")?;
            let backup = read(rootfs, "/etc/keepalived/okome/keepalived-backup.conf")?;
            write(
                rootfs,
                "/etc/keepalived/keepalived.conf",
                &render::keepalived(&master, &backup, index, &frontends, &table),
            )?;
            let upstream = "/etc/nginx/okome/upstream.conf";
            let text = render::upstream(&read(rootfs, upstream)?, &frontends, &table);
            std::fs::write(rootfs.path(upstream), text)?;
            // okome-frontend.conf is left as shipped: its X-OKOME-Node is
            // nginx's $hostname, the /etc/hostname written below.
            let probe = "/etc/default/okome-health-probe";
            let text = render::set_default(
                &read(rootfs, probe)?,
                "OKOME_HEALTH_PROBE_URL",
                None,
                &table,
            );
            let text =
                render::set_default(&text, "OKOME_HEALTH_PROBE_NODE", Some(&me.name), &table);
            std::fs::write(rootfs.path(probe), text)?;
            let prewarm = "/etc/default/okome-prewarm";
            let mut text = read(rootfs, prewarm)?;
            for key in ["OKOME_PREWARM_HOST", "OKOME_PREWARM_VIP"] {
                text = render::set_default(&text, key, None, &table);
            }
            let redis = format!(
                "redis://edge:{}@{}:6379/0",
                render::REDIS_PASSWORD,
                backend.address()
            );
            text = render::set_default(&text, "OKOME_PREWARM_REDIS", Some(&redis), &table);
            std::fs::write(rootfs.path(prewarm), text)?;
        }
        Role::Backend => {
            let conf = "/etc/redis/okome.conf";
            let text = render::substitute(&read(rootfs, conf)?, &table);
            std::fs::write(rootfs.path(conf), text)?;
        }
        Role::Orchestrator => {
            write(
                rootfs,
                "/usr/local/lib/okome-lab/stub.py",
                &stub_orchestrator("0.0.0.0"),
            )?;
            write(
                rootfs,
                &format!("/etc/systemd/system/{STUB_UNIT}"),
                STUB_SERVICE,
            )?;
            let wants = rootfs.path("/etc/systemd/system/multi-user.target.wants");
            std::fs::create_dir_all(&wants)?;
            std::os::unix::fs::symlink(
                format!("/etc/systemd/system/{STUB_UNIT}"),
                wants.join(STUB_UNIT),
            )?;
        }
        Role::Client => {}
    }
    // Its own name: the tree's /etc/hostname (the build host's) would win
    // over nspawn's --hostname, and every node would publish, log and be
    // checked under one name.
    write(rootfs, "/etc/hostname", &format!("{}\n", me.name))?;
    Ok(())
}

/// Whether a node runs okome's packages (and sshd, and okome-validate).
fn is_okome(role: Role) -> bool {
    matches!(role, Role::Frontend | Role::Backend)
}

/// The operator's ed25519 key pair, new for each lab.
#[derive(Debug)]
struct OperatorKey {
    private: String,
    public: String,
}

fn operator_key() -> Result<OperatorKey> {
    let dir = std::env::temp_dir().join(format!("okome-cluster-{}-operator", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("okome");
    let made = crate::cmd::run(
        std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "okome-lab-operator",
                "-f",
            ])
            .arg(&key),
    )
    .and_then(|()| {
        Ok(OperatorKey {
            private: std::fs::read_to_string(&key)?,
            public: std::fs::read_to_string(key.with_extension("pub"))?,
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    made
}

/// The node's own host keys (the role tree's were made once, at install,
/// and would be every frontend's: a site's Pis each make theirs at first
/// boot); its ed25519 public key.
fn host_keys(rootfs: &Rootfs) -> Result<String> {
    let dir = rootfs.path("/etc/ssh");
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(entry.path())?;
        }
    }
    crate::cmd::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-A", "-f"])
            .arg(rootfs.root()),
    )?;
    read(rootfs, "/etc/ssh/ssh_host_ed25519_key.pub")
}

/// What the operator has on every okome node: the private key (for
/// `sudo okome-validate --cluster` from there), the pinned known_hosts,
/// the cluster file and okome-validate's settings.
fn render_operator(
    rootfs: &Rootfs,
    me: &Member,
    members: &[Member],
    operator: &OperatorKey,
    known_hosts: &str,
) -> Result {
    use std::os::unix::fs::PermissionsExt;
    write(rootfs, render::OPERATOR_KEY, &operator.private)?;
    std::fs::set_permissions(
        rootfs.path(render::OPERATOR_KEY),
        std::fs::Permissions::from_mode(0o600),
    )?;
    std::fs::set_permissions(
        rootfs.path("/root/.ssh"),
        std::fs::Permissions::from_mode(0o700),
    )?;
    write(
        rootfs,
        &format!("{}.pub", render::OPERATOR_KEY),
        &operator.public,
    )?;
    write(rootfs, "/root/.ssh/known_hosts", known_hosts)?;
    // Root's ssh uses the operator's key for every peer (okome-validate's
    // settings name it too; okome-chaos's peer check runs plain ssh).
    write(
        rootfs,
        "/root/.ssh/config",
        &format!(
            "IdentityFile {}\nIdentitiesOnly yes\n",
            render::OPERATOR_KEY
        ),
    )?;
    // Lab only: no pam_systemd in the PAM session stack. In these
    // containers, on the loaded 2-core build machine, a login now and then
    // hung after "session opened" — pam_systemd waiting for logind to
    // start the user's systemd --user — until ssh's keepalive gave up
    // ("Timeout, server not responding": node.ssh CRITICAL, the chaos
    // preflight red). A Pi's logind does not stall like that; sshd, its
    // hardening and the rest of the PAM stack stay as shipped.
    let session = "/etc/pam.d/common-session";
    if rootfs.path(session).exists() {
        let text = read(rootfs, session)?;
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("pam_systemd.so"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(rootfs.path(session), kept)?;
    }
    write(
        rootfs,
        "/etc/okome/cluster.conf",
        &render::validate_conf(members),
    )?;
    let defaults = "/etc/default/okome-validate";
    if rootfs.path(defaults).exists() {
        let text = render::validate_defaults(&read(rootfs, defaults)?, me, members);
        std::fs::write(rootfs.path(defaults), text)?;
    }
    Ok(())
}

/// The site's admin login on a booted node: `pi` in group sudo with the
/// operator's public key, then what okome-node's install says to do next
/// (`dpkg-reconfigure okome-node`): it arms the shipped sshd hardening —
/// keys only, no root login — and reloads sshd. Checked with `sshd -T`.
fn arm_operator(node: &Node, public: &str) -> Result {
    let user = render::OPERATOR;
    let out = node.sh(&format!(
        "id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo {user}
         install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
         printf '%s\\n' {key} > /home/{user}/.ssh/authorized_keys
         chown {user}:{user} /home/{user}/.ssh/authorized_keys
         chmod 0600 /home/{user}/.ssh/authorized_keys
         timeout 60 sh -c 'until systemctl is-active -q ssh.service; do sleep 0.2; done'
         dpkg-reconfigure okome-node 2>&1",
        key = booted::shell_quote(public.trim())
    ))?;
    if !out.contains("armed the sshd hardening") || !out.contains("reloaded sshd") {
        return Err(format!("okome-node did not arm and reload sshd: {out}").into());
    }
    // pam_nologin refuses every login but root's while /run/nologin exists
    // (tmpfiles writes it at boot, systemd-user-sessions removes it): the
    // operator's first ssh must not meet it.
    let sessions = node.try_sh(
        "timeout 30 sh -c 'until systemctl is-active -q systemd-user-sessions.service \
         && [ ! -e /run/nologin ]; do sleep 0.2; done'",
    )?;
    if !sessions.status.success() {
        let seen = node.seen(
            "date; ls -l --full-time /run/nologin /etc/nologin; cat /run/nologin; \
                 systemctl is-system-running; systemctl list-jobs --no-pager; \
                 systemctl show -p ActiveState -p SubState -p ActiveEnterTimestamp \
                 -p InactiveEnterTimestamp systemd-user-sessions.service; \
                 journalctl -b --no-pager -o short-precise | grep -i -e user-sessions \
                 -e tmpfiles -e nologin -e shutdown -e 'Startup finished' | tail -n 30",
        );
        // The cause seen so far (systemd-user-sessions lost its cgroup race
        // at boot) is healed by the boot wait (`BootedNode::wait_until_booted`);
        // anything else is an error, with what the node shows.
        return Err(format!(
            "logins refused on {} 30 s after boot (pam_nologin):\n{seen}",
            node.name()
        )
        .into());
    }
    let settings = node.sh("sshd -T")?;
    for want in [
        "passwordauthentication no",
        "permitrootlogin no",
        "authenticationmethods publickey",
    ] {
        if !settings.lines().any(|l| l == want) {
            return Err(format!("sshd -T lacks {want:?} after arming").into());
        }
    }
    Ok(())
}

/// What runs of this harness left behind: namespaces, overlay trees,
/// containers (nspawn processes on our trees), by name. Empty after a
/// clean teardown.
pub fn leftovers(pid: u32) -> Vec<String> {
    let mut left: Vec<String> = net::namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{}{pid}-", net::PREFIX)))
        .map(|n| format!("namespace {n}"))
        .collect();
    let prefix = format!("okome-booted-{pid}-");
    if let Ok(entries) = std::fs::read_dir("/var/tmp") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                left.push(format!("tree /var/tmp/{name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.starts_with("systemd-nspawn") && cmdline.contains(&prefix) {
                left.push(format!(
                    "process {} {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_dumps_give_the_last_response() {
        let r = parse_response(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Cache-Status: HIT\r\nX-OKOME-Node: frontend-a\r\n\r\n",
            "body".into(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.cache(), "HIT");
        assert_eq!(r.node(), "frontend-a");
        assert_eq!(parse_response("", String::new()).status, 0);
    }

    #[test]
    fn a_second_lab_waits_for_the_first_to_let_go() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("okome-lab-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock").to_string_lossy().into_owned();
        let first = lock_the_lab(&path).unwrap();
        let released = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let lock = lock_the_lab(&path).unwrap();
                (released.load(Ordering::SeqCst), lock)
            });
            std::thread::sleep(Duration::from_millis(200));
            released.store(true, Ordering::SeqCst);
            drop(first);
            let (saw_release, _lock) = second.join().unwrap();
            assert!(
                saw_release,
                "the second lab got the lock while the first held it"
            );
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A booted Debian 12 with systemd as PID 1, inside `systemd-nspawn`: the
//! harness xtask's booted suite and the cluster lab (cluster.rs) run the
//! real packages on, because sandboxing (`ProtectSystem=strict`,
//! `PrivateUsers`, `RuntimeDirectory`), timers, maintainer scripts that talk
//! to systemd and journald-only logging exist only where systemd runs.
//!
//! Three pieces, usable alone:
//! - [`RootfsSpec`] → a debootstrapped bookworm tree, cached as a tarball
//!   under /var/cache/okome-ci/booted per ISO week and per package list (the
//!   same cache rules as chroot.rs). The tree carries apt lists and the
//!   downloaded `.deb`s of the packages the okome packages depend on, but
//!   not installed: a container boots with `--private-network` (no route
//!   out), and `apt install ./okome-*.deb` inside must find everything
//!   locally, yet still install and start nginx, fail2ban, … as on a node.
//! - [`Rootfs`] → one unpacked copy, or an overlay over a cached unpacked
//!   tree (the cluster's nodes), deleted (unmounted first) on drop.
//! - [`BootedNode`] → `systemd-nspawn -b` on that copy, driven with
//!   `nsenter` into its PID 1's namespaces (machinectl needs a machined the
//!   host does not run). Stopped on drop by the nspawn PID: SIGTERM (nspawn
//!   turns it into an orderly shutdown), then SIGKILL of the container's
//!   init and of nspawn; nspawn also gets SIGTERM if the caller dies
//!   (`PR_SET_PDEATHSIG`), so no run, however it ends, leaves a container
//!   behind.
//!
//! Network: [`Network::Private`] (`--private-network`: loopback only) or a
//! namespace the caller made ([`Network::Namespace`], 10.213.0.0/16 only).
//! A container never shares the host's network: the shipped defaults name
//! the site LAN, and a started probe would send packets there within 5 s.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::Result;
use crate::cmd::{self, run};

const CACHE_DIR: &str = "/var/cache/okome-ci/booted";
const SUITE: &str = "bookworm";
/// Where unpacked trees live; `okome-booted-<xtask pid>-<label>`.
const UNPACK_DIR: &str = "/var/tmp";
const UNPACK_PREFIX: &str = "okome-booted-";

/// Installed by debootstrap in every tree: systemd as PID 1 and its bus,
/// and what the tests run inside (curl against nginx, python3 for stub
/// servers, iproute2 for extra addresses, openssh-client for failed logins,
/// nftables: Debian 12's firewall, fail2ban's ban action; man-db, as on
/// any Debian or Raspberry Pi OS install: `systemd-analyze verify` runs
/// `man` for each unit's `Documentation=man:…` and warns when it fails).
const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "man-db",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "nftables",
    "curl",
    "python3",
    "openssh-client",
    "procps",
];

/// What a cached tree holds beyond [`BASE_PACKAGES`].
#[derive(Debug, Clone, Default)]
pub struct RootfsSpec {
    /// Packages whose `.deb`s (with their dependencies and recommends) are
    /// downloaded into the tree's apt cache, not installed: an offline
    /// `apt install` inside the container then installs them like a node
    /// would, maintainer scripts and service starts included.
    pub preload: Vec<String>,
}

impl RootfsSpec {
    /// The cache key: the package lists (so a new dependency rebuilds the
    /// tree) and the ISO week (so Debian's security updates come in).
    fn tarball_name(&self) -> Result<String> {
        let week = cmd::output(Command::new("date").args(["-u", "+%G-W%V"]))?;
        let mut preload = self.preload.clone();
        preload.sort();
        preload.dedup();
        let key = fnv1a(format!("{}|{}", BASE_PACKAGES.join(","), preload.join(",")).as_bytes());
        Ok(format!(
            "{SUITE}-booted-amd64-{}-{key:016x}.tar.gz",
            week.trim()
        ))
    }

    /// The tree every okome package in `debs` installs into offline: their
    /// Depends and Recommends (first alternative, okome's own excluded),
    /// and node_exporter, which okome-frontend ships a drop-in for.
    pub fn for_debs(debs: &[PathBuf]) -> Result<RootfsSpec> {
        let mut packages = vec![NODE_EXPORTER.to_string()];
        // Recommends too: apt installs them inside, and with a private
        // network the container cannot download what the tree lacks.
        for deb in debs {
            for field in ["Depends", "Recommends"] {
                let names = cmd::output(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))?;
                packages.extend(dependency_names(&names));
            }
        }
        packages.sort();
        packages.dedup();
        Ok(RootfsSpec { preload: packages })
    }

    /// The cached tarball, built first if missing (debootstrap ~1 min, the
    /// download of the preloaded packages a few seconds more).
    pub fn tarball(&self) -> Result<PathBuf> {
        let name = self.tarball_name()?;
        let cache = Path::new(CACHE_DIR);
        let tarball = cache.join(&name);
        if tarball.exists() {
            eprintln!("okome-cluster: reusing cached rootfs {}", tarball.display());
            return Ok(tarball);
        }
        std::fs::create_dir_all(cache)?;
        let started = Instant::now();
        // A guard: a failed debootstrap leaves no half-built tree.
        let build = Rootfs::empty(cache.join(format!("build-{}", std::process::id())), "build")?;
        let root = build.root();
        run(Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", BASE_PACKAGES.join(",")))
            .arg(SUITE)
            .arg(&root)
            .arg(cmd::host_mirror(SUITE)))?;
        if !self.preload.is_empty() {
            chroot_sh(
                &root,
                &format!(
                    "apt-get update -q && apt-get install -y -q --download-only {}",
                    self.preload.join(" ")
                ),
            )?;
        }
        let partial = cache.join(format!("{name}.partial-{}", std::process::id()));
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "-czf"])
            .arg(&partial)
            .arg("."))?;
        std::fs::rename(&partial, &tarball)?;
        // Other weeks' trees are stale. Other package lists' trees of this
        // week are not: concurrent runs (another branch, a new package's
        // dependencies) each need theirs, and deleting them made each run
        // debootstrap again.
        let week = format!("-{}-", week_of(&name));
        for entry in std::fs::read_dir(cache)?.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.ends_with(".tar.gz") && !file.contains(&week) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        eprintln!(
            "okome-cluster: built and cached the booted rootfs in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(tarball)
    }
}

/// The ISO week in a tarball name (`bookworm-booted-amd64-2026-W50-…`).
fn week_of(name: &str) -> &str {
    name.split('-')
        .collect::<Vec<_>>()
        .windows(2)
        .find(|pair| pair[1].starts_with('W') && pair[0].len() == 4)
        .map_or("", |pair| {
            let start = name.find(&format!("{}-{}", pair[0], pair[1])).unwrap_or(0);
            &name[start..start + pair[0].len() + 1 + pair[1].len()]
        })
}

/// Not a dependency of any okome package, but okome-frontend configures it
/// (configs/systemd/prometheus-node-exporter.service.d).
pub const NODE_EXPORTER: &str = "prometheus-node-exporter";

/// `a (>= 1), b | c, okome-x` → `a`, `b` (okome's own come as files).
pub fn dependency_names(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .filter_map(|clause| {
            let first = clause.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty() && !name.starts_with("okome-")).then(|| name.to_string())
        })
        .collect()
}

/// FNV-1a: a cache key that stays the same across Rust releases (std's
/// hasher makes no such promise).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Run `script` with `sh -e` chrooted into `root` (with /proc mounted in a
/// private mount namespace, gone with it): for building a tree, before
/// anything boots.
pub fn chroot_sh(root: &Path, script: &str) -> Result<String> {
    eprintln!("+ chroot {}: {script}", root.display());
    let out = cmd::finished(
        Command::new("unshare")
            .args(["--mount", "--fork", "--", "sh", "-c"])
            .arg("mount -t proc proc \"$0/proc\" && exec chroot \"$0\" /bin/sh -ec \"$1\"")
            .arg(root)
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C"),
    )?;
    if !out.status.success() {
        return Err(format!(
            "in chroot: `{script}` failed: {}\n{}{}",
            out.status,
            cmd::tail(&out.stdout),
            cmd::tail(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One unpacked tree (`<dir>/root`) and its node's console log
/// (`<dir>/console.log`); the whole directory is removed on drop.
#[derive(Debug)]
pub struct Rootfs {
    dir: PathBuf,
    label: String,
    /// `root` is an overlay mount over a cached tree (see
    /// [`Rootfs::overlay`]): unmounted before anything is removed.
    overlay: bool,
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.overlay && !unmount(&self.root()) {
            // Never remove_dir_all through a mount: keep it for the next
            // run's remove_dead_runs.
            eprintln!(
                "okome-cluster: could not unmount {}; left for the next run",
                self.root().display()
            );
            return;
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "okome-cluster: could not remove {}: {error}",
                self.dir.display()
            );
        }
    }
}

/// Whether `path` is a mount point now (/proc/self/mountinfo, field 5).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    text.lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_ref()))
}

/// Unmount `path` if it is mounted; false if it stays mounted.
fn unmount(path: &Path) -> bool {
    if !is_mounted(path) {
        return true;
    }
    let _ = Command::new("umount").arg(path).status();
    if is_mounted(path) {
        // Busy (a process of a dead container still holds it): detach it,
        // the kernel frees it when the last user goes.
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
    !is_mounted(path)
}

impl Rootfs {
    fn empty(dir: PathBuf, label: &str) -> Result<Rootfs> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("root"))?;
        Ok(Rootfs {
            dir,
            label: label.to_string(),
            overlay: false,
        })
    }

    fn check_label(label: &str) -> Result {
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("node label {label:?}: letters, digits and - only").into());
        }
        Ok(())
    }

    /// A writable copy of the unpacked tree `lower` for node `label`, in no
    /// time: an overlay mount (the node's changes land in its own upper
    /// directory, `lower` is never written). Several nodes, and several
    /// runs, share one `lower`.
    pub fn overlay(lower: &Path, label: &str) -> Result<Rootfs> {
        Self::check_label(label)?;
        remove_dead_runs();
        let dir =
            Path::new(UNPACK_DIR).join(format!("{UNPACK_PREFIX}{}-{label}", std::process::id()));
        let mut rootfs = Rootfs::empty(dir, label)?;
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(rootfs.dir.join(sub))?;
        }
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                rootfs.dir.join("upper").display(),
                rootfs.dir.join("work").display()
            ))
            .arg(rootfs.root()))?;
        rootfs.overlay = true;
        Ok(rootfs)
    }

    /// Move the tree out to `dest` (same file system) and drop the rest: how
    /// a tree prepared in a booted node becomes a cached lower directory.
    pub fn keep_tree(self, dest: &Path) -> Result {
        if self.overlay {
            return Err("an overlay tree cannot be kept".into());
        }
        std::fs::rename(self.root(), dest)
            .map_err(|e| format!("rename {} → {}: {e}", self.root().display(), dest.display()))?;
        Ok(())
    }

    /// The node's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Unpack the cached tree of `spec` for the node `label` (a host name:
    /// letters, digits, `-`). Trees of earlier runs whose xtask is gone
    /// (killed outright) are removed first.
    pub fn unpack(spec: &RootfsSpec, label: &str) -> Result<Rootfs> {
        Self::check_label(label)?;
        let tarball = spec.tarball()?;
        remove_dead_runs();
        let rootfs = Rootfs::empty(
            Path::new(UNPACK_DIR).join(format!("{UNPACK_PREFIX}{}-{label}", std::process::id())),
            label,
        )?;
        run(Command::new("tar")
            .arg("-C")
            .arg(rootfs.root())
            .args(["--numeric-owner", "-xzf"])
            .arg(&tarball))?;
        Ok(rootfs)
    }

    /// The tree's root directory on the host.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The host path of `inside` (an absolute path in the container).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root().join(inside.trim_start_matches('/'))
    }

    /// Copy `files` into directory `dir` of the tree; returns their paths
    /// inside, for an `apt install` line.
    pub fn copy_in(&self, files: &[PathBuf], dir: &str) -> Result<Vec<String>> {
        let target = self.path(dir);
        std::fs::create_dir_all(&target)?;
        let mut inside = Vec::new();
        for file in files {
            let name = file.file_name().ok_or("file without a name")?;
            std::fs::copy(file, target.join(name))
                .map_err(|e| format!("copy {}: {e}", file.display()))?;
            inside.push(format!("{dir}/{}", name.to_string_lossy()));
        }
        Ok(inside)
    }

    fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
}

/// Remove trees left by xtask runs that are gone (SIGKILL, power loss):
/// their guards never ran, and PR_SET_PDEATHSIG already stopped their
/// containers.
fn remove_dead_runs() {
    let Ok(entries) = std::fs::read_dir(UNPACK_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(UNPACK_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            eprintln!("okome-cluster: removing a dead run's rootfs {UNPACK_DIR}/{name}");
            // An overlay first: never remove through a mount.
            if unmount(&entry.path().join("root")) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The network a node boots with. Never the host's.
#[derive(Debug, Clone)]
pub enum Network {
    /// `--private-network`: loopback only, no route anywhere.
    Private,
    /// `--network-namespace-path=`: a namespace the caller created and
    /// fenced (10.213.0.0/16 addresses only, blackhole route in the host).
    Namespace(PathBuf),
}

/// A container booted on a [`Rootfs`], stopped on drop (before the tree:
/// drop the node first).
#[derive(Debug)]
pub struct BootedNode {
    label: String,
    root: PathBuf,
    console_log: PathBuf,
    nspawn: Child,
    pid1: u32,
    /// Units failed when the boot finished (`is-system-running` said
    /// `degraded`), after those healed (see `healed_at_boot`).
    pub failed_at_boot: Vec<String>,
    /// Units that failed at boot only because systemd could not attach
    /// them to their cgroup (see [`cgroup_race`]), started again once.
    pub healed_at_boot: Vec<String>,
    pub boot_seconds: f64,
    started: Instant,
}

impl Drop for BootedNode {
    fn drop(&mut self) {
        if let Err(error) = self.stop_inner() {
            eprintln!("okome-cluster: stopping node {}: {error}", self.label);
        }
    }
}

/// How long a boot may take to reach running/degraded (it takes ~1 s here;
/// the margin is for a loaded 2-core CI machine).
const BOOT_DEADLINE: Duration = Duration::from_secs(90);
/// How long an orderly shutdown may take before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

impl BootedNode {
    /// Boot `rootfs` and wait until systemd reports `running` or
    /// `degraded` (then [`failed_at_boot`](Self::failed_at_boot) names the
    /// failed units; judging them is the caller's business).
    pub fn boot(rootfs: &Rootfs, network: Network) -> Result<BootedNode> {
        Self::boot_tree(
            rootfs.label.clone(),
            rootfs.root(),
            rootfs.console_log(),
            network,
        )
    }

    fn boot_tree(
        label: String,
        root: PathBuf,
        console_log: PathBuf,
        network: Network,
    ) -> Result<BootedNode> {
        Self::spawn_tree(label, root, console_log, network, true)
    }

    fn spawn_tree(
        label: String,
        root: PathBuf,
        console_log: PathBuf,
        network: Network,
        wait: bool,
    ) -> Result<BootedNode> {
        let started = Instant::now();
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_log)?;
        let mut command = Command::new("systemd-nspawn");
        command
            .arg("-D")
            .arg(&root)
            .args(["-b", "--console=pipe", "--register=no", "--keep-unit"])
            // The machine name keys nspawn's runtime files under
            // /run/systemd/nspawn: unique per xtask run, so two runs
            // booting the same label never meet there.
            .arg(format!("--machine={label}-{}", std::process::id()))
            .arg(format!("--hostname={label}"));
        match &network {
            Network::Private => command.arg("--private-network"),
            // CAP_NET_ADMIN: nspawn drops it for a namespace it did not
            // create, and keepalived must add the VIP (`RTM_NEWADDR:
            // Operation not permitted` otherwise). The namespace is the
            // caller's, with no route out of the lab's bridge.
            Network::Namespace(path) => command
                .arg(format!("--network-namespace-path={}", path.display()))
                .arg("--capability=CAP_NET_ADMIN"),
        };
        // This kernel mounts cgroup v1 + v2 side by side (GUIDE §2).
        command
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "0")
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console);
        // SAFETY: prctl is async-signal-safe; between fork and exec it only
        // asks the kernel to SIGTERM nspawn when xtask's thread dies:
        // nspawn then shuts the container down as in stop_inner (a SIGKILL
        // would orphan the container's init instead).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        eprintln!(
            "+ {} (console: {})",
            cmd::describe(&command),
            console_log.display()
        );
        let nspawn = command
            .spawn()
            .map_err(|e| format!("systemd-nspawn: {e}"))?;
        // From here the guard stops it whatever happens.
        let mut node = BootedNode {
            label,
            root,
            console_log,
            nspawn,
            pid1: 0,
            failed_at_boot: Vec::new(),
            healed_at_boot: Vec::new(),
            boot_seconds: 0.0,
            started,
        };
        if wait {
            node.wait_until_booted()?;
        }
        Ok(node)
    }

    /// Start booting `rootfs` and return at once; [`wait_until_booted`]
    /// (Self::wait_until_booted) may then run on another thread. Starting
    /// must happen on a thread that outlives the node: nspawn's
    /// PR_SET_PDEATHSIG fires when the *thread* that spawned it exits.
    pub fn start(rootfs: &Rootfs, network: Network) -> Result<BootedNode> {
        Self::spawn_tree(
            rootfs.label.clone(),
            rootfs.root(),
            rootfs.console_log(),
            network,
            false,
        )
    }

    /// Wait until a [`start`](Self::start)ed node reaches `running` or
    /// `degraded`.
    pub fn wait_until_booted(&mut self) -> Result {
        self.pid1 = self.find_pid1(self.started)?;
        self.wait_booted(self.started)?;
        self.boot_seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "okome-cluster: node {} booted in {:.1} s (PID 1 is {} on the host){}",
            self.label,
            self.boot_seconds,
            self.pid1,
            if self.failed_at_boot.is_empty() {
                String::new()
            } else {
                format!(", failed units: {}", self.failed_at_boot.join(" "))
            }
        );
        Ok(())
    }

    /// Stop this node and boot its tree again: a reboot, with whatever the
    /// tree holds now.
    pub fn reboot(mut self, network: Network) -> Result<BootedNode> {
        let (label, root, console_log) = (
            std::mem::take(&mut self.label),
            std::mem::take(&mut self.root),
            std::mem::take(&mut self.console_log),
        );
        if let Err(error) = self.stop_inner() {
            eprintln!("okome-cluster: stopping node {label}: {error}");
        }
        drop(self);
        BootedNode::boot_tree(label, root, console_log, network)
    }

    /// A power cut: SIGKILL to the container's init (every process in it
    /// dies at once, nothing shuts down in order: keepalived sends no
    /// goodbye advertisement), then nspawn is reaped.
    pub fn power_cut(mut self) -> Result {
        if let Ok(pid1) = libc::pid_t::try_from(self.pid1)
            && pid1 > 0
            && self.nspawn.try_wait()?.is_none()
        {
            // SAFETY: kill(2) on the init found under our own nspawn, which
            // has not exited (checked just above), so not a recycled PID.
            unsafe {
                libc::kill(pid1, libc::SIGKILL);
            }
        }
        let started = Instant::now();
        while self.nspawn.try_wait()?.is_none() && started.elapsed() < STOP_DEADLINE {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop_inner()
    }

    /// The node's name (its host name).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The container's PID 1 as the host sees it.
    pub fn pid1(&self) -> u32 {
        self.pid1
    }

    fn exited(&mut self) -> Result<Option<String>> {
        Ok(self.nspawn.try_wait()?.map(|status| {
            let log = std::fs::read(&self.console_log).unwrap_or_default();
            format!(
                "systemd-nspawn exited ({status}); console:\n{}",
                cmd::tail(&log)
            )
        }))
    }

    /// The container's init: the process under nspawn whose PID is 1 in
    /// its own PID namespace.
    fn find_pid1(&mut self, started: Instant) -> Result<u32> {
        let nspawn = self.nspawn.id();
        loop {
            if let Some(pid) = descendants(nspawn).into_iter().find(|pid| is_ns_init(*pid)) {
                return Ok(pid);
            }
            if let Some(why) = self.exited()? {
                return Err(why.into());
            }
            if started.elapsed() > BOOT_DEADLINE {
                return Err("no container init appeared under systemd-nspawn".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start again, once, each unit of `failed_at_boot` that failed only
    /// because systemd could not attach it to its cgroup ([`cgroup_race`]):
    /// on a busy host systemd under nspawn sometimes loses that race at
    /// boot (seen for systemd-user-sessions, which then left
    /// `/run/nologin` and every login refused). The unit did nothing
    /// wrong, so the node gets what its boot should have done, and the log
    /// says so; any other failure stays in `failed_at_boot` for the caller
    /// to judge.
    fn heal_cgroup_races(&mut self) -> Result {
        for unit in std::mem::take(&mut self.failed_at_boot) {
            let journal = self.sh(&format!(
                "journalctl -b --no-pager -o cat -u {} | tail -n 20",
                shell_quote(&unit)
            ))?;
            if !cgroup_race(&journal) {
                self.failed_at_boot.push(unit);
                continue;
            }
            let again = self.try_command(&["timeout", "30", "systemctl", "restart", &unit])?;
            // Not `is-active`: a oneshot that ran to success is inactive.
            let healed = again.status.success()
                && !self
                    .try_command(&["systemctl", "is-failed", "-q", &unit])?
                    .status
                    .success();
            eprintln!(
                "okome-cluster: WARNING: {unit} failed at boot on node {} \
                 (status=219/CGROUP, systemd under nspawn); started again: {}",
                self.label,
                if healed { "ok" } else { "still failed" }
            );
            if healed {
                self.healed_at_boot.push(unit);
            } else {
                self.failed_at_boot.push(unit);
            }
        }
        Ok(())
    }

    fn wait_booted(&mut self, started: Instant) -> Result {
        loop {
            let out =
                self.try_command(&["timeout", "30", "systemctl", "is-system-running", "--wait"])?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            match state.as_str() {
                "running" => return Ok(()),
                "degraded" => {
                    self.failed_at_boot = self.failed_units()?;
                    self.heal_cgroup_races()?;
                    return Ok(());
                }
                _ => {}
            }
            if let Some(why) = self.exited()? {
                return Err(why.into());
            }
            if started.elapsed() > BOOT_DEADLINE {
                return Err(format!(
                    "node {} did not finish booting in {} s (state {state:?}): {}",
                    self.label,
                    BOOT_DEADLINE.as_secs(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run a program inside the container (all its namespaces, its root,
    /// a clean environment) and return its output whatever its status.
    pub fn try_command(&self, argv: &[&str]) -> Result<Output> {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.pid1.to_string())
            .args(["-m", "-u", "-i", "-n", "-p", "--root", "--wd", "--"])
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LC_ALL=C",
                "HOME=/root",
                "DEBIAN_FRONTEND=noninteractive",
                "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0",
            ])
            .args(argv);
        // Should xtask die mid-command, nsenter must die too: left
        // orphaned it stops itself (job control) and never reaps its child
        // inside, and the container's shutdown then waits 90 s for that
        // zombie. Dead, its child is the container init's to reap.
        // SAFETY: as in boot(): only prctl between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd::finished(&mut command)
    }

    /// Run `script` with `sh -ec` inside; return its output whatever its
    /// status.
    pub fn try_sh(&self, script: &str) -> Result<Output> {
        eprintln!("+ [{}] {script}", self.label);
        self.try_command(&["sh", "-ec", script])
    }

    /// Run `script` with `sh -ec` inside; a non-zero exit is an error that
    /// carries its output.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.try_sh(script)?;
        if !out.status.success() {
            return Err(format!(
                "[{}] `{script}` failed: {}\n{}{}",
                self.label,
                out.status,
                cmd::tail(&out.stdout),
                cmd::tail(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `systemctl ARGS…` inside; a non-zero exit is an error.
    pub fn systemctl(&self, args: &[&str]) -> Result<String> {
        let mut script = String::from("systemctl --no-pager");
        for arg in args {
            script.push(' ');
            script.push_str(&shell_quote(arg));
        }
        self.sh(&script)
    }

    /// Properties of `unit` (`systemctl show -p …`), in the order asked;
    /// an unknown property is an error.
    pub fn show(&self, unit: &str, properties: &[&str]) -> Result<Vec<String>> {
        let mut args = vec!["show", unit];
        for property in properties {
            args.push("-p");
            args.push(property);
        }
        let text = self.systemctl(&args)?;
        properties
            .iter()
            .map(|property| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("{property}=")))
                    .map(str::to_string)
                    .ok_or_else(|| format!("{unit} has no property {property}:\n{text}").into())
            })
            .collect()
    }

    /// The failed units, by name (`systemctl --failed`).
    pub fn failed_units(&self) -> Result<Vec<String>> {
        let text = self.systemctl(&["list-units", "--failed", "--plain", "--no-legend"])?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_string)
            .collect())
    }

    /// The journal of `unit` since `since`, one line per entry, each
    /// starting with its UNIX time (`-o short-unix`).
    pub fn journal(&self, unit: &str, since: SystemTime) -> Result<String> {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| "a time before 1970")?
            .as_secs();
        self.sh(&format!(
            "journalctl --no-pager -o short-unix -u {} --since @{since}",
            shell_quote(unit)
        ))
    }

    /// The UNIX times (s) at which PID 1 began starting `unit` since
    /// `since`: its "Starting …" journal entries (message id
    /// UNIT_STARTING), one per run of a oneshot.
    pub fn starts(&self, unit: &str, since: SystemTime) -> Result<Vec<f64>> {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| "a time before 1970")?
            .as_secs_f64();
        let text = self.sh(&format!(
            "journalctl --no-pager -q -o short-unix _PID=1 UNIT={} \
             MESSAGE_ID=7d4958e842da4a758f6c1cdc7b36dcc5",
            shell_quote(unit)
        ))?;
        let mut times = Vec::new();
        for line in text.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            let time: f64 = first
                .parse()
                .map_err(|_| format!("journal line without a UNIX time: {line:?}"))?;
            if time >= since {
                times.push(time);
            }
        }
        Ok(times)
    }

    /// A numeric D-Bus property of systemd (raw µs, where `systemctl show`
    /// would print a rounded "2min 3.5s"): `unit` None for the manager.
    pub fn bus_u64(&self, unit: Option<&str>, interface: &str, property: &str) -> Result<u64> {
        let text = self.bus_property(unit, interface, property)?;
        // `t 120000000` (or `u 3`).
        text.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{interface}.{property} of {unit:?}: {text:?}").into())
    }

    /// A D-Bus property of systemd as busctl prints it (`t 120000000`,
    /// `a(stt) 1 "OnUnitActiveUSec" 5000000 0`): `unit` None for the
    /// manager.
    pub fn bus_property(
        &self,
        unit: Option<&str>,
        interface: &str,
        property: &str,
    ) -> Result<String> {
        let path = match unit {
            Some(unit) => format!("/org/freedesktop/systemd1/unit/{}", bus_label(unit)),
            None => "/org/freedesktop/systemd1".to_string(),
        };
        let text = self.sh(&format!(
            "busctl get-property org.freedesktop.systemd1 {path} \
             org.freedesktop.systemd1.{interface} {property}"
        ))?;
        Ok(text.trim().to_string())
    }

    /// The console log so far (boot messages, and systemd's status lines).
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console_log).unwrap_or_default()).into_owned()
    }

    /// SIGTERM nspawn (an orderly shutdown of the container), SIGKILL after
    /// [`STOP_DEADLINE`]; reap it either way.
    fn stop_inner(&mut self) -> Result {
        if self.nspawn.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.nspawn.id()).map_err(|_| "pid out of range")?;
        // SAFETY: kill(2) on the PID of our own unreaped child: it cannot
        // have been recycled for another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < STOP_DEADLINE {
            if self.nspawn.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "okome-cluster: node {} did not shut down in {} s: SIGKILL",
            self.label,
            STOP_DEADLINE.as_secs()
        );
        // The container's init first: killing a PID namespace's init kills
        // every process in it, which nspawn's death alone would not.
        if let Ok(pid1) = libc::pid_t::try_from(self.pid1)
            && pid1 > 0
        {
            // SAFETY: kill(2) on the container init this node found under
            // its own nspawn, which is still running (not yet reaped).
            unsafe {
                libc::kill(pid1, libc::SIGKILL);
            }
        }
        self.nspawn.kill()?;
        self.nspawn.wait()?;
        Ok(())
    }
}

/// Every process below `root` (children of children…), read from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces and parens.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// Whether `pid` is PID 1 of a PID namespace below the host's.
fn is_ns_init(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

/// A unit name as a D-Bus object path label (systemd's bus_label_escape:
/// every byte but `[A-Za-z0-9]` becomes `_xx`).
fn bus_label(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("_{b:02x}")
            }
        })
        .collect()
}

/// `word` quoted for `sh`.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Whether a unit's journal says it failed because systemd could not
/// attach its process to the unit's cgroup (exit status 219, `CGROUP`):
/// systemd's own failure before the unit's program ran, not the unit's.
fn cgroup_race(journal: &str) -> bool {
    journal
        .lines()
        .any(|line| line.contains("status=219/CGROUP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_cgroup_race_is_healed() {
        // What the node's journal held when a CI run's logins were refused.
        let race = "Starting systemd-user-sessions.service - Permit User Sessions...\n\
            systemd-user-sessions.service: Failed to attach to cgroup \
            /system.slice/systemd-user-sessions.service: No such file or directory\n\
            systemd-user-sessions.service: Main process exited, code=exited, status=219/CGROUP\n\
            systemd-user-sessions.service: Failed with result 'exit-code'.";
        assert!(cgroup_race(race));
        // The unit's own failure is the caller's to judge.
        let own = "nginx.service: Control process exited, code=exited, status=1/FAILURE\n\
            nginx.service: Failed with result 'exit-code'.";
        assert!(!cgroup_race(own));
        assert!(!cgroup_race(""));
    }

    #[test]
    fn cache_key_follows_the_package_list_not_its_order() {
        let a = RootfsSpec {
            preload: vec!["nginx".into(), "fail2ban".into()],
        };
        let b = RootfsSpec {
            preload: vec!["fail2ban".into(), "nginx".into(), "nginx".into()],
        };
        let c = RootfsSpec {
            preload: vec!["nginx".into()],
        };
        assert_eq!(a.tarball_name().unwrap(), b.tarball_name().unwrap());
        assert_ne!(a.tarball_name().unwrap(), c.tarball_name().unwrap());
    }

    #[test]
    fn dependency_names_take_the_first_alternative_and_skip_okome() {
        assert_eq!(
            dependency_names(
                "nginx, keepalived (>= 2), nftables | iptables, python3-systemd:any, \
                 okome-health-probe (>= 0.1.0)"
            ),
            ["nginx", "keepalived", "nftables", "python3-systemd"]
        );
    }

    #[test]
    fn the_week_is_read_from_a_tarball_name() {
        assert_eq!(
            week_of("bookworm-booted-amd64-2026-W50-32f5f0265ed83676.tar.gz"),
            "2026-W50"
        );
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("okome-prewarm.timer"), "okome-prewarm.timer");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn bus_paths_escape_like_systemd() {
        assert_eq!(bus_label("okome-prewarm.timer"), "okome_2dprewarm_2etimer");
    }

    #[test]
    fn labels_are_host_names() {
        let spec = RootfsSpec::default();
        assert!(Rootfs::unpack(&spec, "a b").is_err());
        assert!(Rootfs::unpack(&spec, "").is_err());
    }
}

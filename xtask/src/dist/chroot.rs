//! The install test: the packages go through their whole life — install,
//! upgrade over a locally edited conffile, remove, purge — with real dpkg and
//! apt in a minimal Debian 12 chroot, where systemd is installed nowhere and
//! running nowhere, like in a container or an image build.
//!
//! Shaped by cost: `debootstrap --variant=minbase bookworm` takes ~30-75 s,
//! so its result (plus apt lists and a policy-rc.d that keeps daemons from
//! starting) is cached as a tarball under /var/cache/okome-ci keyed by ISO
//! week: CI reruns on this machine unpack it in a few seconds; a fresh
//! machine builds it once a week. The config packages' dependencies (nginx,
//! keepalived, fail2ban, redis-server, …) come from the same Debian mirror
//! the host's apt uses. Each step runs in its own mount namespace (`unshare
//! --mount`) so /proc is mounted for it and gone with it, never left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use super::{Dist, TOOLS};
use crate::Result;
use crate::cmd::{self, run};

const CACHE_DIR: &str = "/var/cache/okome-ci/chroot";
const SUITE: &str = "bookworm";

/// A chroot unpacked for one test run; deleted on drop, even on failure.
#[derive(Debug)]
struct Chroot {
    root: PathBuf,
}

impl Drop for Chroot {
    fn drop(&mut self) {
        // Mounts lived in the per-step namespaces: nothing is mounted here.
        if let Err(error) = std::fs::remove_dir_all(&self.root) {
            eprintln!("xtask: could not remove {}: {error}", self.root.display());
        }
    }
}

impl Chroot {
    /// Run `script` with `sh -e` inside the chroot; fail with its output.
    fn sh(&self, script: &str) -> Result<String> {
        let out = self.try_sh(script)?;
        if !out.status.success() {
            return Err(format!(
                "in chroot: `{script}` failed: {}\n{}{}",
                out.status,
                tail(&out.stdout),
                tail(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// As [`Chroot::sh`], returning stdout and stderr together (what
    /// maintainer scripts said).
    fn sh_all(&self, script: &str) -> Result<String> {
        let out = self.try_sh(script)?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(format!(
                "in chroot: `{script}` failed: {}\n{}",
                out.status,
                tail(all.as_bytes())
            )
            .into());
        }
        Ok(all)
    }

    /// Run `script` and return its output whatever its status.
    fn try_sh(&self, script: &str) -> Result<Output> {
        eprintln!("+ chroot: {script}");
        let out = Command::new("unshare")
            .args(["--mount", "--fork", "--", "sh", "-c"])
            .arg("mount -t proc proc \"$0/proc\" && exec chroot \"$0\" /bin/sh -ec \"$1\"")
            .arg(&self.root)
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("unshare/chroot: {e}"))?;
        Ok(out)
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    fn exists(&self, inside: &str) -> bool {
        self.path(inside).symlink_metadata().is_ok()
    }

    fn expect(&self, inside: &str, present: bool, why: &str) -> Result {
        if self.exists(inside) != present {
            let state = if present { "missing" } else { "still there" };
            return Err(format!("{inside} {state}: {why}").into());
        }
        Ok(())
    }
}

/// The last lines of a command's output, and the host's Debian mirror: the
/// booted harness's (one copy of each).
pub(super) use okome_cluster::cmd::tail;

/// The mirror the host's apt uses for this suite.
fn host_mirror() -> String {
    okome_cluster::cmd::host_mirror(SUITE)
}

/// The cached base tarball for this ISO week, built if missing.
fn base_tarball() -> Result<PathBuf> {
    let week = cmd::output(Command::new("date").args(["-u", "+%G-W%V"]))?;
    let name = format!("{SUITE}-minbase-amd64-{}.tar.gz", week.trim());
    let cache = Path::new(CACHE_DIR);
    let tarball = cache.join(&name);
    if tarball.exists() {
        eprintln!("xtask: reusing cached chroot {}", tarball.display());
        return Ok(tarball);
    }
    std::fs::create_dir_all(cache)?;
    let build = cache.join(format!("build-{}", std::process::id()));
    if build.exists() {
        std::fs::remove_dir_all(&build)?;
    }
    let started = Instant::now();
    let mirror = host_mirror();
    // The guard removes a half-built tree too, if debootstrap fails.
    let chroot = Chroot { root: build };
    run(Command::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(&chroot.root)
        .arg(&mirror))?;
    // Daemons must never start inside the chroot: it shares this machine's
    // network, and the tests own their ports.
    std::fs::write(
        chroot.path("/usr/sbin/policy-rc.d"),
        "#!/bin/sh\n# okome install test: never start services in this chroot\nexit 101\n",
    )?;
    run(Command::new("chmod")
        .arg("755")
        .arg(chroot.path("/usr/sbin/policy-rc.d")))?;
    chroot.sh("apt-get update -q")?;
    let partial = cache.join(format!("{name}.partial-{}", std::process::id()));
    run(Command::new("tar")
        .arg("-C")
        .arg(&chroot.root)
        .args(["--numeric-owner", "-czf"])
        .arg(&partial)
        .arg("."))?;
    std::fs::rename(&partial, &tarball)?;
    // Earlier weeks' tarballs are stale: keep only this one.
    for entry in std::fs::read_dir(cache)?.flatten() {
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".tar.gz") && file != name {
            let _ = std::fs::remove_file(path);
        }
    }
    eprintln!(
        "xtask: built and cached the {SUITE} chroot in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(tarball)
}

fn unpack(tarball: &Path) -> Result<Chroot> {
    // A run killed outright (SIGKILL, power loss) could not drop its guard:
    // remove trees whose process is gone.
    for entry in std::fs::read_dir("/var/tmp")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("okome-install-test-")
            && !Path::new("/proc").join(pid).exists()
        {
            eprintln!("xtask: removing a dead run's chroot /var/tmp/{name}");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let root = PathBuf::from(format!(
        "/var/tmp/okome-install-test-{}",
        std::process::id()
    ));
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    let chroot = Chroot { root };
    run(Command::new("tar")
        .arg("-C")
        .arg(&chroot.root)
        .args(["--numeric-owner", "-xzf"])
        .arg(tarball))?;
    Ok(chroot)
}

/// Build revision 2 of every amd64 package (same binaries, new version) for
/// the upgrade step, and return the revision 1 and revision 2 deb lists and
/// the Pi packages per foreign architecture.
type ForeignDebs = Vec<(&'static str, Vec<PathBuf>)>;
fn package_sets(dist: &Dist) -> Result<(Vec<PathBuf>, Vec<PathBuf>, ForeignDebs)> {
    let arch_of = |p: &PathBuf| {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        name.rsplit('_')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".deb")
            .to_string()
    };
    let v1: Vec<PathBuf> = dist
        .debs
        .iter()
        .filter(|p| matches!(arch_of(p).as_str(), "amd64" | "all"))
        .cloned()
        .collect();
    let foreign: ForeignDebs = ["arm64", "armhf"]
        .into_iter()
        .map(|arch| {
            let debs = dist
                .debs
                .iter()
                .filter(|p| arch_of(p) == arch)
                .cloned()
                .collect();
            (arch, debs)
        })
        .collect();
    let upgrade_dir = super::out_dir().join("deb-upgrade");
    std::fs::create_dir_all(&upgrade_dir)?;
    let mut v2 = Vec::new();
    for binary in dist
        .binaries
        .iter()
        .filter(|b| b.target.deb_arch == "amd64")
    {
        v2.push(super::deb::tool_package(binary, "2", &upgrade_dir)?);
    }
    v2.extend(super::deb::config_packages("2", &upgrade_dir)?);
    Ok((v1, v2, foreign))
}

fn copy_in(chroot: &Chroot, debs: &[PathBuf], dir: &str) -> Result<String> {
    let target = chroot.path(dir);
    std::fs::create_dir_all(&target)?;
    let mut args = String::new();
    for deb in debs {
        let name = deb.file_name().ok_or("deb without name")?;
        std::fs::copy(deb, target.join(name))?;
        args.push_str(&format!(" {dir}/{}", name.to_string_lossy()));
    }
    Ok(args)
}

const APT: &str = "apt-get install -y -q --no-install-recommends";

/// The whole life of the packages in a fresh chroot. `foreign`: also
/// install the arm64/armhf packages (`--test --arch amd64` builds none).
pub fn install_test(dist: &Dist, foreign_too: bool) -> Result {
    crate::deps::ensure_apt(&["debootstrap"])?;
    let (v1, v2, foreign) = package_sets(dist)?;
    let started = Instant::now();
    let chroot = unpack(&base_tarball()?)?;
    let v1_args = copy_in(&chroot, &v1, "/tmp/okome-debs/v1")?;
    let v2_args = copy_in(&chroot, &v2, "/tmp/okome-debs/v2")?;
    let v3 = next_library_backend(&super::out_dir().join("deb-library"))?;
    copy_in(&chroot, &[v3], "/tmp/okome-debs/v3")?;
    let packages: Vec<String> = v1
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            name.split('_').next().unwrap_or_default().to_string()
        })
        .collect();
    let package_list = packages.join(" ");

    // 1. First install: everything from apt, exit 0, no systemd anywhere.
    //    No login has an SSH key yet: the sshd hardening stays disarmed.
    let said = chroot.sh_all(&format!("{APT} {v1_args}"))?;
    chroot.sh("nginx -t")?;
    check_secrets(&chroot)?;
    // The okome library's preload, built here by the node's own redis-server
    // (no systemd needed: the generator starts a throwaway one).
    check_preload(&chroot, &shipped_library_version()?)?;
    check_sshd(&chroot, false, &said)?;
    if !said.contains("placeholder password hash for: orchestrator edge operator") {
        return Err(format!(
            "okome-backend did not name the locked Redis users:\n{}",
            tail(said.as_bytes())
        )
        .into());
    }
    arm_sshd_when_a_sudoer_has_a_key(&chroot)?;
    chroot.expect(
        "/etc/nginx/sites-enabled/okome-frontend.conf",
        true,
        "okome-frontend enables its site",
    )?;
    chroot.expect(
        "/etc/nginx/sites-enabled/default",
        false,
        "the default site would clash with okome's default_server",
    )?;
    check_versions(&chroot, &packages, &format!("{}-1", super::deb::VERSION))?;
    check_installed(&chroot)?;

    // 2. Upgrade over a locally edited conffile: the edit is kept, timers
    //    stay enabled.
    //    A tool's defaults file and the frontend's site addresses, as an
    //    operator edits them.
    let edited = "/etc/default/okome-prewarm";
    let marker = "# edited on this node by the install test";
    let conffiles = [edited, "/etc/nginx/okome/upstream.conf"];
    for conffile in conffiles {
        let original = std::fs::read_to_string(chroot.path(conffile))
            .map_err(|e| format!("{conffile}: {e}"))?;
        std::fs::write(chroot.path(conffile), format!("{original}{marker}\n"))?;
    }
    chroot.sh(&format!("{APT} {v2_args}"))?;
    check_versions(&chroot, &packages, &format!("{}-2", super::deb::VERSION))?;
    for conffile in conffiles {
        let after = std::fs::read_to_string(chroot.path(conffile))?;
        if !after.contains(marker) {
            return Err(format!("upgrade replaced the locally edited conffile {conffile}").into());
        }
    }
    check_installed(&chroot)?;
    check_secrets(&chroot)?;
    check_sshd(&chroot, true, "")?;

    // 3. Remove: binaries go, conffiles stay, nginx back to Debian's site.
    std::fs::create_dir_all(chroot.path("/run/okome/metrics"))?;
    std::fs::create_dir_all(chroot.path("/var/lib/okome"))?;
    for tool in TOOLS {
        let short = tool.package.trim_start_matches("okome-");
        std::fs::write(chroot.path(&format!("/run/okome/{short}.state")), "x\n")?;
        std::fs::write(
            chroot.path(&format!("/run/okome/metrics/{}.prom", tool.package)),
            "",
        )?;
    }
    chroot.sh(&format!("apt-get remove -y -q {package_list}"))?;
    for tool in TOOLS {
        chroot.expect(&format!("/usr/bin/{}", tool.package), false, "removed")?;
    }
    chroot.expect(edited, true, "remove keeps conffiles")?;
    chroot.expect(SSHD_LINK, false, "remove disarms the sshd hardening")?;
    chroot.sh("sshd -t")?;
    chroot.expect(
        "/etc/nginx/sites-enabled/okome-frontend.conf",
        false,
        "site disabled on remove",
    )?;
    chroot.expect(
        "/etc/nginx/sites-enabled/default",
        true,
        "Debian's site back on remove",
    )?;
    chroot.sh("nginx -t")?;

    // 4. Reinstall (from the removed state) on a node whose nginx already
    //    has a config clashing with okome's: okome-frontend must refuse to
    //    leave nginx failing `nginx -t`, roll back, say so and fail; once
    //    the clash is gone, `dpkg --configure -a` finishes the job.
    std::fs::write(
        chroot.path("/etc/nginx/conf.d/zz-conflict.conf"),
        "# the install test's deliberate clash with okome-frontend's cache zone\n\
         proxy_cache_path /tmp/okome-clash keys_zone=okome_cache:1m;\n",
    )?;
    let out = chroot.try_sh(&format!("{APT} {v2_args}"))?;
    if out.status.success() {
        return Err("okome-frontend configured although nginx -t failed with its site".into());
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !said.contains("rolled back, nginx passes nginx -t again") {
        return Err(format!(
            "the failed install did not report its roll-back:\n{}",
            tail(said.as_bytes())
        )
        .into());
    }
    chroot
        .sh("nginx -t")
        .map_err(|e| format!("okome-frontend left nginx failing nginx -t: {e}"))?;
    chroot.expect(
        "/etc/nginx/sites-enabled/okome-frontend.conf",
        false,
        "the failed postinst must take its site out again",
    )?;
    chroot.expect(
        "/etc/nginx/sites-enabled/default",
        true,
        "the failed postinst must give Debian's site back",
    )?;
    eprintln!(
        "xtask dist: okome-frontend refused a clashing nginx config and rolled back, as it must"
    );
    std::fs::remove_file(chroot.path("/etc/nginx/conf.d/zz-conflict.conf"))?;
    chroot.sh("dpkg --configure -a")?;
    chroot.sh("nginx -t")?;
    chroot.expect(
        "/etc/nginx/sites-enabled/okome-frontend.conf",
        true,
        "a reinstall after remove enables the site again",
    )?;
    check_sshd(&chroot, true, "")?;
    check_versions(&chroot, &packages, &format!("{}-2", super::deb::VERSION))?;

    // 5. Remove and purge: conffiles, timer enablement and run state go.
    chroot.sh(&format!("apt-get remove -y -q {package_list}"))?;
    chroot.sh(&format!("apt-get purge -y -q {package_list}"))?;
    chroot.expect(edited, false, "purge deletes conffiles")?;
    for tool in TOOLS.iter().filter(|t| t.has_timer()) {
        chroot.expect(&wants_link(tool.package), false, "purge forgets the timer")?;
        chroot.expect(
            &format!("/etc/systemd/system/{}.timer", tool.package),
            false,
            "purge drops the mask remove made",
        )?;
    }
    chroot.expect("/run/okome", false, "purge deletes run state")?;
    chroot.expect("/var/lib/okome", false, "purge deletes persistent state")?;
    chroot.expect(PRELOAD, false, "purge deletes the okome library's preload")?;
    chroot.expect(
        "/etc/nginx/okome",
        false,
        "purge deletes the nginx includes",
    )?;
    chroot.expect(
        "/var/cache/nginx/okome",
        false,
        "purge deletes the edge cache",
    )?;
    chroot.expect("/etc/ssh/okome", false, "purge deletes the sshd hardening")?;
    chroot.expect(SSHD_LINK, false, "purge leaves no link behind")?;
    chroot.sh("sshd -t")?;

    // 5b. Over an okome-frontend from before okome-node (which shipped the
    //     node hardening itself, its sshd drop-in armed whatever the keys):
    //     okome-node takes the files over (Breaks/Replaces), and with no
    //     sudoer's key the old armed copy is disarmed.
    let old = super::deb::old_frontend(&super::out_dir().join("deb-upgrade"))?;
    let old_args = copy_in(&chroot, &[old], "/tmp/okome-debs/v0")?;
    chroot.sh("mv /home/okadmin/.ssh/authorized_keys /home/okadmin/.ssh/keys.aside")?;
    chroot.sh(&format!("dpkg -i {old_args}"))?;
    chroot.expect(SSHD_LINK, true, "the old okome-frontend shipped it armed")?;
    let said = chroot.sh_all(&format!("{APT} {v1_args}"))?;
    let owner = chroot.sh("dpkg -S /etc/fail2ban/jail.d/okome.local")?;
    if !owner.starts_with("okome-node:") {
        return Err(format!("the fail2ban jail belongs to {owner}, not okome-node").into());
    }
    check_sshd(&chroot, false, &said)?;
    chroot.sh("mv /home/okadmin/.ssh/keys.aside /home/okadmin/.ssh/authorized_keys")?;
    chroot.sh(&format!("apt-get purge -y -q {package_list}"))?;
    chroot.expect(SSHD_LINK, false, "purge leaves no sshd drop-in behind")?;

    // 6. The Pi packages (arm64, then armhf) install on a dpkg that knows
    //    the architecture (their metadata is right; the binaries cannot run
    //    here), enable their timers, and purge again.
    let tools: Vec<&str> = TOOLS.iter().map(|t| t.package).collect();
    let foreign = if foreign_too {
        foreign
    } else {
        eprintln!("xtask dist: no arm64/armhf packages built (--arch amd64): step 6 skipped");
        Vec::new()
    };
    for (arch, debs) in &foreign {
        if debs.len() != TOOLS.len() {
            return Err(format!(
                "expected {} {arch} packages, built {}",
                TOOLS.len(),
                debs.len()
            )
            .into());
        }
        let args = copy_in(&chroot, debs, &format!("/tmp/okome-debs/{arch}"))?;
        chroot.sh(&format!("dpkg --add-architecture {arch}"))?;
        chroot.sh(&format!("{APT} {args}"))?;
        for tool in &tools {
            let got = chroot.sh(&format!("dpkg-query -W -f='${{Architecture}}' {tool}"))?;
            if got.trim() != *arch {
                return Err(
                    format!("{tool}: installed architecture {got}, expected {arch}").into(),
                );
            }
        }
        for tool in TOOLS.iter().filter(|t| t.has_timer()) {
            chroot.expect(
                &wants_link(tool.package),
                true,
                "a Pi package enables its timer",
            )?;
        }
        chroot.sh(&format!("apt-get purge -y -q {}", tools.join(" ")))?;
    }

    // 7. The same life with systemd "running": systemd cannot be PID 1 here,
    //    so /run/systemd/system exists and a stand-in systemctl records what
    //    the maintainer scripts ask (deb-systemd-invoke is the real one). Tool
    //    packages here; the config packages in step 8, with stand-ins for
    //    sysctl too (/proc/sys is this machine's).
    systemd_actions(&chroot, &v1, &v2)?;

    // 8. okome-backend and okome-node with systemd "running": Redis is
    //    restarted only on a changed, loadable config with the orchestrator's
    //    password set; fail2ban is restarted on the okome jail and checked.
    config_package_actions(&chroot)?;
    eprintln!(
        "xtask dist: install/upgrade/remove/purge in the chroot took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Install, upgrade and remove the amd64 tool packages with a stand-in
/// systemd: timers must be started, restarted, stopped; nothing else.
fn systemd_actions(chroot: &Chroot, v1: &[PathBuf], v2: &[PathBuf]) -> Result {
    const LOG: &str = "/var/log/okome-systemctl.log";
    std::fs::create_dir_all(chroot.path("/run/systemd/system"))?;
    let stub = chroot.path("/usr/bin/systemctl");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\n# okome install test: records what maintainer scripts ask of systemd\n\
             echo \"$*\" >> {LOG}\n\
             case \"$*\" in *is-enabled*) echo enabled ;; esac\nexit 0\n"
        ),
    )?;
    run(Command::new("chmod").arg("755").arg(&stub))?;
    // The stand-in starts nothing, so deb-systemd-invoke may "run" actions.
    let policy = chroot.path("/usr/sbin/policy-rc.d");
    let denying = std::fs::read_to_string(&policy)?;
    std::fs::write(&policy, "#!/bin/sh\nexit 0\n")?;
    let is_tool = |p: &&PathBuf| p.to_string_lossy().ends_with("_amd64.deb");
    let args = |debs: &[PathBuf], dir: &str| -> String {
        debs.iter()
            .filter(is_tool)
            .map(|p| {
                format!(
                    " {dir}/{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                )
            })
            .collect()
    };
    let tools: Vec<&str> = TOOLS.iter().map(|t| t.package).collect();
    let steps = [
        (format!("{APT}{}", args(v1, "/tmp/okome-debs/v1")), "start"),
        (
            format!("{APT}{}", args(v2, "/tmp/okome-debs/v2")),
            "restart",
        ),
        (format!("apt-get remove -y -q {}", tools.join(" ")), "stop"),
    ];
    for (command, action) in steps {
        let _ = std::fs::remove_file(chroot.path(LOG));
        chroot.sh(&command)?;
        let log = std::fs::read_to_string(chroot.path(LOG)).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("okome")) {
            eprintln!("xtask dist:   systemctl {line}");
        }
        for tool in TOOLS {
            let timer = format!("{}.timer", tool.package);
            let acted = log.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.contains(&action) && words.contains(&timer.as_str())
            });
            if acted != tool.has_timer() {
                return Err(format!(
                    "`{command}`: expected {} `{action} {timer}`; systemctl was asked:\n{log}",
                    if tool.has_timer() { "a" } else { "no" }
                )
                .into());
            }
        }
    }
    chroot.sh(&format!("apt-get purge -y -q {}", tools.join(" ")))?;
    std::fs::write(&policy, denying)?;
    std::fs::remove_file(&stub)?;
    std::fs::remove_dir(chroot.path("/run/systemd/system"))?;
    Ok(())
}

/// Where okome-node arms its sshd hardening (a link to /etc/ssh/okome/).
const SSHD_LINK: &str = "/etc/ssh/sshd_config.d/okome.conf";

/// Files that may hold a password are not world-readable after install;
/// the ones that hold none stay readable.
fn check_secrets(chroot: &Chroot) -> Result {
    for (file, want) in [
        ("/etc/default/okome-health-probe", "640 root:okome"),
        ("/etc/default/okome-prewarm", "640 root:okome"),
        // The Redis operator user's password (the settings checks): root's.
        ("/etc/default/okome-validate", "600 root:root"),
        ("/etc/redis/okome.conf", "640 root:redis"),
        ("/etc/default/okome-hit-ratio", "644 root:root"),
    ] {
        check_secrets_of(chroot, file, want)?;
    }
    Ok(())
}

/// sshd accepts the installed configuration (`sshd -t`) and, per `sshd -T`,
/// passwords are on while the hardening is disarmed and off once armed.
/// `said`: the install's output, which must say it is disarmed.
fn check_sshd(chroot: &Chroot, armed: bool, said: &str) -> Result {
    chroot.expect(
        SSHD_LINK,
        armed,
        "the sshd hardening is armed iff a sudoer has a key",
    )?;
    chroot.sh("mkdir -p /run/sshd && sshd -t")?;
    let effective = chroot.sh("sshd -T")?;
    let value = |key: &str| {
        effective
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or("")
            .to_string()
    };
    let want: &[(&str, &str)] = if armed {
        &[
            ("passwordauthentication", "no"),
            ("permitrootlogin", "no"),
            ("authenticationmethods", "publickey"),
        ]
    } else {
        &[("passwordauthentication", "yes")]
    };
    for (key, want) in want {
        if value(key) != *want {
            return Err(format!(
                "sshd -T: {key} is {:?}, expected {want:?} (hardening {})",
                value(key),
                if armed { "armed" } else { "disarmed" }
            )
            .into());
        }
    }
    if !armed && !said.is_empty() && !said.contains("sshd hardening is NOT armed") {
        return Err(format!(
            "the install did not say the sshd hardening is disarmed:\n{}",
            tail(said.as_bytes())
        )
        .into());
    }
    eprintln!(
        "xtask dist: sshd -t passes, sshd -T: passwordauthentication {}",
        value("passwordauthentication")
    );
    Ok(())
}

/// A key that sshd would refuse under the hardening (RSA 2048) for a
/// sudoer, or a good key for a login that cannot sudo, does not arm it;
/// an ed25519 key for a member of group sudo does (dpkg-reconfigure, as
/// the install message says).
fn arm_sshd_when_a_sudoer_has_a_key(chroot: &Chroot) -> Result {
    chroot.sh(
        "useradd --create-home --groups sudo okadmin && useradd --create-home okuser\n\
         for u in okadmin okuser; do install -d -m 700 -o $u -g $u /home/$u/.ssh; done\n\
         ssh-keygen -q -t rsa -b 2048 -N '' -f /tmp/okadmin-rsa\n\
         ssh-keygen -q -t ed25519 -N '' -f /tmp/okuser-ed25519\n\
         cp /tmp/okadmin-rsa.pub /home/okadmin/.ssh/authorized_keys\n\
         cp /tmp/okuser-ed25519.pub /home/okuser/.ssh/authorized_keys",
    )?;
    let said = chroot.sh_all("dpkg-reconfigure okome-node")?;
    check_sshd(chroot, false, &said)?;
    chroot.sh(
        "ssh-keygen -q -t ed25519 -N '' -C okadmin@laptop -f /tmp/okadmin-ed25519\n\
         printf 'from=\"10.213.0.0/16\" ' >> /home/okadmin/.ssh/authorized_keys\n\
         cat /tmp/okadmin-ed25519.pub >> /home/okadmin/.ssh/authorized_keys",
    )?;
    let said = chroot.sh_all("dpkg-reconfigure okome-node")?;
    if !said.contains("armed the sshd hardening") || !said.contains("okadmin") {
        return Err(format!("no arming message:\n{}", tail(said.as_bytes())).into());
    }
    check_sshd(chroot, true, "")
}

/// okome-backend's and okome-node's maintainer scripts with systemd
/// "running": stand-ins for systemctl, sysctl and fail2ban-client first on
/// PATH record what is asked (deb-systemd-invoke is the real one), so
/// nothing here touches this machine's kernel settings or daemons.
fn config_package_actions(chroot: &Chroot) -> Result {
    const LOG: &str = "/var/log/okome-stubs.log";
    const STUBS: &str = "/okome-stubs";
    const JAIL: &str = "/etc/fail2ban/jail.d/okome.local";
    const UP: &str = "/okome-stubs/fail2ban-is-up";
    std::fs::create_dir_all(chroot.path(STUBS))?;
    std::fs::create_dir_all(chroot.path("/run/systemd/system"))?;
    let stub = |name: &str, body: &str| -> Result {
        let path = chroot.path(&format!("{STUBS}/{name}"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n# okome install test: records what maintainer scripts ask\n\
                 echo \"{name} $*\" >> {LOG}\n{body}exit 0\n"
            ),
        )?;
        run(Command::new("chmod").arg("755").arg(&path))
    };
    stub(
        "systemctl",
        &format!(
            "case \"$*\" in *is-enabled*) echo enabled ;;\n\
             *restart*fail2ban*) [ -e {JAIL} ] && echo \"  (jail present)\" >> {LOG} ;;\n\
             *restart*redis-server*) echo \"  (preload $(sha256sum < {PRELOAD}))\" >> {LOG} ;;\n\
             esac\n"
        ),
    )?;
    stub("sysctl", "")?;
    stub("fail2ban-client", &format!("[ -e {UP} ] || exit 255\n"))?;
    std::fs::write(chroot.path(UP), "")?;
    let policy = chroot.path("/usr/sbin/policy-rc.d");
    let denying = std::fs::read_to_string(&policy)?;
    std::fs::write(&policy, "#!/bin/sh\nexit 0\n")?;
    // apt hands dpkg its own PATH (DPkg::Path), not the caller's.
    let with_stubs = |command: &str| {
        format!(
            "PATH={STUBS}:$PATH {}",
            command.replacen(
                "apt-get ",
                &format!("apt-get -o DPkg::Path={STUBS}:/usr/sbin:/usr/bin:/sbin:/bin "),
                1
            )
        )
    };
    let conf = "/etc/redis/okome.conf";
    let step = |what: &str, command: &str, redis_restarts: usize| -> Result<String> {
        let _ = std::fs::remove_file(chroot.path(LOG));
        let said = chroot.sh_all(&with_stubs(command))?;
        let log = std::fs::read_to_string(chroot.path(LOG)).unwrap_or_default();
        let restarts = log
            .lines()
            .filter(|l| l.contains("restart") && l.contains("redis-server.service"))
            .count();
        eprintln!("xtask dist: {what}: redis-server restarted {restarts} time(s)");
        if restarts != redis_restarts {
            return Err(format!(
                "{what}: expected {redis_restarts} redis-server restart(s), got {restarts}:\n\
                 {log}\n{}",
                tail(said.as_bytes())
            )
            .into());
        }
        Ok(said + &log)
    };
    let debs = "/tmp/okome-debs/v1/okome-node_*_all.deb /tmp/okome-debs/v1/okome-backend_*_all.deb";
    let upgrade =
        "/tmp/okome-debs/v2/okome-node_*_all.deb /tmp/okome-debs/v2/okome-backend_*_all.deb";

    // First install: placeholder passwords → Redis keeps running what it runs.
    let said = step("first install", &format!("{APT} {debs}"), 0)?;
    for want in [
        "NOT restarting redis-server",
        "would lock the orchestrator out",
        "restart fail2ban.service\n  (jail present)",
        "fail2ban restarted; its sshd jail reads the journal",
        "sysctl -q -p /etc/sysctl.d/90-okome.conf",
        "sysctl -q -p /etc/sysctl.d/90-okome-backend.conf",
    ] {
        if !said.contains(want) {
            return Err(format!("first install: missing {want:?} in:\n{said}").into());
        }
    }
    // Real passwords, as the message says: one restart.
    let text = std::fs::read_to_string(chroot.path(conf))?;
    let mut set = text.clone();
    for digit in ["0", "1", "2"] {
        set = set.replace(
            &format!("#{}", digit.repeat(64)),
            "#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
        );
    }
    std::fs::write(chroot.path(conf), &set)?;
    let said = step("passwords set", "dpkg-reconfigure okome-backend", 1)?;
    if said.contains("placeholder") {
        return Err(format!("passwords set, still called placeholders:\n{said}").into());
    }
    // An upgrade with the config and the library unchanged keeps Redis and
    // its cache (the preload is rebuilt all the same).
    step("upgrade, config unchanged", &format!("{APT} {upgrade}"), 0)?;
    step(
        "reconfigure, config unchanged",
        "dpkg-reconfigure okome-backend",
        0,
    )?;
    check_secrets_of(chroot, conf, "640 root:redis")?;
    check_preload(chroot, &shipped_library_version()?)?;
    // An upgrade that changes only the library: one restart, and the new
    // library was preloaded BEFORE it (the RDB Redis restarted on is the one
    // there now).
    let said = step(
        "upgrade, library changed",
        &format!("{APT} /tmp/okome-debs/v3/okome-backend_*_all.deb"),
        1,
    )?;
    check_preload(chroot, NEXT_LIBRARY_VERSION)?;
    let now = chroot.sh(&format!("sha256sum < {PRELOAD}"))?;
    if !said.contains(&format!("(preload {})", now.trim())) {
        return Err(format!(
            "upgrade, library changed: redis-server was restarted before the new \
             library's preload was in place ({PRELOAD} now {}):\n{said}",
            now.trim()
        )
        .into());
    }
    step(
        "reconfigure, library unchanged",
        "dpkg-reconfigure okome-backend",
        0,
    )?;
    // A library the node's Redis refuses: the configure fails and says so,
    // the RDB stays as it was, Redis is not restarted.
    let library = "/usr/share/okome-backend/okome.lua";
    let good = std::fs::read_to_string(chroot.path(library))?;
    std::fs::write(chroot.path(library), "#!lua name=okome\nthis is not lua\n")?;
    let before = chroot.sh(&format!("sha256sum < {PRELOAD}"))?;
    let _ = std::fs::remove_file(chroot.path(LOG));
    let out = chroot.try_sh(&with_stubs("dpkg-reconfigure okome-backend"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(chroot.path(LOG)).unwrap_or_default();
    if out.status.success()
        || !said.contains("FAILED to build the okome function library's preload")
        || log.contains("redis-server")
        || chroot.sh(&format!("sha256sum < {PRELOAD}"))? != before
        || chroot.exists(&format!("{PRELOAD}.new"))
    {
        return Err(format!(
            "a library Redis refuses: expected a failed configure that names the \
             preload, no restart and the RDB untouched; got {}:\n{said}\n{log}",
            out.status
        )
        .into());
    }
    eprintln!("xtask dist: a broken library failed the configure and left the preload as it was");
    std::fs::write(chroot.path(library), good)?;
    step("library repaired", "dpkg-reconfigure okome-backend", 0)?;
    // A changed config that loads: one restart.
    std::fs::write(
        chroot.path(conf),
        set.replace("maxmemory 256mb", "maxmemory 200mb"),
    )?;
    step("config changed", "dpkg-reconfigure okome-backend", 1)?;
    // A broken one: none, and why.
    std::fs::write(
        chroot.path(conf),
        set.replace(
            "maxmemory-policy allkeys-lru",
            "maxmemory-policy allkeys-lruu",
        ),
    )?;
    let said = step("config broken", "dpkg-reconfigure okome-backend", 0)?;
    if !said.contains("refuses /etc/redis/okome.conf") || !said.contains("allkeys-lruu") {
        return Err(format!("a broken config was not reported:\n{said}").into());
    }
    // fail2ban that does not come up: said loudly, the install still works.
    std::fs::remove_file(chroot.path(UP))?;
    let said = step("fail2ban down", "dpkg-reconfigure okome-node", 0)?;
    if !said.contains("NO protection against SSH") {
        return Err(format!("a dead fail2ban was not reported:\n{said}").into());
    }
    chroot.sh(&with_stubs("apt-get purge -y -q okome-backend okome-node"))?;
    chroot.expect(PRELOAD, false, "purge deletes the okome library's preload")?;
    std::fs::write(&policy, denying)?;
    std::fs::remove_dir_all(chroot.path(STUBS))?;
    std::fs::remove_dir(chroot.path("/run/systemd/system"))?;
    Ok(())
}

/// Where okome-backend's postinst writes the okome library's preload RDB.
const PRELOAD: &str = "/var/lib/redis/okome-functions.rdb";

/// The library version the upgrade-with-a-changed-library package carries.
const NEXT_LIBRARY_VERSION: &str = "999.0.0-install-test";

/// `OKOME_VERSION` of the shipped configs/redis-backend/okome.lua.
fn shipped_library_version() -> Result<String> {
    let path = crate::cmd::workspace_root().join(super::deb::LIBRARY_SOURCE);
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("local OKOME_VERSION = '")?
                .strip_suffix('\'')
        })
        .map(str::to_string)
        .ok_or_else(|| format!("no OKOME_VERSION line in {}", path.display()).into())
}

/// okome-backend built at revision 3 with a library that differs from the
/// shipped one only in its version.
pub fn next_library_backend(dir: &Path) -> Result<PathBuf> {
    let version = shipped_library_version()?;
    let shipped =
        std::fs::read_to_string(crate::cmd::workspace_root().join(super::deb::LIBRARY_SOURCE))?;
    let next = shipped.replace(
        &format!("local OKOME_VERSION = '{version}'"),
        &format!("local OKOME_VERSION = '{NEXT_LIBRARY_VERSION}'"),
    );
    std::fs::create_dir_all(dir)?;
    let library = dir.join("okome-next.lua");
    std::fs::write(&library, next)?;
    super::deb::backend_with_library("3", dir, &library)
}

/// The preload RDB is `640 redis:redis` and a redis-server started on it
/// alone (no FUNCTION LOAD, no TCP port: a unix socket in a temp dir) has
/// the okome library of version `want`.
fn check_preload(chroot: &Chroot, want: &str) -> Result {
    check_secrets_of(chroot, PRELOAD, "640 redis:redis")?;
    let got = chroot.sh(&format!(
        "d=$(mktemp -d)\n\
         redis-server --port 0 --unixsocket $d/s --unixsocketperm 700 --save '' \
           --appendonly no --dir {dir} --dbfilename {file} --daemonize no \
           --logfile $d/log &\n\
         pid=$!\n\
         i=0\n\
         until redis-cli -s $d/s PING 2>/dev/null | grep -q PONG; do\n\
           i=$((i + 1)); if [ $i -ge 100 ] || ! kill -0 $pid; then cat $d/log >&2; exit 1; fi\n\
           sleep 0.1\n\
         done\n\
         redis-cli -s $d/s FCALL_RO okome_version 0\n\
         kill $pid; wait $pid || true; rm -rf $d",
        dir = "/var/lib/redis",
        file = "okome-functions.rdb",
    ))?;
    if got.trim() != want {
        return Err(format!(
            "redis-server on {PRELOAD} says okome_version {:?}, expected {want:?}",
            got.trim()
        )
        .into());
    }
    eprintln!("xtask dist: {PRELOAD} preloads okome {want}");
    Ok(())
}

/// `file` has mode and owner `want` (`640 root:redis`).
fn check_secrets_of(chroot: &Chroot, file: &str, want: &str) -> Result {
    let got = chroot.sh(&format!("stat -c '%a %U:%G' {file}"))?;
    if got.trim() != want {
        return Err(format!("{file} is {}, expected {want}", got.trim()).into());
    }
    Ok(())
}

fn wants_link(package: &str) -> String {
    format!("/etc/systemd/system/timers.target.wants/{package}.timer")
}

fn check_versions(chroot: &Chroot, packages: &[String], version: &str) -> Result {
    let out = chroot.sh(&format!(
        "dpkg-query -W -f='${{Package}} ${{Version}} ${{db:Status-Abbrev}}\\n' {}",
        packages.join(" ")
    ))?;
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || fields[1] != version || fields[2] != "ii" {
            return Err(format!("expected {version} installed (ii), got: {line}").into());
        }
    }
    Ok(())
}

/// What an installed set must look like, with no systemd anywhere.
fn check_installed(chroot: &Chroot) -> Result {
    for tool in TOOLS {
        let p = tool.package;
        chroot.sh(&format!("{p} --version"))?;
        chroot.expect(&format!("/usr/share/man/man1/{p}.1.gz"), true, "man page")?;
        chroot.expect(
            &format!("/usr/share/bash-completion/completions/{p}"),
            true,
            "bash completion",
        )?;
        chroot.expect(
            &format!("/usr/share/zsh/vendor-completions/_{p}"),
            true,
            "zsh completion",
        )?;
        chroot.expect(
            &format!("/usr/share/fish/vendor_completions.d/{p}.fish"),
            true,
            "fish completion",
        )?;
        chroot.expect(&format!("/etc/default/{p}"), true, "defaults conffile")?;
        chroot.expect(&format!("/usr/share/doc/{p}/copyright"), true, "copyright")?;
        let link = wants_link(p);
        chroot.expect(
            &link,
            tool.has_timer(),
            "the timer is enabled on install (none without a timer)",
        )?;
        if tool.has_timer() {
            let target = std::fs::read_link(chroot.path(&link))?;
            if !chroot.exists(&target.to_string_lossy()) {
                return Err(
                    format!("{link} points at {}, which is missing", target.display()).into(),
                );
            }
        }
    }
    chroot.sh("nginx -t")?;
    Ok(())
}

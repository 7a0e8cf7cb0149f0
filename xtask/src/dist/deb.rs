//! The `.deb` packages: one per tool and architecture through cargo-deb
//! (configured in each tool's `[package.metadata.deb]`), and the node-role
//! config packages — `okome-node` (the hardening both Pis share), and
//! `okome-frontend` / `okome-backend` which depend on it — staged here and
//! built with `dpkg-deb`, then every one checked by lintian.
//!
//! The config packages are `Architecture: all` and carry no Rust code, so a
//! staged tree is simpler and more honest than a fake crate for cargo-deb:
//! the table below says, file by file, where each shipped config lands on a
//! node. Maintainer scripts stay in `debian/` as plain shell, where a Debian
//! packager expects them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Binary, out_dir};
use crate::Result;
use crate::cmd::{self, cargo, run, workspace_root};

/// The Debian upstream version: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const MAINTAINER: &str = "OKOME maintainers <maintainers@okome.invalid>";

/// Package one tool binary with cargo-deb (metadata in its Cargo.toml).
pub fn tool_package(binary: &Binary, revision: &str, deb_dir: &Path) -> Result<PathBuf> {
    let target = binary.target;
    let stdout = cmd::output(
        cargo()
            .args(["deb", "--no-build", "--no-strip", "--no-dbgsym", "-p"])
            .arg(binary.tool.package)
            .args(["--target", target.triple, "--deb-revision", revision])
            .arg("--output")
            .arg(deb_dir)
            // cargo-deb finds `target/release/<bin>` of its assets under the
            // dist target dir, per triple.
            .env("CARGO_TARGET_DIR", super::target_dir(&target)),
    )?;
    let path = stdout
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .ok_or_else(|| format!("cargo deb printed no .deb path: {stdout}"))?;
    let path = PathBuf::from(path.trim());
    let expected = format!(
        "{}_{VERSION}-{revision}_{}.deb",
        binary.tool.package, target.deb_arch
    );
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(format!("cargo deb wrote {}, expected {expected}", path.display()).into());
    }
    verify_tool_package(&path, binary)?;
    Ok(path)
}

/// The package must say the right architecture and carry exactly the
/// binary dist built, stripped and measured (not some other build that
/// cargo-deb found in a target dir).
fn verify_tool_package(deb: &Path, binary: &Binary) -> Result {
    let arch = cmd::output(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(deb)
            .arg("Architecture"),
    )?;
    if arch.trim() != binary.target.deb_arch {
        return Err(format!(
            "{}: Architecture {}, expected {}",
            deb.display(),
            arch.trim(),
            binary.target.deb_arch
        )
        .into());
    }
    let packaged = Command::new("sh")
        .args([
            "-c",
            "dpkg-deb --fsys-tarfile \"$0\" | tar -xO \"./usr/bin/$1\"",
        ])
        .arg(deb)
        .arg(binary.tool.package)
        .output()
        .map_err(|e| format!("reading {}: {e}", deb.display()))?;
    let built = std::fs::read(&binary.path)?;
    if !packaged.status.success() || packaged.stdout != built {
        return Err(format!(
            "{} does not carry the binary dist built ({})",
            deb.display(),
            binary.path.display()
        )
        .into());
    }
    Ok(())
}

/// Where one shipped file lands on a node.
#[derive(Debug)]
struct Install {
    /// Path in the repository.
    source: &'static str,
    /// Absolute path on the node.
    dest: &'static str,
    /// File mode on the node: 0644, or 0755 for a program.
    mode: u32,
}

/// A node-role config package.
#[derive(Debug)]
struct ConfigPackage {
    name: &'static str,
    depends: &'static str,
    /// Packages whose files this one took over: any version older than
    /// this build is broken by it and replaced (Breaks + Replaces).
    takes_over: &'static [&'static str],
    synopsis: &'static str,
    description: &'static str,
    files: &'static [Install],
}

const fn file(source: &'static str, dest: &'static str) -> Install {
    Install {
        source,
        dest,
        mode: 0o644,
    }
}

/// A program the maintainer scripts run (not on PATH: /usr/lib/<package>).
const fn program(source: &'static str, dest: &'static str) -> Install {
    Install {
        source,
        dest,
        mode: 0o755,
    }
}

const CONFIG_PACKAGES: &[ConfigPackage] = &[
    ConfigPackage {
        name: "okome-node",
        // RequiredRSASize (sshd hardening) needs OpenSSH 9.1: on an older
        // sshd the drop-in would stop sshd from starting.
        depends: "openssh-server (>= 1:9.1), fail2ban, python3-systemd, nftables",
        takes_over: &["okome-frontend"],
        synopsis: "OKOME cache node hardening shared by both Pis: sshd, fail2ban, sysctl, journald",
        description: " What every OKOME Raspberry Pi runs, frontend and backend alike: an\n \
                      sshd hardening drop-in (keys only, no root login, modern\n \
                      algorithms), a fail2ban sshd jail on the journal, SD-card and\n \
                      small-node sysctl settings, and journald in RAM sized for a 1 GB\n \
                      Pi's /run.\n \
                      .\n \
                      The sshd hardening is armed only when a member of group sudo has\n \
                      an authorized key sshd accepts; otherwise it stays disarmed and\n \
                      the install says so. The postinst restarts fail2ban on the okome\n \
                      jail and checks that it runs.",
        files: &[
            // Armed by the postinst (a link in sshd_config.d) only when a
            // sudo login has a usable key: never in sshd_config.d directly.
            file(
                "configs/ssh/sshd_config.d/okome.conf",
                "/etc/ssh/okome/okome.conf",
            ),
            // The .d directories, so the operator's own jail.local and
            // fail2ban.local stay theirs.
            file(
                "configs/fail2ban/jail.local",
                "/etc/fail2ban/jail.d/okome.local",
            ),
            file(
                "configs/fail2ban/fail2ban.local",
                "/etc/fail2ban/fail2ban.d/okome.local",
            ),
            file("configs/sysctl-okome.conf", "/etc/sysctl.d/90-okome.conf"),
            file(
                "configs/journald.conf",
                "/etc/systemd/journald.conf.d/okome.conf",
            ),
            // fstab is the operator's (PARTUUIDs differ per card): an example.
            file(
                "configs/fstab-hardened.conf",
                "/usr/share/doc/okome-node/examples/fstab-hardened.conf",
            ),
        ],
    },
    ConfigPackage {
        name: "okome-frontend",
        depends: "nginx, keepalived, okome-node (>= 0.1.0), \
                  okome-health-probe (>= 0.1.0), okome-prewarm (>= 0.1.0), \
                  okome-hit-ratio (>= 0.1.0)",
        takes_over: &[],
        synopsis: "OKOME edge-cache node: nginx edge cache and keepalived VIP configs",
        description: " The configuration of an OKOME frontend Raspberry Pi: the nginx edge\n \
                      cache site with its health gate and canary policies, keepalived\n \
                      master/backup configs for the shared VIP and the node_exporter\n \
                      textfile drop-in. The sshd, fail2ban, sysctl and journald\n \
                      hardening comes with okome-node.\n \
                      .\n \
                      The postinst enables the nginx site and refuses to leave nginx\n \
                      failing `nginx -t`: it rolls its own files back if the test fails.",
        files: &[
            file(
                "configs/nginx-frontend/okome-frontend.conf",
                "/etc/nginx/sites-available/okome-frontend.conf",
            ),
            file(
                "configs/nginx-frontend/upstream.conf",
                "/etc/nginx/okome/upstream.conf",
            ),
            file(
                "configs/nginx-frontend/health_state.conf",
                "/etc/nginx/okome/health_state.conf",
            ),
            file(
                "configs/nginx-frontend/okome-logformat.conf",
                "/etc/nginx/okome/okome-logformat.conf",
            ),
            file(
                "configs/nginx-frontend/canary_maps.conf",
                "/etc/nginx/okome/canary_maps.conf",
            ),
            file(
                "configs/nginx-frontend/canary_policies.conf",
                "/etc/nginx/okome/canary_policies.conf",
            ),
            // keepalived reads only keepalived.conf, and which Pi is master is
            // the operator's choice (both master would hold the VIP twice):
            // ship both, the README says which to link.
            file(
                "configs/keepalived/keepalived-master.conf",
                "/etc/keepalived/okome/keepalived-master.conf",
            ),
            file(
                "configs/keepalived/keepalived-backup.conf",
                "/etc/keepalived/okome/keepalived-backup.conf",
            ),
            file(
                "configs/systemd/prometheus-node-exporter.service.d/okome.conf",
                "/etc/systemd/system/prometheus-node-exporter.service.d/okome.conf",
            ),
        ],
    },
    ConfigPackage {
        name: "okome-backend",
        // Functions (FUNCTION LOAD, FCALL, --functions-rdb) came with Redis 7.
        depends: "redis-server (>= 5:7.0), redis-tools (>= 5:7.0), okome-node (>= 0.1.0)",
        takes_over: &[],
        synopsis: "OKOME cache backend node: hardened cache-only Redis config",
        description: " The configuration of the OKOME backend Raspberry Pi: a cache-only\n \
                      Redis (no persistence, allkeys-lru, maxmemory sized for a 1 GB\n \
                      Pi, ACL users) in /etc/redis/okome.conf, a systemd drop-in that\n \
                      makes redis-server.service use it and come back on its own after\n \
                      a power cut, and the sysctl that lets Redis bind its LAN address\n \
                      before DHCP brings it up. Debian's own /etc/redis/redis.conf\n \
                      stays untouched. The postinst restarts Redis only when the\n \
                      config changed and loads, never on the placeholder passwords.\n \
                      .\n \
                      It also ships the okome Redis function library (planner cache,\n \
                      agent budgets) and preloads it: the postinst writes a\n \
                      functions-only RDB that Redis loads at every start, so the\n \
                      library is there before the first client, after a restart, a\n \
                      crash or an upgrade.",
        files: &[
            file("configs/redis-backend/redis.conf", "/etc/redis/okome.conf"),
            file(
                "configs/redis-backend/sysctl-okome-backend.conf",
                "/etc/sysctl.d/90-okome-backend.conf",
            ),
            file(
                "debian/okome-backend/redis-server.service.d/okome.conf",
                "/etc/systemd/system/redis-server.service.d/okome.conf",
            ),
            // The function library and its preload: the postinst builds
            // /var/lib/redis/okome-functions.rdb from them on the node (an
            // RDB built here could be a format the node's Redis refuses).
            // Not conffiles: the library is code, versioned with the package.
            file(LIBRARY_SOURCE, "/usr/share/okome-backend/okome.lua"),
            program(
                "configs/redis-backend/okome-functions-rdb",
                "/usr/lib/okome-backend/okome-functions-rdb",
            ),
        ],
    },
];

/// Build every config package with Debian revision `revision`.
pub fn config_packages(revision: &str, deb_dir: &Path) -> Result<Vec<PathBuf>> {
    CONFIG_PACKAGES
        .iter()
        .map(|package| config_package(package, revision, deb_dir))
        .collect()
}

/// The okome function library as shipped (repository path).
pub const LIBRARY_SOURCE: &str = "configs/redis-backend/okome.lua";

/// okome-backend with revision `revision` whose function library is `library`
/// instead of the shipped one: the install test upgrades to it to see the
/// postinst restart Redis on a changed library alone.
pub fn backend_with_library(revision: &str, deb_dir: &Path, library: &Path) -> Result<PathBuf> {
    let backend = CONFIG_PACKAGES
        .iter()
        .find(|p| p.name == "okome-backend")
        .ok_or("no okome-backend package")?;
    config_package_from(backend, revision, deb_dir, &|source| {
        if source == LIBRARY_SOURCE {
            library.to_path_buf()
        } else {
            workspace_root().join(source)
        }
    })
}

fn config_package(package: &ConfigPackage, revision: &str, deb_dir: &Path) -> Result<PathBuf> {
    config_package_from(package, revision, deb_dir, &|source| {
        workspace_root().join(source)
    })
}

/// Build `package`, reading each shipped file from `source_of(repo path)`.
fn config_package_from(
    package: &ConfigPackage,
    revision: &str,
    deb_dir: &Path,
    source_of: &dyn Fn(&str) -> PathBuf,
) -> Result<PathBuf> {
    let root = workspace_root();
    let stage = out_dir().join("stage").join(package.name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let mut conffiles = String::new();
    for install in package.files {
        let source = source_of(install.source);
        let dest = stage.join(install.dest.trim_start_matches('/'));
        copy(&source, &dest, install.mode)?;
        if install.dest.starts_with("/etc/") {
            writeln!(conffiles, "{}", install.dest)?;
        }
    }
    let doc = stage.join("usr/share/doc").join(package.name);
    copy(
        &root.join("debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    copy(
        &root.join("debian/config.lintian-overrides"),
        &stage.join("usr/share/lintian/overrides").join(package.name),
        0o644,
    )?;
    gzip(
        &root.join("debian/changelog"),
        &doc.join("changelog.Debian.gz"),
    )?;
    let control_dir = stage.join("DEBIAN");
    std::fs::create_dir_all(&control_dir)?;
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let source = root
            .join("debian")
            .join(format!("{}.{script}", package.name));
        if source.exists() {
            copy(&source, &control_dir.join(script), 0o755)?;
        }
    }
    std::fs::write(control_dir.join("conffiles"), conffiles)?;
    let md5sums = cmd::output(
        Command::new("sh")
            .args([
                "-c",
                "find usr etc -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum",
            ])
            .current_dir(&stage),
    )?;
    std::fs::write(control_dir.join("md5sums"), md5sums)?;
    let installed_kib: u64 = cmd::output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN", "."])
            .current_dir(&stage),
    )?
    .split_whitespace()
    .next()
    .and_then(|n| n.parse().ok())
    .ok_or("du printed no size")?;
    let mut relations = String::new();
    if !package.takes_over.is_empty() {
        let older: Vec<String> = package
            .takes_over
            .iter()
            .map(|p| format!("{p} (<< {VERSION}-{revision})"))
            .collect();
        writeln!(relations, "Breaks: {}", older.join(", "))?;
        writeln!(relations, "Replaces: {}", older.join(", "))?;
    }
    let control = format!(
        "Package: {name}\n\
         Version: {VERSION}-{revision}\n\
         Architecture: all\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         {relations}\
         Section: admin\n\
         Priority: optional\n\
         Homepage: https://okome.invalid/okome-cache-node\n\
         Description: {synopsis}\n\
         {description}\n",
        name = package.name,
        depends = package.depends,
        synopsis = package.synopsis,
        description = package.description,
    );
    std::fs::write(control_dir.join("control"), control)?;
    let deb = deb_dir.join(format!("{}_{VERSION}-{revision}_all.deb", package.name));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

/// What okome-frontend was before okome-node existed, reduced to the node
/// hardening it shipped (same paths, armed sshd drop-in included), at a
/// version below every build: the install test installs it first, so the
/// upgrade that hands its files to okome-node (Breaks/Replaces) is tested.
pub fn old_frontend(dir: &Path) -> Result<PathBuf> {
    const SHIPPED: &[(&str, &str)] = &[
        (
            "configs/ssh/sshd_config.d/okome.conf",
            "/etc/ssh/sshd_config.d/okome.conf",
        ),
        (
            "configs/fail2ban/jail.local",
            "/etc/fail2ban/jail.d/okome.local",
        ),
        (
            "configs/fail2ban/fail2ban.local",
            "/etc/fail2ban/fail2ban.d/okome.local",
        ),
        ("configs/sysctl-okome.conf", "/etc/sysctl.d/90-okome.conf"),
        (
            "configs/journald.conf",
            "/etc/systemd/journald.conf.d/okome.conf",
        ),
    ];
    let stage = out_dir().join("stage").join("okome-frontend-old");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let mut conffiles = String::new();
    for (source, dest) in SHIPPED {
        let target = stage.join(dest.trim_start_matches('/'));
        copy(&workspace_root().join(source), &target, 0o644)?;
        writeln!(conffiles, "{dest}")?;
    }
    // Its sshd drop-in as it was: the same settings, other comments.
    let drop_in = stage.join("etc/ssh/sshd_config.d/okome.conf");
    let text = std::fs::read_to_string(&drop_in)?;
    std::fs::write(&drop_in, format!("# as okome-frontend shipped it\n{text}"))?;
    std::fs::create_dir_all(stage.join("DEBIAN"))?;
    std::fs::write(stage.join("DEBIAN/conffiles"), conffiles)?;
    std::fs::write(
        stage.join("DEBIAN/control"),
        format!(
            "Package: okome-frontend\nVersion: {VERSION}-0\nArchitecture: all\n\
             Maintainer: {MAINTAINER}\nDescription: okome-frontend before okome-node (install test)\n \
             Only the node hardening files it used to ship.\n"
        ),
    )?;
    let deb = dir.join(format!("okome-frontend_{VERSION}-0_all.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

/// Copy `source` to `dest` (creating directories) with `mode`.
fn copy(source: &Path, dest: &Path, mode: u32) -> Result {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(source, dest).map_err(|e| format!("copy {}: {e}", source.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `gzip -9n`: what Debian policy wants for changelogs (no name, no time,
/// so rebuilds are byte-identical).
pub fn gzip(source: &Path, dest: &Path) -> Result {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = Command::new("gzip")
        .args(["-9nc"])
        .arg(source)
        .output()
        .map_err(|e| format!("gzip {}: {e}", source.display()))?;
    if !out.status.success() {
        return Err(format!("gzip {} failed", source.display()).into());
    }
    std::fs::write(dest, out.stdout)?;
    Ok(())
}

/// lintian must find no error and no warning on any package; overrides ship
/// inside the packages, each with its reason.
pub fn lintian(debs: &[PathBuf]) -> Result {
    run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .args(debs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of configs/ reaches a node through some package, or is
    /// named here with the reason it does not: a config added later cannot
    /// silently miss the .deb.
    #[test]
    fn every_shipped_config_is_packaged() {
        const NOT_PACKAGED: &[(&str, &str)] = &[(
            "configs/dashboards/grafana/okome-cache-hitmiss.json",
            "imported into Grafana, which runs on neither Pi",
        )];
        let root = workspace_root();
        let mut files = Vec::new();
        let mut dirs = vec![root.join("configs")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    files.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut tool_assets = String::new();
        for tool in super::super::TOOLS {
            let dir = tool.package.trim_start_matches("okome-");
            tool_assets
                .push_str(&std::fs::read_to_string(root.join(dir).join("Cargo.toml")).unwrap());
        }
        let missing: Vec<&String> = files
            .iter()
            .filter(|f| {
                !CONFIG_PACKAGES
                    .iter()
                    .any(|p| p.files.iter().any(|i| i.source == f.as_str()))
                    && !tool_assets.contains(&format!("\"../{f}\""))
                    && !NOT_PACKAGED.iter().any(|(n, _)| n == f)
            })
            .collect();
        assert!(missing.is_empty(), "configs in no package: {missing:?}");
        for package in CONFIG_PACKAGES {
            for install in package.files {
                assert!(root.join(install.source).is_file(), "{}", install.source);
            }
        }
    }
}

//! Cached per-role trees: the lab's nodes boot on overlays over these, so a
//! warm cluster start does no unpacking and no apt at all.
//!
//! A role tree is the booted harness's debootstrapped tree (booted.rs) with
//! the role's packages installed by apt inside a booted container (private
//! network, maintainer scripts and service starts as on a node), shut down
//! and kept unpacked under /var/cache/okome-ci/cluster. Its key covers the
//! base tarball's name (package lists, ISO week), the role, the setup
//! steps' version and the bytes of every `.deb` installed, so a rebuilt
//! package rebuilds the tree. The orchestrator and client boot on the bare
//! tree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::Result;
use crate::booted::{BootedNode, Network, Rootfs, RootfsSpec, fnv1a};
use crate::render::{REDIS_PASSWORD, Role};

const CACHE_DIR: &str = "/var/cache/okome-ci/cluster";
/// Bump when a setup step below changes: the key then changes too.
const SETUP_VERSION: &str = "1";
/// Other keys' trees older than this are removed (younger ones may be in
/// use by a concurrent run's overlays).
const STALE_AFTER: Duration = Duration::from_secs(3 * 3600);

/// Packages only a frontend gets; every other okome package (okome-node,
/// and any later one such as okome-validate) goes on the backend too.
const FRONTEND_ONLY: &[&str] = &[
    "okome-frontend",
    "okome-health-probe",
    "okome-prewarm",
    "okome-hit-ratio",
    "okome-golden-image",
];

fn package_name(deb: &Path) -> String {
    deb.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .split('_')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The packages of `role` among `debs`.
pub fn debs_for(role: Role, debs: &[PathBuf]) -> Vec<PathBuf> {
    debs.iter()
        .filter(|deb| {
            let name = package_name(deb);
            match role {
                Role::Frontend => name != "okome-backend",
                Role::Backend => !FRONTEND_ONLY.contains(&name.as_str()),
                Role::Orchestrator | Role::Client => false,
            }
        })
        .cloned()
        .collect()
}

/// A package's identity without its build time: the names and contents of
/// its control members (control, conffiles, maintainer scripts) and of its
/// files. The `.deb` bytes themselves change with every rebuild (member
/// mtimes), which would rebuild the trees each run.
fn content_key(deb: &Path) -> Result<u64> {
    let out = crate::cmd::finished(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(
                "set -e; for part in --ctrl-tarfile --fsys-tarfile; do \
                 dpkg-deb $part \"$0\" | tar -t; dpkg-deb $part \"$0\" | tar -xO; done",
            )
            .arg(deb),
    )?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!("{}: cannot read its control members", deb.display()).into());
    }
    Ok(fnv1a(&out.stdout))
}

/// The unpacked lower trees, one per role.
#[derive(Debug, Clone)]
pub struct Trees {
    pub frontend: PathBuf,
    pub backend: PathBuf,
    /// The bare tree: orchestrator and client.
    pub base: PathBuf,
}

impl Trees {
    pub fn for_role(&self, role: Role) -> &Path {
        match role {
            Role::Frontend => &self.frontend,
            Role::Backend => &self.backend,
            Role::Orchestrator | Role::Client => &self.base,
        }
    }
}

/// The trees for `debs` (every okome amd64/all package), built in parallel
/// where missing.
pub fn trees(debs: &[PathBuf]) -> Result<Trees> {
    let spec = RootfsSpec::for_debs(debs)?;
    let tarball = spec.tarball()?;
    let base_name = tarball
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(CACHE_DIR)?;
    let mut keys = Vec::new();
    for role in [Role::Frontend, Role::Backend] {
        let mut material = format!("{base_name}|{SETUP_VERSION}|{role}");
        let mut chosen = debs_for(role, debs);
        chosen.sort_by_key(|d| d.file_name().map(|n| n.to_owned()));
        for deb in &chosen {
            material.push_str(&format!("|{:016x}", content_key(deb)?));
        }
        keys.push((role, chosen, fnv1a(material.as_bytes())));
    }
    let trees = Trees {
        frontend: Path::new(CACHE_DIR).join(format!("frontend-{:016x}", keys[0].2)),
        backend: Path::new(CACHE_DIR).join(format!("backend-{:016x}", keys[1].2)),
        base: Path::new(CACHE_DIR).join(format!("base-{:016x}", fnv1a(base_name.as_bytes()))),
    };
    remove_stale(&trees);
    let errors: Vec<String> =
        std::thread::scope(|scope| {
            let mut jobs = Vec::new();
            if trees.base.exists() {
                touch(&trees.base);
            } else {
                jobs.push(scope.spawn(|| {
                    build_base(&spec, &trees.base).map_err(|e| format!("base tree: {e}"))
                }));
            }
            for (role, chosen, _) in &keys {
                let dest = trees.for_role(*role).to_path_buf();
                if dest.exists() {
                    eprintln!("okome-cluster: reusing the {role} tree {}", dest.display());
                    touch(&dest);
                    continue;
                }
                let spec = &spec;
                jobs.push(scope.spawn(move || {
                    build_role(spec, *role, chosen, &dest).map_err(|e| format!("{role} tree: {e}"))
                }));
            }
            jobs.into_iter()
                .filter_map(|job| match job.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some("a tree build panicked".to_string()),
                })
                .collect()
        });
    if !errors.is_empty() {
        return Err(errors.join("\n").into());
    }
    Ok(trees)
}

/// Move a finished tree to `dest`; a concurrent run that got there first
/// wins (its tree is the same).
fn keep(rootfs: Rootfs, dest: &Path) -> Result {
    match rootfs.keep_tree(dest) {
        Ok(()) => {}
        Err(_) if dest.exists() => {}
        Err(error) => return Err(error),
    }
    touch(dest);
    Ok(())
}

/// Mark a tree as used now: remove_stale goes by this mtime (a tree's own
/// mtime is its tarball's root's, hours or days old).
fn touch(tree: &Path) {
    if let Ok(dir) = std::fs::File::open(tree) {
        let _ = dir.set_modified(SystemTime::now());
    }
}

fn build_base(spec: &RootfsSpec, dest: &Path) -> Result {
    let rootfs = Rootfs::unpack(spec, "okc-build-base")?;
    keep(rootfs, dest)
}

fn build_role(spec: &RootfsSpec, role: Role, debs: &[PathBuf], dest: &Path) -> Result {
    let started = Instant::now();
    let rootfs = Rootfs::unpack(spec, &format!("okc-build-{role}"))?;
    let args = rootfs.copy_in(debs, "/root/okome-debs")?.join(" ");
    let node = BootedNode::boot(&rootfs, Network::Private)?;
    match role {
        Role::Frontend => {
            // As the booted suite: a node that already runs node_exporter
            // (okome-frontend ships a drop-in for it), without recommends
            // (nvme-cli's units fail in any container).
            node.sh(&format!(
                "apt-get install -y -q --no-install-recommends {}",
                crate::booted::NODE_EXPORTER
            ))?;
            node.sh(&format!("apt-get install -y -q {args}"))?;
        }
        Role::Backend => {
            node.sh(&format!("apt-get install -y -q {args}"))?;
            // The operator's step after install: real password hashes for
            // the shipped placeholders, then reconfigure (Redis moves onto
            // okome.conf). The bind address is rendered per node.
            node.sh(&format!(
                "hash=$(printf %s '{REDIS_PASSWORD}' | sha256sum | cut -d' ' -f1)
                 sed -i -e \"s/#0\\{{64\\}}/#$hash/\" -e \"s/#1\\{{64\\}}/#$hash/\" \
                     -e \"s/#2\\{{64\\}}/#$hash/\" /etc/redis/okome.conf
                 grep -c \"#$hash\" /etc/redis/okome.conf | grep -qx 3
                 dpkg-reconfigure okome-backend"
            ))?;
        }
        Role::Orchestrator | Role::Client => {}
    }
    node.sh("rm -rf /root/okome-debs && apt-get clean")?;
    drop(node);
    keep(rootfs, dest)?;
    eprintln!(
        "okome-cluster: built the {role} tree in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Remove other keys' trees older than [`STALE_AFTER`].
fn remove_stale(current: &Trees) {
    let Ok(entries) = std::fs::read_dir(CACHE_DIR) else {
        return;
    };
    let keep = [&current.frontend, &current.backend, &current.base];
    for entry in entries.flatten() {
        let path = entry.path();
        if keep.iter().any(|k| **k == path) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            eprintln!("okome-cluster: removing a stale tree {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_split_the_packages() {
        let debs: Vec<PathBuf> = [
            "okome-frontend_0.1.0-1_all.deb",
            "okome-backend_0.1.0-1_all.deb",
            "okome-node_0.1.0-1_all.deb",
            "okome-prewarm_0.1.0-1_amd64.deb",
            "okome-validate_0.1.0-1_amd64.deb",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let names = |role| -> Vec<String> {
            debs_for(role, &debs)
                .iter()
                .map(|d| package_name(d))
                .collect()
        };
        assert_eq!(
            names(Role::Frontend),
            [
                "okome-frontend",
                "okome-node",
                "okome-prewarm",
                "okome-validate"
            ]
        );
        assert_eq!(
            names(Role::Backend),
            ["okome-backend", "okome-node", "okome-validate"]
        );
        assert!(names(Role::Client).is_empty());
    }
}

//! The lab root: a temporary directory laid out like a node's file system,
//! so the tools run against it with `OKOME_ROOT=<root>` exactly as they run
//! against `/` on a Pi.
//!
//! ```text
//! <root>/etc/nginx/okome/           shipped include files, rendered
//! <root>/etc/nginx/sites-enabled/   okome-frontend.conf, rendered
//! <root>/etc/redis/                 redis.conf, rendered
//! <root>/run/okome/                 flag file, tool state, metrics/
//! <root>/var/log/nginx/             okome_access.log, error.log
//! <root>/var/cache/nginx/okome/     the proxy cache
//! ```
//!
//! Removed on drop (with everything in it), even when a test panics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directories every lab root has (absolute node paths).
const LAYOUT: &[&str] = &[
    "/etc/nginx/okome",
    "/etc/nginx/sites-enabled",
    "/etc/redis",
    "/etc/default",
    "/run/okome",
    "/run/okome/metrics",
    "/run/redis",
    "/var/log/nginx",
    "/var/log/redis",
    "/var/cache/nginx/okome",
    "/var/lib/nginx",
    "/var/lib/redis",
];

/// The gate's flag file on a node (docs/design.md).
pub const FLAG_FILE: &str = "/run/okome/orchestrator.down";

/// A temporary node-shaped directory tree.
#[derive(Debug)]
pub struct LabRoot {
    dir: tempfile::TempDir,
}

impl LabRoot {
    /// Create the tree under the system temp directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("okome-lab-")
            .tempdir()
            .expect("creating the lab root in the temp directory");
        let root = Self { dir };
        for path in LAYOUT {
            fs::create_dir_all(root.path(path))
                .unwrap_or_else(|e| panic!("creating {}: {e}", root.path(path).display()));
        }
        // nginx workers run as an unprivileged user when the lab runs as
        // root: they must be able to traverse the tree to stat the flag
        // file (a silent EACCES would read as "gate open") and to write the
        // cache.
        root.chmod_tree(0o755);
        let cache = root.path("/var/cache/nginx/okome");
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", cache.display()));
        root
    }

    /// The root directory itself (the value of `OKOME_ROOT`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A node path (absolute, e.g. `/run/okome/x`) inside this root.
    pub fn path(&self, node_path: &str) -> PathBuf {
        let relative = node_path.trim_start_matches('/');
        self.dir.path().join(relative)
    }

    /// The gate's flag file inside this root.
    pub fn flag_file(&self) -> PathBuf {
        self.path(FLAG_FILE)
    }

    fn chmod_tree(&self, mode: u32) {
        fn walk(dir: &Path, mode: u32) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode));
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&entry.path(), mode);
                    }
                }
            }
        }
        walk(self.dir.path(), mode);
    }
}

impl Default for LabRoot {
    fn default() -> Self {
        Self::new()
    }
}

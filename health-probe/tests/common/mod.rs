//! What the probe tests share: the test kit's fake orchestrator (a real
//! listener on 127.0.0.1, answering up, an HTTP status, or hung) with the
//! answers the probe sees, and one probe "node" (a temp root) with the
//! binary run isolated in it.

#![allow(dead_code)]

use std::path::PathBuf;

pub use okome_testkit::http::refused_addr;
pub use okome_testkit::{FakeHttp, Reply};

/// A healthy orchestrator's answer: `200` with `body` (JSON).
pub fn up(body: &str) -> Reply {
    Reply::ok(body).header("Content-Type", "application/json")
}

/// An unhealthy one's: `code`, body `busy`.
pub fn status(code: u16) -> Reply {
    Reply::new(code, "busy").header("Content-Type", "application/json")
}

/// `http://127.0.0.1:port/health` of the fake.
pub fn health_url(server: &FakeHttp) -> String {
    format!("{}/health", server.url())
}

/// A loopback URL nothing listens on.
pub fn refused_url() -> String {
    format!("http://{}/health", refused_addr())
}

/// Paths of one probe "node" inside a temp dir.
#[derive(Debug)]
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        Node {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("run/okome")
    }
    pub fn gate(&self) -> PathBuf {
        self.state_dir().join("orchestrator.down")
    }
    pub fn state_file(&self) -> PathBuf {
        self.state_dir().join("health-probe.state")
    }
    pub fn textfile(&self) -> PathBuf {
        self.state_dir().join("metrics/okome-health-probe.prom")
    }

    /// The binary, rooted in this node, with a clean environment and fast
    /// deadlines; `url` is the orchestrator.
    pub fn probe(&self, url: &str) -> assert_cmd::Command {
        let mut command = bare(self.dir.path());
        command.args([
            "--url",
            url,
            "--node",
            "test-node",
            "--timeout",
            "300ms",
            "--connect-timeout",
            "200ms",
            "--recheck-pause",
            "50ms",
        ]);
        command
    }
}

/// The binary isolated (no inherited OKOME_* or JOURNAL_STREAM) with
/// `OKOME_ROOT=root`.
pub fn bare(root: &std::path::Path) -> assert_cmd::Command {
    okome_testkit::tool!("okome-health-probe", root)
}

//! The one OKOME test kit: what every tool's tests and the lab share, so no
//! test crate writes its own loopback server, environment scrubbing or
//! metrics check again.
//!
//! * [`tools`]: THE registry of shipped tools (one line each), read by
//!   `cargo xtask dist` (packages, man pages, qemu and install checks) and by
//!   the config tests (units, timers, `/etc/default` files against `--help`).
//! * [`tool`]: a tool binary run isolated (every `OKOME_*` and
//!   `JOURNAL_STREAM` removed, `OKOME_ROOT` set, a default timeout), and
//!   [`tool::spawn`] for a long-running one, killed by PID on drop.
//! * [`process::ProcessGuard`]: a child (and its process group) that dies
//!   with the guard, even on panic.
//! * [`http::FakeHttp`] and [`redis::FakeRedis`]: loopback servers on threads
//!   of the test process that answer by a closure and record what they got.
//! * [`metrics`]: "every emitted metric is a row of docs/metrics.md".
//! * [`tree`]: fixture trees (an input root, an expected output root) compared
//!   file by file, zram-generator style.
//!
//! It depends on no OKOME crate: each tool crate dev-depends on it, and a
//! dependency back on the tool would link a second copy of the crate under
//! test.

pub mod http;
pub mod metrics;
pub mod process;
pub mod redis;
pub mod tool;
pub mod tools;
pub mod tree;

pub use http::{FakeHttp, Reply, Seen};
pub use process::ProcessGuard;
pub use redis::FakeRedis;
pub use tools::{TOOLS, Timer, Tool};

/// Re-exported for [`tool!`]: callers need not name assert_cmd themselves.
#[doc(hidden)]
pub use assert_cmd as __assert_cmd;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `<root>/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test kit has a parent directory")
        .to_path_buf()
}

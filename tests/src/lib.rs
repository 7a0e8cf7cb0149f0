//! The OKOME loopback lab: the shipped configs brought up for real on one
//! machine, and the harness every end-to-end test in `tests/tests/` uses.
//!
//! The lab is the whole frontend/backend path on loopback: a stub
//! orchestrator ([`stub`]), real nginx on the SHIPPED `configs/nginx-frontend`
//! files and real redis-server on the SHIPPED `configs/redis-backend/redis.conf`,
//! both rendered by [`render`] with one substitution table (addresses,
//! ports, paths — nothing else). `cargo xtask lab` drives it for an operator;
//! the tests drive it to assert each behaviour.
//!
//! # The harness API (stable: add, don't break)
//!
//! ```no_run
//! use okome_lab::{Lab, Mode, Request};
//! use std::time::Duration;
//!
//! let lab = Lab::start();                        // stub + nginx; Lab::builder().redis(true).start() adds redis
//! let r = lab.get("/assets/app.js");             // through nginx (127.0.0.1:<free port>)
//! assert_eq!(r.cache_status(), "MISS");
//! let r = lab.send(Request::get("/").header("X-OKOME-Warm", "1").from("127.0.0.2".parse().unwrap()));
//! lab.stub.set_mode(Mode::Down);                 // Up | Down (503) | Hung | Refused
//! lab.stub.set_health(Mode::Hung);               // only /health
//! let seen = lab.stub.requests_to("/");          // method, target, headers (User-Agent, X-OKOME-Warm…)
//! lab.close_gate();                              // <root>/run/okome/orchestrator.down, as the probe writes it
//! let lines = lab.wait_for_log_lines(3, Duration::from_secs(2));  // okome_access.log
//! let out = lab.tool("okome-health-probe").arg("--help").output(); // OKOME_ROOT=<root>, binary from $OKOME_BIN_DIR
//! ```
//!
//! * [`Lab`] (`lab.root`, `lab.stub`, `lab.nginx`, `lab.redis()`, `lab.ports`):
//!   `get`, `send`, `url`, `addr`, `close_gate`/`open_gate`/`gate_closed`,
//!   `access_log_path`/`access_log_lines`/`wait_for_log_lines`, `tool`,
//!   `cache_entries`. Drop stops everything and removes the root.
//! * [`LabRoot`]: a temp directory shaped like a node (`run/okome/`,
//!   `var/log/nginx/`, `var/cache/nginx/okome/`, `etc/nginx/okome/` …);
//!   `path("/run/okome/x")` maps a node path into it.
//! * [`StubOrchestrator`]: `set_mode`, `set_health`, `requests`, `requests_to`,
//!   `count`, `total`, `per_second`, `clear_requests`, `hold`/`release`/
//!   `held`/`wait_held` (for `?hold=1` requests and `/api/stream?hold=1`).
//!   Query parameters `max_age`, `delay_ms`, `status`, `hold` shape any answer.
//! * [`Request`]/[`Response`]/[`OpenResponse`]: a raw HTTP/1.1 client
//!   (`from(ip)` binds the source address; `open` reads a body piece by piece).
//! * [`ProcessGuard`]: kills a process group by PID on drop, even on panic.
//! * [`free_port`], [`connect_from`], [`tool_bin`] / [`try_tool_bin`]
//!   (`$OKOME_BIN_DIR`, else `target/debug`), [`nginx::nginx_test`].
//! * [`render`]: the substitution table and the renderers
//!   (`render_frontend`, `render_redis`), and the site names as rendered
//!   (`LAB_PUBLIC_NAME`, `LAB_VIP_NAME`, `LAB_PI_A_NAME`, `LAB_PI_B_NAME`:
//!   nginx answers only these and 127.0.0.1/localhost, and the stub always
//!   sees `Host: LAB_PUBLIC_NAME`); [`nginx::Nginx`] and
//!   [`redis::Redis`] start the real programs (`try_start` returns their
//!   output instead of panicking); [`tour::run`] is what `cargo xtask lab`
//!   prints, every line a checked claim.
//! * [`check`]: the config checks' harness (`shipped`, `render` with
//!   substitutions that must apply, `run`/`describe`, a temp dir, processes
//!   under a [`ProcessGuard`]); the tool registry is `okome_testkit::TOOLS`.
//! * [`sshd::Sshd`]: a real sshd on 127.0.0.1 with its own keys and the
//!   `-o` options that reach it (okome-validate's `--cluster` tests).
//! * [`budgets`]: the client of the `okome` Redis function library (key
//!   schema, typed FCALLs, reload-once, fail-open) and [`budgets::TestRedis`],
//!   a redis-server with the backend's ACL users that restarts in place.
//!
//! Processes are started from the thread that owns the [`Lab`]: besides the
//! guard's Drop, the kernel stops them (PDEATHSIG) when that thread ends.

pub mod bins;
pub mod budgets;
pub mod check;
pub mod http;
pub mod lab;
pub mod net;
pub mod nginx;
pub mod planner;
pub mod process;
pub mod redis;
pub mod render;
pub mod root;
pub mod sshd;
pub mod stub;
pub mod tour;

pub use bins::{bin_dir, configs_dir, tool_bin, try_tool_bin, workspace_root};
pub use http::{OpenResponse, Request, Response};
pub use lab::{CacheEntry, Lab, LabBuilder};
pub use net::{connect_from, free_port};
pub use process::ProcessGuard;
pub use root::{FLAG_FILE, LabRoot};
pub use stub::{Mode, RecordedRequest, StubOrchestrator};

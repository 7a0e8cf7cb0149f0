//! A real local HTTP listener the probe tests point the binary at, and the
//! command builder they share.
//!
//! The listener runs on threads of the test process (so it dies with the
//! test, no PID to guard) on a free port of 127.0.0.1, and switches between
//! the ways an orchestrator can be unhealthy: up, an HTTP status, hung
//! (accepts, reads, never answers) and refused (port closed).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the listener answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `200` with this body.
    Up(String),
    /// This status, body `busy`.
    Status(u16),
    /// Accept, read the request, never answer.
    Hung,
}

#[derive(Debug)]
struct Shared {
    mode: Mutex<Mode>,
    hits: AtomicUsize,
}

/// A running test listener.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Start answering `mode` on a free loopback port.
    pub fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind test listener");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            hits: AtomicUsize::new(0),
        });
        let for_thread = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&for_thread);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Server { addr, shared }
    }

    /// `http://127.0.0.1:port/health`.
    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// Change the behaviour for the next connections (hung ones are released).
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let mode = shared.mode.lock().unwrap().clone();
    let (status, body) = match mode {
        Mode::Up(body) => (200, body),
        Mode::Status(code) => (code, "busy".to_string()),
        Mode::Hung => {
            // Hold the connection open, silent, until the mode changes.
            while *shared.mode.lock().unwrap() == Mode::Hung {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
    };
    let answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
}

/// A loopback URL nothing listens on (bound, then released).
pub fn refused_url() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/health")
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

/// The binary with `OKOME_ROOT=root` and no inherited OKOME_* settings.
pub fn bare(root: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin!("okome-health-probe"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OKOME_") {
            command.env_remove(&key);
        }
    }
    command.env_remove("JOURNAL_STREAM").env("OKOME_ROOT", root);
    command
}

/// Parse `--json` output.
pub fn json(output: &[u8]) -> serde_json::Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

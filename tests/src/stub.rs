//! The stub orchestrator: what the edge talks to in the lab, in place of the
//! real OKOME orchestrator on 192.168.86.25:8000.
//!
//! std `TcpListener` and one thread per connection (HTTP/1.1 keep-alive, as
//! nginx's upstream keepalive uses it). It records every request it receives
//! so tests assert on what reached the origin (and what the cache absorbed).
//!
//! Paths:
//! * `/health` → `200 {"status":"ok"}`, or per [`Mode`].
//! * `/api/stream` → a chunked stream (`?chunks=N&interval_ms=M`, default
//!   5 × 100 ms); with `hold=1` it sends every chunk but the last, then
//!   waits for [`StubOrchestrator::release`] before the last one;
//!   `chunk_bytes=N` pads each chunk with N bytes (for backpressure tests).
//! * `/api/planner` → the planner through the `okome` Redis function
//!   library once [`StubOrchestrator::set_backend`] names a Redis (see
//!   [`crate::planner`]: X-OKOME-Cache HIT|MISS, the agent's budget, 429 +
//!   Retry-After; fail-open without Redis).
//! * `/api/…` → a small JSON answer, `Cache-Control: no-store`.
//! * anything else (the UI) → `200`, `Cache-Control: public, max-age=60` and
//!   a body naming the path and a serial number, so a test can tell a cached
//!   copy from a fresh one.
//!
//! Every answer but a stream echoes the request's `X-Request-ID`, as a
//! request-id middleware in front of the real orchestrator does.
//!
//! Query parameters on any path: `max_age=N` (UI cache lifetime, `0` =
//! `no-store`), `delay_ms=N` (answer slowly), `status=N`, `hold=1` (wait for
//! `release()` before answering).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::planner::{Backend, PlanRequest, PlannerStats};

/// How the orchestrator behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers normally.
    Up,
    /// Answers every request with `503`.
    Down,
    /// Accepts and reads requests, never answers (until the mode changes,
    /// then closes the connection).
    Hung,
    /// Listener closed: connections are refused. Only for
    /// [`StubOrchestrator::set_mode`].
    Refused,
}

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Unix time (seconds) of arrival, for per-second counts.
    pub unix_second: u64,
    /// Arrival, for ordering and intervals.
    pub at: Instant,
}

impl RecordedRequest {
    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header_of(&self.headers, name)
    }

    /// The User-Agent header.
    pub fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }

    /// Whether the request carries `X-OKOME-Warm: 1` (okome-prewarm).
    pub fn is_warm(&self) -> bool {
        self.header("x-okome-warm") == Some("1")
    }
}

#[derive(Debug)]
struct State {
    mode: Mode,
    health: Mode,
    listening: bool,
    shutdown: bool,
    holding: bool,
    held: usize,
    streams_finished: usize,
    requests: Vec<RecordedRequest>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    serial: AtomicU64,
    addr: SocketAddr,
    backend: Mutex<Option<Backend>>,
    planner: PlannerStats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stub orchestrator; stops (and closes its port) on drop.
#[derive(Debug)]
pub struct StubOrchestrator {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl StubOrchestrator {
    /// Start on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the stub orchestrator");
        let addr = listener.local_addr().expect("stub address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Up,
                health: Mode::Up,
                listening: true,
                shutdown: false,
                holding: true,
                held: 0,
                streams_finished: 0,
                requests: Vec::new(),
            }),
            changed: Condvar::new(),
            serial: AtomicU64::new(0),
            addr,
            backend: Mutex::new(None),
            planner: PlannerStats::default(),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("stub-accept".into())
            .spawn(move || accept_loop(listener, for_thread))
            .expect("spawning the stub acceptor");
        Self {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where it listens (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The `http://…` base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Change how the whole orchestrator behaves. Returns once the change is
    /// in effect (for `Refused`: the port is closed; back to another mode:
    /// it is listening again).
    pub fn set_mode(&self, mode: Mode) {
        let mut state = self.shared.lock();
        let was_listening = state.listening;
        state.mode = mode;
        self.shared.changed.notify_all();
        drop(state);
        if mode == Mode::Refused && was_listening {
            // Wake the acceptor so it notices and closes the listener.
            let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_millis(500));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut state = self.shared.lock();
        while state.listening == (mode == Mode::Refused) && Instant::now() < deadline {
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        assert!(
            state.listening != (mode == Mode::Refused),
            "stub orchestrator did not switch to {mode:?} within 5 s"
        );
    }

    /// Change only how `/health` answers (`Up`, `Down` or `Hung`; the other
    /// paths keep the orchestrator's mode). `Refused` closes the port, as
    /// [`StubOrchestrator::set_mode`] does.
    pub fn set_health(&self, mode: Mode) {
        if mode == Mode::Refused {
            return self.set_mode(mode);
        }
        let mut state = self.shared.lock();
        state.health = mode;
        self.shared.changed.notify_all();
    }

    /// Point `/api/planner` at a Redis with the `okome` library (None: no
    /// Redis, every planner request fails open).
    pub fn set_backend(&self, backend: Option<Backend>) {
        *self
            .shared
            .backend
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = backend;
    }

    /// (planner requests that failed open, plans computed).
    pub fn planner_counts(&self) -> (u64, u64) {
        (
            self.shared.planner.fail_open.load(Ordering::Relaxed),
            self.shared.planner.computed.load(Ordering::Relaxed),
        )
    }

    /// The orchestrator's mode.
    pub fn mode(&self) -> Mode {
        self.shared.lock().mode
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests received for `path` (query ignored).
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path() == path)
            .cloned()
            .collect()
    }

    /// How many requests reached `path` (query ignored).
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path() == path)
            .count()
    }

    /// How many requests arrived in total.
    pub fn total(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Requests per unix second (only seconds with at least one request).
    pub fn per_second(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for request in &self.shared.lock().requests {
            *counts.entry(request.unix_second).or_insert(0) += 1;
        }
        counts
    }

    /// How many `/api/stream` responses the stub has written completely.
    pub fn streams_finished(&self) -> usize {
        self.shared.lock().streams_finished
    }

    /// How many requests are waiting in a hold (`hold=1`) right now.
    pub fn held(&self) -> usize {
        self.shared.lock().held
    }

    /// Wait until `n` requests are held (up to `timeout`); true if reached.
    pub fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.held < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    /// Let every held request (and every later `hold=1` one) go on.
    pub fn release(&self) {
        let mut state = self.shared.lock();
        state.holding = false;
        self.shared.changed.notify_all();
    }

    /// Hold `hold=1` requests again (the initial state).
    pub fn hold(&self) {
        self.shared.lock().holding = true;
    }
}

impl Drop for StubOrchestrator {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.shutdown = true;
        state.holding = false;
        let listening = state.listening;
        self.shared.changed.notify_all();
        drop(state);
        if listening {
            let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_millis(500));
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    loop {
        {
            let mut state = shared.lock();
            if state.shutdown {
                return;
            }
            if state.mode == Mode::Refused {
                drop(listener.take());
                state.listening = false;
                shared.changed.notify_all();
                while state.mode == Mode::Refused && !state.shutdown {
                    state = shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(|p| p.into_inner());
                }
                if state.shutdown {
                    return;
                }
                // Re-open the same port (std sets SO_REUSEADDR).
                let mut reopened = None;
                for _ in 0..100 {
                    if let Ok(l) = TcpListener::bind(shared.addr) {
                        reopened = Some(l);
                        break;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                listener = Some(reopened.expect("re-binding the stub orchestrator's port"));
                state.listening = true;
                shared.changed.notify_all();
                continue;
            }
        }
        let Some(current) = listener.as_ref() else {
            continue;
        };
        let Ok((stream, _)) = current.accept() else {
            continue;
        };
        {
            let state = shared.lock();
            if state.shutdown || state.mode == Mode::Refused {
                continue;
            }
        }
        let shared = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name("stub-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &shared);
            });
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    // Head and body are separate writes: without NODELAY, Nagle and the
    // peer's delayed ACK add 40 ms to every answer.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader, shared)? else {
            return Ok(());
        };
        let (mode, health) = {
            let mut state = shared.lock();
            if state.mode == Mode::Refused {
                // A dead orchestrator receives nothing: drop the connection
                // (nginx had it kept alive) without recording the request.
                return Ok(());
            }
            state.requests.push(request.clone());
            (state.mode, state.health)
        };
        let effective = if request.path() == "/health" && mode == Mode::Up {
            health
        } else {
            mode
        };
        match effective {
            Mode::Refused => return Ok(()),
            Mode::Hung => {
                let mut state = shared.lock();
                while !state.shutdown && state.mode == Mode::Hung
                    || (request.path() == "/health"
                        && state.health == Mode::Hung
                        && !state.shutdown)
                {
                    state = shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(|p| p.into_inner());
                }
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Mode::Down => {
                respond(
                    &mut writer,
                    503,
                    "application/json",
                    &[("Cache-Control", "no-store".into())],
                    b"{\"status\":\"down\"}\n",
                    &request,
                )?;
            }
            Mode::Up => answer(&mut writer, &request, shared)?,
        }
    }
}

/// Read one request (head and body); `None` when the peer closed between
/// requests or the stub is shutting down, an error (the connection is
/// dropped) when it closed or sent nonsense mid-request.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> io::Result<Option<RecordedRequest>> {
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) if line.trim().is_empty() => line.clear(),
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let state = shared.lock();
                if state.shutdown || state.mode == Mode::Refused {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))?;
    let headers = crate::http::read_headers(reader)?;
    let header = |n: &str| crate::http::header_of(&headers, n).map(str::to_owned);
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        while let Some(chunk) = crate::http::read_chunk(reader)? {
            body.extend_from_slice(&chunk);
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(Some(RecordedRequest {
        method,
        target,
        headers,
        body,
        unix_second: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        at: Instant::now(),
    }))
}

fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

fn query_num(target: &str, key: &str) -> Option<u64> {
    query(target, key).and_then(|v| v.parse().ok())
}

/// Wait while holding is on (for `hold=1`), counting this request as held.
fn wait_hold(shared: &Shared) {
    let mut state = shared.lock();
    if !state.holding {
        return;
    }
    state.held += 1;
    shared.changed.notify_all();
    while state.holding && !state.shutdown {
        state = shared
            .changed
            .wait(state)
            .unwrap_or_else(|p| p.into_inner());
    }
    state.held -= 1;
    shared.changed.notify_all();
}

fn answer(writer: &mut TcpStream, request: &RecordedRequest, shared: &Shared) -> io::Result<()> {
    let target = request.target.as_str();
    let path = request.path();
    if let Some(ms) = query_num(target, "delay_ms") {
        thread::sleep(Duration::from_millis(ms));
    }
    let hold = query(target, "hold") == Some("1");
    if path == "/api/stream" {
        return stream(writer, request, shared, hold);
    }
    if hold {
        wait_hold(shared);
    }
    let status = query_num(target, "status").map_or(200, |s| s as u16);
    let serial = shared.serial.fetch_add(1, Ordering::SeqCst) + 1;
    if path == "/health" {
        return respond(
            writer,
            status,
            "application/json",
            &[("Cache-Control", "no-store".into())],
            b"{\"status\":\"ok\"}\n",
            request,
        );
    }
    if path == "/api/planner" {
        return planner(writer, request, shared, status);
    }
    if path.starts_with("/api/") {
        let body = format!(
            "{{\"path\":\"{path}\",\"method\":\"{}\",\"serial\":{serial},\"body_bytes\":{}}}\n",
            request.method,
            request.body.len()
        );
        return respond(
            writer,
            status,
            "application/json",
            &[("Cache-Control", "no-store".into())],
            body.as_bytes(),
            request,
        );
    }
    let cache_control = match query_num(target, "max_age") {
        Some(0) => "no-store".to_owned(),
        Some(n) => format!("public, max-age={n}"),
        None => "public, max-age=60".to_owned(),
    };
    let body = format!("stub orchestrator: {path} response #{serial}\n");
    respond(
        writer,
        status,
        "text/html; charset=utf-8",
        &[("Cache-Control", cache_control)],
        body.as_bytes(),
        request,
    )
}

fn planner(
    writer: &mut TcpStream,
    request: &RecordedRequest,
    shared: &Shared,
    status: u16,
) -> io::Result<()> {
    let target = request.target.as_str();
    let text = |k: &str, default: &str| query(target, k).unwrap_or(default).to_owned();
    let plan = PlanRequest {
        agent: request
            .header("x-okome-agent")
            .unwrap_or("anonymous")
            .to_owned(),
        repo_hash: request.header("x-repo-hash").unwrap_or("norepo").to_owned(),
        model: text("model", "gpt-4"),
        prompt: text("prompt", ""),
        toolset: text("toolset", "v1"),
        compute: Duration::from_millis(query_num(target, "compute_ms").unwrap_or(20)),
    };
    let backend = shared
        .backend
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let answer = crate::planner::handle(&plan, backend.as_ref(), &shared.planner);
    let mut headers = answer.headers;
    headers.push(("Cache-Control", "no-store".into()));
    respond(
        writer,
        if answer.status == 200 {
            status
        } else {
            answer.status
        },
        "application/json",
        &headers,
        answer.body.as_bytes(),
        request,
    )
}

fn respond(
    writer: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
    request: &RecordedRequest,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nServer: okome-stub-orchestrator\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // Echo the request id, as request-id middlewares do: the edge must not
    // store this copy and replay it on a HIT.
    if let Some(id) = request.header("x-request-id") {
        head.push_str(&format!("X-Request-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    if request.method != "HEAD" {
        writer.write_all(body)?;
    }
    writer.flush()
}

fn stream(
    writer: &mut TcpStream,
    request: &RecordedRequest,
    shared: &Shared,
    hold: bool,
) -> io::Result<()> {
    let chunks = query_num(&request.target, "chunks").unwrap_or(5).max(1);
    let interval = Duration::from_millis(query_num(&request.target, "interval_ms").unwrap_or(100));
    let padding = query_num(&request.target, "chunk_bytes").unwrap_or(0) as usize;
    writer.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\nServer: okome-stub-orchestrator\r\n\r\n",
    )?;
    for i in 1..=chunks {
        if i > 1 {
            if hold && i == chunks {
                wait_hold(shared);
            } else {
                thread::sleep(interval);
            }
        }
        let mut data = format!("data: chunk {i} of {chunks}\n\n");
        if padding > 0 {
            data = format!("data: chunk {i} of {chunks} {}\n\n", "x".repeat(padding));
        }
        writer.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
        writer.flush()?;
    }
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()?;
    shared.lock().streams_finished += 1;
    shared.changed.notify_all();
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

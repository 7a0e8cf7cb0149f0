//! One fake HTTP server for every tool's tests: a real listener on a free
//! port of 127.0.0.1 (the tool's real client on the real network path, no
//! mocks), run by threads of the test process so it dies with the test.
//!
//! Each request is answered by a closure of the request and how many times
//! its path came so far (`nth`, 1-based): a status, headers, a body, a delay,
//! or [`Reply::hang`] (accept, read, never answer: a hung orchestrator).
//! [`FakeHttp::set`] swaps the closure and releases every hung connection.
//! Every request is recorded ([`Seen`]: line, headers, arrival time).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never answer (until the handler is replaced or the server dropped).
    pub hang: bool,
}

impl Reply {
    /// `status` with `body` (`Connection: close`, a Content-Length).
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// `200` with `body`.
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::new(200, body)
    }

    /// Accept, read the request, never answer.
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::new(0, "")
        }
    }

    /// Add a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answer only after `delay`.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} X\r\n", self.status);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line (`GET /x HTTP/1.1`).
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Seen {
    /// The method (`GET`, `HEAD`).
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The request target (`/x?y`).
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct Shared {
    handler: Mutex<Arc<Handler>>,
    /// Bumped by `set` and drop: hung connections end when it changes.
    generation: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// A running fake; stops accepting (and releases hung connections) on drop.
pub struct FakeHttp {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHttp")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Generation value that tells every thread of a dropped fake to end.
const STOPPED: u64 = u64::MAX;

impl FakeHttp {
    /// Answer every request with `handler(request, nth)`.
    pub fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> FakeHttp {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fake HTTP server");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            handler: Mutex::new(Arc::new(handler)),
            generation: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let for_thread = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if for_thread.generation.load(Ordering::SeqCst) == STOPPED {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&for_thread);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        FakeHttp { addr, shared }
    }

    /// Every request answered `reply`.
    pub fn always(reply: Reply) -> FakeHttp {
        FakeHttp::start(move |_, _| reply.clone())
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` (no path).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next requests with `handler`; hung connections end.
    pub fn set(&self, handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) {
        *self.shared.handler.lock().unwrap() = Arc::new(handler);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Answer every next request `reply`; hung connections end.
    pub fn set_always(&self, reply: Reply) {
        self.set(move |_, _| reply.clone());
    }

    /// The requests received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn hits(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    /// The request targets so far, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .requests()
            .iter()
            .map(|s| s.path().to_string())
            .collect();
        paths.sort();
        paths
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.shared.generation.store(STOPPED, Ordering::SeqCst);
        // Wake the accept loop so it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let seen = Seen {
        line,
        headers,
        at: Instant::now(),
    };
    let generation = shared.generation.load(Ordering::SeqCst);
    let nth = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen.clone());
        all.iter().filter(|s| s.path() == seen.path()).count()
    };
    let handler = Arc::clone(&shared.handler.lock().unwrap());
    let reply = handler(&seen, nth);
    if reply.hang {
        // Hold the connection open, silent, until the handler changes.
        while shared.generation.load(Ordering::SeqCst) == generation {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    std::thread::sleep(reply.delay);
    let _ = stream.write_all(&reply.to_bytes());
}

/// A loopback address nothing listens on (bound, then released).
pub fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str, deadline: Duration) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(deadline))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn answers_by_path_and_count_and_records_what_came() {
        let fake = FakeHttp::start(|seen, nth| {
            Reply::ok(format!("{} #{nth}", seen.path())).header("X-Cache-Status", "HIT")
        });
        let long = Duration::from_secs(5);
        assert!(get(fake.addr(), "/a", long).unwrap().ends_with("/a #1"));
        let second = get(fake.addr(), "/a", long).unwrap();
        assert!(second.starts_with("HTTP/1.1 200 "), "{second}");
        assert!(second.contains("X-Cache-Status: HIT\r\n"), "{second}");
        assert!(second.ends_with("/a #2"), "{second}");
        assert!(get(fake.addr(), "/b", long).unwrap().ends_with("/b #1"));
        assert_eq!(fake.paths(), ["/a", "/a", "/b"]);
        let first = &fake.requests()[0];
        assert_eq!(
            (first.method(), first.header("x-test")),
            ("GET", Some("yes"))
        );
    }

    #[test]
    fn a_hung_answer_holds_until_the_handler_changes() {
        let fake = FakeHttp::always(Reply::hang());
        let error = get(fake.addr(), "/health", Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{error}"
        );
        let addr = fake.addr();
        let waiting = std::thread::spawn(move || get(addr, "/health", Duration::from_secs(10)));
        while fake.hits() < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        fake.set_always(Reply::new(503, "busy"));
        // Released: the held connection closes without an answer.
        assert_eq!(waiting.join().unwrap().unwrap(), "");
        assert!(
            get(addr, "/health", Duration::from_secs(5))
                .unwrap()
                .starts_with("HTTP/1.1 503 ")
        );
        let refused = refused_addr();
        assert!(TcpStream::connect(refused).is_err());
    }
}

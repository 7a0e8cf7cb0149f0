//! One fake Redis for unit tests of a tool's Redis client: a listener on a
//! free port of 127.0.0.1, run by threads of the test process, that reads
//! RESP command arrays and answers each by a closure of the command's words.
//! It records the raw bytes received (to pin exactly what a client sends,
//! AUTH and SELECT included) and the commands as words.
//!
//! It speaks only what a client under test needs to be driven: the end-to-end
//! tests use a real redis-server (the lab's `TestRedis`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// RESP replies to build answers with.
pub mod resp {
    /// `+OK`.
    pub fn ok() -> Vec<u8> {
        b"+OK\r\n".to_vec()
    }

    /// A bulk string.
    pub fn bulk(value: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", value.len()).into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The nil bulk string (`GET` of a missing key).
    pub fn nil() -> Vec<u8> {
        b"$-1\r\n".to_vec()
    }

    /// An error reply (`-WRONGPASS …`).
    pub fn error(message: &str) -> Vec<u8> {
        format!("-{message}\r\n").into_bytes()
    }

    /// An integer reply.
    pub fn integer(value: i64) -> Vec<u8> {
        format!(":{value}\r\n").into_bytes()
    }
}

type Handler = dyn Fn(&[Vec<u8>]) -> Vec<u8> + Send + Sync;

#[derive(Default)]
struct Record {
    raw: Vec<u8>,
    commands: Vec<Vec<String>>,
}

/// A running fake Redis (threads end with the test process).
pub struct FakeRedis {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
}

impl std::fmt::Debug for FakeRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRedis")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeRedis {
    /// Answer every command with `handler(words)` (raw RESP bytes, sent as
    /// they are: a test may answer garbage on purpose).
    pub fn start(handler: impl Fn(&[Vec<u8>]) -> Vec<u8> + Send + Sync + 'static) -> FakeRedis {
        Self::serve(Some(Arc::new(handler)))
    }

    /// Answer every command with the same bytes.
    pub fn always(answer: &[u8]) -> FakeRedis {
        let answer = answer.to_vec();
        FakeRedis::start(move |_| answer.clone())
    }

    /// Accept and read, never answer (a hung server).
    pub fn silent() -> FakeRedis {
        Self::serve(None)
    }

    fn serve(handler: Option<Arc<Handler>>) -> FakeRedis {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fake Redis");
        let addr = listener.local_addr().expect("its address");
        let record: Arc<Mutex<Record>> = Arc::default();
        let for_thread = Arc::clone(&record);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&for_thread);
                let handler = handler.clone();
                std::thread::spawn(move || connection(stream, handler.as_deref(), &record));
            }
        });
        FakeRedis { addr, record }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:port` (add credentials and a database yourself).
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Every byte received so far, as text (RESP is text but for values).
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.record.lock().unwrap().raw).into_owned()
    }

    /// The commands received so far, each as its words.
    pub fn commands(&self) -> Vec<Vec<String>> {
        self.record.lock().unwrap().commands.clone()
    }

    /// Wait (up to 5 s) until `n` commands have arrived; the commands.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<String>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.commands().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.commands()
    }
}

fn connection(mut stream: TcpStream, handler: Option<&Handler>, record: &Mutex<Record>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        record.lock().unwrap().raw.extend_from_slice(&buf[..n]);
        let Some(handler) = handler else { continue };
        let mut answers = Vec::new();
        while let Some((words, used)) = parse_command(&pending) {
            pending.drain(..used);
            record.lock().unwrap().commands.push(
                words
                    .iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect(),
            );
            answers.extend_from_slice(&handler(&words));
        }
        if !answers.is_empty() && stream.write_all(&answers).is_err() {
            return;
        }
    }
}

/// One complete RESP array of bulk strings at the start of `bytes`, and how
/// many bytes it took; None until it is all there.
fn parse_command(bytes: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = bytes.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        Some((&bytes[at..end], end + 2))
    }
    let (head, mut at) = line(bytes, 0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        let (size, next) = line(bytes, at)?;
        let size: usize = std::str::from_utf8(size.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let word = bytes.get(next..next + size)?;
        if bytes.get(next + size..next + size + 2)? != b"\r\n" {
            return None;
        }
        words.push(word.to_vec());
        at = next + size + 2;
    }
    Some((words, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_command_of_a_pipeline_and_records_them() {
        let fake = FakeRedis::start(|words| match words[0].as_slice() {
            b"GET" => resp::bulk(b"hello"),
            b"DEL" => resp::integer(1),
            _ => resp::ok(),
        });
        let mut conn = TcpStream::connect(fake.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let sent = "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n";
        conn.write_all(sent.as_bytes()).unwrap();
        let want = b"+OK\r\n$5\r\nhello\r\n:1\r\n";
        let mut got = vec![0u8; want.len()];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(got, want);
        assert_eq!(fake.raw(), sent);
        assert_eq!(
            fake.commands(),
            [vec!["SELECT", "3"], vec!["GET", "k"], vec!["DEL", "k"]]
        );
    }

    #[test]
    fn a_command_cut_in_two_waits_for_its_end_and_a_silent_fake_never_answers() {
        assert_eq!(parse_command(b"*1\r\n$4\r\nPI"), None);
        assert_eq!(
            parse_command(b"*1\r\n$4\r\nPING\r\n*1"),
            Some((vec![b"PING".to_vec()], 14))
        );
        let fake = FakeRedis::silent();
        let mut conn = TcpStream::connect(fake.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        conn.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut b = [0u8; 8];
        assert!(conn.read(&mut b).is_err(), "a silent fake answered");
    }
}

//! A tiny HTTP/1.1 client over std `TcpStream`, for tests that need raw
//! control: exact request headers, the client's source address, the time to
//! the first byte, and reading a chunked body chunk by chunk while the
//! upstream is still sending.
//!
//! Every request is sent with `Connection: close`, so one request is one
//! TCP connection and nothing is pooled behind a test's back.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::net::connect_from;

/// A request to send; build with [`Request::get`] and friends.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Local address to send from (e.g. 127.0.0.2); `None` = the kernel's pick.
    pub source: Option<IpAddr>,
    pub timeout: Duration,
}

impl Request {
    /// `GET target`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// `HEAD target`.
    pub fn head(target: &str) -> Self {
        Self::new("HEAD", target)
    }

    /// Any method.
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            source: None,
            timeout: Duration::from_secs(15),
        }
    }

    /// Add a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Set the body (sent with Content-Length).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send from this local address.
    pub fn from(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Socket read/write timeout (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send the request to `addr` and read the whole response.
    pub fn send(&self, addr: SocketAddr) -> io::Result<Response> {
        let start = Instant::now();
        let mut open = self.open(addr)?;
        let body = open.read_to_end()?;
        Ok(Response {
            status: open.status,
            headers: open.headers,
            body,
            first_byte: open.first_byte,
            elapsed: start.elapsed(),
        })
    }

    /// Send the request and return once the response head has arrived; the
    /// body is read from the returned [`OpenResponse`].
    pub fn open(&self, addr: SocketAddr) -> io::Result<OpenResponse> {
        let start = Instant::now();
        let mut stream = match self.source {
            Some(source) => connect_from(source, addr, self.timeout)?,
            None => {
                let s = TcpStream::connect_timeout(&addr, self.timeout)?;
                s.set_read_timeout(Some(self.timeout))?;
                s.set_write_timeout(Some(self.timeout))?;
                s
            }
        };
        let has = |n: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut head = format!(
            "{} {} HTTP/1.1\r\nConnection: close\r\n",
            self.method, self.target
        );
        if !has("host") {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        if !has("user-agent") {
            head.push_str("User-Agent: okome-lab\r\n");
        }
        if !self.body.is_empty() || self.method == "POST" || self.method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let first_byte = start.elapsed();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line from {addr}: {status_line:?}"),
                )
            })?;
        let headers = read_headers(&mut reader)?;
        let no_body = self.method == "HEAD" || status == 204 || status == 304;
        let framing = if no_body {
            Framing::Length(0)
        } else if header_of(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(len) = header_of(&headers, "content-length").and_then(|v| v.parse().ok())
        {
            Framing::Length(len)
        } else {
            Framing::Close
        };
        Ok(OpenResponse {
            status,
            headers,
            first_byte,
            reader,
            framing,
            done: false,
        })
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Time from connect to the status line.
    pub first_byte: Duration,
    /// Time from connect to the end of the body.
    pub elapsed: Duration,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `X-Cache-Status`, or "" when absent.
    pub fn cache_status(&self) -> &str {
        self.header("x-cache-status").unwrap_or("")
    }
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// A response whose head has arrived and whose body is still being read.
#[derive(Debug)]
pub struct OpenResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub first_byte: Duration,
    reader: BufReader<TcpStream>,
    framing: Framing,
    done: bool,
}

impl OpenResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// The next piece of the body as it arrives: one HTTP chunk for a chunked
    /// body, else whatever one read returns. `None` at the end.
    pub fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.framing {
            Framing::Chunked => {
                let chunk = read_chunk(&mut self.reader)?;
                self.done = chunk.is_none();
                Ok(chunk)
            }
            Framing::Length(remaining) => {
                if remaining == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let mut buf = vec![0; remaining.min(64 * 1024)];
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body ended {remaining} bytes short"),
                    ));
                }
                buf.truncate(n);
                self.framing = Framing::Length(remaining - n);
                Ok(Some(buf))
            }
            Framing::Close => {
                let mut buf = vec![0; 64 * 1024];
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    self.done = true;
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some(buf))
            }
        }
    }

    /// Read the rest of the body.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(piece) = self.next_piece()? {
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}

/// One HTTP chunk of a chunked body; `None` after the last (zero-size)
/// chunk and its trailers.
pub(crate) fn read_chunk(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut size_line = String::new();
    reader.read_line(&mut size_line)?;
    let size_text = size_line.trim().split(';').next().unwrap_or("");
    let size = usize::from_str_radix(size_text, 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad chunk size line {size_line:?}"),
        )
    })?;
    if size == 0 {
        // Trailers, then the final empty line.
        let _ = read_headers(reader)?;
        return Ok(None);
    }
    let mut chunk = vec![0; size];
    reader.read_exact(&mut chunk)?;
    let mut crlf = [0; 2];
    reader.read_exact(&mut crlf)?;
    Ok(Some(chunk))
}

/// Header lines up to the empty line that ends them.
pub(crate) fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the headers",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
}

/// The first header called `name` in `headers` (case-insensitive).
pub fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

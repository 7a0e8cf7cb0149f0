//! Loopback networking helpers: free ports and connections from a chosen
//! loopback source address.
//!
//! Every port is picked at run time by binding port 0, so tests run in
//! parallel. [`connect_from`] binds the client socket to a source address
//! such as 127.0.0.2 before connecting: that is how a test proves that
//! nginx treats a client that is not 127.0.0.1/::1 differently (the refresh
//! bypass, stub_status), with a real TCP peer address and no header tricks.
//! [`claim_blackhole_24`] picks the 10.213.X.0/24 a network-namespace test
//! works in, fenced off the LAN by a blackhole route.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket};

/// Claim a /24 of 10.213.0.0/16 for a namespace test: the first of the 100
/// candidates from `base` on which `ip route add blackhole 10.213.X.0/24`
/// succeeds. The route fences the subnet off the LAN and doubles as a lock
/// against a parallel test picking the same one. Returns X; the caller
/// deletes the route when done.
pub fn claim_blackhole_24(base: u32) -> u32 {
    (0..100)
        .map(|i| (base + i) % 250 + 2)
        .find(|third| {
            let net = format!("10.213.{third}.0/24");
            let mut ip = std::process::Command::new("ip");
            ip.args(["route", "add", "blackhole", &net])
                .stdin(std::process::Stdio::null());
            ip.output()
                .unwrap_or_else(|e| panic!("running {ip:?}: {e}"))
                .status
                .success()
        })
        .expect("a free 10.213.x.0/24 for the blackhole route")
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

/// A TCP port free on both 127.0.0.1 and ::1 right now (nginx listens on
/// both in the lab, as the shipped config does on every address).
pub fn free_port_dual() -> u16 {
    for _ in 0..50 {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
        let port = v4.local_addr().expect("local address").port();
        if TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1 after 50 tries");
}

/// Whether IPv6 loopback works on this machine.
pub fn have_ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// Connect to `dest` from the local address `source` (any port).
pub fn connect_from(source: IpAddr, dest: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let family = match dest {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let local = SockaddrStorage::from(SocketAddr::new(source, 0));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &local)
        .map_err(|e| io::Error::other(format!("binding client socket to {source}: {e}")))?;
    let remote = SockaddrStorage::from(dest);
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &remote)
        .map_err(|e| io::Error::other(format!("connecting {source} → {dest}: {e}")))?;
    // SAFETY: `fd` is a connected stream socket we own; ownership moves to
    // the TcpStream.
    let stream = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Wait until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

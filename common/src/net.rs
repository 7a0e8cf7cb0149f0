//! Deadline arithmetic and name resolution for the Redis connection
//! ([`crate::redis_client`]), which bounds one whole exchange by a single
//! deadline although the `redis` crate resolves names without one.
//!
//! Two small pieces: time left before the deadline (never the zero that
//! means "block forever" to the socket API), and a resolver that gives up at
//! the deadline even though getaddrinfo has no timeout of its own. (ureq,
//! the HTTP client, has both built in.)

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Time left before `deadline`, at least 1 ms; `None` once it has passed.
pub(crate) fn time_left(deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    (now < deadline).then(|| (deadline - now).max(Duration::from_millis(1)))
}

/// Resolve `host`:`port` before `deadline`. IP literals never touch the
/// resolver; names are resolved on a helper thread because getaddrinfo has no
/// timeout of its own (the thread is left behind if it overruns; the process
/// ends soon after). `Ok(None)` means the deadline passed.
pub fn resolve_within(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Option<Vec<SocketAddr>>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(vec![SocketAddr::new(ip, port)]));
    }
    let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
        return Ok(None);
    };
    // A mutex and condvar rather than a channel: the same wait with a
    // timeout, at a fraction of the code std's mpsc links into a small binary.
    type Slot = (Mutex<Option<io::Result<Vec<SocketAddr>>>>, Condvar);
    let slot: Arc<Slot> = Arc::new((Mutex::new(None), Condvar::new()));
    let theirs = Arc::clone(&slot);
    let target = (host.to_string(), port);
    std::thread::spawn(move || {
        let result = target.to_socket_addrs().map(Vec::from_iter);
        let (lock, ready) = &*theirs;
        if let Ok(mut answer) = lock.lock() {
            *answer = Some(result);
            ready.notify_one();
        }
    });
    let (lock, ready) = &*slot;
    let poisoned = || format!("{host}: the resolver thread failed");
    let answer = lock.lock().map_err(|_| poisoned())?;
    let (mut answer, _) = ready
        .wait_timeout_while(answer, wait, |answer| answer.is_none())
        .map_err(|_| poisoned())?;
    match answer.take() {
        Some(Ok(addrs)) if !addrs.is_empty() => Ok(Some(addrs)),
        Some(Ok(_)) => Err(format!("{host}: no address")),
        Some(Err(error)) => Err(format!("{host}: {error}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_without_the_resolver_and_late_calls_time_out() {
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            resolve_within("::1", 81, soon).unwrap().unwrap(),
            vec!["[::1]:81".parse().unwrap()]
        );
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(resolve_within("localhost", 80, past), Ok(None));
        assert_eq!(time_left(past), None);
        assert!(time_left(soon).unwrap() > Duration::from_secs(4));
    }
}

//! The warming engine: a small worker pool that sends the plan's `HEAD`s
//! while protecting the origin.
//!
//! Protection, in the order a request meets it: a run deadline (shorter than
//! the timer period, so runs never pile up), the token bucket
//! ([`crate::bucket`]: charged before sending, refunded on a cache hit), a
//! per-request timeout, at most `retries` retries with jittered exponential
//! backoff that honours `Retry-After` and never retries a 4xx, and the
//! emergency stop: the run ends as soon as one request that waited for the
//! origin (any cache status but HIT/STALE/UPDATING) was slower than the
//! threshold, or errors pile up. Plain std threads: the pool is two workers
//! on a Pi, an async runtime would cost more than it saves.

use crate::bucket::TokenBucket;
use crate::target::{Reply, Target};
use okome_common::fetch::{Client, FetchError, HttpUrl, Method, Request};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One URL to warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Validated, normalised path.
    pub path: String,
    /// Send the localhost-only refresh bypass (`X-OKOME-Refresh: 1`).
    pub refresh: bool,
}

/// Origin-protection and request settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker threads.
    pub workers: usize,
    /// Token-bucket rate: requests per second that may reach the origin.
    pub max_rps: f64,
    /// Token-bucket size.
    pub burst: f64,
    /// Cap on all requests per second, hits included: the target nginx
    /// rate-limits each client (shipped: 20 r/s, burst 60, then 429), and a
    /// plan of hits must not trip that limit and look like errors.
    pub max_total_rps: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt (5xx, timeouts, connection errors).
    pub retries: u32,
    /// Backoff base; attempt `n` waits about `base × 2^n` (jittered ±50 %).
    pub backoff_base: Duration,
    /// The whole run ends by then.
    pub deadline: Duration,
    /// Emergency stop when an origin request is slower than this.
    pub emergency_latency: Duration,
    /// Emergency stop after this many errors (5xx, 429, timeouts, I/O).
    pub max_errors: u32,
    /// Headers sent with every request (User-Agent, Accept-Encoding, X-OKOME-Warm).
    pub headers: Vec<(String, String)>,
    /// The `Host` of every request (the site's public name: the edge
    /// answers only its own names); `None`: the target's authority.
    pub host: Option<String>,
}

/// What happened to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The request made nginx fetch and store it (MISS/EXPIRED/…).
    Warmed,
    /// Already in cache (HIT/STALE/UPDATING).
    AlreadyHot,
    /// Answered, but nginx did not cache it (BYPASS, no cache status).
    Uncacheable,
    /// No usable answer after retries, or a 4xx/5xx.
    Failed,
    /// Not attempted: emergency stop or deadline.
    Skipped,
}

/// The result of one job, for the report and the quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobResult {
    /// The path.
    pub path: String,
    /// What happened.
    pub outcome: Outcome,
    /// Last HTTP status, if any answer came.
    pub status: Option<u16>,
    /// Last `X-Cache-Status`.
    pub cache_status: Option<String>,
    /// Latency of the last attempt, ms.
    pub latency_ms: Option<u64>,
    /// Attempts made.
    pub attempts: u32,
    /// The response set a cookie / said no-store (why it is uncacheable).
    pub uncacheable_hint: Option<&'static str>,
    /// Error or skip reason.
    pub detail: Option<String>,
}

/// What the pool counted over a run. The run's summary embeds it as is
/// (`report::Summary::pool`, flattened into the same JSON fields), so a new
/// counter is added here once and shows in `--json` without being copied.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Requests that reached the origin (or may have: timeouts count).
    pub origin_requests: u64,
    /// Times a worker had to wait for a token.
    pub rate_limit_waits: u64,
    /// Retries made.
    pub retries: u64,
    /// Why the emergency stop fired, if it did.
    pub emergency_stop: Option<String>,
    /// The run deadline cut the run short.
    pub deadline_hit: bool,
}

/// The whole run of the pool (not to be confused with the run's
/// `report::Report`, which holds the plan, these results and the summary).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolRun {
    /// One entry per job, in plan order.
    pub results: Vec<JobResult>,
    /// What the pool counted.
    pub counters: Counters,
}

/// Whether a response with this cache status made nginx ask the origin.
/// `STALE` does: with `proxy_cache_background_update on` nginx refreshes
/// the entry in the background. `UPDATING` does not (another request is
/// already fetching it). Unknown (no header) counts as yes: the bucket must
/// err on the safe side.
pub fn reached_origin(cache_status: Option<&str>) -> bool {
    !matches!(cache_status, Some("HIT" | "UPDATING"))
}

/// Whether the latency of this response is the origin's: the client waited
/// for the origin (not for a stale copy served while it refreshes).
pub fn waited_for_origin(cache_status: Option<&str>) -> bool {
    !matches!(cache_status, Some("HIT" | "STALE" | "UPDATING"))
}

/// A tiny xorshift for backoff jitter (no `rand` on a Pi for this).
fn jitter(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// Backoff before retry `attempt` (1-based), honouring `Retry-After`.
pub fn backoff(base: Duration, attempt: u32, retry_after: Option<u64>, rand01: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let jittered = exp.mul_f64(0.5 + rand01);
    match retry_after {
        Some(secs) => jittered.max(Duration::from_secs(secs)),
        None => jittered,
    }
}

struct Shared<'a> {
    addr: SocketAddr,
    /// One ureq agent for every worker: keep-alive to the local nginx.
    client: Client,
    target: &'a Target,
    jobs: &'a [Job],
    settings: &'a Settings,
    end: Instant,
    next: AtomicUsize,
    /// (origin bucket, all-requests bucket), under one lock so a worker
    /// takes both tokens or neither.
    bucket: Mutex<(TokenBucket, TokenBucket)>,
    stop: AtomicBool,
    emergency: Mutex<Option<String>>,
    deadline_hit: AtomicBool,
    errors: AtomicU64,
    origin: AtomicU64,
    waits: AtomicU64,
    retries: AtomicU64,
    results: Mutex<Vec<Option<JobResult>>>,
}

impl Shared<'_> {
    fn trip(&self, why: String) {
        let mut slot = self.emergency.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            log::warn!("emergency stop: {why}");
            *slot = Some(why);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        if self.stop.load(Ordering::SeqCst) {
            return true;
        }
        if Instant::now() >= self.end {
            self.deadline_hit.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Sleep up to `d`, waking early on stop; false if stopped.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }

    /// Wait for a token; false if the run stopped meanwhile.
    fn take_token(&self) -> bool {
        let mut waited = false;
        loop {
            if self.stopped() {
                return false;
            }
            let result = {
                let mut buckets = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
                let (origin, all) = &mut *buckets;
                let now = Instant::now();
                match all.try_take(now) {
                    Err(wait) => Err((wait, false)),
                    Ok(()) => match origin.try_take(now) {
                        Ok(()) => Ok(()),
                        Err(wait) => {
                            all.refund(now);
                            Err((wait, true))
                        }
                    },
                }
            };
            match result {
                Ok(()) => return true,
                Err((wait, origin_limited)) => {
                    // The metric counts waits for the origin budget only.
                    if origin_limited && !waited {
                        waited = true;
                        self.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    if !self.sleep(wait) {
                        return false;
                    }
                }
            }
        }
    }

    fn refund(&self) {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .refund(Instant::now());
    }

    fn error(&self, what: &str) {
        let n = self.errors.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= u64::from(self.settings.max_errors) {
            self.trip(format!("{n} errors (last: {what})"));
        }
    }

    fn skipped_reason(&self) -> String {
        match &*self.emergency.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => format!("emergency stop: {why}"),
            None => "run deadline reached".to_string(),
        }
    }

    fn work(&self, mut seed: u64) {
        loop {
            if self.stopped() {
                return;
            }
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(job) = self.jobs.get(index) else {
                return;
            };
            let result = self.warm_one(job, &mut seed);
            if let Some(result) = result {
                self.results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
            }
        }
    }

    /// Warm one job; `None` when the run stopped before its first attempt.
    fn warm_one(&self, job: &Job, seed: &mut u64) -> Option<JobResult> {
        let s = self.settings;
        let mut headers: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if job.refresh {
            headers.push(("X-OKOME-Refresh", "1"));
        }
        let mut result = JobResult {
            path: job.path.clone(),
            outcome: Outcome::Failed,
            status: None,
            cache_status: None,
            latency_ms: None,
            attempts: 0,
            uncacheable_hint: None,
            detail: None,
        };
        let url = match self.target.url.with_path(&job.path) {
            // Only the Host header changes: the connection goes to
            // `self.addr`, the target's address, whatever the name.
            Ok(url) => match &s.host {
                Some(host) => HttpUrl {
                    host: host.clone(),
                    ..url
                },
                None => url,
            },
            Err(error) => {
                result.detail = Some(error.to_string());
                return Some(result);
            }
        };
        loop {
            if !self.take_token() {
                if result.attempts == 0 {
                    return None;
                }
                result.detail = Some(self.skipped_reason());
                return Some(result);
            }
            result.attempts += 1;
            let remaining = self.end.saturating_duration_since(Instant::now());
            let timeout = s.timeout.min(remaining).max(Duration::from_millis(1));
            let sent = Instant::now();
            let answer = self
                .client
                .send(&Request {
                    headers: &headers,
                    addr: Some(self.addr),
                    ..Request::new(Method::Head, &url, timeout)
                })
                .map(|response| Reply::from(&response));
            let latency = sent.elapsed();
            result.latency_ms = Some(latency.as_millis() as u64);
            let mut retry_after = None;
            let retryable = match answer {
                Ok(reply) => {
                    let Reply {
                        status,
                        cache_status,
                        ..
                    } = &reply;
                    result.status = Some(*status);
                    result.cache_status = cache_status.clone();
                    let origin = reached_origin(cache_status.as_deref());
                    if origin {
                        self.origin.fetch_add(1, Ordering::Relaxed);
                        if waited_for_origin(cache_status.as_deref())
                            && latency > s.emergency_latency
                        {
                            self.trip(format!(
                                "origin latency {} ms > {} ms on {} ({})",
                                latency.as_millis(),
                                s.emergency_latency.as_millis(),
                                job.path,
                                cache_status.as_deref().unwrap_or("no cache status")
                            ));
                        }
                    } else {
                        self.refund();
                    }
                    match status {
                        200..=399 => {
                            result.detail = None;
                            result.outcome = classify(&reply, job.refresh);
                            if result.outcome == Outcome::Uncacheable {
                                result.uncacheable_hint = if reply.set_cookie {
                                    Some("Set-Cookie")
                                } else if reply.no_store {
                                    Some("Cache-Control no-store/private")
                                } else {
                                    None
                                };
                            }
                            return Some(result);
                        }
                        429 => {
                            result.detail = Some("HTTP 429".into());
                            self.error(&format!("HTTP 429 on {}", job.path));
                            false
                        }
                        400..=499 => {
                            result.detail = Some(format!("HTTP {status}"));
                            false
                        }
                        _ => {
                            result.detail = Some(format!("HTTP {status}"));
                            self.error(&format!("HTTP {status} on {}", job.path));
                            retry_after = reply.retry_after;
                            true
                        }
                    }
                }
                Err(FetchError::Timeout(_)) => {
                    // It may well have reached the origin: count it, keep the token.
                    self.origin.fetch_add(1, Ordering::Relaxed);
                    result.detail = Some(format!("timeout after {} ms", latency.as_millis()));
                    if latency > s.emergency_latency {
                        self.trip(format!(
                            "origin latency > {} ms on {} (timed out after {} ms)",
                            s.emergency_latency.as_millis(),
                            job.path,
                            latency.as_millis()
                        ));
                    }
                    self.error(&format!("timeout on {}", job.path));
                    true
                }
                Err(error) => {
                    if matches!(
                        error,
                        FetchError::Refused | FetchError::Connect(_) | FetchError::Resolve(_)
                    ) {
                        self.refund();
                    }
                    result.detail = Some(error.to_string());
                    self.error(&format!("{error} on {}", job.path));
                    true
                }
            };
            if !retryable || result.attempts > s.retries {
                return Some(result);
            }
            let wait = backoff(s.backoff_base, result.attempts, retry_after, jitter(seed));
            if Instant::now() + wait >= self.end {
                result.detail = Some(format!(
                    "{} (no retry: backoff {} ms would pass the run deadline)",
                    result.detail.unwrap_or_default(),
                    wait.as_millis()
                ));
                return Some(result);
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            if !self.sleep(wait) {
                return Some(result);
            }
        }
    }
}

/// Outcome of a 2xx/3xx answer from its cache status.
pub fn classify(reply: &Reply, refresh: bool) -> Outcome {
    match reply.cache_status.as_deref() {
        Some("HIT" | "STALE" | "UPDATING") => Outcome::AlreadyHot,
        Some("MISS" | "EXPIRED" | "REVALIDATED") => Outcome::Warmed,
        Some("BYPASS") if refresh => Outcome::Warmed,
        _ => Outcome::Uncacheable,
    }
}

/// Warm `jobs` against `addr` (the resolved `target`).
pub fn run(addr: SocketAddr, target: &Target, jobs: &[Job], settings: &Settings) -> PoolRun {
    let start = Instant::now();
    let shared = Shared {
        addr,
        client: Client::new(concat!("okome-prewarm/", env!("CARGO_PKG_VERSION"))),
        target,
        jobs,
        settings,
        end: start + settings.deadline,
        next: AtomicUsize::new(0),
        bucket: Mutex::new((
            TokenBucket::new(settings.max_rps, settings.burst, start),
            TokenBucket::new(settings.max_total_rps, 1.0, start),
        )),
        stop: AtomicBool::new(false),
        emergency: Mutex::new(None),
        deadline_hit: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        origin: AtomicU64::new(0),
        waits: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        results: Mutex::new(vec![None; jobs.len()]),
    };
    let workers = settings.workers.clamp(1, jobs.len().max(1));
    let base_seed = start.elapsed().as_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let shared = &shared;
            let seed = (base_seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
            scope.spawn(move || shared.work(seed));
        }
    });
    let skip_reason = shared.skipped_reason();
    let results = shared
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(jobs)
        .map(|(result, job)| {
            result.unwrap_or_else(|| JobResult {
                path: job.path.clone(),
                outcome: Outcome::Skipped,
                status: None,
                cache_status: None,
                latency_ms: None,
                attempts: 0,
                uncacheable_hint: None,
                detail: Some(skip_reason.clone()),
            })
        })
        .collect();
    PoolRun {
        results,
        counters: Counters {
            origin_requests: shared.origin.into_inner(),
            rate_limit_waits: shared.waits.into_inner(),
            retries: shared.retries.into_inner(),
            emergency_stop: shared
                .emergency
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            deadline_hit: shared.deadline_hit.into_inner(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okome_testkit::{FakeHttp, Reply, Seen};

    /// The most requests the server saw within any one-second window.
    fn busiest_second(seen: &[Seen]) -> usize {
        seen.iter()
            .enumerate()
            .map(|(i, first)| {
                seen[i..]
                    .iter()
                    .filter(|s| s.at - first.at < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// The test kit's fake HTTP server answering every request by
    /// `respond(path, n)` (`n`: how many times this path came): the real
    /// network path, no mocks.
    fn server(respond: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> FakeHttp {
        FakeHttp::start(move |seen, n| respond(seen.path(), n))
    }

    /// The warm target naming this server.
    fn target(server: &FakeHttp) -> Target {
        Target::parse(&server.url()).unwrap()
    }

    fn settings() -> Settings {
        Settings {
            workers: 2,
            max_rps: 1000.0,
            burst: 1.0,
            max_total_rps: 1000.0,
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff_base: Duration::from_millis(10),
            deadline: Duration::from_secs(20),
            emergency_latency: Duration::from_millis(1500),
            max_errors: 5,
            headers: vec![("X-OKOME-Warm".into(), "1".into())],
            host: None,
        }
    }

    fn jobs(paths: &[&str]) -> Vec<Job> {
        paths
            .iter()
            .map(|p| Job {
                path: p.to_string(),
                refresh: false,
            })
            .collect()
    }

    /// `n` jobs: `/p0`, `/p1`, …
    fn numbered(n: usize) -> Vec<Job> {
        (0..n)
            .map(|i| Job {
                path: format!("/p{i}"),
                refresh: false,
            })
            .collect()
    }

    fn ok(cache: &str) -> Reply {
        Reply::ok("").header("X-Cache-Status", cache)
    }

    #[test]
    fn outcomes_follow_the_cache_status() {
        let srv = server(|path, _| {
            let cache = match path {
                "/a" => "MISS",
                "/b" => "HIT",
                "/c" => "BYPASS",
                _ => "EXPIRED",
            };
            ok(cache)
        });
        let t = target(&srv);
        let report = run(
            srv.addr(),
            &t,
            &jobs(&["/a", "/b", "/c", "/d"]),
            &settings(),
        );
        let got: Vec<Outcome> = report.results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            got,
            [
                Outcome::Warmed,
                Outcome::AlreadyHot,
                Outcome::Uncacheable,
                Outcome::Warmed
            ]
        );
        assert_eq!(
            report.counters.origin_requests, 3,
            "the HIT did not reach the origin"
        );
        assert!(report.counters.emergency_stop.is_none());
    }

    #[test]
    fn five_xx_is_retried_at_most_twice_and_4xx_never() {
        let srv = server(|path, _| match path {
            "/gone" => Reply::new(404, "").header("X-Cache-Status", "MISS"),
            _ => Reply::new(502, "").header("X-Cache-Status", "MISS"),
        });
        let t = target(&srv);
        let mut s = settings();
        s.max_errors = 100;
        let report = run(srv.addr(), &t, &jobs(&["/gone", "/broken"]), &s);
        assert_eq!(report.results[0].attempts, 1);
        assert_eq!(report.results[0].outcome, Outcome::Failed);
        assert_eq!(report.results[1].attempts, 3);
        assert_eq!(report.counters.retries, 2);
        let seen = srv.requests();
        assert_eq!(
            seen.iter()
                .filter(|s| s.line.starts_with("HEAD /gone "))
                .count(),
            1
        );
        assert_eq!(
            seen.iter()
                .filter(|s| s.line.starts_with("HEAD /broken "))
                .count(),
            3
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let srv = server(|_, n| {
            if n == 1 {
                Reply::new(503, "").header("Retry-After", "1")
            } else {
                ok("MISS")
            }
        });
        let t = target(&srv);
        let report = run(srv.addr(), &t, &jobs(&["/x"]), &settings());
        assert_eq!(report.results[0].outcome, Outcome::Warmed);
        let seen = srv.requests();
        let gap = seen[1].at - seen[0].at;
        assert!(gap >= Duration::from_millis(990), "{gap:?}");
    }

    #[test]
    fn a_slow_origin_trips_the_emergency_stop_and_skips_the_rest() {
        let srv = server(|_, _| ok("MISS").delay(Duration::from_millis(400)));
        let t = target(&srv);
        let mut s = settings();
        s.workers = 1;
        s.emergency_latency = Duration::from_millis(200);
        let report = run(srv.addr(), &t, &numbered(20), &s);
        let why = report.counters.emergency_stop.clone().expect("stopped");
        assert!(why.contains("origin latency"), "{why}");
        assert_eq!(report.results[0].outcome, Outcome::Warmed);
        assert!(
            report.results[1..]
                .iter()
                .all(|r| r.outcome == Outcome::Skipped)
        );
        assert_eq!(srv.requests().len(), 1);
    }

    #[test]
    fn slow_hits_do_not_trip_the_stop() {
        let srv = server(|_, _| ok("HIT").delay(Duration::from_millis(300)));
        let t = target(&srv);
        let mut s = settings();
        s.emergency_latency = Duration::from_millis(100);
        let report = run(srv.addr(), &t, &jobs(&["/a", "/b", "/c"]), &s);
        assert!(report.counters.emergency_stop.is_none());
        assert_eq!(report.counters.origin_requests, 0);
    }

    #[test]
    fn errors_piling_up_trip_the_stop() {
        let addr = okome_testkit::http::refused_addr(); // connection refused
        let t = Target::parse(&format!("http://{addr}")).unwrap();
        let mut s = settings();
        s.max_errors = 4;
        s.workers = 1;
        let report = run(addr, &t, &jobs(&["/a", "/b", "/c", "/d", "/e"]), &s);
        let why = report.counters.emergency_stop.expect("stopped");
        assert!(why.starts_with("4 errors"), "{why}");
        assert_eq!(report.counters.origin_requests, 0);
        assert!(report.results.iter().any(|r| r.outcome == Outcome::Skipped));
    }

    #[test]
    fn the_bucket_caps_origin_requests_per_second() {
        let srv = server(|_, _| ok("MISS"));
        let t = target(&srv);
        let mut s = settings();
        s.max_rps = 5.0;
        s.workers = 4;
        let started = Instant::now();
        let report = run(srv.addr(), &t, &numbered(12), &s);
        assert!(report.results.iter().all(|r| r.outcome == Outcome::Warmed));
        assert!(report.counters.rate_limit_waits > 0);
        // 1 saved + 5/s: 12 requests need at least 11/5 s.
        assert!(
            started.elapsed() >= Duration::from_millis(2150),
            "{:?}",
            started.elapsed()
        );
        let busiest = busiest_second(&srv.requests());
        assert!(busiest <= 6, "{busiest} requests within 1 s");
    }

    #[test]
    fn hits_are_refunded_so_a_hot_plan_is_not_paced() {
        let srv = server(|_, _| ok("HIT"));
        let t = target(&srv);
        let mut s = settings();
        s.max_rps = 1.0;
        s.workers = 1;
        let started = Instant::now();
        let report = run(srv.addr(), &t, &numbered(10), &s);
        assert!(
            report
                .results
                .iter()
                .all(|r| r.outcome == Outcome::AlreadyHot)
        );
        // Generous bound: 10 paced requests would need 9 s.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(report.counters.rate_limit_waits, 0);
    }

    #[test]
    fn all_requests_are_capped_below_the_targets_own_rate_limit() {
        let srv = server(|_, _| ok("HIT"));
        let t = target(&srv);
        let mut s = settings();
        s.max_total_rps = 10.0;
        s.workers = 4;
        let report = run(srv.addr(), &t, &numbered(16), &s);
        assert!(
            report
                .results
                .iter()
                .all(|r| r.outcome == Outcome::AlreadyHot)
        );
        assert_eq!(
            report.counters.rate_limit_waits, 0,
            "hits never wait for the origin budget"
        );
        let busiest = busiest_second(&srv.requests());
        assert!(busiest <= 11, "{busiest} requests within 1 s");
    }

    #[test]
    fn refresh_jobs_carry_the_bypass_header_and_count_bypass_as_warmed() {
        let srv = server(|_, _| ok("BYPASS"));
        let t = target(&srv);
        let job = Job {
            path: "/version".into(),
            refresh: true,
        };
        let report = run(srv.addr(), &t, &[job], &settings());
        assert_eq!(report.results[0].outcome, Outcome::Warmed);
        assert_eq!(srv.requests()[0].header("X-OKOME-Refresh"), Some("1"));
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, None, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(base, 2, None, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(base, 2, None, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 1, Some(3), 0.9), Duration::from_secs(3));
    }
}

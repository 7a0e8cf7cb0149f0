//! The operator's tour of a running lab: what `cargo xtask lab` prints.
//!
//! It drives realistic traffic through the real nginx and shows what an
//! operator wants to see — MISS → HIT, the three canary modes, the health
//! gate closing and opening (by the real okome-health-probe when it is
//! built, else by creating the flag file as the probe would), 429 past the
//! rate limit, a stream's first byte before the orchestrator finishes,
//! redis' eviction policy, and the planner cache and agent budgets of the
//! okome function library (MISS → HIT, a budget running out, a clamp). Every line it prints is measured, and every claim
//! is also a [`Check`]: the tour fails (and `tests/tests/tour.rs` with it)
//! when the lab does not behave as printed.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::{Request, Response};
use crate::lab::Lab;
use crate::stub::Mode;

/// How the tour closes and opens the gate.
#[derive(Debug, Clone)]
pub enum GateDriver {
    /// Create/remove the flag file, as okome-health-probe would.
    FlagFile,
    /// Run this okome-health-probe binary against the stub.
    Probe(PathBuf),
}

/// One claim the tour made and whether the lab bore it out.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub ok: bool,
}

/// What the tour found.
#[derive(Debug, Default)]
pub struct TourReport {
    pub checks: Vec<Check>,
}

impl TourReport {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

struct Tour<'a> {
    lab: &'a Lab,
    out: &'a mut dyn Write,
    report: TourReport,
}

/// A stale path primed at the start so it has expired by the gate scene.
const STALE_PATH: &str = "/static/app.css?max_age=1";

/// Run the whole tour on `lab`, printing to `out`.
pub fn run(lab: &Lab, gate: &GateDriver, out: &mut dyn Write) -> io::Result<TourReport> {
    let mut tour = Tour {
        lab,
        out,
        report: TourReport::default(),
    };
    tour.header()?;
    tour.cache()?;
    tour.canary()?;
    tour.gate(gate)?;
    tour.rate_limit()?;
    tour.streaming()?;
    tour.redis()?;
    tour.planner()?;
    let failed = tour.report.failures().len();
    let total = tour.report.checks.len();
    writeln!(tour.out)?;
    if failed == 0 {
        writeln!(tour.out, "All {total} checks passed.")?;
    } else {
        writeln!(tour.out, "{failed} of {total} checks FAILED:")?;
        for check in tour.report.failures() {
            writeln!(tour.out, "  ✗ {}", check.what)?;
        }
    }
    Ok(tour.report)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a literal loopback address")
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Tour<'_> {
    fn check(&mut self, ok: bool, what: impl Into<String>) -> io::Result<()> {
        let what = what.into();
        if !ok {
            writeln!(self.out, "    ✗ NOT AS EXPECTED: {what}")?;
        }
        self.report.checks.push(Check { what, ok });
        Ok(())
    }

    fn send(&mut self, request: Request) -> io::Result<Response> {
        request.send(self.lab.addr())
    }

    fn row(&mut self, label: &str, r: &Response, note: &str) -> io::Result<()> {
        writeln!(
            self.out,
            "    {label:<44} {:>3}  {:<7} {:>9}  {note}",
            r.status,
            r.cache_status(),
            ms(r.elapsed)
        )
    }

    fn header(&mut self) -> io::Result<()> {
        let lab = self.lab;
        writeln!(
            self.out,
            "OKOME lab: the shipped configs, running on loopback"
        )?;
        writeln!(
            self.out,
            "  lab root      {}   (OKOME_ROOT for the tools)",
            lab.root.dir().display()
        )?;
        writeln!(
            self.out,
            "  edge          http://{}   real nginx on configs/nginx-frontend/* (addresses, ports, paths substituted)",
            lab.addr()
        )?;
        writeln!(
            self.out,
            "  orchestrator  {}   stub (switchable up/down/hung/refused)",
            lab.stub.url()
        )?;
        if let Some(redis) = &lab.redis {
            writeln!(
                self.out,
                "  redis         {}   real redis-server on configs/redis-backend/redis.conf",
                redis.addr()
            )?;
        }
        // Primed now, expired by the time the gate closes.
        let primed = self.send(Request::get(STALE_PATH))?;
        self.check(
            primed.status == 200,
            format!("GET {STALE_PATH} primes the cache"),
        )
    }

    fn cache(&mut self) -> io::Result<()> {
        writeln!(self.out, "\n1. Edge cache: MISS, then HIT")?;
        writeln!(
            self.out,
            "    {:<44} {:>3}  {:<7} {:>9}",
            "request", "st", "cache", "time"
        )?;
        let first = self.send(Request::get("/"))?;
        self.row("GET /", &first, "asked the orchestrator")?;
        let second = self.send(Request::get("/"))?;
        self.row("GET /", &second, "served from /var/cache/nginx/okome")?;
        let warm = self.send(
            Request::head("/assets/app.js")
                .header("X-OKOME-Warm", "1")
                .header("User-Agent", "okome-prewarm/lab"),
        )?;
        self.row(
            "HEAD /assets/app.js (X-OKOME-Warm: 1)",
            &warm,
            "HEAD fetched and stored the GET",
        )?;
        let after = self.send(Request::get("/assets/app.js"))?;
        self.row("GET /assets/app.js", &after, "the warm-up paid off")?;
        self.check(
            first.cache_status() == "MISS" && second.cache_status() == "HIT",
            "GET / is MISS then HIT",
        )?;
        self.check(
            after.cache_status() == "HIT",
            "a prewarm HEAD fills the cache for GET",
        )?;
        self.check(
            self.lab.stub.count("/") == 1,
            "the orchestrator saw GET / once",
        )?;
        writeln!(
            self.out,
            "    response headers: X-Cache-Status: {}  X-OKOME-Node: {}  X-Request-ID: {}",
            second.cache_status(),
            second.header("x-okome-node").unwrap_or("-"),
            second.header("x-request-id").unwrap_or("-")
        )?;
        let lines = self.lab.wait_for_log_lines(5, Duration::from_secs(2));
        if let Some(line) = lines.iter().find(|l| l.contains("warm=1")) {
            writeln!(
                self.out,
                "    okome_access.log (prewarm's line, excluded from counts by warm=1):"
            )?;
            writeln!(self.out, "      {line}")?;
        }
        self.check(
            lines.iter().any(|l| l.ends_with("warm=1")),
            "prewarm's request is logged warm=1",
        )
    }

    fn canary(&mut self) -> io::Result<()> {
        writeln!(
            self.out,
            "\n2. Canary modes on /ui-schema/foo (header X-OKOME-Canary or cookie okome_canary)"
        )?;
        let cases: [(&str, Request, &str); 4] = [
            ("(no header)", Request::get("/ui-schema/foo"), "control"),
            (
                "X-OKOME-Canary: canary",
                Request::get("/ui-schema/foo").header("X-OKOME-Canary", "canary"),
                "canary-ttl-5m",
            ),
            (
                "X-OKOME-Canary: debug",
                Request::get("/ui-schema/foo").header("X-OKOME-Canary", "debug"),
                "debug-bypass",
            ),
            (
                "Cookie: okome_canary=canary",
                Request::get("/ui-schema/foo").header("Cookie", "okome_canary=canary"),
                "canary-ttl-5m",
            ),
        ];
        let entries_before = now_unix();
        for (label, request, expected) in cases {
            let r = self.send(request)?;
            let got = r.header("x-okome-canary").unwrap_or("-").to_owned();
            writeln!(
                self.out,
                "    {label:<30} → X-OKOME-Canary: {got:<14} X-Cache-Status: {}",
                r.cache_status()
            )?;
            self.check(
                got == expected,
                format!("{label} answers X-OKOME-Canary: {expected}"),
            )?;
        }
        let entries = self.lab.cache_entries();
        let ttl = |key: &str| {
            entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.valid_until - entries_before)
        };
        let control = ttl("okome/ui-schema/foo");
        let canary = ttl("okome/ui-schema/foo|ui-schema-canary");
        let show = |t: Option<i64>| t.map_or("not stored".to_owned(), |s| format!("{s} s"));
        writeln!(
            self.out,
            "    stored for: control {}, canary {} (own copy); debug stores nothing",
            show(control),
            show(canary)
        )?;
        self.check(
            control.is_some_and(|s| (86_395..=86_405).contains(&s)),
            "control /ui-schema/ cached 24 h",
        )?;
        self.check(
            canary.is_some_and(|s| (295..=305).contains(&s)),
            "canary /ui-schema/ cached 5 min",
        )
    }

    fn gate(&mut self, driver: &GateDriver) -> io::Result<()> {
        writeln!(self.out, "\n3. Health gate: the orchestrator hangs")?;
        self.lab.stub.set_mode(Mode::Hung);
        writeln!(
            self.out,
            "    orchestrator: hung (accepts connections, never answers)"
        )?;
        let started = Instant::now();
        let how = self.drive_gate(driver, true)?;
        writeln!(
            self.out,
            "    gate closed in {} by {how}",
            ms(started.elapsed())
        )?;
        self.check(
            self.lab.gate_closed(),
            "the gate is closed (flag file present)",
        )?;
        // The primed entry must have expired to show STALE.
        if let Some(entry) = self
            .lab
            .cache_entries()
            .iter()
            .find(|e| e.key.contains("/static/app.css"))
        {
            while now_unix() <= entry.valid_until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let stale = self.send(Request::get(STALE_PATH))?;
        self.row(
            &format!("GET {STALE_PATH}"),
            &stale,
            &format!("X-Upstream: {}", stale.header("x-upstream").unwrap_or("-")),
        )?;
        let page = self.send(Request::get("/settings/never-cached"))?;
        self.row(
            "GET /settings/never-cached",
            &page,
            &format!(
                "maintenance page, Retry-After: {}",
                page.header("retry-after").unwrap_or("-")
            ),
        )?;
        let api = self.send(Request::new("POST", "/api/planner").body("{}"))?;
        self.row("POST /api/planner", &api, api.text().trim())?;
        let health = self.send(Request::get("/health"))?;
        self.row("GET /health", &health, health.text().trim())?;
        self.check(
            stale.status == 200 && stale.cache_status() == "STALE",
            "cached UI is served STALE",
        )?;
        self.check(
            page.status == 503 && page.header("retry-after").is_some(),
            "uncached UI gets 503 + Retry-After",
        )?;
        self.check(
            api.status == 503 && api.header("content-type") == Some("application/json"),
            "/api/ gets a JSON 503",
        )?;
        self.check(health.status == 503, "/health says down")?;
        // Latency with the gate closed, each from its own client address so
        // the rate limit does not interfere.
        let stale_times = self.sample(40, ip("127.0.0.11"), |_| STALE_PATH.to_owned())?;
        let page_times =
            self.sample(40, ip("127.0.0.12"), |i| format!("/maintenance-sample/{i}"))?;
        writeln!(
            self.out,
            "    latency while hung, 40 requests each: stale median {} (max {}), maintenance median {} (max {})",
            ms(stale_times.0),
            ms(stale_times.1),
            ms(page_times.0),
            ms(page_times.1)
        )?;
        self.check(
            stale_times.1 < Duration::from_secs(1),
            "no stale answer waited on the hung orchestrator",
        )?;
        self.check(
            page_times.1 < Duration::from_secs(1),
            "no maintenance page waited on the hung orchestrator",
        )?;

        writeln!(self.out, "    orchestrator: up again")?;
        self.lab.stub.set_mode(Mode::Up);
        let started = Instant::now();
        let how = self.drive_gate(driver, false)?;
        writeln!(
            self.out,
            "    gate opened in {} by {how}",
            ms(started.elapsed())
        )?;
        let api = self.send(Request::get("/api/models"))?;
        self.row(
            "GET /api/models",
            &api,
            &format!("X-Upstream: {}", api.header("x-upstream").unwrap_or("-")),
        )?;
        self.check(
            !self.lab.gate_closed() && api.status == 200,
            "the gate reopens and /api/ flows",
        )?;
        let reloads = self.lab.nginx.reload_count();
        writeln!(
            self.out,
            "    nginx reloads during all this: {reloads} (the flag file is checked per request)"
        )?;
        self.check(reloads == 0, "no nginx reload")
    }

    /// Close (`close`) or open the gate; says how.
    fn drive_gate(&mut self, driver: &GateDriver, close: bool) -> io::Result<String> {
        match driver {
            GateDriver::FlagFile => {
                if close {
                    self.lab.close_gate();
                    Ok(format!(
                        "creating {} (okome-health-probe not built)",
                        crate::root::FLAG_FILE
                    ))
                } else {
                    self.lab.open_gate();
                    Ok(format!("removing {}", crate::root::FLAG_FILE))
                }
            }
            GateDriver::Probe(binary) => {
                let mut runs = 0;
                while self.lab.gate_closed() != close && runs < 10 {
                    runs += 1;
                    let out = Command::new(binary)
                        .env("OKOME_ROOT", self.lab.root.dir())
                        .env_remove("JOURNAL_STREAM")
                        .arg("--url")
                        .arg(format!("{}/health", self.lab.stub.url()))
                        .args(["--hold-down", "0s", "--no-metrics", "--node", "lab"])
                        .output()?;
                    let said = String::from_utf8_lossy(&out.stderr);
                    if let Some(line) = said.lines().last() {
                        writeln!(
                            self.out,
                            "      $ okome-health-probe   (exit {}) {line}",
                            out.status.code().unwrap_or(-1)
                        )?;
                    }
                }
                Ok(format!(
                    "okome-health-probe ({runs} run{})",
                    if runs == 1 { "" } else { "s" }
                ))
            }
        }
    }

    /// `n` GETs from `source`; (median, max) latency.
    fn sample(
        &mut self,
        n: usize,
        source: IpAddr,
        path: impl Fn(usize) -> String,
    ) -> io::Result<(Duration, Duration)> {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let r = self.send(Request::get(&path(i)).from(source))?;
            times.push(r.elapsed);
        }
        times.sort();
        Ok((times[n / 2], times[n - 1]))
    }

    fn rate_limit(&mut self) -> io::Result<()> {
        writeln!(
            self.out,
            "\n4. Rate limits (per client address; 429 past them)"
        )?;
        for (label, path, n, source) in [
            ("UI  20 r/s, burst 60", "/assets/app.js", 100, "127.0.0.3"),
            ("API  5 r/s, burst 10", "/api/models", 30, "127.0.0.4"),
        ] {
            let start = Instant::now();
            let (mut ok, mut limited) = (0, 0);
            for _ in 0..n {
                match self.send(Request::get(path).from(ip(source)))?.status {
                    429 => limited += 1,
                    _ => ok += 1,
                }
            }
            writeln!(
                self.out,
                "    {label}: {n} requests in {} from {source} → {ok} answered, {limited} × 429",
                ms(start.elapsed())
            )?;
            self.check(limited > 0, format!("{label}: 429 past the limit"))?;
        }
        Ok(())
    }

    fn streaming(&mut self) -> io::Result<()> {
        writeln!(
            self.out,
            "\n5. Streaming /api/ (unbuffered): 5 chunks, 200 ms apart"
        )?;
        let start = Instant::now();
        let mut open =
            Request::get("/api/stream?chunks=5&interval_ms=200").open(self.lab.addr())?;
        let mut arrivals = Vec::new();
        while let Some(piece) = open.next_piece()? {
            if !piece.is_empty() {
                arrivals.push(start.elapsed());
            }
        }
        let shown: Vec<String> = arrivals
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect();
        writeln!(self.out, "    chunks arrived at {} ms", shown.join(", "))?;
        let first = arrivals.first().copied().unwrap_or_default();
        let last = arrivals.last().copied().unwrap_or_default();
        writeln!(
            self.out,
            "    first byte after {}, the orchestrator finished after about {}",
            ms(first),
            ms(last)
        )?;
        self.check(arrivals.len() == 5, "all 5 chunks arrived")?;
        self.check(
            first + Duration::from_millis(500) < last,
            "the first chunk arrived long before the last",
        )
    }

    fn redis(&mut self) -> io::Result<()> {
        let Some(redis) = &self.lab.redis else {
            return Ok(());
        };
        writeln!(self.out, "\n6. Redis (backend cache)")?;
        let policy = redis.config_get("maxmemory-policy")?;
        let max = redis.config_get("maxmemory")?;
        let aof = redis.config_get("appendonly")?;
        let save = redis.config_get("save")?;
        writeln!(
            self.out,
            "    maxmemory {} MB, maxmemory-policy {policy}, appendonly {aof}, save \"{save}\"",
            max.parse::<u64>().unwrap_or(0) / (1024 * 1024)
        )?;
        self.check(policy == "allkeys-lru", "redis evicts allkeys-lru")
    }

    fn plan(&mut self, agent: &str, prompt: &str) -> io::Result<Response> {
        Request::get(&format!("/api/planner?model=gpt-4&prompt={prompt}"))
            .header("X-OKOME-Agent", agent)
            .header("X-Repo-Hash", "abc123")
            .send(self.lab.stub.addr())
    }

    fn plan_row(&mut self, label: &str, r: &Response) -> io::Result<()> {
        writeln!(
            self.out,
            "    {label:<36} {:>3}  X-OKOME-Cache: {:<5} remaining {:>2}{}",
            r.status,
            r.header("x-okome-cache").unwrap_or("-"),
            r.header("x-okome-agent-rate-remaining").unwrap_or("-"),
            r.header("retry-after")
                .map_or(String::new(), |s| format!("  Retry-After: {s}"))
        )
    }

    fn planner(&mut self) -> io::Result<()> {
        let Some(redis) = &self.lab.redis else {
            return Ok(());
        };
        writeln!(
            self.out,
            "\n7. Planner cache and agent budgets (the okome Redis function library, FCALL)"
        )?;
        let first = self.plan("tour-agent", "plan-the-release")?;
        self.plan_row("GET /api/planner (agent tour-agent)", &first)?;
        let second = self.plan("tour-agent-2", "plan-the-release")?;
        self.plan_row("same plan, another agent", &second)?;
        writeln!(
            self.out,
            "    X-OKOME-Cache-Key: {}",
            first.header("x-okome-cache-key").unwrap_or("-")
        )?;
        self.check(
            first.header("x-okome-cache") == Some("MISS")
                && second.header("x-okome-cache") == Some("HIT"),
            "a planner request is MISS, then HIT",
        )?;
        // Spend tour-agent's 60 requests a minute.
        let mut last = first;
        let mut sent = 1;
        while last.status != 429 && sent < 70 {
            last = self.plan("tour-agent", &format!("step-{sent}"))?;
            sent += 1;
        }
        self.plan_row(&format!("request #{sent} of tour-agent"), &last)?;
        self.check(
            last.status == 429 && sent == 61 && last.header("retry-after").is_some(),
            "the 61st request of an agent in a minute gets 429 + Retry-After",
        )?;
        // The operator clamps another agent to 2 a minute.
        let clamp = redis.command(&[
            "FCALL",
            "okome_clamp",
            "1",
            "okome:budget:clamp:tour-agent-2",
            "rate",
            "2",
            "600",
        ])?;
        writeln!(
            self.out,
            "    redis-cli FCALL okome_clamp 1 okome:budget:clamp:tour-agent-2 rate 2 600 → {}",
            clamp.text().unwrap_or_else(|| format!("{clamp:?}"))
        )?;
        let after = self.plan("tour-agent-2", "after-clamp")?;
        self.plan_row("tour-agent-2 after the clamp", &after)?;
        let refused = self.plan("tour-agent-2", "after-clamp-2")?;
        self.plan_row("tour-agent-2 once more", &refused)?;
        self.check(
            after.status == 200 && refused.status == 429,
            "an operator's clamp takes effect on the next request",
        )?;
        let (fail_open, computed) = self.lab.stub.planner_counts();
        writeln!(
            self.out,
            "    plans computed {computed}, decisions failed open {fail_open} (Redis unreachable: answer uncached, count, go on)"
        )?;
        self.check(fail_open == 0, "no planner request failed open")
    }
}

//! The client side of the `okome` Redis function library
//! (`configs/redis-backend/okome.lua`): the key schema, a persistent RESP
//! connection, typed calls for every function, and the two client rules of
//! docs/budgets.md — reload the embedded library once on `Function not found`
//! (when the user may), and fail open fast when Redis is unreachable.
//!
//! It is what the stub orchestrator, the tests in `tests/tests/budgets.rs`
//! and `cargo xtask bench budgets` call, and the model for the Python
//! orchestrator's helper (docs/budgets.md shows the redis-py equivalent).

use std::fmt;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::free_port;
use crate::redis::{Redis, Reply, encode, read_reply};
use crate::render::{LAB_REDIS_OPERATOR_PASSWORD, LAB_REDIS_ORCHESTRATOR_PASSWORD};
use crate::root::LabRoot;

/// The library source, embedded so a client can reload it.
pub const LIBRARY_SOURCE: &str = include_str!("../../configs/redis-backend/okome.lua");

/// Seed defaults: 60 requests and 30 cache writes per minute, 5,000 live keys.
pub const DEFAULT_RATE: u64 = 60;
pub const DEFAULT_WRITES: u64 = 30;
pub const DEFAULT_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_KEY_CAP: u64 = 5_000;

/// The version string `okome_version` answers, read from the source.
pub fn library_version() -> &'static str {
    LIBRARY_SOURCE
        .lines()
        .find_map(|l| l.strip_prefix("local OKOME_VERSION = '"))
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or("")
}

/// The key schema (seeds 002/000); one function per key so no caller
/// spells a key by hand.
pub mod keys {
    pub const INDEX: &str = "okome:budget:index";
    pub const CLAMP_ALL: &str = "okome:budget:clamp:_all";
    pub fn rate(agent: &str) -> String {
        format!("okome:budget:rl:{agent}")
    }
    pub fn writes(agent: &str) -> String {
        format!("okome:budget:writes:{agent}")
    }
    pub fn agent_keys(agent: &str) -> String {
        format!("okome:agentkeys:{agent}")
    }
    pub fn clamp(agent: &str) -> String {
        format!("okome:budget:clamp:{agent}")
    }
    /// `okome:planner:{model}:{prompt_hash}:{toolset}:{repo_hash}`.
    pub fn planner(model: &str, prompt_hash: &str, toolset: &str, repo_hash: &str) -> String {
        format!("okome:planner:{model}:{prompt_hash}:{toolset}:{repo_hash}")
    }
    /// The plan, its lease and its fencing counter.
    pub fn plan_set(plan: &str) -> [String; 3] {
        [
            plan.to_owned(),
            format!("{plan}:lease"),
            format!("{plan}:fence"),
        ]
    }
}

/// The okome_rate call for `agent` as one command line, `VERB NAME 4
/// <keys> <agent> <limit> <window_ms>`: the keys and arguments
/// [`Conn::rate`] sends, for callers that send it themselves (`FCALL`
/// written raw or cut short in tests, `EVAL` of the source in the bench).
pub fn rate_command(
    verb: &str,
    name: &str,
    agent: &str,
    limit: u64,
    window_ms: u64,
) -> Vec<String> {
    let (rate, clamp) = (keys::rate(agent), keys::clamp(agent));
    let (limit, window_ms) = (limit.to_string(), window_ms.to_string());
    let command: [&str; 10] = [
        verb,
        name,
        "4",
        &rate,
        keys::INDEX,
        &clamp,
        keys::CLAMP_ALL,
        agent,
        &limit,
        &window_ms,
    ];
    command.map(str::to_owned).to_vec()
}

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// Redis could not be reached or the connection broke: fail open.
    Unreachable(io::Error),
    /// The library is not loaded and this user may not load it.
    Missing(String),
    /// Redis answered with an error.
    Redis(String),
    /// An answer of an unexpected shape (library/client version skew).
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "redis unreachable: {e}"),
            Self::Missing(e) => write!(f, "okome library missing and not reloadable: {e}"),
            Self::Redis(e) => write!(f, "redis: {e}"),
            Self::Protocol(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// One persistent connection (what a pool hands out).
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    /// How many times this connection reloaded the library.
    pub reloads: u64,
}

impl Conn {
    /// Connect and `AUTH user password` (no AUTH when `user` is None), with
    /// `timeout` for the connect and every read and write.
    pub fn connect(
        addr: SocketAddr,
        user: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(Error::Unreachable)?;
        let setup = |s: &TcpStream| -> io::Result<TcpStream> {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.try_clone()
        };
        let clone = setup(&stream).map_err(Error::Unreachable)?;
        let mut conn = Self {
            reader: BufReader::new(stream),
            writer: BufWriter::new(clone),
            reloads: 0,
        };
        if let Some((user, password)) = user
            && let Reply::Error(e) = conn.call(&["AUTH", user, password])?
        {
            return Err(Error::Redis(format!("AUTH {user}: {e}")));
        }
        Ok(conn)
    }

    /// Change the read and write timeout of every later command.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(Error::Unreachable)
    }

    /// One command, one reply (an error reply is an `Ok(Reply::Error)`).
    pub fn call(&mut self, args: &[&str]) -> Result<Reply, Error> {
        self.send(args).map_err(Error::Unreachable)?;
        self.receive()
    }

    /// Write one command without reading its reply (pipelining, and the
    /// tests that drop a connection between two commands).
    pub fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.writer.write_all(&encode(args))?;
        self.writer.flush()
    }

    /// Write raw bytes (a test cuts a command in half with this).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Read one reply.
    pub fn receive(&mut self) -> Result<Reply, Error> {
        read_reply(&mut self.reader).map_err(Error::Unreachable)
    }

    /// `FCALL name numkeys keys… args…`, reloading the embedded library once
    /// when Redis says `Function not found` (FUNCTION LOAD without REPLACE,
    /// so a newer library loaded meanwhile is never clobbered).
    pub fn fcall(&mut self, name: &str, keys: &[&str], args: &[&str]) -> Result<Reply, Error> {
        self.fcall_as("FCALL", name, keys, args)
    }

    /// As [`Conn::fcall`] with `FCALL_RO` (read-only functions; replicas).
    pub fn fcall_ro(&mut self, name: &str, keys: &[&str], args: &[&str]) -> Result<Reply, Error> {
        self.fcall_as("FCALL_RO", name, keys, args)
    }

    fn fcall_as(
        &mut self,
        verb: &str,
        name: &str,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, Error> {
        let numkeys = keys.len().to_string();
        let mut command = vec![verb, name, &numkeys];
        command.extend_from_slice(keys);
        command.extend_from_slice(args);
        match self.call(&command)? {
            Reply::Error(e) if e.contains("Function not found") => {
                match self.call(&["FUNCTION", "LOAD", LIBRARY_SOURCE])? {
                    Reply::Error(load) if !load.contains("already exists") => {
                        return Err(Error::Missing(format!("{e}; FUNCTION LOAD: {load}")));
                    }
                    _ => self.reloads += 1,
                }
                match self.call(&command)? {
                    Reply::Error(e) => Err(Error::Redis(e)),
                    reply => Ok(reply),
                }
            }
            Reply::Error(e) => Err(Error::Redis(e)),
            reply => Ok(reply),
        }
    }

    /// Load (or replace) the library as an operator would.
    pub fn load_library(&mut self) -> Result<String, Error> {
        match self.call(&["FUNCTION", "LOAD", "REPLACE", LIBRARY_SOURCE])? {
            Reply::Error(e) => Err(Error::Redis(e)),
            reply => reply
                .text()
                .ok_or_else(|| Error::Protocol(format!("{reply:?}"))),
        }
    }

    /// `okome_version`.
    pub fn version(&mut self) -> Result<String, Error> {
        let reply = self.fcall_ro("okome_version", &[], &[])?;
        reply
            .text()
            .ok_or_else(|| Error::Protocol(format!("{reply:?}")))
    }

    /// The rate decision for `agent`: `limit` requests per `window_ms`.
    pub fn rate(&mut self, agent: &str, limit: u64, window_ms: u64) -> Result<Decision, Error> {
        self.budget("okome_rate", &keys::rate(agent), agent, limit, window_ms)
    }

    /// The cache-write budget for `agent`.
    pub fn write(&mut self, agent: &str, limit: u64, window_ms: u64) -> Result<Decision, Error> {
        self.budget("okome_write", &keys::writes(agent), agent, limit, window_ms)
    }

    fn budget(
        &mut self,
        function: &str,
        key: &str,
        agent: &str,
        limit: u64,
        window_ms: u64,
    ) -> Result<Decision, Error> {
        let clamp = keys::clamp(agent);
        let reply = self.fcall(
            function,
            &[key, keys::INDEX, &clamp, keys::CLAMP_ALL],
            &[agent, &limit.to_string(), &window_ms.to_string()],
        )?;
        match ints(&reply)?[..] {
            [allowed, remaining, retry_after_ms, reset_ms, now_ms, limit] => Ok(Decision {
                allowed: allowed == 1,
                remaining: remaining as u64,
                retry_after_ms: retry_after_ms as u64,
                reset_ms: reset_ms as u64,
                now_ms: now_ms as u64,
                limit: limit as u64,
            }),
            _ => Err(Error::Protocol(format!("{function}: {reply:?}"))),
        }
    }

    /// Count `cache_key` (live for `ttl_ms`) against `agent`'s live-key cap.
    /// → (allowed, live keys, effective cap).
    pub fn track_key(
        &mut self,
        agent: &str,
        cache_key: &str,
        ttl_ms: u64,
        cap: u64,
    ) -> Result<(bool, u64, u64), Error> {
        let (set, clamp) = (keys::agent_keys(agent), keys::clamp(agent));
        let reply = self.fcall(
            "okome_track_key",
            &[&set, keys::INDEX, &clamp, keys::CLAMP_ALL],
            &[agent, cache_key, &ttl_ms.to_string(), &cap.to_string()],
        )?;
        match ints(&reply)?[..] {
            [allowed, live, cap] => Ok((allowed == 1, live as u64, cap as u64)),
            _ => Err(Error::Protocol(format!("okome_track_key: {reply:?}"))),
        }
    }

    /// Get-or-lead on planner key `plan`. `rand` in (0, 1] drives XFetch's
    /// early refresh (None: the library's own `math.random`).
    pub fn plan_get(
        &mut self,
        plan: &str,
        lease_ms: u64,
        rand: Option<f64>,
    ) -> Result<PlanAnswer, Error> {
        let [p, lease, fence] = keys::plan_set(plan);
        let rand = rand.map(|r| r.to_string()).unwrap_or_default();
        let reply = self.fcall(
            "okome_plan_get",
            &[&p, &lease, &fence],
            &[&lease_ms.to_string(), &rand],
        )?;
        let items = array(&reply)?;
        let word = items.first().and_then(Reply::text).unwrap_or_default();
        let int = |i: usize| match items.get(i) {
            Some(Reply::Integer(n)) => Some(*n as u64),
            _ => None,
        };
        let bulk = |i: usize| items.get(i).and_then(Reply::text);
        match (word.as_str(), int(1), int(2)) {
            ("HIT", _, Some(ttl_ms)) => Ok(PlanAnswer::Hit {
                value: bulk(1).unwrap_or_default(),
                ttl_ms,
            }),
            ("LEAD", Some(token), _) => Ok(PlanAnswer::Lead {
                token,
                stale: bulk(2),
            }),
            ("WAIT", Some(ms), _) => Ok(PlanAnswer::Wait { ms }),
            _ => Err(Error::Protocol(format!("okome_plan_get: {reply:?}"))),
        }
    }

    /// Store the plan computed under `token` for `ttl_ms`.
    pub fn plan_commit(
        &mut self,
        plan: &str,
        token: u64,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Commit, Error> {
        let [p, lease, fence] = keys::plan_set(plan);
        let reply = self.fcall(
            "okome_plan_commit",
            &[&p, &lease, &fence],
            &[&token.to_string(), value, &ttl_ms.to_string()],
        )?;
        let items = array(&reply)?;
        let n = match items.get(1) {
            Some(Reply::Integer(n)) => *n as u64,
            _ => 0,
        };
        match items.first().and_then(Reply::text).as_deref() {
            Some("OK") => Ok(Commit::Stored),
            Some("STALE") => Ok(Commit::Stale { newest: n }),
            Some("NOT_HOLDER") => Ok(Commit::NotHolder { holder: n }),
            _ => Err(Error::Protocol(format!("okome_plan_commit: {reply:?}"))),
        }
    }

    /// Extend the lease; false if `token` no longer holds it.
    pub fn plan_renew(&mut self, plan: &str, token: u64, lease_ms: u64) -> Result<bool, Error> {
        let lease = format!("{plan}:lease");
        let reply = self.fcall(
            "okome_plan_renew",
            &[&lease],
            &[&token.to_string(), &lease_ms.to_string()],
        )?;
        Ok(reply == Reply::Integer(1))
    }

    /// Give the lease back without a plan; false if not the holder.
    pub fn plan_release(&mut self, plan: &str, token: u64) -> Result<bool, Error> {
        let lease = format!("{plan}:lease");
        let reply = self.fcall("okome_plan_release", &[&lease], &[&token.to_string()])?;
        Ok(reply == Reply::Integer(1))
    }

    /// Lower `field` (rate | writes | keys) to `limit` for `agent` (None:
    /// every agent) for `ttl_s` seconds.
    pub fn clamp(
        &mut self,
        agent: Option<&str>,
        field: &str,
        limit: u64,
        ttl_s: u64,
    ) -> Result<(), Error> {
        let key = agent.map_or(keys::CLAMP_ALL.to_owned(), keys::clamp);
        self.fcall(
            "okome_clamp",
            &[&key],
            &[field, &limit.to_string(), &ttl_s.to_string()],
        )
        .map(drop)
    }

    /// Forget an agent's budgets (its rate and write logs, its live-key set).
    pub fn reset(&mut self, agent: &str) -> Result<u64, Error> {
        let (r, w, k) = (
            keys::rate(agent),
            keys::writes(agent),
            keys::agent_keys(agent),
        );
        match self.fcall("okome_reset", &[&r, &w, &k], &[])? {
            Reply::Integer(n) => Ok(n as u64),
            other => Err(Error::Protocol(format!("okome_reset: {other:?}"))),
        }
    }

    /// The busiest agents (`FCALL_RO okome_report`).
    pub fn report(&mut self, top: u64) -> Result<Vec<AgentRow>, Error> {
        let reply = self.fcall_ro("okome_report", &[keys::INDEX], &[&top.to_string()])?;
        array(&reply)?
            .iter()
            .map(|row| {
                let items = array(row)?;
                let agent = items.first().and_then(Reply::text).unwrap_or_default();
                match ints(&Reply::Array(Some(items[1..].to_vec())))?[..] {
                    [requests, writes, live_keys, idle_ms, clamp_rate] => Ok(AgentRow {
                        agent,
                        requests: requests as u64,
                        writes: writes as u64,
                        live_keys: live_keys as u64,
                        idle_ms: idle_ms as u64,
                        clamp_rate: (clamp_rate >= 0).then_some(clamp_rate as u64),
                    }),
                    _ => Err(Error::Protocol(format!("okome_report row: {row:?}"))),
                }
            })
            .collect()
    }
}

/// One budget decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    /// 0 when allowed; else how long until one more request fits.
    pub retry_after_ms: u64,
    /// Until the oldest counted request leaves the window.
    pub reset_ms: u64,
    /// Redis's clock at the decision (the timestamp of an accepted request).
    pub now_ms: u64,
    /// The limit applied (after any clamp).
    pub limit: u64,
}

/// What `okome_plan_get` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanAnswer {
    Hit {
        value: String,
        ttl_ms: u64,
    },
    /// Compute the plan and commit it under `token`; `stale` is the current
    /// plan when this is an early (XFetch) refresh.
    Lead {
        token: u64,
        stale: Option<String>,
    },
    /// Another client leads: ask again in `ms`.
    Wait {
        ms: u64,
    },
}

/// What `okome_plan_commit` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Stored,
    /// A newer leader's token exists: this plan was not stored.
    Stale {
        newest: u64,
    },
    /// Another client holds the lease now.
    NotHolder {
        holder: u64,
    },
}

/// One row of `okome_report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub agent: String,
    pub requests: u64,
    pub writes: u64,
    pub live_keys: u64,
    pub idle_ms: u64,
    pub clamp_rate: Option<u64>,
}

fn array(reply: &Reply) -> Result<Vec<Reply>, Error> {
    match reply {
        Reply::Array(Some(items)) => Ok(items.clone()),
        other => Err(Error::Protocol(format!("expected an array, got {other:?}"))),
    }
}

fn ints(reply: &Reply) -> Result<Vec<i64>, Error> {
    array(reply)?
        .iter()
        .map(|r| match r {
            Reply::Integer(n) => Ok(*n),
            other => Err(Error::Protocol(format!(
                "expected an integer, got {other:?}"
            ))),
        })
        .collect()
}

/// The ACL lines of the backend's users for the function library, taken
/// from the SHIPPED redis.conf (so these tests and the node agree by
/// construction): `default` off, `orchestrator` may call functions on
/// `okome:*` keys but never load, replace, delete, flush or restore them, nor
/// run a script of its own (`-@scripting`, then `+fcall +fcall_ro
/// +function|list`), and `operator`. The shipped placeholder hashes become
/// these plain `>password`s.
pub fn acl_lines(orchestrator_password: &str, operator_password: &str) -> String {
    let shipped = crate::bins::configs_dir().join("redis-backend/redis.conf");
    let text =
        std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
    let mut lines = String::new();
    for user in ["default", "orchestrator", "operator"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["user", user]))
            .unwrap_or_else(|| panic!("{} has no `user {user}` line", shipped.display()));
        let line = line
            .replace(
                &format!("#{}", "0".repeat(64)),
                &format!(">{orchestrator_password}"),
            )
            .replace(
                &format!("#{}", "1".repeat(64)),
                &format!(">{operator_password}"),
            );
        lines.push_str(&line);
        lines.push('\n');
    }
    lines
}

/// A redis.conf for the budgets tests: loopback `port`, no persistence as
/// shipped, `dir`/`dbfilename` where the preload RDB goes, and the ACL above.
pub fn test_conf(port: u16, dir: &Path, dbfilename: &str, acl: &str) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\n\
         dir {}\ndbfilename {dbfilename}\nlogfile \"\"\n{acl}",
        dir.display()
    )
}

/// A redis-server on [`test_conf`] with the ACL of [`acl_lines`] (lab
/// passwords), in its own lab root, that can be restarted on the same port
/// and directory: the preload tests restart it, kill -9 it, upgrade it.
#[derive(Debug)]
pub struct TestRedis {
    pub root: LabRoot,
    pub conf: PathBuf,
    pub port: u16,
    redis: Option<Redis>,
}

impl TestRedis {
    /// Start with `dbfilename` in `<root>/var/lib/redis` (absent is fine).
    pub fn start(dbfilename: &str) -> Self {
        let root = LabRoot::new();
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = root.path("/etc/redis/okome-test.conf");
            let text = test_conf(
                port,
                &root.path("/var/lib/redis"),
                dbfilename,
                &acl_lines(LAB_REDIS_ORCHESTRATOR_PASSWORD, LAB_REDIS_OPERATOR_PASSWORD),
            );
            std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
            match Redis::try_start(&root, &conf, port) {
                Ok(redis) => {
                    return Self {
                        root,
                        conf,
                        port,
                        redis: Some(redis),
                    };
                }
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    /// The running server.
    pub fn redis(&self) -> &Redis {
        self.redis.as_ref().expect("redis is running")
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port))
    }

    /// A connection as `operator` (everything) or `orchestrator` (FCALL).
    pub fn conn(&self, user: &str) -> Conn {
        let password = match user {
            "operator" => LAB_REDIS_OPERATOR_PASSWORD,
            "orchestrator" => LAB_REDIS_ORCHESTRATOR_PASSWORD,
            other => panic!("no lab password for {other}"),
        };
        Conn::connect(self.addr(), Some((user, password)), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connecting as {user}: {e}"))
    }

    /// Stop as `systemctl restart` does (SIGTERM: Redis shuts down cleanly)
    /// and start again on the same config.
    pub fn restart(&mut self) {
        drop(self.redis.take());
        self.start_again();
    }

    /// SIGKILL redis-server (no shutdown code runs), then start again.
    pub fn kill9_and_restart(&mut self) {
        if let Some(redis) = self.redis.take() {
            let pid = nix::unistd::Pid::from_raw(redis.pid() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            drop(redis);
        }
        self.start_again();
    }

    fn start_again(&mut self) {
        let mut last = String::new();
        // The old process may hold the port for a moment after it is reaped.
        for _ in 0..50 {
            match Redis::try_start(&self.root, &self.conf, self.port) {
                Ok(redis) => {
                    self.redis = Some(redis);
                    return;
                }
                Err(e) if e.contains("in use") => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }
}

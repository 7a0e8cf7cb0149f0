//! The guard file `/etc/okome/CHAOS_ENABLE`: without it, nothing is injected.
//!
//! An operator arms chaos on purpose, for a while, for named scenarios and
//! nodes; a forgotten guard must not arm it forever. The file is re-read
//! before every step of a run (and on every probe tick), so deleting it — or
//! `okome-chaos halt` — stops a run within a second. [`judge`] is pure (owner,
//! mode, text and the time are arguments) so every refusal is a table test;
//! [`load`] only gathers those facts.
//!
//! Format, one `key=value` a line, `#` comments:
//! ```text
//! expires=2026-12-08T06:00:00Z
//! scenarios=nginx-stop,redis-stop
//! nodes=frontend-a,frontend-b
//! ```

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where the guard lives (under `OKOME_ROOT`).
pub const GUARD_PATH: &str = "/etc/okome/CHAOS_ENABLE";

/// The longest a guard may stay armed.
pub const MAX_ARMED_SECS: u64 = 24 * 3600;

/// A guard that allows something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Unix time after which it allows nothing.
    pub expires: u64,
    /// Scenario names it allows.
    pub scenarios: Vec<String>,
    /// Node names it allows.
    pub nodes: Vec<String>,
    /// SHA-256 of the file, recorded in each run's journal.
    pub hash: String,
}

/// Why the guard refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No guard file.
    Missing(PathBuf),
    /// It could not be read.
    Unreadable(PathBuf, String),
    /// Not owned by root.
    NotRoot(u32),
    /// Permission bits other than 0600.
    Mode(u32),
    /// A line that is not `key=value` with a known key, or a bad value.
    Malformed(String),
    /// The expiry has passed.
    Expired(u64),
    /// The expiry is more than 24 h away.
    TooFar(u64),
    /// The scenario is not listed.
    Scenario(String),
    /// The node is not listed.
    Node(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing(path) => write!(
                f,
                "no guard file {}: chaos is disarmed (see okome-chaos --help, GUARD)",
                path.display()
            ),
            Refusal::Unreadable(path, why) => {
                write!(f, "guard {} cannot be read: {why}", path.display())
            }
            Refusal::NotRoot(uid) => write!(f, "guard is owned by uid {uid}, not root"),
            Refusal::Mode(mode) => write!(f, "guard has mode {mode:04o}, not 0600"),
            Refusal::Malformed(why) => write!(f, "guard is malformed: {why}"),
            Refusal::Expired(at) => write!(f, "guard expired at {}", format_utc(*at)),
            Refusal::TooFar(at) => write!(
                f,
                "guard expires at {}, more than 24 h from now",
                format_utc(*at)
            ),
            Refusal::Scenario(name) => write!(f, "guard does not allow scenario {name}"),
            Refusal::Node(name) => write!(f, "guard does not allow node {name}"),
        }
    }
}

/// The facts [`judge`] needs about the file.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Owner uid.
    pub uid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Contents.
    pub text: Vec<u8>,
}

/// Read the guard's facts; `Err` when it is missing or unreadable.
pub fn load(path: &Path) -> Result<Facts, Refusal> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refusal::Missing(path.to_path_buf()));
        }
        Err(error) => return Err(Refusal::Unreadable(path.to_path_buf(), error.to_string())),
    };
    let meta = std::fs::metadata(path)
        .map_err(|error| Refusal::Unreadable(path.to_path_buf(), error.to_string()))?;
    Ok(Facts {
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        text,
    })
}

/// Whether the guard allows `scenario` on `node` at `now`.
pub fn judge(facts: &Facts, now: u64, scenario: &str, node: &str) -> Result<Guard, Refusal> {
    let guard = parse(facts, now)?;
    if !guard.scenarios.iter().any(|s| s == scenario) {
        return Err(Refusal::Scenario(scenario.to_string()));
    }
    if !guard.nodes.iter().any(|n| n == node) {
        return Err(Refusal::Node(node.to_string()));
    }
    Ok(guard)
}

/// Owner, mode, syntax and expiry, whatever the scenario.
pub fn parse(facts: &Facts, now: u64) -> Result<Guard, Refusal> {
    if facts.uid != 0 {
        return Err(Refusal::NotRoot(facts.uid));
    }
    if facts.mode != 0o600 {
        return Err(Refusal::Mode(facts.mode));
    }
    let text = std::str::from_utf8(&facts.text)
        .map_err(|_| Refusal::Malformed("not UTF-8".to_string()))?;
    let (mut expires, mut scenarios, mut nodes) = (None, None, None);
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Refusal::Malformed(format!("line {}: no '='", index + 1)));
        };
        let list = || -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        };
        match key.trim() {
            "expires" => {
                expires = Some(parse_utc(value.trim()).ok_or_else(|| {
                    Refusal::Malformed(format!(
                        "line {}: expires is not YYYY-MM-DDTHH:MM:SSZ",
                        index + 1
                    ))
                })?)
            }
            "scenarios" => scenarios = Some(list()),
            "nodes" => nodes = Some(list()),
            other => {
                return Err(Refusal::Malformed(format!(
                    "line {}: unknown key {other:?}",
                    index + 1
                )));
            }
        }
    }
    let expires = expires.ok_or_else(|| Refusal::Malformed("no expires=".to_string()))?;
    let scenarios = scenarios.ok_or_else(|| Refusal::Malformed("no scenarios=".to_string()))?;
    let nodes = nodes.ok_or_else(|| Refusal::Malformed("no nodes=".to_string()))?;
    if expires <= now {
        return Err(Refusal::Expired(expires));
    }
    if expires > now + MAX_ARMED_SECS {
        return Err(Refusal::TooFar(expires));
    }
    let hash = Sha256::digest(&facts.text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Guard {
        expires,
        scenarios,
        nodes,
        hash,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` → unix seconds.
pub fn parse_utc(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' || bytes[19] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &text[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    let days = okome_common::time::days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs).ok()
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = okome_common::time::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_600_000;

    fn facts(uid: u32, mode: u32, text: &str) -> Facts {
        Facts {
            uid,
            mode,
            text: text.as_bytes().to_vec(),
        }
    }

    fn good(expires: u64) -> String {
        format!(
            "# armed for the game day\nexpires={}\nscenarios=nginx-stop, redis-stop\nnodes=frontend-a\n",
            format_utc(expires)
        )
    }

    #[test]
    fn a_good_guard_allows_what_it_names_only() {
        let f = facts(0, 0o600, &good(NOW + 3600));
        let guard = judge(&f, NOW, "nginx-stop", "frontend-a").unwrap();
        assert_eq!(guard.scenarios, ["nginx-stop", "redis-stop"]);
        assert_eq!(guard.hash.len(), 64);
        assert_eq!(
            judge(&f, NOW, "vip-failover", "frontend-a"),
            Err(Refusal::Scenario("vip-failover".into()))
        );
        assert_eq!(
            judge(&f, NOW, "nginx-stop", "frontend-b"),
            Err(Refusal::Node("frontend-b".into()))
        );
    }

    #[test]
    fn owner_mode_expiry_and_syntax_are_refused() {
        let text = good(NOW + 3600);
        let cases = [
            (facts(1000, 0o600, &text), Refusal::NotRoot(1000)),
            (facts(0, 0o644, &text), Refusal::Mode(0o644)),
            (facts(0, 0o640, &text), Refusal::Mode(0o640)),
            (facts(0, 0o600, &good(NOW - 1)), Refusal::Expired(NOW - 1)),
            (facts(0, 0o600, &good(NOW)), Refusal::Expired(NOW)),
            (
                facts(0, 0o600, &good(NOW + MAX_ARMED_SECS + 1)),
                Refusal::TooFar(NOW + MAX_ARMED_SECS + 1),
            ),
        ];
        for (f, want) in cases {
            assert_eq!(judge(&f, NOW, "nginx-stop", "frontend-a"), Err(want));
        }
        for bad in [
            "expires=tomorrow\nscenarios=a\nnodes=b\n",
            "scenarios=a\nnodes=b\n",
            &format!("expires={}\nnodes=b\n", format_utc(NOW + 60)),
            &format!("expires={}\nscenarios=a\n", format_utc(NOW + 60)),
            &format!(
                "expires={}\nscenarios=a\nnodes=b\nall=yes\n",
                format_utc(NOW + 60)
            ),
            "just words\n",
        ] {
            assert!(
                matches!(
                    judge(&facts(0, 0o600, bad), NOW, "a", "b"),
                    Err(Refusal::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn exactly_24_hours_is_allowed() {
        let f = facts(0, 0o600, &good(NOW + MAX_ARMED_SECS));
        assert!(judge(&f, NOW, "redis-stop", "frontend-a").is_ok());
    }

    #[test]
    fn utc_round_trips_and_rejects_nonsense() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            format_utc(NOW),
            format_utc(parse_utc(&format_utc(NOW)).unwrap())
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-12-01 00:00:00Z",
            "2026-12-01T00:00:00",
            "2026-12-01T25:00:00Z",
            "+026-12-01T00:00:00Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn load_reports_a_missing_file_and_reads_owner_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CHAOS_ENABLE");
        assert_eq!(load(&path).unwrap_err(), Refusal::Missing(path.clone()));
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        let f = load(&path).unwrap();
        assert_eq!(f.mode, 0o604);
        assert_eq!(f.text, b"x");
    }
}

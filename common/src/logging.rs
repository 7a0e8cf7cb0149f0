//! Journald-friendly logging to stderr.
//!
//! Under systemd (`JOURNAL_STREAM` set) each line starts with a `<N>` syslog
//! priority that journald turns into the entry's priority, and carries no
//! timestamp or tool name (journald adds both). On a terminal lines read
//! `okome-tool: warning: …`. The level comes from `OKOME_LOG` (`error`,
//! `warn`, `info`, `debug`, `trace`, or env_logger's `module=level` filters).

use std::io::Write;

/// Environment variable holding the log filter.
pub const LOG_ENV: &str = "OKOME_LOG";

/// Syslog priority for a log level: error 3, warning 4, info 6, debug 7.
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

fn level_word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// Install the logger for `tool`; `default_filter` applies when `OKOME_LOG`
/// is unset (timer-run tools pass `"warn"` so steady state is silent).
/// Calling it twice is harmless (the second call is ignored).
pub fn init(tool: &'static str, default_filter: &str) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = std::env::var(LOG_ENV).unwrap_or_else(|_| default_filter.to_string());
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(move |out, record| {
            if journal {
                writeln!(
                    out,
                    "<{}>{}",
                    syslog_priority(record.level()),
                    record.args()
                )
            } else {
                writeln!(
                    out,
                    "{tool}: {}: {}",
                    level_word(record.level()),
                    record.args()
                )
            }
        })
        .target(env_logger::Target::Stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(syslog_priority(log::Level::Error), 3);
        assert_eq!(syslog_priority(log::Level::Warn), 4);
        assert_eq!(syslog_priority(log::Level::Info), 6);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }
}

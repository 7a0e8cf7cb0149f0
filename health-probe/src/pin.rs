//! The operator's maintenance pin: a gate the probe never reopens.
//!
//! Before upgrading the orchestrator an operator runs
//! `sudo okome-health-probe --pin "upgrading to 2.3"`: the gate closes at once
//! and stays closed, whatever the health checks say, until
//! `sudo okome-health-probe --unpin`; then the usual hysteresis takes over
//! (the gate reopens after `--rise` good runs, never at once).
//!
//! The pin is a small file, by default `/var/lib/okome/maintenance.pin`:
//! persistent, so it survives a probe restart, a package upgrade and a
//! reboot in the middle of the maintenance (a forgotten pin shows as
//! `okome_gate_pinned 1` and an alert); written only by root through
//! `--pin`, read-only to the sandboxed probe (ProtectSystem=strict leaves
//! /var/lib readable). Its existence is the pin: an unreadable or garbled
//! pin file still pins, the safe reading of an operator's intent.

use std::io;
use std::path::Path;

/// Default pin file (under `OKOME_ROOT`).
pub const DEFAULT_PIN_FILE: &str = okome_common::paths::MAINTENANCE_PIN;

/// Longest reason kept, in bytes.
pub const MAX_REASON: usize = 200;

/// A maintenance pin as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Why, as the operator wrote it.
    pub reason: String,
    /// Who set it (`SUDO_USER`, else `USER`), if known.
    pub by: Option<String>,
    /// Unix time it was set, if known.
    pub at_s: Option<u64>,
}

impl std::fmt::Display for Pin {
    /// `"reason" (by alice at unix time 1700000000)`: the reason is quoted
    /// and escaped, so nothing in it can forge a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.reason)?;
        match (&self.by, self.at_s) {
            (Some(by), Some(at)) => write!(f, " (set by {by:?} at unix time {at})"),
            (Some(by), None) => write!(f, " (set by {by:?})"),
            (None, Some(at)) => write!(f, " (set at unix time {at})"),
            (None, None) => Ok(()),
        }
    }
}

/// Check an operator's reason: non-empty, one line, at most [`MAX_REASON`].
pub fn validate_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("--pin needs a reason (e.g. --pin \"upgrading the orchestrator\")".into());
    }
    if reason.len() > MAX_REASON {
        return Err(format!(
            "--pin reason is {} bytes, at most {MAX_REASON}",
            reason.len()
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err("--pin reason must be one line without control characters".into());
    }
    Ok(())
}

/// The pin file's text.
pub fn render(pin: &Pin) -> String {
    let mut text = String::from(
        "# okome-health-probe maintenance pin: the gate stays closed while this file exists.\n# Remove it with: sudo okome-health-probe --unpin\n",
    );
    text.push_str(&format!("reason={}\n", pin.reason));
    if let Some(by) = &pin.by {
        text.push_str(&format!("by={by}\n"));
    }
    if let Some(at) = pin.at_s {
        text.push_str(&format!("at={at}\n"));
    }
    text
}

/// Read a pin file's text back; whatever is missing or garbled stays unknown.
pub fn parse(bytes: &[u8]) -> Pin {
    let text = String::from_utf8_lossy(bytes);
    let mut pin = Pin {
        reason: String::new(),
        by: None,
        at_s: None,
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("reason", value)) => pin.reason = value.to_string(),
            Some(("by", value)) => pin.by = Some(value.to_string()),
            Some(("at", value)) => pin.at_s = value.parse().ok(),
            _ => {}
        }
    }
    if pin.reason.is_empty() {
        pin.reason = "(no reason in the pin file)".into();
    }
    pin
}

/// The pin at `path`, if any. Only a missing file means "not pinned"; any
/// other failure to read it is an error the caller treats as pinned.
pub fn read(path: &Path) -> io::Result<Option<Pin>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(parse(&bytes))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_reads_back_as_written_and_garbage_still_pins() {
        let pin = Pin {
            reason: "upgrading # to 2.3 = soon".into(),
            by: Some("alice".into()),
            at_s: Some(1_700_000_000),
        };
        assert_eq!(parse(render(&pin).as_bytes()), pin);
        let garbled = parse(b"\xff\xfe junk\n");
        assert_eq!(garbled.reason, "(no reason in the pin file)");
        assert_eq!(garbled.by, None);
    }

    #[test]
    fn reasons_are_one_short_line_and_log_escaped() {
        assert!(validate_reason("orchestrator 2.3").is_ok());
        for bad in ["", "  ", "a\nb", "a\u{1b}[31m", &"x".repeat(201)] {
            assert!(validate_reason(bad).is_err(), "{bad:?}");
        }
        let forged = Pin {
            reason: "x\nokome-health-probe: gate opened".into(),
            by: None,
            at_s: None,
        };
        assert!(!forged.to_string().contains('\n'));
    }
}

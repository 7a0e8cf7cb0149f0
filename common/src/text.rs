//! Text from outside (a log line, a name read from Redis) made safe to log.
//!
//! journald and syslog split records at newlines and terminals obey escape
//! sequences, so a forged value printed raw can fake a whole log line
//! ("…\nokome-health-probe: gate opened") or rewrite the screen. Every such
//! value goes through [`escape`] before it reaches a log line: printable
//! ASCII stays as it is, everything else becomes a visible escape, and the
//! length is capped so one value cannot flood the journal.

/// `bytes` as one printable ASCII line, fit to quote: `\\`, `\"`, `\n`,
/// `\r`, `\t`, and `\xNN` for every other byte outside 0x20..=0x7e (UTF-8
/// text included: safe first, pretty second). At most `max` input bytes are
/// shown; a longer input ends in `...(N bytes)`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let mut out = String::with_capacity(shown.len() + 8);
    for &b in shown {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > shown.len() {
        out.push_str(&format!("...({} bytes)", bytes.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_forged_survives_and_plain_text_is_untouched() {
        assert_eq!(escape(b"frontend-a.lan", 64), "frontend-a.lan");
        assert_eq!(escape(b"say \"hi\"", 64), "say \\\"hi\\\"");
        assert_eq!(
            escape(b"a\nokome: gate opened\r\x1b[2J\\", 64),
            "a\\nokome: gate opened\\r\\x1b[2J\\\\"
        );
        assert_eq!(escape("é".as_bytes(), 64), "\\xc3\\xa9");
        assert_eq!(escape(b"abcdef", 3), "abc...(6 bytes)");
        assert!(
            escape(&[0u8; 300], 300)
                .chars()
                .all(|c| c.is_ascii_graphic())
        );
    }
}

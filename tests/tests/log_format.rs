//! The `okome` log_format is one string in three places — the shipped
//! nginx file, docs/design.md and the parser's OKOME_LOG_FORMAT — and the
//! lab's nginx really writes lines that the parser reads.

use std::fs;
use std::time::Duration;

use okome_accesslog::{LogFormat, OKOME_LOG_FORMAT, Record};
use okome_lab::{Lab, Request, configs_dir, workspace_root};

/// The single-quoted string after `log_format okome` in `text`.
fn quoted_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"))
        + marker.len();
    let rest = &text[start..];
    let open = rest.find('\'').expect("opening quote");
    let close = rest[open + 1..].find('\'').expect("closing quote");
    rest[open + 1..open + 1 + close].to_owned()
}

#[test]
fn shipped_format_equals_design_md_and_the_parser() {
    let shipped =
        fs::read_to_string(configs_dir().join("nginx-frontend/okome-logformat.conf")).unwrap();
    let design = fs::read_to_string(workspace_root().join("docs/design.md")).unwrap();
    let shipped = quoted_after(&shipped, "\nlog_format okome");
    let design = quoted_after(&design, "log_format okome");
    assert_eq!(
        shipped, design,
        "okome-logformat.conf and docs/design.md disagree"
    );
    assert_eq!(
        shipped, OKOME_LOG_FORMAT,
        "okome-logformat.conf and okome_accesslog disagree"
    );
}

#[test]
fn lab_nginx_writes_lines_the_parser_reads() {
    let lab = Lab::start();
    lab.get("/version");
    lab.get("/version");
    lab.send(
        Request::get("/")
            .header("X-OKOME-Warm", "1")
            .header("User-Agent", "okome-prewarm/0.1.0"),
    );
    let lines = lab.wait_for_log_lines(3, Duration::from_secs(5));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let format = LogFormat::okome();
    let entries: Vec<_> = lines
        .iter()
        .map(|l| {
            format
                .parse(l.as_bytes())
                .unwrap_or_else(|| panic!("parser rejected {l:?}"))
        })
        .collect();
    assert_eq!(entries[0].cache_status(), Some(&b"MISS"[..]));
    assert_eq!(entries[1].cache_status(), Some(&b"HIT"[..]));
    assert_eq!(entries[2].target(), Some(&b"/"[..]));
    assert!(entries[2].warm(), "{}", lines[2]);
    assert!(!entries[0].warm(), "{}", lines[0]);
    assert_eq!(entries[0].canary(), Some(&b"control"[..]));
}

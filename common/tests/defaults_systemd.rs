//! The defaults-file loader against systemd's own parser.
//!
//! One table of environment-file cases (`data/environment-file-cases.json`,
//! plain data so the booted-systemd suite can feed the same files to a real
//! unit), each with the value systemd 252's `EnvironmentFile=` sets (or
//! null: it sets nothing). Every case is run
//! through `okome_common::defaults::parse`, and, where systemd's
//! `systemd-environment-d-generator` shares the path (the same
//! `parse_env_file_internal()`; it differs only in expanding `$VAR` and in
//! refusing `KEY=` with nothing after it), through that real program too, so
//! the table cannot drift from what systemd does. The booted-container suite
//! checks the unit side; this checks the parser on every `cargo test`.

use std::path::Path;
use std::process::Command;

use okome_common::defaults::parse;

const GENERATOR: &str =
    "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator";

/// One case of `data/environment-file-cases.json`.
struct Case {
    text: String,
    key: String,
    /// What systemd sets; `None`: the key is not set.
    value: Option<String>,
    /// `systemd-environment-d-generator` gives the same (no `$`, no empty value).
    generator: bool,
}

/// The table, shared with the booted-systemd suite.
fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/environment-file-cases.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases: Vec<Case> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            text: case["text"].as_str().unwrap().to_string(),
            key: case["key"].as_str().unwrap().to_string(),
            value: case["value"].as_str().map(str::to_string),
            generator: case["generator"].as_bool().unwrap(),
        })
        .collect();
    assert!(cases.len() >= 40, "{path}: {} cases", cases.len());
    cases
}

/// What our loader sets; a file it refuses (as systemd does, e.g. one
/// holding a NUL) sets no key.
fn ours(text: &str, key: &str) -> Option<String> {
    parse(text.as_bytes())
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Undo the generator's output quoting: `KEY=value` or `KEY="c-escaped"`.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(d @ '0'..='7') => {
                let octal: String = std::iter::once(d).chain(chars.by_ref().take(2)).collect();
                out.push(char::from(u8::from_str_radix(&octal, 8).unwrap()));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// What systemd's generator sets from a file holding `text`.
fn systemd(text: &str, key: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("environment.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("10-case.conf"), text).unwrap();
    let output = Command::new(GENERATOR)
        .env_clear()
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_CONFIG_DIRS", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{text:?}: {output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")).map(unquote))
}

#[test]
fn every_case_parses_as_the_table_says() {
    let wrong: Vec<String> = cases()
        .iter()
        .filter(|c| ours(&c.text, &c.key) != c.value)
        .map(|c| {
            format!(
                "{:?}: {} = {:?}, systemd sets {:?}",
                c.text,
                c.key,
                ours(&c.text, &c.key),
                c.value
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_table_is_what_systemds_own_parser_does() {
    assert!(
        Path::new(GENERATOR).exists(),
        "{GENERATOR} is missing: install Debian's systemd package (cargo xtask test does)"
    );
    let wrong: Vec<String> = cases()
        .iter()
        .filter(|c| c.generator)
        .filter(|c| systemd(&c.text, &c.key) != c.value)
        .map(|c| {
            format!(
                "{:?}: systemd sets {} = {:?}, the table says {:?}",
                c.text,
                c.key,
                systemd(&c.text, &c.key),
                c.value
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

//! The defaults-file loader against systemd's own parser.
//!
//! One table of environment-file cases, each with the value systemd 252's
//! `EnvironmentFile=` sets (or `None`: it sets nothing). Every case is run
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

/// `(file text, key, value systemd sets, also ask the generator)`.
const CASES: &[(&str, &str, Option<&str>, bool)] = &[
    ("T_PLAIN=1\n", "T_PLAIN", Some("1"), true),
    ("T_NOEOL=1", "T_NOEOL", Some("1"), true),
    ("  T_LEAD=1\n", "T_LEAD", Some("1"), true),
    ("T_SP = spaced  \n", "T_SP", Some("spaced"), true),
    ("T_TAB=\t lead\t \n", "T_TAB", Some("lead"), true),
    (
        "T_HASH=x # not a comment\n",
        "T_HASH",
        Some("x # not a comment"),
        true,
    ),
    ("T_HASH2=x#y\n", "T_HASH2", Some("x#y"), true),
    ("# T_C1=1\n", "T_C1", None, true),
    ("; T_C2=1\n", "T_C2", None, true),
    ("   # T_C3=1\n", "T_C3", None, true),
    ("export T_EXP=1\n", "T_EXP", None, true),
    ("export T_EXP2=1\n", "export T_EXP2", None, true),
    ("T_NOEQ\n", "T_NOEQ", None, true),
    ("9T=1\n", "9T", None, true),
    ("T-DASH=1\n", "T-DASH", None, true),
    ("T_TWICE=1\nT_TWICE=2\n", "T_TWICE", Some("2"), true),
    ("T_DQ=\"two words\"\n", "T_DQ", Some("two words"), true),
    ("T_SQ='two words'\n", "T_SQ", Some("two words"), true),
    ("T_DQT=\"x\"   \n", "T_DQT", Some("x"), true),
    ("T_SQT='x' \n", "T_SQT", Some("x"), true),
    ("T_CAT=\"x\" y\n", "T_CAT", Some("xy"), true),
    ("T_CAT2=a\"b c\"d\n", "T_CAT2", Some("a\"b c\"d"), true),
    ("T_QC=\"x\" # c\n", "T_QC", Some("x# c"), true),
    (
        "T_DQE=\"q \\\" \\\\ \\` end\"\n",
        "T_DQE",
        Some("q \" \\ ` end"),
        true,
    ),
    ("T_DQN=\"a\\nb\"\n", "T_DQN", Some("a\\nb"), true),
    ("T_DQX=\"a\\xb\"\n", "T_DQX", Some("a\\xb"), true),
    ("T_SQE='a\\nb \\' x\n", "T_SQE", Some("a\\nb \\x"), true),
    ("T_UQE=a\\ b\\#c\n", "T_UQE", Some("a b#c"), true),
    ("T_UQLEAD=\\ lead\n", "T_UQLEAD", Some(" lead"), true),
    ("T_CONT=a\\\nb\n", "T_CONT", Some("ab"), true),
    ("T_CONT2=a \\\n  b\n", "T_CONT2", Some("a   b"), true),
    ("T_DQCONT=\"a\\\nb\"\n", "T_DQCONT", Some("ab"), true),
    (
        "T_DQML=\"multi\nline\"\n",
        "T_DQML",
        Some("multi\nline"),
        true,
    ),
    (
        "T_SQML='multi\nline'\n",
        "T_SQML",
        Some("multi\nline"),
        true,
    ),
    ("# comment \\\nT_SWALLOWED=1\n", "T_SWALLOWED", None, true),
    ("T_CRLF=crlf\r\n", "T_CRLF", Some("crlf"), true),
    ("T_CR=\"car\rret\"\n", "T_CR", Some("car\rret"), true),
    (
        "T_OPEN=\"unterminated\n",
        "T_OPEN",
        Some("unterminated\n"),
        true,
    ),
    ("T_UTF8=café\n", "T_UTF8", Some("café"), true),
    ("T_NUL=a\0b\nT_AFTER=1\n", "T_AFTER", None, true),
    // `$` is literal for EnvironmentFile=; the generator would expand it.
    (
        "T_DOLLAR=\"cost \\$5\" $HOME\n",
        "T_DOLLAR",
        Some("cost $5$HOME"),
        false,
    ),
    // `KEY=` sets the empty string; the generator refuses it.
    ("T_EMPTY=\n", "T_EMPTY", Some(""), false),
];

fn ours(text: &str, key: &str) -> Option<String> {
    parse(text.as_bytes())
        .unwrap()
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
    let wrong: Vec<String> = CASES
        .iter()
        .filter(|(text, key, want, _)| ours(text, key).as_deref() != *want)
        .map(|(text, key, want, _)| {
            format!(
                "{text:?}: {key} = {:?}, systemd sets {want:?}",
                ours(text, key)
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
    let wrong: Vec<String> = CASES
        .iter()
        .filter(|(.., ask)| *ask)
        .filter(|(text, key, want, _)| systemd(text, key).as_deref() != *want)
        .map(|(text, key, want, _)| {
            format!(
                "{text:?}: systemd sets {key} = {:?}, the table says {want:?}",
                systemd(text, key)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

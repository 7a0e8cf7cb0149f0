//! The shipped alert rules (configs/prometheus/okome-alerts.yml) against
//! Prometheus' own tools and against what the probe really writes.
//!
//! `promtool check rules` parses them, `promtool test rules` runs their unit
//! tests (okome-alerts.test.yml: a probe that stops, one whose metrics vanish
//! after a reboot, none at all, a forgotten pin), and every `okome_*` name
//! the rules query must be one the real binary writes to its textfile, so a
//! renamed metric cannot silently disarm an alert.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{FakeHttp, Node, health_url, up};

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/prometheus"
    ))
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool (Debian package prometheus; cargo xtask test installs it)")
}

#[test]
fn the_alert_rules_parse_and_pass_their_unit_tests() {
    for args in [
        &["check", "rules", "okome-alerts.yml"][..],
        &["test", "rules", "okome-alerts.test.yml"][..],
    ] {
        let output = promtool(args);
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_rules_query_only_metrics_the_probe_writes() {
    let server = FakeHttp::always(up("ok"));
    let node = Node::new();
    node.probe(&health_url(&server)).assert().code(0);
    let textfile = std::fs::read_to_string(node.textfile()).unwrap();
    let rules = std::fs::read_to_string(rules_dir().join("okome-alerts.yml")).unwrap();
    let queried: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("okome_"))
        .collect();
    assert!(queried.len() >= 4, "{queried:?}");
    for name in queried {
        assert!(
            textfile.contains(&format!("\n{name} ")),
            "{name} is queried by okome-alerts.yml but not written:\n{textfile}"
        );
    }
}

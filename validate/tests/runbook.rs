//! docs/runbook.md and the check catalogue hold each other: every check's
//! incident is a heading, every incident opens with the okome-validate
//! lines that detect it (ids that exist, pointing at that incident), every
//! `okome-validate` command in it parses, and no command in it uses `KEYS`,
//! a flush or `iptables -F`.

use std::collections::BTreeMap;

use okome_validate::cli::{command, select};
use okome_validate::model::CATALOGUE;

fn runbook() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/runbook.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `INCIDENT N` → the section's text, for each `## INCIDENT N — …` heading.
fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.starts_with("## ") {
            if let Some((name, body)) = current.take() {
                out.insert(name, body);
            }
            if let Some(rest) = line.strip_prefix("## INCIDENT ") {
                let number = rest.split_whitespace().next().unwrap();
                current = Some((format!("INCIDENT {number}"), String::new()));
            }
            continue;
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((name, body)) = current {
        out.insert(name, body);
    }
    out
}

/// The check ids of the failing report lines (CRIT, WARN, ERR; not the
/// NOT_RUN context lines) in the section's opening ```text block.
fn detected_by(section: &str) -> Vec<String> {
    let body = section.trim_start();
    let block = body.strip_prefix("```text\n").unwrap_or_else(|| {
        panic!("does not open with a ```text block of okome-validate lines:\n{section}")
    });
    let block = &block[..block.find("```").unwrap()];
    block
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let status = words.next()?;
            ["CRIT", "WARN", "ERR"]
                .contains(&status)
                .then(|| words.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn every_check_points_at_an_incident_that_opens_with_its_line() {
    let text = runbook();
    let sections = sections(&text);
    for check in CATALOGUE {
        let section = sections.get(check.incident).unwrap_or_else(|| {
            panic!(
                "{}: no '## {} —' in docs/runbook.md",
                check.id, check.incident
            )
        });
        assert!(
            detected_by(section).iter().any(|id| id == check.id),
            "{}: not among the okome-validate lines opening {}",
            check.id,
            check.incident
        );
    }
    for (incident, section) in &sections {
        let ids = detected_by(section);
        assert!(!ids.is_empty(), "{incident} names no check");
        for id in ids {
            let check = okome_validate::model::def(&id)
                .unwrap_or_else(|| panic!("{incident}: unknown check {id}"));
            // 5b is a part of 5; 7 shows whatever chaos broke.
            let allowed = [incident.as_str(), incident.trim_end_matches('b')];
            assert!(
                incident == "INCIDENT 7" || allowed.contains(&check.incident),
                "{incident} opens with {id}, which points at {}",
                check.incident
            );
        }
    }
}

#[test]
fn every_okome_validate_command_in_the_runbook_parses() {
    let text = runbook();
    let mut seen = 0;
    // Command lines in code blocks, and `okome-validate …` spans in prose.
    let mut commands: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("okome-validate ") || trimmed == "okome-validate" {
            commands.push(trimmed.split('#').next().unwrap().to_string());
        }
        for span in line.split('`').skip(1).step_by(2) {
            if span.starts_with("okome-validate ") {
                commands.push(span.to_string());
            }
        }
    }
    for line in &commands {
        let words: Vec<&str> = line.split_whitespace().collect();
        let matches = command()
            .try_get_matches_from(&words)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let only: Vec<String> = matches
            .get_many::<String>("only")
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        select(&only).unwrap_or_else(|e| panic!("{line}: {e}"));
        seen += 1;
    }
    assert!(seen >= 15, "only {seen} okome-validate commands found");
}

#[test]
fn no_command_uses_keys_a_flush_or_iptables_f() {
    let text = runbook();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        for bad in [
            " keys ",
            "flushdb",
            "flushall",
            "iptables -f",
            "iptables --flush",
            "nft flush ruleset",
        ] {
            assert!(!lower.contains(bad), "runbook command uses {bad:?}: {line}");
        }
    }
}

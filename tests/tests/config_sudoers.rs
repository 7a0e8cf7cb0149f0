//! The shipped sudoers rule (configs/sudoers/okome-validate → /etc/sudoers.d/)
//! accepted by `visudo -c`, and the exact argument shape it allows: the one
//! `okome-validate --cluster` sends a peer (validate/src/cluster.rs), nothing
//! that could make root write a file. A sudoers file sudo cannot parse would
//! break sudo for every admin of the node, so a broken copy must be refused.

use std::process::Command;

use okome_lab::check::{TempDir, describe, run, shipped, write};

fn visudo(path: &std::path::Path) -> std::process::Output {
    let mut command = Command::new("visudo");
    command.arg("-cf").arg(path);
    run(&mut command)
}

#[test]
fn visudo_accepts_the_shipped_rule_and_refuses_a_broken_copy() {
    let path = shipped("sudoers/okome-validate");
    let output = visudo(&path);
    assert!(
        output.status.success(),
        "{}",
        describe(&Command::new("visudo"), &output)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = TempDir::new("sudoers");
    let broken = dir.join("okome-validate");
    write(&broken, &text.replace("NOPASSWD:", "NOPASSWD"));
    assert!(
        !visudo(&broken).status.success(),
        "a broken rule passed visudo"
    );
}

/// The rule's single line: group sudo, root, no password, the one binary,
/// and an anchored regular expression for the arguments (a glob `*` would
/// match `--output /etc/…` too).
#[test]
fn the_rule_allows_only_the_peer_command() {
    let text = std::fs::read_to_string(shipped("sudoers/okome-validate")).unwrap();
    let rules: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = rules[0];
    let (head, args) = rule
        .split_once("/usr/bin/okome-validate ")
        .expect("the rule names /usr/bin/okome-validate");
    assert_eq!(head, "%sudo ALL=(root) NOPASSWD: ");
    assert!(
        args.starts_with("^--local --json --self ") && args.ends_with('$'),
        "{args}"
    );
    for forbidden in ["*", "--output", "--config", "--prometheus"] {
        assert!(!args.contains(forbidden), "{forbidden} in {args}");
    }
}

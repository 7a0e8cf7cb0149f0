//! The shipped sudoers rules (configs/sudoers/* → /etc/sudoers.d/) accepted
//! by `visudo -c`, and the exact argument shapes they allow: the one
//! `okome-validate --cluster` sends a peer (validate/src/cluster.rs) and the
//! one okome-chaos's peer check sends (chaos/src/peers.rs), nothing that could
//! make root write a file or act. A sudoers file sudo cannot parse would
//! break sudo for every admin of the node, so a broken copy must be refused.

use std::process::Command;

use okome_lab::check::{TempDir, describe, run, shipped, write};

fn visudo(path: &std::path::Path) -> std::process::Output {
    let mut command = Command::new("visudo");
    command.arg("-cf").arg(path);
    run(&mut command)
}

/// Every file the packages ship under /etc/sudoers.d.
const RULES: [&str; 2] = ["okome-validate", "okome-chaos"];

#[test]
fn visudo_accepts_the_shipped_rules_and_refuses_a_broken_copy() {
    for name in RULES {
        let path = shipped(&format!("sudoers/{name}"));
        let output = visudo(&path);
        assert!(
            output.status.success(),
            "{name}: {}",
            describe(&Command::new("visudo"), &output)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = TempDir::new("sudoers");
        let broken = dir.join(name);
        write(&broken, &text.replace("NOPASSWD:", "NOPASSWD"));
        assert!(
            !visudo(&broken).status.success(),
            "a broken {name} passed visudo"
        );
    }
    let listed: Vec<String> = std::fs::read_dir(shipped("sudoers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &listed {
        assert!(RULES.contains(&name.as_str()), "{name} is not checked here");
    }
}

/// The single rule of `name`.
fn rule_of(name: &str) -> String {
    let text = std::fs::read_to_string(shipped(&format!("sudoers/{name}"))).unwrap();
    let rules: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(rules.len(), 1, "{name}: {rules:?}");
    rules[0].to_string()
}

/// okome-chaos's rule: exactly `okome-chaos status`, the read-only command a
/// peer's runner sends (a sudoers command with arguments matches only those
/// arguments), and it is the command chaos/src/peers.rs sends.
#[test]
fn the_chaos_rule_allows_only_status() {
    assert_eq!(
        rule_of("okome-chaos"),
        "%sudo ALL=(root) NOPASSWD: /usr/bin/okome-chaos status"
    );
    let peers =
        std::fs::read_to_string(okome_lab::workspace_root().join("chaos/src/peers.rs")).unwrap();
    assert!(peers.contains("\"sudo -n okome-chaos status\""));
}

/// The rule's single line: group sudo, root, no password, the one binary,
/// and an anchored regular expression for the arguments (a glob `*` would
/// match `--output /etc/…` too).
#[test]
fn the_rule_allows_only_the_peer_command() {
    let rule = rule_of("okome-validate");
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

//! The node's own files: sysctl (`sysctl --dry-run`, every key exists),
//! journald (every key is one the journald binary knows, logs in capped RAM)
//! and fstab (`findmnt --verify`, what stays off tmpfs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use okome_lab::check::{
    TempDir, describe, read, render, run, shipped, text_of, unit_sections, unit_value, write,
};

/// Keys of a sysctl.d file missing under /proc/sys (empty = fine).
fn sysctl_missing_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|key| {
            !Path::new("/proc/sys")
                .join(key.trim_start_matches('-').replace('.', "/"))
                .exists()
        })
        .collect()
}

fn sysctl_dry_run(path: &Path) -> (Command, Output) {
    let mut command = Command::new("sysctl");
    // --dry-run: parse and check every key, write nothing.
    command.arg("--dry-run").arg("-p").arg(path);
    let output = run(&mut command);
    (command, output)
}

#[test]
fn sysctl_keys_exist_and_sysctl_parses_the_file() {
    let path = shipped("sysctl-okome.conf");
    let text = read(&path);
    assert_eq!(sysctl_missing_keys(&text), Vec::<String>::new());
    for key in [
        "vm.swappiness",
        "vm.dirty_writeback_centisecs",
        "vm.dirty_expire_centisecs",
    ] {
        assert!(text.contains(&format!("\n{key} = ")), "{key} is set");
    }
    let (command, output) = sysctl_dry_run(&path);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        describe(&command, &output)
    );

    // Both checks fail on an unknown key.
    let dir = TempDir::new("sysctl");
    let broken = dir.join("broken.conf");
    write(&broken, &format!("{text}vm.okome_no_such_knob = 1\n"));
    assert_eq!(
        sysctl_missing_keys(&read(&broken)),
        vec!["vm.okome_no_such_knob".to_string()]
    );
    let (command, output) = sysctl_dry_run(&broken);
    assert!(!output.status.success(), "{}", describe(&command, &output));
}

/// Problems with a journald.conf (empty = fine). Every key must be one this
/// systemd-journald knows: its gperf table holds `Journal.<Key>` strings.
fn journald_problems(text: &str, journald_binary: &[u8]) -> Vec<String> {
    let sections = unit_sections(text);
    let mut problems = Vec::new();
    let Some(journal) = sections.get("Journal") else {
        return vec!["no [Journal] section".into()];
    };
    for key in journal.keys() {
        let needle = format!("Journal.{key}\0");
        if !journald_binary
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            problems.push(format!("systemd-journald does not know {key}="));
        }
    }
    let get = |key: &str| unit_value(&sections, "Journal", key);
    if get("Storage").as_deref() != Some("volatile") {
        problems.push("Storage must be volatile (logs in RAM)".into());
    }
    if get("ForwardToSyslog").as_deref() != Some("no") {
        problems.push("ForwardToSyslog=no, or rsyslog writes every line to the card".into());
    }
    match get("RuntimeMaxUse").map(|v| size_bytes(&v)) {
        Some(Some(bytes)) if bytes > 0 && bytes <= 64 * 1024 * 1024 => {}
        other => problems.push(format!(
            "RuntimeMaxUse {other:?} must cap the RAM journal at ≤ 64M"
        )),
    }
    problems
}

/// systemd sizes: `48M`, `1G`, `512K`, bytes (base 1024).
fn size_bytes(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    Some(number * factor)
}

#[test]
fn journald_conf_keeps_logs_in_capped_ram() {
    let binary = [
        "/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ]
    .iter()
    .find_map(|p| fs::read(p).ok())
    .expect("systemd-journald binary (package systemd)");
    let text = read(&shipped("journald.conf"));
    assert_eq!(journald_problems(&text, &binary), Vec::<String>::new());

    // The checks can fail: a typo'd key, persistent storage, no cap.
    let broken = render(
        &text,
        &[
            ("RuntimeMaxUse=", "RuntimeMaxUsee="),
            ("Storage=volatile", "Storage=persistent"),
        ],
    );
    let problems = journald_problems(&broken, &binary);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// `findmnt --verify` on an fstab: problems other than the placeholder
/// PARTUUIDs (and /boot/firmware, absent on a non-Pi), which only exist on
/// the node itself.
fn fstab_verify_problems(path: &Path) -> Vec<String> {
    let mut command = Command::new("findmnt");
    command
        .args(["--verify", "--verbose", "--tab-file"])
        .arg(path);
    let output = run(&mut command);
    let text = text_of(&output);
    // findmnt prints each target unindented, then its findings indented.
    let mut target = String::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            target = line.trim().to_string();
            continue;
        }
        let finding = line.trim();
        if !(finding.starts_with("[E]") || finding.starts_with("[W]")) {
            continue;
        }
        let placeholder_source =
            finding.contains("unreachable on boot required source: PARTUUID=01234567-0");
        let no_firmware_dir_here = target == "/boot/firmware"
            && finding.contains("unreachable on boot required target: No such file");
        if !(placeholder_source || no_firmware_dir_here) {
            problems.push(format!("{target}: {finding}"));
        }
    }
    if !text.contains("0 parse errors") {
        problems.push(format!("parse errors:\n{}", describe(&command, &output)));
    }
    problems
}

/// The mount table as libmount parses it: target → (fstype, options).
fn fstab_entries(path: &Path) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut command = Command::new("findmnt");
    command.args(["--tab-file"]).arg(path).args([
        "--json",
        "--list",
        "--output",
        "TARGET,FSTYPE,OPTIONS",
    ]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("findmnt --json output");
    json["filesystems"]
        .as_array()
        .expect("filesystems")
        .iter()
        .map(|entry| {
            let s = |k: &str| entry[k].as_str().unwrap_or("").to_string();
            let options = s("options").split(',').map(str::to_string).collect();
            (s("target"), (s("fstype"), options))
        })
        .collect()
}

fn fstab_problems(path: &Path) -> Vec<String> {
    let entries = fstab_entries(path);
    let mut problems = Vec::new();
    match entries.get("/") {
        Some((_, options)) if options.contains("noatime") && options.contains("commit=60") => {}
        other => problems.push(format!("/ needs noatime,commit=60: {other:?}")),
    }
    for target in ["/tmp", "/var/tmp"] {
        match entries.get(target) {
            Some((fstype, options))
                if fstype == "tmpfs"
                    && ["nosuid", "nodev", "noatime"]
                        .iter()
                        .all(|o| options.contains(*o))
                    && options.iter().any(|o| o.starts_with("size=")) => {}
            other => problems.push(format!(
                "{target} needs a capped nosuid,nodev tmpfs: {other:?}"
            )),
        }
    }
    for (target, (fstype, _)) in &entries {
        let must_persist = ["/var/cache", "/var/lib", "/var/log", "/home", "/etc"];
        if fstype == "tmpfs" && must_persist.iter().any(|p| target.starts_with(p)) {
            problems.push(format!("{target} must not be tmpfs"));
        }
    }
    problems
}

#[test]
fn fstab_parses_and_says_what_stays_off_tmpfs() {
    let path = shipped("fstab-hardened.conf");
    assert_eq!(fstab_verify_problems(&path), Vec::<String>::new());
    assert_eq!(fstab_problems(&path), Vec::<String>::new());
    let text = read(&path);
    assert!(
        text.contains("/var/cache/nginx") && text.contains("NOT in tmpfs"),
        "the file explains what must not go to tmpfs"
    );

    // The checks can fail: a malformed line; commit=60 lost; the 2 GB nginx
    // cache put in RAM.
    let dir = TempDir::new("fstab");
    let malformed = dir.join("malformed");
    write(&malformed, &format!("{text}tmpfs /mnt/x\n"));
    assert!(!fstab_verify_problems(&malformed).is_empty());
    let typo = dir.join("typo");
    write(&typo, &render(&text, &[("  /var/tmp  ", "  /var/tmpp ")]));
    let problems = fstab_verify_problems(&typo);
    assert!(
        problems.iter().any(|p| p.starts_with("/var/tmpp")),
        "{problems:?}"
    );
    let weak = dir.join("weak");
    write(
        &weak,
        &format!(
            "{}tmpfs /var/cache/nginx tmpfs defaults,size=2G 0 0\n",
            render(&text, &[(",commit=60", "")])
        ),
    );
    let problems = fstab_problems(&weak);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

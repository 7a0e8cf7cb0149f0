//! The units `create` installs into every image, checked by systemd's own
//! `systemd-analyze verify` (silent means valid: it exits 0 on unknown keys
//! and prints a warning), and the first-boot script by `sh -n`.

use std::path::Path;
use std::process::Command;

use okome_golden_image::prepare::{
    FIRSTBOOT_SCRIPT, FIRSTBOOT_SCRIPT_TEXT, FIRSTBOOT_UNIT_TEXT, KEYGEN_UNIT_TEXT,
};

/// Write `text` as `dir/name` with ExecStart= pointed at a file that exists
/// here (systemd-analyze fails on a missing ExecStart binary).
fn render(dir: &Path, name: &str, text: &str, exec: &str, stand_in: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let rendered = text.replace(
        &format!("ExecStart={exec}"),
        &format!("ExecStart={stand_in}"),
    );
    assert_ne!(rendered, text, "{name}: ExecStart={exec} not found");
    std::fs::write(&path, rendered).unwrap();
    path
}

fn verify(units: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

#[test]
fn the_installed_units_pass_systemd_analyze_verify_and_a_typo_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("okome-firstboot");
    std::fs::write(&script, FIRSTBOOT_SCRIPT_TEXT).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let stand_in = script.display().to_string();
    let units = [
        render(
            dir.path(),
            "okome-firstboot.service",
            FIRSTBOOT_UNIT_TEXT,
            FIRSTBOOT_SCRIPT,
            &stand_in,
        ),
        render(
            dir.path(),
            "okome-ssh-keygen.service",
            KEYGEN_UNIT_TEXT,
            "/usr/bin/ssh-keygen -A",
            "/usr/bin/true",
        ),
    ];
    let (clean, report) = verify(&units);
    assert!(clean, "systemd-analyze verify:\n{report}");

    let broken = render(
        dir.path(),
        "okome-firstboot-typo.service",
        &FIRSTBOOT_UNIT_TEXT.replace("ConditionFirstBoot=", "ConditionFirstBot="),
        FIRSTBOOT_SCRIPT,
        &stand_in,
    );
    let (clean, report) = verify(&[broken]);
    assert!(!clean && report.contains("ConditionFirstBot"), "{report}");
}

#[test]
fn the_first_boot_script_parses_and_reads_only_what_burn_writes() {
    let out = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(FIRSTBOOT_SCRIPT_TEXT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = okome_golden_image::fat::node_conf("okome-b", "backup");
    for key in ["hostname=", "role="] {
        assert!(
            conf.contains(key) && FIRSTBOOT_SCRIPT_TEXT.contains(&format!("s/^{key}")),
            "{key}"
        );
    }
    assert!(FIRSTBOOT_SCRIPT_TEXT.contains(okome_golden_image::fat::NODE_CONF));
}

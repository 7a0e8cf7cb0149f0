//! The shipped sshd drop-in (configs/ssh/sshd_config.d/) accepted by
//! `sshd -t` on top of Debian's stock file, winning over it (`sshd -T`), and
//! refused when broken or weakened.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use okome_lab::check::{TempDir, describe, read, render, run, shipped, text_of, write};

/// A full sshd_config like Debian 12's stock file: the drop-in is included at
/// the top, and stock lines below it try to turn passwords, root login and X11
/// back on — the drop-in must win (sshd takes the first value).
fn sshd_full_config(dir: &TempDir, drop_in: &Path) -> PathBuf {
    fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (privilege separation dir)");
    let mut host_keys = String::new();
    for (kind, bits) in [("ed25519", None), ("rsa", Some("3072"))] {
        let key = dir.join(format!("ssh_host_{kind}_key"));
        if !key.exists() {
            let mut command = Command::new("ssh-keygen");
            command.args(["-q", "-t", kind, "-N", "", "-f"]).arg(&key);
            if let Some(bits) = bits {
                command.args(["-b", bits]);
            }
            let output = run(&mut command);
            assert!(output.status.success(), "{}", describe(&command, &output));
        }
        host_keys.push_str(&format!("HostKey {}\n", key.display()));
    }
    let config = dir.join(format!(
        "sshd_config-{}",
        drop_in.file_name().unwrap().to_string_lossy()
    ));
    write(
        &config,
        &format!(
            "Include {}\n\
             KbdInteractiveAuthentication yes\n\
             PasswordAuthentication yes\n\
             PermitRootLogin yes\n\
             UsePAM yes\n\
             X11Forwarding yes\n\
             PrintMotd no\n\
             AcceptEnv LANG LC_*\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n\
             {host_keys}PidFile {}/sshd.pid\n",
            drop_in.display(),
            dir.path().display()
        ),
    );
    config
}

/// `sshd -T`: the effective settings, keyword → value.
fn sshd_effective(config: &Path) -> BTreeMap<String, String> {
    let mut command = Command::new("sshd");
    command.arg("-T").arg("-f").arg(config);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything the drop-in promises, as problems found (empty = fine).
fn sshd_problems(effective: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let get = |key: &str| effective.get(key).map(String::as_str).unwrap_or("");
    for (key, want) in [
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("permitrootlogin", "no"),
        ("pubkeyauthentication", "yes"),
        ("permitemptypasswords", "no"),
        ("authenticationmethods", "publickey"),
        ("x11forwarding", "no"),
    ] {
        if get(key) != want {
            problems.push(format!("{key} is {:?}, want {want:?}", get(key)));
        }
    }
    let weak = |key: &str, bad: &[&str]| -> Vec<String> {
        get(key)
            .split(',')
            .filter(|alg| alg.is_empty() || bad.iter().any(|b| alg.contains(b)))
            .map(|alg| format!("{key} allows {alg:?}"))
            .collect()
    };
    problems.extend(weak("ciphers", &["cbc", "3des", "arcfour"]));
    problems.extend(weak("macs", &["sha1", "md5", "umac-64"]));
    problems.extend(
        get("macs")
            .split(',')
            .filter(|m| !m.ends_with("-etm@openssh.com"))
            .map(|m| format!("macs allows non-EtM {m:?}")),
    );
    problems.extend(weak("kexalgorithms", &["sha1", "group1-", "nistp"]));
    for key in ["hostkeyalgorithms", "pubkeyacceptedalgorithms"] {
        problems.extend(weak(key, &["ecdsa", "dss"]));
        problems.extend(
            get(key)
                .split(',')
                .filter(|alg| *alg == "ssh-rsa" || alg.starts_with("ssh-rsa-cert"))
                .map(|alg| format!("{key} allows SHA-1 {alg:?}")),
        );
    }
    problems
}

#[test]
fn sshd_accepts_the_drop_in_and_it_wins_over_the_stock_file() {
    let dir = TempDir::new("sshd");
    let drop_in = shipped("ssh/sshd_config.d/okome.conf");
    let config = sshd_full_config(&dir, &drop_in);
    let mut command = Command::new("sshd");
    command.arg("-t").arg("-f").arg(&config);
    let output = run(&mut command);
    assert!(
        output.status.success() && text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
    let problems = sshd_problems(&sshd_effective(&config));
    assert!(problems.is_empty(), "sshd -T: {problems:#?}");
}

#[test]
fn sshd_checks_fail_on_a_broken_or_weak_drop_in() {
    let dir = TempDir::new("sshd-broken");
    let text = read(&shipped("ssh/sshd_config.d/okome.conf"));

    // A bad value: sshd -t refuses it.
    let bad = dir.join("bad.conf");
    write(
        &bad,
        &render(
            &text,
            &[("PasswordAuthentication no", "PasswordAuthentication maybe")],
        ),
    );
    let mut command = Command::new("sshd");
    command
        .arg("-t")
        .arg("-f")
        .arg(sshd_full_config(&dir, &bad));
    let output = run(&mut command);
    assert!(!output.status.success(), "{}", describe(&command, &output));

    // A valid but weak drop-in: sshd accepts it, our checks do not.
    let weak = dir.join("weak.conf");
    write(
        &weak,
        &render(
            &text,
            &[
                ("PasswordAuthentication no", "PasswordAuthentication yes"),
                (
                    "Ciphers chacha20-poly1305@openssh.com,",
                    "Ciphers aes128-cbc,chacha20-poly1305@openssh.com,",
                ),
                (
                    "MACs hmac-sha2-512-etm@openssh.com,",
                    "MACs hmac-sha1,hmac-sha2-512-etm@openssh.com,",
                ),
            ],
        ),
    );
    let problems = sshd_problems(&sshd_effective(&sshd_full_config(&dir, &weak)));
    let all = problems.join("\n");
    assert!(all.contains("passwordauthentication"), "{all}");
    assert!(all.contains("aes128-cbc"), "{all}");
    assert!(all.contains("hmac-sha1"), "{all}");
}

//! The shipped fail2ban jail (configs/fail2ban/) accepted by
//! `fail2ban-client -t` on the journal with its state in RAM, and a broken
//! copy refused.

use std::fs;
use std::process::{Command, Output};

use okome_lab::check::{TempDir, describe, read, render, run, shipped, text_of, write};

/// A copy of the system's /etc/fail2ban (filters, actions) with our
/// jail.local and fail2ban.local (possibly altered) where the okome-frontend
/// package installs them: jail.d/okome.local and fail2ban.d/okome.local.
fn fail2ban_dir(jail_local: &str, fail2ban_local: &str) -> TempDir {
    let dir = TempDir::new("fail2ban");
    let mut command = Command::new("cp");
    command.args(["-a", "/etc/fail2ban/."]).arg(dir.path());
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    for sub in ["jail.d", "fail2ban.d"] {
        fs::create_dir_all(dir.join(sub)).expect("mkdir .d");
    }
    write(&dir.join("jail.d/okome.local"), jail_local);
    write(&dir.join("fail2ban.d/okome.local"), fail2ban_local);
    dir
}

fn fail2ban_client(dir: &TempDir, arg: &str) -> (Command, Output) {
    let mut command = Command::new("fail2ban-client");
    command.arg("-c").arg(dir.path()).arg(arg);
    let output = run(&mut command);
    (command, output)
}

#[test]
fn fail2ban_accepts_the_jail_on_the_journal_with_its_state_in_ram() {
    let jail = read(&shipped("fail2ban/jail.local"));
    let daemon = read(&shipped("fail2ban/fail2ban.local"));
    let dir = fail2ban_dir(&jail, &daemon);

    let (command, output) = fail2ban_client(&dir, "-t");
    let text = text_of(&output);
    assert!(
        output.status.success() && !text.contains("WARNING") && !text.contains("ERROR"),
        "{}",
        describe(&command, &output)
    );

    // What fail2ban really makes of the files.
    let (command, output) = fail2ban_client(&dir, "-d");
    assert!(output.status.success(), "{}", describe(&command, &output));
    let dump = text_of(&output);
    for want in [
        "['add', 'sshd', 'systemd']",
        "['set', 'logtarget', 'SYSTEMD-JOURNAL']",
        "['set', 'dbfile', '/run/fail2ban/fail2ban.sqlite3']",
        "['set', 'sshd', 'addjournalmatch', '_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd']",
    ] {
        assert!(dump.contains(want), "fail2ban-client -d lacks {want}");
    }
}

#[test]
fn fail2ban_test_fails_on_a_broken_jail() {
    let jail = read(&shipped("fail2ban/jail.local"));
    let broken = render(&jail, &[("backend = systemd", "backend = nosuch")]);
    let dir = fail2ban_dir(&broken, &read(&shipped("fail2ban/fail2ban.local")));
    let (command, output) = fail2ban_client(&dir, "-t");
    assert!(!output.status.success(), "{}", describe(&command, &output));
}

//! A real OpenSSH sshd on 127.0.0.1 (okome-validate's `--cluster` tests and
//! bench): its own host key, one client key in its authorized_keys, a
//! known_hosts naming it, so a client runs with BatchMode and strict host-key
//! checking exactly as an operator's would. Stopped by PID (its guard) with
//! the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::process::ProcessGuard;

/// A running sshd and the client files that reach it.
#[derive(Debug)]
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    _guard: ProcessGuard,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client) installed");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Start sshd (as root: it must be able to switch to the user).
    pub fn start() -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("okv-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all("/run/sshd").unwrap();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel ERROR\nMaxStartups 50\nMaxSessions 50\n",
                d = d.display()
            );
            fs::write(d.join("sshd_config"), config).unwrap();
            let sshd = if Path::new("/usr/sbin/sshd").exists() {
                "/usr/sbin/sshd"
            } else {
                "sshd"
            };
            let mut guard = ProcessGuard::spawn(
                "sshd",
                Command::new(sshd)
                    .arg("-D")
                    .arg("-e")
                    .arg("-f")
                    .arg(d.join("sshd_config")),
                Some(&d.join("sshd.log")),
            )
            .expect("sshd (openssh-server) installed");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let host_key = fs::read_to_string(d.join("host_key.pub")).unwrap();
                    fs::write(
                        d.join("known_hosts"),
                        format!("[127.0.0.1]:{port} {host_key}"),
                    )
                    .unwrap();
                    return Sshd {
                        port,
                        dir,
                        _guard: guard,
                    };
                }
                if guard.try_wait().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(attempt < 3, "sshd did not start: {}", guard.log_tail(20));
        }
    }

    /// `ssh://root@127.0.0.1:PORT`.
    pub fn dest(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// The `-o` options (as okome-validate's --ssh-option values) that reach it.
    pub fn options(&self) -> Vec<String> {
        let d = self.dir.path().display();
        vec![
            format!("IdentityFile={d}/client_key"),
            "IdentitiesOnly=yes".into(),
            format!("UserKnownHostsFile={d}/known_hosts"),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
        ]
    }

    /// A directory for the test's wrapper scripts.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

//! Real nginx on the rendered shipped config: `nginx -t` first (its output
//! in the panic if it fails), then the server itself under a
//! [`ProcessGuard`], ready once it accepts connections.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::net::wait_listening;
use crate::process::ProcessGuard;
use crate::root::LabRoot;

/// The nginx binary (`$OKOME_NGINX`, else `nginx` on PATH or /usr/sbin).
pub fn nginx_binary() -> PathBuf {
    if let Some(custom) = std::env::var_os("OKOME_NGINX") {
        return PathBuf::from(custom);
    }
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.is_file() {
        return sbin.to_path_buf();
    }
    PathBuf::from("nginx")
}

/// `nginx -t` of `main_conf` with prefix `root`; Err carries nginx's output.
pub fn nginx_test(root: &Path, main_conf: &Path) -> Result<String, String> {
    let error_log = root.join("var/log/nginx/error.log");
    let out = Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(main_conf)
        .arg("-e")
        .arg(&error_log)
        .output()
        .map_err(|e| {
            format!(
                "running {} -t: {e} (is nginx installed? `cargo xtask test` installs it)",
                nginx_binary().display()
            )
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "nginx -t -c {} failed ({}):\n{text}",
            main_conf.display(),
            out.status
        ))
    }
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    guard: ProcessGuard,
    port: u16,
    ipv6: bool,
    error_log: PathBuf,
}

impl Nginx {
    /// `nginx -t`, then start nginx on `main_conf`; panics with nginx's
    /// output if either fails.
    pub fn start(root: &LabRoot, main_conf: &Path, port: u16, ipv6: bool) -> Self {
        Self::try_start(root, main_conf, port, ipv6).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Nginx::start`], returning nginx's output on failure (the lab
    /// retries on another port when the error says "Address already in use").
    pub fn try_start(
        root: &LabRoot,
        main_conf: &Path,
        port: u16,
        ipv6: bool,
    ) -> Result<Self, String> {
        nginx_test(root.dir(), main_conf)?;
        let error_log = root.path("/var/log/nginx/error.log");
        let pid_file = root.path("/run/nginx.pid");
        let _ = fs::remove_file(&pid_file);
        let mut command = Command::new(nginx_binary());
        command
            .arg("-p")
            .arg(root.dir())
            .arg("-c")
            .arg(main_conf)
            .arg("-e")
            .arg(&error_log);
        let mut guard = ProcessGuard::spawn(
            "nginx",
            &mut command,
            Some(&root.path("/var/log/nginx/lab-stdout.log")),
        )
        .map_err(|e| e.to_string())?;
        // nginx writes its pid file only after binding every listen socket:
        // a connect alone could reach whoever else holds the port.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let expected = guard.pid().to_string();
        loop {
            if let Some(status) = guard.try_wait() {
                return Err(format!(
                    "nginx exited at start ({status}); error.log:\n{}",
                    tail(&error_log, 30)
                ));
            }
            let written = fs::read_to_string(&pid_file).unwrap_or_default();
            if written.trim() == expected && wait_listening(addr, Duration::from_millis(200)) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx did not come up on {addr} within 10 s; error.log:\n{}",
                    tail(&error_log, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            guard,
            port,
            ipv6,
            error_log,
        })
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `[::1]:port`, when nginx listens there.
    pub fn addr_v6(&self) -> Option<SocketAddr> {
        self.ipv6
            .then(|| SocketAddr::from((Ipv6Addr::LOCALHOST, self.port)))
    }

    /// The master process's PID (unchanged by a reload).
    pub fn master_pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Ask nginx to reload its configuration (SIGHUP to the master).
    pub fn reload(&self) {
        kill(Pid::from_raw(self.guard.pid() as i32), Signal::SIGHUP)
            .expect("SIGHUP to the lab's nginx");
    }

    /// How many reloads nginx has logged ("reconfiguring").
    pub fn reload_count(&self) -> usize {
        self.error_log_text().matches("reconfiguring").count()
    }

    /// The whole error log.
    pub fn error_log_text(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Whether the master process is still running.
    pub fn is_running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

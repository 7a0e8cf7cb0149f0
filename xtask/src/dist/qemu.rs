//! Proof that the ARM binaries run on the Pis' CPUs: each one is started
//! under qemu user-mode emulation (`qemu-arm-static`, `qemu-aarch64-static`)
//! and must answer `--version` and `--help`, then do a real job whose result
//! is compared with the amd64 build of the same source.
//!
//! The jobs are chosen to be deterministic so a byte comparison is fair:
//! okome-hit-ratio reads a fixed fixture log; okome-health-probe probes a
//! tiny HTTP server on 127.0.0.1 that xtask runs itself (loopback only).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use super::{Binary, Dist};
use crate::Result;
use crate::cmd::{describe, workspace_root};

/// Run every ARM binary's checks; fail naming the binary and the check.
pub fn check(dist: &Dist) -> Result {
    let health = health_server()?;
    for binary in &dist.binaries {
        let Some(qemu) = binary.target.qemu else {
            continue;
        };
        let host = dist
            .binary(binary.tool.package, "amd64")
            .ok_or_else(|| format!("no amd64 build of {} to compare with", binary.tool.package))?;
        let mut version = Command::new(qemu);
        version.arg(&binary.path).arg("--version");
        let out = ok(&mut version)?;
        let expected = format!("{} {}", binary.tool.package, super::deb::VERSION);
        if !String::from_utf8_lossy(&out.stdout).contains(&expected) {
            return Err(format!(
                "{}: --version does not say {expected:?}",
                describe(&version)
            )
            .into());
        }
        let mut help = Command::new(qemu);
        help.arg(&binary.path).arg("--help");
        let out = ok(&mut help)?;
        if !String::from_utf8_lossy(&out.stdout).contains("Usage:") {
            return Err(format!("{}: --help shows no usage", describe(&help)).into());
        }
        job(binary, qemu, host, &health)?;
        eprintln!(
            "xtask dist: {} ({}) runs under {qemu}: --version, --help, real job",
            binary.tool.package, binary.target.deb_arch
        );
    }
    Ok(())
}

/// The real job for each tool: same input to the ARM and the amd64 build,
/// same output expected.
fn job(binary: &Binary, qemu: &str, host: &Binary, health_url: &str) -> Result {
    match binary.tool.package {
        "okome-hit-ratio" => {
            let fixture = fixture("okome_access.log");
            let args = ["--json".to_string(), fixture.display().to_string()];
            let arm = ok(Command::new(qemu).arg(&binary.path).args(&args))?;
            let native = ok(Command::new(&host.path).args(&args))?;
            same_output(binary, &arm, &native)
        }
        "okome-health-probe" => {
            // One probe decision against a healthy upstream, everything
            // under a throwaway state dir; the JSON decision must match.
            let mut outputs = Vec::new();
            for (program, prefix) in [
                (qemu, Some(&binary.path)),
                (host.path.to_str().ok_or("path")?, None),
            ] {
                let root = tempdir(&format!("probe-{}", binary.target.deb_arch))?;
                let mut command = Command::new(program);
                if let Some(path) = prefix {
                    command.arg(path);
                }
                command
                    .args(["--json", "--no-metrics", "--url", health_url])
                    .arg("--state-dir")
                    .arg(root.join("run"))
                    .arg("--gate-file")
                    .arg(root.join("run/orchestrator.down"))
                    .env("OKOME_ROOT", &root);
                let out = ok(&mut command)?;
                if root.join("run/orchestrator.down").exists() {
                    return Err(format!(
                        "{}: closed the gate on a healthy upstream",
                        describe(&command)
                    )
                    .into());
                }
                std::fs::remove_dir_all(&root)?;
                outputs.push(strip_timings(&out.stdout));
            }
            if outputs[0] != outputs[1] {
                return Err(format!(
                    "{} ({}): decision differs from amd64:\n{}\nvs\n{}",
                    binary.tool.package,
                    binary.target.deb_arch,
                    String::from_utf8_lossy(&outputs[0]),
                    String::from_utf8_lossy(&outputs[1])
                )
                .into());
            }
            Ok(())
        }
        other => Err(format!("no real job defined for {other} in xtask/src/dist/qemu.rs").into()),
    }
}

/// The probe's JSON carries measured latencies: blank the digits of any
/// `…_ms` / `…seconds` value so only the decision is compared.
fn strip_timings(json: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(json);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(pos) = rest.find("\":") {
        let (head, tail) = rest.split_at(pos + 2);
        out.push_str(head);
        let key_start = head[..head.len() - 2].rfind('"').map_or(0, |i| i + 1);
        let key = &head[key_start..head.len() - 2];
        let timed = key.ends_with("_ms") || key.contains("seconds") || key.contains("elapsed");
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
            .unwrap_or(tail.len());
        if timed && end > 0 {
            out.push('#');
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out.into_bytes()
}

fn same_output(binary: &Binary, arm: &Output, native: &Output) -> Result {
    if arm.stdout != native.stdout {
        return Err(format!(
            "{} ({}): output differs from the amd64 build:\n{}\nvs\n{}",
            binary.tool.package,
            binary.target.deb_arch,
            String::from_utf8_lossy(&arm.stdout),
            String::from_utf8_lossy(&native.stdout)
        )
        .into());
    }
    if arm.stdout.is_empty() {
        return Err(format!("{}: printed nothing", binary.tool.package).into());
    }
    Ok(())
}

/// Run and require exit 0, reporting stderr otherwise.
fn ok(command: &mut Command) -> Result<Output> {
    let out = command
        .output()
        .map_err(|e| format!("{}: {e}", describe(command)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\n{}",
            describe(command),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("xtask/fixtures").join(name)
}

fn tempdir(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("okome-dist-{tag}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A healthy `/health` on 127.0.0.1 (a free port), answering every request
/// with 200 for as long as xtask runs. Returns its URL.
fn health_server() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/health", listener.local_addr()?);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "{\"status\":\"ok\"}";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_blanked_and_decisions_kept() {
        let a = strip_timings(br#"{"healthy":true,"latency_ms":12.5,"gate":"open"}"#);
        let b = strip_timings(br#"{"healthy":true,"latency_ms":3,"gate":"open"}"#);
        assert_eq!(a, b);
        let c = strip_timings(br#"{"healthy":false,"latency_ms":3,"gate":"open"}"#);
        assert_ne!(a, c);
    }
}

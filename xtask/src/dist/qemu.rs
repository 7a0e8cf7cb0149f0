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
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Binary, Dist};
use crate::Result;
use crate::cmd::{captured, describe, workspace_root};

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
        let out = captured(&mut version)?;
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
        let out = captured(&mut help)?;
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
/// same output expected (byte for byte for okome-hit-ratio; the others
/// print measured times or ages, blanked before comparing).
fn job(binary: &Binary, qemu: &str, host: &Binary, health_url: &str) -> Result {
    let fixture = fixture("okome_access.log");
    let (args, varying): (Vec<String>, &[&str]) = match binary.tool.package {
        "okome-hit-ratio" => (
            strings(&["--json", "--by", "minute", "--top", "5"])
                .into_iter()
                .chain([fixture.display().to_string()])
                .collect(),
            &[],
        ),
        // One probe decision against a healthy upstream on loopback.
        "okome-health-probe" => (
            strings(&["--json", "--no-metrics", "--url", health_url]),
            &["seconds", "probe_seconds"],
        ),
        // The plan from the fixture log: which paths, in which order, and
        // the log counts; scores decay with the wall clock.
        "okome-prewarm" => (
            strings(&[
                "--dry-run",
                "--json",
                "--no-metrics",
                "--strategy",
                "selective",
                "--log",
            ])
            .into_iter()
            .chain([fixture.display().to_string()])
            .collect(),
            &["score", "frequency", "recent", "growth", "age", "why"],
        ),
        other => {
            return Err(
                format!("no real job defined for {other} in xtask/src/dist/qemu.rs").into(),
            );
        }
    };
    let mut outputs = Vec::new();
    for (program, emulated) in [
        (Path::new(qemu), Some(&binary.path)),
        (host.path.as_path(), None),
    ] {
        // Every state path under a throwaway root.
        let root = tempdir(&format!(
            "{}-{}",
            binary.tool.package, binary.target.deb_arch
        ))?;
        let mut command = Command::new(program);
        command.args(emulated).args(&args);
        if binary.tool.package != "okome-hit-ratio" {
            command.arg("--state-dir").arg(root.join("run"));
        }
        if binary.tool.package == "okome-health-probe" {
            command
                .arg("--gate-file")
                .arg(root.join("run/orchestrator.down"));
        }
        command.env("OKOME_ROOT", &root);
        let out = captured(&mut command)?;
        if root.join("run/orchestrator.down").exists() {
            return Err(format!(
                "{}: closed the gate on a healthy upstream",
                describe(&command)
            )
            .into());
        }
        std::fs::remove_dir_all(&root)?;
        outputs.push(blank_values(&out.stdout, varying));
    }
    if outputs[0].is_empty() {
        return Err(format!("{}: printed nothing", binary.tool.package).into());
    }
    if outputs[0] != outputs[1] {
        return Err(format!(
            "{} ({}): output differs from the amd64 build:\n{}\nvs\n{}",
            binary.tool.package,
            binary.target.deb_arch,
            String::from_utf8_lossy(&outputs[0]),
            String::from_utf8_lossy(&outputs[1])
        )
        .into());
    }
    Ok(())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Replace the value of every JSON member named in `keys` (a number or a
/// string) with `#`, so run-to-run measurements do not hide a real
/// difference in everything else.
fn blank_values(json: &[u8], keys: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(json);
    if keys.is_empty() {
        return json.to_vec();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(pos) = rest.find("\":") {
        let (head, tail) = rest.split_at(pos + 2);
        out.push_str(head);
        let key_start = head[..head.len() - 2].rfind('"').map_or(0, |i| i + 1);
        let key = &head[key_start..head.len() - 2];
        let value = tail.trim_start();
        let skipped = tail.len() - value.len();
        if !keys.contains(&key) {
            rest = tail;
            continue;
        }
        let end = if let Some(body) = value.strip_prefix('"') {
            let mut escaped = false;
            let close = body
                .char_indices()
                .find(|&(_, c)| {
                    let done = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    done
                })
                .map_or(body.len(), |(i, _)| i + 1);
            close + 1
        } else {
            value.find([',', '}', ']', '\n']).unwrap_or(value.len())
        };
        out.push('#');
        rest = &tail[skipped + end..];
    }
    out.push_str(rest);
    out.into_bytes()
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
    fn varying_values_are_blanked_and_the_rest_kept() {
        let keys = &["seconds", "why"];
        let a = blank_values(
            br#"{"up":true,"seconds":0.0054,"why":"seen 3s \"ago\"","n":1}"#,
            keys,
        );
        let b = blank_values(
            br#"{"up":true,"seconds":12,"why":"seen 9s ago","n":1}"#,
            keys,
        );
        assert_eq!(
            String::from_utf8_lossy(&a),
            r#"{"up":true,"seconds":#,"why":#,"n":1}"#
        );
        assert_eq!(a, b);
        let c = blank_values(br#"{"up":false,"seconds":12,"why":"x","n":1}"#, keys);
        assert_ne!(a, c);
        // Keys not listed are compared as they are.
        assert_eq!(blank_values(br#"{"n":1}"#, &[]), br#"{"n":1}"#.to_vec());
    }
}

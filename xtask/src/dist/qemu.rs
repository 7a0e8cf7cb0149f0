//! Proof that the ARM binaries run on the Pis' CPUs: each one is started
//! under qemu user-mode emulation (`qemu-arm-static`, `qemu-aarch64-static`)
//! and must answer `--version` and `--help`, then do a real job whose result
//! is compared with the amd64 build of the same source.
//!
//! The jobs are chosen to be deterministic so a byte comparison is fair:
//! okome-hit-ratio reads a fixed fixture log; okome-health-probe probes a
//! tiny HTTP server on 127.0.0.1 that xtask runs itself (loopback only).
//!
//! One job is not enough for the access-log parser, which has per-
//! architecture code (NEON on aarch64, word arithmetic on armv7) that the
//! host's `cargo test` never compiles: [`unit_tests`] builds okome-accesslog's
//! own unit tests (`--lib`: the proptests that compare
//! each classifier with a byte loop) for each ARM target and runs them under
//! its qemu, failing on any failed test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use okome_testkit::{FakeHttp, Reply};

use super::{Binary, Dist, Target};
use crate::Result;
use crate::cmd::{self, captured, describe, workspace_root};

/// Run every ARM binary's checks; fail naming the binary and the check.
pub fn check(dist: &Dist) -> Result {
    // A healthy `/health` on 127.0.0.1 (a free port) for the probe's job.
    let health_server = FakeHttp::always(
        Reply::ok("{\"status\":\"ok\"}").header("Content-Type", "application/json"),
    );
    let health = format!("{}/health", health_server.url());
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

/// Proptest cases per property under emulation. Measured here (2 shared
/// cores, `--test-threads=2`): with proptest's defaults the armv7 run took
/// 155 s (arm64: 41 s), most of it the splitter property that asks for 2,048
/// cases; at 256 armv7 took 95 s, at 64 ~30 s (arm64: 6 s). PROPTEST_CASES
/// overrides every property's own count, that one included. The host's
/// `cargo test` still runs the full counts on the same properties; here they
/// only need to reach the ARM code paths, with a fresh seed on every run.
const EMULATED_PROPTEST_CASES: &str = "64";

/// Build okome-accesslog's unit tests for every emulated target in `targets`
/// and run them under its qemu; fail on the first target with a failed test.
pub fn unit_tests(targets: &[Target]) -> Result {
    for target in targets {
        let Some(qemu) = target.qemu else {
            continue;
        };
        let executable = build_unit_tests(target)?;
        let started = Instant::now();
        let mut command = Command::new(qemu);
        command
            .arg(&executable)
            .arg("--test-threads=2")
            .env("PROPTEST_CASES", EMULATED_PROPTEST_CASES);
        let passed = run_libtest(&mut command)?;
        eprintln!(
            "xtask dist: okome-accesslog parser tests ({}) pass under {qemu}: {passed} tests, {:.0} s",
            target.deb_arch,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `cargo test --no-run` of okome-accesslog's lib tests for `target`, with the
/// same linker, build-std setup and target dir as its release binaries;
/// returns the test executable cargo reports. armv7's std cannot be shared
/// with the release builds (another profile: no LTO, unwinding, debug
/// assertions), so the first run builds a test-profile std next to the
/// release one (with the test dependencies: 2 min 45 s cold here); the
/// cached target dir keeps it, and later runs and the release builds stay
/// fresh.
fn build_unit_tests(target: &Target) -> Result<PathBuf> {
    let mut command = super::cross_cargo(target, true);
    command.args([
        "--no-run",
        "-p",
        "okome-accesslog",
        "--lib",
        // Artifacts as JSON on stdout, diagnostics as text on stderr.
        "--message-format=json-render-diagnostics",
    ]);
    eprintln!("+ {}", describe(&command));
    command.stderr(Stdio::inherit());
    let out = captured(&mut command)?;
    let executables = executables(&String::from_utf8_lossy(&out.stdout))?;
    match executables.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "{}: expected one test executable, cargo reported {other:?}",
            describe(&command)
        )
        .into()),
    }
}

/// The `executable` of every compiler-artifact message in cargo's JSON
/// output (one message per line; non-executables have `null` there).
fn executables(json_lines: &str) -> Result<Vec<PathBuf>> {
    const KEY: &str = "\"executable\":\"";
    let mut found = Vec::new();
    for line in json_lines.lines() {
        if !line.starts_with("{\"reason\":\"compiler-artifact\"") {
            continue;
        }
        let Some(at) = line.find(KEY) else {
            continue;
        };
        let mut path = String::new();
        let mut chars = line[at + KEY.len()..].chars();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\' | '/')) => path.push(c),
                    other => {
                        return Err(format!(
                            "cannot read escape \\{other:?} in a test executable's path: {line}"
                        )
                        .into());
                    }
                },
                Some(c) => path.push(c),
                None => return Err(format!("unterminated executable path: {line}").into()),
            }
        }
        found.push(PathBuf::from(path));
    }
    Ok(found)
}

/// Run a libtest executable (`command`, here under qemu) and return how many
/// tests passed. Any unsuccessful exit is an error carrying its output (the
/// failed tests' panics are in stdout); so is a run that reports no test.
fn run_libtest(command: &mut Command) -> Result<u64> {
    eprintln!("+ {}", describe(command));
    // libtest says which test failed on stdout.
    let out = verdict_of(command, &[0])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let passed: u64 = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .sum();
    if passed == 0 {
        return Err(format!("{}: no test passed:\n{stdout}", describe(command)).into());
    }
    Ok(passed)
}

/// The real job for each tool: same input to the ARM and the amd64 build,
/// same output expected (byte for byte for okome-hit-ratio; the others
/// print measured times or ages, blanked before comparing). A registered
/// tool without a job here still runs: its `--help`, compared with the
/// amd64 build's (clap's whole parser and formatter under emulation), until
/// it gets a real job. `{root}` in an argument is the run's throwaway root.
fn job(binary: &Binary, qemu: &str, host: &Binary, health_url: &str) -> Result {
    let fixture = fixture("okome_access.log");
    // Exit statuses that are the job's verdict rather than a failure to run
    // it: both builds must exit with the same one.
    let mut verdicts: &[i32] = &[0];
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
            strings(&[
                "--json",
                "--no-metrics",
                "--url",
                health_url,
                "--state-dir",
                "{root}/run",
                "--gate-file",
                "{root}/run/orchestrator.down",
            ]),
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
                "--state-dir",
                "{root}/run",
                "--log",
            ])
            .into_iter()
            .chain([fixture.display().to_string()])
            .collect(),
            &["score", "frequency", "recent", "growth", "age", "why"],
        ),
        // verify of an image the amd64 build made from the test fixture
        // card: the emulated binary drives the host's e2fsprogs, mtools and
        // sfdisk and must reach the same verdict, check for check.
        "okome-golden-image" => (
            strings(&["verify", "--json", "--configs"])
                .into_iter()
                .chain([
                    workspace_root().join("configs").display().to_string(),
                    golden_image(host)?.display().to_string(),
                ])
                .collect(),
            &[],
        ),
        // Two checks that read only the (throwaway) root: the disk of / and
        // the Pi-power check, skipped without vcgencmd; values vary, verdicts
        // not. The root lies on the host's disk, so a host over 85 % full
        // gets a warn (exit 1) from both builds: that is a verdict to
        // compare, not a failure (a CI host at 85 % once failed here).
        "okome-validate" => {
            verdicts = &[0, 1];
            (
                strings(&[
                    "--json",
                    "--only",
                    "node.disk,node.throttle",
                    "--self",
                    "qemu",
                ]),
                &["observed", "elapsed_ms", "generated_at"],
            )
        }
        // No run on disk under the throwaway root: a revert is a no-op that
        // must say so identically on every architecture.
        "okome-chaos" => (strings(&["--node", "qemu", "revert"]), &[]),
        _ => (strings(&["--help"]), &[]),
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
        let root_text = root.display().to_string();
        command
            .args(emulated)
            .args(args.iter().map(|a| a.replace("{root}", &root_text)));
        command.env("OKOME_ROOT", &root);
        let out = verdict_of(&mut command, verdicts)?;
        if root.join("run/orchestrator.down").exists() {
            return Err(format!(
                "{}: closed the gate on a healthy upstream",
                describe(&command)
            )
            .into());
        }
        std::fs::remove_dir_all(&root)?;
        if out.stdout.is_empty() {
            return Err(format!("{}: printed nothing", describe(&command)).into());
        }
        let mut compared = format!("{}\n", out.status).into_bytes();
        compared.extend(blank_values(&out.stdout, varying));
        outputs.push(compared);
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

/// Run one build's job: its output when it exits with one of `verdicts`,
/// else an error carrying what it printed on both streams (a `--json` tool
/// says why on stdout).
fn verdict_of(command: &mut Command, verdicts: &[i32]) -> Result<std::process::Output> {
    let out = cmd::finished(command)?;
    if out
        .status
        .code()
        .is_some_and(|code| verdicts.contains(&code))
    {
        return Ok(out);
    }
    Err(format!(
        "{} failed: {}\n{}{}",
        describe(command),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

/// A golden image made by the amd64 build from the test fixture card.
fn golden_image(host: &Binary) -> Result<PathBuf> {
    let dir = tempdir("golden-image-card")?;
    let card = okome_golden_image::fixture::build(&dir, &Default::default())?;
    let image = dir.join("golden.img");
    captured(
        Command::new(&host.path)
            .arg("create")
            .arg(&card.image)
            .arg(&image)
            .arg("--no-compress")
            .arg("--configs")
            .arg(workspace_root().join("configs"))
            .env("OKOME_ROOT", "/"),
    )?;
    std::fs::remove_file(&card.image)?;
    Ok(image)
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

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_verdict_exit_is_output_and_anything_else_an_error_that_shows_stdout() {
        // A warn verdict (exit 1) is the job's answer when the tool says so.
        let warn = verdict_of(&mut sh("echo '{\"warn\":1}'; exit 1"), &[0, 1]).unwrap();
        assert_eq!(warn.status.code(), Some(1));
        assert_eq!(warn.stdout, b"{\"warn\":1}\n");
        // For a tool whose only verdict is success, exit 1 is a failure...
        let err = verdict_of(&mut sh("echo '{\"why\":\"disk\"}'; exit 1"), &[0])
            .unwrap_err()
            .to_string();
        // ...that says what the tool printed on stdout, not only stderr.
        assert!(
            err.contains("exit status: 1") && err.contains("disk"),
            "{err}"
        );
        // A usage or internal error is never a verdict; nor is a signal.
        assert!(verdict_of(&mut sh("exit 2"), &[0, 1]).is_err());
        assert!(verdict_of(&mut sh("kill -9 $$"), &[0, 1]).is_err());
        assert!(verdict_of(&mut Command::new("/nonexistent/qemu-none-static"), &[0]).is_err());
    }

    #[test]
    fn a_libtest_run_passes_only_on_success_with_tests() {
        let ok =
            "echo 'test a ... ok'; echo; echo 'test result: ok. 51 passed; 0 failed; 0 ignored'";
        assert_eq!(run_libtest(&mut sh(ok)).unwrap(), 51);
        // A failed test: libtest exits 101 and says which one on stdout.
        let failed =
            "echo 'test a ... FAILED'; echo 'test result: FAILED. 50 passed; 1 failed'; exit 101";
        let err = run_libtest(&mut sh(failed)).unwrap_err().to_string();
        assert!(
            err.contains("101") && err.contains("test a ... FAILED"),
            "{err}"
        );
        // Any other unsuccessful exit, even one that printed a clean result.
        assert!(run_libtest(&mut sh(&format!("{ok}; exit 1"))).is_err());
        assert!(run_libtest(&mut Command::new("false")).is_err());
        // Success with nothing run (e.g. everything filtered out) is not a pass.
        assert!(run_libtest(&mut Command::new("true")).is_err());
        assert!(run_libtest(&mut sh("echo 'test result: ok. 0 passed; 0 failed'")).is_err());
        assert!(run_libtest(&mut Command::new("/nonexistent/qemu-none-static")).is_err());
    }

    #[test]
    fn the_test_executable_is_read_from_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","package_id":"registry+x#memchr@2.8.3","target":{"kind":["lib"]},"filenames":["/t/libmemchr.rlib"],"executable":null,"fresh":true}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/common#okome-common@0.1.0","profile":{"test":true},"filenames":["/t/dist/build-std/armv7-unknown-linux-musleabihf/debug/deps/okome_common-bea2"],"executable":"/t/dist/build-std/armv7-unknown-linux-musleabihf/debug/deps/okome_common-bea2","fresh":false}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        assert_eq!(
            executables(messages).unwrap(),
            [PathBuf::from(
                "/t/dist/build-std/armv7-unknown-linux-musleabihf/debug/deps/okome_common-bea2"
            )]
        );
        let escaped =
            r#"{"reason":"compiler-artifact","executable":"/a \"b\"\\c\/t","fresh":true}"#;
        assert_eq!(
            executables(escaped).unwrap(),
            [PathBuf::from(r#"/a "b"\c/t"#)]
        );
        // Control characters (\u escapes) have no business in these paths:
        // refuse rather than guess.
        assert!(executables(r#"{"reason":"compiler-artifact","executable":"/a\u0001"}"#).is_err());
        assert!(executables(r#"{"reason":"compiler-artifact","executable":"/a"#).is_err());
        assert_eq!(executables("").unwrap(), Vec::<PathBuf>::new());
    }
}

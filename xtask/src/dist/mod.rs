//! `cargo xtask dist`: static musl binaries of every tool for the Pis
//! (armv7 → armhf, aarch64 → arm64) and for amd64 (the install test), then
//! the `.deb` packages, each checked by lintian.
//!
//! Shaped by three facts measured on this machine: Cargo unifies features
//! across every package of one invocation, so each tool is built alone
//! (`-p`), or a lean tool links its neighbours' TLS and Unicode tables; the
//! prebuilt armv7 musl std cannot be downloaded here, so armv7 builds std
//! from source with zig as the linker (GUIDE §3); and dist builds use their
//! own target dir, so release/cross builds never invalidate the debug builds
//! everyone else is running. `test_suite()` is what `cargo xtask test` runs:
//! the same build, then proof under qemu (each ARM binary does a real job,
//! and okome-accesslog's unit tests, the access-log parser's per-architecture
//! code among them, are cross-built and pass on each ARM target), lintian
//! the chroot install test (`--test --arch amd64`: the same without the
//! ARM builds), then the booted suite (the amd64 packages on a booted
//! systemd in systemd-nspawn --private-network, booted_suite.rs). `--parser-tests` runs
//! those unit tests alone; `--booted` builds amd64 only and runs the
//! booted suite alone.

mod assets;
pub use okome_cluster::booted;
mod booted_chaos;
mod booted_suite;
mod chroot;
mod deb;
mod qemu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::Result;
use crate::cmd::{self, cargo, run, workspace_root};
use crate::deps;

/// Every tool that ships, and what it is: THE registry
/// (`testkit/src/tools.rs`, one line per tool), also read by the config
/// tests. Dist, packages, qemu, install and booted checks iterate over it.
pub use okome_testkit::tools::{TOOLS, Tool};

/// One build target and what Debian calls it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub triple: &'static str,
    pub deb_arch: &'static str,
    /// The qemu user-mode emulator that runs it here (None: runs natively).
    pub qemu: Option<&'static str>,
    /// armv7: no prebuilt musl std here, so build-std with zig as linker.
    pub build_std: bool,
    /// The size budget of the stripped binary, if it goes to a Pi.
    pub budget: Option<u64>,
}

/// Each stripped static ARM binary must fit in 1.5 MiB (issue 6).
pub const ARM_BUDGET: u64 = 1536 * 1024;

pub const TARGETS: &[Target] = &[
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        deb_arch: "armhf",
        qemu: Some("qemu-arm-static"),
        build_std: true,
        budget: Some(ARM_BUDGET),
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        deb_arch: "arm64",
        qemu: Some("qemu-aarch64-static"),
        build_std: false,
        budget: Some(ARM_BUDGET),
    },
    Target {
        triple: "x86_64-unknown-linux-musl",
        deb_arch: "amd64",
        qemu: None,
        build_std: false,
        budget: None,
    },
];

/// Debian packages dist needs: llvm-strip, file (is it static?), lintian.
const DIST_APT: &[&str] = &["llvm", "file", "lintian"];

/// Where dist's cargo builds go. CI reruns on the same machine from a fresh
/// clone: there a persistent dir under /var/cache/okome-ci keeps the nine
/// LTO builds and armv7's from-source std between runs (a cold build of all
/// nine took ~4 min here, a warm one seconds to ~1.5 min).
pub fn build_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OKOME_DIST_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return PathBuf::from("/var/cache/okome-ci/target-dist");
    }
    workspace_root().join("target").join("dist")
}

/// Where dist writes what it generates (man pages, completions, staged
/// config packages) and the finished `.deb`s: always inside the workspace,
/// because cargo-deb's asset paths are relative to it.
pub fn out_dir() -> PathBuf {
    workspace_root().join("target").join("dist")
}

/// The cargo target dir of one target. build-std builds get their own:
/// they need `RUSTC_BOOTSTRAP=1`, which proc-macro2's build script tracks,
/// so sharing host artifacts with the other builds would rebuild
/// proc-macro2, syn and every derive on each switch between them.
pub fn target_dir(target: &Target) -> PathBuf {
    if target.build_std {
        build_dir().join("build-std")
    } else {
        build_dir()
    }
}

/// What `cargo xtask dist` accepts.
#[derive(Debug, Default)]
struct Options {
    arches: Vec<String>,
    tools: Vec<String>,
    no_lintian: bool,
    test: bool,
    parser_tests: bool,
    booted: bool,
    cluster: bool,
    booted_chaos: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--arch" => options
                .arches
                .push(args.next().ok_or("--arch needs a value")?.clone()),
            "--tool" => options
                .tools
                .push(args.next().ok_or("--tool needs a value")?.clone()),
            "--no-lintian" => options.no_lintian = true,
            "--test" => options.test = true,
            "--parser-tests" => options.parser_tests = true,
            "--booted" => options.booted = true,
            "--cluster" => options.cluster = true,
            "--booted-chaos" => options.booted_chaos = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (accepted: --arch armhf|arm64|amd64, \
                     --tool okome-…, --no-lintian; each may repeat; or --test alone: \
                     the packaging checks of `cargo xtask test` (--test --arch amd64: \
                     without the ARM builds); or --parser-tests \
                     [--arch armhf|arm64]: okome-accesslog's unit tests under qemu; \
                     or --booted alone: the amd64 packages on a booted systemd; \
                     or --cluster alone: the cluster lab's end-to-end tests)"
                )
                .into());
            }
        }
    }
    for arch in &options.arches {
        if !TARGETS.iter().any(|t| t.deb_arch == arch) {
            return Err(format!("unknown --arch {arch:?}").into());
        }
    }
    for tool in &options.tools {
        if !TOOLS.iter().any(|t| t.package == tool) {
            return Err(format!("unknown --tool {tool:?}").into());
        }
    }
    Ok(options)
}

pub fn main(args: &[String]) -> Result {
    let options = parse(args)?;
    if options.test {
        if options.arches == ["amd64"] && options.tools.is_empty() && !options.no_lintian {
            return test_suite_amd64();
        }
        if !options.arches.is_empty() || !options.tools.is_empty() || options.no_lintian {
            return Err(
                "--test checks every tool and architecture: it takes no other flag \
                        (but --arch amd64: the packaging checks without the ARM builds)"
                    .into(),
            );
        }
        return test_suite();
    }
    if options.cluster {
        if options.booted || !options.arches.is_empty() || !options.tools.is_empty() {
            return Err("--cluster builds every amd64 package: it takes no other flag".into());
        }
        return cluster_suite(&amd64_debs()?);
    }
    if options.booted_chaos {
        // okome-chaos alone, on a booted systemd (booted_chaos.rs).
        let chaos: Vec<Tool> = TOOLS
            .iter()
            .filter(|t| t.package == "okome-chaos")
            .copied()
            .collect();
        let dist = build_and_package(&chaos, &amd64_targets(), "1")?;
        deps::ensure_apt(&["systemd-container", "debootstrap"])?;
        return booted_chaos::run(&dist);
    }
    if options.booted {
        if !options.arches.is_empty()
            || !options.tools.is_empty()
            || options.no_lintian
            || options.parser_tests
        {
            return Err("--booted builds every amd64 package: it takes no other flag".into());
        }
        return booted_test();
    }
    let targets: Vec<Target> = TARGETS
        .iter()
        .filter(|t| options.arches.is_empty() || options.arches.iter().any(|a| a == t.deb_arch))
        .copied()
        .collect();
    if options.parser_tests {
        if !options.tools.is_empty() || options.no_lintian {
            return Err("--parser-tests takes only --arch".into());
        }
        let emulated: Vec<Target> = targets.into_iter().filter(|t| t.qemu.is_some()).collect();
        if emulated.is_empty() {
            return Err("--parser-tests: amd64 runs them natively (`cargo test`)".into());
        }
        deps::ensure_apt(&["qemu-user-static"])?;
        ensure_toolchain(&emulated)?;
        return qemu::unit_tests(&emulated);
    }
    let tools: Vec<Tool> = TOOLS
        .iter()
        .filter(|t| options.tools.is_empty() || options.tools.iter().any(|p| p == t.package))
        .copied()
        .collect();
    let dist = build_and_package(&tools, &targets, "1")?;
    if !options.no_lintian {
        deb::lintian(&dist.debs)?;
    }
    dist.print();
    Ok(())
}

/// The packaging checks `cargo xtask test` runs: build everything, prove the
/// ARM binaries on qemu, run okome-accesslog's unit tests on qemu, lint every
/// package, then install/upgrade/remove/purge them in a Debian chroot.
pub fn test_suite() -> Result {
    deps::ensure_apt(&["qemu-user-static", "debootstrap"])?;
    let dist = build_and_package(TOOLS, TARGETS, "1")?;
    dist.print();
    qemu::check(&dist)?;
    qemu::unit_tests(TARGETS)?;
    deb::lintian(&dist.debs)?;
    let started = Instant::now();
    chroot::install_test(&dist, true)?;
    eprintln!(
        "xtask dist: install test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    run_booted(&dist)?;
    cluster_suite(&amd64_of(&dist))
}

/// The cluster lab's end-to-end tests (cluster/tests/cluster.rs) on the
/// packages just built: every behaviour of the tour on two frontends, the
/// VIP down a chain of three. One test at a time (each boots five or six
/// nodes).
pub fn cluster_suite(debs: &[PathBuf]) -> Result {
    deps::ensure_apt(&["systemd-container", "debootstrap", "nftables"])?;
    let dir = out_dir().join("deb-cluster");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for deb in debs {
        std::fs::copy(deb, dir.join(deb.file_name().ok_or("deb without a name")?))?;
    }
    let started = Instant::now();
    // The lab's own tests, okome-validate's fault matrix on the cluster,
    // then okome-chaos's cross-node scenarios.
    for (package, test) in [
        ("okome-cluster", "cluster"),
        ("okome-validate", "cluster_lab"),
        ("okome-chaos", "cluster"),
    ] {
        crate::cmd::run(
            crate::cmd::cargo()
                .args(["test", "-p", package, "--test", test, "--", "--ignored"])
                .args(["--test-threads=1", "--nocapture"])
                .env(okome_cluster::cluster::DEB_DIR_VAR, &dir),
        )?;
    }
    eprintln!(
        "xtask dist: cluster suite passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The amd64 build targets: what the booted suite and `--test --arch
/// amd64` build (no ARM cross-builds).
fn amd64_targets() -> Vec<Target> {
    TARGETS
        .iter()
        .filter(|t| t.deb_arch == "amd64")
        .copied()
        .collect()
}

/// The amd64 and `all` packages (revision 1), built: what the cluster lab
/// installs on its nodes.
pub fn amd64_debs() -> Result<Vec<PathBuf>> {
    let dist = build_and_package(TOOLS, &amd64_targets(), "1")?;
    Ok(amd64_of(&dist))
}

/// The amd64 and `all` packages of a build.
pub fn amd64_of(dist: &Dist) -> Vec<PathBuf> {
    dist.debs
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with("_amd64.deb") || name.ends_with("_all.deb")
        })
        .cloned()
        .collect()
}

/// `cargo xtask bench chaos [RUNS]`: okome-chaos alone, on a booted
/// systemd, its runners SIGKILLed at random (booted_chaos.rs).
pub fn chaos_bench(runs: usize) -> Result {
    let chaos: Vec<Tool> = TOOLS
        .iter()
        .filter(|t| t.package == "okome-chaos")
        .copied()
        .collect();
    let dist = build_and_package(&chaos, &amd64_targets(), "1")?;
    deps::ensure_apt(&["systemd-container", "debootstrap"])?;
    booted_chaos::bench(&dist, runs)
}

/// `dist --booted`: only what the booted suite needs (every tool for
/// amd64, the config packages), then the suite.
fn booted_test() -> Result {
    let dist = build_and_package(TOOLS, &amd64_targets(), "1")?;
    run_booted(&dist)
}

fn run_booted(dist: &Dist) -> Result {
    deps::ensure_apt(&["systemd-container", "debootstrap"])?;
    let started = Instant::now();
    booted_suite::run(dist)?;
    eprintln!(
        "xtask dist: booted suite passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    booted_chaos::run(dist)?;
    eprintln!(
        "xtask dist: booted chaos suite passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--test --arch amd64`: lintian and the whole chroot install test on the
/// amd64 and `all` packages, without the ARM builds and their qemu checks
/// (minutes of cross-building a packaging change does not need). The full
/// `--test` still runs everything.
fn test_suite_amd64() -> Result {
    deps::ensure_apt(&["debootstrap"])?;
    let dist = build_and_package(TOOLS, &amd64_targets(), "1")?;
    dist.print();
    deb::lintian(&dist.debs)?;
    let started = Instant::now();
    chroot::install_test(&dist, false)?;
    eprintln!(
        "xtask dist: install test (amd64 and all packages only) passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A built binary and its stripped size.
#[derive(Debug, Clone)]
pub struct Binary {
    pub tool: Tool,
    pub target: Target,
    pub path: PathBuf,
    pub size: u64,
}

/// What one dist run produced.
#[derive(Debug, Default)]
pub struct Dist {
    pub binaries: Vec<Binary>,
    pub debs: Vec<PathBuf>,
    pub build_seconds: f64,
}

impl Dist {
    pub fn binary(&self, package: &str, deb_arch: &str) -> Option<&Binary> {
        self.binaries
            .iter()
            .find(|b| b.tool.package == package && b.target.deb_arch == deb_arch)
    }

    fn print(&self) {
        println!("binary sizes (stripped, static):");
        for b in &self.binaries {
            let budget = match b.target.budget {
                Some(budget) => format!("budget {:.2} MiB", mib(budget)),
                None => "no budget".to_string(),
            };
            println!(
                "  {:<20} {:<6} {:>9} bytes  {:>5.2} MiB  ({budget})",
                b.tool.package,
                b.target.deb_arch,
                b.size,
                mib(b.size)
            );
        }
        println!("packages:");
        for deb in &self.debs {
            println!("  {}", deb.display());
        }
        println!("binary build time: {:.0} s", self.build_seconds);
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Build, strip and measure every tool for every target, then package them
/// (and the node-role config packages) with Debian revision `revision`.
pub fn build_and_package(tools: &[Tool], targets: &[Target], revision: &str) -> Result<Dist> {
    ensure_toolchain(targets)?;
    let started = Instant::now();
    let mut dist = Dist::default();
    for tool in tools {
        for target in targets {
            dist.binaries.push(build(*tool, *target)?);
        }
    }
    dist.build_seconds = started.elapsed().as_secs_f64();
    check_budgets(&dist.binaries)?;
    assets::generate(tools)?;
    let deb_dir = out_dir().join("deb");
    std::fs::create_dir_all(&deb_dir)?;
    for binary in &dist.binaries {
        dist.debs
            .push(deb::tool_package(binary, revision, &deb_dir)?);
    }
    dist.debs.extend(deb::config_packages(revision, &deb_dir)?);
    Ok(dist)
}

/// Install what the builds need when it is missing: a warm machine pays a
/// few lookups, a fresh CI machine gets everything.
fn ensure_toolchain(targets: &[Target]) -> Result {
    deps::ensure_apt(DIST_APT)?;
    let prebuilt: Vec<&str> = targets
        .iter()
        .filter(|t| !t.build_std)
        .map(|t| t.triple)
        .collect();
    deps::ensure_rust_targets(&prebuilt)?;
    if targets.iter().any(|t| t.build_std) {
        deps::ensure_rust_component("rust-src")?;
        ensure_zig()?;
        deps::ensure_cargo_tool("cargo-zigbuild", "cargo-zigbuild")?;
    }
    deps::ensure_cargo_tool("cargo-deb", "cargo-deb")?;
    Ok(())
}

/// cargo-zigbuild finds zig on PATH or as the `ziglang` Python package.
fn ensure_zig() -> Result {
    let python_zig = Command::new("python3")
        .args(["-m", "ziglang", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if cmd::have("zig") || python_zig {
        return Ok(());
    }
    // Debian 12 marks the system Python externally managed; ziglang is a
    // self-contained binary wheel that touches nothing else.
    deps::ensure_apt(&["python3-pip"])?;
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--break-system-packages",
        "ziglang",
    ]))
}

/// What a cargo command needs for `target`, whatever it builds: the same
/// linker, flags and environment for the release binaries and for the unit
/// tests run under qemu, so neither invalidates the other's artifacts in the
/// shared (in CI, cached) target dir. `test`: `cargo test` instead of
/// `cargo build`. The caller adds the profile and the package.
fn cross_cargo(target: &Target, test: bool) -> Command {
    let mut command;
    if target.build_std {
        // GUIDE §3: no downloadable armv7 musl std here; build it, link with
        // zig (which brings its own musl), not with rustc's self-contained
        // crt objects that do not exist for this target.
        let flags_var = format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            target.triple.to_uppercase().replace('-', "_")
        );
        if test {
            // `cargo zigbuild` only builds; cargo-zigbuild's own `test`
            // subcommand is `cargo test` with the same zig linker setup.
            command = Command::new("cargo-zigbuild");
            command.current_dir(workspace_root()).arg("test");
        } else {
            command = cargo();
            command.arg("zigbuild");
        }
        command
            .env(flags_var, "-C link-self-contained=no")
            .env("RUSTC_BOOTSTRAP", "1");
    } else {
        command = cargo();
        command.arg(if test { "test" } else { "build" });
        if target.deb_arch == "amd64" {
            // x86_64 musl defaults to static-pie, which lintian takes for a
            // shared library; build a plain static executable like the ARM
            // ones, so the install test runs what the Pis run.
            command.env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
                "-C relocation-model=static",
            );
        }
    }
    command.args(["--target", target.triple]);
    if target.build_std {
        // A test build adds libtest (and panic_unwind) to these by itself.
        command.arg("-Zbuild-std=std,panic_abort");
    }
    command.arg("--target-dir").arg(target_dir(target));
    command
}

/// Build one tool for one target, alone, strip it and measure it.
fn build(tool: Tool, target: Target) -> Result<Binary> {
    let mut command = cross_cargo(&target, false);
    command.args(["--release", "-p", tool.package]);
    run(&mut command)?;
    let path = target_dir(&target)
        .join(target.triple)
        .join("release")
        .join(tool.package);
    // The release profile strips already; llvm-strip understands every
    // target (host `strip` cannot read ARM) and makes sure of it.
    run(Command::new("llvm-strip").arg("--strip-all").arg(&path))?;
    check_static(&path)?;
    let size = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(Binary {
        tool,
        target,
        path,
        size,
    })
}

/// A Pi gets one file with no loader and no libc to match: refuse anything
/// dynamically linked.
fn check_static(path: &Path) -> Result {
    let described = cmd::output(Command::new("file").arg("-b").arg(path))?;
    if described.contains("dynamically linked") || described.contains("interpreter") {
        return Err(format!("{} is not static: {}", path.display(), described.trim()).into());
    }
    if !described.contains("statically linked") && !described.contains("static-pie") {
        return Err(format!(
            "{}: cannot tell it is static: {}",
            path.display(),
            described.trim()
        )
        .into());
    }
    Ok(())
}

/// Fail when a binary outgrew its budget, naming every one that did.
fn check_budgets(binaries: &[Binary]) -> Result {
    let over: Vec<String> = binaries
        .iter()
        .filter_map(|b| {
            let budget = b.target.budget?;
            (b.size > budget).then(|| {
                format!(
                    "{} ({}) is {} bytes, over its budget of {} bytes",
                    b.tool.package, b.target.deb_arch, b.size, budget
                )
            })
        })
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!("size budget exceeded:\n  {}", over.join("\n  ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(size: u64, target: usize) -> Binary {
        Binary {
            tool: TOOLS[0],
            target: TARGETS[target],
            path: PathBuf::from("x"),
            size,
        }
    }

    #[test]
    fn budget_holds_arm_binaries_only() {
        assert!(check_budgets(&[binary(ARM_BUDGET, 0), binary(ARM_BUDGET, 1)]).is_ok());
        let err = check_budgets(&[binary(ARM_BUDGET + 1, 1)]).unwrap_err();
        assert!(err.to_string().contains("arm64"), "{err}");
        // amd64 only feeds the install test: no budget.
        assert!(check_budgets(&[binary(10 * ARM_BUDGET, 2)]).is_ok());
    }

    #[test]
    fn every_tool_has_a_crate_and_every_timer_a_unit_name() {
        for tool in TOOLS {
            let dir = workspace_root().join(tool.package.trim_start_matches("okome-"));
            assert!(dir.join("Cargo.toml").is_file(), "{}", dir.display());
            let units = workspace_root().join("configs/systemd");
            for unit in ["timer", "service"] {
                let file = units.join(format!("{}.{unit}", tool.package));
                assert_eq!(file.is_file(), tool.has_timer(), "{}", file.display());
            }
        }
    }

    #[test]
    fn options_reject_unknown_values() {
        assert!(parse(&["--arch".into(), "mips".into()]).is_err());
        assert!(parse(&["--tool".into(), "okome-nope".into()]).is_err());
        assert!(parse(&["--frobnicate".into()]).is_err());
        let ok = parse(&["--arch".into(), "arm64".into(), "--no-lintian".into()]).unwrap();
        assert_eq!(ok.arches, ["arm64"]);
        assert!(ok.no_lintian);
    }

    #[test]
    fn test_takes_no_flag_but_arch_amd64() {
        // Refused before anything is built.
        for args in [
            &["--test", "--arch", "arm64"][..],
            &["--test", "--arch", "amd64", "--arch", "armhf"],
            &["--test", "--arch", "amd64", "--no-lintian"],
            &["--test", "--tool", "okome-prewarm"],
        ] {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let err = main(&args).unwrap_err();
            assert!(err.to_string().contains("--arch amd64"), "{args:?}: {err}");
        }
    }

    #[test]
    fn parser_tests_take_only_emulated_arches() {
        let ok = parse(&["--parser-tests".into(), "--arch".into(), "armhf".into()]).unwrap();
        assert!(ok.parser_tests);
        assert!(main(&["--parser-tests".into(), "--no-lintian".into()]).is_err());
        // amd64 has no qemu: its unit tests are the host's `cargo test`.
        let err = main(&["--parser-tests".into(), "--arch".into(), "amd64".into()]).unwrap_err();
        assert!(err.to_string().contains("natively"), "{err}");
    }
}

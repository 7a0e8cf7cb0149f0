//! The shipped systemd units, timers, sysusers/tmpfiles entries and the
//! node_exporter drop-in (configs/systemd/), for every tool of the registry
//! with a timer: `systemd-analyze verify` silent, `security` exposure at most
//! 2.5, periods and accuracy as the registry promises, sandboxed oneshots,
//! the hit-ratio unit's command writing the dashboard's textfile, and
//! node_exporter serving our textfiles for real.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use okome_lab::check::{
    TempDir, describe, read, render, run, shipped, start, text_of, tool_or_stand_in, unit_sections,
    unit_value, wait_for_port, write,
};
use okome_lab::{free_port, tool_bin};
use okome_testkit::Timer;

/// Every tool of the registry that ships a unit and a timer.
fn timed() -> impl Iterator<Item = &'static str> {
    okome_testkit::tools::timed().map(|t| t.package)
}

/// The registry's timer of `tool`.
fn timer_of(tool: &str) -> Timer {
    okome_testkit::tools::tool(tool)
        .and_then(|t| t.timer)
        .unwrap_or_else(|| panic!("{tool} has no timer in the registry"))
}

/// The four unit files in a temp dir, each service's ExecStart pointed at the
/// built binary (or /usr/bin/true): `systemd-analyze verify` fails on a
/// missing ExecStart binary, and /usr/bin is not ours to write here.
fn rendered_units() -> TempDir {
    let dir = TempDir::new("units");
    for tool in timed() {
        let service = read(&shipped(&format!("systemd/{tool}.service")));
        let exec = format!("ExecStart=/usr/bin/{tool}");
        let rendered = render(
            &service,
            &[(&exec, &format!("ExecStart={}", tool_or_stand_in(tool)))],
        );
        write(&dir.join(format!("{tool}.service")), &rendered);
        fs::copy(
            shipped(&format!("systemd/{tool}.timer")),
            dir.join(format!("{tool}.timer")),
        )
        .expect("copy timer");
    }
    dir
}

/// `systemd-analyze verify`: Ok only when it succeeds AND prints nothing (it
/// exits 0 on unknown keys and bad values, printing a warning). `--man=no`:
/// the man pages come with the .deb, not with this build machine.
fn systemd_verify(units: &[PathBuf], unit_path: Option<&Path>) -> Result<(), String> {
    let mut command = Command::new("systemd-analyze");
    command.args(["verify", "--man=no"]).args(units);
    if let Some(path) = unit_path {
        // A trailing ':' keeps the built-in search path after ours.
        command.env("SYSTEMD_UNIT_PATH", format!("{}:", path.display()));
    }
    let output = run(&mut command);
    if output.status.success() && text_of(&output).trim().is_empty() {
        Ok(())
    } else {
        Err(describe(&command, &output))
    }
}

#[test]
fn systemd_verify_is_silent_on_the_units_and_not_on_a_broken_copy() {
    let dir = rendered_units();
    let units: Vec<PathBuf> = timed()
        .flat_map(|tool| {
            [
                dir.join(format!("{tool}.service")),
                dir.join(format!("{tool}.timer")),
            ]
        })
        .collect();
    if let Err(report) = systemd_verify(&units, None) {
        panic!("systemd-analyze verify:\n{report}");
    }

    let timer = dir.join("okome-health-probe.timer");
    let text = read(&timer);
    write(&timer, &render(&text, &[("AccuracySec=", "AccuracySecc=")]));
    let report = systemd_verify(&units, None).expect_err("a typo must be reported");
    assert!(report.contains("AccuracySecc"), "{report}");

    write(&timer, &text);
    let service = dir.join("okome-prewarm.service");
    let text = read(&service);
    write(
        &service,
        &render(&text, &[("ProtectSystem=strict", "ProtectSystem=very")]),
    );
    systemd_verify(&units, None).expect_err("a bad value must be reported");
}

/// The overall exposure `systemd-analyze security --offline=yes` prints.
fn exposure(unit: &Path) -> (f64, Output, Command) {
    let mut command = Command::new("systemd-analyze");
    // --threshold is in tenths: 25 = exposure 2.5.
    command
        .args(["security", "--offline=yes", "--threshold=25", "--no-pager"])
        .arg(unit);
    let output = run(&mut command);
    let text = text_of(&output);
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", describe(&command, &output)));
    (score, output, command)
}

#[test]
fn systemd_security_exposure_is_at_most_2_5() {
    let dir = rendered_units();
    for tool in timed() {
        let (score, output, command) = exposure(&dir.join(format!("{tool}.service")));
        assert!(
            score <= 2.5 && output.status.success(),
            "{tool}: exposure {score}\n{}",
            describe(&command, &output)
        );
    }
    // The threshold can fail: an unsandboxed unit does.
    let bare = dir.join("okome-bare.service");
    write(&bare, "[Service]\nType=oneshot\nExecStart=/usr/bin/true\n");
    let (score, output, _) = exposure(&bare);
    assert!(
        score > 2.5 && !output.status.success(),
        "bare unit: {score}"
    );
}

/// A systemd time span in microseconds, parsed by systemd itself.
fn timespan_us(span: &str) -> u64 {
    let mut command = Command::new("systemd-analyze");
    command.args(["timespan", span]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    text_of(&output)
        .lines()
        .find_map(|l| l.trim().strip_prefix("μs:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no μs in {}", describe(&command, &output)))
}

/// What a periodic OKOME timer must say, as problems (empty = fine): the
/// registry's period and randomized delay (`"0"`: none), an explicit
/// accuracy, a start after boot.
fn timer_problems(timer: &str, period: &str, randomized: &str) -> Vec<String> {
    let sections = unit_sections(timer);
    let get = |key: &str| unit_value(&sections, "Timer", key);
    let mut problems = Vec::new();
    match get("OnUnitActiveSec") {
        Some(v) if timespan_us(&v) == timespan_us(period) => {}
        other => problems.push(format!("OnUnitActiveSec={other:?}, want {period}")),
    }
    if get("OnBootSec").is_none() {
        problems.push("no OnBootSec: the timer would never start after boot".into());
    }
    // GUIDE §1: the default AccuracySec=1min would swamp a 5 s period.
    match get("AccuracySec") {
        Some(v) if timespan_us(&v) * 20 <= timespan_us(period) => {}
        other => problems.push(format!(
            "AccuracySec={other:?} must be set and at most 5 % of {period}"
        )),
    }
    let delay = get("RandomizedDelaySec")
        .map(|v| timespan_us(&v))
        .unwrap_or(0);
    let want = timespan_us(randomized);
    if want > 0 && !(delay > 0 && delay < timespan_us(period)) {
        problems.push(format!("RandomizedDelaySec must be >0 and below {period}"));
    }
    if want == 0 && delay != 0 {
        problems.push("no randomised delay on this timer".into());
    }
    if delay != want {
        problems.push(format!(
            "RandomizedDelaySec is {delay} µs, the registry says {randomized}"
        ));
    }
    if unit_value(&sections, "Install", "WantedBy").as_deref() != Some("timers.target") {
        problems.push("WantedBy=timers.target".into());
    }
    problems
}

/// Whether the registry lets `tool`'s service run as root (without
/// capabilities: [`okome_testkit::tools::ROOT_WITHOUT_CAPABILITIES`]).
fn runs_as_root(tool: &str) -> bool {
    okome_testkit::tools::tool(tool).is_some_and(|t| t.service_user() == "root")
}

/// What each sandboxed OKOME service must say, as problems (empty = fine).
fn service_problems(tool: &str, service: &str, period: &str) -> Vec<String> {
    let sections = unit_sections(service);
    let get = |key: &str| unit_value(&sections, "Service", key);
    let mut problems = Vec::new();
    let mut want = |key: &str, value: &str| {
        if get(key).as_deref() != Some(value) {
            problems.push(format!("{key}={:?}, want {value}", get(key)));
        }
    };
    want("Type", "oneshot");
    want("EnvironmentFile", &format!("-/etc/default/{tool}"));
    want("ProtectSystem", "strict");
    // `-`: a missing /run/okome does not keep the unit from starting (the
    // tool then says what it could not write).
    if !runs_as_root(tool) {
        want("ReadWritePaths", "-/run/okome");
    }
    want("NoNewPrivileges", "yes");
    // /run/okome belongs to the tmpfiles entry (okome:okome; metrics 0775).
    // A unit's RuntimeDirectory= is chowned (recursively) to the unit's user
    // and chmodded on every start: a root unit hands the shared tree to root,
    // and an okome unit's mode would take the group's write bit back.
    for key in [
        "RuntimeDirectory",
        "RuntimeDirectoryMode",
        "RuntimeDirectoryPreserve",
    ] {
        if let Some(value) = get(key) {
            problems.push(format!(
                "{key}={value:?}: /run/okome is okome.tmpfiles.conf's, no unit's"
            ));
        }
    }
    if runs_as_root(tool) {
        // Root without capabilities may write only the textfile directory
        // (group okome, 0775), plus what `nginx -t` reopens.
        let writable = get("ReadWritePaths").unwrap_or_default();
        let extra: Vec<&str> = writable
            .split_whitespace()
            .filter(|p| {
                *p != "-/run/okome/metrics"
                    && !p.starts_with("-/var/log/nginx")
                    && !p.starts_with("-/var/lib/nginx")
            })
            .collect();
        if !writable
            .split_whitespace()
            .any(|p| p == "-/run/okome/metrics")
            || !extra.is_empty()
        {
            problems.push(format!(
                "ReadWritePaths={writable:?}, want -/run/okome/metrics (and nginx's log and state)"
            ));
        }
        let groups = get("SupplementaryGroups").unwrap_or_default();
        if !groups.split_whitespace().any(|g| g == "okome") {
            problems.push(format!(
                "SupplementaryGroups={groups:?}: root without capabilities writes \
                 /run/okome/metrics (okome:okome 0775) only as group okome"
            ));
        }
    }
    let exec = get("ExecStart").unwrap_or_default();
    if exec.split_whitespace().next() != Some(format!("/usr/bin/{tool}").as_str()) {
        problems.push(format!("ExecStart={exec:?} must run /usr/bin/{tool}"));
    }
    match get("User").as_deref() {
        None | Some("root") | Some("0") if runs_as_root(tool) => {
            if get("CapabilityBoundingSet").as_deref() != Some("") {
                problems.push("runs as root, so CapabilityBoundingSet= must be empty".into());
            }
        }
        None | Some("root") | Some("0") => {
            problems.push("must run as an unprivileged user".into());
        }
        Some(_) => {}
    }
    match get("TimeoutStartSec") {
        Some(v) if timespan_us(&v) < timespan_us(period) => {}
        other => problems.push(format!("TimeoutStartSec={other:?} must be below {period}")),
    }
    problems
}

#[test]
fn timers_fire_on_their_periods_with_explicit_accuracy() {
    for tool in timed() {
        let timer = timer_of(tool);
        let text = read(&shipped(&format!("systemd/{tool}.timer")));
        assert_eq!(
            timer_problems(&text, timer.period, timer.randomized_delay),
            Vec::<String>::new(),
            "{tool}"
        );
    }
    let probe_timer = read(&shipped("systemd/okome-health-probe.timer"));
    assert!(
        probe_timer.contains("SEED CORRECTION"),
        "GUIDE §1's AccuracySec note stays visible"
    );

    // The checks can fail: the seed's timer (no AccuracySec), a wrong period,
    // a jittered health probe.
    let no_accuracy: String = probe_timer
        .lines()
        .filter(|l| !l.starts_with("AccuracySec="))
        .map(|l| format!("{l}\n"))
        .collect();
    let problems = timer_problems(&no_accuracy, "5s", "0");
    assert!(
        problems.iter().any(|p| p.contains("AccuracySec")),
        "{problems:?}"
    );
    let slow = render(
        &probe_timer,
        &[("OnUnitActiveSec=5s", "OnUnitActiveSec=1min")],
    );
    assert!(!timer_problems(&slow, "5s", "0").is_empty());
    let jittered = render(
        &probe_timer,
        &[("RandomizedDelaySec=0", "RandomizedDelaySec=3s")],
    );
    assert!(!timer_problems(&jittered, "5s", "0").is_empty());
    // ...and a timer that drifted from the registry's randomized delay.
    let prewarm_timer = read(&shipped("systemd/okome-prewarm.timer"));
    let drifted = render(
        &prewarm_timer,
        &[("RandomizedDelaySec=20s", "RandomizedDelaySec=30s")],
    );
    let problems = timer_problems(&drifted, "2min", "20s");
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn services_are_sandboxed_oneshots_with_state_kept_in_run() {
    for tool in timed() {
        let text = read(&shipped(&format!("systemd/{tool}.service")));
        assert_eq!(
            service_problems(tool, &text, timer_of(tool).period),
            Vec::<String>::new(),
            "{tool}"
        );
    }
    for background in ["okome-prewarm", "okome-hit-ratio"] {
        let unit = unit_sections(&read(&shipped(&format!("systemd/{background}.service"))));
        assert_eq!(
            unit_value(&unit, "Service", "IOSchedulingClass").as_deref(),
            Some("idle"),
            "{background}"
        );
    }

    // The checks can fail.
    let text = read(&shipped("systemd/okome-health-probe.service"));
    let loose = render(
        &text,
        &[
            ("TimeoutStartSec=4s", "TimeoutStartSec=30s"),
            (
                "UMask=0022",
                "UMask=0022\nRuntimeDirectory=okome okome/metrics",
            ),
            (
                "ReadWritePaths=-/run/okome",
                "ReadWritePaths=-/run/okome /var",
            ),
        ],
    );
    let problems = service_problems("okome-health-probe", &loose, "5s");
    assert_eq!(problems.len(), 3, "{problems:?}");
    // Root is refused unless stated, and a stated root keeps no capability.
    let as_root = render(&text, &[("User=okome", "User=root")]);
    let problems = service_problems("okome-health-probe", &as_root, "5s");
    assert_eq!(
        problems,
        ["must run as an unprivileged user"],
        "{problems:?}"
    );
    let validate = read(&shipped("systemd/okome-validate.service"));
    // The defect a booted frontend showed: root's RuntimeDirectory= took
    // /run/okome from the okome user on every validate run.
    let runtime_dir = render(
        &validate,
        &[(
            "UMask=0022",
            "RuntimeDirectory=okome okome/metrics\nRuntimeDirectoryPreserve=yes\nUMask=0022",
        )],
    );
    let problems = service_problems("okome-validate", &runtime_dir, "5min");
    assert_eq!(problems.len(), 2, "{problems:?}");
    let no_group = render(&validate, &[("SupplementaryGroups=okome\n", "")]);
    let problems = service_problems("okome-validate", &no_group, "5min");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let powerful = render(
        &validate,
        &[(
            "CapabilityBoundingSet=\n",
            "CapabilityBoundingSet=CAP_NET_ADMIN\n",
        )],
    );
    let problems = service_problems("okome-validate", &powerful, "5min");
    assert_eq!(
        problems,
        ["runs as root, so CapabilityBoundingSet= must be empty"],
        "{problems:?}"
    );
}

/// One `okome`-format access-log line (docs/design.md) at `time_local`.
fn okome_log_line(time_local: &str, path: &str, cache: &str, warm: &str) -> String {
    format!(
        "127.0.0.1 - - [{time_local}] \"GET {path} HTTP/1.1\" 200 100 \"-\" \"Mozilla/5.0\" \
         cache={cache} rt=0.001 urt=\"0.001\" rid=r canary=control warm={warm}\n"
    )
}

/// The hit-ratio unit's ExecStart run for real (systemd is not PID 1 here,
/// so not through systemd) with only its two paths remapped: the flags are
/// accepted and the textfile carries the dashboard's hit ratio.
#[test]
fn hit_ratio_unit_command_writes_the_dashboard_textfile() {
    let unit = unit_sections(&read(&shipped("systemd/okome-hit-ratio.service")));
    let exec = unit_value(&unit, "Service", "ExecStart").expect("ExecStart");
    let dir = TempDir::new("hit-ratio");
    let log = dir.join("okome_access.log");
    let prom = dir.join("okome-hit-ratio.prom");
    let run_unit_command = || {
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/okome-hit-ratio"));
        let args: Vec<String> = words
            .map(|w| match w {
                "/run/okome/metrics/okome-hit-ratio.prom" => prom.display().to_string(),
                "/var/log/nginx/okome_access.log" => log.display().to_string(),
                w => w.to_string(),
            })
            .collect();
        assert!(args.contains(&prom.display().to_string()), "{exec}");
        assert!(args.contains(&log.display().to_string()), "{exec}");
        let mut command = Command::new(tool_bin("okome-hit-ratio"));
        command.args(&args);
        let output = run(&mut command);
        (command, output)
    };

    // A quiet night: no request in the window. Still a success, and a
    // textfile without a ratio (nothing to divide by), not a stale one.
    write(&log, "");
    let (command, output) = run_unit_command();
    assert!(output.status.success(), "{}", describe(&command, &output));
    let quiet = read(&prom);
    assert!(
        quiet.contains("okome_hit_ratio_lines")
            && !quiet.contains("okome_hit_ratio_request_hit_ratio "),
        "{quiet}"
    );

    // Three hits, one miss, and one prewarm request that must not count.
    let mut date = Command::new("date");
    date.args(["-u", "+%d/%b/%Y:%H:%M:%S +0000"]);
    let now = text_of(&run(&mut date)).trim().to_string();
    let mut text = String::new();
    for (path, cache, warm) in [
        ("/assets/a.js", "HIT", "-"),
        ("/assets/b.js", "HIT", "-"),
        ("/", "HIT", "-"),
        ("/ui-schema/x", "MISS", "-"),
        ("/ui-schema/y", "MISS", "1"),
    ] {
        text.push_str(&okome_log_line(&now, path, cache, warm));
    }
    write(&log, &text);
    let (command, output) = run_unit_command();
    assert!(output.status.success(), "{}", describe(&command, &output));
    let metrics = read(&prom);
    let ratio: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("okome_hit_ratio_request_hit_ratio "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request hit ratio in:\n{metrics}"));
    assert!((ratio - 0.75).abs() < 1e-9, "ratio {ratio}\n{metrics}");
    // What the timer writes is in the one list of emitted names.
    okome_testkit::metrics::assert_documented(&metrics);
}

/// A temp root with our sysusers.d and tmpfiles.d entries installed where
/// systemd looks, after running systemd-sysusers and systemd-tmpfiles on it
/// as the .deb would at install time and at boot.
fn sysusers_and_tmpfiles_root(tmpfiles: &str) -> (TempDir, Output, Command) {
    let root = TempDir::new("sysroot");
    for (dir, text) in [
        (
            "usr/lib/sysusers.d",
            read(&shipped("systemd/okome.sysusers.conf")),
        ),
        ("usr/lib/tmpfiles.d", tmpfiles.to_string()),
    ] {
        fs::create_dir_all(root.join(dir)).expect("mkdir");
        write(&root.join(dir).join("okome.conf"), &text);
    }
    fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    let mut command = Command::new("systemd-sysusers");
    command.arg(format!("--root={}", root.path().display()));
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    let mut command = Command::new("systemd-tmpfiles");
    command
        .arg(format!("--root={}", root.path().display()))
        .arg("--create");
    let output = run(&mut command);
    (root, output, command)
}

#[test]
fn sysusers_and_tmpfiles_create_the_okome_user_and_run_okome() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmpfiles = read(&shipped("systemd/okome.tmpfiles.conf"));
    let (root, output, command) = sysusers_and_tmpfiles_root(&tmpfiles);
    assert!(
        output.status.success() && text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
    let passwd = read(&root.join("etc/passwd"));
    let okome = passwd
        .lines()
        .find(|l| l.starts_with("okome:"))
        .unwrap_or_else(|| panic!("no okome user in {passwd}"));
    let fields: Vec<&str> = okome.split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system user: {okome}");
    assert!(fields[6].ends_with("nologin"), "no login shell: {okome}");
    let gid: u32 = fields[3].parse().expect("gid");
    // The metrics directory is group-writable: okome-validate (root without
    // capabilities, SupplementaryGroups=okome) writes its textfile there.
    for (dir, mode) in [("run/okome", 0o755), ("run/okome/metrics", 0o775)] {
        let meta = fs::metadata(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.uid(), uid, "{dir} owned by okome");
        assert_eq!(meta.gid(), gid, "{dir} group okome");
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{dir}");
    }
    // The units run as that user (but the stated root exceptions).
    for tool in timed().filter(|tool| !runs_as_root(tool)) {
        let unit = unit_sections(&read(&shipped(&format!("systemd/{tool}.service"))));
        assert_eq!(
            unit_value(&unit, "Service", "User").as_deref(),
            Some("okome"),
            "{tool}"
        );
    }

    // The check can fail: an unknown owner is refused by systemd-tmpfiles.
    let broken = render(
        &tmpfiles,
        &[("0755 okome okome", "0755 okome-nosuch okome")],
    );
    let (_root, output, command) = sysusers_and_tmpfiles_root(&broken);
    assert!(
        !output.status.success() || !text_of(&output).trim().is_empty(),
        "{}",
        describe(&command, &output)
    );
}

/// Whether `cargo_toml` enables okome-common's `metrics` feature: the tool
/// writes a textfile under /run/okome/metrics.
fn writes_textfiles(cargo_toml: &str) -> bool {
    cargo_toml
        .lines()
        .any(|l| l.starts_with("okome-common") && l.contains("\"metrics\""))
}

/// The sysusers/tmpfiles asset lines a tool package must carry (named after
/// the package: the shared postinst runs `systemd-sysusers "$pkg.conf"` and
/// `systemd-tmpfiles --create "$pkg.conf"`).
fn missing_run_okome_assets(package: &str, cargo_toml: &str) -> Vec<String> {
    [
        format!(
            "[\"../configs/systemd/okome.sysusers.conf\", \"usr/lib/sysusers.d/{package}.conf\", \"644\"]"
        ),
        format!(
            "[\"../configs/systemd/okome.tmpfiles.conf\", \"usr/lib/tmpfiles.d/{package}.conf\", \"644\"]"
        ),
    ]
    .into_iter()
    .filter(|asset| !cargo_toml.contains(asset.as_str()))
    .collect()
}

/// Every package whose tool writes under /run/okome ships the entries that
/// make it (and the okome user) at install and at boot, so a node with only
/// some of them (a backend: okome-validate and okome-chaos) has the
/// directory too. The backend's okome-chaos once logged "metrics not
/// written: /run/okome/metrics".
#[test]
fn every_package_writing_run_okome_ships_sysusers_and_tmpfiles() {
    let mut writers = Vec::new();
    for tool in okome_testkit::tools::TOOLS {
        let manifest = okome_testkit::workspace_root()
            .join(tool.dir())
            .join("Cargo.toml");
        let text = read(&manifest);
        if !writes_textfiles(&text) {
            continue;
        }
        writers.push(tool.package);
        assert_eq!(
            missing_run_okome_assets(tool.package, &text),
            Vec::<String>::new(),
            "{}",
            manifest.display()
        );
    }
    for expected in ["okome-health-probe", "okome-validate", "okome-chaos"] {
        assert!(writers.contains(&expected), "{writers:?}");
    }
    // The check can fail: okome-chaos's manifest without the tmpfiles entry.
    let chaos = read(&okome_testkit::workspace_root().join("chaos/Cargo.toml"));
    let without: String = chaos
        .lines()
        .filter(|l| !l.contains("okome.tmpfiles.conf"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(missing_run_okome_assets("okome-chaos", &without).len(), 1);
}

/// Debian's node_exporter unit plus our drop-in, in a unit search path of our own.
fn node_exporter_units() -> TempDir {
    let dir = TempDir::new("node-exporter");
    fs::copy(
        "/lib/systemd/system/prometheus-node-exporter.service",
        dir.join("prometheus-node-exporter.service"),
    )
    .expect("Debian's prometheus-node-exporter.service (package prometheus-node-exporter)");
    let drop_in_dir = dir.join("prometheus-node-exporter.service.d");
    fs::create_dir_all(&drop_in_dir).expect("mkdir drop-in dir");
    fs::copy(
        shipped("systemd/prometheus-node-exporter.service.d/okome.conf"),
        drop_in_dir.join("okome.conf"),
    )
    .expect("copy drop-in");
    dir
}

#[test]
fn node_exporter_drop_in_verifies_and_serves_our_textfiles_from_run() {
    let units = node_exporter_units();
    if let Err(report) = systemd_verify(
        &[units.join("prometheus-node-exporter.service")],
        Some(units.path()),
    ) {
        panic!("node_exporter with the drop-in:\n{report}");
    }

    // Start node_exporter exactly as the drop-in's ExecStart says, on a free
    // loopback port, with the textfile directory remapped to a temp dir.
    let drop_in = read(&shipped(
        "systemd/prometheus-node-exporter.service.d/okome.conf",
    ));
    let sections = unit_sections(&drop_in);
    let execs = sections
        .get("Service")
        .and_then(|s| s.get("ExecStart"))
        .expect("ExecStart in the drop-in");
    assert_eq!(
        execs.first().map(String::as_str),
        Some(""),
        "the drop-in must reset ExecStart"
    );
    let exec = execs.last().expect("a new ExecStart");
    assert!(exec.contains("--collector.textfile.directory=/run/okome/metrics"));

    let metrics = TempDir::new("metrics");
    write(
        &metrics.join("okome-health-probe.prom"),
        "# HELP okome_upstream_up test\n# TYPE okome_upstream_up gauge\nokome_upstream_up 1\n",
    );
    let port = free_port();
    let mut words = exec.split_whitespace();
    let program = words.next().expect("a program");
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let args: Vec<String> = words
        .map(|w| match w {
            "$ARGS" => listen.clone(),
            w => w.replace("/run/okome/metrics", &metrics.path().display().to_string()),
        })
        .collect();
    assert!(args.contains(&listen), "ExecStart keeps $ARGS: {exec}");
    let mut guard = start(
        "prometheus-node-exporter",
        Command::new(program).args(&args),
        &metrics.join("node-exporter.log"),
    );
    wait_for_port(port, &mut guard);
    let body = http_get(port, "/metrics");
    assert!(
        body.lines().any(|l| l == "okome_upstream_up 1"),
        "node_exporter does not serve the textfile metric"
    );
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "textfile collector reported an error"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

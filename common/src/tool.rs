//! One start-up for every OKOME tool, so each `main.rs` is a few lines and
//! the next tool copies the shape instead of inventing its own.
//!
//! [`main`] does, in this order and nowhere else:
//!
//! 1. **Environment**, before any thread exists: old variable names still
//!    honoured ([`Spec::env_aliases`]), then `/etc/default/okome-<tool>`
//!    (under `OKOME_ROOT`, systemd `EnvironmentFile=` rules, only
//!    `OKOME_*` keys, never over what the environment already says). This is
//!    the one place the process environment is written ([`prepare_env`] is
//!    `unsafe` for that reason).
//! 2. **Flags** with clap's `try_get_matches_from`: `--help`/`--version`
//!    print and exit 0, a usage error prints clap's message and exits 2;
//!    clap never calls `exit` itself.
//! 3. **Logging** to stderr at [`DEFAULT_LOG_LEVEL`] (`info`) unless
//!    `OKOME_LOG` says otherwise. Under journald each line carries its
//!    `<N>` priority.
//! 4. **Run** the tool's closure, and print any error once through
//!    [`report`]: `okome-<tool>: error: …`, with the `<3>` priority prefix
//!    under journald, exit status from the error's [`ExitStatus`] (which
//!    every tool error implements, on top of `std::error::Error`).

use std::ffi::OsString;
use std::process::ExitCode;

use crate::exit::{self, ExitStatus};

/// The log level when `OKOME_LOG` is unset: `info`, for every tool. Timer
/// runs stay quiet in steady state because the tools log at info only what
/// changed or what was asked for (a gate transition, a skipped run, a
/// `--verbose` sample); per-step chatter is `debug`.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// What the start-up needs to know about a tool.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The binary's name, `okome-<tool>`; also the prefix of every error.
    pub name: &'static str,
    /// `OKOME_<TOOL>_`: the prefix of the tool's own variables (documented;
    /// what [`Spec::env_aliases`] maps old names onto).
    pub env_prefix: &'static str,
    /// `(old, new)` variable names: an old name, set in the environment or
    /// in the defaults file, is taken as the new one unless that is set too,
    /// so installed `/etc/default` files keep working after a rename.
    pub env_aliases: &'static [(&'static str, &'static str)],
    /// A flag with which an unreadable defaults file is not an error (the
    /// file may be private: keepalived runs `okome-health-probe
    /// --check-local` as `nobody`, and a check must not fail over it).
    pub lenient_defaults_flag: Option<&'static str>,
}

impl Spec {
    /// The tool's short name, as in `/etc/default/okome-<tool>`.
    pub fn short_name(&self) -> &'static str {
        self.name.strip_prefix("okome-").unwrap_or(self.name)
    }
}

/// A configuration error of the start-up itself (the defaults file).
#[derive(Debug)]
struct StartupError(crate::defaults::Error);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StartupError {}

impl ExitStatus for StartupError {
    fn exit_status(&self) -> u8 {
        exit::USAGE
    }
}

/// What to set in the environment, given `aliases`, what the environment
/// holds (`current`) and the defaults file's settings in file order: pure,
/// so the precedence is table-tested. An old name (environment or file)
/// stands for the new one; the environment beats the file; in the file a
/// new name beats an old one; nothing already set is overwritten.
pub fn env_plan(
    aliases: &[(&str, &str)],
    current: impl Fn(&str) -> Option<OsString>,
    file: Vec<(String, String)>,
) -> Vec<(String, OsString)> {
    let mut plan: Vec<(String, OsString)> = Vec::new();
    for (old, new) in aliases {
        if current(new).is_none()
            && let Some(value) = current(old)
        {
            plan.push((new.to_string(), value));
        }
    }
    let mut from_file: Vec<(String, String)> = Vec::new();
    for (key, value) in file {
        let (key, is_new_name) = match aliases.iter().find(|(old, _)| *old == key) {
            Some((_, new)) => (new.to_string(), false),
            None => (key, true),
        };
        match from_file.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) if is_new_name => slot.1 = value,
            Some(_) => {}
            None => from_file.push((key, value)),
        }
    }
    for (key, value) in from_file {
        if current(&key).is_none() && !plan.iter().any(|(k, _)| *k == key) {
            plan.push((key, value.into()));
        }
    }
    plan
}

/// Apply `spec`'s aliases and load its defaults file into the environment
/// ([`env_plan`] decides what; this only reads the file and writes).
///
/// # Safety
///
/// Writes the process environment (`std::env::set_var`), which is only
/// sound while no other thread can read or write it: call it first thing
/// in `main`, before any thread is spawned (no logger thread, no resolver
/// thread yet). [`main`] is its one caller.
pub unsafe fn prepare_env(spec: &Spec, args: &[OsString]) -> Result<(), crate::defaults::Error> {
    let file = match crate::defaults::load(spec.short_name()) {
        Ok(settings) => settings,
        Err(_)
            if spec
                .lenient_defaults_flag
                .is_some_and(|flag| args.iter().any(|arg| arg == flag)) =>
        {
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    for (key, value) in env_plan(spec.env_aliases, |key| std::env::var_os(key), file) {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var(key, value) };
    }
    Ok(())
}

/// The whole life of a tool: environment, flags, logging, run, report (see
/// the module doc). `run` gets the parsed flags and returns the exit
/// status of a completed run, or the error that stopped it. `command` is
/// called only after the environment is prepared: clap reads each `env`
/// variable when the argument is built, not when it parses.
pub fn main<E: ExitStatus>(
    spec: &Spec,
    command: impl FnOnce() -> clap::Command,
    run: impl FnOnce(&clap::ArgMatches) -> Result<u8, E>,
) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // SAFETY: nothing has spawned a thread yet; this is the first thing
    // the process does after collecting its arguments.
    if let Err(error) = unsafe { prepare_env(spec, &args) } {
        return report(spec.name, &StartupError(error));
    }
    let matches = match command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(error) => return ExitCode::from(clap_exit(&error)),
    };
    crate::logging::init(spec.name, DEFAULT_LOG_LEVEL);
    match run(&matches) {
        Ok(status) => ExitCode::from(status),
        Err(error) => report(spec.name, &error),
    }
}

/// Print clap's own message (help and version on stdout, a usage error on
/// stderr) and say how to exit: 0 after help or version, 2 after a usage
/// error.
pub fn clap_exit(error: &clap::Error) -> u8 {
    let _ = error.print();
    if error.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    }
}

pub use crate::exit::report;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_match_the_defaults_files() {
        let spec = Spec {
            name: "okome-health-probe",
            env_prefix: "OKOME_HEALTH_PROBE_",
            env_aliases: &[],
            lenient_defaults_flag: None,
        };
        assert_eq!(spec.short_name(), "health-probe");
    }

    #[test]
    fn the_environment_beats_the_file_and_old_names_stand_for_new_ones() {
        let aliases = [("OKOME_WARM_X", "OKOME_PREWARM_X")];
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let plan = |env: &[(&str, &str)], file: &[(&str, &str)]| -> Vec<(String, String)> {
            let env = pairs(env);
            let lookup = |key: &str| {
                env.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| OsString::from(v))
            };
            env_plan(&aliases, lookup, pairs(file))
                .into_iter()
                .map(|(k, v)| (k, v.into_string().unwrap()))
                .collect()
        };
        type Pairs = &'static [(&'static str, &'static str)];
        let table: [(Pairs, Pairs, Pairs); 7] = [
            // The file fills what the environment leaves unset.
            (&[], &[("OKOME_A", "1")], &[("OKOME_A", "1")]),
            (&[("OKOME_A", "env")], &[("OKOME_A", "file")], &[]),
            // An old name in the environment is taken as the new one...
            (
                &[("OKOME_WARM_X", "old")],
                &[],
                &[("OKOME_PREWARM_X", "old")],
            ),
            // ...unless the new one is set, and it beats the file either way.
            (
                &[("OKOME_WARM_X", "old"), ("OKOME_PREWARM_X", "new")],
                &[],
                &[],
            ),
            (
                &[("OKOME_WARM_X", "env")],
                &[("OKOME_PREWARM_X", "file")],
                &[("OKOME_PREWARM_X", "env")],
            ),
            // An old name in an installed file still configures the tool...
            (
                &[],
                &[("OKOME_WARM_X", "file")],
                &[("OKOME_PREWARM_X", "file")],
            ),
            // ...and where the file has both, the new name wins.
            (
                &[],
                &[("OKOME_PREWARM_X", "new"), ("OKOME_WARM_X", "old")],
                &[("OKOME_PREWARM_X", "new")],
            ),
        ];
        for (env, file, wanted) in table {
            assert_eq!(plan(env, file), pairs(wanted), "env {env:?} file {file:?}");
        }
    }

    #[test]
    fn help_and_version_exit_zero_and_a_usage_error_two() {
        let command = || {
            clap::Command::new("okome-x").version("1").arg(
                clap::Arg::new("n")
                    .long("n")
                    .value_parser(clap::value_parser!(u8)),
            )
        };
        let status = |args: &[&str]| clap_exit(&command().try_get_matches_from(args).unwrap_err());
        assert_eq!(status(&["okome-x", "--help"]), exit::OK);
        assert_eq!(status(&["okome-x", "--version"]), exit::OK);
        assert_eq!(status(&["okome-x", "--n", "x"]), exit::USAGE);
        assert_eq!(status(&["okome-x", "--nope"]), exit::USAGE);
    }
}

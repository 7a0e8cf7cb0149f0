//! Every registered tool's `/etc/default/<tool>` (configs/default/) lists
//! exactly the variables the tool accepts — in its `--help` and in each
//! subcommand's `--help` (okome-golden-image keeps its settings on `create`
//! and `verify`) — each shown at the tool's built-in default; and every
//! `--help` fits 80 columns.
//!
//! The variables are read from the real binaries' help, run isolated (no
//! `OKOME_*` of the caller, which clap would print as the value).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use okome_lab::check::{describe, read, render, run, shipped, text_of};
use okome_lab::tool_bin;
use okome_testkit::TOOLS;

/// Variables that every tool reads outside clap (docs/design.md: logging and
/// the root prefix), so they need not appear in a tool's --help.
const GLOBAL_VARIABLES: &[&str] = &["OKOME_LOG", "OKOME_ROOT"];

/// `tool [subcommand] --help`, run isolated; panics unless it succeeds.
fn help(tool: &str, subcommand: Option<&str>) -> String {
    let root = tempfile::tempdir().expect("temp root");
    let mut command = Command::new(tool_bin(tool));
    okome_testkit::tool::isolate(&mut command, root.path());
    command.args(subcommand).arg("--help");
    let output = run(&mut command);
    assert!(output.status.success(), "{}", describe(&command, &output));
    text_of(&output)
}

/// The subcommands a `--help` lists under `Commands:` (not `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A command's line is indented by two; its wrapped text by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The tool's help and that of each of its subcommands.
fn every_help(tool: &str) -> Vec<String> {
    let top = help(tool, None);
    let mut helps: Vec<String> = subcommands(&top)
        .iter()
        .map(|sub| help(tool, Some(sub)))
        .collect();
    helps.insert(0, top);
    helps
}

/// Each option's entry of a help text (from its `-x`/`--x` line to the
/// next), its lines joined: clap wraps `[env: NAME=]` and `[default: …]`
/// anywhere, on the option's line or below it.
fn option_entries(help: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('-') {
            entries.push(String::new());
        }
        if let Some(entry) = entries.last_mut() {
            entry.push(' ');
            entry.push_str(trimmed);
        }
    }
    entries
}

/// The variable of an `[env: NAME=…]` marker in `entry`, if any.
fn env_name(entry: &str) -> Option<String> {
    let rest = &entry[entry.find("[env: ")? + "[env: ".len()..];
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    name.starts_with("OKOME_").then_some(name)
}

/// The environment variables clap accepts, from the `[env: NAME=…]` markers
/// it prints in `--help` (prose that merely mentions a variable is ignored).
fn clap_env_variables(helps: &[String]) -> BTreeSet<String> {
    helps
        .iter()
        .flat_map(|help| option_entries(help))
        .filter_map(|entry| env_name(&entry))
        .collect()
}

/// clap's `[default: …]` per environment variable, from `--help`.
fn clap_env_defaults(helps: &[String]) -> BTreeMap<String, String> {
    let mut defaults = BTreeMap::new();
    for entry in helps.iter().flat_map(|help| option_entries(help)) {
        let Some(name) = env_name(&entry) else {
            continue;
        };
        // clap prints its `[default: …]` after the `[env: …]` marker; a
        // `[default: …]` before it is the option's own prose.
        let after_env = &entry[entry.find("[env: ").unwrap_or(0)..];
        if let Some(start) = after_env.find("[default: ") {
            let rest = &after_env[start + "[default: ".len()..];
            let value = &rest[..rest.find(']').unwrap_or(rest.len())];
            defaults.insert(name, unquote(value).to_string());
        }
    }
    defaults
}

/// Names of the settings a defaults file assigns, commented out or not.
fn defaults_assignments(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| {
            k.starts_with("OKOME_")
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// `NAME=value` of every (commented or not) assignment in a defaults file.
fn defaults_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("OKOME_"))
        .map(|(k, v)| (k.trim().to_string(), unquote(v).to_string()))
        .collect()
}

/// Differences between a defaults file and the variables a tool's clap
/// commands accept, both ways (empty = in sync).
fn defaults_problems(tool: &str, defaults: &str, helps: &[String]) -> Vec<String> {
    let assigned = defaults_assignments(defaults);
    let accepted = clap_env_variables(helps);
    let mut problems = Vec::new();
    if assigned.is_empty() || accepted.is_empty() {
        problems.push(format!(
            "{tool}: no settings found ({assigned:?} / {accepted:?})"
        ));
    }
    for name in &assigned {
        if !accepted.contains(name) && !GLOBAL_VARIABLES.contains(&name.as_str()) {
            problems.push(format!(
                "{tool}: the defaults file sets {name}, which no `{tool} [COMMAND] --help` accepts"
            ));
        }
    }
    // The values shown are the built-in defaults: they must match the tool's.
    let shown = defaults_values(defaults);
    for (name, default) in clap_env_defaults(helps) {
        if let Some(value) = shown.get(&name)
            && *value != default
        {
            problems.push(format!(
                "{tool}: the defaults file shows {name}={value:?}, the tool's default is {default:?}"
            ));
        }
    }
    for name in &accepted {
        if !assigned.contains(name) {
            problems.push(format!(
                "{tool}: --help accepts {name}, missing from configs/default/{tool}"
            ));
        }
    }
    problems
}

#[test]
fn every_tools_help_fits_80_columns_however_wide_the_terminal() {
    for tool in TOOLS.iter().map(|t| t.package) {
        for flag in ["-h", "--help"] {
            let mut command = Command::new(tool_bin(tool));
            command.env("COLUMNS", "200").arg(flag);
            let output = run(&mut command);
            assert!(output.status.success(), "{}", describe(&command, &output));
            let help = text_of(&output);
            let wide: Vec<&str> = help
                .lines()
                .filter(|line| line.chars().count() > 80)
                .collect();
            assert_eq!(wide, Vec::<&str>::new(), "{tool} {flag}");
        }
    }
}

#[test]
fn subcommand_settings_are_found_wherever_clap_wraps_them() {
    // The shapes clap prints: the long form (markers on lines of their own)
    // and the compact form, wrapped mid-marker.
    let long = "Options:\n      --url <URL>\n          The URL [default: not this]\n\n          [env: OKOME_A_URL=]\n          \
                [default: http://x]\n\n  -v\n          Louder\n";
    let compact = "Commands:\n  create  Make\n          more text\n  verify  Check\n  help  Print\n\n\
                   Options:\n      --configs <DIR>  Dir [env:\n                       OKOME_B_CONFIGS=] [default:\n                       \
                   /usr/share/b]\n      --level <N>  zstd [env: OKOME_B_LEVEL=]\n";
    assert_eq!(subcommands(compact), ["create", "verify"]);
    let helps = [long.to_string(), compact.to_string()];
    assert_eq!(
        clap_env_variables(&helps),
        BTreeSet::from(["OKOME_A_URL", "OKOME_B_CONFIGS", "OKOME_B_LEVEL"].map(String::from))
    );
    assert_eq!(
        clap_env_defaults(&helps),
        BTreeMap::from([
            ("OKOME_A_URL".to_string(), "http://x".to_string()),
            ("OKOME_B_CONFIGS".to_string(), "/usr/share/b".to_string()),
        ])
    );
}

#[test]
fn defaults_files_list_exactly_the_variables_each_tool_accepts() {
    for tool in TOOLS.iter().map(|t| t.package) {
        let text = read(&shipped(&format!("default/{tool}")));
        let helps = every_help(tool);
        assert_eq!(defaults_problems(tool, &text, &helps), Vec::<String>::new());

        // The check can fail both ways: a setting the tool does not know, and
        // one the file forgot.
        let typo = format!("{text}#OKOME_NOT_A_SETTING=1\n");
        assert_eq!(defaults_problems(tool, &typo, &helps).len(), 1);
        let first = defaults_assignments(&text)
            .into_iter()
            .find(|name| !GLOBAL_VARIABLES.contains(&name.as_str()))
            .expect("a tool setting");
        let forgot: String = text
            .lines()
            .filter(|l| !l.contains(&format!("{first}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(defaults_problems(tool, &forgot, &helps).len(), 1, "{first}");
        // ...and on a shown default that is not the tool's.
        let (name, default) = clap_env_defaults(&helps)
            .into_iter()
            .next()
            .expect("a documented default");
        let stale = render(
            &text,
            &[(&format!("{name}={default}"), &format!("{name}={default}0"))],
        );
        assert_eq!(defaults_problems(tool, &stale, &helps).len(), 1, "{name}");
    }
}

/// The known gap this file closes: okome-golden-image's settings live on
/// its subcommands, so its top-level `--help` alone accepts none of them.
#[test]
fn golden_image_settings_are_read_from_its_subcommands() {
    let tool = "okome-golden-image";
    let helps = every_help(tool);
    assert!(helps.len() > 1, "no subcommand found in\n{}", helps[0]);
    assert!(
        clap_env_variables(&helps[..1]).is_empty(),
        "top-level help has settings now: the subcommand reading is moot"
    );
    let accepted = clap_env_variables(&helps);
    for name in ["OKOME_GOLDEN_IMAGE_CONFIGS", "OKOME_GOLDEN_IMAGE_LEVEL"] {
        assert!(accepted.contains(name), "{name} not found in {accepted:?}");
    }
}

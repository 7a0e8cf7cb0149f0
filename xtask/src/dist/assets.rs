//! Man pages and bash/zsh/fish completions, generated from each tool's
//! `pub fn command() -> clap::Command`, so `--help`, the man page and the
//! completions can never disagree. Written under `target/dist/generated/
//! <package>/`, where the tools' `[package.metadata.deb]` assets pick them up.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

use super::{Tool, out_dir};
use crate::Result;

/// The clap definition of a shipped tool. Every entry of `TOOLS` must have
/// one (a test holds that).
pub fn command_of(package: &str) -> Option<clap::Command> {
    match package {
        "okome-hit-ratio" => Some(okome_hit_ratio::command()),
        "okome-health-probe" => Some(okome_health_probe::command()),
        "okome-prewarm" => Some(okome_prewarm::command()),
        "okome-golden-image" => Some(okome_golden_image::command()),
        "okome-validate" => Some(okome_validate::command()),
        "okome-chaos" => Some(okome_chaos::command()),
        _ => None,
    }
}

/// The directory holding `package`'s generated files.
pub fn generated_dir(package: &str) -> PathBuf {
    out_dir().join("generated").join(package)
}

/// Generate every tool's man page and completions.
pub fn generate(tools: &[Tool]) -> Result {
    for tool in tools {
        let command = command_of(tool.package).ok_or_else(|| {
            format!(
                "{}: no clap command registered in xtask/src/dist/assets.rs",
                tool.package
            )
        })?;
        let dir = generated_dir(tool.package);
        std::fs::create_dir_all(&dir)?;
        write_man(&command, &dir.join(format!("{}.1", tool.package)))?;
        // A tool with verbs (okome-golden-image create|verify|burn): its man
        // page lists them as `<tool>-<verb>(1)`, so those pages must exist.
        for verb in command.get_subcommands().filter(|v| v.get_name() != "help") {
            let name = format!("{}-{}", tool.package, verb.get_name());
            // clap names are &'static str without its `string` feature; xtask
            // is a short-lived process, so leaking a few names is fine.
            let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
            let page = verb.clone().name(leaked).display_name(leaked);
            write_man(&page, &dir.join(format!("{name}.1")))?;
        }
        for (shell, name) in [
            (Shell::Bash, tool.package.to_string()),
            (Shell::Zsh, format!("_{}", tool.package)),
            (Shell::Fish, format!("{}.fish", tool.package)),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), tool.package, &mut out);
            std::fs::write(dir.join(name), out)?;
        }
    }
    Ok(())
}

/// Render the man page and gzip it (`-9n`, as lintian wants).
fn write_man(command: &clap::Command, path: &Path) -> Result {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(path, page)?;
    super::deb::gzip(path, &path.with_extension("1.gz"))?;
    std::fs::remove_file(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_command_named_after_its_package() {
        for tool in super::super::TOOLS {
            let command = command_of(tool.package)
                .unwrap_or_else(|| panic!("{} has no command in assets.rs", tool.package));
            assert_eq!(command.get_name(), tool.package);
            command.clone().debug_assert();
            // Each verb's page is generated, and the package ships it.
            let manifest = std::fs::read_to_string(
                crate::cmd::workspace_root()
                    .join(tool.package.trim_start_matches("okome-"))
                    .join("Cargo.toml"),
            )
            .unwrap_or_default();
            for verb in command.get_subcommands().filter(|v| v.get_name() != "help") {
                let page = format!("{}-{}.1.gz", tool.package, verb.get_name());
                assert!(
                    manifest.contains(&page),
                    "{}: Cargo.toml does not ship {page}",
                    tool.package
                );
            }
            // The exit-status contract must reach the man page.
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page).unwrap();
            let page = String::from_utf8_lossy(&page).to_lowercase();
            assert!(
                page.contains("exit status"),
                "{}: man page without exit status",
                tool.package
            );
        }
    }
}

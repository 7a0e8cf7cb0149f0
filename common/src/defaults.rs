//! `/etc/default/okome-<tool>` support: config by flag, env var or file.
//!
//! Precedence is flag > environment > defaults file > built-in default.
//! systemd units read the same file with `EnvironmentFile=`, so an operator
//! running a tool by hand gets exactly what the timer gets. Only `OKOME_*`
//! keys are taken; the file is shell-like (`KEY=value`, optional quotes,
//! `export`, `#` comments) and never executed.

use std::path::Path;

/// Parse the text of a defaults file into `(key, value)` pairs, keeping only
/// `OKOME_*` keys. Malformed lines are skipped: a typo in a comment must not
/// stop a health probe.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if !key.starts_with("OKOME_") || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some((key.to_string(), unquote(value.trim()).to_string()))
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    // An unquoted value ends at an inline comment, as in a shell.
    match value.find(" #") {
        Some(at) => value[..at].trim_end(),
        None => value,
    }
}

/// Read `/etc/default/okome-<tool>` (under `OKOME_ROOT`) and export every
/// `OKOME_*` key not already in the environment, so clap's `env = …`
/// attributes see it. A missing file is the normal case and not an error.
///
/// Call it first thing in `main`, before any thread starts.
pub fn load_into_env(tool: &str) -> std::io::Result<()> {
    let path = crate::root::rooted(Path::new("/etc/default").join(format!("okome-{tool}")));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(std::io::Error::new(
                error.kind(),
                format!("{}: {error}", path.display()),
            ));
        }
    };
    for (key, value) in parse(&text) {
        if std::env::var_os(&key).is_none() {
            // SAFETY: called from `main` before any other thread exists, as
            // documented above, so nothing reads the environment concurrently.
            unsafe { std::env::set_var(&key, value) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_like_lines_are_understood() {
        let text = "# comment\nOKOME_A=1\nexport OKOME_B=\"two words\"\nOKOME_C='x' \nOKOME_D=v # note\nPATH=/bin\nnot a line\nOKOME_BAD-KEY=1\n";
        assert_eq!(
            parse(text),
            vec![
                ("OKOME_A".into(), "1".into()),
                ("OKOME_B".into(), "two words".into()),
                ("OKOME_C".into(), "x".into()),
                ("OKOME_D".into(), "v".into()),
            ]
        );
    }
}

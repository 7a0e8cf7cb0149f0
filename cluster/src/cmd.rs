//! Running external programs for the harness: echo the command, fail with
//! its name, status and the tail of its output, so a red CI log says what
//! broke without scrolling. xtask uses these too (its own cmd.rs keeps only
//! what differs: `run` there streams the output to the CI log).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::Result;

/// Run `command`, echoing it first; an unsuccessful exit is an error.
pub fn run(command: &mut Command) -> Result {
    let out = finished(command)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\n{}{}",
            describe(command),
            out.status,
            tail(&out.stdout),
            tail(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// Run `command` with no stdin and return what it printed, however it
/// exited; only failing to start it is an error.
pub fn finished(command: &mut Command) -> Result<Output> {
    Ok(command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{}: {error}", describe(command)))?)
}

/// Run `command` and return its stdout as text; an unsuccessful exit is an
/// error that includes stderr.
pub fn output(command: &mut Command) -> Result<String> {
    let out = finished(command)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\n{}",
            describe(command),
            out.status,
            tail(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line as a shell-like string, for logs.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// The last 40 lines of a command's output, for error messages.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    let mut out = lines[start..].join("\n");
    out.push('\n');
    out
}

/// The Debian mirror the host's apt uses (deb822 or one-line sources), so
/// debootstrap reaches exactly what apt already reaches here.
pub fn host_mirror(suite: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(mirror) = mirror_in(&text, suite) {
            return mirror;
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// The first URI serving the plain `suite` in a sources file.
fn mirror_in(text: &str, suite: &str) -> Option<String> {
    for line in text.lines() {
        let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next() == Some("deb") {
            let words: Vec<&str> = words.filter(|w| !w.ends_with(']')).collect();
            if words.len() >= 2 && words[1] == suite {
                return Some(words[0].to_string());
            }
        }
    }
    for paragraph in text.split("\n\n") {
        let field = |name: &str| {
            paragraph
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
            continue;
        };
        if suites.split_whitespace().any(|s| s == suite) {
            return uris.split_whitespace().next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n\
                      Types: deb\nURIs: http://security.example/\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        let security_only =
            "Types: deb\nURIs: http://security.example/\nSuites: bookworm-security\n";
        assert_eq!(mirror_in(security_only, "bookworm"), None);
        let one_line = "deb [arch=amd64] http://one.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(one_line, "bookworm").as_deref(),
            Some("http://one.example/debian")
        );
        assert_eq!(
            mirror_in("deb https://other.example nodistro main\n", "bookworm"),
            None
        );
    }
}

//! `/etc/default/okome-<tool>` support: config by flag, env var or file.
//!
//! Precedence is flag > environment > defaults file > built-in default.
//! systemd units read the same file with `EnvironmentFile=`, and a tool run
//! by hand must get exactly what the timer gets, so [`parse`] is a line-for-line
//! model of systemd 252's `parse_env_file_internal()` (src/basic/env-file.c,
//! the version Debian 12 and Raspberry Pi OS bookworm ship) followed by what
//! `load_env_file()` and the service manager do with each assignment:
//!
//! * A line whose first non-blank character is `#` or `;` is a comment. A
//!   `#` anywhere else is part of the value: `A=x # note` sets `x # note`.
//! * `KEY=value`: blanks around the key and before the value are dropped;
//!   an unquoted value loses its trailing blanks. `\` followed by any
//!   character is that character; `\` at the end of a line joins the next
//!   line (continuation).
//! * `'…'` keeps everything inside literally (no escapes), newlines too.
//!   `"…"` also spans lines; inside it `\"`, `\\`, `` \` `` and `\$` are the
//!   character, `\` + newline joins lines, and `\` before anything else stays
//!   a backslash (`"a\nb"` is `a`, `\`, `n`, `b`). Quotes count only where
//!   the value starts: `A=a"b"` keeps both quotes. After a closing quote,
//!   blanks are dropped and the rest is appended: `A="x" y` sets `xy`,
//!   `A="x" # c` sets `x# c`. A quote left open takes the rest of the file.
//! * A comment line ending in `\` swallows the next line too (252 does; 254
//!   and later stopped).
//! * `export KEY=value`, `KEY value`, keys with a `-` or starting with a digit:
//!   not valid environment names, so systemd ignores the line (it logs
//!   "invalid variable name"); so does this. A key given twice: the last wins.
//!   `$VAR` is never expanded.
//! * A key or value that is not UTF-8 makes systemd refuse the whole file;
//!   here that is [`Error::NotUtf8`], a configuration error naming the line.
//! * So does a NUL byte anywhere (seen on a booted systemd 252: the unit
//!   never starts); here that is [`Error::Nul`], naming the line.
//!
//! Only `OKOME_*` keys are taken into the environment; nothing is executed.
//! The cases, each with the value systemd sets, are plain data in
//! `common/tests/data/environment-file-cases.json`;
//! `common/tests/defaults_systemd.rs` runs each through [`parse`] and through
//! systemd's own parser (`systemd-environment-d-generator`).

use std::path::{Path, PathBuf};

/// Why a defaults file could not be used.
#[derive(Debug)]
pub enum Error {
    /// It exists but could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key or value is not UTF-8: systemd's `EnvironmentFile=` refuses the
    /// whole file, so the tool does not guess.
    NotUtf8 {
        /// The file (empty from [`parse`]).
        path: PathBuf,
        /// 1-based line where the assignment starts.
        line: usize,
    },
    /// A NUL byte: systemd's `EnvironmentFile=` refuses the whole file (the
    /// unit does not start), so the tool refuses it too.
    Nul {
        /// The file (empty from [`parse`]).
        path: PathBuf,
        /// 1-based line holding the first NUL.
        line: usize,
    },
}

impl Error {
    /// The same error, naming `path` (what [`parse`] cannot know).
    fn at(self, path: &Path) -> Error {
        match self {
            Error::NotUtf8 { line, .. } => Error::NotUtf8 {
                path: path.to_path_buf(),
                line,
            },
            Error::Nul { line, .. } => Error::Nul {
                path: path.to_path_buf(),
                line,
            },
            other => other,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NotUtf8 { path, line } => write!(
                f,
                "{}:{line}: not UTF-8 (systemd's EnvironmentFile= refuses the whole file; fix the encoding)",
                path.display()
            ),
            Error::Nul { path, line } => write!(
                f,
                "{}:{line}: a NUL byte (systemd's EnvironmentFile= refuses the whole file and the unit does not start; remove it)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {}

const WHITESPACE: &[u8] = b" \t\n\r";
const NEWLINE: &[u8] = b"\n\r";
/// What `\` unescapes inside double quotes (systemd's `SHELL_NEED_ESCAPE`).
const SHELL_NEED_ESCAPE: &[u8] = b"\"\\`$";

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
    CommentEscape,
}

/// An environment name systemd accepts: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Collects assignments as systemd's `load_env_file_push` does.
struct Sink {
    pairs: Vec<(String, String)>,
}

impl Sink {
    fn push(&mut self, line: usize, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let not_utf8 = || Error::NotUtf8 {
            path: PathBuf::new(),
            line,
        };
        let key = std::str::from_utf8(key).map_err(|_| not_utf8())?;
        let value = std::str::from_utf8(value).map_err(|_| not_utf8())?;
        if !valid_name(key) {
            return Ok(());
        }
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.pairs.push((key.to_string(), value.to_string())),
        }
        Ok(())
    }
}

/// Parse the bytes of an environment file into the `(key, value)` pairs
/// systemd's `EnvironmentFile=` would set, in first-seen order (rules in the
/// module doc).
pub fn parse(text: &[u8]) -> Result<Vec<(String, String)>, Error> {
    if let Some(at) = text.iter().position(|&b| b == 0) {
        let line = 1 + text[..at].iter().filter(|&&b| b == b'\n').count();
        return Err(Error::Nul {
            path: PathBuf::new(),
            line,
        });
    }
    let (is_ws, is_nl) = (|c| WHITESPACE.contains(&c), |c| NEWLINE.contains(&c));
    let mut sink = Sink { pairs: Vec::new() };
    let (mut key, mut value) = (Vec::new(), Vec::new());
    // Where trailing blanks of the key / unquoted value start, if any.
    let (mut key_ws, mut value_ws): (Option<usize>, Option<usize>) = (None, None);
    let (mut line, mut start) = (1, 1);
    let mut state = State::PreKey;
    let mut finish = |key: &mut Vec<u8>, value: &mut Vec<u8>, key_ws: Option<usize>, start| {
        if let Some(at) = key_ws {
            key.truncate(at);
        }
        let result = sink.push(start, key, value);
        key.clear();
        value.clear();
        result
    };
    for &c in text {
        match state {
            State::PreKey => {
                if c == b'#' || c == b';' {
                    state = State::Comment;
                } else if !is_ws(c) {
                    state = State::Key;
                    key_ws = None;
                    start = line;
                    key.push(c);
                } else if c == b'\n' {
                    line += 1;
                }
            }
            State::Key => {
                if is_nl(c) {
                    state = State::PreKey;
                    line += 1;
                    key.clear();
                } else if c == b'=' {
                    state = State::PreValue;
                    value_ws = None;
                } else {
                    if !is_ws(c) {
                        key_ws = None;
                    } else if key_ws.is_none() {
                        key_ws = Some(key.len());
                    }
                    key.push(c);
                }
            }
            State::PreValue => {
                if is_nl(c) {
                    state = State::PreKey;
                    line += 1;
                    finish(&mut key, &mut value, key_ws, start)?;
                } else if c == b'\'' {
                    state = State::SingleQuote;
                } else if c == b'"' {
                    state = State::DoubleQuote;
                } else if c == b'\\' {
                    state = State::ValueEscape;
                } else if !is_ws(c) {
                    state = State::Value;
                    value.push(c);
                }
            }
            State::Value => {
                if is_nl(c) {
                    state = State::PreKey;
                    line += 1;
                    if let Some(at) = value_ws {
                        value.truncate(at);
                    }
                    finish(&mut key, &mut value, key_ws, start)?;
                } else if c == b'\\' {
                    state = State::ValueEscape;
                    value_ws = None;
                } else {
                    if !is_ws(c) {
                        value_ws = None;
                    } else if value_ws.is_none() {
                        value_ws = Some(value.len());
                    }
                    value.push(c);
                }
            }
            State::ValueEscape => {
                state = State::Value;
                if !is_nl(c) {
                    value.push(c);
                } else if c == b'\n' {
                    line += 1;
                }
            }
            State::SingleQuote => {
                if c == b'\'' {
                    state = State::PreValue;
                } else {
                    line += usize::from(c == b'\n');
                    value.push(c);
                }
            }
            State::DoubleQuote => {
                if c == b'"' {
                    state = State::PreValue;
                } else if c == b'\\' {
                    state = State::DoubleQuoteEscape;
                } else {
                    line += usize::from(c == b'\n');
                    value.push(c);
                }
            }
            State::DoubleQuoteEscape => {
                state = State::DoubleQuote;
                if SHELL_NEED_ESCAPE.contains(&c) {
                    value.push(c);
                } else if c != b'\n' {
                    value.extend_from_slice(&[b'\\', c]);
                } else {
                    line += 1;
                }
            }
            State::Comment => {
                if c == b'\\' {
                    state = State::CommentEscape;
                } else if is_nl(c) {
                    state = State::PreKey;
                    line += 1;
                }
            }
            // systemd 252: the character after a backslash in a comment,
            // newline included, stays in the comment.
            State::CommentEscape => {
                state = State::Comment;
                line += usize::from(c == b'\n');
            }
        }
    }
    match state {
        State::Value => {
            if let Some(at) = value_ws {
                value.truncate(at);
            }
            finish(&mut key, &mut value, key_ws, start)?;
        }
        State::PreValue
        | State::ValueEscape
        | State::SingleQuote
        | State::DoubleQuote
        | State::DoubleQuoteEscape => finish(&mut key, &mut value, key_ws, start)?,
        State::PreKey | State::Key | State::Comment | State::CommentEscape => {}
    }
    Ok(sink.pairs)
}

/// The `OKOME_*` settings of a defaults file, as systemd would set them.
pub fn okome_settings(text: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = parse(text)?;
    pairs.retain(|(key, _)| key.starts_with("OKOME_"));
    Ok(pairs)
}

/// The `OKOME_*` settings of `/etc/default/okome-<tool>` (under
/// `OKOME_ROOT`), in file order. A missing file is the normal case: no
/// settings. Putting them into the environment (only where the environment
/// does not already say) is `okome_common::tool`'s job, the one place the
/// environment is written.
pub fn load(tool: &str) -> Result<Vec<(String, String)>, Error> {
    let path = crate::paths::defaults_file(tool);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path, source }),
    };
    okome_settings(&text).map_err(|error| error.at(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes()).unwrap()
    }

    fn one(text: &str) -> Option<String> {
        pairs(text)
            .into_iter()
            .find(|(k, _)| k == "A")
            .map(|(_, v)| v)
    }

    #[test]
    fn systemd_rules_that_differ_from_a_shell() {
        // Each of these was what the old shell-like loader got wrong.
        assert_eq!(one("A=v # note\n").as_deref(), Some("v # note"));
        assert_eq!(one("export A=1\n"), None);
        assert_eq!(one("A=1\nA=2\n").as_deref(), Some("2"));
        assert_eq!(one("A=\"x\" y\n").as_deref(), Some("xy"));
        assert_eq!(one("A='x' \n").as_deref(), Some("x"));
        assert_eq!(one("A=a\\\nb\n").as_deref(), Some("ab"));
        assert_eq!(one("# c \\\nA=1\n"), None);
    }

    #[test]
    fn okome_keys_only_and_not_utf8_is_an_error_naming_the_line() {
        assert_eq!(
            okome_settings(b"PATH=/bin\nOKOME_A=1\n").unwrap(),
            vec![("OKOME_A".to_string(), "1".to_string())]
        );
        match parse(b"A=1\n\nB=\"x\xff\"\n") {
            Err(Error::NotUtf8 { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nul_byte_refuses_the_whole_file_as_systemd_does() {
        // A booted systemd 252 does not start a unit whose EnvironmentFile=
        // holds a NUL: no key of the file is set, not even those before it.
        match parse(b"OKOME_A=1\nOKOME_B=a\0b\nOKOME_C=1\n") {
            Err(Error::Nul { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}

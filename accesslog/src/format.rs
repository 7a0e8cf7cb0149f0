//! Compiling an nginx `log_format` string and splitting lines with it.
//!
//! A compiled [`LogFormat`] is a prefix literal and a list of variables,
//! each with the literal that follows it. [`LogFormat::parse`] walks a line
//! once, finding each literal from where the last field ended (a word-at-
//! a-time scan for the short fields, SIMD `memchr` past 32 bytes, one word
//! compare per candidate), and records field ends in a fixed array: no
//! allocation, no UTF-8 decoding. Cheap shape checks on the fields whose
//! shape nginx fixes (`$status`, `$body_bytes_sent`, `$time_local`, …)
//! catch lines of another format that happen to contain the same literals.

use std::fmt;

#[cfg(test)]
use crate::bytemask::find_byte;
use crate::bytemask::{find_from, same_prefix};
use crate::fields;
use crate::okome::{self, Indexed, OkomeEntry, QuoteCursor, Searched, Structure};
use crate::reader::{INDEXED, Line};
use crate::record::{FIELD_COUNT, Field, Record, ShortWord};

/// The `okome` log format, exactly as the quoted string in
/// `configs/nginx-frontend/okome-logformat.conf` (`log_format okome '…';`).
///
/// The combined format plus the cache status, request and upstream times,
/// the request id, the canary variant and the prewarm marker (see
/// docs/design.md). `urt` is quoted because nginx writes a list there when
/// it retried an upstream.
pub const OKOME_LOG_FORMAT: &str = concat!(
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "#,
    r#""$http_referer" "$http_user_agent" cache=$upstream_cache_status rt=$request_time "#,
    r#"urt="$upstream_response_time" rid=$request_id canary=$okome_canary warm=$okome_warm"#
);

/// `format` with every `$name` written `${name}`: the same format to
/// nginx, but not the text the `okome` fast path recognises, so every line
/// of an `okome` log read with it goes through the generic walk, as a
/// site's own pasted format does (the benchmark times that path, and the
/// tests check it, with the `okome` format spelt so).
pub fn spelt_braced(format: &str) -> String {
    format
        .split('$')
        .enumerate()
        .map(|(k, piece)| match k {
            0 => piece.to_string(),
            _ => match piece.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                // Already `${name}`, or a `$` with no name after it.
                Some(0) => format!("${piece}"),
                name => {
                    let name = name.unwrap_or(piece.len());
                    format!("${{{}}}{}", &piece[..name], &piece[name..])
                }
            },
        })
        .collect()
}

/// nginx's built-in `combined` format.
pub const COMBINED_LOG_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// The variables `okome::combined_head` places, in order (its literals
/// are `okome::HEAD_LITERALS`).
pub(crate) const HEAD_VARIABLES: [&str; okome::HEAD] = [
    "remote_addr",
    "remote_user",
    "time_local",
    "request",
    "status",
    "body_bytes_sent",
    "http_referer",
];

/// Most variables a format may have; [`Entry`] keeps field boundaries in a
/// fixed array of this size so parsing never allocates.
pub const MAX_VARIABLES: usize = 40;

const ABSENT: u8 = u8::MAX;

/// The length of [`Entry`]'s array of field ends: a 0 (where the text
/// before the first field starts) and one end per variable.
const ENDS: usize = MAX_VARIABLES + 1;

// `Entry::range` takes an index past its array for "not logged".
const _: () = assert!(ABSENT as usize >= ENDS);

/// How nginx escapes logged values (`log_format … escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// nginx's default: `"`, `\`, control and non-ASCII bytes as `\xHH`.
    Default,
    /// `escape=json`: `"` as `\"`, `\` as `\\`.
    Json,
    /// `escape=none`: nothing escaped (a `"` in a user agent can then
    /// misalign a line; such lines come out malformed).
    None,
}

/// A shape check applied while splitting, so that a line of another format
/// is malformed rather than silently misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Any,
    Status,
    Digits,
    /// A byte count: digits, or `-` (Apache's `%b` and some proxies write
    /// it for "no body"; it reads as 0).
    Count,
    TimeLocal,
    Seconds,
}

impl Shape {
    fn of(name: &str) -> Shape {
        match name {
            "status" => Shape::Status,
            "body_bytes_sent" | "bytes_sent" => Shape::Count,
            "request_length" | "connection" => Shape::Digits,
            "time_local" => Shape::TimeLocal,
            "request_time" => Shape::Seconds,
            _ => Shape::Any,
        }
    }

    /// Whether `field` has the shape: the rule, stated plainly (the walk
    /// checks it in place with [`Shape::fits_at`]; a test holds the two
    /// equal).
    #[cfg(test)]
    fn fits(self, field: &[u8]) -> bool {
        match self {
            Shape::Any => true,
            Shape::Status => field.len() == 3 && field.iter().all(u8::is_ascii_digit),
            Shape::Digits => !field.is_empty() && field.iter().all(u8::is_ascii_digit),
            Shape::Count => field == b"-" || Shape::Digits.fits(field),
            Shape::TimeLocal => {
                field.len() == 26 && field[2] == b'/' && field[6] == b'/' && field[11] == b':'
            }
            Shape::Seconds => fields::seconds_shaped(field),
        }
    }

    /// [`Shape::fits`] for `line[start..end]`, read where it lies: digits
    /// a word at a time, no copy, no loop for the fields nginx writes.
    #[inline(always)]
    fn fits_at(self, line: &[u8], start: usize, end: usize) -> bool {
        let len = end - start;
        match self {
            Shape::Any => true,
            Shape::Status => line
                .get(start..end)
                .and_then(|field| <&[u8; 3]>::try_from(field).ok())
                .is_some_and(|field| fields::three_digits(field).is_some()),
            Shape::Digits => digits_at(line, start, end),
            Shape::Count => {
                (len == 1 && line.get(start) == Some(&b'-')) || digits_at(line, start, end)
            }
            Shape::TimeLocal => {
                len == 26
                    && line.get(start + 2) == Some(&b'/')
                    && line.get(start + 6) == Some(&b'/')
                    && line.get(start + 11) == Some(&b':')
            }
            Shape::Seconds => fields::seconds_shaped_ending_at(line, end, len),
        }
    }
}

/// Whether `line[start..end]` is one or more ASCII digits: one word
/// compare for up to eight (a byte loop for longer fields, or a field in
/// the line's first eight bytes).
#[inline(always)]
fn digits_at(line: &[u8], start: usize, end: usize) -> bool {
    let len = end - start;
    if (1..=8).contains(&len) && end >= 8 {
        return fields::digits_ending_at(line, end, len).is_some();
    }
    line.get(start..end)
        .is_some_and(|field| !field.is_empty() && field.iter().all(u8::is_ascii_digit))
}

/// What a closing literal starts with, which says how the walk finds the
/// places it may start: a quote or a space off the reader's index (or a
/// search of the line), any other byte by a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    Quote,
    Space,
    Other,
    /// No literal: the last field runs to the end of the line.
    End,
}

#[derive(Debug, Clone)]
struct Variable {
    name: Box<str>,
    /// The literal that closes this field; empty only for a last variable
    /// that runs to the end of the line.
    after: Box<[u8]>,
    /// `after`'s first eight bytes as a little-endian word, and the mask
    /// of the bytes that count, to compare a candidate in one instruction.
    after_word: u64,
    after_mask: u64,
    /// `after`'s first byte, and how its candidates are found.
    first: u8,
    lead: Lead,
    shape: Shape,
}

/// One variable as the walk reads it: what finds and checks its closing
/// literal, packed together (a variable's name and the literal's bytes past
/// the eighth are read only for a malformed line or a long literal).
#[derive(Debug, Clone, Copy)]
struct Step {
    /// The literal's first eight bytes and the mask of those that count
    /// ([`Variable::after_word`]).
    word: u64,
    mask: u64,
    /// The literal's length.
    len: u32,
    first: u8,
    lead: Lead,
    shape: Shape,
    /// The literal is longer than eight bytes, or the format escapes as
    /// JSON: a candidate needs more than the one masked compare.
    slow: bool,
}

/// Where a [`Field`] is in an [`Entry`]: the variable's index, and the
/// length of the literal before it (so that the accessors find a field's
/// start without looking up the variable before it).
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u8,
    after_previous: u32,
}

/// A compiled nginx `log_format`: literals and `$variables`.
#[derive(Debug, Clone)]
pub struct LogFormat {
    source: String,
    prefix: Box<[u8]>,
    variables: Vec<Variable>,
    /// The variables' [`Step`]s, in order.
    steps: Box<[Step]>,
    known: [Slot; FIELD_COUNT],
    escape: Escape,
    /// This is the `okome` format: lines are split by the unrolled copy of
    /// the rule in `okome.rs`.
    okome: bool,
    /// The format starts with the variables and literals of nginx's
    /// `combined` before its user agent, and has more after them: the walk
    /// places those seven fields by `okome::combined_head` first.
    combined_head: bool,
}

/// Why a `log_format` string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Nothing to compile.
    Empty,
    /// A quoted piece is not closed.
    UnclosedQuote,
    /// `$` not followed by a variable name, or an unclosed `${`.
    BadVariable(usize),
    /// Two variables with no literal between them (`$a$b`): their boundary
    /// cannot be found in a line.
    AdjacentVariables(String, String),
    /// More variables than [`MAX_VARIABLES`].
    TooManyVariables(usize),
    /// No variable at all.
    NoVariables,
    /// An `escape=` parameter other than `default`, `json` or `none`.
    BadEscape(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Empty => write!(f, "empty log format"),
            FormatError::UnclosedQuote => write!(f, "unclosed quote in log format"),
            FormatError::BadVariable(at) => {
                write!(f, "invalid variable name at byte {at} of the log format")
            }
            FormatError::AdjacentVariables(a, b) => write!(
                f,
                "${a} and ${b} have nothing between them: their fields cannot be told apart"
            ),
            FormatError::TooManyVariables(n) => {
                write!(
                    f,
                    "{n} variables in the log format (at most {MAX_VARIABLES})"
                )
            }
            FormatError::NoVariables => write!(f, "the log format has no $variable"),
            FormatError::BadEscape(value) => {
                write!(f, "escape={value}: expected default, json or none")
            }
        }
    }
}

impl std::error::Error for FormatError {}

/// Why a line did not fit the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed<'a> {
    /// Nothing but NUL bytes (or nothing at all).
    Empty,
    /// The line does not start with the format's leading literal.
    Prefix,
    /// The literal that should close `$variable` is missing: an older or
    /// other format, or a line cut short.
    Missing(&'a str),
    /// The field of `$variable` has the wrong shape (`$status` not three
    /// digits, …).
    Shape(&'a str),
    /// Text after the format's last literal.
    Trailing,
    /// The line ends where the last field should start (cut short).
    Truncated(&'a str),
    /// Longer than 4 GiB.
    TooLong,
}

impl fmt::Display for Malformed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Empty => write!(f, "empty (or only NUL bytes)"),
            Malformed::Prefix => write!(f, "does not start like the log format"),
            Malformed::Missing(var) => {
                write!(f, "nothing closes ${var} (other format or cut short)")
            }
            Malformed::Shape(var) => write!(f, "${var} has the wrong shape"),
            Malformed::Trailing => write!(f, "text after the end of the log format"),
            Malformed::Truncated(var) => write!(f, "cut short before ${var}"),
            Malformed::TooLong => write!(f, "line too long"),
        }
    }
}

/// Split nginx.conf text into arguments the way nginx's config parser does:
/// whitespace-separated, quoted with `'` or `"`, `\` escaping the quote,
/// `\\`, `\t`, `\r` and `\n` inside quotes.
fn nginx_arguments(text: &str) -> Result<Vec<String>, FormatError> {
    let mut arguments = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut argument = String::new();
        if first == '\'' || first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(FormatError::UnclosedQuote),
                    Some(c) if c == first => break,
                    Some('\\') => match chars.next() {
                        Some('t') => argument.push('\t'),
                        Some('r') => argument.push('\r'),
                        Some('n') => argument.push('\n'),
                        Some(c) if c == first || c == '\\' => argument.push(c),
                        Some(c) => {
                            argument.push('\\');
                            argument.push(c);
                        }
                        None => return Err(FormatError::UnclosedQuote),
                    },
                    Some(c) => argument.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                argument.push(c);
            }
        }
        arguments.push(argument);
    }
    Ok(arguments)
}

impl LogFormat {
    /// The `okome` format ([`OKOME_LOG_FORMAT`]).
    pub fn okome() -> Self {
        Self::compile(OKOME_LOG_FORMAT, Escape::Default).expect("the okome format compiles")
    }

    /// nginx's built-in `combined` format.
    pub fn combined() -> Self {
        Self::compile(COMBINED_LOG_FORMAT, Escape::Default).expect("the combined format compiles")
    }

    /// Compile a format as an operator pastes it from nginx.conf: the quoted
    /// string (`'$remote_addr - …'`), several quoted pieces (nginx
    /// concatenates them), the whole `log_format name [escape=…] '…' …;`
    /// directive, or the bare unquoted format.
    pub fn from_nginx(spec: &str) -> Result<Self, FormatError> {
        let text = spec.trim();
        let text = text.strip_suffix(';').unwrap_or(text).trim_end();
        let directive = text
            .strip_prefix("log_format")
            .filter(|rest| rest.starts_with(char::is_whitespace));
        let mut escape = Escape::Default;
        let format = if let Some(rest) = directive {
            let arguments = nginx_arguments(rest)?;
            let mut pieces = arguments.iter().skip(1).peekable(); // the format's name
            if let Some(value) = pieces.peek().and_then(|a| a.strip_prefix("escape=")) {
                escape = match value {
                    "default" => Escape::Default,
                    "json" => Escape::Json,
                    "none" => Escape::None,
                    other => return Err(FormatError::BadEscape(other.to_string())),
                };
                pieces.next();
            }
            pieces.map(String::as_str).collect::<String>()
        } else if text.starts_with('\'') || text.starts_with('"') {
            nginx_arguments(text)?.concat()
        } else {
            text.to_string()
        };
        Self::compile(&format, escape)
    }

    fn compile(format: &str, escape: Escape) -> Result<Self, FormatError> {
        if format.is_empty() {
            return Err(FormatError::Empty);
        }
        let bytes = format.as_bytes();
        let mut prefix = Vec::new();
        let mut variables: Vec<Variable> = Vec::new();
        let mut literal = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] != b'$' {
                literal.push(bytes[at]);
                at += 1;
                continue;
            }
            let (name, next) = variable_name(bytes, at)?;
            match variables.last_mut() {
                None => prefix = std::mem::take(&mut literal),
                Some(previous) if literal.is_empty() => {
                    return Err(FormatError::AdjacentVariables(
                        previous.name.to_string(),
                        name.to_string(),
                    ));
                }
                Some(previous) => previous.after = std::mem::take(&mut literal).into(),
            }
            variables.push(Variable {
                name: name.into(),
                after: Box::new([]),
                after_word: 0,
                after_mask: 0,
                first: 0,
                lead: Lead::End,
                shape: Shape::of(name),
            });
            at = next;
        }
        match variables.last_mut() {
            None => return Err(FormatError::NoVariables),
            Some(last) => last.after = literal.into(),
        }
        if variables.len() > MAX_VARIABLES {
            return Err(FormatError::TooManyVariables(variables.len()));
        }
        for variable in &mut variables {
            let head = &variable.after[..variable.after.len().min(8)];
            let mut word = [0u8; 8];
            word[..head.len()].copy_from_slice(head);
            variable.after_word = u64::from_le_bytes(word);
            variable.after_mask = match head.len() {
                8 => u64::MAX,
                n => (1u64 << (8 * n)) - 1,
            };
            (variable.first, variable.lead) = match variable.after.first() {
                None => (0, Lead::End),
                Some(&b'"') => (b'"', Lead::Quote),
                Some(&b' ') => (b' ', Lead::Space),
                Some(&other) => (other, Lead::Other),
            };
        }
        let mut known = [Slot {
            index: ABSENT,
            after_previous: 0,
        }; FIELD_COUNT];
        for (index, variable) in variables.iter().enumerate() {
            if let Some(which) = Field::of(&variable.name) {
                // The first occurrence wins, as a reader of the line expects.
                if known[which as usize].index == ABSENT {
                    known[which as usize] = Slot {
                        index: index as u8,
                        after_previous: match index {
                            0 => prefix.len() as u32,
                            _ => variables[index - 1].after.len() as u32,
                        },
                    };
                }
            }
        }
        let steps = variables
            .iter()
            .map(|variable| Step {
                word: variable.after_word,
                mask: variable.after_mask,
                len: variable.after.len() as u32,
                first: variable.first,
                lead: variable.lead,
                shape: variable.shape,
                slow: variable.after.len() > 8 || escape == Escape::Json,
            })
            .collect();
        let combined_head = prefix.is_empty()
            && escape != Escape::Json
            && variables.len() > okome::HEAD
            && variables
                .iter()
                .zip(HEAD_VARIABLES.iter().zip(okome::HEAD_LITERALS))
                .all(|(variable, (name, after))| {
                    *variable.name == **name && *variable.after == *after.as_bytes()
                });
        Ok(LogFormat {
            source: format.to_string(),
            prefix: prefix.into(),
            variables,
            steps,
            known,
            escape,
            okome: format == OKOME_LOG_FORMAT && escape == Escape::Default,
            combined_head,
        })
    }

    /// The length of the literal after each variable (tests hold the
    /// `okome` fast path's constants to them).
    #[cfg(test)]
    pub(crate) fn literal_lengths(&self) -> Vec<usize> {
        self.variables.iter().map(|v| v.after.len()).collect()
    }

    /// Each variable's name and the literal after it (tests hold the
    /// combined head's constants to them).
    #[cfg(test)]
    pub(crate) fn variables_and_literals(&self) -> Vec<(&str, &[u8])> {
        self.variables
            .iter()
            .map(|v| (&*v.name, &*v.after))
            .collect()
    }

    /// Whether the walk places the first fields by the combined head.
    #[cfg(test)]
    pub(crate) fn takes_combined_head(&self) -> bool {
        self.combined_head
    }

    /// The format string as compiled (pieces joined, unquoted).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the format logs `$name` (`name` with or without the `$`).
    pub fn has(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// Whether lines carry a time ($time_local, $time_iso8601 or $msec).
    pub fn has_time(&self) -> bool {
        [Field::TimeLocal, Field::TimeIso8601, Field::Msec]
            .iter()
            .any(|&k| self.known[k as usize].index != ABSENT)
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        let name = name.strip_prefix('$').unwrap_or(name);
        self.variables.iter().position(|v| &*v.name == name)
    }

    /// Split `line`; `None` when it does not fit the format. Never
    /// allocates. See [`LogFormat::check`] for the reason.
    #[inline]
    pub fn parse<'a>(&'a self, line: &'a [u8]) -> Option<Entry<'a>> {
        self.check(line).ok()
    }

    /// Split an `okome` line by the fast path alone: `None` when this is
    /// not the `okome` format or the fast path leaves the line to
    /// [`LogFormat::check`] (a line it does not fit, leading NULs, or a
    /// shape it does not judge). The hot loop of a log scan tries this
    /// first: its fields are found without looking up the format.
    #[inline(always)]
    pub fn check_okome<'a>(&self, line: &'a [u8]) -> Option<OkomeEntry<'a>> {
        if !self.okome {
            return None;
        }
        Self::okome_fast_path(line, &Searched)
    }

    /// Whether this is the `okome` format, which
    /// [`LogFormat::check_okome`] splits by its fast path.
    pub fn is_okome(&self) -> bool {
        self.okome
    }

    /// [`LogFormat::check_okome`] for a line from a [`LineReader`], which
    /// found the line's quotes while it looked for its end (where it keeps
    /// an index; elsewhere the line is searched, as by `check_okome`).
    ///
    /// [`LineReader`]: crate::LineReader
    #[inline(always)]
    pub fn check_okome_line<'a>(&self, line: &Line<'a>) -> Option<OkomeEntry<'a>> {
        if !INDEXED {
            return self.check_okome(line.bytes);
        }
        if !self.okome {
            return None;
        }
        Self::okome_fast_path(
            line.bytes,
            &Indexed {
                quotes: line.quotes,
                spaces: line.spaces,
            },
        )
    }

    #[inline(always)]
    fn okome_fast_path<'a>(line: &'a [u8], structure: &impl Structure) -> Option<OkomeEntry<'a>> {
        // Leading NULs are the generic walk's to skip.
        if line.first() == Some(&0) || line.len() > u32::MAX as usize {
            return None;
        }
        OkomeEntry::split(line, structure)
    }

    /// Split `line`, or say why it does not fit.
    ///
    /// Leading NUL bytes (what a power cut leaves where unwritten log
    /// blocks were) are skipped: the text after them is a line nginx wrote
    /// after the reboot.
    #[inline]
    pub fn check<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, Malformed<'a>> {
        self.check_with(line, self.okome)
    }

    /// [`LogFormat::check`] for a line from a [`LineReader`]: the closing
    /// literals that start with a quote or a space are looked for off the
    /// reader's index (where it keeps one), as the `okome` fast path
    /// places its fields, rather than searched for field by field.
    ///
    /// [`LineReader`]: crate::LineReader
    #[inline(always)]
    pub fn check_line<'a>(&'a self, line: &Line<'a>) -> Result<Entry<'a>, Malformed<'a>> {
        // The index counts from the line's first byte: a line after NULs
        // is searched instead (rare: once after a power cut).
        if !INDEXED || line.bytes.first() == Some(&0) {
            return self.check_with(line.bytes, false);
        }
        self.walk_indexed(line)
    }

    /// [`LogFormat::walk`] off a reader's index, out of line: inlined into
    /// a caller's loop (okome-hit-ratio's), the walk's cursor, line and
    /// steps were spilled to the stack and reloaded every field.
    #[inline(never)]
    fn walk_indexed<'a>(&'a self, line: &Line<'a>) -> Result<Entry<'a>, Malformed<'a>> {
        let bytes = self.admit(line.bytes)?;
        self.walk(
            bytes,
            &Indexed {
                quotes: line.quotes,
                spaces: line.spaces,
            },
        )
    }

    /// [`LogFormat::check`], through the unrolled `okome` splitter when
    /// `unrolled` (tests compare it with the generic walk).
    #[inline(always)]
    pub(crate) fn check_with<'a>(
        &'a self,
        line: &'a [u8],
        unrolled: bool,
    ) -> Result<Entry<'a>, Malformed<'a>> {
        let line = match line.first() {
            Some(0) => &line[line.iter().position(|&b| b != 0).unwrap_or(line.len())..],
            _ => line,
        };
        let line = self.admit(line)?;
        if unrolled && let Some(okome) = okome::split(line, &Searched) {
            let mut ends = [0u32; ENDS];
            ends[1..=okome.ends.len()].copy_from_slice(&okome.ends);
            return Ok(Entry {
                format: self,
                line,
                ends,
                decoded: Some((okome.status, okome.body_bytes)),
            });
        }
        self.walk(line, &Searched)
    }

    /// `line` (without leading NULs) when it can be walked: not empty, not
    /// too long, starting with the format's leading literal.
    #[inline(always)]
    fn admit<'a>(&self, line: &'a [u8]) -> Result<&'a [u8], Malformed<'a>> {
        if line.is_empty() {
            return Err(Malformed::Empty);
        }
        if line.len() > u32::MAX as usize {
            return Err(Malformed::TooLong);
        }
        if !same_prefix(line, &self.prefix) {
            return Err(Malformed::Prefix);
        }
        Ok(line)
    }

    /// The generic walk: each field ends at the first occurrence of its
    /// closing literal from where it starts, and must have its shape.
    /// A literal's candidates come from `structure` (the reader's index,
    /// or a search of the line) when it starts with a quote or a space, and
    /// from a search for its first byte otherwise; each is compared a word
    /// at a time.
    #[inline(always)]
    fn walk<'a>(
        &'a self,
        line: &'a [u8],
        structure: &impl Structure,
    ) -> Result<Entry<'a>, Malformed<'a>> {
        // Built where it is returned: the field ends are written in place.
        let mut entry = Entry {
            format: self,
            line,
            ends: [0u32; ENDS],
            decoded: None,
        };
        // A format that starts like `combined` (most do): its first seven
        // fields placed at once off the line's first five quotes, by the
        // `okome` fast path's rule, when the line is one it judges.
        if self.combined_head
            && let Some(head) = okome::combined_head(line, structure, &mut structure.quotes(line))
            && head.agent < line.len()
        {
            entry.ends[1..=okome::HEAD].copy_from_slice(&head.ends);
            entry.decoded = Some((head.status, head.body_bytes));
            self.walk_from::<{ okome::HEAD }>(line, head.agent + 1, structure, &mut entry.ends)?;
        } else {
            self.walk_from::<0>(line, self.prefix.len(), structure, &mut entry.ends)?;
        }
        Ok(entry)
    }

    /// The walk from variable `FIRST` on, whose field starts at `at`: the
    /// fields' ends into `ends` (after its leading 0). `FIRST` is a
    /// constant so that each of the two loops is sliced at compile time: a
    /// run-time start cost a walk from the first field 80 instructions a
    /// line (and a `skip` adapter 50 more).
    #[inline(always)]
    fn walk_from<const FIRST: usize>(
        &self,
        line: &[u8],
        mut at: usize,
        structure: &impl Structure,
        ends: &mut [u32; ENDS],
    ) -> Result<(), Malformed<'_>> {
        let mut quotes = structure.quote_cursor(line);
        let steps = self.steps.get(FIRST..).unwrap_or_default();
        let ends = ends.get_mut(1 + FIRST..).unwrap_or_default();
        for (offset, (step, field_end)) in steps.iter().zip(ends).enumerate() {
            let index = FIRST + offset;
            let end = if step.lead == Lead::End {
                if at == line.len() {
                    return Err(Malformed::Truncated(self.name(index)));
                }
                line.len()
            } else {
                match self.closing(line, at, index, step, structure, &mut quotes) {
                    Some(end) => end,
                    None => return Err(Malformed::Missing(self.name(index))),
                }
            };
            // Most variables have no shape to check: one predicted branch.
            if step.shape != Shape::Any && !step.shape.fits_at(line, at, end) {
                return Err(Malformed::Shape(self.name(index)));
            }
            *field_end = end as u32;
            at = end + step.len as usize;
        }
        if at != line.len() {
            return Err(Malformed::Trailing);
        }
        Ok(())
    }

    /// The name of variable `index`, for a reason.
    #[cold]
    fn name(&self, index: usize) -> &str {
        &self.variables[index].name
    }

    /// Where the first occurrence of variable `index`'s closing literal at
    /// or after `start` is, that nginx wrote as format text rather than
    /// inside a value (with `escape=json`, one not after an odd run of `\`
    /// since `start`).
    #[inline(always)]
    fn closing(
        &self,
        line: &[u8],
        start: usize,
        index: usize,
        step: &Step,
        structure: &impl Structure,
        quotes: &mut impl QuoteCursor,
    ) -> Option<usize> {
        let mut from = start;
        loop {
            let at = match step.lead {
                Lead::Quote => quotes.quote_from(line, from)?,
                Lead::Space => structure.space_from(line, from)?,
                _ => search(step.first, line, from)?,
            };
            let matched = match line.get(at..).and_then(<[u8]>::first_chunk::<8>) {
                // Nearly always: eight bytes to compare, a short literal,
                // nginx's default escaping.
                Some(head) if !step.slow => u64::from_le_bytes(*head) & step.mask == step.word,
                // Fewer than eight bytes left (the literal before a last
                // short field, ` warm=`): the line's last eight bytes,
                // shifted down to `at`, zero above its end.
                None if !step.slow && at + step.len as usize <= line.len() => {
                    match line.len().checked_sub(8).and_then(|from| line.get(from..)) {
                        Some(tail) => {
                            let tail = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
                            let shift = 8 * (at + 8 - line.len());
                            (tail >> shift) & step.mask == step.word
                        }
                        None => self.closes_at(line, start, at, index, step),
                    }
                }
                _ => self.closes_at(line, start, at, index, step),
            };
            if matched {
                return Some(at);
            }
            from = at + 1;
        }
    }

    /// Whether variable `index`'s closing literal is at `line[at..]` (`at`
    /// is in the line) and nginx wrote it as format text: the cases the
    /// walk's one masked compare does not settle (a literal longer than
    /// eight bytes, fewer than eight bytes left, `escape=json`).
    #[inline(never)]
    fn closes_at(&self, line: &[u8], start: usize, at: usize, index: usize, step: &Step) -> bool {
        let rest = &line[at..];
        let literal = match rest.first_chunk::<8>() {
            Some(head) => {
                u64::from_le_bytes(*head) & step.mask == step.word
                    && same_prefix(
                        &rest[8.min(rest.len())..],
                        self.variables[index].after.get(8..).unwrap_or_default(),
                    )
            }
            None => same_prefix(rest, &self.variables[index].after),
        };
        literal && !(self.escape == Escape::Json && escaped(&line[start..], at - start))
    }

    /// The generic walk as first written: a search of the rest of the line
    /// per field and the plain shape rule. The reference the walk is
    /// tested against.
    #[cfg(test)]
    pub(crate) fn check_plainly<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, Malformed<'a>> {
        let line = match line.first() {
            Some(0) => &line[line.iter().position(|&b| b != 0).unwrap_or(line.len())..],
            _ => line,
        };
        let line = self.admit(line)?;
        let mut ends = [0u32; ENDS];
        let mut at = self.prefix.len();
        for (field_end, variable) in ends[1..].iter_mut().zip(&self.variables) {
            let end = if variable.after.is_empty() {
                if at == line.len() {
                    return Err(Malformed::Truncated(&variable.name));
                }
                line.len()
            } else {
                match find(&line[at..], variable, self.escape) {
                    Some(offset) => at + offset,
                    None => return Err(Malformed::Missing(&variable.name)),
                }
            };
            if !variable.shape.fits(&line[at..end]) {
                return Err(Malformed::Shape(&variable.name));
            }
            *field_end = end as u32;
            at = end + variable.after.len();
        }
        if at != line.len() {
            return Err(Malformed::Trailing);
        }
        Ok(Entry {
            format: self,
            line,
            ends,
            decoded: None,
        })
    }
}

/// The variable name starting at `bytes[at] == b'$'`, and where it ends.
fn variable_name(bytes: &[u8], at: usize) -> Result<(&str, usize), FormatError> {
    let is_name = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let (start, end, next) = if bytes.get(at + 1) == Some(&b'{') {
        let start = at + 2;
        let close = bytes[start..]
            .iter()
            .position(|&b| b == b'}')
            .ok_or(FormatError::BadVariable(at))?;
        (start, start + close, start + close + 1)
    } else {
        let start = at + 1;
        let len = bytes[start..].iter().take_while(|b| is_name(b)).count();
        (start, start + len, start + len)
    };
    if start == end || !bytes[start..end].iter().all(is_name) {
        return Err(FormatError::BadVariable(at));
    }
    // The name is ASCII by the check above.
    Ok((
        std::str::from_utf8(&bytes[start..end]).expect("ASCII"),
        next,
    ))
}

/// Offset of the first closing literal of `variable` in `haystack` that
/// nginx wrote as format text rather than inside a value (the reference
/// for [`LogFormat::closing`]).
#[cfg(test)]
fn find(haystack: &[u8], variable: &Variable, escape: Escape) -> Option<usize> {
    let literal = &variable.after[..];
    let first = literal[0];
    let mut from = 0;
    loop {
        let at = from + find_byte(first, &haystack[from..])?;
        let rest = &haystack[at..];
        let matched = match rest.get(..8) {
            Some(head) => {
                let word = u64::from_le_bytes(head.try_into().expect("8 bytes"));
                word & variable.after_mask == variable.after_word
                    && (literal.len() <= 8 || same_prefix(&rest[8..], &literal[8..]))
            }
            None => same_prefix(rest, literal),
        };
        if matched && !(escape == Escape::Json && escaped(haystack, at)) {
            return Some(at);
        }
        from = at + 1;
    }
}

/// The first `byte` of `line` at or after `from`: the walk's search for a
/// literal that starts with neither a quote nor a space, out of line (the
/// search's inlined loops would crowd the walk's registers, for a literal
/// a format has once or twice).
#[inline(never)]
fn search(byte: u8, line: &[u8], from: usize) -> Option<usize> {
    find_from(byte, line, from)
}

/// With `escape=json`, whether the byte at `at` follows an odd run of `\`.
fn escaped(haystack: &[u8], at: usize) -> bool {
    haystack[..at]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count()
        % 2
        == 1
}

/// One parsed line: borrowed field slices, typed on demand.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    format: &'a LogFormat,
    line: &'a [u8],
    /// Where each field ends, after a 0: field `i` ends at `ends[i + 1]`
    /// and starts after the closing literal of the one before it (half the
    /// size of start/end pairs: an entry is built per line). The leading 0
    /// puts the first field's start where every other field's is.
    ends: [u32; ENDS],
    /// `$status` and `$body_bytes_sent` (the first of each), as the
    /// combined head or the `okome` splitter decoded them while checking
    /// their shapes: [`Record::status`] and [`Record::body_bytes`] then
    /// answer without reading them again. `None` otherwise.
    decoded: Option<(u16, Option<u64>)>,
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (index, variable) in self.format.variables.iter().enumerate() {
            map.entry(&variable.name, &String::from_utf8_lossy(self.span(index)));
        }
        map.finish()
    }
}

impl<'a> Entry<'a> {
    #[inline]
    fn span(&self, index: usize) -> &'a [u8] {
        let start = match index {
            0 => self.format.prefix.len(),
            _ => self.ends[index] as usize + self.format.variables[index - 1].after.len(),
        };
        &self.line[start..self.ends[index + 1] as usize]
    }

    /// Where `which` starts and ends in the line, if the format logs it.
    #[inline(always)]
    fn range(&self, which: Field) -> Option<(usize, usize)> {
        let Slot {
            index,
            after_previous,
        } = self.format.known[which as usize];
        // The end before the field's and its own, side by side: `ABSENT`
        // lies past the array, so the one bounds check also says "not
        // logged" (no branch on the first field, none on absence).
        let &[previous_end, end] = self.ends.get(usize::from(index)..)?.first_chunk::<2>()?;
        Some((
            previous_end as usize + after_previous as usize,
            end as usize,
        ))
    }

    /// The line the entry was split from (without leading NULs).
    pub fn line(&self) -> &'a [u8] {
        self.line
    }

    /// The raw field of `$var` (name with or without `$`); `None` when the
    /// format does not log it or nginx wrote `-`.
    pub fn field(&self, var: &str) -> Option<&'a [u8]> {
        let field = self.span(self.format.index_of(var)?);
        (!matches!(field, [b'-'])).then_some(field)
    }
}

impl<'a> Record<'a> for Entry<'a> {
    #[inline(always)]
    fn raw(&self, which: Field) -> Option<&'a [u8]> {
        let (start, end) = self.range(which)?;
        self.line.get(start..end)
    }

    /// The default's answer, read where the field lies: no copy of a
    /// run-time length per line.
    #[inline(always)]
    fn short_word(&self, which: Field) -> Option<ShortWord> {
        let (start, end) = self.range(which)?;
        Some(ShortWord::ending_at(self.line, start, end))
    }

    /// The default's answer, as decoded while splitting where it was.
    #[inline(always)]
    fn status(&self) -> Option<u16> {
        match self.decoded {
            Some((status, _)) => Some(status),
            None => fields::three_digits(self.known(Field::Status)?.try_into().ok()?),
        }
    }

    /// The default's answer, as decoded while splitting where it was,
    /// else with up to eight digits read as one word.
    #[inline(always)]
    fn body_bytes(&self) -> Option<u64> {
        if let Some((_, bytes)) = self.decoded {
            return bytes;
        }
        let (start, end) = self
            .range(Field::BodyBytesSent)
            .or_else(|| self.range(Field::BytesSent))?;
        match self.line.get(start..end)? {
            b"-" => Some(0),
            raw => fields::digits_ending_at(self.line, end, raw.len())
                .or_else(|| fields::parse_count(raw)),
        }
    }
}

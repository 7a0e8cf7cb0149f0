//! The nginx access-log reader and parser that okome-hit-ratio and
//! okome-prewarm share: a crate of its own, so that its `opt-level = 3`
//! (the hot loop of okome-hit-ratio) applies to it and not to the small ops
//! kit in okome-common, and so that a tool that reads no log links none of
//! it.
//!
//! A format is compiled once from an nginx `log_format` string
//! ([`LogFormat::from_nginx`], or the built-in [`LogFormat::okome`] and
//! [`LogFormat::combined`]) into literals and `$variables`. A line is then
//! split without allocating: each variable's field runs up to the first
//! occurrence of the literal that follows it in the format. That rule is
//! sound because nginx escapes `"` as `\x22` inside every logged value, so
//! the `" cache=` that closes the user agent can never occur inside it, and a
//! `cache=HIT` typed into a URL or user agent is never taken for the cache
//! field. Anything that does not fit the format — an older format, a line
//! cut short by a crash, garbage — is *malformed*: reported, counted by the
//! caller, never fatal.
//!
//! Reading is a [`LineReader`] over one reused buffer (no mapping of the
//! whole file, no per-line allocation), fed by [`open_input`], which
//! recognises gzip by its magic bytes the way logrotate leaves `.2.gz`.
//! On x86_64 the reader classifies each buffer-full once, a bit per byte for
//! quotes, newlines and spaces, so a line comes with where its delimiters
//! are; elsewhere (the Pis' aarch64 and armv7, where that was measured to
//! cost more than it saves) each line's end and each field's delimiter are
//! searched for instead.
//!
//! The typed fields of a line are read through [`Record`], which both the
//! generic walk's [`Entry`] and the `okome` fast path's [`OkomeEntry`]
//! implement: the fast path places the okome format's fields from the
//! reader's bits, by the same rule, and leaves every line it does not take
//! to the generic walk ([`LogFormat::check_okome_line`]).

mod bytemask;
mod fields;
mod format;
mod okome;
mod reader;
mod record;

pub use fields::{parse_iso8601, parse_msec, parse_seconds_ms, parse_time_local, sum_seconds_ms};
pub use format::{
    COMBINED_LOG_FORMAT, Entry, Escape, FormatError, LogFormat, MAX_VARIABLES, Malformed,
    OKOME_LOG_FORMAT, spelt_braced,
};
pub use okome::OkomeEntry;
pub use reader::{
    DEFAULT_BUFFER, DEFAULT_MAX_LINE, GZIP_MAGIC, Line, LineReader, is_gzip, open_input,
};
pub use record::{Field, Record, ShortWord};

/// The built-in format (`"okome"` or `"combined"`) that `line` fits, if
/// any: for the hint a tool gives when none of a log's lines fit the format
/// it was told (cold path; compiles both formats).
pub fn builtin_format_of(line: &[u8]) -> Option<&'static str> {
    if LogFormat::okome().parse(line).is_some() {
        Some("okome")
    } else if LogFormat::combined().parse(line).is_some() {
        Some("combined")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

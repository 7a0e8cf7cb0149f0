//! Reading access logs: opening plain or gzip input, and splitting it into
//! lines through one reused buffer.
//!
//! Logs are read, never mapped: a mapping of a multi-gigabyte log counts
//! against a 1 GB Pi's page cache and RSS, and a log that logrotate
//! truncates under a mapping raises SIGBUS. The buffer grows only for a
//! line longer than it, and never past the line cap, so memory stays
//! bounded whatever the input.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::bytemask::{Bits, Class, Index};

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// [`LineReader`]'s starting buffer size.
pub const DEFAULT_BUFFER: usize = 128 << 10;

/// [`LineReader`]'s default line cap: longer lines come back truncated.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Whether the reader indexes what it reads ([`Index`]): only where a
/// compare is wide enough to pay for sorting every byte into three classes.
/// On aarch64 (NEON) and armv7 (words) a search per line end and per field
/// executes fewer instructions per okome line (under qemu, `okome-hit-ratio
/// -j1`: 1,705 -> 1,491 on aarch64, 4,543 -> 3,930 on armv7).
pub(crate) const INDEXED: bool = cfg!(target_arch = "x86_64");

/// Whether `prefix` (a file's first bytes) starts a gzip stream.
pub fn is_gzip(prefix: &[u8]) -> bool {
    prefix.starts_with(&GZIP_MAGIC)
}

/// Open a log for reading: `-` is stdin; gzip is recognised by its magic
/// bytes, not the name, and decompressed (concatenated members too). The
/// error names the path.
pub fn open_input(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let named =
        |error: io::Error| io::Error::new(error.kind(), format!("{}: {error}", path.display()));
    let inner: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).map_err(named)?)
    };
    sniff(inner).map_err(named)
}

/// Peek at the first two bytes of `inner` and wrap it in a gzip decoder
/// when they are the gzip magic.
fn sniff(mut inner: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut prefix = [0u8; 2];
    let mut have = 0;
    while have < prefix.len() {
        match inner.read(&mut prefix[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let whole = io::Cursor::new(prefix[..have].to_vec()).chain(inner);
    if is_gzip(&prefix[..have]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(64 << 10, whole),
        )))
    } else {
        Ok(Box::new(whole))
    }
}

/// One line from a [`LineReader`], without its `\n` or `\r\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's bytes (at most the reader's line cap).
    pub bytes: &'a [u8],
    /// The line was longer than the cap and was cut; the rest was skipped.
    pub truncated: bool,
    /// Where the line's quotes are, and its spaces: found while the reader
    /// looked for the line's end, and where the `okome` fast path starts.
    /// Empty where the reader keeps no index (only x86_64 keeps one).
    pub(crate) quotes: Bits<'a>,
    /// See `quotes`.
    pub(crate) spaces: Bits<'a>,
}

/// Splits a byte stream into lines through one reused buffer.
///
/// A last line without a final newline (a log cut short) is still
/// returned. Lines longer than the cap come back cut to the cap and
/// flagged, and the rest of such a line is skipped, so no input can make
/// the buffer grow past the cap.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes after `start` already searched for a newline.
    scanned: usize,
    max_line: usize,
    eof: bool,
    /// Inside the tail of an over-long line that was already handed out.
    skipping: bool,
    lines: u64,
    /// Where the newlines, quotes and spaces in `buf[..end]` are (empty
    /// unless [`INDEXED`]).
    index: Index,
}

impl<R: Read> LineReader<R> {
    /// A reader with a [`DEFAULT_BUFFER`] buffer and a [`DEFAULT_MAX_LINE`] cap.
    pub fn new(inner: R) -> Self {
        Self::with_capacity(inner, DEFAULT_BUFFER, DEFAULT_MAX_LINE)
    }

    /// A reader starting with a `buffer`-byte buffer, cutting lines at
    /// `max_line` bytes (both at least 1).
    pub fn with_capacity(inner: R, buffer: usize, max_line: usize) -> Self {
        let max_line = max_line.max(1);
        LineReader {
            inner,
            buf: vec![0; buffer.clamp(1, max_line.max(1))],
            start: 0,
            end: 0,
            scanned: 0,
            max_line,
            eof: false,
            skipping: false,
            lines: 0,
            index: Index::default(),
        }
    }

    /// Lines returned so far: the 1-based number of the last line returned.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next line, or `None` at the end of the input.
    #[inline]
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            let from = self.start + self.scanned;
            let newline = if INDEXED {
                self.index
                    .bits(Class::Newline, from, self.end)
                    .first_from(0)
            } else {
                memchr::memchr(b'\n', &self.buf[from..self.end])
            };
            if let Some(newline) = newline.map(|at| from + at) {
                let start = self.start;
                self.start = newline + 1;
                self.scanned = 0;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                return Ok(Some(self.line(start, newline, false)));
            }
            if self.skipping {
                // Drop the rest of an over-long line as it streams past.
                self.start = self.end;
            }
            self.scanned = self.end - self.start;
            let pending = self.end - self.start;
            if self.eof {
                if pending == 0 {
                    return Ok(None);
                }
                let start = self.start;
                self.start = self.end;
                self.scanned = 0;
                return Ok(Some(self.line(start, self.end, false)));
            }
            if pending >= self.max_line {
                let start = self.start;
                self.start = self.end;
                self.scanned = 0;
                self.skipping = true;
                return Ok(Some(self.line(start, start + self.max_line, true)));
            }
            self.make_room();
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if INDEXED {
                        self.index.classify(&self.buf, self.end, self.end + n);
                    }
                    self.end += n;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// The line `buf[start..end]` (its `\r` dropped unless `truncated`),
    /// counted, with its first quotes.
    #[inline(always)]
    fn line(&mut self, start: usize, end: usize, truncated: bool) -> Line<'_> {
        self.lines += 1;
        let bytes = &self.buf[start..end];
        let bytes = if truncated { bytes } else { strip_cr(bytes) };
        line_at(&self.index, bytes, start, truncated)
    }

    /// Hand every line to `each`, in order: what [`LineReader::next_line`]
    /// returns, in a loop the reader drives. The complete lines of each
    /// buffer-full are walked straight off its newline bits, without the
    /// refill and over-long-line checks `next_line` makes per line.
    pub fn each_line(&mut self, mut each: impl FnMut(Line<'_>)) -> io::Result<()> {
        loop {
            if !self.skipping {
                let from = self.start + self.scanned;
                let (index, buf) = (&self.index, &self.buf[..self.end]);
                let (start, lines) = if INDEXED {
                    let newlines = index.bits(Class::Newline, from, buf.len()).iter();
                    hand_out(index, buf, self.start, from, newlines, &mut each)
                } else {
                    let newlines = memchr::memchr_iter(b'\n', &buf[from..]);
                    hand_out(index, buf, self.start, from, newlines, &mut each)
                };
                self.lines += lines;
                if start != self.start {
                    self.start = start;
                    self.scanned = 0;
                }
            }
            match self.next_line()? {
                Some(line) => each(line),
                None => return Ok(()),
            }
        }
    }

    /// Move pending bytes to the front, and grow the buffer (up to the line
    /// cap) when a single pending line fills it.
    fn make_room(&mut self) {
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if INDEXED {
                self.index.classify(&self.buf, 0, self.end);
            }
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .min(self.max_line)
                .max(self.buf.len() + 1);
            self.buf.resize(grown, 0);
        }
    }
}

/// Hand `each` the lines of `buf` from `start` on that end at `newlines`
/// (offsets from `from`); where the next line starts, and how many there
/// were.
#[inline(always)]
fn hand_out(
    index: &Index,
    buf: &[u8],
    mut start: usize,
    from: usize,
    newlines: impl Iterator<Item = usize>,
    each: &mut impl FnMut(Line<'_>),
) -> (usize, u64) {
    let mut lines = 0;
    for newline in newlines {
        let end = from + newline;
        each(line_at(index, strip_cr(&buf[start..end]), start, false));
        lines += 1;
        start = end + 1;
    }
    (start, lines)
}

/// The line `bytes`, which starts at `start` in the indexed buffer.
#[inline(always)]
fn line_at<'a>(index: &'a Index, bytes: &'a [u8], start: usize, truncated: bool) -> Line<'a> {
    let end = start + bytes.len();
    let bits = |class| {
        if INDEXED {
            index.bits(class, start, end)
        } else {
            Bits::default()
        }
    };
    Line {
        bytes,
        truncated,
        quotes: bits(Class::Quote),
        spaces: bits(Class::Space),
    }
}

#[inline(always)]
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(input: &[u8], buffer: usize, max_line: usize) -> Vec<(Vec<u8>, bool)> {
        let mut reader = LineReader::with_capacity(input, buffer, max_line);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((line.bytes.to_vec(), line.truncated));
        }
        assert_eq!(reader.lines(), lines.len() as u64);
        // The reader-driven loop hands out the same lines.
        let mut reader = LineReader::with_capacity(input, buffer, max_line);
        let mut each = Vec::new();
        reader
            .each_line(|line| each.push((line.bytes.to_vec(), line.truncated)))
            .unwrap();
        assert_eq!(each, lines);
        assert_eq!(reader.lines(), lines.len() as u64);
        lines
    }

    #[test]
    fn lines_crlf_and_a_last_line_without_newline() {
        let lines = collect(b"a\r\nbb\n\nccc", 2, 100);
        let text: Vec<&[u8]> = lines.iter().map(|(l, _)| l.as_slice()).collect();
        assert_eq!(text, [&b"a"[..], b"bb", b"", b"ccc"]);
    }

    #[test]
    fn a_final_newline_makes_no_empty_line() {
        assert_eq!(collect(b"x\n", 4, 100).len(), 1);
        assert!(collect(b"", 4, 100).is_empty());
    }

    #[test]
    fn over_long_lines_are_cut_and_flagged_and_the_rest_skipped() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nshort\n");
        input.extend(vec![b'y'; 50]);
        let lines = collect(&input, 8, 16);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], (vec![b'x'; 16], true));
        assert_eq!(lines[1], (b"short".to_vec(), false));
        assert_eq!(lines[2], (vec![b'y'; 16], true));
    }

    #[test]
    fn a_100_kb_line_comes_back_whole_with_the_default_cap() {
        let mut input = vec![b'u'; 100 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let lines = collect(&input, DEFAULT_BUFFER / 16, DEFAULT_MAX_LINE);
        assert_eq!(lines[0].0.len(), 100 * 1024);
        assert!(!lines[0].1);
        assert_eq!(lines[1].0, b"next");
    }

    #[test]
    fn gzip_is_recognised_by_content_and_plain_is_passed_through() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("access.log");
        std::fs::write(&plain, b"one\ntwo\n").unwrap();
        let gz = dir.path().join("access.log.2"); // no .gz: content decides
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"one\ntwo\n").unwrap();
        let mut bytes = encoder.finish().unwrap();
        // logrotate with delaycompress + a later append: two members.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"three\n").unwrap();
        bytes.extend(encoder.finish().unwrap());
        std::fs::write(&gz, bytes).unwrap();
        let mut text = String::new();
        open_input(&plain)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
        text.clear();
        open_input(&gz).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "one\ntwo\nthree\n");
    }

    #[test]
    fn a_missing_file_error_names_it() {
        let error = match open_input(Path::new("/nonexistent/okome_access.log")) {
            Err(error) => error,
            Ok(_) => panic!("opened a missing file"),
        };
        assert!(
            error.to_string().contains("/nonexistent/okome_access.log"),
            "{error}"
        );
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn short_input_and_one_byte_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one");
        std::fs::write(&path, b"x").unwrap();
        let mut text = String::new();
        open_input(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x");
    }
}

//! Which bytes of the access log to read this run.
//!
//! Every two minutes only the new lines matter, and never more than a
//! bounded tail: a 2 GB log after a holiday must not cost the Pi more than
//! `tail_bytes` of reading. The last position (device, inode, offset and a
//! fingerprint of the first bytes) decides between: *resume* (same file,
//! read from the offset), *rotated* (new inode: finish the old file if it
//! is still beside it as `<log>.1`, then read the new one), *truncated*
//! (same inode, shorter than the offset) and *replaced* (same inode, but
//! the first bytes changed: copytruncate, then regrown past the offset).
//! Reads end at the last complete line so a half-written line is read next
//! time, whole.

use crate::state::LogPos;
use okome_accesslog::LineReader;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Bytes of the file head fingerprinted.
const HEAD_LEN: u64 = 128;
/// Lines longer than this are cut by the shared reader (and then refused by
/// the parser or the path check): no input can grow memory past it.
pub const MAX_LINE: usize = 32 * 1024;

/// Why reading starts where it does (for logs and `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// No previous position: the tail of the file.
    FirstRun,
    /// Same file: from the last offset.
    Resume,
    /// Same file but we fell more than `tail_bytes` behind: the tail only.
    ResumeTail,
    /// New inode: rest of the old file (if found), then the new one.
    Rotated,
    /// Same inode, shorter than the last offset.
    Truncated,
    /// Same inode, first bytes changed (copytruncate then regrown).
    Replaced,
}

/// A byte range of one file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// One past the last byte (just after a newline).
    pub end: u64,
    /// `start` may be mid-line: drop the first (partial) line.
    pub skip_first: bool,
}

/// The reading plan for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Ranges to read, oldest first.
    pub segments: Vec<Segment>,
    /// The position to store once they were read.
    pub pos: LogPos,
    /// Why.
    pub start: Start,
}

impl Start {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Start::FirstRun => "first-run",
            Start::Resume => "resume",
            Start::ResumeTail => "resume-tail",
            Start::Rotated => "rotated",
            Start::Truncated => "truncated",
            Start::Replaced => "replaced",
        }
    }
}

impl Tail {
    /// Total bytes to read.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.end - s.start).sum()
    }
}

/// FNV-1a, 64 bit: a fingerprint, not a security hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn head_hash(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(fnv1a(&buf))
}

/// Offset just after the last `\n` in `[lo, hi)`, or `lo` if there is none.
fn last_line_end(file: &File, lo: u64, hi: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut end = hi;
    while end > lo {
        let begin = end.saturating_sub(CHUNK).max(lo);
        let chunk = &mut buf[..(end - begin) as usize];
        file.read_exact_at(chunk, begin)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(begin + at as u64 + 1);
        }
        end = begin;
    }
    Ok(lo)
}

/// The path logrotate moves the log to (`access.log` → `access.log.1`).
pub fn rotated_sibling(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Decide what to read from `log`, given the previous position.
pub fn plan(log: &Path, prev: Option<&LogPos>, max_bytes: u64) -> io::Result<Tail> {
    let file = File::open(log)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let head_len = len.min(HEAD_LEN);
    // Read once: stored in the new position, and compared with the last
    // one when the file is the same.
    let head = head_hash(&file, head_len)?;
    let pos_for = |end: u64| LogPos {
        dev: meta.dev(),
        inode: meta.ino(),
        offset: end,
        head_len,
        head_hash: head,
    };
    let tail_of = |file: &File| -> io::Result<(Segment, u64)> {
        let start = len.saturating_sub(max_bytes);
        let end = last_line_end(file, start, len)?;
        Ok((
            Segment {
                path: log.to_path_buf(),
                start,
                end,
                skip_first: start > 0,
            },
            end,
        ))
    };
    let Some(prev) = prev else {
        let (segment, end) = tail_of(&file)?;
        return Ok(Tail {
            segments: vec![segment],
            pos: pos_for(end),
            start: Start::FirstRun,
        });
    };
    if prev.dev == meta.dev() && prev.inode == meta.ino() {
        let start_kind = if len < prev.offset {
            Some(Start::Truncated)
        } else if prev.head_len > len {
            Some(Start::Replaced)
        } else {
            // The bytes the last run hashed: `head` unless the file was
            // shorter than HEAD_LEN then.
            let then = if prev.head_len == head_len {
                head
            } else {
                head_hash(&file, prev.head_len)?
            };
            (then != prev.head_hash).then_some(Start::Replaced)
        };
        if let Some(kind) = start_kind {
            let (segment, end) = tail_of(&file)?;
            return Ok(Tail {
                segments: vec![segment],
                pos: pos_for(end),
                start: kind,
            });
        }
        let end = last_line_end(&file, prev.offset, len)?;
        let (start, skip_first, kind) = if end - prev.offset > max_bytes {
            (end - max_bytes, true, Start::ResumeTail)
        } else {
            (prev.offset, false, Start::Resume)
        };
        return Ok(Tail {
            segments: vec![Segment {
                path: log.to_path_buf(),
                start,
                end,
                skip_first,
            }],
            pos: pos_for(end),
            start: kind,
        });
    }
    // Rotated: finish the old file if logrotate left it beside us.
    let mut segments = Vec::new();
    let sibling = rotated_sibling(log);
    if let Ok(old) = File::open(&sibling) {
        let old_meta = old.metadata()?;
        if old_meta.dev() == prev.dev
            && old_meta.ino() == prev.inode
            && old_meta.len() > prev.offset
        {
            let end = last_line_end(&old, prev.offset, old_meta.len())?;
            let start = prev.offset.max(end.saturating_sub(max_bytes));
            if end > start {
                segments.push(Segment {
                    path: sibling,
                    start,
                    end,
                    skip_first: start != prev.offset,
                });
            }
        }
    }
    let (segment, end) = tail_of(&file)?;
    segments.push(segment);
    Ok(Tail {
        segments,
        pos: pos_for(end),
        start: Start::Rotated,
    })
}

/// Feed every complete line of `segment` to `each` (the bool says the line
/// was cut at [`MAX_LINE`]).
pub fn read_lines(segment: &Segment, mut each: impl FnMut(&[u8], bool)) -> io::Result<()> {
    let mut file = File::open(&segment.path)?;
    file.seek(SeekFrom::Start(segment.start))?;
    let mut reader =
        LineReader::with_capacity(file.take(segment.end - segment.start), MAX_LINE, MAX_LINE);
    let mut skip = segment.skip_first;
    while let Some(line) = reader.next_line()? {
        if skip {
            skip = false;
            continue;
        }
        each(line.bytes, line.truncated);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(tail: &Tail) -> Vec<String> {
        let mut out = Vec::new();
        for segment in &tail.segments {
            read_lines(segment, |line, _| {
                out.push(String::from_utf8_lossy(line).into_owned())
            })
            .unwrap();
        }
        out
    }

    /// What logrotate's `copytruncate` does to the live file.
    fn truncate(path: &Path) {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn first_run_reads_only_a_bounded_tail_from_a_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        append(&log, &text);
        let tail = plan(&log, None, 35).unwrap();
        assert_eq!(tail.start, Start::FirstRun);
        assert_eq!(lines_of(&tail), ["line 097", "line 098", "line 099"]);
        assert_eq!(tail.pos.offset, text.len() as u64);
    }

    #[test]
    fn resume_reads_only_new_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\nb\n");
        let first = plan(&log, None, 1 << 20).unwrap();
        assert_eq!(lines_of(&first), ["a", "b"]);
        append(&log, "c\nd\npartial");
        let second = plan(&log, Some(&first.pos), 1 << 20).unwrap();
        assert_eq!(second.start, Start::Resume);
        assert_eq!(lines_of(&second), ["c", "d"]);
        append(&log, " line\n");
        let third = plan(&log, Some(&second.pos), 1 << 20).unwrap();
        assert_eq!(lines_of(&third), ["partial line"]);
        let idle = plan(&log, Some(&third.pos), 1 << 20).unwrap();
        assert!(lines_of(&idle).is_empty());
        assert_eq!(
            idle.pos, third.pos,
            "an idle log leaves the position unchanged"
        );
    }

    #[test]
    fn falling_far_behind_reads_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "old\n");
        let first = plan(&log, None, 1 << 20).unwrap();
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        append(&log, &text);
        let second = plan(&log, Some(&first.pos), 20).unwrap();
        assert_eq!(second.start, Start::ResumeTail);
        assert_eq!(lines_of(&second), ["line 098", "line 099"]);
    }

    #[test]
    fn rotation_finishes_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\n");
        let first = plan(&log, None, 1 << 20).unwrap();
        append(&log, "b\n");
        std::fs::rename(&log, rotated_sibling(&log)).unwrap();
        append(&log, "c\n");
        let second = plan(&log, Some(&first.pos), 1 << 20).unwrap();
        assert_eq!(second.start, Start::Rotated);
        assert_eq!(lines_of(&second), ["b", "c"]);
        // Without the sibling (compressed away), only the new file.
        std::fs::remove_file(rotated_sibling(&log)).unwrap();
        let third = plan(&log, Some(&first.pos), 1 << 20).unwrap();
        assert_eq!(lines_of(&third), ["c"]);
    }

    #[test]
    fn truncation_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "aaaa\nbbbb\n");
        let first = plan(&log, None, 1 << 20).unwrap();
        truncate(&log);
        append(&log, "c\n");
        let second = plan(&log, Some(&first.pos), 1 << 20).unwrap();
        assert_eq!(second.start, Start::Truncated);
        assert_eq!(lines_of(&second), ["c"]);
    }

    #[test]
    fn copytruncate_then_regrowth_is_noticed_by_the_head_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "first-generation\n");
        let first = plan(&log, None, 1 << 20).unwrap();
        truncate(&log);
        append(&log, "second-generation-x\nmore\n");
        let second = plan(&log, Some(&first.pos), 1 << 20).unwrap();
        assert_eq!(second.start, Start::Replaced);
        assert_eq!(lines_of(&second), ["second-generation-x", "more"]);
    }

    #[test]
    fn huge_lines_come_back_cut_and_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &format!("{}\nok\n", "x".repeat(100 * 1024)));
        let tail = plan(&log, None, 1 << 20).unwrap();
        let mut seen = Vec::new();
        read_lines(&tail.segments[0], |line, cut| seen.push((line.len(), cut))).unwrap();
        assert_eq!(seen, [(MAX_LINE, true), (2, false)]);
    }
}

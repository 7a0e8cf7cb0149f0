//! Reading every input in parallel and merging the tallies.
//!
//! Plain files are cut into chunks at newline boundaries and each chunk is
//! read with positioned reads (`pread`) by whichever of `--threads` workers
//! is free, so one big log uses every core. Gzip files and stdin cannot be
//! cut: each is one unit, and its decompression runs in a helper thread
//! that hands blocks to the parsing worker through a small bounded queue,
//! so inflating and parsing overlap. Memory per worker is one line buffer
//! plus its tally, whatever the log size.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use okome_accesslog::{LineReader, LogFormat, Record, is_gzip, open_input};

use crate::tally::{Options, Sample, Tally};

/// Smallest chunk a plain file is cut into.
const MIN_CHUNK: u64 = 8 << 20;
/// Read buffer per worker (grows, up to the line cap, only for longer lines).
const READ_BUFFER: usize = 256 << 10;
/// Longest line read whole; longer lines are malformed.
pub const MAX_LINE: usize = 1 << 20;
/// Block size between a decompression thread and its parser.
const PIPE_BLOCK: usize = 256 << 10;

/// What happened to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputOutcome {
    /// The path as given (`-` for stdin).
    pub name: String,
    /// Lines read from it.
    pub lines: u64,
    /// Whether it was gzip.
    pub gzip: bool,
    /// Bytes at the start of a plain file not read because they are older
    /// than `--since` (found by binary search; line numbers count from the
    /// first line read).
    pub skipped_bytes: u64,
    /// Why it could not be (completely) read.
    pub error: Option<String>,
}

/// A malformed line with its input and absolute line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The input's name.
    pub input: String,
    /// 1-based line number in that input.
    pub line: u64,
    /// Why it did not parse.
    pub reason: String,
    /// Its first bytes, raw (see [`crate::tally::SAMPLE_TEXT`]).
    pub text: Vec<u8>,
}

/// Everything a scan produced.
#[derive(Debug)]
pub struct Scan {
    /// All inputs merged.
    pub tally: Tally,
    /// Per input, in the order given.
    pub inputs: Vec<InputOutcome>,
    /// The first malformed lines, in input order.
    pub samples: Vec<Located>,
}

/// A unit's tally, and the error that stopped it early, if any.
type UnitResult = (Tally, Option<io::Error>);

enum Unit {
    Range { input: usize, start: u64, end: u64 },
    Stream { input: usize },
}

impl Unit {
    fn input(&self) -> usize {
        match self {
            Unit::Range { input, .. } | Unit::Stream { input } => *input,
        }
    }
}

/// Read `inputs` with `threads` workers and count them with `format`.
pub fn scan(inputs: &[PathBuf], format: &LogFormat, options: &Options, threads: usize) -> Scan {
    scan_in_chunks(inputs, format, options, threads, MIN_CHUNK)
}

/// [`scan`] with plain files cut into chunks of at least `min_chunk` bytes
/// (tests cut tiny files into many chunks).
fn scan_in_chunks(
    inputs: &[PathBuf],
    format: &LogFormat,
    options: &Options,
    threads: usize,
    min_chunk: u64,
) -> Scan {
    let threads = threads.max(1);
    let mut outcomes: Vec<InputOutcome> = inputs
        .iter()
        .map(|path| InputOutcome {
            name: path.display().to_string(),
            lines: 0,
            gzip: false,
            skipped_bytes: 0,
            error: None,
        })
        .collect();
    let mut units = Vec::new();
    for (index, path) in inputs.iter().enumerate() {
        match plan(index, path, threads, min_chunk, format, options.since) {
            Ok(Plan {
                units: planned,
                gzip,
                skipped,
            }) => {
                outcomes[index].gzip = gzip;
                outcomes[index].skipped_bytes = skipped;
                units.extend(planned);
            }
            Err(error) => outcomes[index].error = Some(with_path(path, &error)),
        }
    }

    let results: Vec<Mutex<Option<UnitResult>>> = units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(units.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = units.get(index) else { break };
                    let path = &inputs[unit.input()];
                    let result = run_unit(unit, path, format, options);
                    *results[index].lock().expect("no worker panics holding it") = Some(result);
                }
            });
        }
    });

    let mut total = Tally::new(options);
    let mut samples = Vec::new();
    for (unit, result) in units.iter().zip(results) {
        let (tally, error) = result
            .into_inner()
            .expect("no worker panics holding it")
            .expect("every unit ran");
        let outcome = &mut outcomes[unit.input()];
        for Sample { line, reason, text } in &tally.samples {
            samples.push(Located {
                input: outcome.name.clone(),
                line: outcome.lines + line,
                reason: reason.clone(),
                text: text.clone(),
            });
        }
        outcome.lines += tally.lines;
        if let Some(error) = error
            && outcome.error.is_none()
        {
            outcome.error = Some(with_path(&inputs[unit.input()], &error));
        }
        total.merge(tally);
    }
    samples.truncate(crate::tally::SAMPLES);
    Scan {
        tally: total,
        inputs: outcomes,
        samples,
    }
}

fn with_path(path: &Path, error: &io::Error) -> String {
    format!("{}: {error}", path.display())
}

/// How one input will be read.
struct Plan {
    units: Vec<Unit>,
    gzip: bool,
    skipped: u64,
}

/// How far before `--since` the binary search stops, for lines a little
/// out of order (nginx logs a request when it ends).
const SEEK_SLACK: i64 = 3600;
/// Below this distance the binary search stops and reads on.
const SEEK_RESOLUTION: u64 = 256 << 10;

/// Cut one input into units. A plain file read with `--since` starts at the
/// first line not older than `since` minus [`SEEK_SLACK`], found by binary
/// search, so the timer's `--since 15m` does not read a whole day of log.
fn plan(
    input: usize,
    path: &Path,
    threads: usize,
    min_chunk: u64,
    format: &LogFormat,
    since: Option<i64>,
) -> io::Result<Plan> {
    let stream = |gzip| Plan {
        units: vec![Unit::Stream { input }],
        gzip,
        skipped: 0,
    };
    if path.as_os_str() == "-" {
        return Ok(stream(false));
    }
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let mut magic = [0u8; 2];
    let have = if metadata.is_file() {
        read_at_most(&file, &mut magic, 0)?
    } else {
        0
    };
    if !metadata.is_file() || is_gzip(&magic[..have]) {
        // A pipe or device cannot be cut, nor can a gzip stream.
        return Ok(stream(is_gzip(&magic[..have])));
    }
    // Read only what exists now: nginx may append while we read.
    let size = metadata.len();
    let first = match since {
        Some(since) => seek(&file, size, since - SEEK_SLACK, format)?,
        None => 0,
    };
    let span = size - first;
    let chunks = if threads > 1 {
        (threads as u64 * 4).min(span / min_chunk.max(1)).max(1)
    } else {
        1
    };
    let mut starts = vec![first];
    for k in 1..chunks {
        let start = line_start_at_or_after(&file, first + span * k / chunks, size)?;
        if start > *starts.last().expect("non-empty") && start < size {
            starts.push(start);
        }
    }
    let mut units = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(size);
        units.push(Unit::Range { input, start, end });
    }
    Ok(Plan {
        units,
        gzip: false,
        skipped: first,
    })
}

/// A line start at or before the first line whose time is `not_before` or
/// later, in a log ordered by time (within [`SEEK_SLACK`]). Lines whose time
/// cannot be read never move the search forward, so garbage only makes it
/// read more.
fn seek(file: &File, size: u64, not_before: i64, format: &LogFormat) -> io::Result<u64> {
    let (mut low, mut high) = (0u64, size);
    while high - low > SEEK_RESOLUTION {
        let middle = low + (high - low) / 2;
        let start = line_start_at_or_after(file, middle, size)?;
        if start >= high {
            high = middle;
            continue;
        }
        match first_time_at(file, start, size, format)? {
            Some(time) if time < not_before => low = start,
            _ => high = middle,
        }
    }
    Ok(low)
}

/// The time of the first parseable line among the few starting at `start`.
fn first_time_at(
    file: &File,
    start: u64,
    size: u64,
    format: &LogFormat,
) -> io::Result<Option<i64>> {
    let mut buf = vec![0u8; (64 << 10).min((size - start) as usize)];
    let have = read_at_most(file, &mut buf, start)?;
    Ok(buf[..have]
        .split(|&b| b == b'\n')
        .take(64)
        .find_map(|line| format.parse(line).and_then(|entry| entry.time_local())))
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match file.read_at(&mut buf[have..], offset + have as u64) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(have)
}

/// The offset of the first line that starts at or after `offset`.
fn line_start_at_or_after(file: &File, offset: u64, size: u64) -> io::Result<u64> {
    if offset == 0 {
        return Ok(0);
    }
    let mut at = offset - 1; // a newline just before `offset` starts a line at it
    let mut buf = vec![0u8; 64 << 10];
    while at < size {
        let n = read_at_most(file, &mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(newline) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + newline as u64 + 1);
        }
        at += n as u64;
    }
    Ok(size)
}

/// `[start, end)` of a file through positioned reads, so workers sharing a
/// file never race on a file offset.
struct RangeReader {
    file: File,
    at: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.at) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

fn run_unit(unit: &Unit, path: &Path, format: &LogFormat, options: &Options) -> UnitResult {
    let mut tally = Tally::new(options);
    let reader: io::Result<Box<dyn Read + Send>> = match *unit {
        Unit::Range { start, end, .. } => File::open(path).map(|file| {
            Box::new(RangeReader {
                file,
                at: start,
                end,
            }) as Box<dyn Read + Send>
        }),
        Unit::Stream { .. } => open_input(path).map(|inner| Box::new(Pipe::new(inner)) as _),
    };
    let error = match reader {
        Ok(reader) => count(reader, format, options, &mut tally).err(),
        Err(error) => Some(error),
    };
    (tally, error)
}

/// The hot loop: every line of `reader` into `tally`.
fn count(
    reader: impl Read,
    format: &LogFormat,
    options: &Options,
    tally: &mut Tally,
) -> io::Result<()> {
    tally.count_lines(
        &mut LineReader::with_capacity(reader, READ_BUFFER, MAX_LINE),
        format,
        options,
    )
}

/// A reader whose source is read (and decompressed) in its own thread,
/// one block ahead, with blocks recycled so nothing is allocated per block.
struct Pipe {
    blocks: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    block: Vec<u8>,
    at: usize,
    done: bool,
}

impl Pipe {
    fn new(mut source: Box<dyn Read + Send>) -> Self {
        let (send_block, blocks) = sync_channel::<io::Result<Vec<u8>>>(2);
        let (recycle, recycled) = sync_channel::<Vec<u8>>(4);
        std::thread::spawn(move || {
            loop {
                let mut block = recycled.try_recv().unwrap_or_default();
                block.resize(PIPE_BLOCK, 0);
                let mut have = 0;
                let result = loop {
                    match source.read(&mut block[have..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            have += n;
                            if have == block.len() {
                                break Ok(());
                            }
                        }
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(error) => break Err(error),
                    }
                };
                block.truncate(have);
                let last = have == 0 || result.is_err();
                if have > 0 && send_block.send(Ok(block)).is_err() {
                    return; // the parser went away
                }
                if let Err(error) = result {
                    let _ = send_block.send(Err(error));
                }
                if last {
                    return;
                }
            }
        });
        Pipe {
            blocks,
            recycle,
            block: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if self.done {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.block);
            if spent.capacity() > 0 {
                let _ = self.recycle.try_send(spent);
            }
            self.at = 0;
            match self.blocks.recv() {
                Ok(Ok(block)) => self.block = block,
                Ok(Err(error)) => {
                    self.done = true;
                    return Err(error);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &[u8] = br#"192.0.2.1 - - [20/Nov/2026:10:00:00 +0000] "GET /assets/a.js HTTP/1.1" 200 10 "-" "ua" cache=HIT rt=0.001 urt="-" rid=1 canary=control warm=-"#;

    fn options() -> Options {
        Options {
            groups: vec![b"/assets".to_vec()],
            include_warm: false,
            since: None,
            until: None,
            by: Some(60),
            top_capacity: Some(64),
            latency: true,
        }
    }

    proptest! {
        /// Whatever the bytes and however a file is cut, every line is read
        /// exactly once: parsed + malformed = lines, and the figures equal
        /// those of one unbroken pass.
        #[test]
        fn chunking_never_loses_or_doubles_a_line(
            pieces in proptest::collection::vec(prop_oneof![
                Just(LINE.to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(vec![0u8; 9]),
                proptest::collection::vec(any::<u8>(), 0..40),
            ], 0..60),
            threads in 2usize..5,
            min_chunk in 1u64..200,
        ) {
            let bytes = pieces.concat();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            std::fs::write(&path, &bytes).unwrap();
            let format = LogFormat::okome();
            let inputs = [path];
            let whole = scan_in_chunks(&inputs, &format, &options(), 1, u64::MAX);
            let cut = scan_in_chunks(&inputs, &format, &options(), threads, min_chunk);
            let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            let expected = newlines + u64::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
            prop_assert_eq!(whole.tally.lines, expected);
            prop_assert_eq!(cut.tally.lines, expected);
            prop_assert_eq!(cut.tally.parsed() + cut.tally.malformed, expected);
            prop_assert_eq!(cut.tally.malformed, whole.tally.malformed);
            prop_assert_eq!(cut.tally.overall(), whole.tally.overall());
            prop_assert_eq!(cut.tally.cache(), whole.tally.cache());
            prop_assert_eq!(cut.tally.groups(), whole.tally.groups());
            prop_assert_eq!(cut.tally.canary(), whole.tally.canary());
            prop_assert_eq!(cut.samples, whole.samples);
        }
    }

    /// The okome format spelt with `${name}`: the same format to nginx, but
    /// not the text the okome fast path recognises, so every line goes
    /// through the generic walk, as a site's own pasted format does.
    fn braced_okome() -> LogFormat {
        let braced = okome_accesslog::spelt_braced(okome_accesslog::OKOME_LOG_FORMAT);
        let format = LogFormat::from_nginx(&format!("'{braced}'")).expect("compiles");
        assert!(!format.is_okome(), "the fast path would take {braced}");
        format
    }

    /// Lines of every kind the benchmark's log holds, damaged or not.
    fn log_piece() -> impl Strategy<Value = Vec<u8>> {
        let line = |cache: &str, status: &str, bytes: &str, urt: &str, canary: &str, warm: &str| {
            format!(
                r#"10.0.0.1 - - [20/Nov/2026:10:00:00 +0100] "GET /assets/{cache}.js?v=1 HTTP/1.1" {status} {bytes} "-" "Mozilla \x22q\x22 cache=HIT" cache={cache} rt=0.120 urt="{urt}" rid=00ff canary={canary} warm={warm}"#
            )
            .into_bytes()
        };
        prop_oneof![
            4 => (
                proptest::sample::select(vec!["HIT", "MISS", "EXPIRED", "STALE", "-", "SCARCE", "BYPASS"]),
                proptest::sample::select(vec!["200", "304", "502", "20x"]),
                proptest::sample::select(vec!["0", "5120", "-", "123456789012", "x"]),
                proptest::sample::select(vec!["-", "0.002", "0.002, 0.010 : 0.004", "a"]),
                proptest::sample::select(vec!["control", "canary", "debug", "-", "other"]),
                proptest::sample::select(vec!["-", "1"]),
            )
                .prop_map(move |(c, s, b, u, v, w)| line(c, s, b, u, v, w)),
            1 => (any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), any::<u8>())
                .prop_map(move |(cut, at, byte)| {
                    let mut damaged = line("HIT", "200", "10", "-", "control", "-");
                    let at = at.index(damaged.len());
                    damaged[at] = byte;
                    damaged.truncate(cut.index(damaged.len() + 1));
                    damaged
                }),
            1 => Just(br#"192.0.2.1 - - [20/Nov/2026:00:00:00 +0100] "GET / HTTP/1.1" 200 612 "-" "curl""#.to_vec()),
            1 => Just(vec![0u8; 20]),
            1 => proptest::collection::vec(any::<u8>(), 0..80),
        ]
        .prop_map(|mut piece| {
            piece.push(b'\n');
            piece
        })
    }

    proptest! {
        /// A site's own format is read as the okome format is: the same
        /// report, figure for figure, from the generic walk as from the
        /// okome fast path, on the same dirty log (default and detail).
        #[test]
        fn the_generic_path_reports_what_the_okome_path_reports(
            pieces in proptest::collection::vec(log_piece(), 0..80),
            crlf in any::<bool>(),
        ) {
            let mut bytes = pieces.concat();
            if crlf {
                bytes = bytes.iter().flat_map(|&b| match b {
                    b'\n' => vec![b'\r', b'\n'],
                    b => vec![b],
                }).collect();
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            std::fs::write(&path, &bytes).unwrap();
            let inputs = [path];
            let plain = Options { by: None, top_capacity: None, latency: false, ..options() };
            for options in [plain, options()] {
                let okome = scan(&inputs, &LogFormat::okome(), &options, 1);
                let generic = scan(&inputs, &braced_okome(), &options, 1);
                let (mut a, mut b) = (okome.tally, generic.tally);
                prop_assert_eq!(
                    (a.lines, a.malformed, a.warm, a.outside),
                    (b.lines, b.malformed, b.warm, b.outside)
                );
                prop_assert_eq!(a.overall(), b.overall());
                prop_assert_eq!(a.cache(), b.cache());
                prop_assert_eq!(a.groups(), b.groups());
                prop_assert_eq!(a.canary(), b.canary());
                prop_assert_eq!(&a.unknown, &b.unknown);
                prop_assert_eq!(a.unknown_other, b.unknown_other);
                prop_assert_eq!(&a.http[..], &b.http[..]);
                prop_assert_eq!(a.http_other, b.http_other);
                prop_assert_eq!((a.first, a.last), (b.first, b.last));
                prop_assert_eq!(
                    a.series.as_mut().map(|s| s.points().collect::<Vec<_>>()),
                    b.series.as_mut().map(|s| s.points().collect::<Vec<_>>())
                );
                prop_assert_eq!(
                    a.top.as_ref().map(|t| t.top(64)),
                    b.top.as_ref().map(|t| t.top(64))
                );
                prop_assert_eq!(
                    a.latency.as_ref().map(|h| h.iter().map(|h| (h.total(), h.quantile(0.5), h.quantile(0.99))).collect::<Vec<_>>()),
                    b.latency.as_ref().map(|h| h.iter().map(|h| (h.total(), h.quantile(0.5), h.quantile(0.99))).collect::<Vec<_>>())
                );
                prop_assert_eq!(okome.samples, generic.samples);
                prop_assert_eq!(okome.inputs, generic.inputs);
            }
        }
    }

    #[test]
    fn chunk_boundaries_fall_on_line_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text = b"aaaa\nbb\ncccccc\nd\n";
        std::fs::write(&path, text).unwrap();
        let file = File::open(&path).unwrap();
        let size = text.len() as u64;
        assert_eq!(line_start_at_or_after(&file, 0, size).unwrap(), 0);
        assert_eq!(line_start_at_or_after(&file, 5, size).unwrap(), 5);
        assert_eq!(line_start_at_or_after(&file, 6, size).unwrap(), 8);
        assert_eq!(line_start_at_or_after(&file, 16, size).unwrap(), 17);
    }

    #[test]
    fn the_pipe_passes_every_byte_and_errors() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        Pipe::new(Box::new(io::Cursor::new(data.clone())))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        struct Failing(u8);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "corrupt deflate stream",
                    ));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let mut out = Vec::new();
        let error = Pipe::new(Box::new(Failing(3)))
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(out, b"xxx");
        assert!(error.to_string().contains("corrupt"));
    }
}

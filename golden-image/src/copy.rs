//! Byte-range copies between images and devices in 1 MiB pieces, so peak
//! memory stays flat whatever the card's size. Zero pieces are skipped
//! when writing a fresh image file (they stay holes, and read as zeros).

use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

/// Size of one piece.
pub const CHUNK: usize = 1 << 20;

/// Copy `len` bytes at `offset` from `src` to the same offset in `dst`,
/// leaving all-zero pieces unwritten (`dst` must be a fresh sparse file).
pub fn copy_sparse(src: &File, dst: &File, offset: u64, len: u64, what: &str) -> Result<()> {
    copy_between(src, offset, dst, offset, len, what)
}

/// Copy `len` bytes from `src` at `from` to `dst` at `to`, leaving all-zero
/// pieces unwritten.
pub fn copy_between(
    src: &File,
    from: u64,
    dst: &File,
    to: u64,
    len: u64,
    what: &str,
) -> Result<()> {
    let mut buffer = vec![0u8; CHUNK];
    let mut done = 0u64;
    let progress = Progress::new(what, len);
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        src.read_exact_at(&mut buffer[..n], from + done)
            .map_err(|e| Error::Internal(format!("{what}: reading at {}: {e}", from + done)))?;
        if buffer[..n].iter().any(|&b| b != 0) {
            dst.write_all_at(&buffer[..n], to + done)
                .map_err(|e| Error::Internal(format!("{what}: writing at {}: {e}", to + done)))?;
        }
        done += n as u64;
        progress.show(done);
    }
    progress.finish();
    Ok(())
}

/// A progress line on stderr, only when stderr is a terminal.
#[derive(Debug)]
pub struct Progress<'a> {
    what: &'a str,
    total: u64,
    tty: bool,
}

impl<'a> Progress<'a> {
    /// Start reporting `what` out of `total` bytes.
    pub fn new(what: &'a str, total: u64) -> Progress<'a> {
        Progress {
            what,
            total,
            tty: std::io::stderr().is_terminal() && total >= 64 << 20,
        }
    }

    /// `done` bytes so far (printed every 64 MiB).
    pub fn show(&self, done: u64) {
        if self.tty && done.is_multiple_of(64 << 20) {
            eprint!("\r{}: {} / {} MiB", self.what, done >> 20, self.total >> 20);
        }
    }

    /// End the line.
    pub fn finish(&self) {
        if self.tty {
            eprintln!("\r{}: {} MiB done          ", self.what, self.total >> 20);
        }
    }
}

//! `burn IMG DEVICE --hostname H --role R`: write the image to a card the
//! way Raspberry Pi Imager does, prove it, and give the node its identity.
//!
//! The first sector is zeroed before anything else and written last, so a
//! card pulled mid-write has no partition table pointing at half an image.
//! The bytes are hashed as they are written and read back after fsync (with
//! the page cache dropped for the device), and must hash the same. Only
//! then is okome-node.conf written to the boot partition with mtools. The
//! DEVICE may be a regular file standing in for a card (tests do this).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Stdio;

use serde::Serialize;

use crate::cli::BurnConfig;
use crate::compress::{self, Hasher};
use crate::copy::{CHUNK, Progress};
use crate::error::{Error, Result};
use crate::exec;
use crate::fat::{self, Fat, NODE_CONF};
use crate::safety;
use crate::table::{self, SECTOR};

/// What `burn` did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema name.
    pub schema: &'static str,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of what was written, and of what was read back.
    pub sha256: String,
    /// okome-node.conf as written.
    pub node_conf: String,
}

/// Run `burn`.
pub fn burn(config: &BurnConfig) -> Result<Report> {
    let mounts = safety::mounts()?;
    safety::check_disk(&config.device, &mounts, &safety::loop_backing_files())?;
    if std::fs::canonicalize(&config.image).ok() == std::fs::canonicalize(&config.device).ok() {
        return Err(Error::Usage("IMG and DEVICE are the same file".into()));
    }
    let sidecar = compress::sidecar_path(&config.image);
    if let Ok(text) = std::fs::read_to_string(&sidecar) {
        let want = compress::sidecar_hash(&text).unwrap_or_default();
        let have = compress::sha256_file(&config.image)?;
        if have != want {
            return Err(Error::Invalid(format!(
                "{}: sha256 {have}, but {} says {want}: not burning a damaged image",
                config.image.display(),
                sidecar.display()
            )));
        }
    }
    let device = OpenOptions::new()
        .write(true)
        .read(true)
        .open(&config.device)
        .map_err(Error::io(&config.device))?;
    let (bytes, sha256) = write(config, &device)?;
    let read_back = read_back(&device, bytes)?;
    if read_back != sha256 {
        return Err(Error::Invalid(format!(
            "{}: read back sha256 {read_back}, wrote {sha256}: the card does not hold what was written",
            config.device.display()
        )));
    }
    drop(device);
    let layout = table::layout(table::read(&config.device)?)?;
    let fat = Fat {
        image: &config.device,
        offset: layout.boot().offset(),
    };
    let node_conf = fat::node_conf(&config.hostname, config.role.word());
    fat.write(NODE_CONF, node_conf.as_bytes())?;
    if fat.read(NODE_CONF)?.as_deref() != Some(node_conf.as_bytes()) {
        return Err(Error::Invalid(format!(
            "{NODE_CONF} did not read back as written"
        )));
    }
    File::open(&config.device)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(&config.device))?;
    Ok(Report {
        schema: "okome-golden-image/burn/1",
        bytes,
        sha256,
        node_conf,
    })
}

/// The image's bytes: a file, or zstd's output.
fn open_image(path: &Path) -> Result<(Box<dyn Read>, Option<std::process::Child>)> {
    if compress::is_zst(path) {
        let mut child = exec::command("zstd")
            .args(["-q", "-d", "-c"])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Program {
                command: format!("zstd -dc {}", path.display()),
                detail: format!("cannot start: {e}"),
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Internal("zstd: no stdout".into()))?;
        Ok((Box::new(stdout), Some(child)))
    } else {
        let file = File::open(path).map_err(Error::io(path))?;
        Ok((Box::new(file), None))
    }
}

/// Zero sector 0, write the rest, then sector 0; return length and hash.
fn write(config: &BurnConfig, device: &File) -> Result<(u64, String)> {
    let io = |e: std::io::Error| Error::Io(config.device.clone(), e);
    device
        .write_all_at(&[0u8; SECTOR as usize], 0)
        .map_err(io)?;
    device.sync_data().map_err(io)?;
    let (mut reader, child) = open_image(&config.image)?;
    let mut hasher = Hasher::default();
    let mut buffer = vec![0u8; CHUNK];
    let mut first = Vec::new();
    let mut offset = 0u64;
    let total = std::fs::metadata(&config.image)
        .map(|m| m.len())
        .unwrap_or(0);
    let progress = Progress::new("burn", total);
    loop {
        let n = compress::read_full(&mut reader, &mut buffer)
            .map_err(|e| Error::Io(config.image.clone(), e))?;
        if n == 0 {
            break;
        }
        let piece = &buffer[..n];
        hasher.update(piece);
        if offset == 0 {
            let head = (SECTOR as usize).min(n);
            first = piece[..head].to_vec();
            device
                .write_all_at(&piece[head..], head as u64)
                .map_err(io)?;
        } else {
            device.write_all_at(piece, offset).map_err(io)?;
        }
        offset += n as u64;
        progress.show(offset);
    }
    progress.finish();
    if let Some(mut child) = child {
        let status = child.wait().map_err(Error::io(&config.image))?;
        if !status.success() {
            return Err(Error::Program {
                command: format!("zstd -dc {}", config.image.display()),
                detail: status.to_string(),
            });
        }
    }
    if offset < SECTOR * 2 {
        return Err(Error::Invalid(format!(
            "{}: too short to be an image",
            config.image.display()
        )));
    }
    if device.metadata().map_err(io)?.is_file() {
        device.set_len(offset).map_err(io)?;
    }
    device.sync_all().map_err(io)?;
    device.write_all_at(&first, 0).map_err(io)?;
    device.sync_all().map_err(io)?;
    Ok((offset, hasher.finish()))
}

/// Hash the first `len` bytes of the device, after dropping its cached pages.
fn read_back(device: &File, len: u64) -> Result<String> {
    let _ = nix::fcntl::posix_fadvise(
        device,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    let mut hasher = Hasher::default();
    let mut buffer = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        device
            .read_exact_at(&mut buffer[..n], done)
            .map_err(|e| Error::Internal(format!("reading back at {done}: {e}")))?;
        hasher.update(&buffer[..n]);
        done += n as u64;
    }
    Ok(hasher.finish())
}

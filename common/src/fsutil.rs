//! Crash-safe file writes and run locks.
//!
//! A Pi loses power without warning: a file is never written in place but to
//! a temp file in the same directory, fsynced, renamed over the target, and
//! the directory fsynced, so readers see the old or the new content, never
//! half. `write_if_changed` exists because every needless write wears the SD
//! card. `RunLock` keeps two timer runs from overlapping.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Write `contents` to `path` atomically (temp file, fsync, rename, fsync dir).
/// The file gets `mode` permission bits.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent_dir(path);
    let temp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|error| with_path(error, path))
}

/// Write `contents` only when the file does not already hold exactly them.
/// Returns whether a write happened.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> io::Result<bool> {
    match fs::read(path) {
        Ok(current) if current == contents => Ok(false),
        Ok(_) => atomic_write(path, contents, mode).map(|()| true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            atomic_write(path, contents, mode).map(|()| true)
        }
        Err(error) => Err(with_path(error, path)),
    }
}

/// Remove `path` if it exists and fsync its directory. Returns whether it existed.
pub fn remove_durably(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            File::open(parent_dir(path))?.sync_all()?;
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(with_path(error, path)),
    }
}

/// An exclusive, non-blocking lock held for the life of one run.
///
/// The lock is an `flock` on a file that is never deleted (deleting it would
/// let a third run lock a fresh inode while the first still runs). The
/// kernel drops the lock when the process dies, so a crash never leaves a
/// stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock at `path`, creating the file. `Ok(None)` means another
    /// run holds it: the caller should exit quietly.
    ///
    /// A lock file left behind by root (an operator's `sudo okome-…`) is
    /// 0644 root and cannot be opened for writing by a unit's user; `flock`
    /// works on a read-only descriptor, so that is taken instead of failing
    /// every tick.
    pub fn try_acquire(path: &Path) -> io::Result<Option<RunLock>> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                File::open(path).map_err(|_| with_path(error, path))?
            }
            Err(error) => return Err(with_path(error, path)),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(error)) => Err(with_path(error, path)),
        }
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp.{}", std::process::id()))
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        atomic_write(&path, b"one", 0o644).unwrap();
        atomic_write(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_if_changed_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        assert!(write_if_changed(&path, b"a", 0o644).unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_if_changed(&path, b"a", 0o644).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_if_changed(&path, b"b", 0o644).unwrap());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let error = atomic_write(Path::new("/nonexistent-okome/x"), b"", 0o644).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent-okome/x"),
            "{error}"
        );
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let first = RunLock::try_acquire(&path).unwrap().expect("first lock");
        assert!(RunLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(RunLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn remove_durably_reports_whether_the_file_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flag");
        assert!(!remove_durably(&path).unwrap());
        fs::write(&path, b"").unwrap();
        assert!(remove_durably(&path).unwrap());
        assert!(!path.exists());
    }
}

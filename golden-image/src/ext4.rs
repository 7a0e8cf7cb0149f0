//! Offline reads and edits of an ext4 image through e2fsprogs' `debugfs`,
//! and its figures through `dumpe2fs`.
//!
//! No mount, no loop device, no root: `debugfs -R 'ls -p DIR'` lists a
//! directory in a parseable form, `cat` reads a file, and edits are batched
//! into one `debugfs -w -f SCRIPT` run. debugfs exits 0 even when a command
//! fails, so every line it writes to stderr (apart from its version banner)
//! is treated as a failure of the batch. Truncation uses `punch` + `sif size
//! 0`, which frees the blocks and keeps the inode's owner, mode and xattrs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exec;

/// One directory entry as `ls -p` prints it: `/inode/mode/uid/gid/name/size/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name (not the path).
    pub name: String,
    /// Mode bits including the type (octal `100644`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (0 for directories).
    pub size: u64,
}

impl Entry {
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }

    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == 0o120000
    }
}

/// Parse `ls -p` output, without `.` and `..`.
pub fn parse_ls(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let line = line.strip_prefix('/')?.strip_suffix('/')?;
            let mut fields = line.splitn(5, '/');
            let _inode = fields.next()?;
            let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            let rest = fields.next()?;
            let (name, size) = rest.rsplit_once('/')?;
            Some(Entry {
                name: name.to_string(),
                mode,
                uid,
                gid,
                size: size.parse().unwrap_or(0),
            })
        })
        .filter(|entry| entry.name != "." && entry.name != "..")
        .collect()
}

/// Quote a path for debugfs' command parser.
fn quote(path: &str) -> String {
    if path.contains([' ', '\t']) {
        format!("\"{path}\"")
    } else {
        path.to_string()
    }
}

/// The stderr lines of a debugfs run that are not its banner.
fn complaints(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("debugfs "))
        .map(str::to_string)
        .collect()
}

/// An ext4 filesystem image (a whole file: never an `?offset=` inside a disk).
#[derive(Debug, Clone)]
pub struct Ext4 {
    image: PathBuf,
}

impl Ext4 {
    /// The filesystem in `image`.
    pub fn new(image: impl Into<PathBuf>) -> Ext4 {
        Ext4 {
            image: image.into(),
        }
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// One read-only request; `Ok(None)` when debugfs says the path is not there.
    fn request(&self, request: &str) -> Result<Option<Vec<u8>>> {
        let out = exec::checked(
            exec::command("debugfs")
                .arg("-R")
                .arg(request)
                .arg(&self.image),
            &[0],
        )?;
        let complaints = complaints(&out.stderr);
        if complaints.iter().any(|line| line.contains("not found")) {
            return Ok(None);
        }
        if let Some(line) = complaints.first() {
            return Err(Error::Program {
                command: format!("debugfs -R '{request}' {}", self.image.display()),
                detail: line.clone(),
            });
        }
        Ok(Some(out.stdout))
    }

    /// The entries of directory `dir`, or None if it does not exist.
    pub fn ls(&self, dir: &str) -> Result<Option<Vec<Entry>>> {
        Ok(self
            .request(&format!("ls -p {}", quote(dir)))?
            .map(|out| parse_ls(&String::from_utf8_lossy(&out))))
    }

    /// The entry for `path`, or None.
    pub fn stat(&self, path: &str) -> Result<Option<Entry>> {
        let (dir, name) = split(path);
        Ok(self
            .ls(dir)?
            .and_then(|entries| entries.into_iter().find(|e| e.name == name)))
    }

    /// The contents of regular file `path`, or None.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.stat(path)? {
            Some(entry) if entry.is_file() => self.request(&format!("cat {}", quote(path))),
            _ => Ok(None),
        }
    }

    /// The target of symbolic link `path`, or None.
    pub fn readlink(&self, path: &str) -> Result<Option<String>> {
        match self.stat(path)? {
            Some(entry) if entry.is_symlink() => {}
            _ => return Ok(None),
        }
        let Some(out) = self.request(&format!("stat {}", quote(path)))? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&out);
        if let Some(dest) = text
            .lines()
            .find_map(|line| line.split_once("Fast link dest: "))
            .map(|(_, dest)| dest.trim().trim_matches('"').to_string())
        {
            return Ok(Some(dest));
        }
        // A long target is stored in a block: its contents are the target.
        Ok(self
            .request(&format!("cat {}", quote(path)))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Every regular file and symlink under `dir`, recursively, as paths.
    pub fn walk(&self, dir: &str) -> Result<Vec<(String, Entry)>> {
        let mut found = Vec::new();
        let mut pending = vec![dir.trim_end_matches('/').to_string()];
        while let Some(dir) = pending.pop() {
            for entry in self.ls(&dir)?.unwrap_or_default() {
                let path = format!("{dir}/{}", entry.name);
                if entry.is_dir() {
                    pending.push(path.clone());
                }
                found.push((path, entry));
            }
        }
        Ok(found)
    }

    /// Filesystem figures from `dumpe2fs -h`.
    pub fn figures(&self) -> Result<Figures> {
        let text = exec::run_on("dumpe2fs", &["-h"], &self.image)?;
        Figures::parse(&text)
    }
}

/// `path` split into its directory and name.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", path),
    }
}

/// What `dumpe2fs -h` says about size and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Block size in bytes.
    pub block_size: u64,
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
}

impl Figures {
    /// Parse `dumpe2fs -h` output.
    pub fn parse(text: &str) -> Result<Figures> {
        let field = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim_start_matches(':').trim().parse().ok())
                .ok_or_else(|| Error::Internal(format!("dumpe2fs -h: no {name:?} field")))
        };
        Ok(Figures {
            block_size: field("Block size")?,
            blocks: field("Block count")?,
            free_blocks: field("Free blocks")?,
        })
    }

    /// Size of the filesystem in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks * self.block_size
    }

    /// Bytes in use.
    pub fn used_bytes(&self) -> u64 {
        (self.blocks - self.free_blocks) * self.block_size
    }
}

/// A batch of edits run in one `debugfs -w` invocation.
#[derive(Debug, Default)]
pub struct Edits {
    commands: Vec<String>,
    /// Files written by `write`, kept until the batch ran.
    staged: Vec<tempfile_like::Staged>,
}

impl Edits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Unlink `path` (its blocks are freed when no link remains).
    pub fn rm(&mut self, path: &str) {
        self.commands.push(format!("rm {}", quote(path)));
    }

    /// Remove the empty directory `path`.
    pub fn rmdir(&mut self, path: &str) {
        self.commands.push(format!("rmdir {}", quote(path)));
    }

    /// Truncate `path` to 0 bytes, keeping its inode, owner and mode.
    pub fn truncate(&mut self, path: &str) {
        self.commands.push(format!("punch {} 0", quote(path)));
        self.commands.push(format!("sif {} size 0", quote(path)));
    }

    /// Create directory `path` (its parent must exist or be created first).
    pub fn mkdir(&mut self, path: &str) {
        self.commands.push(format!("mkdir {}", quote(path)));
    }

    /// Create symlink `path` → `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.commands
            .push(format!("symlink {} {}", quote(path), quote(target)));
    }

    /// Write `contents` as `path` (root:root, `mode`), replacing it if
    /// `exists`.
    pub fn write(&mut self, path: &str, contents: &[u8], mode: u32, exists: bool) -> Result<()> {
        let staged = tempfile_like::Staged::new(contents)?;
        if exists {
            self.rm(path);
        }
        self.commands.push(format!(
            "write {} {}",
            quote(&staged.path().to_string_lossy()),
            quote(path)
        ));
        self.commands
            .push(format!("sif {} mode 0{:o}", quote(path), 0o100000 | mode));
        self.commands.push(format!("sif {} uid 0", quote(path)));
        self.commands.push(format!("sif {} gid 0", quote(path)));
        self.staged.push(staged);
        Ok(())
    }

    /// Run the batch on `fs`; any complaint from debugfs fails it.
    pub fn apply(self, fs: &Ext4) -> Result<()> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let script = tempfile_like::Staged::new(self.commands.join("\n").as_bytes())?;
        let out = exec::checked(
            exec::command("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(script.path())
                .arg(fs.image()),
            &[0],
        )?;
        let complaints = complaints(&out.stderr);
        if !complaints.is_empty() {
            return Err(Error::Program {
                command: format!("debugfs -w {}", fs.image().display()),
                detail: complaints.join("; "),
            });
        }
        Ok(())
    }
}

/// Small temporary files for debugfs' `write` and `-f`, removed on drop.
mod tempfile_like {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::error::{Error, Result};

    pub(super) static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A file holding some bytes for the life of the value.
    #[derive(Debug)]
    pub struct Staged(PathBuf);

    impl Staged {
        /// Create a new private file (O_EXCL, 0600): the tool runs as root
        /// on cards, and /tmp is shared, so a name prepared by someone else
        /// (a symlink planted there) is skipped, never followed.
        pub fn new(contents: &[u8]) -> Result<Staged> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            loop {
                let path = std::env::temp_dir().join(format!(
                    "okome-golden-image-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                {
                    Ok(mut file) => {
                        file.write_all(contents).map_err(Error::io(&path))?;
                        return Ok(Staged(path));
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(Error::Io(path, error)),
                }
            }
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Staged {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_p_lines_parse_and_dots_are_skipped() {
        let entries = parse_ls(
            "/12/040755/0/0/.//\n/2/040755/0/0/..//\n/13/100640/0/4/syslog/6/\n\
             /19/120777/0/0/null mask/9/\n/20/040755/0/0/journal//\n",
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "syslog");
        assert!(entries[0].is_file());
        assert_eq!(
            (entries[0].mode & 0o7777, entries[0].gid, entries[0].size),
            (0o640, 4, 6)
        );
        assert!(entries[1].is_symlink());
        assert_eq!(entries[1].name, "null mask");
        assert!(entries[2].is_dir());
    }

    #[test]
    fn a_symlink_planted_at_a_staging_name_is_skipped_not_followed() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let next = tempfile_like::NEXT.load(Ordering::Relaxed);
        let planted: Vec<std::path::PathBuf> = (next..next + 64)
            .map(|n| {
                let path = std::env::temp_dir()
                    .join(format!("okome-golden-image-{}-{n}", std::process::id()));
                std::os::unix::fs::symlink(&victim, &path).unwrap();
                path
            })
            .collect();
        let staged = tempfile_like::Staged::new(b"debugfs script").unwrap();
        for path in &planted {
            let _ = std::fs::remove_file(path);
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read(staged.path()).unwrap(), b"debugfs script");
        assert!(!planted.contains(&staged.path().to_path_buf()));
    }

    #[test]
    fn paths_split_into_dir_and_name() {
        assert_eq!(split("/etc/machine-id"), ("/etc", "machine-id"));
        assert_eq!(split("/etc"), ("/", "etc"));
    }

    #[test]
    fn dumpe2fs_figures() {
        let figures = Figures::parse(
            "Block count:              65536\nFree blocks:              56014\nBlock size:               1024\n",
        )
        .unwrap();
        assert_eq!(figures.bytes(), 64 << 20);
        assert_eq!(figures.used_bytes(), (65536 - 56014) * 1024);
    }
}

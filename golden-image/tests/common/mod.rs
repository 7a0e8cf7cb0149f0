//! What every golden-image test shares: the tool run isolated on a fake
//! system root (mountinfo, /sys/block) and a fixture card built in a temp dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use okome_golden_image::fixture::{self, Fixture, Options};

/// The repository's configs/ (the shipped SD-wear files).
pub fn configs() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs"))
}

/// A fake system for OKOME_ROOT: the running system's root on /dev/fakeroot2.
#[derive(Debug)]
pub struct System {
    pub dir: tempfile::TempDir,
}

impl System {
    pub fn new() -> System {
        let system = System {
            dir: tempfile::tempdir().unwrap(),
        };
        system.mountinfo(&[("/", "/dev/fakeroot2")]);
        std::fs::create_dir_all(system.dir.path().join("sys/block")).unwrap();
        system
    }

    /// Replace the mount table with (mount point, source) pairs.
    pub fn mountinfo(&self, mounts: &[(&str, &str)]) {
        let mut text = String::new();
        for (i, (point, source)) in mounts.iter().enumerate() {
            text.push_str(&format!(
                "{} 1 8:{i} / {point} rw,noatime shared:{i} - ext4 {source} rw\n",
                20 + i
            ));
        }
        let path = self.dir.path().join("proc/self/mountinfo");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Attach `file` to a fake loop device.
    pub fn attach_loop(&self, file: &Path) {
        let dir = self.dir.path().join("sys/block/loop7/loop");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("backing_file"),
            format!("{}\n", file.canonicalize().unwrap().display()),
        )
        .unwrap();
    }

    /// The tool, isolated (the test kit's way): no OKOME_* or JOURNAL_STREAM
    /// from the caller, rooted here; a card's worth of work may take minutes.
    pub fn tool(&self) -> assert_cmd::Command {
        let mut cmd = okome_testkit::tool!("okome-golden-image", self.dir.path());
        cmd.timeout(std::time::Duration::from_secs(300));
        cmd
    }

    /// `create SRC OUT --configs <repo configs>`: the run every create
    /// test starts from; the caller adds its options.
    pub fn create(&self, src: &Path, out: &Path) -> assert_cmd::Command {
        let mut cmd = self.tool();
        cmd.arg("create")
            .arg(src)
            .arg(out)
            .arg("--configs")
            .arg(configs());
        cmd
    }

    /// `verify IMAGE --configs <repo configs>`.
    pub fn verify(&self, image: &Path) -> assert_cmd::Command {
        let mut cmd = self.tool();
        cmd.arg("verify").arg(image).arg("--configs").arg(configs());
        cmd
    }
}

/// A fixture card in its own temp dir.
pub fn card(options: &Options) -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture::build(dir.path(), options).unwrap();
    (dir, fixture)
}

/// sha256 of a file.
pub fn sha256(path: &Path) -> String {
    okome_golden_image::compress::sha256_file(path).unwrap()
}

/// Whether `needle` occurs anywhere in the file (read in pieces).
pub fn contains(path: &Path, needle: &[u8]) -> bool {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut carry: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            return false;
        }
        carry.extend_from_slice(&buffer[..n]);
        if carry.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        let keep = carry.len().saturating_sub(needle.len());
        carry.drain(..keep);
    }
}

/// The names in a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Run a program and return stdout, panicking with its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

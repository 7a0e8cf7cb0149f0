//! The boot partition, read and written in place with mtools (`img@@offset`):
//! no loop device, no mount. It holds cmdline.txt (whose `root=PARTUUID=`
//! must name the root partition) and, after `burn`, okome-node.conf.

use std::path::Path;

use crate::error::{Error, Result};
use crate::exec;

/// The file `burn` writes for okome-firstboot.
pub const NODE_CONF: &str = "okome-node.conf";

/// A FAT filesystem at `offset` bytes into `image`.
#[derive(Debug, Clone, Copy)]
pub struct Fat<'a> {
    /// The disk image (or device).
    pub image: &'a Path,
    /// Byte offset of the partition.
    pub offset: u64,
}

impl Fat<'_> {
    /// A file's contents, or None when it is not there.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let out = exec::output(
            exec::command("mtype")
                .arg("-i")
                .arg(exec::mtools_target(self.image, self.offset))
                .arg(format!("::{name}")),
        )?;
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("not found") {
            return Ok(None);
        }
        Err(Error::Program {
            command: format!(
                "mtype -i {}@@{} ::{name}",
                self.image.display(),
                self.offset
            ),
            detail: stderr.trim().to_string(),
        })
    }

    /// Write (or replace) a file in the root directory.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let dir = tempfile_dir()?;
        let local = dir.join(name);
        std::fs::write(&local, contents).map_err(Error::io(&local))?;
        let result = exec::checked(
            exec::command("mcopy")
                .arg("-o")
                .arg("-i")
                .arg(exec::mtools_target(self.image, self.offset))
                .arg(&local)
                .arg(format!("::{name}")),
            &[0],
        );
        let _ = std::fs::remove_dir_all(&dir);
        result.map(|_| ())
    }
}

/// A new private directory (0700, never one that already exists: /tmp is
/// shared and the tool runs as root on cards).
fn tempfile_dir() -> Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    for attempt in 0u32.. {
        let dir = std::env::temp_dir().join(format!(
            "okome-golden-image-fat-{}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(Error::Io(dir, error)),
        }
    }
    unreachable!("u32 attempts")
}

/// The `root=PARTUUID=…` value of a cmdline.txt, if any.
pub fn cmdline_root_partuuid(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("root=PARTUUID="))
        .map(|id| id.to_ascii_lowercase())
}

/// The okome-node.conf text for `hostname` and `role`.
pub fn node_conf(hostname: &str, role: &str) -> String {
    format!(
        "# Written by okome-golden-image burn; read once by okome-firstboot.\nhostname={hostname}\nrole={role}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_partuuid_is_read_from_cmdline_txt() {
        assert_eq!(
            cmdline_root_partuuid(
                "console=serial0,115200 root=PARTUUID=1234ABCD-02 rootfstype=ext4 rootwait\n"
            ),
            Some("1234abcd-02".into())
        );
        assert_eq!(cmdline_root_partuuid("root=/dev/mmcblk0p2"), None);
    }
}

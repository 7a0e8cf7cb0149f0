//! The refusals that keep a card and the running system safe, checked before
//! anything is written.
//!
//! A card read while one of its partitions is mounted gives an image of a
//! filesystem in mid-write (PiShrink's users lose data this way); an image
//! file attached to a loop device may be written under us; the running
//! system's disk is never a source or a target; OUT must not land on SRC;
//! and a run that would fill the disk halfway is refused before it starts.
//! Everything is read through `OKOME_ROOT` (`/proc/self/mountinfo`,
//! `/sys/block/loop*/loop/backing_file`), so tests hand the real code a fake
//! system with a plain file standing in for the device. The parsing and the
//! matching are pure functions with table tests.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use okome_common::root;

use crate::error::{Error, Refusal, Result};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// What is mounted (`/dev/mmcblk0p2`, `tmpfs`, …).
    pub source: String,
    /// The device number, `179:2` (matches a `/dev/root` source to its disk).
    pub majmin: String,
}

/// Undo mountinfo's octal escapes (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo; lines that do not fit are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let point = fields.get(4)?;
            let source = fields.get(dash + 2)?;
            let majmin = fields.get(2)?;
            Some(Mount {
                majmin: (*majmin).to_string(),
                point: PathBuf::from(unescape(point)),
                source: unescape(source),
            })
        })
        .collect()
}

/// Whether `source` is `disk` itself or one of its partitions
/// (`/dev/sdb` → `/dev/sdb1`; `/dev/mmcblk0` → `/dev/mmcblk0p2`).
pub fn is_on_disk(source: &str, disk: &str) -> bool {
    let Some(rest) = source.strip_prefix(disk) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let digits = rest.strip_prefix('p').unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The disk a partition node belongs to (`/dev/mmcblk0p2` → `/dev/mmcblk0`,
/// `/dev/sda1` → `/dev/sda`); a name without a partition number is itself.
pub fn disk_of(source: &str) -> String {
    let trimmed = source.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() == source.len() {
        return source.to_string();
    }
    match trimmed.strip_suffix('p') {
        Some(disk) if disk.ends_with(|c: char| c.is_ascii_digit()) => disk.to_string(),
        _ => trimmed.to_string(),
    }
}

/// The mounts of the system (through `OKOME_ROOT`).
pub fn mounts() -> Result<Vec<Mount>> {
    let path = root::rooted("/proc/self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
    Ok(parse_mountinfo(&text))
}

/// Image files attached to loop devices: (loop device, backing file).
pub fn loop_backing_files() -> Vec<(String, PathBuf)> {
    let dir = root::rooted("/sys/block");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            let text = text.trim_end_matches('\n');
            let text = text.strip_suffix(" (deleted)").unwrap_or(text);
            found.push((format!("/dev/{name}"), PathBuf::from(text)));
        }
    }
    found
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(Error::io(path))
}

fn refuse<T>(refusal: Refusal, message: String) -> Result<T> {
    Err(Error::Refused(refusal, message))
}

/// Refuse `path` (SRC of create, DEVICE of burn) when it, or a partition of
/// it, is mounted, when it is attached to a loop device, or when it is the
/// running system's disk.
pub fn check_disk(path: &Path, mounts: &[Mount], loops: &[(String, PathBuf)]) -> Result<()> {
    let path = canonical(path)?;
    let name = path.to_string_lossy().into_owned();
    let rdev = block_majmin(&path);
    if let Some(root) = mounts.iter().find(|m| m.point == Path::new("/")) {
        let same_device = rdev.as_ref().is_some_and(|rdev| {
            *rdev == root.majmin || disk_majmin(&root.majmin).as_ref() == Some(rdev)
        });
        if same_device || is_on_disk(&root.source, &name) || disk_of(&root.source) == name {
            return refuse(
                Refusal::SystemDisk,
                format!(
                    "{name} holds the running system's root filesystem ({} on /)",
                    root.source
                ),
            );
        }
    }
    if let Some(mount) = mounts.iter().find(|m| is_on_disk(&m.source, &name)) {
        return refuse(
            Refusal::Mounted,
            format!(
                "{} is mounted on {}: unmount every partition of {name} first (an image of a mounted filesystem is an image of a filesystem in mid-write)",
                mount.source,
                mount.point.display()
            ),
        );
    }
    if let Some((device, _)) = loops.iter().find(|(_, file)| *file == path) {
        return refuse(
            Refusal::LoopAttached,
            format!("{name} is attached to {device}: detach it first (`losetup -d {device}`)"),
        );
    }
    Ok(())
}

/// `MAJ:MIN` of a block device node, None for anything else.
fn block_majmin(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some(format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    ))
}

/// `MAJ:MIN` of the disk holding partition `majmin`, from sysfs (through
/// `OKOME_ROOT`): `/sys/dev/block/179:2/../dev` is `179:0`.
fn disk_majmin(majmin: &str) -> Option<String> {
    let link = root::rooted(format!("/sys/dev/block/{majmin}"));
    let text = std::fs::read_to_string(link.join("../dev")).ok()?;
    Some(text.trim().to_string())
}

/// The mount holding `path` (longest mount point that is a prefix).
fn mount_of<'a>(path: &Path, mounts: &'a [Mount]) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
}

/// Refuse OUT when it is SRC (same path or same inode) or lies on a
/// filesystem that SRC holds.
pub fn check_out(src: &Path, out: &Path, mounts: &[Mount]) -> Result<()> {
    let src_path = canonical(src)?;
    let src_meta = std::fs::metadata(&src_path).map_err(Error::io(&src_path))?;
    if let Ok(out_meta) = std::fs::metadata(out)
        && out_meta.dev() == src_meta.dev()
        && out_meta.ino() == src_meta.ino()
    {
        return refuse(
            Refusal::OutOnSrc,
            format!("{} is {} itself", out.display(), src.display()),
        );
    }
    let dir = out_dir(out)?;
    let name = src_path.to_string_lossy();
    if let Some(mount) = mount_of(&dir, mounts)
        && is_on_disk(&mount.source, &name)
    {
        return refuse(
            Refusal::OutOnSrc,
            format!(
                "{} is on {} ({}), which is on {name}",
                out.display(),
                mount.point.display(),
                mount.source
            ),
        );
    }
    if src_meta.file_type().is_block_device()
        && std::fs::metadata(&dir).map_err(Error::io(&dir))?.dev() == src_meta.rdev()
    {
        return refuse(Refusal::OutOnSrc, format!("{} is on {name}", out.display()));
    }
    Ok(())
}

/// OUT's directory, canonical (it must exist).
pub fn out_dir(out: &Path) -> Result<PathBuf> {
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    canonical(parent)
}

/// Bytes available to an unprivileged writer in `dir`'s filesystem.
pub fn available(dir: &Path) -> Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|errno| Error::Io(dir.to_path_buf(), std::io::Error::from(errno)))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Refuse when `need` bytes do not fit in `available`.
pub fn check_space(dir: &Path, need: u64, available: u64) -> Result<()> {
    if need > available {
        return refuse(
            Refusal::NoSpace,
            format!(
                "{} has {} MiB free; this run needs about {} MiB (the extracted root filesystem, the image and its compressed copy)",
                dir.display(),
                available >> 20,
                need.div_ceil(1 << 20)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
23 22 179:1 / /boot/firmware rw,noatime shared:2 - vfat /dev/mmcblk0p1 rw
40 22 8:17 / /media/pi/My\\040Card rw shared:3 - ext4 /dev/sdb1 rw
41 22 0:30 / /tmp rw shared:4 - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_fields_and_escapes() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[2].point, PathBuf::from("/media/pi/My Card"));
        assert_eq!(mounts[2].source, "/dev/sdb1");
    }

    #[test]
    fn partitions_belong_to_their_disk_only() {
        for (source, disk, on) in [
            ("/dev/sdb1", "/dev/sdb", true),
            ("/dev/sdb", "/dev/sdb", true),
            ("/dev/sdb1", "/dev/sd", false),
            ("/dev/sdbc1", "/dev/sdb", false),
            ("/dev/mmcblk0p2", "/dev/mmcblk0", true),
            ("/dev/mmcblk0p2", "/dev/mmcblk", false),
            ("/dev/nvme0n1p1", "/dev/nvme0n1", true),
            ("tmpfs", "/dev/sdb", false),
        ] {
            assert_eq!(is_on_disk(source, disk), on, "{source} on {disk}");
        }
        assert_eq!(disk_of("/dev/mmcblk0p2"), "/dev/mmcblk0");
        assert_eq!(disk_of("/dev/sda1"), "/dev/sda");
        assert_eq!(disk_of("/dev/nvme0n1p3"), "/dev/nvme0n1");
        assert_eq!(disk_of("/dev/sda"), "/dev/sda");
    }

    #[test]
    fn space_is_checked_before_writing() {
        let dir = Path::new("/out");
        assert!(check_space(dir, 10, 10).is_ok());
        let error = check_space(dir, 11 << 20, 10 << 20).unwrap_err();
        assert!(
            matches!(error, Error::Refused(Refusal::NoSpace, _)),
            "{error}"
        );
    }
}

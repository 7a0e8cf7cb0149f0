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
    fn geometry_matches_what_fsck_fat_counts_for_fat12_16_32() {
        let dir = tempfile::tempdir().unwrap();
        for (kib, args, bits) in [
            ("1024", &["-F", "12"][..], 12),
            ("16384", &["-F", "16"][..], 16),
            ("65536", &["-F", "32", "-s", "1"][..], 32),
        ] {
            let path = dir.path().join(format!("fat{bits}.img"));
            exec::checked(
                exec::command("mkfs.fat")
                    .args(args)
                    .arg("-C")
                    .arg(&path)
                    .arg(kib),
                &[0],
            )
            .unwrap();
            let image = std::fs::read(&path).unwrap();
            let geometry = Geometry::parse(&image[..512]).unwrap();
            assert_eq!(geometry.bits, bits);
            let fsck = exec::run_on("fsck.fat", &["-n"], &path).unwrap();
            let total: u64 = fsck
                .lines()
                .find(|line| line.trim_end().ends_with("clusters"))
                .and_then(|line| line.rsplit('/').next())
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{fsck}"));
            assert_eq!(geometry.clusters, total, "FAT{bits}: {fsck}");
            // An empty filesystem: only the metadata (and FAT32's root
            // directory cluster) is in use.
            let fat = &image
                [geometry.fat_start as usize..(geometry.fat_start + geometry.fat_bytes) as usize];
            let used: u64 = geometry.used_ranges(fat).iter().map(|(_, len)| len).sum();
            let root_cluster = if bits == 32 { geometry.cluster } else { 0 };
            assert_eq!(used, geometry.data_start + root_cluster, "FAT{bits}");
        }
        assert!(Geometry::parse(&[0u8; 512]).is_none());
    }

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

/// The geometry of a FAT filesystem, from its boot sector (BPB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per sector.
    pub sector: u64,
    /// Bytes per cluster.
    pub cluster: u64,
    /// Bytes before the data region: reserved sectors, the FATs and (FAT12/16)
    /// the root directory; copied whole.
    pub data_start: u64,
    /// Byte offset of the first FAT.
    pub fat_start: u64,
    /// Bytes in one FAT.
    pub fat_bytes: u64,
    /// Data clusters (numbered from 2).
    pub clusters: u64,
    /// 12, 16 or 32.
    pub bits: u8,
}

impl Geometry {
    /// Parse a boot sector; None when it is not a FAT boot sector.
    pub fn parse(boot: &[u8]) -> Option<Geometry> {
        if boot.len() < 512 || boot[510..512] != [0x55, 0xAA] {
            return None;
        }
        let u16_at = |i: usize| u64::from(u16::from_le_bytes([boot[i], boot[i + 1]]));
        let u32_at = |i: usize| {
            u64::from(u32::from_le_bytes([
                boot[i],
                boot[i + 1],
                boot[i + 2],
                boot[i + 3],
            ]))
        };
        let sector = u16_at(11);
        let per_cluster = u64::from(boot[13]);
        let reserved = u16_at(14);
        let fats = u64::from(boot[16]);
        let root_entries = u16_at(17);
        let total = if u16_at(19) != 0 {
            u16_at(19)
        } else {
            u32_at(32)
        };
        let fat_sectors = if u16_at(22) != 0 {
            u16_at(22)
        } else {
            u32_at(36)
        };
        if !matches!(sector, 512 | 1024 | 2048 | 4096)
            || per_cluster == 0
            || fats == 0
            || fat_sectors == 0
        {
            return None;
        }
        let root_sectors = (root_entries * 32).div_ceil(sector);
        let data_sectors = reserved + fats * fat_sectors + root_sectors;
        let clusters = total.checked_sub(data_sectors)? / per_cluster;
        let bits = match clusters {
            0..4085 => 12,
            4085..65525 => 16,
            _ => 32,
        };
        Some(Geometry {
            sector,
            cluster: per_cluster * sector,
            data_start: data_sectors * sector,
            fat_start: reserved * sector,
            fat_bytes: fat_sectors * sector,
            clusters,
            bits,
        })
    }

    /// The FAT entry of cluster `n` (0 means free).
    pub fn entry(&self, fat: &[u8], n: u64) -> u32 {
        let n = n as usize;
        match self.bits {
            32 => fat.get(n * 4..n * 4 + 4).map_or(0, |b| {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x0FFF_FFFF
            }),
            16 => fat
                .get(n * 2..n * 2 + 2)
                .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]]))),
            _ => {
                let i = n + n / 2;
                let Some(b) = fat.get(i..i + 2) else { return 0 };
                let pair = u32::from(u16::from_le_bytes([b[0], b[1]]));
                if n.is_multiple_of(2) {
                    pair & 0xFFF
                } else {
                    pair >> 4
                }
            }
        }
    }

    /// Byte ranges (offset, length) within the partition that hold data:
    /// everything before the data region, then each run of clusters in
    /// use. Free clusters (entry 0) and bad ones are left out, so whatever
    /// a deleted file left there (a consumed userconf.txt or Wi-Fi
    /// password) never reaches the image.
    pub fn used_ranges(&self, fat: &[u8]) -> Vec<(u64, u64)> {
        let bad = match self.bits {
            32 => 0x0FFF_FFF7,
            16 => 0xFFF7,
            _ => 0xFF7,
        };
        let mut ranges = vec![(0, self.data_start)];
        for n in 2..self.clusters + 2 {
            let entry = self.entry(fat, n);
            if entry == 0 || entry == bad {
                continue;
            }
            let offset = self.data_start + (n - 2) * self.cluster;
            match ranges.last_mut() {
                Some((start, len)) if *start + *len == offset => *len += self.cluster,
                _ => ranges.push((offset, self.cluster)),
            }
        }
        ranges
    }
}

/// Copy the FAT filesystem at `from` in `src` to `to` in `dst`, clusters in
/// use only (`dst` is a fresh sparse file: the rest reads as zeros). Falls
/// back to a whole copy when the boot sector is not FAT's.
pub fn copy_used(
    src: &std::fs::File,
    from: u64,
    dst: &std::fs::File,
    to: u64,
    len: u64,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut boot = vec![0u8; 512];
    src.read_exact_at(&mut boot, from)
        .map_err(|e| Error::Internal(format!("reading the boot partition's boot sector: {e}")))?;
    let Some(geometry) =
        Geometry::parse(&boot).filter(|g| g.data_start + g.clusters * g.cluster <= len)
    else {
        log::warn!("the boot partition has no FAT boot sector: copied whole");
        return crate::copy::copy_between(src, from, dst, to, len, "boot partition");
    };
    let mut fat = vec![0u8; geometry.fat_bytes as usize];
    src.read_exact_at(&mut fat, from + geometry.fat_start)
        .map_err(|e| Error::Internal(format!("reading the boot partition's FAT: {e}")))?;
    for (offset, bytes) in geometry.used_ranges(&fat) {
        crate::copy::copy_between(
            src,
            from + offset,
            dst,
            to + offset,
            bytes,
            "boot partition",
        )?;
    }
    Ok(())
}

//! The partition table: what `sfdisk --json` says, which partition is the
//! boot FAT and which the ext4 root, and the shrunk table written to OUT.
//!
//! Pure apart from [`read`]: the layout rules (MBR; a FAT boot partition; the
//! Linux root partition last, so the image can end where it ends) are table
//! tests. The disk identifier is kept byte for byte, because on an MBR disk
//! it *is* the PARTUUID prefix that cmdline.txt and fstab name.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Refusal, Result};
use crate::exec;

/// Sector size of every table this tool writes (sfdisk's unit).
pub const SECTOR: u64 = 512;

#[derive(Debug, Deserialize)]
struct Dump {
    partitiontable: Table,
}

/// A partition table as sfdisk reports it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Table {
    /// `dos` or `gpt`.
    pub label: String,
    /// The disk identifier, `0x1234abcd` on MBR.
    pub id: Option<String>,
    /// Sector size; only 512 is supported.
    #[serde(default = "default_sector")]
    pub sectorsize: u64,
    /// The partitions, in table order.
    pub partitions: Vec<Partition>,
}

fn default_sector() -> u64 {
    SECTOR
}

/// One partition.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Partition {
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// MBR type, e.g. `c` or `83`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Boot flag.
    #[serde(default)]
    pub bootable: bool,
}

impl Partition {
    /// Byte offset of the partition.
    pub fn offset(&self) -> u64 {
        self.start * SECTOR
    }

    /// Length in bytes.
    pub fn bytes(&self) -> u64 {
        self.size * SECTOR
    }

    /// First byte after the partition.
    pub fn end(&self) -> u64 {
        self.offset() + self.bytes()
    }
}

/// The two partitions the tool works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The table as read.
    pub table: Table,
    /// Index of the FAT boot partition.
    pub boot: usize,
    /// Index of the ext4 root partition (the last one).
    pub root: usize,
}

impl Layout {
    /// The boot partition.
    pub fn boot(&self) -> &Partition {
        &self.table.partitions[self.boot]
    }

    /// The root partition.
    pub fn root(&self) -> &Partition {
        &self.table.partitions[self.root]
    }

    /// The MBR disk identifier as PARTUUIDs spell it: `1234abcd`.
    pub fn disk_id(&self) -> String {
        let id = self.table.id.as_deref().unwrap_or("");
        format!("{:0>8}", id.trim_start_matches("0x").to_ascii_lowercase())
    }

    /// The PARTUUID of partition `index` (0-based): `1234abcd-02`.
    pub fn partuuid(&self, index: usize) -> String {
        format!("{}-{:02}", self.disk_id(), index + 1)
    }
}

/// Read SRC's table with `sfdisk --json` (which opens it read-only).
pub fn read(path: &Path) -> Result<Table> {
    let out = exec::output(exec::command("sfdisk").arg("--json").arg(path))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("does not contain a recognized partition table") {
            return Err(Error::Refused(
                Refusal::Layout,
                format!(
                    "{}: no partition table (a compressed image? decompress it first)",
                    path.display()
                ),
            ));
        }
        return Err(Error::Program {
            command: format!("sfdisk --json {}", path.display()),
            detail: stderr,
        });
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Parse `sfdisk --json` output.
pub fn parse(text: &str) -> Result<Table> {
    serde_json::from_str::<Dump>(text)
        .map(|dump| dump.partitiontable)
        .map_err(|error| Error::Internal(format!("sfdisk --json: {error}")))
}

fn is_fat(kind: &str) -> bool {
    matches!(kind, "b" | "c" | "e" | "6")
}

/// Find the boot FAT and the root partition, or say why this is not a Pi layout.
pub fn layout(table: Table) -> Result<Layout> {
    let refuse = |why: String| Err(Error::Refused(Refusal::Layout, why));
    if table.label != "dos" {
        return refuse(format!(
            "partition table is {:?}: only MBR (dos) Pi images are supported",
            table.label
        ));
    }
    if table.sectorsize != SECTOR {
        return refuse(format!("sector size {} (only 512)", table.sectorsize));
    }
    let Some(boot) = table.partitions.iter().position(|p| is_fat(&p.kind)) else {
        return refuse("no FAT boot partition (type b, c, e or 6)".into());
    };
    let Some(root) = table.partitions.iter().rposition(|p| p.kind == "83") else {
        return refuse("no Linux (type 83) root partition".into());
    };
    let last = table
        .partitions
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.start)
        .map(|(i, _)| i);
    if last != Some(root) {
        return refuse(
            "the root partition is not the last one: the image cannot end with it".into(),
        );
    }
    if table
        .partitions
        .iter()
        .any(|p| matches!(p.kind.as_str(), "5" | "f" | "85"))
    {
        return refuse("extended partitions are not supported".into());
    }
    Ok(Layout { table, boot, root })
}

/// The sfdisk script for OUT: the same table, disk id and partitions, with
/// the root partition `root_sectors` long.
pub fn script(layout: &Layout, root_sectors: u64) -> String {
    let mut text = format!(
        "label: dos\nlabel-id: {}\nunit: sectors\nsector-size: 512\n\n",
        layout.table.id.as_deref().unwrap_or("0x00000000")
    );
    for (index, partition) in layout.table.partitions.iter().enumerate() {
        let size = if index == layout.root {
            root_sectors
        } else {
            partition.size
        };
        text.push_str(&format!(
            "start={}, size={}, type={}{}\n",
            partition.start,
            size,
            partition.kind,
            if partition.bootable { ", bootable" } else { "" }
        ));
    }
    text
}

/// Round `bytes` up to a whole MiB (partition ends stay aligned).
pub fn round_mib(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    bytes.div_ceil(MIB) * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    const PI: &str = r#"{"partitiontable": {"label": "dos", "id": "0x1234ABCD",
        "device": "x.img", "unit": "sectors", "sectorsize": 512, "partitions": [
        {"node": "x.img1", "start": 8192, "size": 1048576, "type": "c"},
        {"node": "x.img2", "start": 1056768, "size": 6000000, "type": "83"}]}}"#;

    #[test]
    fn a_pi_table_is_found_and_its_partuuids_spelled_like_blkid() {
        let layout = layout(parse(PI).unwrap()).unwrap();
        assert_eq!((layout.boot, layout.root), (0, 1));
        assert_eq!(layout.partuuid(1), "1234abcd-02");
        assert_eq!(layout.root().offset(), 1_056_768 * 512);
    }

    #[test]
    fn layouts_the_tool_cannot_shrink_are_refused() {
        let gpt = PI.replace("\"dos\"", "\"gpt\"");
        let no_fat = PI.replace("\"type\": \"c\"", "\"type\": \"83\"");
        let root_first = PI.replace("\"start\": 8192", "\"start\": 9000000");
        for text in [gpt, no_fat, root_first] {
            let error = layout(parse(&text).unwrap()).unwrap_err();
            assert!(
                matches!(error, Error::Refused(Refusal::Layout, _)),
                "{error}"
            );
        }
    }

    #[test]
    fn the_new_script_keeps_the_disk_id_and_moves_only_the_root_end() {
        let layout = layout(parse(PI).unwrap()).unwrap();
        let text = script(&layout, 4096);
        assert!(text.contains("label-id: 0x1234ABCD"), "{text}");
        assert!(
            text.contains("start=8192, size=1048576, type=c\n"),
            "{text}"
        );
        assert!(
            text.contains("start=1056768, size=4096, type=83\n"),
            "{text}"
        );
    }

    #[test]
    fn sizes_round_up_to_whole_mib() {
        assert_eq!(round_mib(1), 1 << 20);
        assert_eq!(round_mib(1 << 20), 1 << 20);
        assert_eq!(round_mib((1 << 20) + 1), 2 << 20);
    }
}

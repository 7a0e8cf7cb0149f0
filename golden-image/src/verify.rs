//! `verify IMG[.zst]`: every promise `create` makes, checked again on the
//! finished image, one named [`Check`] each, so a tampered or half-made
//! image exits 1 naming what is wrong.
//!
//! A compressed image is decompressed into a work directory beside it;
//! the root filesystem is extracted (`e2image -ra`) and the boot partition
//! copied out, so e2fsck, fsck.fat and debugfs read whole files.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::VerifyConfig;
use crate::compress;
use crate::copy;
use crate::create::partuuid_problem;
use crate::error::{Error, Result};
use crate::exec;
use crate::ext4::Ext4;
use crate::prepare::{self, MANIFEST, Shipped, Step};
use crate::safety;
use crate::table::{self, Layout};

/// The image-level checks besides the preparation steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Whole {
    /// IMG matches IMG.sha256 (and a .zst decompresses cleanly).
    Checksum,
    /// `sfdisk --verify` is clean and the layout is a Pi's.
    PartitionTable,
    /// The file reaches the end of the last partition.
    FileLength,
    /// The root filesystem is no larger than its partition.
    FsSize,
    /// `e2fsck -fn` is clean.
    E2fsck,
    /// `fsck.fat -n` is clean.
    FsckFat,
    /// The manifest is in the image.
    Manifest,
    /// cmdline.txt and fstab name this disk's PARTUUIDs.
    Partuuid,
}

impl Whole {
    /// The word used in reports.
    pub fn word(self) -> &'static str {
        match self {
            Whole::Checksum => "checksum",
            Whole::PartitionTable => "partition-table",
            Whole::FileLength => "file-length",
            Whole::FsSize => "fs-size",
            Whole::E2fsck => "e2fsck",
            Whole::FsckFat => "fsck-fat",
            Whole::Manifest => "manifest",
            Whole::Partuuid => "partuuid",
        }
    }
}

/// One result line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (a [`Whole`] or [`Step`] word).
    pub check: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What is wrong, or what was seen.
    pub detail: String,
}

/// The verify report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema name.
    pub schema: &'static str,
    /// The image checked.
    pub image: PathBuf,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks' words.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check)
            .collect()
    }

    /// Human summary.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            text.push_str(&format!(
                "  {:<4} {:<16} {}\n",
                if check.ok { "ok" } else { "FAIL" },
                check.check,
                check.detail
            ));
        }
        text
    }

    fn push(&mut self, check: &'static str, problem: Option<String>, fine: &str) {
        self.checks.push(Check {
            check,
            ok: problem.is_none(),
            detail: problem.unwrap_or_else(|| fine.to_string()),
        });
    }
}

/// Run `verify`. Err only when it cannot check at all; a failed check is
/// in the report (exit 1).
pub fn verify(config: &VerifyConfig) -> Result<Report> {
    let shipped = Shipped::load(&config.configs)?;
    File::open(&config.image).map_err(Error::io(&config.image))?;
    let dir = safety::out_dir(&config.image)?;
    let name = config
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = dir.join(format!(".{name}.verify-{}", std::process::id()));
    std::fs::create_dir(&work).map_err(Error::io(&work))?;
    let result = run(config, &shipped, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run(config: &VerifyConfig, shipped: &Shipped, work: &Path) -> Result<Report> {
    let mut report = Report {
        schema: "okome-golden-image/verify/1",
        image: config.image.clone(),
        checks: Vec::new(),
    };
    report.push(
        Whole::Checksum.word(),
        checksum_problem(&config.image)?,
        "matches the .sha256 sidecar",
    );
    let raw = if compress::is_zst(&config.image) {
        let raw = work.join("image.raw");
        compress::decompress(&config.image, &raw)?;
        raw
    } else {
        config.image.clone()
    };
    let sfdisk = exec::output(exec::command("sfdisk").arg("--verify").arg(&raw))?;
    let layout = match table::read(&raw).and_then(table::layout) {
        Ok(layout) if sfdisk.status.success() => layout,
        Ok(_) => {
            report.push(
                Whole::PartitionTable.word(),
                Some(format!(
                    "sfdisk --verify: {}",
                    String::from_utf8_lossy(&sfdisk.stdout).trim()
                )),
                "",
            );
            return Ok(report);
        }
        Err(error) => {
            report.push(Whole::PartitionTable.word(), Some(error.to_string()), "");
            return Ok(report);
        }
    };
    report.push(
        Whole::PartitionTable.word(),
        None,
        &format!("MBR, disk id {}", layout.disk_id()),
    );
    let len = std::fs::metadata(&raw).map_err(Error::io(&raw))?.len();
    let end = layout
        .table
        .partitions
        .iter()
        .map(|p| p.end())
        .max()
        .unwrap_or(0);
    report.push(
        Whole::FileLength.word(),
        (len < end).then(|| format!("{len} bytes, but the last partition ends at {end}")),
        &format!("{len} bytes"),
    );
    let root = extract(&raw, &layout, work)?;
    let figures = root.figures()?;
    let part = layout.root().bytes();
    report.push(
        Whole::FsSize.word(),
        (figures.bytes() > part)
            .then(|| format!("filesystem {} bytes > partition {part}", figures.bytes())),
        &format!(
            "{} MiB filesystem in a {} MiB partition",
            figures.bytes() >> 20,
            part >> 20
        ),
    );
    let e2fsck = exec::output(exec::command("e2fsck").arg("-fn").arg(root.image()))?;
    report.push(
        Whole::E2fsck.word(),
        (!e2fsck.status.success()).then(|| {
            format!(
                "e2fsck -fn: {}",
                String::from_utf8_lossy(&e2fsck.stdout)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        }),
        "clean",
    );
    report.push(
        Whole::FsckFat.word(),
        fsck_fat_problem(&raw, &layout, work)?,
        "clean",
    );
    let manifest = root.read(MANIFEST)?;
    report.push(
        Whole::Manifest.word(),
        manifest
            .is_none()
            .then(|| format!("{MANIFEST} is missing: not made by okome-golden-image create")),
        MANIFEST,
    );
    let masks = manifest
        .as_deref()
        .and_then(prepare::manifest_masks)
        .unwrap_or_default();
    report.push(
        Whole::Partuuid.word(),
        partuuid_problem(&raw, &layout, &root)?,
        &format!("root=PARTUUID={}", layout.partuuid(layout.root)),
    );
    for step in Step::ALL {
        let problem = prepare::check(*step, &root, shipped, &masks)?;
        report.push(step.word(), problem, "holds");
    }
    Ok(report)
}

fn checksum_problem(image: &Path) -> Result<Option<String>> {
    let sidecar = compress::sidecar_path(image);
    let Ok(text) = std::fs::read_to_string(&sidecar) else {
        return Ok(Some(format!("{} is missing", sidecar.display())));
    };
    let Some(want) = compress::sidecar_hash(&text) else {
        return Ok(Some(format!("{} holds no sha256", sidecar.display())));
    };
    let have = compress::sha256_file(image)?;
    Ok((have != want).then(|| format!("sha256 {have}, the sidecar says {want}")))
}

fn extract(raw: &Path, layout: &Layout, work: &Path) -> Result<Ext4> {
    let path = work.join("root.ext4");
    exec::checked(
        exec::command("e2image")
            .args(["-ra", "-o", &layout.root().offset().to_string()])
            .arg(raw)
            .arg(&path),
        &[0],
    )?;
    Ok(Ext4::new(path))
}

fn fsck_fat_problem(raw: &Path, layout: &Layout, work: &Path) -> Result<Option<String>> {
    let boot = layout.boot();
    let path = work.join("boot.fat");
    let src = File::open(raw).map_err(Error::io(raw))?;
    let dst = File::create(&path).map_err(Error::io(&path))?;
    dst.set_len(boot.bytes()).map_err(Error::io(&path))?;
    copy::copy_between(&src, boot.offset(), &dst, 0, boot.bytes(), "boot partition")?;
    let out = exec::output(exec::command("fsck.fat").arg("-n").arg(&path))?;
    Ok((!out.status.success()).then(|| {
        format!(
            "fsck.fat -n: {}",
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )
    }))
}

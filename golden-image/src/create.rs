//! `create SRC OUT`: the pipeline, in named steps (refuse, extract, prepare,
//! shrink, assemble, compress, publish), each a short function.
//!
//! SRC is only ever opened read-only (by sfdisk, dumpe2fs, e2image and a
//! read-only `File`). All work happens on files beside OUT: the extracted
//! root filesystem (`e2image -ra` copies used blocks only) and a temp image
//! renamed to OUT at the very end, after fsync; any failure removes both, so
//! no partial OUT is ever seen. resize2fs only ever sees a whole file, never
//! `IMG?offset=N` (resize2fs truncates such a file at the
//! filesystem's end: tests/trap.rs shows it and holds that we never do).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use serde::Serialize;

use crate::cli::CreateConfig;
use crate::compress;
use crate::error::{Error, Result};
use crate::exec;
use crate::ext4::{Ext4, Figures};
use crate::fat::{self, Fat};
use crate::prepare::{self, Done, Plan, Shipped};
use crate::safety;
use crate::table::{self, Layout, SECTOR};

/// What `create` did, for the summary and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema name.
    pub schema: &'static str,
    /// The image written.
    pub out: PathBuf,
    /// Its sidecar.
    pub sidecar: PathBuf,
    /// Each preparation step and what it did.
    pub steps: Vec<Done>,
    /// Root filesystem bytes in use in SRC.
    pub source_used_bytes: u64,
    /// Size of the raw image.
    pub raw_bytes: u64,
    /// Size of OUT on disk (compressed or raw).
    pub out_bytes: u64,
    /// SHA-256 of the raw image.
    pub raw_sha256: String,
    /// SHA-256 of OUT.
    pub out_sha256: String,
    /// The root partition's new size.
    pub root_partition_bytes: u64,
}

impl Report {
    /// The human summary.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        for done in &self.steps {
            text.push_str(&format!("  {:<16} {}\n", done.step.word(), done.detail));
        }
        text.push_str(&format!(
            "{}: {} MiB raw, {} MiB written (root partition {} MiB), sha256 {} in {}\n",
            self.out.display(),
            self.raw_bytes >> 20,
            self.out_bytes.div_ceil(1 << 20),
            self.root_partition_bytes >> 20,
            self.out_sha256,
            self.sidecar.display()
        ));
        text
    }
}

/// Files this run creates beside OUT; removed on every exit path but success.
#[derive(Debug)]
struct Scratch {
    work: PathBuf,
    temp_raw: PathBuf,
    temp_zst: PathBuf,
}

impl Scratch {
    fn new(out: &Path) -> Result<Scratch> {
        let dir = safety::out_dir(out)?;
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pid = std::process::id();
        let work = dir.join(format!(".{name}.work-{pid}"));
        std::fs::create_dir(&work).map_err(Error::io(&work))?;
        Ok(Scratch {
            temp_raw: dir.join(format!(".{name}.raw-{pid}")),
            temp_zst: dir.join(format!(".{name}.zst-{pid}")),
            work,
        })
    }

    fn clean(&self) {
        let _ = std::fs::remove_dir_all(&self.work);
        let _ = std::fs::remove_file(&self.temp_raw);
        let _ = std::fs::remove_file(&self.temp_zst);
    }
}

/// Set by SIGINT, SIGTERM or SIGHUP: `build` stops at the next step and
/// the scratch files are removed (a child such as zstd that got the same
/// Ctrl-C fails, which ends its step too).
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn watch_signals() -> Result<()> {
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&INTERRUPTED))
            .map_err(|e| Error::Internal(format!("cannot watch signal {signal}: {e}")))?;
    }
    Ok(())
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Internal(
            "interrupted: work files removed, no OUT written".into(),
        ));
    }
    Ok(())
}

/// Run `create`.
pub fn create(config: &CreateConfig) -> Result<Report> {
    watch_signals()?;
    let shipped = Shipped::load(&config.configs)?;
    let layout = refuse_or_read(config)?;
    let scratch = Scratch::new(&config.out)?;
    let result = build(config, &layout, shipped, &scratch);
    scratch.clean();
    result
}

/// Step 1: every refusal, then the table; nothing written yet.
fn refuse_or_read(config: &CreateConfig) -> Result<Layout> {
    let mounts = safety::mounts()?;
    safety::check_disk(&config.src, &mounts, &safety::loop_backing_files())?;
    safety::check_out(&config.src, &config.out, &mounts)?;
    // Opening read-only proves we may read it and is all we ever do to SRC.
    File::open(&config.src).map_err(Error::io(&config.src))?;
    let layout = table::layout(table::read(&config.src)?)?;
    let used = source_figures(&config.src, &layout)?.used_bytes();
    let compressed = if config.level.is_some() { used } else { 0 };
    let need = used + layout.root().offset() + used + config.margin + compressed;
    let dir = safety::out_dir(&config.out)?;
    safety::check_space(&dir, need, safety::available(&dir)?)?;
    Ok(layout)
}

/// The root filesystem's figures in SRC, read-only (dumpe2fs opens the
/// file read-only; an offset is harmless when nothing is written).
fn source_figures(src: &Path, layout: &Layout) -> Result<Figures> {
    let mut target = src.as_os_str().to_os_string();
    target.push(format!("?offset={}", layout.root().offset()));
    let text = exec::stdout(exec::command("dumpe2fs").arg("-h").arg(target))?;
    Figures::parse(&text)
}

fn build(
    config: &CreateConfig,
    layout: &Layout,
    shipped: Shipped,
    scratch: &Scratch,
) -> Result<Report> {
    let plan = Plan {
        shipped,
        masks: config.masks.clone(),
        add_keygen_unit: config.add_keygen_unit,
    };
    let started = std::time::Instant::now();
    // A progress line per long step on a terminal; the log otherwise.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let step = |what: &str| -> Result<()> {
        check_interrupted()?;
        let line = format!("{what} ({:.1} s)", started.elapsed().as_secs_f64());
        if tty {
            eprintln!("{}: {line}", crate::TOOL);
        } else {
            log::debug!("{line}");
        }
        Ok(())
    };
    let (root, steps, source_used_bytes) = prepared_copy(config, layout, &plan, scratch)?;
    step("prepared the extracted copy")?;
    let figures = match shrink(&root, config.margin, true)? {
        Some(figures) => figures,
        None => {
            let (again, _, _) = prepared_copy(config, layout, &plan, scratch)?;
            shrink(&again, config.margin, false)?
                .ok_or_else(|| Error::Internal("resize2fs -P: no minimum".into()))?
        }
    };
    step("shrunk the copy")?;
    let root_bytes = table::round_mib(figures.bytes());
    assemble(config, layout, &root, root_bytes, &scratch.temp_raw)?;
    step("assembled the image")?;
    let raw_bytes = std::fs::metadata(&scratch.temp_raw)
        .map_err(Error::io(&scratch.temp_raw))?
        .len();
    let (written, raw_sha256, out_sha256) = match config.level {
        Some(level) => {
            let compressed =
                compress::compress(&scratch.temp_raw, &scratch.temp_zst, level, config.threads)?;
            step("compressed")?;
            let raw = compress::round_trip(&scratch.temp_zst, &scratch.temp_raw)?;
            step("decompressed, compared and hashed: round trip ok")?;
            (&scratch.temp_zst, raw, compressed)
        }
        None => {
            let hash = compress::sha256_file(&scratch.temp_raw)?;
            (&scratch.temp_raw, hash.clone(), hash)
        }
    };
    let out_bytes = std::fs::metadata(written)
        .map_err(Error::io(written))?
        .len();
    check_interrupted()?;
    publish(written, &config.out, &out_sha256)?;
    log::debug!("published {}", config.out.display());
    Ok(Report {
        schema: "okome-golden-image/create/1",
        out: config.out.clone(),
        sidecar: compress::sidecar_path(&config.out),
        steps,
        source_used_bytes,
        raw_bytes,
        out_bytes,
        raw_sha256,
        out_sha256,
        root_partition_bytes: root_bytes,
    })
}

/// Steps 2-3: extract the root filesystem, check it, prepare it.
fn prepared_copy(
    config: &CreateConfig,
    layout: &Layout,
    plan: &Plan,
    scratch: &Scratch,
) -> Result<(Ext4, Vec<Done>, u64)> {
    let root = extract(&config.src, layout, &scratch.work)?;
    let used = root.figures()?.used_bytes();
    fsck(&root, "-fy", &[0, 1])?;
    let steps = prepare::apply(&root, plan)?;
    fsck(&root, "-fy", &[0, 1])?;
    Ok((root, steps, used))
}

/// Step 2: the root filesystem's used blocks into `work/root.ext4`.
fn extract(src: &Path, layout: &Layout, work: &Path) -> Result<Ext4> {
    let path = work.join("root.ext4");
    let _ = std::fs::remove_file(&path);
    exec::checked(
        exec::command("e2image")
            .args(["-ra", "-o", &layout.root().offset().to_string()])
            .arg(src)
            .arg(&path),
        &[0],
    )?;
    Ok(Ext4::new(path))
}

/// e2fsck with `mode`, accepting the exit codes in `ok`.
fn fsck(fs: &Ext4, mode: &str, ok: &[i32]) -> Result<()> {
    exec::checked(exec::command("e2fsck").arg(mode).arg(fs.image()), ok).map(|_| ())
}

/// Step 4a: shrink the extracted copy (a whole file, never `?offset=`).
///
/// resize2fs's own minimum (`-P`, what `-M` and PiShrink use) is pessimistic
/// with flex_bg: on the bench card it asks for 2.0 GiB to hold 1.1 GiB. So
/// the copy is first shrunk to what is used plus 5 % plus `margin` with
/// `-f` (which skips only that estimate); if resize2fs refuses, or e2fsck
/// -fn is not clean afterwards, the copy is thrown away and made again and
/// shrunk to resize2fs's own minimum plus `margin`. SRC is never at risk:
/// this is a copy. Returns None when the copy must be made again.
fn shrink(fs: &Ext4, margin: u64, tight: bool) -> Result<Option<Figures>> {
    let before = fs.figures()?;
    let minimum = if tight {
        let used = before.blocks - before.free_blocks;
        used + used / 20
    } else {
        let text = exec::stdout(&mut resize2fs(fs, &["-P"], None)?)?;
        text.lines()
            .find_map(|line| line.strip_prefix("Estimated minimum size of the filesystem:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| Error::Internal(format!("resize2fs -P: {text:?}")))?
    };
    let bytes = table::round_mib(minimum * before.block_size + margin);
    let blocks = (bytes / before.block_size).min(before.blocks);
    if blocks < before.blocks {
        let flags: &[&str] = if tight { &["-f"] } else { &[] };
        let mut command = resize2fs(fs, flags, Some(blocks))?;
        let resized = exec::output(&mut command)?;
        let clean = resized.status.success()
            && exec::output(exec::command("e2fsck").arg("-fn").arg(fs.image()))?
                .status
                .success();
        if !clean {
            if tight {
                log::warn!(
                    "resize2fs could not shrink the copy to {} MiB; making the copy again for resize2fs's own minimum",
                    bytes >> 20
                );
                return Ok(None);
            }
            return Err(Error::Program {
                command: exec::describe(&command),
                detail: String::from_utf8_lossy(&resized.stderr).trim().to_string(),
            });
        }
    }
    fs.figures().map(Some)
}

/// Every resize2fs run: flags, the extracted file, the size in blocks.
/// It takes an [`Ext4`], a whole file `extract` made, never a path with
/// `?offset=` (resize2fs would truncate the disk image to the filesystem's
/// size, tests/trap.rs): this is the only place the crate names resize2fs.
fn resize2fs(fs: &Ext4, flags: &[&str], blocks: Option<u64>) -> Result<std::process::Command> {
    if fs.image().to_string_lossy().contains('?') {
        return Err(Error::Internal(format!(
            "{}: resize2fs is only ever given a whole file",
            fs.image().display()
        )));
    }
    let mut command = exec::command("resize2fs");
    command.args(flags).arg(fs.image());
    if let Some(blocks) = blocks {
        command.arg(blocks.to_string());
    }
    Ok(command)
}

/// Step 4b: the temp image: root's used blocks at their offset, the shrunk
/// table with the same disk identifier, the boot partition; PARTUUIDs checked.
fn assemble(
    config: &CreateConfig,
    layout: &Layout,
    root: &Ext4,
    root_bytes: u64,
    temp: &Path,
) -> Result<()> {
    let offset = layout.root().offset();
    exec::checked(
        exec::command("e2image")
            .args(["-ra", "-O", &offset.to_string()])
            .arg(root.image())
            .arg(temp),
        &[0],
    )?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(temp)
        .map_err(Error::io(temp))?;
    file.set_len(offset + root_bytes).map_err(Error::io(temp))?;
    let src = File::open(&config.src).map_err(Error::io(&config.src))?;
    let boot = layout.boot();
    fat::copy_used(&src, boot.offset(), &file, boot.offset(), boot.bytes())?;
    file.sync_all().map_err(Error::io(temp))?;
    drop(file);
    write_table(temp, layout, root_bytes / SECTOR)?;
    if let Some(problem) = partuuid_problem(temp, layout, root)? {
        return Err(Error::Invalid(problem));
    }
    File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(temp))
}

/// Write the shrunk table with sfdisk, touching nothing but the table.
pub fn write_table(image: &Path, layout: &Layout, root_sectors: u64) -> Result<()> {
    let script = table::script(layout, root_sectors);
    let mut command = exec::command("sfdisk");
    command
        .args([
            "-q",
            "--no-reread",
            "--no-tell-kernel",
            "--wipe",
            "never",
            "--wipe-partitions",
            "never",
        ])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let describe = exec::describe(&command);
    let mut child = command.spawn().map_err(|e| Error::Program {
        command: describe.clone(),
        detail: format!("cannot start: {e}"),
    })?;
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Internal("sfdisk: no stdin".into()))?;
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Internal(format!("sfdisk: {e}")))?;
    }
    let out = child.wait_with_output().map_err(Error::io(image))?;
    if !out.status.success() {
        return Err(Error::Program {
            command: describe,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// cmdline.txt's `root=PARTUUID=` must be the root partition of this table,
/// and every `PARTUUID=` in fstab a partition of it. None when consistent.
pub fn partuuid_problem(image: &Path, layout: &Layout, root: &Ext4) -> Result<Option<String>> {
    let fat = Fat {
        image,
        offset: layout.boot().offset(),
    };
    let cmdline = fat
        .read("cmdline.txt")?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let want = layout.partuuid(layout.root);
    if let Some(cmdline) = &cmdline {
        match fat::cmdline_root_partuuid(cmdline) {
            Some(id) if id != want => {
                return Ok(Some(format!(
                    "cmdline.txt has root=PARTUUID={id}, but the root partition is {want}"
                )));
            }
            _ => {}
        }
    }
    let known: Vec<String> = (0..layout.table.partitions.len())
        .map(|i| layout.partuuid(i))
        .collect();
    let fstab = root
        .read("/etc/fstab")?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    for line in fstab.lines().filter_map(crate::fstab::parse_line) {
        if let Some(id) = line.spec.strip_prefix("PARTUUID=")
            && !known.contains(&id.to_ascii_lowercase())
        {
            return Ok(Some(format!(
                "/etc/fstab mounts {} from PARTUUID={id}, which is not on this disk (its partitions: {})",
                line.file,
                known.join(", ")
            )));
        }
    }
    Ok(None)
}

/// Step 5: fsync, rename into place, then the sidecar.
fn publish(temp: &Path, out: &Path, sha256: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // e2image and zstd create 0600 files; an image is for sharing.
    std::fs::set_permissions(temp, std::fs::Permissions::from_mode(0o644))
        .map_err(Error::io(temp))?;
    File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(temp))?;
    std::fs::rename(temp, out).map_err(Error::io(out))?;
    let sidecar = compress::sidecar_path(out);
    okome_common::fsutil::atomic_write(
        &sidecar,
        compress::sidecar_text(sha256, out).as_bytes(),
        0o644,
    )
    .map_err(Error::io(&sidecar))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize2fs_is_never_given_an_offset() {
        let error =
            resize2fs(&Ext4::new("card.img?offset=71303168"), &["-f"], Some(1)).unwrap_err();
        assert!(matches!(error, Error::Internal(_)), "{error}");
        let command = resize2fs(&Ext4::new("/work/root.ext4"), &["-f"], Some(1024)).unwrap();
        assert_eq!(
            exec::describe(&command),
            "resize2fs -f /work/root.ext4 1024"
        );
    }
}

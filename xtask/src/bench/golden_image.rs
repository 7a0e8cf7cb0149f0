//! `cargo xtask bench golden-image [--pishrink PATH] [--level N]`:
//! okome-golden-image against what people use today, on one generated card.
//!
//! The card is the test fixture grown to bench size (golden-image/src/
//! fixture.rs): a 3 GiB root partition with ≥ 1 GiB used (half random, half
//! repetitive data, so compression has something to do) and a 512 MiB
//! "dirty free area" (a deleted file's blocks). Generated once and cached
//! under target/bench/golden-image/. Each contender gets its own copy of the
//! card and GNU time measures wall time and the peak RSS of the largest
//! process of its tree:
//!   okome-golden-image create card OUT.img.zst  (and --no-compress, raw size)
//!   dd if=card | zstd -T0 -LEVEL                (the naive whole-card copy)
//!   pishrink.sh -s copy; zstd -T0 -LEVEL        (PiShrink, which needs
//!                                                losetup: reported as not
//!                                                run when loop devices are
//!                                                missing or no script given)
//! Goals (issue 17): compressed ≤ PiShrink's, time ≤ 1.5× PiShrink's, peak
//! RSS ≤ 64 MiB.

use std::path::{Path, PathBuf};
use std::process::Command;

use okome_golden_image::fixture::{self, Options};

use super::{Timed, gnu_time};
use crate::Result;
use crate::cmd::{cargo, output, run, workspace_root};
use crate::deps;

const USAGE: &str =
    "usage: cargo xtask bench golden-image [--pishrink PATH/pishrink.sh] [--level N]";

/// Bump when the generated card changes.
const GENERATOR: u32 = 2;

struct Row {
    name: &'static str,
    timed: Option<Timed>,
    raw: Option<u64>,
    compressed: Option<u64>,
    note: String,
}

pub fn main(args: &[String]) -> Result {
    let mut pishrink: Option<PathBuf> = None;
    let mut level: u8 = 9;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pishrink" => pishrink = Some(args.next().ok_or(USAGE)?.into()),
            "--level" => {
                level = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| (1..=19).contains(v))
                    .ok_or_else(|| format!("--level needs 1-19\n{USAGE}"))?
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    deps::ensure_apt(&[
        "time",
        "zstd",
        "e2fsprogs",
        "fdisk",
        "mtools",
        "dosfstools",
        "parted",
    ])?;
    run(cargo().args(["build", "--release", "-p", "okome-golden-image"]))?;
    let tool = workspace_root().join("target/release/okome-golden-image");
    let dir = workspace_root().join("target/bench/golden-image");
    std::fs::create_dir_all(&dir)?;
    let card = generate(&dir)?;
    let card_bytes = std::fs::metadata(&card)?.len();
    let used = used_bytes(&card)?;
    let level_arg = format!("-{level}");
    let configs = workspace_root().join("configs");
    let mut rows = Vec::new();

    // okome-golden-image, raw then compressed.
    let raw_out = dir.join("ours.img");
    let zst_out = dir.join("ours.img.zst");
    for path in [&raw_out, &zst_out] {
        let _ = std::fs::remove_file(path);
    }
    let create = |out: &Path, extra: &[&str]| {
        let mut command = Command::new(&tool);
        command
            .arg("create")
            .arg(&card)
            .arg(out)
            .arg("--configs")
            .arg(&configs)
            .args(extra)
            .env("OKOME_ROOT", "/");
        command
    };
    let raw_timed = checked(
        gnu_time(&create(&raw_out, &["--no-compress"]))?,
        "okome-golden-image --no-compress",
    )?;
    let zst_timed = checked(
        gnu_time(&create(&zst_out, &["--level", &level.to_string()]))?,
        "okome-golden-image create",
    )?;
    rows.push(Row {
        name: "okome-golden-image create (--no-compress)",
        timed: Some(raw_timed),
        raw: Some(std::fs::metadata(&raw_out)?.len()),
        compressed: None,
        note: "shrunk, prepared, free blocks zero".into(),
    });
    rows.push(Row {
        name: "okome-golden-image create",
        timed: Some(zst_timed),
        raw: Some(std::fs::metadata(&raw_out)?.len()),
        compressed: Some(std::fs::metadata(&zst_out)?.len()),
        note: format!("zstd -T0 {level_arg}, sha256 sidecar, round trip"),
    });

    // dd | zstd of the whole card.
    let naive = dir.join("naive.img.zst");
    let _ = std::fs::remove_file(&naive);
    let mut dd = Command::new("sh");
    dd.arg("-c").arg(format!(
        "dd if='{}' bs=4M status=none | zstd -q -T0 --zstd=wlog=21 -B4M {level_arg} -o '{}'",
        card.display(),
        naive.display()
    ));
    let timed = checked(gnu_time(&dd)?, "dd | zstd")?;
    rows.push(Row {
        name: "dd piped to zstd (whole card)",
        timed: Some(timed),
        raw: Some(card_bytes),
        compressed: Some(std::fs::metadata(&naive)?.len()),
        note: "keys, machine-id, logs and the dirty free area included".into(),
    });

    rows.push(pishrink_row(&dir, &card, pishrink.as_deref(), &level_arg)?);
    for path in [&raw_out, &zst_out, &naive] {
        let _ = std::fs::remove_file(path);
    }
    print!("{}", table(&card, card_bytes, used, &rows));
    Ok(())
}

fn checked(timed: Timed, what: &str) -> Result<Timed> {
    if !timed.status.success() {
        return Err(format!("{what} failed: {}", timed.status).into());
    }
    Ok(timed)
}

/// The bench card, generated once per GENERATOR.
fn generate(dir: &Path) -> Result<PathBuf> {
    let card = dir.join(format!("card-g{GENERATOR}.img"));
    if card.exists() {
        return Ok(card);
    }
    let scratch = dir.join("generate");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    eprintln!(
        "xtask bench: generating {} (3 GiB root, ≥ 1 GiB used, 512 MiB dirty free area)",
        card.display()
    );
    let built = fixture::build(
        &scratch,
        &Options {
            root_bytes: 3 << 30,
            data_bytes: 1 << 30,
            dirty_bytes: 512 << 20,
            keygen_unit: true,
        },
    )?;
    std::fs::rename(&built.image, &card)?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(card)
}

/// Bytes in use in the card's root filesystem (dumpe2fs, read-only).
fn used_bytes(card: &Path) -> Result<u64> {
    let text = output(Command::new("dumpe2fs").arg("-h").arg(format!(
        "{}?offset={}",
        card.display(),
        fixture::root_offset()
    )))?;
    let figures = okome_golden_image::ext4::Figures::parse(&text)?;
    Ok(figures.used_bytes())
}

fn loop_devices_work() -> bool {
    Command::new("losetup")
        .arg("-f")
        .output()
        .is_ok_and(|out| out.status.success())
}

fn pishrink_row(dir: &Path, card: &Path, script: Option<&Path>, level_arg: &str) -> Result<Row> {
    let not_run = |note: String| Row {
        name: "PiShrink -s, then zstd",
        timed: None,
        raw: None,
        compressed: None,
        note,
    };
    let Some(script) = script else {
        return Ok(not_run(
            "not run: pass --pishrink PATH/pishrink.sh (github.com/Drewsif/PiShrink)".into(),
        ));
    };
    if !loop_devices_work() {
        return Ok(not_run(
            "not run: no loop devices here (`losetup -f` fails); PiShrink needs them".into(),
        ));
    }
    let copy = dir.join("pishrink.img");
    let _ = std::fs::remove_file(&copy);
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(card)
        .arg(&copy))?;
    // PiShrink edits its argument in place: an operator first copies the
    // card (dd); that copy is timed on its own row.
    let mut copy_command = Command::new("cp");
    copy_command
        .arg("--sparse=always")
        .arg(card)
        .arg(dir.join("pishrink-copy.img"));
    let copy_timed = checked(gnu_time(&copy_command)?, "cp")?;
    let _ = std::fs::remove_file(dir.join("pishrink-copy.img"));
    let mut shrink = Command::new("bash");
    shrink.arg(script).arg("-s").arg(&copy);
    let shrink_timed = checked(gnu_time(&shrink)?, "pishrink.sh")?;
    let zst = dir.join("pishrink.img.zst");
    let _ = std::fs::remove_file(&zst);
    // The same zstd settings as okome-golden-image uses.
    let mut compress = Command::new("zstd");
    compress
        .args(["-q", "-T0", "--zstd=wlog=21", "-B4M", level_arg, "-o"])
        .arg(&zst)
        .arg(&copy);
    let zstd_timed = checked(gnu_time(&compress)?, "zstd of PiShrink's image")?;
    let raw = std::fs::metadata(&copy)?.len();
    let compressed = std::fs::metadata(&zst)?.len();
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_file(&zst);
    Ok(Row {
        name: "PiShrink -s, then zstd",
        timed: Some(Timed {
            seconds: shrink_timed.seconds + zstd_timed.seconds,
            cpu: shrink_timed.cpu + zstd_timed.cpu,
            rss_kib: shrink_timed.rss_kib.max(zstd_timed.rss_kib),
            status: zstd_timed.status,
        }),
        raw: Some(raw),
        compressed: Some(compressed),
        note: format!(
            "loop device + resize2fs -M in place; {:.1} s shrink + {:.1} s zstd (+ {:.1} s for the copy it needs: cp --sparse=always)",
            shrink_timed.seconds, zstd_timed.seconds, copy_timed.seconds
        ),
    })
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
}

fn table(card: &Path, card_bytes: u64, used: u64, rows: &[Row]) -> String {
    let mut text = format!(
        "okome-golden-image benchmark: {} ({} MiB card, {} MiB used in the root filesystem)\n\n",
        card.display(),
        card_bytes >> 20,
        used >> 20
    );
    text.push_str("| method | wall s | CPU s | peak RSS MiB | raw MiB | zstd MiB | notes |\n|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let (wall, cpu, rss) = match row.timed {
            Some(t) => (
                format!("{:.1}", t.seconds),
                format!("{:.1}", t.cpu),
                format!("{:.1}", t.rss_kib as f64 / 1024.0),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        text.push_str(&format!(
            "| {} | {wall} | {cpu} | {rss} | {} | {} | {} |\n",
            row.name,
            mib(row.raw),
            mib(row.compressed),
            row.note
        ));
    }
    let ours = rows.iter().find(|r| r.name == "okome-golden-image create");
    let theirs = rows
        .iter()
        .find(|r| r.name.starts_with("PiShrink") && r.timed.is_some());
    if let (Some(ours), Some(theirs)) = (ours, theirs) {
        let (Some(a), Some(b)) = (ours.compressed, theirs.compressed) else {
            return text;
        };
        let (Some(ta), Some(tb)) = (ours.timed, theirs.timed) else {
            return text;
        };
        text.push_str(&format!(
            "\ngoals: compressed {} MiB vs PiShrink {} MiB ({}), time {:.2}× PiShrink's (goal ≤ 1.5×: {}), peak RSS {:.1} MiB (goal ≤ 64: {})\n",
            a >> 20,
            b >> 20,
            if a <= b { "met" } else { "NOT met" },
            ta.seconds / tb.seconds,
            if ta.seconds <= 1.5 * tb.seconds { "met" } else { "NOT met" },
            ta.rss_kib as f64 / 1024.0,
            if ta.rss_kib <= 64 * 1024 { "met" } else { "NOT met" }
        ));
    }
    text
}

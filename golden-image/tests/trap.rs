//! The `resize2fs IMG?offset=N` trap, shown on a scratch copy, and the proof
//! that okome-golden-image never walks into it.
//!
//! e2fsprogs accept `file?offset=N` to address a filesystem inside a disk
//! image, and resize2fs honours the offset for every read and write, but
//! when it shrinks a regular file it `ftruncate`s the file to the new
//! filesystem size, ignoring the offset: the disk image is cut short and
//! the end of the filesystem (or all of it) is lost, with exit status 0.
//! The tool therefore only ever resizes the extracted copy, a whole file.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::card;
use okome_golden_image::fixture::{self, Options};

#[test]
fn resize2fs_with_an_offset_truncates_the_disk_image_and_says_nothing() {
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        ..Options::default()
    });
    let scratch = dir.path().join("scratch.img");
    std::fs::copy(&card.image, &scratch).unwrap();
    let offset = fixture::root_offset();
    let new_size: u64 = 100 << 20;
    let out = Command::new("resize2fs")
        .arg(format!("{}?offset={offset}", scratch.display()))
        .arg(format!("{}K", new_size >> 10))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "resize2fs reports success: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let len = std::fs::metadata(&scratch).unwrap().len();
    // The filesystem now claims to end at offset + new_size, but the file
    // was truncated to new_size: the filesystem's end is gone.
    assert_eq!(
        len, new_size,
        "resize2fs truncated the image to the filesystem's size"
    );
    assert!(len < offset + new_size);
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(format!("{}?offset={offset}", scratch.display()))
        .output()
        .unwrap();
    assert!(
        !fsck.status.success(),
        "the truncated filesystem cannot be clean"
    );
}

#[test]
fn the_tool_never_hands_resize2fs_an_offset() {
    // resize2fs is named in exactly one place: a function that takes the
    // extracted filesystem (a whole file) and refuses a path with '?'.
    let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut named = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if line.contains("\"resize2fs\"") && !line.trim_start().starts_with("//") {
                named.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    line.trim().to_string(),
                ));
            }
        }
    }
    assert_eq!(
        named,
        [(
            "create.rs".to_string(),
            "let mut command = exec::command(\"resize2fs\");".to_string()
        )],
        "resize2fs must be built only by create::resize2fs"
    );
    let create = std::fs::read_to_string(src.join("create.rs")).unwrap();
    let function = &create[create
        .find("fn resize2fs(fs: &Ext4,")
        .expect("fn resize2fs takes an Ext4")..];
    let body = &function[..function.find("\n}\n").unwrap()];
    assert!(
        body.contains("command.args(flags).arg(fs.image());"),
        "{body}"
    );
    assert!(body.contains("contains('?')"), "{body}");
    assert!(!body.contains("offset="), "{body}");
    // The one `?offset=` in the crate's code is a read-only dumpe2fs of SRC.
    let code = &create[..create.find("#[cfg(test)]").unwrap_or(create.len())];
    let uses: Vec<&str> = code
        .lines()
        .filter(|l| l.contains("?offset=") && !l.trim_start().starts_with("//"))
        .collect();
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert!(create.contains("exec::command(\"dumpe2fs\").arg(\"-h\").arg(target)"));
}

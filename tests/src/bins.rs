//! Finding the tool binaries the end-to-end tests run: `$OKOME_BIN_DIR`
//! (set by `cargo xtask test`), else `<workspace>/target/debug`.
//!
//! The tests never build binaries themselves (a test cannot safely run
//! cargo inside cargo test); a missing binary is a clear panic that says
//! how to build it.

use std::path::{Path, PathBuf};

/// The workspace root (the lab crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab crate has a parent directory")
        .to_path_buf()
}

/// The directory tool binaries are taken from.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("OKOME_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("debug"),
    }
}

/// The path of tool binary `name` (e.g. `okome-health-probe`), if built.
pub fn try_tool_bin(name: &str) -> Option<PathBuf> {
    let path = bin_dir().join(name);
    path.is_file().then_some(path)
}

/// The path of tool binary `name`; panics with how to build it if missing.
pub fn tool_bin(name: &str) -> PathBuf {
    try_tool_bin(name).unwrap_or_else(|| {
        panic!(
            "{name} not found in {} — run `cargo xtask test` or `cargo build --workspace --bins` \
             (or point OKOME_BIN_DIR at the directory holding it)",
            bin_dir().display()
        )
    })
}

/// The configs the lab renders: `<workspace>/configs`, or
/// `$OKOME_LAB_CONFIGS` (a copy with a site's edits, to try them on the lab
/// before shipping them; also how a reviewer checks that a broken config
/// makes the tests fail).
pub fn configs_dir() -> PathBuf {
    match std::env::var_os("OKOME_LAB_CONFIGS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("configs"),
    }
}

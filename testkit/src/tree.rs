//! Fixture trees, zram-generator style: a tool that reads or writes a system
//! runs on a copy of an input tree (its `OKOME_ROOT`), and the tree it leaves
//! is compared, file by file, with an expected output tree kept next to the
//! test. A difference names every path that is missing, extra or different.
//! Values that change from run to run (unix times) are masked on both sides
//! by the caller's function, never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file of a tree: its bytes, or where a symbolic link points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Link(PathBuf),
}

/// Copy the tree at `from` into `to` (created): files, directories, links.
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for (relative, entry) in entries(from) {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        match entry {
            Entry::File(bytes) => std::fs::write(&target, bytes),
            Entry::Link(points_to) => std::os::unix::fs::symlink(points_to, &target),
        }
        .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    }
}

/// Every file and link under `root`, by path relative to it.
pub fn entries(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let listing =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for item in listing {
            let path = item.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if kind.is_symlink() {
                out.insert(relative, Entry::Link(std::fs::read_link(&path).unwrap()));
            } else if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() {
                out.insert(relative, Entry::File(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The differences between two trees, one line each (empty: equal), after
/// `mask` rewrote the text of every file on both sides.
pub fn differences(actual: &Path, expected: &Path, mask: impl Fn(&str) -> String) -> Vec<String> {
    let masked = |entry: Entry| match entry {
        Entry::File(bytes) => Entry::File(mask(&String::from_utf8_lossy(&bytes)).into_bytes()),
        link => link,
    };
    let show = |entry: &Entry| match entry {
        Entry::File(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Entry::Link(to) => format!("a link to {}", to.display()),
    };
    let actual: BTreeMap<PathBuf, Entry> = entries(actual)
        .into_iter()
        .map(|(p, e)| (p, masked(e)))
        .collect();
    let expected: BTreeMap<PathBuf, Entry> = entries(expected)
        .into_iter()
        .map(|(p, e)| (p, masked(e)))
        .collect();
    let mut problems = Vec::new();
    for (path, want) in &expected {
        match actual.get(path) {
            None => problems.push(format!("missing: {}", path.display())),
            Some(got) if got != want => problems.push(format!(
                "differs: {}\n--- expected\n{}\n--- actual\n{}",
                path.display(),
                show(want),
                show(got)
            )),
            Some(_) => {}
        }
    }
    for path in actual.keys().filter(|p| !expected.contains_key(*p)) {
        problems.push(format!("extra: {}", path.display()));
    }
    problems
}

/// Panics with every difference unless the trees hold the same files.
pub fn assert_same(actual: &Path, expected: &Path, mask: impl Fn(&str) -> String) {
    let problems = differences(actual, expected, mask);
    assert!(
        problems.is_empty(),
        "{} differs from {}:\n{}",
        actual.display(),
        expected.display(),
        problems.join("\n")
    );
}

/// A mask for run-to-run values: every run of 10 or more digits (unix
/// seconds, milliseconds) becomes `<time>`.
pub fn mask_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 10 {
            out.push_str("<time>");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_the_same_and_each_kind_of_difference_is_named() {
        let a = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("etc/default")).unwrap();
        std::fs::write(a.path().join("etc/default/x"), "A=1\n").unwrap();
        std::fs::write(a.path().join("top"), "t").unwrap();
        std::os::unix::fs::symlink("/dev/null", a.path().join("masked")).unwrap();
        let b = tempfile::tempdir().unwrap();
        copy(a.path(), b.path());
        assert_same(b.path(), a.path(), str::to_string);
        std::fs::write(b.path().join("etc/default/x"), "A=2\n").unwrap();
        std::fs::write(b.path().join("new"), "").unwrap();
        std::fs::remove_file(b.path().join("top")).unwrap();
        std::fs::remove_file(b.path().join("masked")).unwrap();
        std::os::unix::fs::symlink("/etc/x", b.path().join("masked")).unwrap();
        let found = differences(b.path(), a.path(), str::to_string);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("differs: etc/default/x"), "{found:?}");
        assert!(found[1].contains("a link to /dev/null"), "{found:?}");
        assert_eq!(found[2], "missing: top");
        assert_eq!(found[3], "extra: new");
    }

    #[test]
    fn times_are_masked_and_short_numbers_kept() {
        assert_eq!(
            mask_times(
                "closed at unix time 1796621451 by x\nsince_ms=1796621451694\nstreak=0\nport 8099"
            ),
            "closed at unix time <time> by x\nsince_ms=<time>\nstreak=0\nport 8099"
        );
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("s"), "since_ms=1796621451694\n").unwrap();
        std::fs::write(b.path().join("s"), "since_ms=1700000000000\n").unwrap();
        assert_same(a.path(), b.path(), mask_times);
        assert_eq!(differences(a.path(), b.path(), str::to_string).len(), 1);
    }
}

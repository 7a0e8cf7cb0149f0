//! Fixture trees, zram-generator style: a tool that reads or writes a system
//! runs on a copy of an input tree (its `OKOME_ROOT`), and the tree it leaves
//! is compared, file by file, with an expected output tree kept next to the
//! test. A difference names every path that is missing, extra or different.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Copy the tree at `from` into `to` (created), files and directories.
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for (relative, content) in files(from) {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&target, content)
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    }
}

/// Every regular file under `root`, by path relative to it, with its bytes.
pub fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The differences between two trees, one line each (empty: equal).
pub fn differences(actual: &Path, expected: &Path) -> Vec<String> {
    let actual = files(actual);
    let expected = files(expected);
    let mut problems = Vec::new();
    for (path, want) in &expected {
        match actual.get(path) {
            None => problems.push(format!("missing: {}", path.display())),
            Some(got) if got != want => problems.push(format!(
                "differs: {}\n--- expected\n{}\n--- actual\n{}",
                path.display(),
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
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
pub fn assert_same(actual: &Path, expected: &Path) {
    let problems = differences(actual, expected);
    assert!(
        problems.is_empty(),
        "{} differs from {}:\n{}",
        actual.display(),
        expected.display(),
        problems.join("\n")
    );
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
        let b = tempfile::tempdir().unwrap();
        copy(a.path(), b.path());
        assert_same(b.path(), a.path());
        std::fs::write(b.path().join("etc/default/x"), "A=2\n").unwrap();
        std::fs::write(b.path().join("new"), "").unwrap();
        std::fs::remove_file(b.path().join("top")).unwrap();
        let found = differences(b.path(), a.path());
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("differs: etc/default/x"), "{found:?}");
        assert_eq!(found[1], "missing: top");
        assert_eq!(found[2], "extra: new");
    }
}

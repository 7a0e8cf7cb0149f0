//! The root prefix every system path is read and written through.
//!
//! `OKOME_ROOT` (default `/`) re-roots `/etc`, `/run` and `/var` so tests and
//! the lab run the real code on a fixture tree without privileges, the way
//! zram-generator's tests do.

use std::path::{Path, PathBuf};

/// Environment variable naming the root prefix.
pub const ROOT_ENV: &str = "OKOME_ROOT";

/// The configured root prefix, `/` unless `OKOME_ROOT` is set and non-empty.
pub fn root() -> PathBuf {
    match std::env::var_os(ROOT_ENV) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from("/"),
    }
}

/// `path` (absolute, as on a real node) placed under the root prefix.
pub fn rooted(path: impl AsRef<Path>) -> PathBuf {
    under(&root(), path.as_ref())
}

/// `path` placed under `prefix`; a relative `path` is returned unchanged
/// because it was given by the operator relative to the working directory.
pub fn under(prefix: &Path, path: &Path) -> PathBuf {
    if !path.is_absolute() {
        return path.to_path_buf();
    }
    let relative = path.strip_prefix("/").unwrap_or(path);
    prefix.join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_move_under_the_prefix() {
        assert_eq!(
            under(Path::new("/tmp/fixture"), Path::new("/run/okome/x")),
            PathBuf::from("/tmp/fixture/run/okome/x")
        );
        assert_eq!(
            under(Path::new("/"), Path::new("/etc/a")),
            PathBuf::from("/etc/a")
        );
    }

    #[test]
    fn relative_paths_stay_where_the_operator_meant() {
        assert_eq!(
            under(Path::new("/tmp/fixture"), Path::new("access.log")),
            PathBuf::from("access.log")
        );
    }
}

//! zstd compression (multithreaded, level chosen by the operator), the
//! `.sha256` sidecar `sha256sum -c` understands, and the round trip that
//! proves the compressed file decompresses to exactly the image.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};
use crate::exec;

/// The sidecar of `image`: `IMAGE.sha256`.
pub fn sidecar_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

/// Sidecar text: `HASH  NAME` (sha256sum's format, binary-safe).
pub fn sidecar_text(hash: &str, image: &Path) -> String {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{hash}  {name}\n")
}

/// The hash a sidecar records.
pub fn sidecar_hash(text: &str) -> Option<String> {
    exec::first_word(text).ok()
}

/// Whether `path` names a zstd file.
pub fn is_zst(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

/// Compress `raw` into `out` with `zstd -T0 -LEVEL`.
pub fn compress(raw: &Path, out: &Path, level: u8) -> Result<()> {
    let mut command = exec::command("zstd");
    command.args(["-q", "-f", "-T0"]);
    if level > 19 {
        command.arg("--ultra");
    }
    command.arg(format!("-{level}")).arg("-o").arg(out).arg(raw);
    exec::checked(&mut command, &[0]).map(|_| ())
}

/// Decompress `zst` into `out` (zstd writes zero runs sparsely).
pub fn decompress(zst: &Path, out: &Path) -> Result<()> {
    exec::checked(
        exec::command("zstd")
            .args(["-q", "-d", "-f", "--sparse", "-o"])
            .arg(out)
            .arg(zst),
        &[0],
    )
    .map(|_| ())
}

/// SHA-256 of what `zst` decompresses to, streamed (`zstd -dc | sha256sum`).
pub fn decompressed_sha256(zst: &Path) -> Result<String> {
    let mut zstd = exec::command("zstd");
    zstd.args(["-q", "-d", "-c"]).arg(zst).stdout(Stdio::piped());
    let describe = exec::describe(&zstd);
    let mut child = zstd.spawn().map_err(|error| Error::Program {
        command: describe.clone(),
        detail: format!("cannot start: {error}"),
    })?;
    let stdout = child.stdout.take().ok_or_else(|| Error::Internal("zstd: no stdout".into()))?;
    let hash = sha256_reader(stdout);
    let status = child.wait().map_err(Error::io(zst))?;
    if !status.success() {
        return Err(Error::Program {
            command: describe,
            detail: status.to_string(),
        });
    }
    hash
}

/// SHA-256 of everything `reader` yields, by sha256sum reading our pipe.
pub fn sha256_reader(mut reader: impl Read) -> Result<String> {
    let mut hasher = Hasher::start()?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| Error::Internal(format!("reading for sha256: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n])?;
    }
    hasher.finish()
}

/// A running `sha256sum` fed through its stdin, so a stream can be hashed
/// while it is written elsewhere (burn) without holding it in memory.
#[derive(Debug)]
pub struct Hasher {
    child: std::process::Child,
}

impl Hasher {
    /// Start sha256sum.
    pub fn start() -> Result<Hasher> {
        let child = exec::command("sha256sum")
            .arg("-b")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| Error::Program {
                command: "sha256sum -b".into(),
                detail: format!("cannot start: {error}"),
            })?;
        Ok(Hasher { child })
    }

    /// Hash more bytes.
    pub fn update(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.child
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Internal("sha256sum: stdin closed".into()))?
            .write_all(bytes)
            .map_err(|e| Error::Internal(format!("sha256sum: {e}")))
    }

    /// Close the input and read the hash.
    pub fn finish(mut self) -> Result<String> {
        drop(self.child.stdin.take());
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| Error::Internal(format!("sha256sum: {e}")))?;
        exec::first_word(&String::from_utf8_lossy(&out.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_what_sha256sum_c_reads() {
        let hash = "a".repeat(64);
        let text = sidecar_text(&hash, Path::new("/x/golden.img.zst"));
        assert_eq!(text, format!("{hash}  golden.img.zst\n"));
        assert_eq!(sidecar_hash(&text).unwrap(), hash);
        assert_eq!(sidecar_path(Path::new("a.img.zst")), PathBuf::from("a.img.zst.sha256"));
    }

    #[test]
    fn streams_hash_like_sha256sum() {
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

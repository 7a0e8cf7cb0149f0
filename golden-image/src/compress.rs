//! zstd compression (multithreaded, level chosen by the operator), the
//! `.sha256` sidecar `sha256sum -c` understands, and the round trip that
//! proves the compressed file decompresses to exactly the image.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};

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

/// SHA-256 of what `zst` decompresses to, streamed (`zstd -dc`).
pub fn decompressed_sha256(zst: &Path) -> Result<String> {
    let mut zstd = exec::command("zstd");
    zstd.args(["-q", "-d", "-c"])
        .arg(zst)
        .stdout(Stdio::piped());
    let describe = exec::describe(&zstd);
    let mut child = zstd.spawn().map_err(|error| Error::Program {
        command: describe.clone(),
        detail: format!("cannot start: {error}"),
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Internal("zstd: no stdout".into()))?;
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

/// SHA-256 of a file (hex).
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    sha256_reader(file).map_err(|error| match error {
        Error::Internal(message) => Error::Internal(format!("{}: {message}", path.display())),
        other => other,
    })
}

/// SHA-256 of everything `reader` yields, 1 MiB at a time.
pub fn sha256_reader(mut reader: impl Read) -> Result<String> {
    let mut hasher = Hasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| Error::Internal(format!("reading for sha256: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finish())
}

/// An incremental SHA-256, so a stream can be hashed while it is written
/// elsewhere (burn, compression) without holding it in memory.
#[derive(Debug, Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Hash more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash, in lowercase hex as sha256sum prints it.
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// What [`compress_hashed`] measured on its single pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    /// SHA-256 of the raw image.
    pub raw: String,
    /// SHA-256 of the compressed file.
    pub compressed: String,
}

/// Compress `raw` into `out` in one pass, with `zstd -T<threads> -LEVEL`, a
/// 2 MiB window and 4 MiB jobs (each worker then holds about 25 MiB, where
/// zstd's level-9 defaults take 70 MiB, for a ratio within 0.001 % on the
/// bench card): this process reads the image,
/// hashes it and feeds zstd's stdin on one thread, and hashes zstd's output
/// while writing it to `out` on another.
pub fn compress_hashed(raw: &Path, out: &Path, level: u8, threads: u32) -> Result<Hashes> {
    let mut command = exec::command("zstd");
    command
        .args(["-q", "-c", "--zstd=wlog=21", "-B4M"])
        .arg(format!("-T{threads}"));
    if level > 19 {
        command.arg("--ultra");
    }
    command
        .arg(format!("-{level}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let describe = exec::describe(&command);
    let mut child = command.spawn().map_err(|error| Error::Program {
        command: describe.clone(),
        detail: format!("cannot start: {error}"),
    })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Internal("zstd: no stdin".into()))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Internal("zstd: no stdout".into()))?;
    let mut input = std::fs::File::open(raw).map_err(Error::io(raw))?;
    let mut output = std::fs::File::create(out).map_err(Error::io(out))?;
    let (fed, written) = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || -> Result<String> {
            use std::io::Write;
            let mut hasher = Hasher::default();
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buffer).map_err(Error::io(raw))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                stdin
                    .write_all(&buffer[..n])
                    .map_err(|e| Error::Internal(format!("feeding zstd: {e}")))?;
            }
            drop(stdin);
            Ok(hasher.finish())
        });
        let written = (|| -> Result<String> {
            use std::io::Write;
            let mut hasher = Hasher::default();
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = stdout
                    .read(&mut buffer)
                    .map_err(|e| Error::Internal(format!("reading zstd: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                output.write_all(&buffer[..n]).map_err(Error::io(out))?;
            }
            output.sync_all().map_err(Error::io(out))?;
            Ok(hasher.finish())
        })();
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the zstd feeder panicked".into())));
        (fed, written)
    });
    let status = child.wait().map_err(Error::io(out))?;
    if !status.success() {
        return Err(Error::Program {
            command: describe,
            detail: status.to_string(),
        });
    }
    Ok(Hashes {
        raw: fed?,
        compressed: written?,
    })
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
        assert_eq!(
            sidecar_path(Path::new("a.img.zst")),
            PathBuf::from("a.img.zst.sha256")
        );
    }

    #[test]
    fn streams_hash_like_sha256sum() {
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // And like sha256sum itself, on more than one buffer's worth.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let coreutils = exec::run_on("sha256sum", &["-b", "--"], &path).unwrap();
        assert_eq!(
            exec::first_word(&coreutils).unwrap(),
            sha256_file(&path).unwrap()
        );
    }

    #[test]
    fn one_pass_compression_hashes_both_sides_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 97) as u8).collect();
        std::fs::write(&raw, &data).unwrap();
        let zst = dir.path().join("raw.zst");
        let hashes = compress_hashed(&raw, &zst, 3, 0).unwrap();
        assert_eq!(hashes.raw, sha256_file(&raw).unwrap());
        assert_eq!(hashes.compressed, sha256_file(&zst).unwrap());
        assert_eq!(decompressed_sha256(&zst).unwrap(), hashes.raw);
    }
}

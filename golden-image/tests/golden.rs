//! End to end on a synthetic Pi card: create → verify → burn with the real
//! sfdisk, e2fsprogs, mtools and zstd, and what must never happen: SRC
//! changed, the dirty free area, a log line or a host key in OUT.

mod common;

use std::path::Path;

use common::{System, card, configs, contains, listing, run, sha256};
use okome_golden_image::fixture::{
    self, BOOT_MARKER, DIRTY_MARKER, KEY_MARKER, LOG_MARKER, Options, REDIS_DUMP_MARKER,
    REDIS_FUNCTIONS_MARKER,
};
use okome_testkit::tool::json_bytes as json;

#[test]
fn create_verify_burn_on_a_dirty_card() {
    let system = System::new();
    let (dir, card) = card(&Options::default());
    let src = &card.image;
    assert!(
        contains(src, DIRTY_MARKER),
        "the fixture has its dirty free area"
    );
    assert!(contains(src, LOG_MARKER) && contains(src, KEY_MARKER));
    assert!(
        contains(src, BOOT_MARKER),
        "the boot partition has a deleted file"
    );
    let before = sha256(src);
    let out = dir.path().join("golden.img.zst");

    let created = system
        .create(src, &out)
        .args(["--mask", "bluetooth,avahi-daemon", "--level", "3", "--json"])
        .assert()
        .code(0);
    let report = json(&created.get_output().stdout);
    assert_eq!(sha256(src), before, "SRC was modified");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in okome_golden_image::prepare::Step::ALL {
        assert!(
            steps.contains(&step.word()),
            "{} not in the manifest: {steps:?}",
            step.word()
        );
    }
    assert!((report["raw_bytes"].as_u64().unwrap()) < std::fs::metadata(src).unwrap().len());

    // The sidecar is what sha256sum -c reads.
    let checked = std::process::Command::new("sha256sum")
        .args(["-c", "golden.img.zst.sha256"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Nothing of the old card's free blocks, logs or keys comes along.
    let raw = dir.path().join("golden.img");
    run(
        "zstd",
        &[
            "-q",
            "-d",
            "-o",
            raw.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    for (marker, what) in [
        (DIRTY_MARKER, "dirty free area"),
        (LOG_MARKER, "log line"),
        (KEY_MARKER, "host key"),
        (BOOT_MARKER, "deleted boot partition file"),
        (REDIS_DUMP_MARKER, "Redis dump"),
    ] {
        assert!(!contains(&raw, marker), "the {what} is in OUT");
    }
    // okome-backend's preloaded function library is package-built code,
    // not node data: a clone's Redis must start with the library.
    assert!(
        contains(&raw, REDIS_FUNCTIONS_MARKER),
        "okome-functions.rdb was removed from OUT"
    );
    // The table keeps the disk id (PARTUUID) and the root fs fits its partition.
    let table = run("sfdisk", &["--json", raw.to_str().unwrap()]);
    assert!(
        table.contains(&format!("0x{}", fixture::DISK_ID)),
        "{table}"
    );
    run("sfdisk", &["--verify", raw.to_str().unwrap()]);

    let verified = system.verify(&out).arg("--json").assert().code(0);
    let report = json(&verified.get_output().stdout);
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{report:#}");
    assert!(checks.len() >= 8 + okome_golden_image::prepare::Step::ALL.len());

    // Burn to a file standing in for a card, bigger than the image and full
    // of old data.
    let device = dir.path().join("sdz");
    std::fs::write(&device, vec![0x5a; 8 << 20]).unwrap();
    system
        .tool()
        .arg("burn")
        .arg(&out)
        .arg(&device)
        .args(["--hostname", "okome-b", "--role", "backup"])
        .assert()
        .code(0);
    let node_conf = run(
        "mtype",
        &[
            "-i",
            &format!("{}@@{}", device.display(), fixture::BOOT_START * 512),
            "::okome-node.conf",
        ],
    );
    assert!(
        node_conf.contains("hostname=okome-b\nrole=backup\n"),
        "{node_conf}"
    );
    // Apart from okome-node.conf, the card holds the image byte for byte:
    // its root partition and table are identical.
    let burnt = std::fs::read(&device).unwrap();
    let image = std::fs::read(&raw).unwrap();
    assert_eq!(burnt.len(), image.len());
    let root = fixture::root_offset() as usize;
    assert!(
        burnt[root..] == image[root..],
        "root partition differs after burn"
    );
    assert!(
        burnt[..512] == image[..512],
        "partition table differs after burn"
    );
    drop(card);
}

#[test]
fn verify_names_a_host_key_put_back() {
    let system = System::new();
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        ..Options::default()
    });
    let out = dir.path().join("golden.img");
    system
        .create(&card.image, &out)
        .arg("--no-compress")
        .assert()
        .code(0);
    system.verify(&out).assert().code(0);

    // Tamper: extract the root fs, put a host key back, write it back, and
    // refresh the sidecar so the key is the only thing wrong.
    let offset = fixture::root_offset().to_string();
    let root = dir.path().join("root.ext4");
    run(
        "e2image",
        &[
            "-ra",
            "-o",
            &offset,
            out.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    // The edited root fs back into the image, in place.
    let write_root_back = || {
        run(
            "e2image",
            &[
                "-ra",
                "-O",
                &offset,
                root.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
        );
    };
    let key = dir.path().join("key");
    std::fs::write(&key, "stolen key\n").unwrap();
    run(
        "debugfs",
        &[
            "-w",
            "-R",
            &format!("write {} /etc/ssh/ssh_host_ed25519_key", key.display()),
            root.to_str().unwrap(),
        ],
    );
    write_root_back();
    let sum = run("sha256sum", &[out.to_str().unwrap()]);
    std::fs::write(
        dir.path().join("golden.img.sha256"),
        format!("{}  golden.img\n", &sum[..64]),
    )
    .unwrap();

    let verified = system.verify(&out).arg("--json").assert().code(1);
    let report = json(&verified.get_output().stdout);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["ssh-host-keys"], "{report:#}");

    // A changed byte with the old sidecar fails the checksum.
    let sum_before = std::fs::read_to_string(dir.path().join("golden.img.sha256")).unwrap();
    run(
        "debugfs",
        &[
            "-w",
            "-R",
            "rm /etc/ssh/ssh_host_ed25519_key",
            root.to_str().unwrap(),
        ],
    );
    write_root_back();
    assert_eq!(
        sum_before,
        std::fs::read_to_string(dir.path().join("golden.img.sha256")).unwrap()
    );
    let verified = system.verify(&out).assert().code(1);
    let stdout = String::from_utf8_lossy(&verified.get_output().stdout).into_owned();
    assert!(stdout.contains("FAIL checksum"), "{stdout}");
}

/// Run `create` expecting a refusal; nothing may appear in `out_dir`.
fn refused(system: &System, src: &Path, out: &Path, extra: &[&str], code: i32, word: &str) {
    let out_dir = out.parent().unwrap();
    let before = listing(out_dir);
    let src_hash = sha256(src);
    let assert = system.create(src, out).args(extra).assert().code(code);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("refused ({word})")),
        "{word}: {stderr}"
    );
    assert_eq!(listing(out_dir), before, "{word}: something was written");
    assert_eq!(sha256(src), src_hash, "{word}: SRC changed");
}

#[test]
fn every_refusal_leaves_nothing_written() {
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        ..Options::default()
    });
    // A file standing in for the card's block device.
    let device = dir.path().join("sdz");
    std::fs::rename(&card.image, &device).unwrap();
    let name = device.canonicalize().unwrap().display().to_string();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("golden.img.zst");

    let system = System::new();
    system.mountinfo(&[
        ("/", "/dev/fakeroot2"),
        ("/media/pi/rootfs", &format!("{name}2")),
    ]);
    refused(&system, &device, &out, &[], 2, "mounted");

    let system = System::new();
    system.mountinfo(&[
        ("/", &format!("{name}2")),
        ("/boot/firmware", &format!("{name}1")),
    ]);
    refused(&system, &device, &out, &[], 2, "system-disk");

    let system = System::new();
    system.attach_loop(&device);
    refused(&system, &device, &out, &[], 2, "loop-attached");

    let system = System::new();
    let same = dir.path().join("same.img");
    std::fs::hard_link(&device, &same).unwrap();
    refused(&system, &device, &same, &["--no-compress"], 2, "out-on-src");
    std::fs::remove_file(&same).unwrap();

    // More than any disk here: the margin alone asks for 1 TiB.
    refused(
        &system,
        &device,
        &out,
        &["--margin", "1048576"],
        2,
        "no-space",
    );

    // burn refuses a mounted card and the system disk, and leaves it as it was.
    let image = dir.path().join("any.img");
    std::fs::write(&image, vec![1u8; 4096]).unwrap();
    for (mounts, word) in [
        (
            vec![
                ("/", "/dev/fakeroot2".to_string()),
                ("/mnt", format!("{name}1")),
            ],
            "mounted",
        ),
        (vec![("/", format!("{name}2"))], "system-disk"),
    ] {
        let system = System::new();
        let pairs: Vec<(&str, &str)> = mounts.iter().map(|(p, s)| (*p, s.as_str())).collect();
        system.mountinfo(&pairs);
        let before = sha256(&device);
        let assert = system
            .tool()
            .arg("burn")
            .arg(&image)
            .arg(&device)
            .args(["--hostname", "okome-a", "--role", "master"])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(&format!("refused ({word})")), "{stderr}");
        assert_eq!(sha256(&device), before, "burn wrote to a refused device");
    }
}

#[test]
fn an_image_without_an_ssh_key_unit_is_refused_unless_one_is_added() {
    let system = System::new();
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        keygen_unit: false,
        ..Options::default()
    });
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("golden.img");
    refused(
        &system,
        &card.image,
        &out,
        &["--no-compress"],
        1,
        "no-ssh-keygen-unit",
    );
    system
        .create(&card.image, &out)
        .args(["--no-compress", "--add-ssh-keygen-unit"])
        .assert()
        .code(0);
    let verified = system.verify(&out).assert().code(0);
    let stdout = String::from_utf8_lossy(&verified.get_output().stdout).into_owned();
    assert!(stdout.contains("ssh-keygen-unit"), "{stdout}");
    drop(dir);
}

#[test]
fn create_and_verify_need_no_root_on_image_files() {
    let uid = run("id", &["-u"]);
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        ..Options::default()
    });
    let out = dir.path().join("golden.img.zst");
    let system = System::new();
    let mut command = if uid.trim() == "0" {
        // As root here: drop to nobody for the run, on files nobody owns.
        run(
            "chown",
            &["-R", "nobody:nogroup", dir.path().to_str().unwrap()],
        );
        run(
            "chmod",
            &[
                "755",
                dir.path().to_str().unwrap(),
                system.dir.path().to_str().unwrap(),
            ],
        );
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin!("okome-golden-image"));
        command
    } else {
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("okome-golden-image"))
    };
    okome_testkit::tool::isolate(&mut command, system.dir.path());
    let status = command
        .arg("create")
        .arg(&card.image)
        .arg(&out)
        .arg("--configs")
        .arg(configs())
        .args(["--level", "1"])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "create as an unprivileged user: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "the image is for sharing");
    system.verify(&out).assert().code(0);
}

#[test]
fn an_interrupted_create_leaves_no_out_and_no_work_files() {
    let system = System::new();
    let (_dir, card) = card(&Options {
        data_bytes: 48 << 20,
        dirty_bytes: 0,
        ..Options::default()
    });
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("golden.img.zst");
    let mut command =
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("okome-golden-image"));
    okome_testkit::tool::isolate(&mut command, system.dir.path());
    let child = command
        .arg("create")
        .arg(&card.image)
        .arg(&out)
        .arg("--configs")
        .arg(configs())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the run is under way (its work directory exists).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !listing(out_dir.path()).iter().any(|n| n.contains(".work-")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no work directory appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    run("kill", &["-TERM", &child.id().to_string()]);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        listing(out_dir.path()),
        Vec::<String>::new(),
        "OUT or work files left behind"
    );
}

#[test]
fn a_burn_cut_short_leaves_no_partition_table() {
    let system = System::new();
    let (dir, card) = card(&Options {
        dirty_bytes: 0,
        ..Options::default()
    });
    let out = dir.path().join("golden.img.zst");
    system
        .create(&card.image, &out)
        .args(["--level", "1"])
        .assert()
        .code(0);
    // A download cut in half, without its sidecar.
    let cut = dir.path().join("cut.img.zst");
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // The "card" holds an old system with a valid partition table.
    let device = dir.path().join("sdz");
    std::fs::copy(&card.image, &device).unwrap();
    run("sfdisk", &["--verify", device.to_str().unwrap()]);
    let assert = system
        .tool()
        .arg("burn")
        .arg(&cut)
        .arg(&device)
        .args(["--hostname", "okome-a", "--role", "master"])
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("zstd"), "{stderr}");
    // First sector last: the half-written card has no table to boot from.
    let written = std::fs::read(&device).unwrap();
    assert!(
        written[..512].iter().all(|&b| b == 0),
        "the partition table survived a failed burn"
    );
}

//! A synthetic Raspberry Pi OS-like card image, built without loop devices
//! or mounts, for the tests and `cargo xtask bench golden-image`.
//!
//! MBR (sfdisk on a sparse file) with a FAT32 boot partition (mkfs.fat on a
//! separate file holding cmdline.txt with `root=PARTUUID=…-02` and
//! config.txt, then copied in) and an ext4 root made by `mkfs.ext4 -d` from
//! a generated tree holding everything `create` must clean: machine-id, SSH
//! host keys, logs, a journal, apt caches, leases, histories, nginx/Redis/
//! fail2ban/okome state, an fstab with PARTUUIDs and Raspberry Pi OS's SSH
//! key regeneration unit. Then a "dirty free area": a file of
//! [`DIRTY_MARKER`] written through debugfs and deleted again, so the marker
//! lies in free blocks, as on a card that has lived.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exec;
use crate::ext4::{Edits, Ext4};
use crate::fat::Fat;
use crate::table::{self, SECTOR};

/// Bytes found in the fixture's free blocks only.
pub const DIRTY_MARKER: &[u8] = b"OKOME-DIRTY-FREE-AREA-7c1e9a";
/// Bytes found only in the fixture's logs (truncated by create).
pub const LOG_MARKER: &[u8] = b"OKOME-LOG-LINE-SECRET-4d2b";
/// Bytes found only in the fixture's SSH host keys.
pub const KEY_MARKER: &[u8] = b"OKOME-HOST-KEY-MATERIAL-93fa";
/// Bytes only in a file deleted from the boot partition (free clusters),
/// as Raspberry Pi OS leaves a consumed userconf.txt (a password hash).
pub const BOOT_MARKER: &[u8] = b"OKOME-DELETED-USERCONF-b07f3c";
/// In a Redis dump (node data: removed) and in okome-backend's preloaded
/// function library (code the package built: kept).
pub const REDIS_DUMP_MARKER: &[u8] = b"OKOME-REDIS-DUMP-DATA-51c0";
pub const REDIS_FUNCTIONS_MARKER: &[u8] = b"OKOME-REDIS-FUNCTIONS-RDB-e8a2";
/// The fixture's disk identifier.
pub const DISK_ID: &str = "5e3da7a1";
/// First sector of the boot partition.
pub const BOOT_START: u64 = 8192;
/// Boot partition length in sectors (64 MiB: enough clusters for FAT32).
pub const BOOT_SECTORS: u64 = 131_072;

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of the root filesystem (and partition).
    pub root_bytes: u64,
    /// Bytes of generated data files (half random, half repetitive text).
    pub data_bytes: u64,
    /// Bytes of the deleted marker file (the dirty free area).
    pub dirty_bytes: u64,
    /// Include an enabled SSH host key regeneration unit.
    pub keygen_unit: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            root_bytes: 160 << 20,
            data_bytes: 4 << 20,
            dirty_bytes: 16 << 20,
            keygen_unit: true,
        }
    }
}

/// Where the root partition starts (bytes).
pub fn root_offset() -> u64 {
    (BOOT_START + BOOT_SECTORS) * SECTOR
}

fn put(root: &Path, path: &str, contents: &[u8]) -> Result<()> {
    let path = root.join(path.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::write(&path, contents).map_err(Error::io(&path))
}

fn link(root: &Path, path: &str, target: &str) -> Result<()> {
    let path = root.join(path.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::os::unix::fs::symlink(target, &path).map_err(Error::io(&path))
}

/// splitmix64, so the data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Write the generated tree under `root`.
fn tree(root: &Path, options: &Options) -> Result<()> {
    let log = |n: usize| {
        let mut text = Vec::new();
        for i in 0..n {
            text.extend_from_slice(
                format!("Dec  7 02:{:02}:00 okome-a sshd[{i}]: ", i % 60).as_bytes(),
            );
            text.extend_from_slice(LOG_MARKER);
            text.push(b'\n');
        }
        text
    };
    let mut key = b"-----BEGIN OPENSSH PRIVATE KEY-----\n".to_vec();
    key.extend_from_slice(KEY_MARKER);
    key.extend_from_slice(b"\n-----END OPENSSH PRIVATE KEY-----\n");
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "/etc/machine-id",
            b"0123456789abcdef0123456789abcdef\n".to_vec(),
        ),
        (
            "/var/lib/dbus/machine-id",
            b"0123456789abcdef0123456789abcdef\n".to_vec(),
        ),
        ("/etc/hostname", b"okome-a\n".to_vec()),
        (
            "/etc/hosts",
            b"127.0.0.1\tlocalhost\n127.0.1.1\tokome-a\n".to_vec(),
        ),
        ("/etc/ssh/ssh_host_ed25519_key", key.clone()),
        (
            "/etc/ssh/ssh_host_ed25519_key.pub",
            b"ssh-ed25519 AAAAC3Nza root@okome-a\n".to_vec(),
        ),
        ("/etc/ssh/ssh_host_rsa_key", key),
        (
            "/etc/ssh/ssh_host_rsa_key.pub",
            b"ssh-rsa AAAAB3Nza root@okome-a\n".to_vec(),
        ),
        (
            "/etc/ssh/sshd_config",
            b"Include /etc/ssh/sshd_config.d/*.conf\n".to_vec(),
        ),
        (
            "/etc/fstab",
            format!(
                "proc            /proc           proc    defaults          0       0\n\
                 PARTUUID={DISK_ID}-01  /boot/firmware  vfat    defaults          0       2\n\
                 PARTUUID={DISK_ID}-02  /               ext4    defaults,noatime  0       1\n"
            )
            .into_bytes(),
        ),
        ("/var/log/syslog", log(400)),
        ("/var/log/auth.log", log(100)),
        ("/var/log/nginx/okome_access.log", log(200)),
        ("/var/log/apt/history.log", log(20)),
        (
            "/var/log/journal/0123456789abcdef0123456789abcdef/system.journal",
            log(300),
        ),
        (
            "/var/cache/apt/archives/nginx_1.22.1-9_arm64.deb",
            vec![0x21; 300_000],
        ),
        ("/var/cache/apt/archives/lock", Vec::new()),
        ("/var/cache/apt/pkgcache.bin", vec![0x42; 100_000]),
        (
            "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-arm64_Packages",
            vec![b'P'; 200_000],
        ),
        ("/var/lib/apt/lists/lock", Vec::new()),
        (
            "/var/lib/dhcp/dhclient.eth0.leases",
            b"lease { fixed-address 10.213.0.9; }\n".to_vec(),
        ),
        ("/var/lib/dhcpcd/eth0.lease", b"lease\n".to_vec()),
        ("/root/.bash_history", b"redis-cli -a hunter2\n".to_vec()),
        ("/home/pi/.bash_history", b"sudo reboot\n".to_vec()),
        ("/home/pi/.profile", b"# kept\n".to_vec()),
        (
            "/var/cache/nginx/okome/a/bc/0123456789abcdef0123456789abcbca",
            vec![b'C'; 50_000],
        ),
        (
            "/var/lib/redis/dump.rdb",
            [b"REDIS0011 ", REDIS_DUMP_MARKER].concat(),
        ),
        (
            "/var/lib/redis/okome-functions.rdb",
            [b"REDIS0010 ", REDIS_FUNCTIONS_MARKER].concat(),
        ),
        (
            "/var/lib/fail2ban/fail2ban.sqlite3",
            b"SQLite format 3\0".to_vec(),
        ),
        ("/var/lib/okome/prewarm-state.json", b"{}\n".to_vec()),
        ("/var/lib/systemd/random-seed", vec![7; 512]),
        ("/var/lib/systemd/credential.secret", vec![9; 32]),
        (
            "/etc/keepalived/okome/keepalived-master.conf",
            b"# master\n".to_vec(),
        ),
        (
            "/etc/keepalived/okome/keepalived-backup.conf",
            b"# backup\n".to_vec(),
        ),
        (
            "/usr/lib/systemd/system/ssh.service",
            b"[Service]\nExecStart=/usr/sbin/sshd -D\n".to_vec(),
        ),
    ];
    for (path, contents) in &files {
        put(root, path, contents)?;
    }
    std::fs::create_dir_all(root.join("var/lib/apt/lists/partial")).map_err(Error::io(root))?;
    std::fs::create_dir_all(root.join("usr/local/sbin")).map_err(Error::io(root))?;
    if options.keygen_unit {
        put(
            root,
            "/usr/lib/systemd/system/regenerate_ssh_host_keys.service",
            b"[Unit]\nDescription=Regenerate SSH host keys\nBefore=ssh.service\n\
              ConditionFileIsExecutable=/usr/bin/ssh-keygen\n\n[Service]\nType=oneshot\n\
              ExecStart=/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys\n\n\
              [Install]\nWantedBy=multi-user.target\n",
        )?;
        link(
            root,
            "/etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service",
            "/usr/lib/systemd/system/regenerate_ssh_host_keys.service",
        )?;
    } else {
        std::fs::create_dir_all(root.join("etc/systemd/system/multi-user.target.wants"))
            .map_err(Error::io(root))?;
    }
    link(
        root,
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
        "/usr/lib/systemd/system/ssh.service",
    )?;
    let mut rng = Rng(0x0c0e_0e0e);
    let mut left = options.data_bytes;
    let mut index = 0;
    while left > 0 {
        let len = left.min(8 << 20);
        let mut data = vec![0u8; len as usize];
        for block in data.chunks_mut(4096) {
            if rng.next().is_multiple_of(2) {
                for word in block.chunks_mut(8) {
                    let bytes = rng.next().to_le_bytes();
                    word.copy_from_slice(&bytes[..word.len()]);
                }
            } else {
                let line = b"GET /assets/app.js HTTP/1.1 200 cache=HIT okome ";
                for (i, byte) in block.iter_mut().enumerate() {
                    *byte = line[i % line.len()];
                }
            }
        }
        put(root, &format!("/srv/okome/data/blob-{index:04}"), &data)?;
        left -= len;
        index += 1;
    }
    Ok(())
}

/// The built image and where its parts are.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The disk image.
    pub image: PathBuf,
}

/// Build the fixture image in `dir` (`dir/card.img`).
pub fn build(dir: &Path, options: &Options) -> Result<Fixture> {
    let tree_dir = dir.join("tree");
    tree(&tree_dir, options)?;
    let root_path = dir.join("root.ext4");
    exec::checked(
        exec::command("mkfs.ext4")
            .args(["-q", "-F", "-L", "rootfs", "-d"])
            .arg(&tree_dir)
            .arg(&root_path)
            .arg(format!("{}k", options.root_bytes >> 10)),
        &[0],
    )?;
    std::fs::remove_dir_all(&tree_dir).map_err(Error::io(&tree_dir))?;
    dirty(&Ext4::new(&root_path), dir, options.dirty_bytes)?;

    let boot_path = dir.join("boot.fat");
    exec::checked(
        exec::command("mkfs.fat")
            .args(["-F", "32", "-s", "1", "-n", "BOOTFS", "-i", DISK_ID, "-C"])
            .arg(&boot_path)
            .arg((BOOT_SECTORS * SECTOR / 1024).to_string()),
        &[0],
    )?;
    let boot = Fat {
        image: &boot_path,
        offset: 0,
    };
    boot.write(
        "cmdline.txt",
        format!("console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID}-02 rootfstype=ext4 fsck.repair=yes rootwait\n").as_bytes(),
    )?;
    boot.write(
        "config.txt",
        b"# Raspberry Pi config.txt (fixture)\narm_64bit=1\ndtparam=audio=off\n",
    )?;
    let mut userconf = Vec::new();
    for _ in 0..200 {
        userconf.extend_from_slice(b"pi:$6$");
        userconf.extend_from_slice(BOOT_MARKER);
        userconf.push(b'\n');
    }
    boot.write("userconf.txt", &userconf)?;
    exec::checked(
        exec::command("mdel")
            .arg("-i")
            .arg(&boot_path)
            .arg("::userconf.txt"),
        &[0],
    )?;

    let image = dir.join("card.img");
    let disk = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&image)
        .map_err(Error::io(&image))?;
    disk.set_len(root_offset() + options.root_bytes)
        .map_err(Error::io(&image))?;
    let layout = table::layout(table::Table {
        label: "dos".into(),
        id: Some(format!("0x{DISK_ID}")),
        sectorsize: SECTOR,
        partitions: vec![
            table::Partition {
                start: BOOT_START,
                size: BOOT_SECTORS,
                kind: "c".into(),
                bootable: true,
            },
            table::Partition {
                start: root_offset() / SECTOR,
                size: options.root_bytes / SECTOR,
                kind: "83".into(),
                bootable: false,
            },
        ],
    })?;
    let boot_file = File::open(&boot_path).map_err(Error::io(&boot_path))?;
    crate::copy::copy_between(
        &boot_file,
        0,
        &disk,
        BOOT_START * SECTOR,
        BOOT_SECTORS * SECTOR,
        "fixture boot",
    )?;
    let root_file = File::open(&root_path).map_err(Error::io(&root_path))?;
    crate::copy::copy_between(
        &root_file,
        0,
        &disk,
        root_offset(),
        options.root_bytes,
        "fixture root",
    )?;
    disk.sync_all().map_err(Error::io(&image))?;
    drop(disk);
    crate::create::write_table(&image, &layout, options.root_bytes / SECTOR)?;
    std::fs::remove_file(&boot_path).map_err(Error::io(&boot_path))?;
    std::fs::remove_file(&root_path).map_err(Error::io(&root_path))?;
    Ok(Fixture { image })
}

/// Write a file of marked random blocks through debugfs and delete it again.
fn dirty(fs: &Ext4, dir: &Path, bytes: u64) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    let local = dir.join("dirty");
    // Old data is not compressible: each 4 KiB block is the marker followed
    // by random bytes, so `dd | zstd` pays for it as it would on a real card.
    let mut rng = Rng(0xd1a7_d1a7);
    let mut data = vec![0u8; bytes as usize];
    for block in data.chunks_mut(4096) {
        for word in block.chunks_mut(8) {
            let random = rng.next().to_le_bytes();
            word.copy_from_slice(&random[..word.len()]);
        }
        let n = DIRTY_MARKER.len().min(block.len());
        block[..n].copy_from_slice(&DIRTY_MARKER[..n]);
    }
    std::fs::write(&local, &data).map_err(Error::io(&local))?;
    let mut edits = Edits::default();
    edits.write("/dirty-file", &data, 0o644, false)?;
    edits.apply(fs)?;
    let mut edits = Edits::default();
    edits.rm("/dirty-file");
    edits.apply(fs)?;
    std::fs::remove_file(&local).map_err(Error::io(&local))
}

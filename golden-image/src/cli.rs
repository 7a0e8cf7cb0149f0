//! Flags, their help (which is also the man page), and the validated
//! [`Config`] they become before any file is opened.
//!
//! Precedence: flag > `OKOME_GOLDEN_IMAGE_*` environment variable >
//! `/etc/default/okome-golden-image` > built-in default. Every usage error
//! (a bad hostname, a level zstd does not have, OUT's name and compression
//! disagreeing) is found here, so a refused command never leaves a file.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};

/// Where the packaged SD-wear configs live.
pub const DEFAULT_CONFIGS: &str = "/usr/share/okome-golden-image";

const ABOUT: &str =
    "One Pi's card becomes a hardened, shrunk, verified image both Pis can be reflashed from.";

const LONG_ABOUT: &str = "\
One Pi's card becomes a hardened, shrunk, verified image both Pis can be
reflashed from. Works on image files without loop devices, mounts or root
(sfdisk, mtools img@@offset, e2fsprogs on an extracted copy); root is needed
only to read or write a card's block device.";

const AFTER_LONG_HELP: &str = "\
create SRC OUT, step by step:
 1. Refusals, before anything is written (nothing is left behind):
    mounted        SRC or a partition of it is in /proc/self/mountinfo
    loop-attached  SRC backs a loop device (/sys/block/loop*/loop/
                   backing_file)
    system-disk    SRC holds the running system's root filesystem
    out-on-src     OUT is SRC, or lies on a filesystem SRC holds
    no-space       OUT's directory cannot hold the extracted root
                   filesystem, the image and its compressed copy
    layout         not MBR with a FAT boot partition and the ext4 root
                   partition last
 2. sfdisk --json reads the table; `e2image -ra -o OFFSET` copies the
    root filesystem's used blocks only into a work file beside OUT: the
    free blocks of a dirty card never come along. SRC is read-only.
 3. e2fsck -fy on the copy, then these edits by debugfs -w, each listed
    in /etc/okome/golden-image.manifest.json inside the image:
    ssh-keygen-unit  an enabled unit regenerates SSH host keys (Raspberry
                     Pi OS's regenerate_ssh_host_keys.service, any unit
                     running ssh-keygen, or --add-ssh-keygen-unit);
                     otherwise refused (no-ssh-keygen-unit, exit 1)
    machine-id       /etc/machine-id = \"uninitialized\" (a new id per
                     clone); /var/lib/dbus/machine-id removed
    ssh-host-keys    /etc/ssh/ssh_host_* removed
    secrets          /var/lib/systemd/random-seed, credential.secret
    logs             every file under /var/log truncated, dirs kept
    journal          /var/log/journal/* removed
    apt-caches       /var/cache/apt/archives, *.bin, /var/lib/apt/lists
    dhcp-leases      /var/lib/dhcp, dhcpcd, dhcpcd5, NetworkManager leases
    shell-histories  .bash_history, .zsh_history, ... of /root, /home/*
    nginx-cache      /var/cache/nginx/okome/* removed
    redis-dumps      /var/lib/redis/* removed but okome-functions.rdb
                     (the preloaded okome library: code, not data)
    fail2ban-db      /var/lib/fail2ban/fail2ban.sqlite3 removed
    okome-state      /var/lib/okome/* removed
    fstab            fstab-hardened.conf merged into /etc/fstab
                     (noatime, commit=60, tmpfs /tmp and /var/tmp); the
                     image's PARTUUIDs are kept
    journald         journald.conf as /etc/systemd/journald.conf.d/
                     okome.conf
    sysctl           sysctl-okome.conf as /etc/sysctl.d/90-okome.conf
    masked           --mask units linked to /dev/null (mask, do not
                     merely disable: systemd applies presets on a first
                     boot and may enable a disabled unit again)
    first-boot       okome-firstboot.service (ConditionFirstBoot=yes,
                     never rc.local): on a clone's first boot, grows the
                     root partition and filesystem to the card and
                     applies okome-node.conf (hostname, keepalived role)
    The three shipped files are read from --configs, never re-typed.
 4. resize2fs shrinks the copy, a whole file: never IMG?offset=N, which
    resize2fs truncates to the filesystem's size. Target: blocks in use
    + 5 % + --margin (-f, as resize2fs's own minimum is pessimistic);
    if that fails or e2fsck -fn is not clean, the copy is made again and
    shrunk to resize2fs -P's minimum + --margin.
 5. `e2image -ra -O OFFSET` writes the copy's used blocks into a temp
    file beside OUT (free blocks are holes: zeros, never old data);
    sfdisk writes the same table and disk identifier with the root
    partition shrunk; the boot partition's clusters in use are copied
    (free clusters stay zeros: a consumed userconf.txt or Wi-Fi file
    stays behind); cmdline.txt's
    root=PARTUUID= and every PARTUUID= in fstab must name a partition
    of the new table.
 6. zstd -T<--threads> -<--level> (unless --no-compress), then the round
    trip: decompress, compare with the image byte for byte, hash. The
    temp file is fsynced and renamed to OUT, and OUT.sha256 written (the
    format of sha256sum -c). An interrupted run (SIGINT, SIGTERM,
    SIGHUP) stops at the next step, removes its work files and leaves
    no OUT (exit 3).

verify IMG[.zst]: the checksum against IMG.sha256, sfdisk --verify, the
filesystem no larger than its partition, the file long enough, e2fsck -fn
and fsck.fat -n clean, cmdline.txt and fstab PARTUUIDs, the manifest, and
every step of 3. again, each named in the report (--json).

burn IMG DEVICE --hostname H --role master|backup: refuses a mounted
DEVICE or the system disk (mounted, system-disk); checks IMG.sha256 when
present; zeroes the first sector, writes the rest, then the first sector
last (a half-written card has no partition table); reads back and
compares the SHA-256; then writes okome-node.conf (hostname=, role=) to
the boot partition for okome-firstboot.

Examples:
  okome-golden-image create /dev/sdb golden.img.zst --mask bluetooth
  okome-golden-image verify golden.img.zst --json
  okome-golden-image burn golden.img.zst /dev/sdc --hostname okome-b \\
      --role backup

Exit status:
  0  ran, all good
  1  ran and found a problem: an invariant does not hold (verify), the
     read-back differs (burn), the image has no SSH key unit or is not a
     Pi layout (create)
  2  usage or configuration error, or a refusal (mounted, loop-attached,
     system disk, OUT on SRC, no space): nothing was written
  3  internal failure (a program failed, I/O error)";

/// keepalived role of a burnt node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// keepalived-master.conf.
    Master,
    /// keepalived-backup.conf.
    Backup,
}

impl Role {
    /// As written in okome-node.conf.
    pub fn word(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// The flags, as clap parses them.
#[derive(Debug, Parser)]
#[command(
    name = "okome-golden-image",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    max_term_width = 80,
    subcommand_required = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a golden image from a card or image file
    Create(CreateArgs),
    /// Check an image: table, filesystems, every preparation step, checksum
    Verify(VerifyArgs),
    /// Write an image to a card, read it back, give the node its name and role
    Burn(BurnArgs),
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The card (block device) or image file to read; never modified
    #[arg(value_name = "SRC")]
    pub src: PathBuf,
    /// The image to write (ending in .zst unless --no-compress)
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Directory holding fstab-hardened.conf, journald.conf, sysctl-okome.conf
    #[arg(long, value_name = "DIR", env = "OKOME_GOLDEN_IMAGE_CONFIGS", default_value = DEFAULT_CONFIGS)]
    pub configs: PathBuf,
    /// Units to mask (comma-separated; bare names get .service)
    #[arg(
        long,
        value_name = "UNITS",
        value_delimiter = ',',
        env = "OKOME_GOLDEN_IMAGE_MASK"
    )]
    pub mask: Vec<String>,
    /// Install okome-ssh-keygen.service when the image has no unit that
    /// regenerates SSH host keys (otherwise such an image is refused)
    #[arg(long, verbatim_doc_comment)]
    pub add_ssh_keygen_unit: bool,
    /// Write a raw image instead of zstd
    #[arg(long)]
    pub no_compress: bool,
    /// zstd level (1-22)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 9,
        env = "OKOME_GOLDEN_IMAGE_LEVEL"
    )]
    pub level: u8,
    /// zstd worker threads (0: one per core; each takes about 25 MiB)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "OKOME_GOLDEN_IMAGE_THREADS"
    )]
    pub threads: u32,
    /// Free space left in the shrunk root filesystem, in MiB
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 64,
        env = "OKOME_GOLDEN_IMAGE_MARGIN"
    )]
    pub margin: u64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image (raw or .zst)
    #[arg(value_name = "IMG")]
    pub image: PathBuf,
    /// Directory holding the shipped configs the image must carry
    #[arg(long, value_name = "DIR", env = "OKOME_GOLDEN_IMAGE_CONFIGS", default_value = DEFAULT_CONFIGS)]
    pub configs: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// `burn`.
#[derive(Debug, Args)]
pub struct BurnArgs {
    /// The image (raw or .zst)
    #[arg(value_name = "IMG")]
    pub image: PathBuf,
    /// The card to write (a block device, or a file standing in for one)
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// The node's hostname
    #[arg(long, value_name = "NAME")]
    pub hostname: String,
    /// The node's keepalived role
    #[arg(long, value_enum)]
    pub role: Role,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// A validated `create`.
#[derive(Debug, Clone)]
pub struct CreateConfig {
    /// Source card or image.
    pub src: PathBuf,
    /// Output path.
    pub out: PathBuf,
    /// The shipped configs directory.
    pub configs: PathBuf,
    /// Units to mask.
    pub masks: Vec<String>,
    /// Install our keygen unit when missing.
    pub add_keygen_unit: bool,
    /// zstd level, None for a raw image.
    pub level: Option<u8>,
    /// zstd threads (0: one per core).
    pub threads: u32,
    /// Margin in bytes.
    pub margin: u64,
}

/// A validated `verify`.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The image.
    pub image: PathBuf,
    /// The shipped configs directory.
    pub configs: PathBuf,
}

/// A validated `burn`.
#[derive(Debug, Clone)]
pub struct BurnConfig {
    /// The image.
    pub image: PathBuf,
    /// The target device.
    pub device: PathBuf,
    /// Hostname for okome-node.conf.
    pub hostname: String,
    /// Role for okome-node.conf.
    pub role: Role,
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Config {
    /// `create`.
    Create(CreateConfig),
    /// `verify`.
    Verify(VerifyConfig),
    /// `burn`.
    Burn(BurnConfig),
}

/// The command, for `--help`, the man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Whether `name` is a valid hostname label (RFC 1123).
pub fn valid_hostname(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn valid_unit(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
        && !name.starts_with('.')
}

impl Config {
    /// Parsed matches → validated config.
    pub fn from_matches(matches: &clap::ArgMatches) -> Result<Config> {
        let cli = Cli::from_arg_matches(matches).map_err(|e| Error::Usage(e.to_string()))?;
        Config::from_cli(cli)
    }

    /// Validate what clap parsed.
    pub fn from_cli(cli: Cli) -> Result<Config> {
        match cli.command {
            Command::Create(args) => {
                if !(1..=22).contains(&args.level) {
                    return Err(Error::Usage(format!(
                        "--level {}: zstd levels are 1-22",
                        args.level
                    )));
                }
                let zst = crate::compress::is_zst(&args.out);
                if args.no_compress && zst {
                    return Err(Error::Usage(format!(
                        "{}: --no-compress writes a raw image; name it without .zst",
                        args.out.display()
                    )));
                }
                if !args.no_compress && !zst {
                    return Err(Error::Usage(format!(
                        "{}: the image is zstd-compressed; name it ….img.zst or pass --no-compress",
                        args.out.display()
                    )));
                }
                if let Some(bad) = args.mask.iter().find(|m| !valid_unit(m)) {
                    return Err(Error::Usage(format!("--mask {bad:?}: not a unit name")));
                }
                if args.threads > 64 {
                    return Err(Error::Usage(format!(
                        "--threads {}: at most 64",
                        args.threads
                    )));
                }
                if args.margin > 1 << 20 {
                    return Err(Error::Usage(format!(
                        "--margin {} MiB is not a margin",
                        args.margin
                    )));
                }
                if args.out.file_name().is_none() {
                    return Err(Error::Usage(format!(
                        "OUT {} names no file",
                        args.out.display()
                    )));
                }
                Ok(Config::Create(CreateConfig {
                    src: args.src,
                    out: args.out,
                    configs: args.configs,
                    masks: args.mask,
                    add_keygen_unit: args.add_ssh_keygen_unit,
                    level: (!args.no_compress).then_some(args.level),
                    threads: args.threads,
                    margin: args.margin << 20,
                }))
            }
            Command::Verify(args) => Ok(Config::Verify(VerifyConfig {
                image: args.image,
                configs: args.configs,
            })),
            Command::Burn(args) => {
                if !valid_hostname(&args.hostname) {
                    return Err(Error::Usage(format!(
                        "--hostname {:?}: letters, digits and '-', 1-63 characters, not starting or ending with '-'",
                        args.hostname
                    )));
                }
                Ok(Config::Burn(BurnConfig {
                    image: args.image,
                    device: args.device,
                    hostname: args.hostname,
                    role: args.role,
                }))
            }
        }
    }
}

/// Whether the parsed command asked for `--json`.
pub fn wants_json(matches: &clap::ArgMatches) -> bool {
    matches
        .subcommand()
        .is_some_and(|(_, sub)| sub.get_flag("json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config> {
        let matches = command()
            .try_get_matches_from(std::iter::once("okome-golden-image").chain(args.iter().copied()))
            .map_err(|e| Error::Usage(e.to_string()))?;
        Config::from_matches(&matches)
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn create_flags_become_a_config() {
        let Config::Create(c) = config(&[
            "create",
            "/dev/sdb",
            "g.img.zst",
            "--mask",
            "bluetooth,avahi-daemon",
            "--level",
            "3",
        ])
        .unwrap() else {
            panic!("not create");
        };
        assert_eq!(c.masks, ["bluetooth", "avahi-daemon"]);
        assert_eq!(c.level, Some(3));
        assert_eq!(c.margin, 64 << 20);
        let Config::Create(raw) = config(&["create", "a", "g.img", "--no-compress"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(raw.level, None);
    }

    #[test]
    fn usage_errors_are_found_before_any_file_is_opened() {
        for args in [
            &["create", "a", "g.img"][..],
            &["create", "a", "g.img.zst", "--no-compress"],
            &["create", "a", "g.img.zst", "--level", "23"],
            &["create", "a", "g.img.zst", "--mask", "../etc/passwd"],
            &[
                "burn",
                "g.img",
                "/dev/sdb",
                "--hostname",
                "-bad",
                "--role",
                "master",
            ],
            &[
                "burn",
                "g.img",
                "/dev/sdb",
                "--hostname",
                "a_b",
                "--role",
                "master",
            ],
            &[
                "burn",
                "g.img",
                "/dev/sdb",
                "--hostname",
                "ok",
                "--role",
                "leader",
            ],
            &[],
        ] {
            let error = config(args).unwrap_err();
            assert!(matches!(error, Error::Usage(_)), "{args:?}: {error}");
        }
    }

    #[test]
    fn hostnames_follow_rfc_1123() {
        assert!(valid_hostname("okome-a"));
        assert!(valid_hostname("pi3"));
        assert!(!valid_hostname(""));
        assert!(!valid_hostname(&"a".repeat(64)));
        assert!(!valid_hostname("a.b"));
    }
}

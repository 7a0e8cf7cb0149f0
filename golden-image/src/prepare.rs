//! Offline preparation of the extracted root filesystem, one closed set of
//! [`Step`]s, each with its edit ([`apply`]) and its invariant ([`check`]).
//!
//! `create` applies every step to the extracted copy and writes the list into
//! the image ([`MANIFEST`]); `verify` checks every invariant again on the
//! finished image. Keeping the edit and the check of a step side by side is
//! the point: a step cannot be added without saying how it is verified, and
//! the same [`Step::word`] names it in the manifest, the `--json` report and
//! the tests. All edits go through debugfs on an image file ([`crate::ext4`]).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Refusal, Result};
use crate::ext4::{Edits, Entry, Ext4, split};
use crate::fstab;

/// Where the manifest goes inside the image.
pub const MANIFEST: &str = "/etc/okome/golden-image.manifest.json";
/// The first-boot unit (grow the root filesystem, apply okome-node.conf).
pub const FIRSTBOOT_UNIT: &str = "/etc/systemd/system/okome-firstboot.service";
/// Its enablement.
pub const FIRSTBOOT_WANTS: &str =
    "/etc/systemd/system/multi-user.target.wants/okome-firstboot.service";
/// The script it runs.
pub const FIRSTBOOT_SCRIPT: &str = "/usr/local/sbin/okome-firstboot";
/// Unit text shipped in the binary.
pub const FIRSTBOOT_UNIT_TEXT: &str = include_str!("../data/okome-firstboot.service");
/// Script text shipped in the binary.
pub const FIRSTBOOT_SCRIPT_TEXT: &str = include_str!("../data/okome-firstboot");
/// The SSH key unit `--add-ssh-keygen-unit` installs.
pub const KEYGEN_UNIT: &str = "/etc/systemd/system/okome-ssh-keygen.service";
/// Its enablement.
pub const KEYGEN_WANTS: &str =
    "/etc/systemd/system/multi-user.target.wants/okome-ssh-keygen.service";
/// Its text.
pub const KEYGEN_UNIT_TEXT: &str = include_str!("../data/okome-ssh-keygen.service");
/// Where the journald drop-in goes.
pub const JOURNALD_DROPIN: &str = "/etc/systemd/journald.conf.d/okome.conf";
/// Where the sysctl drop-in goes.
pub const SYSCTL_DROPIN: &str = "/etc/sysctl.d/90-okome.conf";
/// What `/etc/machine-id` holds in a golden image (machine-id(5): first boot).
pub const MACHINE_ID: &str = "uninitialized\n";

/// Files under a home directory that record what someone typed.
const HISTORIES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".rediscli_history",
    ".mysql_history",
    ".sqlite_history",
    ".wget-hsts",
];

/// Directories whose whole contents are node state (the directory stays).
const EMPTIED: &[(Step, &str)] = &[
    (Step::Journal, "/var/log/journal"),
    (Step::AptCaches, "/var/cache/apt/archives"),
    (Step::DhcpLeases, "/var/lib/dhcp"),
    (Step::DhcpLeases, "/var/lib/dhcpcd"),
    (Step::DhcpLeases, "/var/lib/dhcpcd5"),
    (Step::NginxCache, "/var/cache/nginx/okome"),
    (Step::RedisDumps, "/var/lib/redis"),
    (Step::OkomeState, okome_common::paths::STATE_DIR),
];

/// Files kept by name directly inside an emptied directory: apt's `lock`
/// (and its emptied `partial/`), and okome-backend's preloaded Redis
/// function library, `okome-functions.rdb`: code the package built, not
/// node data (with `save ""` Redis writes no other dump there), and
/// without it a clone's Redis would start with no `okome` library until
/// the next `dpkg-reconfigure okome-backend`.
const KEPT: &[&str] = &["partial", "lock", "okome-functions.rdb"];

/// Single files that are node state or secrets.
const REMOVED: &[(Step, &str)] = &[
    (Step::Secrets, "/var/lib/systemd/random-seed"),
    (Step::Secrets, "/var/lib/systemd/credential.secret"),
    (Step::Fail2banDb, "/var/lib/fail2ban/fail2ban.sqlite3"),
];

/// Every preparation step, in the order applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// An enabled unit regenerates SSH host keys on the clone (else refuse).
    SshKeygenUnit,
    /// `/etc/machine-id` is "uninitialized"; D-Bus's copy removed.
    MachineId,
    /// `/etc/ssh/ssh_host_*` removed.
    SshHostKeys,
    /// random-seed and the credential secret removed.
    Secrets,
    /// Every file under /var/log truncated (directories kept).
    Logs,
    /// `/var/log/journal/*` removed.
    Journal,
    /// apt's downloaded packages, package caches and lists removed.
    AptCaches,
    /// DHCP leases removed.
    DhcpLeases,
    /// Shell and tool histories removed.
    ShellHistories,
    /// The nginx cache emptied.
    NginxCache,
    /// Redis dumps and append-only files removed (not the preloaded library).
    RedisDumps,
    /// fail2ban's database removed.
    Fail2banDb,
    /// `/var/lib/okome` emptied.
    OkomeState,
    /// fstab-hardened.conf merged into /etc/fstab.
    Fstab,
    /// journald.conf installed as a drop-in.
    Journald,
    /// sysctl-okome.conf installed as a drop-in.
    Sysctl,
    /// `--mask` units linked to /dev/null.
    Masked,
    /// okome-firstboot.service installed and enabled.
    FirstBoot,
}

impl Step {
    /// Every step, in order.
    pub const ALL: &'static [Step] = &[
        Step::SshKeygenUnit,
        Step::MachineId,
        Step::SshHostKeys,
        Step::Secrets,
        Step::Logs,
        Step::Journal,
        Step::AptCaches,
        Step::DhcpLeases,
        Step::ShellHistories,
        Step::NginxCache,
        Step::RedisDumps,
        Step::Fail2banDb,
        Step::OkomeState,
        Step::Fstab,
        Step::Journald,
        Step::Sysctl,
        Step::Masked,
        Step::FirstBoot,
    ];

    /// The word used in the manifest, `--json`, logs and tests.
    pub fn word(self) -> &'static str {
        match self {
            Step::SshKeygenUnit => "ssh-keygen-unit",
            Step::MachineId => "machine-id",
            Step::SshHostKeys => "ssh-host-keys",
            Step::Secrets => "secrets",
            Step::Logs => "logs",
            Step::Journal => "journal",
            Step::AptCaches => "apt-caches",
            Step::DhcpLeases => "dhcp-leases",
            Step::ShellHistories => "shell-histories",
            Step::NginxCache => "nginx-cache",
            Step::RedisDumps => "redis-dumps",
            Step::Fail2banDb => "fail2ban-db",
            Step::OkomeState => "okome-state",
            Step::Fstab => "fstab",
            Step::Journald => "journald",
            Step::Sysctl => "sysctl",
            Step::Masked => "masked",
            Step::FirstBoot => "first-boot",
        }
    }
}

/// The shipped SD-wear files, read from the configs directory.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// fstab-hardened.conf.
    pub fstab: String,
    /// journald.conf.
    pub journald: String,
    /// sysctl-okome.conf.
    pub sysctl: String,
}

impl Shipped {
    /// Read the three files from `dir` (the repository's configs/, or
    /// /usr/share/okome-golden-image when packaged).
    pub fn load(dir: &Path) -> Result<Shipped> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|error| {
                Error::Usage(format!(
                    "{}: {error} (--configs names the directory holding fstab-hardened.conf, journald.conf and sysctl-okome.conf)",
                    path.display()
                ))
            })
        };
        Ok(Shipped {
            fstab: read("fstab-hardened.conf")?,
            journald: read("journald.conf")?,
            sysctl: read("sysctl-okome.conf")?,
        })
    }
}

/// What preparation needs besides the filesystem.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The shipped SD-wear files.
    pub shipped: Shipped,
    /// Units to mask (`bluetooth` means `bluetooth.service`).
    pub masks: Vec<String>,
    /// Install okome-ssh-keygen.service when the image has no such unit.
    pub add_keygen_unit: bool,
}

/// One manifest line: a step and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// The step.
    pub step: Step,
    /// What it did, in words.
    pub detail: String,
}

/// A unit name with `.service` when it has no type suffix.
pub fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// Where `--mask NAME` puts its /dev/null link.
pub fn mask_path(name: &str) -> String {
    format!("/etc/systemd/system/{}", unit_name(name))
}

/// Directories that hold unit files, in systemd's order.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The enabled unit that regenerates SSH host keys, if any: a unit linked
/// from a `.wants` directory under /etc/systemd/system whose text runs
/// `ssh-keygen` or Raspberry Pi OS's `regenerate_ssh_host_keys`.
pub fn keygen_unit(fs: &Ext4) -> Result<Option<String>> {
    let Some(entries) = fs.ls("/etc/systemd/system")? else {
        return Ok(None);
    };
    for wants in entries
        .iter()
        .filter(|e| e.is_dir() && e.name.ends_with(".wants"))
    {
        let dir = format!("/etc/systemd/system/{}", wants.name);
        for link in fs.ls(&dir)?.unwrap_or_default() {
            for unit_dir in UNIT_DIRS {
                let path = format!("{unit_dir}/{}", link.name);
                if let Some(text) = fs.read(&path)? {
                    let text = String::from_utf8_lossy(&text);
                    if text.lines().any(|line| {
                        line.starts_with("ExecStart")
                            && (line.contains("ssh-keygen")
                                || line.contains("regenerate_ssh_host_keys"))
                    }) {
                        return Ok(Some(link.name.clone()));
                    }
                    break;
                }
            }
        }
    }
    Ok(None)
}

/// Accumulates the edits of every step in one debugfs batch.
struct Work<'a> {
    fs: &'a Ext4,
    edits: Edits,
    made: BTreeSet<String>,
}

impl Work<'_> {
    fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.made.contains(path) || self.fs.stat(path)?.is_some())
    }

    fn mkdir_p(&mut self, dir: &str) -> Result<()> {
        if dir == "/" || self.exists(dir)? {
            return Ok(());
        }
        self.mkdir_p(split(dir).0)?;
        self.edits.mkdir(dir);
        self.made.insert(dir.to_string());
        Ok(())
    }

    fn install(&mut self, path: &str, text: &str, mode: u32) -> Result<bool> {
        if self.fs.read(path)?.as_deref() == Some(text.as_bytes()) {
            return Ok(false);
        }
        self.mkdir_p(split(path).0)?;
        let exists = self.fs.stat(path)?.is_some();
        self.edits.write(path, text.as_bytes(), mode, exists)?;
        Ok(true)
    }

    fn link(&mut self, path: &str, target: &str) -> Result<bool> {
        if self.fs.readlink(path)?.as_deref() == Some(target) {
            return Ok(false);
        }
        self.mkdir_p(split(path).0)?;
        if self.fs.stat(path)?.is_some() {
            self.edits.rm(path);
        }
        self.edits.symlink(path, target);
        Ok(true)
    }

    /// Remove everything under `dir`, keeping `dir` and the entries named
    /// `keep` directly in it (apt's `lock` file, its emptied `partial/`).
    fn empty(&mut self, dir: &str, keep: &[&str]) -> Result<usize> {
        let mut entries: Vec<(String, Entry)> = self
            .fs
            .walk(dir)?
            .into_iter()
            .filter(|(path, _)| !keep.contains(&&path[dir.len() + 1..]))
            .collect();
        // Children before their directory.
        entries.sort_by_key(|(path, _)| std::cmp::Reverse(path.matches('/').count()));
        let mut files = 0;
        for (path, entry) in &entries {
            if entry.is_dir() {
                self.edits.rmdir(path);
            } else {
                self.edits.rm(path);
                files += 1;
            }
        }
        Ok(files)
    }
}

/// Apply every step to the extracted filesystem `fs`, in one debugfs batch,
/// then write the manifest. Refuses (before any edit) when no unit will
/// regenerate SSH host keys.
pub fn apply(fs: &Ext4, plan: &Plan) -> Result<Vec<Done>> {
    let mut work = Work {
        fs,
        edits: Edits::default(),
        made: BTreeSet::new(),
    };
    let mut done = Vec::new();
    let mut note = |step: Step, detail: String| {
        log::debug!("{}: {detail}", step.word());
        done.push(Done { step, detail });
    };

    match keygen_unit(fs)? {
        Some(unit) => note(Step::SshKeygenUnit, format!("{unit} is enabled")),
        None if plan.add_keygen_unit => {
            work.install(KEYGEN_UNIT, KEYGEN_UNIT_TEXT, 0o644)?;
            work.link(KEYGEN_WANTS, KEYGEN_UNIT)?;
            note(
                Step::SshKeygenUnit,
                "installed and enabled okome-ssh-keygen.service".into(),
            );
        }
        None => {
            return Err(Error::Refused(
                Refusal::NoKeygenUnit,
                "no enabled unit regenerates SSH host keys in this image: its clones would boot with no sshd. Enable one (Raspberry Pi OS: regenerate_ssh_host_keys.service) or pass --add-ssh-keygen-unit".into(),
            ));
        }
    }

    let changed = work.install("/etc/machine-id", MACHINE_ID, 0o444)?;
    let mut detail = format!(
        "/etc/machine-id {}",
        if changed {
            "set to \"uninitialized\""
        } else {
            "already \"uninitialized\""
        }
    );
    if fs
        .stat("/var/lib/dbus/machine-id")?
        .is_some_and(|e| e.is_file())
    {
        work.edits.rm("/var/lib/dbus/machine-id");
        detail.push_str(", /var/lib/dbus/machine-id removed");
    }
    note(Step::MachineId, detail);

    let keys = ssh_host_keys(fs)?;
    for key in &keys {
        work.edits.rm(key);
    }
    note(
        Step::SshHostKeys,
        format!("{} host key files removed", keys.len()),
    );

    for step in [Step::Secrets, Step::Fail2banDb] {
        let mut removed = Vec::new();
        for (_, path) in REMOVED.iter().filter(|(s, _)| *s == step) {
            if fs.stat(path)?.is_some() {
                work.edits.rm(path);
                removed.push(*path);
            }
        }
        note(step, format!("removed: {}", list(&removed)));
    }

    let mut truncated = 0;
    for (path, entry) in fs.walk("/var/log")? {
        if path.starts_with("/var/log/journal/") || !entry.is_file() || entry.size == 0 {
            continue;
        }
        work.edits.truncate(&path);
        truncated += 1;
    }
    note(
        Step::Logs,
        format!("{truncated} files under /var/log truncated, directories kept"),
    );

    for step in [
        Step::Journal,
        Step::AptCaches,
        Step::DhcpLeases,
        Step::NginxCache,
        Step::RedisDumps,
        Step::OkomeState,
    ] {
        let mut files = 0;
        for (_, dir) in EMPTIED.iter().filter(|(s, _)| *s == step) {
            if fs.stat(dir)?.is_some_and(|e| e.is_dir()) {
                files += work.empty(dir, KEPT)?;
            }
        }
        if step == Step::AptCaches {
            files += work.empty("/var/lib/apt/lists", KEPT)?;
            for entry in fs.ls("/var/cache/apt")?.unwrap_or_default() {
                if entry.is_file() && entry.name.ends_with(".bin") {
                    work.edits.rm(&format!("/var/cache/apt/{}", entry.name));
                    files += 1;
                }
            }
        }
        if step == Step::DhcpLeases {
            for entry in fs.ls("/var/lib/NetworkManager")?.unwrap_or_default() {
                if entry.is_file() && entry.name.ends_with(".lease") {
                    work.edits
                        .rm(&format!("/var/lib/NetworkManager/{}", entry.name));
                    files += 1;
                }
            }
        }
        note(step, format!("{files} files removed"));
        if step == Step::DhcpLeases {
            let histories = histories(fs)?;
            for path in &histories {
                work.edits.rm(path);
            }
            note(
                Step::ShellHistories,
                format!("removed: {}", list(&histories)),
            );
        }
    }

    let image_fstab = fs
        .read("/etc/fstab")?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let merged = fstab::merge(&image_fstab, &plan.shipped.fstab);
    if merged.text != image_fstab {
        work.install("/etc/fstab", &merged.text, 0o644)?;
    }
    note(
        Step::Fstab,
        format!(
            "options changed: {}; added: {}; not applicable here: {}",
            list(&merged.changed),
            list(&merged.added),
            list(&merged.skipped)
        ),
    );
    work.install(JOURNALD_DROPIN, &plan.shipped.journald, 0o644)?;
    note(
        Step::Journald,
        format!("{JOURNALD_DROPIN} = configs/journald.conf"),
    );
    work.install(SYSCTL_DROPIN, &plan.shipped.sysctl, 0o644)?;
    note(
        Step::Sysctl,
        format!("{SYSCTL_DROPIN} = configs/sysctl-okome.conf"),
    );

    let mut masked = Vec::new();
    for name in &plan.masks {
        work.link(&mask_path(name), "/dev/null")?;
        masked.push(unit_name(name));
    }
    note(Step::Masked, format!("masked: {}", list(&masked)));

    work.install(FIRSTBOOT_SCRIPT, FIRSTBOOT_SCRIPT_TEXT, 0o755)?;
    work.install(FIRSTBOOT_UNIT, FIRSTBOOT_UNIT_TEXT, 0o644)?;
    work.link(FIRSTBOOT_WANTS, FIRSTBOOT_UNIT)?;
    note(
        Step::FirstBoot,
        "okome-firstboot.service enabled (ConditionFirstBoot=yes: grows the root filesystem, applies okome-node.conf)".into(),
    );

    let manifest = manifest_json(&done, &plan.masks);
    work.install(MANIFEST, &manifest, 0o644)?;
    work.edits.apply(fs)?;
    Ok(done)
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// History files under /root and /home/*.
/// The SSH host keys in the image (`/etc/ssh/ssh_host_*`): what the
/// step removes and what its check looks for.
fn ssh_host_keys(fs: &Ext4) -> Result<Vec<String>> {
    Ok(fs
        .ls("/etc/ssh")?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.name.starts_with("ssh_host_"))
        .map(|e| format!("/etc/ssh/{}", e.name))
        .collect())
}

fn histories(fs: &Ext4) -> Result<Vec<String>> {
    let mut homes = vec!["/root".to_string()];
    for entry in fs.ls("/home")?.unwrap_or_default() {
        if entry.is_dir() {
            homes.push(format!("/home/{}", entry.name));
        }
    }
    let mut found = Vec::new();
    for home in homes {
        for entry in fs.ls(&home)?.unwrap_or_default() {
            if HISTORIES.contains(&entry.name.as_str()) && !entry.is_dir() {
                found.push(format!("{home}/{}", entry.name));
            }
        }
    }
    Ok(found)
}

/// The manifest: schema, the steps and what each did.
pub fn manifest_json(done: &[Done], masks: &[String]) -> String {
    #[derive(Serialize)]
    struct Manifest<'a> {
        schema: &'static str,
        tool: &'static str,
        version: &'static str,
        masks: &'a [String],
        steps: &'a [Done],
    }
    let manifest = Manifest {
        schema: "okome-golden-image/manifest/1",
        tool: crate::TOOL,
        version: env!("CARGO_PKG_VERSION"),
        masks,
        steps: done,
    };
    serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n"
}

/// The masks a manifest records (verify checks the same ones).
pub fn manifest_masks(text: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    value
        .get("masks")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The invariant of `step` on a finished image: None when it holds,
/// otherwise what is wrong.
pub fn check(step: Step, fs: &Ext4, shipped: &Shipped, masks: &[String]) -> Result<Option<String>> {
    let problem = |text: String| Ok(Some(text));
    match step {
        Step::SshKeygenUnit => {
            if keygen_unit(fs)?.is_none() {
                return problem("no enabled unit regenerates SSH host keys".into());
            }
        }
        Step::MachineId => {
            let id = fs.read("/etc/machine-id")?;
            if !matches!(id.as_deref(), Some(b"uninitialized\n") | Some(b"")) {
                return problem(format!(
                    "/etc/machine-id is {:?}, not \"uninitialized\": every clone would share it",
                    id.map(|b| String::from_utf8_lossy(&b).into_owned())
                ));
            }
            if fs
                .stat("/var/lib/dbus/machine-id")?
                .is_some_and(|e| e.is_file())
            {
                return problem("/var/lib/dbus/machine-id is a file".into());
            }
        }
        Step::SshHostKeys => {
            let keys = ssh_host_keys(fs)?;
            if !keys.is_empty() {
                return problem(format!("SSH host keys present: {}", keys.join(", ")));
            }
        }
        Step::Secrets | Step::Fail2banDb => {
            for (_, path) in REMOVED.iter().filter(|(s, _)| *s == step) {
                if fs.stat(path)?.is_some() {
                    return problem(format!("{path} is present"));
                }
            }
        }
        Step::Logs => {
            for (path, entry) in fs.walk("/var/log")? {
                if entry.is_file() && entry.size > 0 && !path.starts_with("/var/log/journal/") {
                    return problem(format!("{path} holds {} bytes", entry.size));
                }
            }
        }
        Step::Journal
        | Step::AptCaches
        | Step::DhcpLeases
        | Step::NginxCache
        | Step::RedisDumps
        | Step::OkomeState => {
            let mut dirs: Vec<&str> = EMPTIED
                .iter()
                .filter(|(s, _)| *s == step)
                .map(|(_, d)| *d)
                .collect();
            if step == Step::AptCaches {
                dirs.push("/var/lib/apt/lists");
            }
            for dir in dirs {
                for (path, entry) in fs.walk(dir)? {
                    if !entry.is_dir() && !KEPT.contains(&&path[dir.len() + 1..]) {
                        return problem(format!("{path} is present"));
                    }
                }
            }
        }
        Step::ShellHistories => {
            let found = histories(fs)?;
            if !found.is_empty() {
                return problem(format!("present: {}", found.join(", ")));
            }
        }
        Step::Fstab => {
            let text = fs
                .read("/etc/fstab")?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let missing = fstab::missing(&text, &shipped.fstab);
            if !missing.is_empty() {
                return problem(format!("/etc/fstab lacks {}", missing.join("; ")));
            }
        }
        Step::Journald | Step::Sysctl => {
            let (path, want) = if step == Step::Journald {
                (JOURNALD_DROPIN, &shipped.journald)
            } else {
                (SYSCTL_DROPIN, &shipped.sysctl)
            };
            if fs.read(path)?.as_deref() != Some(want.as_bytes()) {
                return problem(format!("{path} is not the shipped file"));
            }
        }
        Step::Masked => {
            for name in masks {
                let path = mask_path(name);
                if fs.readlink(&path)?.as_deref() != Some("/dev/null") {
                    return problem(format!("{path} is not a link to /dev/null"));
                }
            }
        }
        Step::FirstBoot => {
            if fs.read(FIRSTBOOT_UNIT)?.as_deref() != Some(FIRSTBOOT_UNIT_TEXT.as_bytes()) {
                return problem(format!("{FIRSTBOOT_UNIT} is missing or changed"));
            }
            if fs.read(FIRSTBOOT_SCRIPT)?.as_deref() != Some(FIRSTBOOT_SCRIPT_TEXT.as_bytes()) {
                return problem(format!("{FIRSTBOOT_SCRIPT} is missing or changed"));
            }
            if fs.readlink(FIRSTBOOT_WANTS)?.as_deref() != Some(FIRSTBOOT_UNIT) {
                return problem(format!("{FIRSTBOOT_WANTS} does not enable it"));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_a_distinct_word_and_is_listed_once() {
        let words: BTreeSet<&str> = Step::ALL.iter().map(|s| s.word()).collect();
        assert_eq!(words.len(), Step::ALL.len());
        for step in Step::ALL {
            let json = serde_json::to_string(step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.word()));
        }
    }

    #[test]
    fn mask_names_get_a_service_suffix_only_when_bare() {
        assert_eq!(
            mask_path("bluetooth"),
            "/etc/systemd/system/bluetooth.service"
        );
        assert_eq!(
            mask_path("avahi-daemon.socket"),
            "/etc/systemd/system/avahi-daemon.socket"
        );
    }

    #[test]
    fn the_manifest_records_its_masks() {
        let text = manifest_json(&[], &["bluetooth".to_string()]);
        assert_eq!(manifest_masks(text.as_bytes()).unwrap(), ["bluetooth"]);
    }

    #[test]
    fn the_first_boot_unit_never_uses_rc_local_and_waits_for_first_boot() {
        assert!(FIRSTBOOT_UNIT_TEXT.contains("ConditionFirstBoot=yes"));
        assert!(!FIRSTBOOT_UNIT_TEXT.contains("rc.local"));
        assert!(FIRSTBOOT_UNIT_TEXT.contains(&format!("ExecStart={FIRSTBOOT_SCRIPT}")));
    }
}

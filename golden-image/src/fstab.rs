//! The SD-wear mounts of the shipped `fstab-hardened.conf`, merged into the
//! image's own `/etc/fstab` without ever losing its PARTUUIDs.
//!
//! The shipped file names placeholder PARTUUIDs (`01234567-02`): a line for a
//! mount point the image already has keeps the image's device, type, dump
//! and pass and gains the shipped options (`noatime`, `commit=60`); a tmpfs
//! line the image lacks is added; a placeholder device the image has no
//! mount point for is never copied (it would not boot), only reported.
//! Pure: table tests hold every case.

/// One fstab line's six fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Device (`PARTUUID=…`, `tmpfs`).
    pub spec: String,
    /// Mount point.
    pub file: String,
    /// Type.
    pub vfstype: String,
    /// Options, comma-separated.
    pub options: String,
    /// Dump and pass, as written.
    pub rest: String,
}

/// Parse one non-comment line; None for comments, blanks and short lines.
pub fn parse_line(line: &str) -> Option<Line> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 4 {
        return None;
    }
    Some(Line {
        spec: fields[0].to_string(),
        file: fields[1].to_string(),
        vfstype: fields[2].to_string(),
        options: fields[3].to_string(),
        rest: fields[4..].join(" "),
    })
}

fn render(line: &Line) -> String {
    let rest = if line.rest.is_empty() {
        "0 0"
    } else {
        &line.rest
    };
    format!(
        "{}  {}  {}  {}  {}",
        line.spec, line.file, line.vfstype, line.options, rest
    )
}

/// Options of `ours` followed by those of `shipped` it lacks. A shipped
/// `key=value` replaces the image's value for the same key.
pub fn merge_options(ours: &str, shipped: &str) -> String {
    let key = |option: &str| option.split('=').next().unwrap_or(option).to_string();
    let mut merged: Vec<String> = ours.split(',').map(str::to_string).collect();
    for option in shipped.split(',') {
        if let Some(slot) = merged.iter_mut().find(|o| key(o) == key(option)) {
            *slot = option.to_string();
        } else {
            merged.push(option.to_string());
        }
    }
    merged.join(",")
}

/// What the merge did, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merge {
    /// The new fstab text.
    pub text: String,
    /// Mount points whose options changed.
    pub changed: Vec<String>,
    /// Mount points added.
    pub added: Vec<String>,
    /// Shipped lines not applied (placeholder device, no such mount point).
    pub skipped: Vec<String>,
}

/// Merge `shipped` (fstab-hardened.conf) into `image` (the image's fstab).
pub fn merge(image: &str, shipped: &str) -> Merge {
    let wanted: Vec<Line> = shipped.lines().filter_map(parse_line).collect();
    let mut result = Merge::default();
    let mut lines = Vec::new();
    for raw in image.lines() {
        let Some(mut line) = parse_line(raw) else {
            lines.push(raw.to_string());
            continue;
        };
        if let Some(want) = wanted.iter().find(|w| w.file == line.file) {
            let options = merge_options(&line.options, &want.options);
            if options != line.options {
                line.options = options;
                result.changed.push(line.file.clone());
                lines.push(render(&line));
                continue;
            }
        }
        lines.push(raw.to_string());
    }
    let present: Vec<String> = image
        .lines()
        .filter_map(parse_line)
        .map(|l| l.file)
        .collect();
    let mut header = false;
    for want in &wanted {
        if present.contains(&want.file) {
            continue;
        }
        if want.spec.contains('=') || want.spec.starts_with('/') {
            // A device: its placeholder PARTUUID would not boot.
            result.skipped.push(want.file.clone());
            continue;
        }
        if !header {
            lines.push("# okome-golden-image: from fstab-hardened.conf".to_string());
            header = true;
        }
        lines.push(render(want));
        result.added.push(want.file.clone());
    }
    result.text = lines.join("\n") + "\n";
    result
}

/// Whether every line of `shipped` is in force in `image` (for verify): the
/// options of each shared mount point include the shipped ones, and every
/// tmpfs line is present. Returns what is missing.
pub fn missing(image: &str, shipped: &str) -> Vec<String> {
    let present: Vec<Line> = image.lines().filter_map(parse_line).collect();
    let mut missing = Vec::new();
    for want in shipped.lines().filter_map(parse_line) {
        match present.iter().find(|l| l.file == want.file) {
            Some(line) if merge_options(&line.options, &want.options) != line.options => {
                missing.push(format!("{}: options {}", want.file, want.options));
            }
            Some(_) => {}
            None if !(want.spec.contains('=') || want.spec.starts_with('/')) => {
                missing.push(format!("{}: no line", want.file));
            }
            None => {}
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "\
# comment
PARTUUID=01234567-01   /boot/firmware   vfat    defaults,noatime   0 2
PARTUUID=01234567-02   /                ext4    defaults,noatime,commit=60   0 1
tmpfs                  /tmp             tmpfs   defaults,noatime,nosuid,nodev,mode=1777,size=64M  0 0
tmpfs                  /var/tmp         tmpfs   defaults,noatime,nosuid,nodev,mode=1777,size=32M  0 0
";

    const RASPIOS: &str = "\
proc            /proc           proc    defaults          0       0
PARTUUID=1234abcd-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=1234abcd-02  /               ext4    defaults,noatime  0       1
";

    #[test]
    fn the_image_keeps_its_partuuids_and_gains_the_shipped_options() {
        let merged = merge(RASPIOS, SHIPPED);
        assert!(
            merged
                .text
                .contains("PARTUUID=1234abcd-02  /  ext4  defaults,noatime,commit=60  0 1"),
            "{}",
            merged.text
        );
        assert!(
            merged
                .text
                .contains("PARTUUID=1234abcd-01  /boot/firmware  vfat  defaults,noatime"),
            "{}",
            merged.text
        );
        assert!(!merged.text.contains("01234567"), "{}", merged.text);
        assert!(
            merged.text.contains("proc            /proc"),
            "untouched lines stay verbatim"
        );
        assert_eq!(merged.added, ["/tmp", "/var/tmp"]);
        assert_eq!(merged.changed, ["/boot/firmware", "/"]);
        assert!(missing(&merged.text, SHIPPED).is_empty());
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let once = merge(RASPIOS, SHIPPED).text;
        let twice = merge(&once, SHIPPED);
        assert_eq!(twice.text, once);
        assert!(twice.changed.is_empty() && twice.added.is_empty());
    }

    #[test]
    fn a_placeholder_device_without_a_mount_point_is_skipped_not_copied() {
        let old = "PARTUUID=1234abcd-01 /boot vfat defaults 0 2\nPARTUUID=1234abcd-02 / ext4 defaults 0 1\n";
        let merged = merge(old, SHIPPED);
        assert_eq!(merged.skipped, ["/boot/firmware"]);
        assert!(!merged.text.contains("01234567"));
    }

    #[test]
    fn shipped_values_replace_the_images_and_missing_names_them() {
        assert_eq!(
            merge_options("defaults,commit=5", "defaults,noatime,commit=60"),
            "defaults,commit=60,noatime"
        );
        let missing = missing(RASPIOS, SHIPPED);
        assert!(missing.iter().any(|m| m.starts_with("/:")), "{missing:?}");
        assert!(missing.iter().any(|m| m == "/tmp: no line"), "{missing:?}");
    }
}

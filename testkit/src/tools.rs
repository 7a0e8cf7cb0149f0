//! THE registry of shipped tools: one line per tool, read by everything that
//! iterates over tools — `cargo xtask dist` (builds, packages, man pages and
//! completions, the qemu and install checks, the booted suite) and the config
//! tests (units, timers, `/etc/default/<tool>` against every `--help`).
//!
//! Adding a tool: its crate (with `pub fn command()`), a line below, its
//! dependency line in xtask/Cargo.toml (dist renders the man page from the
//! crate's `command()`) and its workspace member. A line with `timer(…)` ships
//! `configs/systemd/<package>.{service,timer}`; every tool ships
//! `configs/default/<package>`.
//!
//! The table is a macro so that each reader expands the same lines its own
//! way: this crate into [`TOOLS`] (plain data), xtask into `command_of`,
//! which must name each tool's library crate as a path.

/// Hands the registry to `$callback!`, one `package crate [timer(period,
/// randomized delay)];` entry per tool (timespans as in the `.timer` file).
#[macro_export]
macro_rules! with_tools {
    ($callback:ident) => {
        $callback! {
            // package            library crate        systemd timer (period, RandomizedDelaySec)
            "okome-hit-ratio"     okome_hit_ratio      timer("5min", "30s");
            "okome-health-probe"  okome_health_probe   timer("5s", "0");
            "okome-prewarm"       okome_prewarm        timer("2min", "20s");
            "okome-golden-image"  okome_golden_image;
            "okome-validate"      okome_validate       timer("5min", "30s");
            "okome-chaos"         okome_chaos;
        }
    };
}

/// One shipped tool: its Cargo package (= binary = Debian package name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub package: &'static str,
    /// The library crate's name (`okome_hit_ratio`).
    pub krate: &'static str,
    /// The systemd timer it ships, if it runs on one.
    pub timer: Option<Timer>,
}

/// A tool's systemd timer as the registry promises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// `OnUnitActiveSec=`, a systemd timespan (`5s`, `2min`).
    pub period: &'static str,
    /// `RandomizedDelaySec=` (`0`: none).
    pub randomized_delay: &'static str,
}

impl Tool {
    /// Whether it ships a systemd timer (and its service).
    pub fn has_timer(&self) -> bool {
        self.timer.is_some()
    }

    /// The package name without `okome-`: the crate's directory.
    pub fn dir(&self) -> &'static str {
        self.package.trim_start_matches("okome-")
    }
}

impl Timer {
    /// The period in µs.
    pub fn period_us(&self) -> u64 {
        timespan_us(self.period).expect("registry timespans parse")
    }

    /// The randomized delay in µs.
    pub fn randomized_delay_us(&self) -> u64 {
        timespan_us(self.randomized_delay).expect("registry timespans parse")
    }
}

macro_rules! tool_table {
    (@timer) => { None };
    (@timer $period:literal, $delay:literal) => {
        Some(Timer { period: $period, randomized_delay: $delay })
    };
    ($($package:literal $krate:ident $(timer($period:literal, $delay:literal))?;)*) => {
        /// Every shipped tool, in registry order.
        pub const TOOLS: &[Tool] = &[
            $(Tool {
                package: $package,
                krate: stringify!($krate),
                timer: tool_table!(@timer $($period, $delay)?),
            },)*
        ];
    };
}

with_tools!(tool_table);

/// Timed services that run as root, each for a stated reason, and then with
/// no capability at all (an empty bounding set), so root buys file access,
/// not power. Every other timed tool runs as `okome`. The config tests hold
/// the unit files to this, the booted suite the running sandboxes.
pub const ROOT_WITHOUT_CAPABILITIES: &[(&str, &str)] = &[(
    "okome-validate",
    "`nginx -t` reads nginx's root-owned config and keys, and reopens its log \
     (as non-root it fails on the pid and log paths)",
)];

impl Tool {
    /// The user its service runs as: `root` (see
    /// [`ROOT_WITHOUT_CAPABILITIES`]) or `okome`.
    pub fn service_user(&self) -> &'static str {
        if ROOT_WITHOUT_CAPABILITIES
            .iter()
            .any(|(package, _)| *package == self.package)
        {
            "root"
        } else {
            "okome"
        }
    }
}

/// The tools that ship a systemd timer (and service).
pub fn timed() -> impl Iterator<Item = &'static Tool> {
    TOOLS.iter().filter(|t| t.has_timer())
}

/// The registry entry of `package`.
pub fn tool(package: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.package == package)
}

/// A systemd timespan of one or more `<number><unit>` parts (`2min`, `1h
/// 30s`, `100ms`, a bare number is seconds) in µs; the units the registry
/// uses. The config tests hold the `.timer` files with `systemd-analyze
/// timespan` itself.
pub fn timespan_us(span: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = span.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "" | "s" | "sec" => 1_000_000,
            "us" | "usec" => 1,
            "ms" | "msec" => 1_000,
            "m" | "min" => 60_000_000,
            "h" | "hr" => 3_600_000_000,
            _ => return None,
        };
        total += number * scale;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_each_package_once_with_its_crate() {
        let mut seen = std::collections::BTreeSet::new();
        for tool in TOOLS {
            assert!(seen.insert(tool.package), "{} twice", tool.package);
            assert!(tool.package.starts_with("okome-"), "{}", tool.package);
            assert_eq!(tool.krate, tool.package.replace('-', "_"));
            let manifest = crate::workspace_root().join(tool.dir()).join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest)
                .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
            assert!(
                text.contains(&format!("name = \"{}\"", tool.package)),
                "{} is not the package of {}",
                tool.package,
                manifest.display()
            );
        }
        assert_eq!(tool("okome-prewarm").map(|t| t.timer.is_some()), Some(true));
        assert_eq!(tool("okome-nope"), None);
    }

    #[test]
    fn timespans_read_as_systemd_reads_them_and_nonsense_does_not() {
        assert_eq!(timespan_us("5s"), Some(5_000_000));
        assert_eq!(timespan_us("2min"), Some(120_000_000));
        assert_eq!(timespan_us("1h 30s"), Some(3_630_000_000));
        assert_eq!(timespan_us("100ms"), Some(100_000));
        assert_eq!(timespan_us("0"), Some(0));
        assert_eq!(timespan_us(""), None);
        assert_eq!(timespan_us("5 fortnights"), None);
        assert_eq!(timespan_us("min"), None);
        let probe = tool("okome-health-probe").unwrap().timer.unwrap();
        assert_eq!(
            (probe.period_us(), probe.randomized_delay_us()),
            (5_000_000, 0)
        );
    }
}

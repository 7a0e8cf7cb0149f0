//! okome-golden-image: one cache Pi's card becomes a hardened, shrunk,
//! verified image both Pis can be reflashed from, as a library.
//!
//! [`create`] reads SRC read-only and drives the real programs (sfdisk,
//! e2fsprogs, mtools, zstd) on files beside OUT; [`prepare`] is the closed
//! list of offline edits, each with the invariant [`verify`] checks again;
//! [`burn`] writes an image to a card and gives the node its name and
//! keepalived role. [`safety`] holds the refusals, [`table`] and [`fstab`]
//! the pure layout and merge rules. `main.rs` only parses flags and maps
//! the outcome to an exit status. [`fixture`] builds the synthetic Pi image
//! the tests and `cargo xtask bench golden-image` use.

pub mod burn;
pub mod cli;
pub mod compress;
pub mod copy;
pub mod create;
pub mod error;
pub mod exec;
pub mod ext4;
pub mod fat;
pub mod fixture;
pub mod fstab;
pub mod prepare;
pub mod safety;
pub mod table;
pub mod verify;

use okome_common::exit;

pub use cli::{Config, command};
pub use error::{Error, Refusal};

/// The tool's name, for logs and errors.
pub const TOOL: &str = "okome-golden-image";

/// How the shared start-up (`okome_common::tool`) runs this tool.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_GOLDEN_IMAGE_",
    env_aliases: &[],
    lenient_defaults_flag: None,
};

/// What a run produced.
#[derive(Debug)]
pub enum Outcome {
    /// `create` finished.
    Created(create::Report),
    /// `verify` ran (it may have found problems).
    Verified(verify::Report),
    /// `burn` finished.
    Burnt(burn::Report),
}

impl Outcome {
    /// Exit status: 1 when verify found a problem.
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Verified(report) if !report.ok() => exit::PROBLEM,
            _ => exit::OK,
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        let value = match self {
            Outcome::Created(r) => serde_json::to_string_pretty(r),
            Outcome::Verified(r) => serde_json::to_string_pretty(r),
            Outcome::Burnt(r) => serde_json::to_string_pretty(r),
        };
        value.unwrap_or_default()
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Created(r) => r.summary(),
            Outcome::Verified(r) => {
                let mut text = r.summary();
                if r.ok() {
                    text.push_str(&format!("{}: every check holds\n", r.image.display()));
                } else {
                    text.push_str(&format!(
                        "{}: FAILED: {}\n",
                        r.image.display(),
                        r.failed().join(", ")
                    ));
                }
                text
            }
            Outcome::Burnt(r) => format!(
                "wrote {} MiB, read back sha256 {} (matches)\nokome-node.conf:\n{}",
                r.bytes >> 20,
                r.sha256,
                r.node_conf
            ),
        }
    }
}

/// Run the validated command.
pub fn run(config: &Config) -> Result<Outcome, Error> {
    match config {
        Config::Create(c) => create::create(c).map(Outcome::Created),
        Config::Verify(c) => verify::verify(c).map(Outcome::Verified),
        Config::Burn(c) => burn::burn(c).map(Outcome::Burnt),
    }
}

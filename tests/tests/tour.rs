//! The operator's tour (what `cargo xtask lab` prints) holds on a fresh
//! lab: every claim it prints is checked. The gate is driven by the real
//! okome-health-probe when it is built, else by the flag file.

use okome_lab::tour::{self, GateDriver};
use okome_lab::{Lab, try_tool_bin};

#[test]
fn the_tour_runs_and_every_claim_holds() {
    let lab = Lab::builder().redis(true).start();
    let driver = try_tool_bin("okome-health-probe").map_or(GateDriver::FlagFile, GateDriver::Probe);
    let mut out = Vec::new();
    let report = tour::run(&lab, &driver, &mut out).expect("the tour ran");
    let text = String::from_utf8(out).unwrap();
    assert!(report.failures().is_empty(), "{text}");
    assert!(report.checks.len() >= 20, "{text}");
    for needle in [
        "MISS",
        "HIT",
        "canary-ttl-5m",
        "debug-bypass",
        "STALE",
        "× 429",
        "allkeys-lru",
        "X-OKOME-Cache: HIT",
        "Retry-After:",
        "okome_clamp",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

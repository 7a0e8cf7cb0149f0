//! `cargo xtask bench <tool>`: each tool against what an operator would
//! otherwise use, in one run, reported as ratios.

mod health_probe;
mod hit_ratio;
mod prewarm;

use crate::Result;

pub fn main(args: &[String]) -> Result {
    let Some((tool, rest)) = args.split_first() else {
        return Err("usage: cargo xtask bench <hit-ratio|health-probe|prewarm>".into());
    };
    match tool.as_str() {
        "hit-ratio" => hit_ratio::main(rest),
        "health-probe" => health_probe::main(rest),
        "prewarm" => prewarm::main(rest),
        _ => Err(format!("no benchmark for {tool:?} yet").into()),
    }
}

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

/// splitmix64: small, fast, deterministic, so every bench run generates
/// the same workload and figures from different runs compare.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Pick by weights.
    pub fn pick<T: Copy>(&mut self, table: &[(T, u32)]) -> T {
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for (value, weight) in table {
            if x < *weight {
                return *value;
            }
            x -= weight;
        }
        table[table.len() - 1].0
    }
}

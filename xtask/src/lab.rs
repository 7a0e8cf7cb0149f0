//! `cargo xtask lab`: the loopback lab (README's main job). Being built in
//! the configs/lab issue.

use crate::Result;

pub fn main(_args: &[String]) -> Result {
    Err("the lab is not built yet".into())
}

//! `cargo xtask …`: the project's automation, in Rust so it runs wherever
//! cargo does. Each verb lives in its own module; this file only dispatches.

mod bench;
mod cmd;
mod contain;
mod deps;
mod dist;
mod lab;
mod lab_quick;
mod test;

use std::process::ExitCode;

/// Result type of every verb: errors are printed once, here.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "\
usage: cargo xtask <verb> [args]

verbs:
  test              install what the tests need, then run every test (README's test command)
  lab               bring up the cluster lab (booted Debian nodes, the real packages, a VIP)
                    and tour it, each line a check (README's main job); --frontends N (2-5);
                    --quick [--keep]: the loopback lab (one nginx, redis, a stub; seconds)
  bench <tool>      benchmark a tool against what an operator would otherwise use
                    (tools: hit-ratio, health-probe, prewarm, budgets, golden-image;
                    failover: the VIP on the cluster lab)
  dist              build static armv7/aarch64 binaries and the .deb packages
                    ([--arch armhf|arm64|amd64]… [--tool okome-…]… [--no-lintian];
                    --test: the packaging checks of `test` alone: qemu, lintian, chroot install;
                    --parser-tests [--arch armhf|arm64]: okome-accesslog's unit tests under qemu;
                    --booted: the amd64 packages on a booted systemd (nspawn, --private-network);
                    --cluster: the cluster lab's end-to-end tests (cluster/tests/cluster.rs))";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((verb, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match verb.as_str() {
        "test" => test::main(rest),
        "lab" => lab::main(rest),
        "bench" => bench::main(rest),
        "dist" => dist::main(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown verb {other:?}\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask {verb}: error: {error}");
            ExitCode::FAILURE
        }
    }
}

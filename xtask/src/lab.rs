//! `cargo xtask lab`: README's main job. Brings up the cluster lab —
//! frontend-a, frontend-b (… `--frontends N`), backend, orchestrator and
//! client, each a booted Debian 12 with the real amd64 packages, on a
//! private bridge in 10.213.86.0/24 — prints the tour (each line also a
//! check: okome_cluster::tour) and tears everything down, checking that
//! nothing was left behind.
//!
//! `--quick` is the older loopback lab (lab_quick.rs): one nginx, one
//! redis-server and a stub on 127.0.0.1, in seconds and without root.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use okome_cluster::{Cluster, ClusterSpec};

use crate::Result;
use crate::deps;

pub fn main(args: &[String]) -> Result {
    let mut frontends = 2;
    let mut rest = Vec::new();
    let mut quick = false;
    let mut keep = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--keep" => keep = true,
            "--frontends" => {
                frontends = iter
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--frontends takes a number (2 to 5)")?;
            }
            _ => rest.push(arg.clone()),
        }
    }
    if quick {
        if keep {
            rest.push("--keep".into());
        }
        return crate::lab_quick::main(&rest);
    }
    if let Some(unknown) = rest.first() {
        return Err(format!(
            "unknown argument {unknown:?} (accepted: --frontends N, --keep, --quick [--keep])"
        )
        .into());
    }
    deps::ensure_apt(&["systemd-container", "debootstrap", "nftables", "iproute2"])?;
    let _fence = crate::contain::SiteLanFence::raise();
    let debs = crate::dist::amd64_debs()?;
    let started = Instant::now();
    let cluster = Cluster::up(&ClusterSpec { frontends, debs })?;
    println!(
        "Cluster up in {:.0} s: VIP {} held by {:?}",
        started.elapsed().as_secs_f64(),
        cluster.vip(),
        cluster.vip_holders()?
    );
    if keep {
        return hold(cluster);
    }
    let mut stdout = std::io::stdout();
    let report = okome_cluster::tour::run(cluster, &mut stdout)?;
    let left = okome_cluster::cluster::leftovers(std::process::id());
    if left.is_empty() {
        println!("\nTorn down: no container, namespace, bridge, tree or process left.");
    } else {
        println!("\nLEFT BEHIND:\n  {}", left.join("\n  "));
    }
    if report.failed > 0 || !left.is_empty() {
        return Err(format!(
            "{} lab check(s) failed",
            report.failed + usize::from(!left.is_empty())
        )
        .into());
    }
    Ok(())
}

/// Set by SIGINT/SIGTERM: tear the kept cluster down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// `--keep`: no tour; print how to reach each node, wait for Ctrl-C, then
/// tear down (and check nothing is left).
fn hold(cluster: Cluster) -> Result {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    println!("\nThe cluster stays up until Ctrl-C. Each node:");
    for node in cluster.nodes() {
        println!(
            "  {:<13} {:<13} nsenter -t {} -a   (or: ip netns exec {} …)",
            node.name(),
            node.address(),
            node.booted()?.pid1(),
            node.netns().name()
        );
    }
    println!(
        "Through the VIP, as the client does:\n  ip netns exec {} curl -sI http://{}/",
        cluster.node("client")?.netns().name(),
        cluster.vip()
    );
    while !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cluster);
    let left = okome_cluster::cluster::leftovers(std::process::id());
    if !left.is_empty() {
        return Err(format!("left behind: {}", left.join(", ")).into());
    }
    println!("Torn down: nothing left behind.");
    Ok(())
}

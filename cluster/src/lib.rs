//! The cluster lab's harness: every OKOME node a booted Debian 12
//! (`systemd-nspawn -b`, systemd as PID 1) with the real amd64 packages
//! installed by apt, each in its own network namespace on a private bridge
//! in 10.213.0.0/16, and one API for what the lab tour, the end-to-end
//! tests, okome-validate's and okome-chaos's tests do to them.
//!
//! - [`booted`]: one booted container on a tree (cached debootstrap
//!   tarball, or an overlay over a cached tree), driven with `nsenter`.
//! - [`net`]: the namespaces, the bridge and the fences.
//! - [`render`]: the one address table (the shipped 192.168.86.x site
//!   addresses → the lab's 10.213.86.x) and the per-node config rendering.
//! - [`cluster`]: [`Cluster`] and [`Node`]: bring up, drive, tear down.
//! - [`tour`]: what `cargo xtask lab` shows, each line also a check.
//!
//! A library (not part of xtask) so xtask and the test crates use the same
//! code: nothing is copied per test file.

pub mod booted;
pub mod cluster;
pub mod cmd;
pub mod net;
pub mod render;
pub mod roles;
pub mod tour;

pub use cluster::{Cluster, ClusterSpec, Node, Response};
pub use render::Role;

/// Errors carry their context as text (command, node, file): the harness
/// only ever reports them.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

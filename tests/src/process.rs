//! Owning the processes a test starts: the one [`ProcessGuard`] of the test
//! kit (okome-testkit), kept at this path for the lab's callers. It kills its
//! process group by PID when dropped, even when the test panics.

pub use okome_testkit::process::ProcessGuard;

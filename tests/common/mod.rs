//! Shared pieces of the end-to-end tests, by job:
//!
//! - `net`: a client/server pair of network namespaces joined by veth,
//!   nftables in them, listeners, and the connects that fail;
//! - `daemon`: the real daemon run as a child with a real NOTIFY_SOCKET,
//!   and what it said once stopped;
//! - `standins`: stand-ins for what cannot run here (Slack's webhook,
//!   /dev/log);
//! - `fs`: temporary directories and the cgroup v2 mount;
//!
//! and here, what they all use: the root check, running a command, the
//! binary under test.
#![allow(dead_code)] // each test binary uses a different part

mod daemon;
mod fs;
mod net;
mod standins;

// Each test binary uses a different part, so some go unused in each.
#[allow(unused_imports)]
pub use {daemon::*, fs::*, net::*, standins::*};

use std::process::Command;

/// True when the test can run. Outside CI a non-root run skips, loudly;
/// in CI (CI set) it fails, so a misconfigured runner never passes empty.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: these end-to-end tests load BPF and create network namespaces; run them as root (CI is set, so not skipping)");
    }
    eprintln!("\n*** SKIPPED {test}: needs root (BPF, network namespaces). Run `sudo -E cargo test` or the README's test command. ***\n");
    false
}

pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpstate")
}

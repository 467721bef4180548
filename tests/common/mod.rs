//! Shared pieces of the end-to-end tests, by job:
//!
//! - `net`: a client/server pair of network namespaces joined by veth (or
//!   client/router/server: `Routed`),
//!   nftables in them, listeners, and the connects that fail;
//! - `daemon`: the real daemon run as a child with a real NOTIFY_SOCKET,
//!   and what it said once stopped;
//! - `standins`: stand-ins for what cannot run here (Slack's webhook,
//!   /dev/log);
//! - `fs`: temporary directories and the cgroup v2 mount;
//! - `dns`: a real resolver (dnsmasq) for the client namespace, and
//!   running a client there;
//! - `journal`: a real systemd-journald in a private mount namespace,
//!   for the daemon to write to and the test to read;
//! - `servers`: real Prometheus and Alertmanager on loopback, and an HTTP
//!   GET for them and for /metrics;
//!
//! and here, what they all use: the root check, running a command, the
//! binary under test, and the one way to wait for something (`poll`).
#![allow(dead_code)] // each test binary uses a different part

mod daemon;
mod dns;
mod fs;
mod journal;
mod net;
mod servers;
mod standins;

// Each test binary uses a different part, so some go unused in each.
#[allow(unused_imports)]
pub use {daemon::*, dns::*, fs::*, journal::*, net::*, servers::*, standins::*};

use std::process::Command;
use std::time::{Duration, Instant};

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

/// The one way these tests wait: calls `f` until it gives Some, for at
/// most `within`. It checks at once, then every 5 ms backing off to every
/// 100 ms (quick answers are seen quickly; costly checks, a process or an
/// HTTP request each, do not spin), and once more at the deadline. None
/// if time ran out, said on stderr with `what` it was waiting for.
pub fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            eprintln!("gave up waiting for {what} after {within:?}");
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// As `poll`, but time running out fails the test, naming `what`.
pub fn wait<T>(what: &str, within: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(what, within, f).unwrap_or_else(|| panic!("{what}: not within {within:?}"))
}

//! tcpstate: alerts on every outbound TCP connection that fails.
//!
//! Layers, each importing only from those below it:
//! - wiring: `daemon` (the event loop), `cli`;
//! - sources and sinks: `bpf` (load, attach, ring buffer), `cgroup`
//!   (cgroup ids to units and containers), `containers` (container and
//!   pod names from the runtimes' files), `owner`, `stdout`,
//!   `alert::{syslog, journal, slack, alertmanager}`, `metrics::server`
//!   (/metrics), `log`, `notify`, `signals`;
//! - pure parts: `engine` (the per-event path), `correlate`, `alert::policy`,
//!   `alert::resolve` (firing/resolved), `metrics` (the counts), `losses`,
//!   formatting (`format`, `text`, `json`, `clock`,
//!   `alert::{wording, slack_msg}`), `runtime_names` (the runtimes' file
//!   formats), `event`, `filter`, `hash` (the maps'
//!   hash), `webhook`, `exit`, and `skel`, the generated BPF skeleton and
//!   its record types.

pub mod alert;
pub mod bpf;
pub mod cgroup;
pub mod cgroup_path;
pub mod cli;
pub mod clock;
pub mod containers;
pub mod correlate;
pub mod daemon;
pub mod dns;
pub mod engine;
pub mod escape;
pub mod event;
pub mod exit;
pub mod filter;
pub mod format;
pub mod hash;
pub mod json;
#[cfg(test)]
mod layering;
pub mod log;
pub mod losses;
pub mod metrics;
pub mod notify;
pub mod owner;
pub mod runtime_names;
pub mod signals;
pub mod skel;
pub mod stats;
pub mod stdout;
pub mod text;
pub mod webhook;

use std::process::ExitCode;

/// The whole program: `main` only calls this.
pub fn main() -> ExitCode {
    // First, before any thread exists (see `signals`).
    if let Err(e) = signals::block() {
        eprintln!("tcpstate: blocking SIGTERM/SIGINT: {e}");
        return ExitCode::from(1);
    }
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(f) => {
            eprintln!("tcpstate: {f}");
            return ExitCode::from(f.kind.code());
        }
    };
    match daemon::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, line) = exit::report(&e);
            eprintln!("tcpstate: {line}");
            ExitCode::from(code)
        }
    }
}

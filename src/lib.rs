//! tcpstate: alerts on every outbound TCP connection that fails.
//!
//! The tree is the architecture. Layers, each importing only from those
//! below it (checked by `tests/layering.rs`):
//! - wiring: `daemon` (the event loop, start and stop, signals, readiness),
//!   `cli` (flags and environment);
//! - sources and sinks: `tracer` (the BPF side from user space: plan, load,
//!   attach, ring buffer, iterators), `attribution::cgroup` and
//!   `attribution::containers` (the files that name a caller), `sinks`
//!   (journal/syslog, Slack, Alertmanager), `metrics::server` (/metrics),
//!   `output::stdout` (the writer), `log`;
//! - pure parts: `pipeline` (the per-event path: `engine`, `correlate`),
//!   `alert` (policy, resolution, wording), `output` (text and JSON lines),
//!   `dns` (answers, memory, watched names), `metrics` (the counts and the
//!   one table of counters), `attribution::{cgroup_path, runtime_names}`,
//!   `event` (the records and their decoding, with the generated skeleton),
//!   `exit`.

pub mod alert;
pub mod attribution;
pub mod cli;
pub mod daemon;
pub mod dns;
pub mod event;
pub mod exit;
pub mod log;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod sinks;
pub mod tracer;

use std::process::ExitCode;

/// The whole program: `main` only calls this.
pub fn main() -> ExitCode {
    // First, before any thread exists (see `signals`).
    if let Err(e) = daemon::signals::block() {
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

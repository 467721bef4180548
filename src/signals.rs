//! SIGTERM and SIGINT, without a race: `block` runs first thing in main,
//! before any thread exists, so every later thread inherits the mask and a
//! signal that arrives at any time (even while the BPF program is still
//! loading) stays pending until `wait` collects it. A signal handler
//! installed later would leave a window where the default action kills the
//! process before it can drain and report.

use nix::sys::signal::{SigSet, Signal};

fn set() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s
}

/// Blocks SIGTERM and SIGINT in the calling thread (and its future children).
pub fn block() -> nix::Result<()> {
    set().thread_block()
}

/// Waits for SIGTERM or SIGINT on a thread of its own; `on_signal` runs once
/// per signal.
pub fn spawn_waiter(on_signal: impl Fn(Signal) + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tcpstate-signal".into())
        .spawn(move || {
            let s = set();
            while let Ok(sig) = s.wait() {
                on_signal(sig);
            }
        })
        .map(|_| ())
}

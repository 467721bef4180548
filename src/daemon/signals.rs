//! SIGTERM and SIGINT, without a race: `block` runs first thing in main,
//! before any thread exists, so a signal that arrives while tcpstate starts
//! stays pending. `Signals::install` then sets tokio's handlers and only
//! after that unblocks, so the pending signal is delivered to them, never
//! to the default action that would kill the process before it drains.

use nix::sys::signal::{SigSet, Signal};
use tokio::signal::unix::{signal, SignalKind};

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

pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers, then unblocks the signals on this thread.
    /// Needs a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        set().thread_unblock().map_err(std::io::Error::from)?;
        Ok(Signals { term, int })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

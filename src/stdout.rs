//! The stdout sink: the event loop hands over one buffer of lines per
//! drain; a thread of its own writes them. When the reader stalls (a pipe
//! nobody reads), the bounded queue fills and further buffers are dropped
//! and counted: detection never waits for stdout.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::stats::{Counter, Stats};

/// Buffers waiting to be written; each holds at most one drain's lines.
const QUEUE: usize = 8;

pub struct Lines {
    pub buf: Vec<u8>,
    pub count: u64,
}

pub struct StdoutSink {
    tx: Option<mpsc::Sender<Lines>>,
    thread: JoinHandle<()>,
    stats: Arc<Stats>,
    /// Lines queued and not yet written.
    waiting: Arc<Counter>,
}

impl StdoutSink {
    pub fn spawn(stats: Arc<Stats>) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Lines>(QUEUE);
        let s = stats.clone();
        let waiting = Arc::new(Counter::default());
        let w = waiting.clone();
        let thread = std::thread::Builder::new()
            .name("tcpstate-stdout".into())
            .spawn(move || {
                let mut out = std::io::stdout().lock();
                while let Some(l) = rx.blocking_recv() {
                    if out.write_all(&l.buf).and_then(|()| out.flush()).is_err() {
                        s.stdout_dropped.add(l.count);
                    }
                    w.sub(l.count);
                }
            })?;
        Ok(StdoutSink {
            tx: Some(tx),
            thread,
            stats,
            waiting,
        })
    }

    /// Queues the lines; never waits. A full queue drops them, counted.
    pub fn push(&self, lines: Lines) {
        if lines.count == 0 {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let count = lines.count;
        // Counted before the writer can take it, so `waiting` never wraps.
        self.waiting.add(count);
        if tx.try_send(lines).is_err() {
            self.waiting.sub(count);
            self.stats.stdout_dropped.add(count);
        }
    }

    /// Waits up to `within` for the queued lines to be written; a stalled
    /// reader does not hold up the exit.
    pub fn finish(mut self, within: Duration) {
        drop(self.tx.take());
        let t0 = std::time::Instant::now();
        while !self.thread.is_finished() && t0.elapsed() < within {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            // A stalled reader: what still waits is lost with the exit.
            self.stats.stdout_dropped.add(self.waiting.get());
        }
    }
}

//! The stdout sink: the event loop hands over one buffer of lines per
//! drain; a thread of its own writes them. When the reader stalls (a pipe
//! nobody reads), the bounded queue fills and further buffers are dropped
//! and counted: detection never waits for stdout.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::stats::{Counter, Stats};

/// Buffers waiting to be written; each holds at most one drain's lines.
const QUEUE: usize = 8;
/// Written buffers kept for the loop to fill again, and the largest kept:
/// a fresh buffer grows by reallocation, copying the drain's lines over
/// and over (a tenth of the loop's CPU in a JSON storm).
const SPARES: usize = 2;
const SPARE_MAX: usize = 2 << 20;

pub struct Lines {
    pub buf: Vec<u8>,
    pub count: u64,
}

pub struct StdoutSink {
    tx: Option<mpsc::Sender<Lines>>,
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: JoinHandle<()>,
    stats: Arc<Stats>,
    /// Lines queued and not yet written.
    waiting: Arc<Counter>,
}

impl StdoutSink {
    pub fn spawn(stats: Arc<Stats>) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Lines>(QUEUE);
        let (spare_tx, spares) = std::sync::mpsc::sync_channel::<Vec<u8>>(SPARES);
        let s = stats.clone();
        let waiting = Arc::new(Counter::default());
        let w = waiting.clone();
        let thread = std::thread::Builder::new()
            .name("tcpstate-stdout".into())
            .spawn(move || {
                let mut out = std::io::stdout().lock();
                while let Some(mut l) = rx.blocking_recv() {
                    if out.write_all(&l.buf).and_then(|()| out.flush()).is_err() {
                        s.stdout_dropped.add(l.count);
                    }
                    w.sub(l.count);
                    if l.buf.capacity() <= SPARE_MAX {
                        l.buf.clear();
                        let _ = spare_tx.try_send(l.buf);
                    }
                }
            })?;
        Ok(StdoutSink {
            tx: Some(tx),
            spares,
            thread,
            stats,
            waiting,
        })
    }

    /// An empty buffer for the next drain's lines: a written one when the
    /// writer has one back.
    pub fn buffer(&self) -> Vec<u8> {
        self.spares.try_recv().unwrap_or_default()
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

//! What the webhook sinks (Slack, Alertmanager) share: alerts come in
//! through a bounded channel and go into the sink's own queue; waiting (for
//! the pace, a back-off, a POST) still takes them in, so a slow endpoint
//! never fills the channel; and once the daemon stops (the channel closes)
//! there is a deadline to send what is left by.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::http::{self, Sent};

/// A sink's own queue: what it does with an alert that comes in.
pub trait Queue<T> {
    fn push(&mut self, item: T);
}

pub struct Inbox<T, Q> {
    rx: mpsc::Receiver<T>,
    /// How long what is left may take once the daemon stops.
    flush: Duration,
    /// Set once the channel closed: the time by which to give up.
    closing: Option<Instant>,
    pub queue: Q,
}

impl<T, Q: Queue<T>> Inbox<T, Q> {
    pub fn new(rx: mpsc::Receiver<T>, flush: Duration, queue: Q) -> Self {
        Inbox {
            rx,
            flush,
            closing: None,
            queue,
        }
    }

    /// The daemon is stopping.
    pub fn closing(&self) -> bool {
        self.closing.is_some()
    }

    pub fn past_deadline(&self) -> bool {
        self.closing.is_some_and(|d| Instant::now() >= d)
    }

    /// Takes one alert into the queue, or notes that the daemon stops.
    pub async fn recv(&mut self) {
        match self.rx.recv().await {
            Some(a) => self.queue.push(a),
            None => self.closing = Some(Instant::now() + self.flush),
        }
    }

    /// Takes whatever is already waiting in the channel, without waiting.
    pub fn take_waiting(&mut self) {
        while let Ok(a) = self.rx.try_recv() {
            self.queue.push(a);
        }
    }

    /// Waits until `until`, taking alerts meanwhile; false when the
    /// shutdown deadline comes first.
    pub async fn idle(&mut self, until: Instant) -> bool {
        loop {
            if let Some(dl) = self.closing {
                if dl <= until {
                    sleep_until(dl).await;
                    return false;
                }
            }
            if Instant::now() >= until {
                return true;
            }
            tokio::select! {
                _ = sleep_until(until) => return true,
                _ = self.recv(), if self.closing.is_none() => {}
            }
        }
    }

    /// POSTs `body` on the blocking pool, taking alerts meanwhile; None
    /// when the shutdown deadline comes first.
    pub async fn post(
        &mut self,
        agent: &ureq::Agent,
        url: &str,
        body: &Arc<Value>,
    ) -> Option<Sent> {
        let (agent, url, body) = (agent.clone(), url.to_string(), body.clone());
        self.post_with(move || http::post_json(&agent, &url, &body))
            .await
    }

    /// Runs `send` (a blocking POST) on the blocking pool, taking alerts
    /// meanwhile; None when the shutdown deadline comes first.
    pub async fn post_with(
        &mut self,
        send: impl FnOnce() -> Sent + Send + 'static,
    ) -> Option<Sent> {
        let mut post = tokio::task::spawn_blocking(send);
        loop {
            let deadline = self.closing;
            tokio::select! {
                r = &mut post => {
                    return Some(r.unwrap_or_else(|_| Sent::Retry("the sender panicked".into())));
                }
                _ = self.recv(), if self.closing.is_none() => {}
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return None;
                }
            }
        }
    }
}

//! The Slack sink: a task that takes alerts from a bounded channel, keeps
//! them in a bounded queue (folding what does not fit into a count), paces
//! them to Slack's posting limit, groups what waits into one message, and
//! retries. The blocking POST runs on tokio's blocking pool; the task keeps
//! taking alerts meanwhile, so a slow Slack never fills the channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::http::{self, Sent};
use super::pacer::{backoff, jitter, Pacer};
use super::policy::Alert;
use super::slack_msg::{render, Folded};
use crate::event::Source;
use crate::log::Log;
use crate::stats::Stats;
use crate::webhook::WebhookUrl;

pub struct Config {
    pub url: WebhookUrl,
    pub host: String,
    /// Most alerts waiting; beyond this they are folded into a count.
    pub queue: usize,
    /// Most alerts in one message (Slack allows 50 blocks).
    pub per_message: usize,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// How long queued alerts may take to go out once the daemon stops.
    pub flush: Duration,
}

impl Config {
    pub fn new(url: WebhookUrl, host: String) -> Self {
        Config {
            url,
            host,
            queue: 256,
            per_message: 20,
            max_attempts: 6,
            timeout: Duration::from_secs(10),
            flush: Duration::from_secs(3),
        }
    }
}

/// Starts the sink; dropping the sender asks it to flush and stop.
pub fn spawn(cfg: Config, log: Log, stats: Arc<Stats>) -> (mpsc::Sender<Alert>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let sender = SlackSender {
        agent: http::agent(cfg.timeout),
        pacer: Pacer::new(Instant::now(), 3, 1.0),
        cfg,
        rx,
        queue: VecDeque::new(),
        folded: Folded::default(),
        closing: None,
        log,
        stats,
    };
    (tx, tokio::spawn(sender.run()))
}

/// Who an alert is about, for the queue's fair shares; summaries are
/// nobody's in particular.
fn source_of(a: &Alert) -> Option<Source> {
    match a {
        Alert::First(f, _) => f.caller.map(|c| c.source()),
        Alert::Slow(s, _) => s.caller.map(|c| c.source()),
        _ => None,
    }
}

struct SlackSender {
    cfg: Config,
    agent: ureq::Agent,
    pacer: Pacer,
    rx: mpsc::Receiver<Alert>,
    queue: VecDeque<Alert>,
    folded: Folded,
    /// Set once the channel closed: the time by which to give up.
    closing: Option<Instant>,
    log: Log,
    stats: Arc<Stats>,
}

impl SlackSender {
    async fn run(mut self) {
        loop {
            if self.queue.is_empty() && self.folded.alerts == 0 {
                if self.closing.is_some() {
                    return;
                }
                self.recv().await;
                continue;
            }
            let wait = self.pacer.wait(Instant::now());
            if !wait.is_zero() {
                if !self.idle(wait).await {
                    return self.give_up_rest();
                }
                continue;
            }
            let n = self.queue.len().min(self.cfg.per_message);
            let batch: Vec<Alert> = self.queue.drain(..n).collect();
            let folded = if self.queue.is_empty() {
                std::mem::take(&mut self.folded)
            } else {
                Folded::default()
            };
            let body = render(&self.cfg.host, &batch, folded);
            let failures = batch.iter().map(Alert::failures).sum::<u64>() + folded.failures;
            let alerts = batch.len() as u64 + folded.alerts;
            if !self.deliver(body, alerts, failures).await && self.past_deadline() {
                return self.give_up_rest();
            }
        }
    }

    fn past_deadline(&self) -> bool {
        self.closing.is_some_and(|d| Instant::now() >= d)
    }

    /// Queues an alert. A full queue folds from the source holding the
    /// most waiting alerts (its newest), so one noisy source cannot push
    /// out another's first alert.
    fn push(&mut self, a: Alert) {
        if self.queue.len() >= self.cfg.queue {
            let incoming = source_of(&a);
            let mut held: HashMap<Option<Source>, usize> = HashMap::new();
            for q in &self.queue {
                *held.entry(source_of(q)).or_default() += 1;
            }
            let mine = held.get(&incoming).copied().unwrap_or(0);
            let hog = held
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .filter(|(s, n)| *s != incoming && *n > mine + 1);
            let folded = match hog {
                Some((s, _)) => {
                    let at = self
                        .queue
                        .iter()
                        .rposition(|q| source_of(q) == s)
                        .expect("counted above");
                    let out = self.queue.remove(at).expect("in range");
                    self.queue.push_back(a);
                    out
                }
                None => a,
            };
            self.folded.alerts += 1;
            self.folded.failures += folded.failures();
            self.stats.slack_folded.inc();
        } else {
            self.queue.push_back(a);
        }
    }

    /// Takes one alert, or notes that the daemon is stopping.
    async fn recv(&mut self) {
        match self.rx.recv().await {
            Some(a) => self.push(a),
            None => self.closing = Some(Instant::now() + self.cfg.flush),
        }
    }

    /// Waits `d`, taking alerts meanwhile; false when the shutdown deadline
    /// comes first.
    async fn idle(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
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

    /// Sends one message, retrying; true when delivered.
    async fn deliver(&mut self, body: Value, alerts: u64, failures: u64) -> bool {
        let body = Arc::new(body);
        let mut attempt = 0;
        loop {
            self.pacer.take(Instant::now());
            let (agent, url, b) = (
                self.agent.clone(),
                self.cfg.url.as_str().to_string(),
                body.clone(),
            );
            let mut post = tokio::task::spawn_blocking(move || http::post_json(&agent, &url, &b));
            let sent = loop {
                let deadline = self.closing;
                tokio::select! {
                    r = &mut post => break r.unwrap_or_else(|_| Sent::Retry("the sender panicked".into())),
                    _ = self.recv(), if self.closing.is_none() => {}
                    _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        return self.lost(alerts, failures, "not sent before exit");
                    }
                }
            };
            let why = match sent {
                Sent::Ok => {
                    self.stats.slack_messages.inc();
                    self.stats.slack_alerts.add(alerts);
                    return true;
                }
                Sent::Fatal(why) => return self.lost(alerts, failures, &why),
                _ if attempt + 1 >= self.cfg.max_attempts => {
                    let why = format!("gave up after {} attempts", attempt + 1);
                    return self.lost(alerts, failures, &why);
                }
                Sent::RateLimited(d) => {
                    self.stats.slack_rate_limited.inc();
                    self.pacer.hold(Instant::now() + d);
                    format!("rate limited (HTTP 429), retrying after {}s", d.as_secs())
                }
                Sent::Retry(why) => {
                    let d = backoff(attempt, jitter());
                    self.pacer.hold(Instant::now() + d);
                    format!("{why}, retrying in {:.1}s", d.as_secs_f64())
                }
            };
            attempt += 1;
            self.stats.slack_retries.inc();
            if attempt == 1 {
                self.log.error(format_args!(
                    "Slack webhook {}: {why}",
                    self.cfg.url.redacted()
                ));
            }
            let wait = self.pacer.wait(Instant::now());
            if !self.idle(wait).await {
                return self.lost(alerts, failures, "not sent before exit");
            }
        }
    }

    fn lost(&self, alerts: u64, failures: u64, why: &str) -> bool {
        self.stats.slack_lost_alerts.add(alerts);
        self.stats.slack_lost_failures.add(failures);
        self.log.error(format_args!(
            "Slack webhook {}: {why}; lost {alerts} alerts ({failures} failures)",
            self.cfg.url.redacted()
        ));
        false
    }

    fn give_up_rest(&mut self) {
        let folded = std::mem::take(&mut self.folded);
        let alerts = self.queue.len() as u64 + folded.alerts;
        let failures = self.queue.iter().map(Alert::failures).sum::<u64>() + folded.failures;
        self.queue.clear();
        if alerts > 0 {
            self.lost(alerts, failures, "not sent before exit");
        }
    }
}

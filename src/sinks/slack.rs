//! The Slack sink: a task that takes alerts from a bounded channel, keeps
//! them in a bounded queue (folding what does not fit into a count), paces
//! them to Slack's posting limit, groups what waits into one message, and
//! retries. The blocking POST runs on tokio's blocking pool; the task keeps
//! taking alerts meanwhile, so a slow Slack never fills the channel. A
//! message Slack refuses as invalid (HTTP 400) is sent again alert by
//! alert, and an alert it still refuses as plain text without blocks, so
//! one alert Slack will not take never takes others with it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{self, Sent};
use super::inbox::{Inbox, Queue};
use super::pacer::{backoff, jitter, Pacer};
use super::slack_msg::{plain, render, Folded};
use crate::alert::policy::Alert;
use crate::event::Source;
use crate::log::Log;
use crate::metrics::stats::Stats;
use crate::sinks::webhook::WebhookUrl;

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
    let queue = SlackQueue {
        alerts: VecDeque::new(),
        folded: Folded::default(),
        cap: cfg.queue,
        stats: stats.clone(),
    };
    let sender = SlackSender {
        agent: http::agent(cfg.timeout),
        pacer: Pacer::new(Instant::now(), 3, 1.0),
        inbox: Inbox::new(rx, cfg.flush, queue),
        cfg,
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
        Alert::ResolveFailed(f, _) => Some(f.who.source()),
        _ => None,
    }
}

/// Alerts waiting for Slack, and those folded into a count.
struct SlackQueue {
    alerts: VecDeque<Alert>,
    folded: Folded,
    cap: usize,
    stats: Arc<Stats>,
}

impl SlackQueue {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.folded.alerts == 0
    }
}

impl Queue<Alert> for SlackQueue {
    /// A full queue folds from the source holding the most waiting alerts
    /// (its newest), so one noisy source cannot push out another's first
    /// alert.
    fn push(&mut self, a: Alert) {
        if self.alerts.len() < self.cap {
            self.alerts.push_back(a);
            return;
        }
        let incoming = source_of(&a);
        let mut held: HashMap<Option<Source>, usize> = HashMap::new();
        for q in &self.alerts {
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
                    .alerts
                    .iter()
                    .rposition(|q| source_of(q) == s)
                    .expect("counted above");
                let out = self.alerts.remove(at).expect("in range");
                self.alerts.push_back(a);
                out
            }
            None => a,
        };
        self.folded.alerts += 1;
        self.folded.failures += folded.failures();
        self.stats.slack_folded.inc();
    }
}

/// How one message went.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Sent,
    /// Counted lost, and said.
    Lost,
    /// Slack refused it as invalid (why): nothing counted yet.
    Refused(String),
}

struct SlackSender {
    cfg: Config,
    agent: ureq::Agent,
    pacer: Pacer,
    inbox: Inbox<Alert, SlackQueue>,
    log: Log,
    stats: Arc<Stats>,
}

impl SlackSender {
    async fn run(mut self) {
        loop {
            if self.inbox.queue.is_empty() {
                if self.inbox.closing() {
                    return;
                }
                self.inbox.recv().await;
                continue;
            }
            let wait = self.pacer.wait(Instant::now());
            if !wait.is_zero() {
                if !self.inbox.idle(Instant::now() + wait).await {
                    return self.give_up_rest();
                }
                continue;
            }
            let q = &mut self.inbox.queue;
            let n = q.alerts.len().min(self.cfg.per_message);
            let batch: Vec<Alert> = q.alerts.drain(..n).collect();
            let folded = if q.alerts.is_empty() {
                std::mem::take(&mut q.folded)
            } else {
                Folded::default()
            };
            if !self.send_batch(&batch, folded).await && self.inbox.past_deadline() {
                return self.give_up_rest();
            }
        }
    }

    /// Sends a batch as one message; if Slack refuses it as invalid, each
    /// alert alone, then as plain text. True when all were delivered.
    async fn send_batch(&mut self, batch: &[Alert], folded: Folded) -> bool {
        let body = render(&self.cfg.host, batch, folded);
        let failures = batch.iter().map(Alert::failures).sum::<u64>() + folded.failures;
        let alerts = batch.len() as u64 + folded.alerts;
        let why = match self.deliver(body, alerts, failures, true).await {
            Delivery::Refused(why) => why,
            d => return d == Delivery::Sent,
        };
        self.log.warn(format_args!(
            "Slack webhook {}: {why}; sending its {alerts} alerts again one by one",
            self.cfg.url.redacted()
        ));
        let mut all = true;
        for (i, a) in batch.iter().enumerate() {
            // The folded count rides with the first.
            let f = if i == 0 { folded } else { Folded::default() };
            let (n, fails) = (1 + f.alerts, a.failures() + f.failures);
            if batch.len() > 1 {
                let one = render(&self.cfg.host, std::slice::from_ref(a), f);
                match self.deliver(one, n, fails, true).await {
                    Delivery::Refused(_) => {}
                    d => {
                        all &= d == Delivery::Sent;
                        continue;
                    }
                }
            }
            let text = plain(&self.cfg.host, a);
            all &= self.deliver(text, n, fails, false).await == Delivery::Sent;
        }
        all
    }

    /// Sends one message, retrying. With `may_refuse`, a 400 (Slack's
    /// `invalid_blocks` and the like) is handed back, not counted lost.
    async fn deliver(
        &mut self,
        body: Value,
        alerts: u64,
        failures: u64,
        may_refuse: bool,
    ) -> Delivery {
        let body = Arc::new(body);
        let mut attempt = 0;
        loop {
            self.pacer.take(Instant::now());
            let Some(sent) = self
                .inbox
                .post(&self.agent, self.cfg.url.as_str(), &body)
                .await
            else {
                return self.lost(alerts, failures, "not sent before exit");
            };
            let why = match sent {
                Sent::Ok => {
                    self.stats.slack_messages.inc();
                    self.stats.slack_alerts.add(alerts);
                    return Delivery::Sent;
                }
                Sent::Fatal(why) if may_refuse && why.starts_with("HTTP 400") => {
                    return Delivery::Refused(why);
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
            if !self.inbox.idle(Instant::now() + wait).await {
                return self.lost(alerts, failures, "not sent before exit");
            }
        }
    }

    fn lost(&self, alerts: u64, failures: u64, why: &str) -> Delivery {
        self.stats.slack_lost_alerts.add(alerts);
        self.stats.slack_lost_failures.add(failures);
        self.log.error(format_args!(
            "Slack webhook {}: {why}; lost {alerts} alerts ({failures} failures)",
            self.cfg.url.redacted()
        ));
        Delivery::Lost
    }

    fn give_up_rest(&mut self) {
        let q = &mut self.inbox.queue;
        let folded = std::mem::take(&mut q.folded);
        let alerts = q.alerts.len() as u64 + folded.alerts;
        let failures = q.alerts.iter().map(Alert::failures).sum::<u64>() + folded.failures;
        q.alerts.clear();
        if alerts > 0 {
            self.lost(alerts, failures, "not sent before exit");
        }
    }
}

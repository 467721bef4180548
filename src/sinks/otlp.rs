//! The OTLP sink: OTLP/HTTP with protobuf to a collector. A task takes
//! notices (failures, slow attempts) from a bounded channel into a bounded
//! queue, posts them in batches as log records, paced, retrying with
//! back-off; and every `interval` posts the counters as metrics, from the
//! same snapshot /metrics serves. Building and posting run on tokio's
//! blocking pool (naming a uid may ask NSS), and the task keeps taking
//! notices meanwhile: a collector that is down or slow never stalls
//! detection. What does not fit, or is given up, is counted and said.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::http::{self, Sent};
use super::inbox::{Inbox, Queue};
use super::otlp_msg::{self, OtlpUrl, Span, Times};
use super::pacer::{backoff, jitter, Pacer};
use crate::event::notice::{Notice, What};
use crate::log::Log;
use crate::metrics::stats::Stats;
use crate::metrics::Shared;
use crate::output::clock::{mono_now_ns, Clock};

const PROTOBUF: &str = "application/x-protobuf";

pub struct Config {
    pub url: OtlpUrl,
    pub host: String,
    /// How often the counters go out as metrics.
    pub interval: Duration,
    /// Most notices waiting; more are dropped and counted.
    pub queue: usize,
    /// Most log records in one POST.
    pub batch: usize,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// How long queued records may take to go out once the daemon stops.
    pub flush: Duration,
    /// The loop's snapshot of the counts (see `metrics::Shared`).
    pub shared: Arc<Shared>,
}

impl Config {
    pub fn new(url: OtlpUrl, host: String, interval: Duration, shared: Arc<Shared>) -> Self {
        Config {
            url,
            host,
            interval,
            queue: 1000,
            batch: 512,
            max_attempts: 4,
            timeout: Duration::from_secs(10),
            flush: Duration::from_secs(3),
            shared,
        }
    }
}

/// Starts the sink; dropping the sender asks it to flush and stop.
pub fn spawn(cfg: Config, log: Log, stats: Arc<Stats>) -> (mpsc::Sender<Notice>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let queue = NoticeQueue {
        notices: VecDeque::new(),
        cap: cfg.queue,
        stats: stats.clone(),
    };
    let sender = OtlpSender {
        agent: http::agent(cfg.timeout),
        pacer: Pacer::new(Instant::now(), 4, 4.0),
        inbox: Inbox::new(rx, cfg.flush, queue),
        owners: Arc::new(Mutex::new(Owners::default())),
        start_ns: Clock::system().map_or(0, |c| c.wall_ns(mono_now_ns())),
        failing: false,
        cfg,
        log,
        stats,
    };
    (tx, tokio::spawn(sender.run()))
}

struct NoticeQueue {
    notices: VecDeque<Notice>,
    cap: usize,
    stats: Arc<Stats>,
}

impl Queue<Notice> for NoticeQueue {
    /// Full: the newest is dropped, so what waits keeps its order.
    fn push(&mut self, n: Notice) {
        if self.notices.len() < self.cap {
            self.notices.push_back(n);
        } else {
            self.stats.otlp_queue_drops.inc();
        }
    }
}

/// Names of uids, as NSS gives them, for `process.owner`; bounded.
#[derive(Default)]
struct Owners(HashMap<u32, Option<String>>);

impl Owners {
    const MAX: usize = 1024;

    fn name(&mut self, uid: u32) -> Option<String> {
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
}

/// One batch as a request body; on the blocking pool.
fn encode(batch: &[Notice], host: &str, owners: &Mutex<Owners>) -> Vec<u8> {
    let clock = Clock::system().ok();
    let now = mono_now_ns();
    let wall = |mono: u64| clock.map_or(0, |c| c.wall_ns(mono));
    let mut owners = owners.lock().unwrap_or_else(|p| p.into_inner());
    let mut owner = |uid| owners.name(uid);
    let records = batch
        .iter()
        .map(|n| {
            let ts = match &n.what {
                What::Failed(f) | What::Degraded(f, _) | What::Broken(f) => f.ts_ns,
                What::Slow(s) => s.ts_ns,
                What::ResolveFailed(f) => f.ts_ns,
            };
            let t = Times {
                event_ns: wall(ts),
                observed_ns: wall(now),
            };
            otlp_msg::record(n, t, &mut owner)
        })
        .collect();
    otlp_msg::logs_request(otlp_msg::resource(host), records).encode_to_vec()
}

struct OtlpSender {
    cfg: Config,
    agent: ureq::Agent,
    pacer: Pacer,
    inbox: Inbox<Notice, NoticeQueue>,
    owners: Arc<Mutex<Owners>>,
    start_ns: u64,
    /// The last metrics export failed: said once until one succeeds.
    failing: bool,
    log: Log,
    stats: Arc<Stats>,
}

impl OtlpSender {
    async fn run(mut self) {
        let mut next_metrics = Instant::now() + self.cfg.interval;
        loop {
            if Instant::now() >= next_metrics && !self.inbox.closing() {
                self.export_metrics().await;
                next_metrics = Instant::now() + self.cfg.interval;
                continue;
            }
            if self.inbox.queue.notices.is_empty() {
                if self.inbox.closing() {
                    return;
                }
                tokio::select! {
                    _ = self.inbox.recv() => {}
                    _ = sleep_until(next_metrics) => {}
                }
                continue;
            }
            let wait = self.pacer.wait(Instant::now());
            if !wait.is_zero() {
                if !self
                    .inbox
                    .idle(Instant::now() + wait.min(self.cfg.interval))
                    .await
                {
                    return self.give_up_rest();
                }
                continue;
            }
            let q = &mut self.inbox.queue.notices;
            let n = q.len().min(self.cfg.batch);
            let batch: Vec<Notice> = q.drain(..n).collect();
            if !self.deliver(batch).await && self.inbox.past_deadline() {
                return self.give_up_rest();
            }
        }
    }

    /// Posts one batch, retrying; true when delivered.
    async fn deliver(&mut self, batch: Vec<Notice>) -> bool {
        let n = batch.len() as u64;
        let batch = Arc::new(batch);
        let mut attempt = 0;
        loop {
            self.pacer.take(Instant::now());
            let (agent, url, host) = (
                self.agent.clone(),
                self.cfg.url.logs(),
                self.cfg.host.clone(),
            );
            let (batch, owners) = (batch.clone(), self.owners.clone());
            let send = move || {
                let body = encode(&batch, &host, &owners);
                http::post_bytes(&agent, &url, PROTOBUF, &body)
            };
            let Some(sent) = self.inbox.post_with(send).await else {
                return self.lost(n, "not sent before exit");
            };
            let why = match sent {
                Sent::Ok => {
                    self.stats.otlp_records.add(n);
                    return true;
                }
                Sent::Fatal(why) => return self.lost(n, &why),
                _ if attempt + 1 >= self.cfg.max_attempts => {
                    return self.lost(n, &format!("gave up after {} attempts", attempt + 1));
                }
                Sent::RateLimited(d) => {
                    self.pacer.hold(Instant::now() + d);
                    format!("busy (HTTP 429), retrying after {}s", d.as_secs())
                }
                Sent::Retry(why) => {
                    let d = backoff(attempt, jitter());
                    self.pacer.hold(Instant::now() + d);
                    format!("{why}, retrying in {:.1}s", d.as_secs_f64())
                }
            };
            attempt += 1;
            self.stats.otlp_retries.inc();
            if attempt == 1 {
                self.log.error(format_args!(
                    "OTLP collector {}: {why}",
                    self.cfg.url.redacted()
                ));
            }
            let wait = self.pacer.wait(Instant::now());
            if !self.inbox.idle(Instant::now() + wait).await {
                return self.lost(n, "not sent before exit");
            }
        }
    }

    /// The counters, once: from a fresh snapshot (the loop makes one
    /// after its next drain, within a second), not retried: the next
    /// export carries the same totals, and more.
    async fn export_metrics(&mut self) {
        let shared = self.cfg.shared.clone();
        let fresh = shared.published.notified();
        tokio::pin!(fresh);
        fresh.as_mut().enable();
        shared.want();
        let _ = timeout(Duration::from_secs(2), fresh).await;
        let span = Span {
            start_ns: self.start_ns,
            now_ns: Clock::system().map_or(0, |c| c.wall_ns(mono_now_ns())),
        };
        let body = {
            let s = shared.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            let resource = otlp_msg::resource(&self.cfg.host);
            otlp_msg::metrics_request(resource, &s, &self.stats, span).encode_to_vec()
        };
        let (agent, url) = (self.agent.clone(), self.cfg.url.metrics());
        let sent = self
            .inbox
            .post_with(move || http::post_bytes(&agent, &url, PROTOBUF, &body))
            .await;
        match sent {
            Some(Sent::Ok) => {
                self.stats.otlp_metric_posts.inc();
                self.failing = false;
            }
            other => {
                self.stats.otlp_metric_failed.inc();
                if !std::mem::replace(&mut self.failing, true) {
                    let why = match other {
                        Some(Sent::Retry(w) | Sent::Fatal(w)) => w,
                        Some(Sent::RateLimited(_)) => "busy (HTTP 429)".into(),
                        _ => "not sent before exit".into(),
                    };
                    self.log.error(format_args!(
                        "OTLP collector {}: metrics not sent: {why}",
                        self.cfg.url.redacted()
                    ));
                }
            }
        }
    }

    fn lost(&self, n: u64, why: &str) -> bool {
        self.stats.otlp_lost_records.add(n);
        self.log.error(format_args!(
            "OTLP collector {}: {why}; lost {n} records",
            self.cfg.url.redacted()
        ));
        false
    }

    fn give_up_rest(&mut self) {
        let n = self.inbox.queue.notices.len() as u64;
        self.inbox.queue.notices.clear();
        if n > 0 {
            self.lost(n, "not sent before exit");
        }
    }
}

//! Counters the sinks share with the event loop: what was delivered and
//! what was lost, per sink. Atomics, because a sink runs as its own task
//! and the Slack POST on a blocking thread.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Lines not written to stdout because its reader did not keep up.
    pub stdout_dropped: Counter,
    pub syslog_lines: Counter,
    /// Lines not written: socket missing, gone or full.
    pub syslog_lost: Counter,
    /// Alerts not taken by a sink's queue (full), per sink.
    pub syslog_queue_drops: Counter,
    pub slack_queue_drops: Counter,
    pub slack_messages: Counter,
    pub slack_alerts: Counter,
    pub slack_retries: Counter,
    pub slack_rate_limited: Counter,
    /// Alerts folded into a count because Slack's queue was full.
    pub slack_folded: Counter,
    /// Alerts given up (Slack down, rejected, or not sent before exit).
    pub slack_lost_alerts: Counter,
    pub slack_lost_failures: Counter,
    /// Alertmanager (summed over its URLs): successful POSTs, alerts
    /// they carried, retries, alerts its queue could not take, and alerts
    /// given up (rejected, retries exhausted, or not sent before exit).
    pub am_posts: Counter,
    pub am_alerts: Counter,
    pub am_retries: Counter,
    pub am_queue_drops: Counter,
    pub am_lost_alerts: Counter,
    /// OTLP: log records delivered, POSTs retried, records its queue
    /// could not take, records given up (rejected, retries exhausted, or
    /// not sent before exit); metric exports sent and not sent.
    pub otlp_records: Counter,
    pub otlp_retries: Counter,
    pub otlp_queue_drops: Counter,
    pub otlp_lost_records: Counter,
    pub otlp_metric_posts: Counter,
    pub otlp_metric_failed: Counter,
}

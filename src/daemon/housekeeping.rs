//! The once-a-second chores: a fresh realtime−monotonic offset, the age
//! sweep of pending attempts, and losses said while they happen.

use std::time::Duration;

use tokio::time::Instant;

use crate::daemon::losses::Losses;
use crate::log::Log;
use crate::metrics::stats::Stats;
use crate::output::clock::{mono_now_ns, Clock};
use crate::pipeline::engine::Engine;
use crate::tracer::Tracer;

const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Once a second: a fresh realtime−monotonic offset, the age sweep, and
/// the losses said while they happen.
pub(super) struct Housekeeping {
    last_sweep: Instant,
    pub(super) ring_drops: u64,
    pub(super) kernel_dns: super::lines::KernelDns,
    losses: Losses,
}

impl Housekeeping {
    pub(super) fn new(_log: &Log) -> Self {
        Housekeeping {
            last_sweep: Instant::now(),
            ring_drops: 0,
            kernel_dns: Default::default(),
            losses: Losses::default(),
        }
    }

    pub(super) fn run(
        &mut self,
        tracer: &Tracer<'_>,
        engine: &mut Engine,
        stats: &Stats,
        log: &Log,
    ) {
        // An NTP step or a suspend moves the offset.
        if let Ok(c) = Clock::system() {
            engine.set_clock(c);
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            engine.sweep(mono_now_ns());
        }
        if let Ok(d) = tracer.ring_drops() {
            self.ring_drops = d;
        }
        if let Ok(d) = tracer.dns_skipped() {
            self.kernel_dns.skipped = d;
        }
        if let Ok(d) = tracer.dns_tcp_unread() {
            self.kernel_dns.tcp_unread = d;
        }
        let e = engine.stats();
        let totals = crate::daemon::losses::Totals {
            ring_drops: self.ring_drops,
            evicted: e.correlate.evicted_age + e.correlate.evicted_full,
            unmatched: e.correlate.unmatched,
            stdout_dropped: stats.stdout_dropped.get(),
            alert_queue_drops: stats.syslog_queue_drops.get() + stats.slack_queue_drops.get(),
            syslog_lost: stats.syslog_lost.get(),
            slack_folded: stats.slack_folded.get(),
            slack_lost: stats.slack_lost_alerts.get(),
            bad_records: e.bad_records,
        };
        for w in self.losses.check(&totals, now.into_std()) {
            log.warn(w);
        }
        for w in engine.take_warnings() {
            log.warn(w);
        }
    }
}

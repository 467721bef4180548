//! Delivery: the journal or syslog, Slack, Alertmanager and OTLP, each a task fed
//! by a bounded channel, so no sink can slow detection. A full channel is a
//! counted drop. The messages each sink writes are built by pure helpers
//! beside it (`syslog_msg`, `journal`, `slack_msg`, `otlp_msg`); the HTTP
//! sinks share an inbox, a pacer and an HTTP client.

pub mod alertmanager;
pub mod http;
pub mod inbox;
pub mod journal;
pub mod otlp;
pub mod otlp_msg;
pub mod pacer;
pub mod slack;
pub mod slack_msg;
pub mod syslog;
pub mod syslog_msg;
pub mod webhook;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::alert::dns_fleet::DnsFleetAlert;
use crate::alert::policy::Alert;
use crate::alert::resolve::FleetAlert;
use crate::event::notice::Notice;
use crate::log::Log;
use crate::metrics::stats::Stats;
use syslog::SyslogMsg;

pub struct Config {
    pub syslog: Option<syslog::Target>,
    pub slack: Option<slack::Config>,
    /// One per Alertmanager URL (an HA pair gets each alert twice).
    pub alertmanager: Vec<alertmanager::Config>,
    /// `--slack-degraded`: Slack gets degradation notices too.
    pub slack_degraded: bool,
    pub otlp: Option<otlp::Config>,
}

/// The running sinks.
pub struct Sinks {
    syslog: Option<(mpsc::Sender<SyslogMsg>, JoinHandle<()>)>,
    slack: Option<(mpsc::Sender<Alert>, JoinHandle<()>)>,
    alertmanager: Vec<(mpsc::Sender<alertmanager::Post>, JoinHandle<()>)>,
    slack_degraded: bool,
    otlp: Option<(mpsc::Sender<Notice>, JoinHandle<()>)>,
    stats: Arc<Stats>,
}

impl Sinks {
    /// Starts the sinks; the Log it returns writes through the syslog sink.
    pub fn start(cfg: Config, stats: Arc<Stats>) -> (Sinks, Log) {
        let syslog = cfg.syslog.map(|p| syslog::spawn(p, stats.clone()));
        let log = Log::new(syslog.as_ref().map(|(tx, _)| tx.clone()));
        let slack = cfg
            .slack
            .map(|c| slack::spawn(c, log.clone(), stats.clone()));
        let alertmanager = cfg
            .alertmanager
            .into_iter()
            .map(|c| alertmanager::spawn(c, log.clone(), stats.clone()))
            .collect();
        let otlp = cfg.otlp.map(|c| otlp::spawn(c, log.clone(), stats.clone()));
        (
            Sinks {
                syslog,
                slack,
                alertmanager,
                slack_degraded: cfg.slack_degraded,
                otlp,
                stats,
            },
            log,
        )
    }

    /// True when any sink takes alerts.
    pub fn any(&self) -> bool {
        self.syslog.is_some() || self.slack.is_some()
    }

    /// True when Alertmanager takes alerts.
    pub fn fleet(&self) -> bool {
        !self.alertmanager.is_empty()
    }

    /// Hands an Alertmanager post to each of its URLs; never waits.
    pub fn send_fleet(&self, a: &FleetAlert) {
        self.post(alertmanager::Post::Dest(Box::new(a.clone())));
    }

    /// Hands a name's Alertmanager post to each of its URLs; never waits.
    pub fn send_fleet_dns(&self, a: &DnsFleetAlert) {
        self.post(alertmanager::Post::Name(a.clone()));
    }

    fn post(&self, p: alertmanager::Post) {
        for (tx, _) in &self.alertmanager {
            if tx.try_send(p.clone()).is_err() {
                self.stats.am_queue_drops.inc();
            }
        }
    }

    /// True when OTLP takes notices.
    pub fn otlp(&self) -> bool {
        self.otlp.is_some()
    }

    /// Hands a failure or slow attempt to OTLP; never waits.
    pub fn send_notice(&self, n: Notice) {
        if let Some((tx, _)) = &self.otlp {
            if tx.try_send(n).is_err() {
                self.stats.otlp_queue_drops.inc();
            }
        }
    }

    /// Hands an alert to every sink; never waits.
    pub fn send(&self, a: &Alert) {
        if let Some((tx, _)) = &self.syslog {
            if tx.try_send(SyslogMsg::Alert(Box::new(a.clone()))).is_err() {
                self.stats.syslog_queue_drops.inc();
            }
        }
        // A degradation is not an outage: Slack (a page for most teams)
        // gets it only when asked.
        if let Some((tx, _)) = self
            .slack
            .as_ref()
            .filter(|_| self.slack_degraded || !a.degraded())
        {
            if tx.try_send(a.clone()).is_err() {
                self.stats.slack_queue_drops.inc();
            }
        }
    }

    /// Lets Slack send what it holds until `deadline` (then it gives up and
    /// counts the rest), and syslog write what it holds; syslog stays open
    /// for the last lines. Then the counters are final.
    pub async fn settle(&mut self, deadline: Instant) {
        // Each Alertmanager task flushes on its own while Slack does.
        let mut flushing: Vec<JoinHandle<()>> =
            self.alertmanager.drain(..).map(|(_, h)| h).collect();
        // OTLP flushes its records on its own too.
        flushing.extend(self.otlp.take().map(|(_, h)| h));
        if let Some((tx, handle)) = self.slack.take() {
            drop(tx);
            // The sink counts what it could not send by its own deadline;
            // this one only bounds the wait.
            let _ = timeout_at(deadline, handle).await;
        }
        for h in flushing {
            let _ = timeout_at(deadline, h).await;
        }
        if let Some((tx, _)) = &self.syslog {
            let (done, written) = tokio::sync::oneshot::channel();
            if timeout_at(deadline, tx.send(SyslogMsg::Barrier(done)))
                .await
                .is_ok()
            {
                let _ = timeout_at(deadline, written).await;
            }
        }
    }

    /// Writes what syslog holds, at most until `deadline`.
    pub async fn close(mut self, deadline: Instant) {
        self.settle(deadline).await;
        if let Some((tx, handle)) = self.syslog.take() {
            let _ = timeout_at(deadline, tx.send(SyslogMsg::Close)).await;
            drop(tx);
            let _ = timeout_at(deadline, handle).await;
        }
    }
}

/// `connection_broken` through every sink, from the engine on.
#[cfg(test)]
mod broken_tests;

//! Alerts: failures from the tracer go through the policy (first at once,
//! then one summary per window) to syslog and Slack, on a thread of their
//! own fed by a bounded queue, so no sink can slow detection.

pub mod policy;
pub mod slack;
pub mod syslog;
pub mod text;

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::event::Failure;
use crate::output::mono_now_ns;
use policy::{Alert, Policy, PolicyStats};
use slack::{Slack, SlackStats};
use syslog::{Severity, Syslog, SyslogStats};
use text::SyslogLine;

/// Failures waiting for the alert thread; beyond this they are counted
/// by the tracer as dropped.
pub const QUEUE: usize = 8192;
/// Destinations with an open window; beyond this they share one.
const MAX_DESTS: usize = 4096;
/// How long a line may wait for room in a full syslog socket (off the
/// tracer thread) before it is dropped and counted.
const PATIENCE: Duration = Duration::from_millis(500);
/// How long pending Slack alerts may take to go out at shutdown.
const FLUSH: Duration = Duration::from_secs(4);

/// Lifecycle and error lines: to syslog when it is on, and to stderr
/// unless stderr is the journal and syslog took the line (the journal
/// would show it twice).
pub struct Log {
    syslog: Option<Mutex<Syslog>>,
    stderr_is_journal: bool,
}

impl Log {
    pub fn new(syslog: Option<PathBuf>) -> Self {
        Log {
            syslog: syslog.map(|p| Mutex::new(Syslog::new(p))),
            stderr_is_journal: stderr_is_journal(),
        }
    }

    fn syslog(&self, sev: Severity, msg: &dyn std::fmt::Display, patience: Duration) -> bool {
        let Some(s) = &self.syslog else {
            return false;
        };
        let mut guard = if patience.is_zero() {
            // Not even the lock may be waited for: the alert thread can hold
            // it through a slow send. The line then goes to stderr only.
            match s.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return false,
            }
        } else {
            s.lock().unwrap_or_else(|p| p.into_inner())
        };
        guard.send(sev, msg, patience)
    }

    pub fn line(&self, sev: Severity, msg: &str) {
        self.line_within(sev, msg, PATIENCE)
    }

    /// For the tracer thread, which must never wait on syslog.
    pub fn error_nowait(&self, msg: &str) {
        self.line_within(Severity::Err, msg, Duration::ZERO)
    }

    fn line_within(&self, sev: Severity, msg: &str, patience: Duration) {
        let sent = self.syslog(sev, &msg, patience);
        if !(sent && self.stderr_is_journal) {
            eprintln!("tcpstate: {msg}");
        }
    }

    pub fn info(&self, msg: &str) {
        self.line(Severity::Info, msg)
    }

    pub fn error(&self, msg: &str) {
        self.line(Severity::Err, msg)
    }

    /// An alert goes to syslog only: stdout carries the per-failure stream.
    fn alert(&self, a: &Alert) {
        self.syslog(Severity::Warning, &SyslogLine(a), PATIENCE);
    }

    pub fn syslog_stats(&self) -> Option<SyslogStats> {
        self.syslog
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).stats)
    }
}

/// systemd sets JOURNAL_STREAM to the device:inode of the stream it
/// connected to the journal.
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(2) else {
        return false;
    };
    v == format!("{}:{}", st.st_dev, st.st_ino)
}

pub struct Config {
    pub window: Duration,
    pub slack: Option<slack::Config>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct AlertStats {
    pub policy: PolicyStats,
    pub slack: Option<SlackStats>,
}

/// The running alert thread. Dropping every sender ends it: it then
/// summarises open windows and flushes Slack.
pub struct Alerts {
    thread: JoinHandle<AlertStats>,
}

impl Alerts {
    pub fn spawn(cfg: Config, log: Arc<Log>) -> Result<(SyncSender<Failure>, Alerts)> {
        let (tx, rx) = sync_channel(QUEUE);
        let slack = match cfg.slack {
            Some(c) => {
                let l = log.clone();
                Some(
                    Slack::spawn(c, Box::new(move |m| l.error(m)))
                        .context("starting the Slack sender")?,
                )
            }
            None => None,
        };
        let policy = Policy::new(cfg.window.as_nanos() as u64, MAX_DESTS);
        let thread = std::thread::Builder::new()
            .name("tcpstate-alert".into())
            .spawn(move || run(rx, policy, slack, &log))
            .context("starting the alert thread")?;
        Ok((tx, Alerts { thread }))
    }

    /// Waits for the thread after its senders are gone.
    pub fn finish(self) -> AlertStats {
        self.thread.join().unwrap_or_default()
    }
}

fn run(rx: Receiver<Failure>, mut policy: Policy, slack: Option<Slack>, log: &Log) -> AlertStats {
    let emit = |a: Alert| {
        log.alert(&a);
        if let Some(s) = &slack {
            s.push(a);
        }
    };
    let mut due = Vec::new();
    loop {
        let now = mono_now_ns();
        let wait = policy
            .next_deadline()
            .map_or(Duration::from_secs(1), |d| {
                Duration::from_nanos(d.saturating_sub(now))
            })
            .min(Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok(f) => {
                if let Some(a) = policy.on_failure(&f, mono_now_ns()) {
                    emit(a);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        policy.tick(mono_now_ns(), &mut due);
        due.drain(..).for_each(emit);
    }
    policy.flush(&mut due);
    due.drain(..).for_each(emit);
    AlertStats {
        policy: policy.stats(),
        slack: slack.map(|s| s.close(FLUSH)),
    }
}

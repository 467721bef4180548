//! The syslog sink: facility daemon, identifier `tcpstate`, a Unix datagram
//! socket (`/dev/log`). A task fed by a bounded channel. A missing or
//! vanished socket is said once and retried every 5 s; a full one is
//! waited on for at most half a second, then the line is dropped and
//! counted. Nothing here can slow detection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use syslog::{Facility, Formatter3164, LogFormat};
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

pub use super::syslog_msg::{Severity, SyslogMsg};
use crate::alert::policy::Alert;
use crate::alert::wording::SyslogLine;
use crate::metrics::stats::Stats;

const RETRY: Duration = Duration::from_secs(5);
/// How long a line may wait for room in a full socket.
const PATIENCE: Duration = Duration::from_millis(500);

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A classic syslog datagram socket (`/dev/log`).
    Socket(PathBuf),
    /// journald's native protocol: the same MESSAGE, priority, identifier
    /// and facility, plus structured TCPSTATE_* fields for alerts.
    Journal,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(p) => write!(f, "syslog {}", p.display()),
            Target::Journal => f.write_str("the journal"),
        }
    }
}

pub fn spawn(target: Target, stats: Arc<Stats>) -> (mpsc::Sender<SyslogMsg>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let task = match target {
        Target::Socket(path) => tokio::spawn(run(Conn::new(path), rx, stats)),
        Target::Journal => tokio::spawn(run_journal(rx, stats)),
    };
    (tx, task)
}

/// Failures warn; recoveries and degradations (failures the applications
/// recovered from) are notices.
fn severity(a: &Alert) -> Severity {
    match a {
        Alert::Resolved(_) => Severity::Notice,
        a if a.degraded() => Severity::Notice,
        _ => Severity::Warning,
    }
}

/// The journal sink: one native-protocol entry per line or alert.
async fn run_journal(mut rx: mpsc::Receiver<SyslogMsg>, stats: Arc<Stats>) {
    use super::journal::{alert_entry, fields_of, priority, AlertFields, Journal};
    let journal = match Journal::system() {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("tcpstate: the journal socket: {e}; alerts go on elsewhere");
            None
        }
    };
    while let Some(m) = rx.recv().await {
        let entry = match m {
            SyslogMsg::Alert(a) => alert_entry(
                &SyslogLine(&a).to_string(),
                priority(severity(&a)),
                &fields_of(&a),
            ),
            SyslogMsg::Line(sev, text) => {
                alert_entry(&text, priority(sev), &AlertFields::default())
            }
            SyslogMsg::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
            SyslogMsg::Close => break,
        };
        let sent = match &journal {
            Some(j) => matches!(
                timeout(PATIENCE, j.send(entry.as_bytes())).await,
                Ok(Ok(()))
            ),
            None => false,
        };
        if sent {
            stats.syslog_lines.inc();
        } else {
            stats.syslog_lost.inc();
        }
    }
}

async fn run(mut conn: Conn, mut rx: mpsc::Receiver<SyslogMsg>, stats: Arc<Stats>) {
    let formatter = Formatter3164 {
        facility: Facility::LOG_DAEMON,
        hostname: None,
        process: "tcpstate".into(),
        pid: std::process::id(),
    };
    let mut buf = Vec::with_capacity(1024);
    while let Some(m) = rx.recv().await {
        let (sev, text) = match m {
            SyslogMsg::Alert(a) => (severity(&a), SyslogLine(&a).to_string()),
            SyslogMsg::Line(sev, text) => (sev, text),
            SyslogMsg::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
            SyslogMsg::Close => break,
        };
        buf.clear();
        let severity = match sev {
            Severity::Info => syslog::Severity::LOG_INFO,
            Severity::Notice => syslog::Severity::LOG_NOTICE,
            Severity::Warning => syslog::Severity::LOG_WARNING,
            Severity::Err => syslog::Severity::LOG_ERR,
        };
        if formatter.format(&mut buf, severity, &text).is_ok() && conn.send(&buf).await {
            stats.syslog_lines.inc();
        } else {
            stats.syslog_lost.inc();
        }
    }
}

struct Conn {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    next_try: Instant,
    /// Said on stderr that the socket is unusable; said again once it is back.
    down: bool,
}

impl Conn {
    fn new(path: PathBuf) -> Self {
        Conn {
            path,
            sock: None,
            next_try: Instant::now(),
            down: false,
        }
    }

    fn connect(&mut self) {
        self.next_try = Instant::now() + RETRY;
        let r = UnixDatagram::unbound().and_then(|s| s.connect(&self.path).map(|()| s));
        match r {
            Ok(s) => {
                self.sock = Some(s);
                if self.down {
                    eprintln!("tcpstate: syslog socket {} is back", self.path.display());
                    self.down = false;
                }
            }
            Err(e) => self.went_down(&e),
        }
    }

    fn went_down(&mut self, why: &std::io::Error) {
        self.sock = None;
        if !self.down {
            eprintln!(
                "tcpstate: syslog socket {}: {why}; alerts go on elsewhere, retrying every {}s",
                self.path.display(),
                RETRY.as_secs()
            );
            self.down = true;
        }
    }

    /// Writes one datagram, waiting at most PATIENCE for room.
    async fn send(&mut self, buf: &[u8]) -> bool {
        if self.sock.is_none() && Instant::now() >= self.next_try {
            self.connect();
        }
        let Some(s) = &self.sock else {
            return false;
        };
        match timeout(PATIENCE, s.send(buf)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                // The reader went away (journald restarting): reconnect soon.
                self.went_down(&e);
                self.next_try = Instant::now();
                false
            }
            Err(_) => false, // full for too long
        }
    }
}

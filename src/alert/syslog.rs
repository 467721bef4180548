//! Syslog sink: facility daemon, identifier `tcpstate`, a Unix socket
//! (`/dev/log`). A missing or vanished socket is said once and retried
//! later. The socket is non-blocking: a full one is waited on for at most
//! the caller's patience, then the line is dropped and counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Err,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyslogStats {
    pub lines: u64,
    /// Lines not written: socket missing, gone or full.
    pub lost: u64,
}

pub struct Syslog {
    path: PathBuf,
    formatter: Formatter3164,
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    next_try: Instant,
    /// Said on stderr that the socket is unusable; said again once it is back.
    down: bool,
    pub stats: SyslogStats,
}

impl Syslog {
    pub fn new(path: PathBuf) -> Self {
        let mut s = Syslog {
            path,
            formatter: Formatter3164 {
                facility: Facility::LOG_DAEMON,
                hostname: None,
                process: "tcpstate".into(),
                pid: std::process::id(),
            },
            logger: None,
            next_try: Instant::now(),
            down: false,
            stats: SyslogStats::default(),
        };
        s.connect();
        s
    }

    fn connect(&mut self) {
        self.next_try = Instant::now() + RETRY;
        match syslog::unix_custom(self.formatter.clone(), &self.path) {
            Ok(logger) => {
                // A full socket must cost a lost line, not a stalled thread.
                let ok = match &logger.backend {
                    LoggerBackend::Unix(s) => s.set_nonblocking(true),
                    LoggerBackend::UnixStream(s) => s
                        .get_ref()
                        .set_write_timeout(Some(Duration::from_millis(200))),
                    _ => Ok(()),
                };
                if ok.is_ok() {
                    self.logger = Some(logger);
                    if self.down {
                        eprintln!("tcpstate: syslog socket {} is back", self.path.display());
                        self.down = false;
                    }
                }
            }
            Err(e) => self.went_down(&describe(&e)),
        }
    }

    fn went_down(&mut self, why: &str) {
        self.logger = None;
        if !self.down {
            eprintln!(
                "tcpstate: syslog socket {}: {why}; alerts go on elsewhere, retrying every {}s",
                self.path.display(),
                RETRY.as_secs()
            );
            self.down = true;
        }
    }

    /// Writes one line, waiting at most `patience` for room in the socket.
    /// `msg` must already be free of untrusted raw text.
    pub fn send(&mut self, sev: Severity, msg: &dyn std::fmt::Display, patience: Duration) -> bool {
        let give_up = Instant::now() + patience;
        loop {
            match self.try_send(sev, msg) {
                Err(true) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err(_) => {
                    self.stats.lost += 1;
                    return false;
                }
                Ok(()) => {
                    self.stats.lines += 1;
                    return true;
                }
            }
        }
    }

    /// Err(true): the socket is full, worth another try.
    fn try_send(&mut self, sev: Severity, msg: &dyn std::fmt::Display) -> Result<(), bool> {
        if self.logger.is_none() && Instant::now() >= self.next_try {
            self.connect();
        }
        let Some(logger) = self.logger.as_mut() else {
            return Err(false);
        };
        let r = match sev {
            Severity::Info => logger.info(msg),
            Severity::Warning => logger.warning(msg),
            Severity::Err => logger.err(msg),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let would_block = matches!(&e, syslog::Error::Write(io) | syslog::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock);
                if !would_block {
                    // The reader went away (journald restarted): reconnect later.
                    self.went_down(&describe(&e));
                    self.next_try = Instant::now();
                }
                Err(would_block)
            }
        }
    }
}

/// The cause alone: the crate's Display nests "Initialization error: Io error: …".
fn describe(e: &syslog::Error) -> String {
    match e {
        syslog::Error::Initialization(inner) => inner.to_string(),
        syslog::Error::Write(io) | syslog::Error::Io(io) => io.to_string(),
    }
}

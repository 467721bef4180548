//! Lifecycle and error lines: to syslog when it is on, and to stderr unless
//! stderr is the journal and syslog takes the line (the journal would show
//! it twice). Never waits: the syslog task gets the line through a bounded
//! queue, and a full queue falls back to stderr.

use std::fmt::Display;

use tokio::sync::mpsc;

use crate::sinks::syslog_msg::{Severity, SyslogMsg};

#[derive(Clone)]
pub struct Log {
    syslog: Option<mpsc::Sender<SyslogMsg>>,
    stderr_is_journal: bool,
}

impl Log {
    pub fn new(syslog: Option<mpsc::Sender<SyslogMsg>>) -> Self {
        Log {
            syslog,
            stderr_is_journal: stderr_is_journal(),
        }
    }

    /// Only stderr, as before the sinks start.
    pub fn stderr() -> Self {
        Log::new(None)
    }

    pub fn line(&self, sev: Severity, msg: impl Display) {
        let text = msg.to_string();
        let queued = match &self.syslog {
            Some(tx) => tx.try_send(SyslogMsg::Line(sev, text.clone())).is_ok(),
            None => false,
        };
        if !(queued && self.stderr_is_journal) {
            eprintln!("tcpstate: {text}");
        }
    }

    pub fn info(&self, msg: impl Display) {
        self.line(Severity::Info, msg)
    }

    pub fn warn(&self, msg: impl Display) {
        self.line(Severity::Warning, msg)
    }

    pub fn error(&self, msg: impl Display) {
        self.line(Severity::Err, msg)
    }
}

/// systemd sets JOURNAL_STREAM to the device:inode of the stream it
/// connected to the journal.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(2) else {
        return false;
    };
    v == format!("{}:{}", st.st_dev, st.st_ino)
}

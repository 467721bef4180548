//! What the syslog (or journal) task takes: a line with its severity, or an
//! alert. Apart from the task so that `log` can queue lines, and the
//! journal writer map severities, without either depending on the sink.

use crate::alert::policy::Alert;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Err,
}

pub enum SyslogMsg {
    Alert(Box<Alert>),
    Line(Severity, String),
    /// Answered once everything before it is written.
    Barrier(tokio::sync::oneshot::Sender<()>),
    /// Everything before this is written; then the task ends.
    Close,
}

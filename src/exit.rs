//! Errors that end the program with a documented exit code.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything unexpected at run time.
    Runtime,
    /// 2: a bad flag, environment value or configuration.
    Usage,
    /// 3: not root and lacking CAP_BPF + CAP_PERFMON.
    Privilege,
    /// 4: the kernel cannot run the tracer (no BTF, no tracepoint, rejected).
    Kernel,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Runtime => 1,
            Kind::Usage => 2,
            Kind::Privilege => 3,
            Kind::Kernel => 4,
        }
    }
}

/// An error a person can act on: one line, and the exit code that says
/// which kind it is.
#[derive(Debug)]
pub struct Fatal {
    pub kind: Kind,
    pub msg: String,
}

impl Fatal {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Fatal {
            kind,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fatal {}

/// The exit code and one line for any error from the daemon.
pub fn report(e: &anyhow::Error) -> (u8, String) {
    let code = e
        .downcast_ref::<Fatal>()
        .map_or(Kind::Runtime.code(), |f| f.kind.code());
    // "{:#}" joins the context chain with ": " on one line.
    let line = format!("{e:#}").replace('\n', " ");
    (code, line)
}

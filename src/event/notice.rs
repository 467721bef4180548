//! What the OTLP sink exports as log records: one per event worth a
//! record, with who it was. Each kind of event is a variant of [`What`];
//! `sinks::otlp_msg` gives each its event name, severity and attributes,
//! so a kind that lands later (a degradation verdict, a broken
//! connection, a DNS failure) adds a variant here and one arm there.

use super::{Attribution, Failure, Fallback, Slow};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A connection attempt that failed and that nothing recovered
    /// (`connect_failed`, outcome `failed`: see `pipeline::verdict`).
    Failed(Failure),
    /// A failed attempt the application recovered from, and what it fell
    /// back to (`path_degraded`).
    Degraded(Failure, Fallback),
    /// An attempt still unanswered after `--slow-after` (`connect_slow`).
    Slow(Slow),
    /// A connection this host opened that broke after it was established
    /// (`connection_broken`; its stage carries what it had moved).
    Broken(Failure),
    /// A lookup whose every candidate failed (`resolve_failed`, issue 32).
    ResolveFailed(Box<crate::dns::lookup::Failed>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub what: What,
    /// The caller's cgroup, as named when the event was seen; untrusted
    /// text, escaped by the sink.
    pub attribution: Option<Attribution>,
}

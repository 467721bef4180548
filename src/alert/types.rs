//! What alerts carry and count: the destination, the summary, the
//! recovery and the tally behind them. Types shared by the window policy
//! (which makes alerts), the resolver (which makes recoveries) and the
//! sinks that word them; kept here so that policy and resolve need not
//! depend on each other. Pure.

use std::net::IpAddr;

use crate::event::{Attribution, Comm, Failure, Fallback, Reason, Slow};

/// A destination as alerts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
}

/// Two integer writes: derived, an address hashes as a discriminant, a
/// length and a byte slice, which cost the per-failure lookups a third of
/// their time. An IPv4 address and its IPv6 twin (::a.b.c.d) share a hash;
/// `Eq` still tells them apart.
impl std::hash::Hash for Dest {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(match self.addr {
            IpAddr::V4(a) => u128::from(a.to_bits()),
            IpAddr::V6(a) => a.to_bits(),
        });
        h.write_u16(self.port);
    }
}

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum What {
    #[default]
    Failures,
    /// Attempts still in SYN_SENT after `--slow-after`.
    Hanging,
    /// Failed attempts the application recovered from: a broken path
    /// behind a working one (notice, not page).
    Degraded,
    /// Connections this host opened that broke after they were established
    /// (`connection_broken`).
    Broken,
}

/// A process seen failing, and how often, in a summary; pid and comm are
/// unknown for attempts whose start was not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub comm: Option<Comm>,
    pub pid: Option<u32>,
    pub count: u64,
}

/// Further failures to one destination during one window; or, for a
/// source over its share, its failures to the destinations beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub what: What,
    /// None for a source's fold (see `source`).
    pub dest: Option<Dest>,
    /// For a fold: the source, named (its unit or container, else its
    /// cgroup id, and its uid).
    pub source: Option<String>,
    pub count: u64,
    pub window_ns: u64,
    /// Reasons seen, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
    /// Processes seen, most frequent first, at most [`MAX_PROCS`].
    pub procs: Vec<Proc>,
    /// Failures from processes beyond those listed.
    pub other_procs: u64,
    /// Units (or containers) seen, most frequent first, at most MAX_PROCS.
    pub units: Vec<(String, u64)>,
    /// For a fold: destinations by count, at most [`MAX_TOP_DESTS`]...
    pub top_dests: Vec<(Dest, u64)>,
    /// ...and how many destinations there were in all.
    pub dests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// The first failure to a destination.
    First(Failure, Option<Attribution>),
    /// The first attempt to a destination found hanging.
    Slow(Slow, Option<Attribution>),
    Summary(Summary),
    /// A destination that stopped failing (see `resolve`).
    Resolved(Recovery),
    /// The first failure to a destination that the application recovered
    /// from, and what it fell back to: a notice, never a page.
    Degraded(Failure, Fallback, Option<Attribution>),
    /// A lookup whose every candidate failed (issue 32).
    ResolveFailed(Box<crate::dns::lookup::Failed>, Option<Attribution>),
    /// A source's DNS failures past its firsts in a window, counted.
    ResolveFolded(Box<crate::dns::lookup::Folded>, Option<Attribution>),
}

impl Alert {
    /// A notice that applications recovered from failures: not a page.
    pub fn degraded(&self) -> bool {
        match self {
            Alert::Degraded(..) => true,
            Alert::Summary(s) => s.what == What::Degraded,
            _ => false,
        }
    }

    /// How many failures (or hanging attempts) the alert stands for.
    pub fn failures(&self) -> u64 {
        match self {
            Alert::First(..) | Alert::Slow(..) | Alert::Degraded(..) | Alert::ResolveFailed(..) => {
                1
            }
            Alert::ResolveFolded(s, _) => s.count,
            Alert::Summary(s) => s.count,
            Alert::Resolved(_) => 0,
        }
    }
}

pub const MAX_PROCS: usize = 5;
pub const MAX_TOP_DESTS: usize = 5;
/// Failures counted by reason and by process: what an alert window keeps,
/// and a firing destination (`resolve`) too.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub count: u64,
    pub reasons: [u64; Reason::ALL.len()],
    /// At most [`MAX_PROCS`], in the order first seen.
    pub procs: Vec<Proc>,
    /// Failures from processes beyond those in `procs`.
    pub other_procs: u64,
}

impl Tally {
    pub fn add(&mut self, reason: Option<Reason>, comm: Option<Comm>, pid: Option<u32>) {
        self.count += 1;
        if let Some(r) = reason {
            self.reasons[r.index()] += 1;
        }
        if let Some(p) = self
            .procs
            .iter_mut()
            .find(|p| p.pid == pid && p.comm == comm)
        {
            p.count += 1;
        } else if self.procs.len() < MAX_PROCS {
            self.procs.push(Proc {
                comm,
                pid,
                count: 1,
            });
        } else {
            self.other_procs += 1;
        }
    }

    /// The reasons seen, most frequent first.
    pub fn reasons_by_count(&self) -> Vec<(Reason, u64)> {
        let mut reasons: Vec<(Reason, u64)> = Reason::ALL
            .iter()
            .zip(self.reasons)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
            .collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        reasons
    }

    /// The processes seen, most frequent first.
    pub fn procs_by_count(&self) -> Vec<Proc> {
        let mut procs = self.procs.clone();
        procs.sort_by_key(|p| std::cmp::Reverse(p.count));
        procs
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedBy {
    /// A connection to the destination succeeded.
    Success,
    /// No failure for `resolve_after`.
    Quiet,
}

/// A destination that stopped failing: Slack's and syslog's "recovered".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub dest: Dest,
    /// Failures while it was firing.
    pub count: u64,
    /// Monotonic ns of its first and last failure, and of the resolution.
    pub first_ns: u64,
    pub last_ns: u64,
    pub at_ns: u64,
    pub by: ResolvedBy,
}

impl Recovery {
    /// From the first failure to the last.
    pub fn failing_ns(&self) -> u64 {
        self.last_ns.saturating_sub(self.first_ns)
    }
}

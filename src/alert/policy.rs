//! Which failures become alerts: the first failure to a destination at
//! once, in full; further failures to it counted for one window and then
//! summarised; one summary per window for as long as it keeps failing.
//! Pure: the caller passes the time, so tests use a fake clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::event::{Comm, Failure, Reason};

/// A destination as alerts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
}

/// A process seen failing, and how often, in a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub comm: Comm,
    pub pid: u32,
    pub count: u64,
}

/// Further failures to one destination (or, for `dest: None`, to the
/// destinations that did not fit in the table) during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dest: Option<Dest>,
    pub count: u64,
    pub window_ns: u64,
    /// Reasons seen, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
    /// Processes seen, most frequent first, at most [`MAX_PROCS`].
    pub procs: Vec<Proc>,
    /// Failures from processes beyond those listed.
    pub other_procs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// The first failure to a destination.
    First(Failure),
    Summary(Summary),
    /// A destination that stopped failing (see `resolve`).
    Resolved(super::resolve::Recovery),
}

impl Alert {
    /// How many failures the alert stands for.
    pub fn failures(&self) -> u64 {
        match self {
            Alert::First(_) => 1,
            Alert::Summary(s) => s.count,
            Alert::Resolved(_) => 0,
        }
    }
}

pub const MAX_PROCS: usize = 5;
const REASONS: [Reason; 7] = [
    Reason::Refused,
    Reason::Timeout,
    Reason::HostUnreachable,
    Reason::NetUnreachable,
    Reason::Reset,
    Reason::Canceled,
    Reason::Error,
];

#[derive(Debug, Default)]
struct Window {
    ends_ns: u64,
    count: u64,
    reasons: [u64; REASONS.len()],
    procs: Vec<Proc>,
    other_procs: u64,
}

impl Window {
    fn new(ends_ns: u64) -> Self {
        Window {
            ends_ns,
            ..Default::default()
        }
    }

    fn add(&mut self, f: &Failure) {
        self.count += 1;
        let r = REASONS.iter().position(|r| *r == f.reason).unwrap_or(6);
        self.reasons[r] += 1;
        if let Some(p) = self
            .procs
            .iter_mut()
            .find(|p| p.pid == f.pid && p.comm == f.comm)
        {
            p.count += 1;
        } else if self.procs.len() < MAX_PROCS {
            self.procs.push(Proc {
                comm: f.comm,
                pid: f.pid,
                count: 1,
            });
        } else {
            self.other_procs += 1;
        }
    }

    fn summary(&mut self, dest: Option<Dest>, window_ns: u64) -> Summary {
        let mut reasons: Vec<(Reason, u64)> = REASONS
            .iter()
            .zip(self.reasons)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
            .collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut procs = std::mem::take(&mut self.procs);
        procs.sort_by_key(|p| std::cmp::Reverse(p.count));
        Summary {
            dest,
            count: self.count,
            window_ns,
            reasons,
            procs,
            other_procs: self.other_procs,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PolicyStats {
    pub firsts: u64,
    pub summaries: u64,
    /// Failures counted into a summary instead of alerting on their own.
    pub summarised: u64,
}

pub struct Policy {
    window_ns: u64,
    max_dests: usize,
    dests: HashMap<Dest, Window>,
    /// Destinations beyond `max_dests`, aggregated together.
    overflow: Option<Window>,
    /// When each window ends, in the order they end: windows are opened
    /// with a non-decreasing `now`, so this is sorted, and `tick` looks at
    /// its front only. An entry whose window has since moved on is stale.
    ends: VecDeque<(u64, Option<Dest>)>,
    stats: PolicyStats,
}

impl Policy {
    pub fn new(window_ns: u64, max_dests: usize) -> Self {
        Policy {
            window_ns,
            max_dests,
            dests: HashMap::new(),
            overflow: None,
            ends: VecDeque::new(),
            stats: PolicyStats::default(),
        }
    }

    pub fn stats(&self) -> PolicyStats {
        self.stats
    }

    fn open(&mut self, key: Option<Dest>, now_ns: u64) -> Window {
        let ends = now_ns.saturating_add(self.window_ns);
        self.ends.push_back((ends, key));
        Window::new(ends)
    }

    /// A failure seen at `now_ns`: the alert to send now, if any.
    pub fn on_failure(&mut self, f: &Failure, now_ns: u64) -> Option<Alert> {
        let dest = Dest {
            addr: f.daddr,
            port: f.dport,
        };
        if let Some(w) = self.dests.get_mut(&dest) {
            w.add(f);
            self.stats.summarised += 1;
            return None;
        }
        if self.dests.len() >= self.max_dests {
            // Too many destinations failing at once: the rest share one
            // window, so memory and alert volume stay bounded.
            if let Some(w) = &mut self.overflow {
                w.add(f);
                self.stats.summarised += 1;
                return None;
            }
            self.overflow = Some(self.open(None, now_ns));
            self.stats.firsts += 1;
            return Some(Alert::First(*f));
        }
        let w = self.open(Some(dest), now_ns);
        self.dests.insert(dest, w);
        self.stats.firsts += 1;
        Some(Alert::First(*f))
    }

    /// Ends the windows due by `now_ns`: a summary for each that counted
    /// failures (and a new window, as it is still failing); a quiet one is
    /// forgotten, so its next failure alerts at once again. O(1) when
    /// nothing is due: the daemon calls it after every drain.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        while let Some(&(ends, key)) = self.ends.front() {
            if ends > now_ns {
                break;
            }
            self.ends.pop_front();
            let slot = match key {
                Some(d) => self.dests.get_mut(&d),
                None => self.overflow.as_mut(),
            };
            let Some(w) = slot else { continue };
            if w.ends_ns != ends {
                continue; // stale: this window was renewed later
            }
            if w.count == 0 {
                match key {
                    Some(d) => {
                        self.dests.remove(&d);
                    }
                    None => self.overflow = None,
                }
                continue;
            }
            out.push(Alert::Summary(w.summary(key, self.window_ns)));
            self.stats.summaries += 1;
            let renewed = self.open(key, now_ns);
            match key {
                Some(d) => self.dests.insert(d, renewed),
                None => self.overflow.replace(renewed),
            };
        }
    }

    /// At shutdown: summaries of every open window that counted failures.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        let window_ns = self.window_ns;
        for (d, w) in self.dests.iter_mut() {
            if w.count > 0 {
                out.push(Alert::Summary(w.summary(Some(*d), window_ns)));
                self.stats.summaries += 1;
            }
        }
        if let Some(w) = &mut self.overflow {
            if w.count > 0 {
                out.push(Alert::Summary(w.summary(None, window_ns)));
                self.stats.summaries += 1;
            }
        }
        self.dests.clear();
        self.overflow = None;
        self.ends.clear();
    }

    /// When the next window ends, for the caller's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.ends.front().map(|e| e.0)
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.dests.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;

    const S: u64 = 1_000_000_000;

    fn failure(daddr: &str, port: u16, reason: Reason, comm: &[u8], pid: u32) -> Failure {
        Failure {
            pid,
            comm: Comm::new(comm),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            sport: None,
            daddr: daddr.parse().unwrap(),
            dport: port,
            reason,
            errno: 0,
            ts_ns: 0,
            duration_ns: 0,
        }
    }

    fn summaries(out: &[Alert]) -> Vec<&Summary> {
        out.iter()
            .filter_map(|a| match a {
                Alert::Summary(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_alerts_at_once_then_one_summary_per_window() {
        let mut p = Policy::new(60 * S, 100);
        let f = failure("192.0.2.9", 443, Reason::Refused, b"curl", 10);
        assert_eq!(p.on_failure(&f, 0), Some(Alert::First(f)));
        for i in 1..=1999u64 {
            let reason = if i % 2 == 0 {
                Reason::Refused
            } else {
                Reason::Timeout
            };
            let comm: &[u8] = if i % 3 == 0 { b"wget" } else { b"curl" };
            let g = failure("192.0.2.9", 443, reason, comm, 10 + (i % 3 == 0) as u32);
            assert_eq!(p.on_failure(&g, i * S / 100), None);
        }
        let mut out = Vec::new();
        p.tick(59 * S, &mut out);
        assert!(out.is_empty(), "window not over yet");
        assert_eq!(p.next_deadline(), Some(60 * S));
        p.tick(60 * S, &mut out);
        let s = summaries(&out);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 1999);
        assert_eq!(
            s[0].reasons,
            vec![(Reason::Timeout, 1000), (Reason::Refused, 999)]
        );
        assert_eq!(s[0].procs.len(), 2);
        assert_eq!(s[0].procs[0].comm, Comm::new(b"curl"));
        assert_eq!(s[0].procs[0].count, 1333);
        assert_eq!(s[0].procs[1].count, 666);
        // Still failing: the next window gets its own summary.
        out.clear();
        p.on_failure(&f, 61 * S);
        p.on_failure(&f, 62 * S);
        p.tick(120 * S, &mut out);
        assert_eq!(summaries(&out)[0].count, 2);
        // A quiet window forgets the destination: the next failure is new.
        out.clear();
        p.tick(180 * S, &mut out);
        assert!(out.is_empty());
        assert_eq!(p.tracked(), 0);
        assert_eq!(p.on_failure(&f, 181 * S), Some(Alert::First(f)));
        assert_eq!(
            p.stats(),
            PolicyStats {
                firsts: 2,
                summaries: 2,
                summarised: 2001
            }
        );
    }

    #[test]
    fn a_single_failure_gives_no_summary() {
        let mut p = Policy::new(3 * S, 100);
        let f = failure("192.0.2.9", 80, Reason::Timeout, b"app", 1);
        assert!(p.on_failure(&f, 0).is_some());
        let mut out = Vec::new();
        p.tick(10 * S, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn destinations_are_independent_and_keyed_by_port() {
        let mut p = Policy::new(60 * S, 100);
        let a = failure("192.0.2.9", 80, Reason::Refused, b"a", 1);
        let b = failure("192.0.2.9", 81, Reason::Refused, b"a", 1);
        let c = failure("2001:db8::1", 80, Reason::Refused, b"a", 1);
        assert!(p.on_failure(&a, 0).is_some());
        assert!(p.on_failure(&b, 0).is_some());
        assert!(p.on_failure(&c, 0).is_some());
        assert!(p.on_failure(&a, 1).is_none());
        assert_eq!(p.tracked(), 3);
    }

    #[test]
    fn processes_beyond_the_limit_are_counted_together() {
        let mut p = Policy::new(10 * S, 100);
        p.on_failure(&failure("192.0.2.9", 80, Reason::Refused, b"p", 0), 0);
        for pid in 1..=8 {
            p.on_failure(&failure("192.0.2.9", 80, Reason::Refused, b"p", pid), 1);
        }
        let mut out = Vec::new();
        p.flush(&mut out);
        let s = summaries(&out);
        assert_eq!(s[0].procs.len(), MAX_PROCS);
        assert_eq!(s[0].other_procs, 3);
        assert_eq!(s[0].count, 8);
    }

    #[test]
    fn a_full_table_aggregates_the_rest() {
        let mut p = Policy::new(10 * S, 2);
        for i in 0..2 {
            let f = failure(&format!("192.0.2.{i}"), 80, Reason::Refused, b"x", 1);
            assert!(p.on_failure(&f, 0).is_some());
        }
        // The third destination alerts (nothing was said of it); the ones
        // after it are counted into one overflow summary.
        let f = failure("192.0.2.50", 80, Reason::Refused, b"x", 1);
        assert!(p.on_failure(&f, 0).is_some());
        for i in 51..60 {
            let f = failure(&format!("192.0.2.{i}"), 80, Reason::Timeout, b"x", 1);
            assert!(p.on_failure(&f, 1).is_none());
        }
        let mut out = Vec::new();
        p.tick(10 * S, &mut out);
        let s = summaries(&out);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].dest, None);
        assert_eq!(s[0].count, 9);
        assert_eq!(p.tracked(), 0);
    }

    #[test]
    fn flush_summarises_open_windows() {
        let mut p = Policy::new(60 * S, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        p.on_failure(&f, 0);
        p.on_failure(&f, 1);
        let mut out = Vec::new();
        p.flush(&mut out);
        assert_eq!(summaries(&out)[0].count, 1);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn summaries_are_counted_whatever_the_buffer_held() {
        let mut p = Policy::new(10 * S, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        p.on_failure(&f, 0);
        p.on_failure(&f, 1);
        // The caller's buffer still holds alerts from before.
        let mut out = vec![Alert::First(f), Alert::First(f)];
        p.tick(10 * S, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(p.stats().summaries, 1);
    }

    #[test]
    fn time_at_the_end_of_the_clock_does_not_overflow() {
        let mut p = Policy::new(60 * S, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        assert!(p.on_failure(&f, u64::MAX - S).is_some());
        p.on_failure(&f, u64::MAX - 1);
        let mut out = Vec::new();
        p.tick(u64::MAX, &mut out);
        assert_eq!(summaries(&out).len(), 1);
        p.flush(&mut out);
        assert_eq!(p.next_deadline(), None);
    }
}

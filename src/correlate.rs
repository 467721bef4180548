//! SYN_SENT -> ESTABLISHED / SYN_SENT -> CLOSE correlation: a pure state
//! machine keyed by socket address. No I/O and no clock of its own: time
//! comes from the events and from the caller of [`Correlator::sweep`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::event::{Comm, Failure, Reason, StateChange, TcpState};

/// An attempt seen entering SYN_SENT, waiting for how it ends.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    ts_ns: u64,
    pid: u32,
    comm: Comm,
    saddr: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a conclusion (a new attempt, or an event outside SYN_SENT).
    Nothing,
    Established,
    Failed(Failure),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Attempts seen entering SYN_SENT.
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Pending longer than the maximum age, dropped unconcluded.
    pub evicted_age: u64,
    /// Not tracked because the table was full.
    pub evicted_full: u64,
    /// A socket address entered SYN_SENT again before its previous
    /// attempt was seen to end: the earlier one is abandoned.
    pub replaced: u64,
    /// Left SYN_SENT without a matching attempt (begun before start, lost
    /// to a ring-buffer drop, or older than the attempt on record).
    pub unmatched: u64,
}

/// Socket addresses are kernel pointers, not attacker-chosen keys, so a
/// multiply-xorshift is enough, and several times cheaper than SipHash on
/// a path taken twice per connection attempt.
#[derive(Default)]
struct SkHasher(u64);

impl Hasher for SkHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        // Pointers are aligned (low bits zero): mix high bits down too.
        let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct Correlator {
    pending: HashMap<u64, Attempt, BuildHasherDefault<SkHasher>>,
    max_pending: usize,
    max_age_ns: u64,
    last_full_sweep_ns: u64,
    counters: Counters,
}

const FULL_SWEEP_EVERY_NS: u64 = 1_000_000_000;

impl Correlator {
    pub fn new(max_pending: usize, max_age_ns: u64) -> Self {
        Correlator {
            pending: HashMap::with_capacity_and_hasher(max_pending.min(4096), Default::default()),
            max_pending,
            max_age_ns,
            last_full_sweep_ns: 0,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// One state change; `now_ns` is the caller's monotonic time.
    pub fn observe(&mut self, ev: &StateChange, now_ns: u64) -> Outcome {
        if ev.newstate == TcpState::SynSent {
            self.start(ev, now_ns);
            return Outcome::Nothing;
        }
        if ev.oldstate != TcpState::SynSent {
            return Outcome::Nothing;
        }
        let attempt = match self.pending.remove(&ev.skaddr) {
            Some(a) if a.ts_ns <= ev.ts_ns => a,
            // An event older than the attempt on record belongs to an earlier
            // socket at the same address: it must not end the newer one.
            Some(a) => {
                self.pending.insert(ev.skaddr, a);
                self.counters.unmatched += 1;
                return Outcome::Nothing;
            }
            None => {
                self.counters.unmatched += 1;
                return Outcome::Nothing;
            }
        };
        match ev.newstate {
            TcpState::Established => {
                self.counters.successes += 1;
                Outcome::Established
            }
            TcpState::Close => {
                self.counters.failures += 1;
                Outcome::Failed(failure(&attempt, ev))
            }
            // SYN_SENT only leads to ESTABLISHED or CLOSE; anything else
            // (a future kernel) ends the attempt without a verdict.
            _ => Outcome::Nothing,
        }
    }

    fn start(&mut self, ev: &StateChange, now_ns: u64) {
        self.counters.attempts += 1;
        let attempt = Attempt {
            ts_ns: ev.ts_ns,
            pid: ev.pid,
            comm: ev.comm,
            saddr: ev.saddr,
        };
        if self.pending.len() >= self.max_pending && !self.pending.contains_key(&ev.skaddr) {
            // A full table is swept for old attempts at most once a second:
            // a sweep is O(n), and a full table sees every new attempt.
            if now_ns.saturating_sub(self.last_full_sweep_ns) >= FULL_SWEEP_EVERY_NS {
                self.last_full_sweep_ns = now_ns;
                self.sweep(now_ns);
            }
            if self.pending.len() >= self.max_pending {
                self.counters.evicted_full += 1;
                return;
            }
        }
        if self.pending.insert(ev.skaddr, attempt).is_some() {
            self.counters.replaced += 1;
        }
    }

    /// Drops attempts pending for longer than the maximum age at `now_ns`
    /// (monotonic nanoseconds, the clock of the events).
    pub fn sweep(&mut self, now_ns: u64) {
        let max_age = self.max_age_ns;
        let before = self.pending.len();
        self.pending
            .retain(|_, a| now_ns.saturating_sub(a.ts_ns) <= max_age);
        self.counters.evicted_age += (before - self.pending.len()) as u64;
    }
}

fn failure(a: &Attempt, close: &StateChange) -> Failure {
    // pid and comm come from SYN_SENT: at CLOSE the current task is whoever
    // ran the timer or softirq (pid 0, a kernel worker).
    let saddr = if a.saddr.is_unspecified() {
        close.saddr
    } else {
        a.saddr
    };
    Failure {
        pid: a.pid,
        comm: a.comm,
        family: close.family,
        saddr,
        sport: close.sport,
        daddr: close.daddr,
        dport: close.dport,
        reason: Reason::from_errno(close.sk_err),
        errno: close.sk_err,
        ts_ns: close.ts_ns,
        duration_ns: close.ts_ns.saturating_sub(a.ts_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;
    use TcpState::*;

    fn ev(skaddr: u64, ts_ns: u64, old: TcpState, new: TcpState, err: u32) -> StateChange {
        StateChange {
            skaddr,
            ts_ns,
            pid: if new == SynSent { 42 } else { 0 },
            comm: Comm::new(if new == SynSent {
                b"curl"
            } else {
                b"swapper/0"
            }),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            daddr: "192.0.2.2".parse().unwrap(),
            sport: None,
            dport: 443,
            oldstate: old,
            newstate: new,
            sk_err: err,
        }
    }

    fn corr() -> Correlator {
        Correlator::new(4, 1_000)
    }

    #[test]
    fn established_is_success() {
        let mut c = corr();
        assert_eq!(
            c.observe(&ev(1, 10, Close, SynSent, 0), 10),
            Outcome::Nothing
        );
        assert_eq!(
            c.observe(&ev(1, 20, SynSent, Established, 0), 20),
            Outcome::Established
        );
        // What follows an established connection is not an attempt's end.
        assert_eq!(
            c.observe(&ev(1, 30, Established, Close, 0), 30),
            Outcome::Nothing
        );
        let k = c.counters();
        assert_eq!((k.attempts, k.successes, k.failures), (1, 1, 0));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn close_is_failure_with_connecting_process() {
        let mut c = corr();
        c.observe(&ev(1, 100, Close, SynSent, 0), 100);
        let Outcome::Failed(f) = c.observe(&ev(1, 350, SynSent, Close, 111), 350) else {
            panic!("no failure");
        };
        assert_eq!(f.reason, Reason::Refused);
        assert_eq!(f.errno, 111);
        assert_eq!(f.pid, 42);
        assert_eq!(f.comm.to_string(), "curl");
        assert_eq!(f.duration_ns, 250);
        assert_eq!(f.dport, 443);
        assert_eq!(c.counters().failures, 1);
    }

    #[test]
    fn reused_address_starts_a_new_attempt() {
        let mut c = corr();
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        c.observe(&ev(1, 20, SynSent, Close, 111), 20);
        // Same socket address, next connection, milliseconds later.
        c.observe(&ev(1, 25, Close, SynSent, 0), 25);
        let Outcome::Failed(f) = c.observe(&ev(1, 40, SynSent, Close, 110), 40) else {
            panic!("no failure");
        };
        assert_eq!((f.reason, f.duration_ns), (Reason::Timeout, 15));
        // A SYN_SENT again without an end in between replaces the attempt.
        c.observe(&ev(2, 50, Close, SynSent, 0), 50);
        c.observe(&ev(2, 60, Close, SynSent, 0), 60);
        assert_eq!(c.counters().replaced, 1);
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn out_of_order_and_unmatched_events_are_counted_not_reported() {
        let mut c = corr();
        // Close of an attempt begun before we started.
        assert_eq!(
            c.observe(&ev(7, 5, SynSent, Close, 111), 5),
            Outcome::Nothing
        );
        // A stale close older than the attempt on record.
        c.observe(&ev(8, 100, Close, SynSent, 0), 100);
        assert_eq!(
            c.observe(&ev(8, 90, SynSent, Close, 111), 90),
            Outcome::Nothing
        );
        assert_eq!(c.counters().unmatched, 2);
        // The real end still concludes it.
        assert!(matches!(
            c.observe(&ev(8, 120, SynSent, Close, 111), 120),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn old_attempts_are_evicted_and_table_is_bounded() {
        const S: u64 = 1_000_000_000;
        let mut c = Correlator::new(4, S);
        for sk in 0..4 {
            c.observe(&ev(sk, 10, Close, SynSent, 0), 10);
        }
        // Full, nothing old enough: the new attempt is not tracked.
        c.observe(&ev(9, S / 2, Close, SynSent, 0), S / 2);
        assert_eq!(c.counters().evicted_full, 1);
        assert_eq!(c.pending(), 4);
        // Full; a sweep ran (or the table was made) less than a second
        // ago: no O(n) sweep per new attempt.
        c.observe(&ev(10, S - 1, Close, SynSent, 0), S - 1);
        assert_eq!(c.counters().evicted_full, 2);
        // Past a second, the sweep runs and the old attempts go.
        c.observe(&ev(10, 3 * S / 2, Close, SynSent, 0), 3 * S / 2);
        assert_eq!(c.counters().evicted_age, 4);
        assert_eq!(c.pending(), 1);
        c.sweep(3 * S);
        assert_eq!(c.counters().evicted_age, 5);
        assert_eq!(c.pending(), 0);
        // An evicted attempt's late end is unmatched, not a failure.
        assert_eq!(
            c.observe(&ev(10, 4 * S, SynSent, Close, 110), 4 * S),
            Outcome::Nothing
        );
    }
}

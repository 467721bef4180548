//! How attempts end: a pure state machine keyed by socket address. An
//! attempt starts when a socket enters SYN_SENT (or is found there at
//! start); it ends established, failed in the handshake, or failed in
//! connect() itself. No I/O and no clock of its own: time comes from the
//! events and from the caller.
//!
//! The table is bounded. When it is full, room is made from the source
//! (cgroup and uid) holding the most attempts, oldest first, so one noisy
//! client cannot push out another's attempts. An end whose start is not on
//! record is still reported, marked `Seen::Unmatched`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::event::hash::FastHash;
use crate::event::{
    Caller, Dropped, Failure, Family, Icmp, Kind, Reason, Record, Seen, Slow, Source, Stage,
    TcpState, TimeoutBy,
};

/// A socket found in SYN_SENT at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub skaddr: u64,
    pub family: Family,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub dport: u16,
    pub uid: u32,
}

/// An attempt seen entering SYN_SENT, waiting for how it ends.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    ts_ns: u64,
    caller: Option<Caller>,
    source: Source,
    family: Family,
    saddr: IpAddr,
    daddr: IpAddr,
    dport: u16,
    seen: Seen,
    /// An error reported while in SYN_SENT, which the application may read
    /// away (SO_ERROR) before it closes the socket.
    reported_err: u32,
    /// This host's netfilter dropped one of its SYNs.
    dropped: bool,
    /// The last ICMP error that reached it, with its sender.
    icmp: Option<Icmp>,
    /// The first of its packets this host dropped, and why.
    drop: Option<Dropped>,
    retransmits: u32,
    slow_said: bool,
}

// Failed carries a Failure by value (its inline DNS name makes it large):
// boxing it would allocate once per failure on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a conclusion (a new attempt, a note, or an event outside SYN_SENT).
    Nothing,
    Established(Connected),
    Failed(Failure),
}

/// A connection that was made: what a verdict on another attempt of the
/// same caller needs (see `verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connected {
    /// None when its start was not on record.
    pub caller: Option<Caller>,
    pub family: Family,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Monotonic ns of its SYN_SENT (its end when not on record) and of
    /// its ESTABLISHED.
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Attempts seen: entering SYN_SENT, or failing in connect() before.
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Pending longer than the maximum age, dropped unconcluded.
    pub evicted_age: u64,
    /// Made room for another attempt while the table was full.
    pub evicted_full: u64,
    /// A socket address entered SYN_SENT again before its previous
    /// attempt was seen to end: the earlier one is abandoned.
    pub replaced: u64,
    /// Ends without a start on record (reported as `Seen::Unmatched`).
    pub unmatched: u64,
    /// Attempts found in SYN_SENT at start.
    pub at_start: u64,
}

/// One source's attempts, oldest first. Entries of attempts that have
/// ended stay until they reach the front, or until the queue is compacted.
#[derive(Debug, Default)]
struct SourceQueue {
    live: usize,
    order: VecDeque<(u64, u64)>, // (ts_ns, skaddr)
}

pub struct Correlator {
    pending: HashMap<u64, Attempt, FastHash>,
    /// Each source's attempts, for making room fairly. Kept only while
    /// `tracking`: from the moment the table is full until it is back under
    /// half full. Otherwise every attempt paid two more lookups for a
    /// table that is almost never full (a fifth of the loop's CPU in a
    /// storm); building them from `pending` when it fills is amortized
    /// over the half table of attempts it takes to get there.
    sources: HashMap<Source, SourceQueue, FastHash>,
    tracking: bool,
    /// The source room was last made from, and how often since it was
    /// found the largest (it is looked for again now and then).
    hog: Option<(Source, u32)>,
    max_pending: usize,
    max_age_ns: u64,
    counters: Counters,
}

impl Correlator {
    pub fn new(max_pending: usize, max_age_ns: u64) -> Self {
        Correlator {
            // Not sized ahead: a small table stays in cache while few attempts
            // are pending, which is most of the time.
            pending: HashMap::default(),
            sources: HashMap::default(),
            tracking: false,
            hog: None,
            max_pending,
            max_age_ns,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// One record; `now_ns` is the caller's monotonic time.
    pub fn observe(&mut self, ev: &Record, now_ns: u64) -> Outcome {
        match ev.kind {
            Kind::State => self.state(ev, now_ns),
            Kind::ConnectErr => self.connect_err(ev),
            // After the attempt ended: see `established`.
            Kind::Broken => Outcome::Nothing,
            Kind::SkError | Kind::Drop | Kind::Retrans | Kind::Icmp | Kind::SkbDrop => {
                if let Some(a) = self.pending.get_mut(&ev.skaddr) {
                    match ev.kind {
                        Kind::SkError => a.reported_err = ev.sk_err,
                        // The first drop is the cause; the kernel may free
                        // the same packet again with a vaguer reason.
                        Kind::Drop => {
                            a.dropped = true;
                            a.drop = a.drop.or(Dropped::from_record(ev));
                        }
                        Kind::SkbDrop => a.drop = a.drop.or(Dropped::from_record(ev)),
                        Kind::Icmp => a.icmp = Icmp::from_record(ev),
                        _ => a.retransmits += 1,
                    }
                }
                Outcome::Nothing
            }
        }
    }

    fn state(&mut self, ev: &Record, now_ns: u64) -> Outcome {
        if ev.newstate == TcpState::SynSent {
            self.counters.attempts += 1;
            let attempt = Attempt {
                ts_ns: ev.ts_ns,
                caller: Some(ev.caller),
                source: ev.caller.source(),
                family: ev.family,
                saddr: ev.saddr,
                daddr: ev.daddr,
                dport: ev.dport,
                seen: Seen::Live,
                reported_err: 0,
                dropped: false,
                icmp: None,
                drop: None,
                retransmits: 0,
                slow_said: false,
            };
            self.start(ev.skaddr, attempt, now_ns);
            return Outcome::Nothing;
        }
        if ev.oldstate != TcpState::SynSent {
            return Outcome::Nothing;
        }
        let attempt = match self.pending.entry(ev.skaddr) {
            // An event older than the attempt on record belongs to an
            // earlier socket at the same address: it must not end the newer.
            Entry::Occupied(o) if !(o.get().ts_ns > ev.ts_ns && o.get().seen == Seen::Live) => {
                let a = o.remove();
                self.left(&a, ev.skaddr);
                Some(a)
            }
            _ => None,
        };
        match ev.newstate {
            TcpState::Established => {
                if attempt.is_none() {
                    self.counters.unmatched += 1;
                }
                self.counters.successes += 1;
                Outcome::Established(Connected {
                    caller: attempt.as_ref().and_then(|a| a.caller),
                    family: ev.family,
                    daddr: ev.daddr,
                    dport: ev.dport,
                    start_ns: attempt.as_ref().map_or(ev.ts_ns, |a| a.ts_ns),
                    end_ns: ev.ts_ns,
                })
            }
            TcpState::Close => {
                self.counters.failures += 1;
                if attempt.is_none() {
                    self.counters.unmatched += 1;
                }
                Outcome::Failed(handshake_failure(attempt.as_ref(), ev))
            }
            // SYN_SENT only leads to ESTABLISHED or CLOSE; anything else
            // (a future kernel) ends the attempt without a verdict.
            _ => Outcome::Nothing,
        }
    }

    /// connect() failed, and the state path did not report it: either no
    /// SYN_SENT at all, or one that closed again inside connect().
    fn connect_err(&mut self, ev: &Record) -> Outcome {
        let attempt = if ev.skaddr != 0 {
            self.take(ev.skaddr)
        } else {
            None
        };
        if attempt.is_none() {
            self.counters.attempts += 1;
        }
        self.counters.failures += 1;
        let (caller, duration_ns, saddr) = match &attempt {
            Some(a) => (a.caller, ev.ts_ns.saturating_sub(a.ts_ns), a.saddr),
            None => (Some(ev.caller), 0, ev.saddr),
        };
        let reason = Reason::from_errno(ev.sk_err);
        Outcome::Failed(Failure {
            caller,
            family: ev.family,
            saddr,
            sport: ev.sport,
            daddr: ev.daddr,
            dport: ev.dport,
            reason,
            errno: ev.sk_err,
            stage: Stage::Connect,
            seen: attempt.map_or(Seen::Live, |a| a.seen),
            ts_ns: ev.ts_ns,
            duration_ns,
            retransmits: 0,
            timeout_by: (reason == Reason::Timeout).then_some(TimeoutBy::Kernel),
            icmp: None,
            dropped: None,
            rst_ttl: None,
            dname: None,
        })
    }

    /// An attempt found in SYN_SENT at start; `caller` is its owner when
    /// /proc told, `uid` the socket's.
    pub fn seed(&mut self, found: &Found, caller: Option<Caller>, now_ns: u64) {
        let uid = found.uid;
        self.counters.at_start += 1;
        let source = caller.map_or(Source { cgroup_id: 0, uid }, |c| c.source());
        let attempt = Attempt {
            ts_ns: now_ns,
            caller,
            source,
            family: found.family,
            saddr: found.saddr,
            daddr: found.daddr,
            dport: found.dport,
            seen: Seen::AtStart,
            reported_err: 0,
            dropped: false,
            icmp: None,
            drop: None,
            retransmits: 0,
            slow_said: false,
        };
        self.start(found.skaddr, attempt, now_ns);
    }

    fn start(&mut self, skaddr: u64, attempt: Attempt, now_ns: u64) {
        if self.pending.len() >= self.max_pending
            && !self.pending.contains_key(&skaddr)
            && !self.make_room(attempt.source, now_ns)
        {
            self.counters.evicted_full += 1;
            return;
        }
        // One lookup: this runs for every attempt.
        if let Some(old) = self.pending.insert(skaddr, attempt) {
            // A seeded attempt seen again by the tracepoint is the same one.
            if old.seen != Seen::AtStart {
                self.counters.replaced += 1;
            }
            self.left(&old, skaddr);
        }
        if self.tracking {
            self.track(skaddr, &attempt);
        }
    }

    /// Counts a new attempt in its source's queue (while tracking).
    fn track(&mut self, skaddr: u64, attempt: &Attempt) {
        // Sources left empty wait for the sweep (see `left`), but never
        // more than 1024 beyond the most there can be with attempts.
        if self.sources.len() >= self.max_pending + 1024 {
            self.sources.retain(|_, q| q.live > 0);
        }
        let q = self.sources.entry(attempt.source).or_default();
        q.live += 1;
        q.order.push_back((attempt.ts_ns, skaddr));
        // Ended attempts leave entries behind: compact before they pile up.
        if q.order.len() > 2 * q.live + 64 {
            let pending = &self.pending;
            q.order
                .retain(|&(ts, sk)| pending.get(&sk).is_some_and(|a| a.ts_ns == ts));
        }
    }

    /// The table filled: the sources' queues, from what is pending.
    fn start_tracking(&mut self) {
        self.tracking = true;
        self.sources.clear();
        self.hog = None;
        let mut all: Vec<(u64, u64, Source)> = self
            .pending
            .iter()
            .map(|(&sk, a)| (a.ts_ns, sk, a.source))
            .collect();
        all.sort_unstable_by_key(|&(ts, sk, _)| (ts, sk));
        for (ts, sk, source) in all {
            let q = self.sources.entry(source).or_default();
            q.live += 1;
            q.order.push_back((ts, sk));
        }
    }

    /// Removes an attempt from the table (and its source's count).
    fn take(&mut self, skaddr: u64) -> Option<Attempt> {
        let a = self.pending.remove(&skaddr)?;
        self.left(&a, skaddr);
        Some(a)
    }

    /// An attempt left the table: its source holds one fewer. A source
    /// left with none keeps its (emptied) queue until the next sweep: a
    /// client connecting one attempt at a time would otherwise allocate
    /// and free a queue per attempt.
    fn left(&mut self, a: &Attempt, skaddr: u64) {
        if !self.tracking {
            return;
        }
        if self.pending.len() < self.max_pending / 2 {
            self.tracking = false;
            self.sources.clear();
            self.hog = None;
            return;
        }
        if let Some(q) = self.sources.get_mut(&a.source) {
            q.live -= 1;
            if q.live == 0 {
                q.order.clear();
            } else if q.order.front() == Some(&(a.ts_ns, skaddr)) {
                // Attempts mostly end in the order they began.
                q.order.pop_front();
            }
        }
    }

    /// A full table: drops attempts past the maximum age, else the oldest
    /// attempt of the source holding the most. True when there is room.
    fn make_room(&mut self, incoming: Source, now_ns: u64) -> bool {
        if !self.tracking {
            self.start_tracking();
        }
        // The source found largest last time is still the one to take
        // from while it holds more than the newcomer's source (or is it);
        // it is looked for afresh now and then, as others grow.
        let incoming_live = self.sources.get(&incoming).map_or(0, |q| q.live);
        let cached = self.hog.filter(|&(s, n)| {
            n < 1024
                && (s == incoming || self.sources.get(&s).is_some_and(|q| q.live > incoming_live))
        });
        let hog = match cached {
            Some((s, n)) => {
                self.hog = Some((s, n + 1));
                s
            }
            None => {
                let Some((&s, _)) = self.sources.iter().max_by_key(|(_, q)| q.live) else {
                    return false;
                };
                self.hog = Some((s, 0));
                s
            }
        };
        // The largest source's oldest attempt that is still pending.
        loop {
            let Some(q) = self.sources.get_mut(&hog) else {
                return false;
            };
            let Some((ts, sk)) = q.order.pop_front() else {
                return false;
            };
            if self.pending.get(&sk).is_some_and(|a| a.ts_ns == ts) {
                let a = self.take(sk).expect("pending");
                if now_ns.saturating_sub(a.ts_ns) > self.max_age_ns {
                    self.counters.evicted_age += 1;
                } else {
                    self.counters.evicted_full += 1;
                }
                return true;
            }
        }
    }

    /// Drops attempts pending for longer than the maximum age at `now_ns`.
    pub fn sweep(&mut self, now_ns: u64) {
        let max_age = self.max_age_ns;
        let old: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, a)| now_ns.saturating_sub(a.ts_ns) > max_age)
            .map(|(&sk, _)| sk)
            .collect();
        for sk in old {
            self.take(sk);
            self.counters.evicted_age += 1;
        }
        self.sources.retain(|_, q| q.live > 0);
    }

    /// Attempts in SYN_SENT for `after_ns` or more that were not said to
    /// be slow yet: each is said once. A scan of the table, so the caller
    /// runs it a few times a second, not per event.
    pub fn slow(&mut self, now_ns: u64, after_ns: u64, out: &mut Vec<(u64, Slow)>) {
        for (&sk, a) in self.pending.iter_mut() {
            let elapsed = now_ns.saturating_sub(a.ts_ns);
            if a.slow_said || elapsed < after_ns {
                continue;
            }
            a.slow_said = true;
            out.push((
                sk,
                Slow {
                    caller: a.caller,
                    family: a.family,
                    saddr: a.saddr,
                    daddr: a.daddr,
                    dport: a.dport,
                    seen: a.seen,
                    ts_ns: now_ns,
                    elapsed_ns: elapsed,
                    retransmits: a.retransmits,
                    dname: None,
                },
            ));
        }
    }
}

fn handshake_failure(a: Option<&Attempt>, close: &Record) -> Failure {
    // The caller comes from SYN_SENT: at CLOSE the current task is whoever
    // ran the timer or softirq (pid 0, a kernel worker).
    let (caller, seen, ts0, dropped, reported_err, retransmits, saddr) = match a {
        Some(a) => (
            a.caller,
            a.seen,
            a.ts_ns,
            a.dropped,
            a.reported_err,
            a.retransmits,
            a.saddr,
        ),
        None => (None, Seen::Unmatched, close.ts_ns, false, 0, 0, close.saddr),
    };
    // sk_err (or, read in the kernel, sk_err_soft) at the close; else the
    // error reported while connecting, which the application read away.
    let errno = if close.sk_err != 0 {
        close.sk_err
    } else {
        reported_err
    };
    let duration_ns = close.ts_ns.saturating_sub(ts0);
    // The ICMP error is the failure's only where it made the errno the
    // application saw (not a later timeout or reset of its own).
    let icmp = a
        .and_then(|a| a.icmp)
        .filter(|i| i.errno == errno && !dropped);
    let (reason, timeout_by) = match Reason::from_errno(errno) {
        _ if dropped => (Reason::Denied, None),
        Reason::Timeout => (Reason::Timeout, Some(TimeoutBy::Kernel)),
        // Closed by the application with its SYN unanswered past what the
        // destination could still answer in: its own connect timeout.
        // Sooner, nothing is known of the destination (a Happy Eyeballs
        // loser, an exit): canceled.
        Reason::Canceled
            if seen != Seen::Unmatched
                && (retransmits > 0 || duration_ns >= ABANDONED_AS_TIMEOUT_NS) =>
        {
            (Reason::Timeout, Some(TimeoutBy::Application))
        }
        r => (r, None),
    };
    // The RST's TTL only where that RST made the errno (the kernel sends it
    // only for tcp_reset()'s errnos, and an ICMP error never calls it).
    let rst_ttl = close
        .rst_ttl
        .filter(|_| close.sk_err == errno && icmp.is_none() && !dropped);
    Failure {
        caller,
        family: close.family,
        saddr: if saddr.is_unspecified() {
            close.saddr
        } else {
            saddr
        },
        sport: close.sport,
        daddr: close.daddr,
        dport: close.dport,
        reason,
        errno,
        stage: Stage::Handshake,
        seen,
        ts_ns: close.ts_ns,
        duration_ns,
        retransmits,
        timeout_by,
        icmp,
        dropped: a.and_then(|a| a.drop),
        rst_ttl,
        dname: None,
    }
}

/// A SYN unanswered this long and then abandoned was the application's own
/// connect timeout. It is well past any Happy Eyeballs delay (RFC 8305
/// recommends 250 ms; curl waits 200 ms, Chrome 300 ms) and any usual
/// round trip, and below the 1 s timeouts clients commonly set: their
/// timer starts before connect(), so the attempt the kernel saw lasted a
/// little less than 1 s and must not read as `canceled`.
const ABANDONED_AS_TIMEOUT_NS: u64 = 500_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Comm;
    use TcpState::*;

    const S: u64 = 1_000_000_000;

    fn caller(pid: u32, cgroup_id: u64) -> Caller {
        Caller {
            pid,
            tid: pid,
            uid: 1000,
            cgroup_id,
            comm: Comm::new(b"curl"),
            process: Comm::new(b"curl"),
        }
    }

    fn rec(kind: Kind, skaddr: u64, ts_ns: u64, old: TcpState, new: TcpState, err: u32) -> Record {
        Record {
            kind,
            skaddr,
            ts_ns,
            caller: if new == SynSent || kind == Kind::ConnectErr {
                caller(42, 7)
            } else {
                Caller::default()
            },
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            daddr: "192.0.2.2".parse().unwrap(),
            sport: None,
            dport: 443,
            oldstate: old,
            newstate: new,
            sk_err: err,
            icmp_type: 0,
            icmp_code: 0,
            drop_reason: 0,
            bytes_acked: 0,
            bytes_received: 0,
            rst_ttl: None,
        }
    }

    /// An ICMP error from `from` (type 3, `code`) making errno `err`.
    fn icmp(skaddr: u64, ts_ns: u64, from: &str, code: u8, err: u32) -> Record {
        Record {
            saddr: from.parse().unwrap(),
            icmp_type: 3,
            icmp_code: code,
            ..rec(Kind::Icmp, skaddr, ts_ns, Close, Close, err)
        }
    }

    #[test]
    fn an_icmp_error_names_its_sender_when_it_made_the_errno() {
        let mut c = corr();
        // Admin-prohibited from a router, kept in sk_err_soft, read at close.
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        c.observe(&icmp(1, 11, "10.1.0.1", 13, 113), 11);
        let f = failed(c.observe(&ev(1, 12, SynSent, Close, 113), 12));
        assert_eq!(f.reason, Reason::HostUnreachable);
        let i = f.icmp.unwrap();
        assert_eq!(
            (i.from.to_string(), i.kind, i.code),
            ("10.1.0.1".into(), 3, 13)
        );
        assert_eq!(
            i.wording(f.daddr),
            "rejected by 10.1.0.1 (ICMP admin-prohibited), not by the destination"
        );
        // Read away with SO_ERROR: the close carries no error.
        c.observe(&ev(2, 10, Close, SynSent, 0), 10);
        c.observe(&icmp(2, 11, "10.1.0.1", 1, 113), 11);
        c.observe(&rec(Kind::SkError, 2, 11, Close, Close, 113), 11);
        let f = failed(c.observe(&ev(2, 12, SynSent, Close, 0), 12));
        assert_eq!(f.icmp.unwrap().code, 1);
        // An ICMP error that did not make the errno (a later RST) is not it.
        c.observe(&ev(3, 10, Close, SynSent, 0), 10);
        c.observe(&icmp(3, 11, "10.1.0.1", 1, 113), 11);
        let f = failed(c.observe(&ev(3, 12, SynSent, Close, 111), 12));
        assert_eq!((f.reason, f.icmp), (Reason::Refused, None));
        // A SYN dropped here for want of an ARP answer: kept, with the
        // next hop and device, for whatever errno follows.
        c.observe(&ev(5, 10, Close, SynSent, 0), 10);
        let mut d = rec(Kind::SkbDrop, 5, 11, Close, Close, 0);
        d.drop_reason = 52;
        d.saddr = "10.68.0.77".parse().unwrap();
        d.caller.comm = Comm::new(b"eth0");
        c.observe(&d, 11);
        let f = failed(c.observe(&ev(5, 12, SynSent, Close, 113), 12));
        assert_eq!(f.reason, Reason::HostUnreachable);
        let mut drop = f.dropped.unwrap();
        assert_eq!(drop.reason, 52);
        drop.name = Some("neigh_failed");
        assert_eq!(drop.wording(), "no ARP answer for 10.68.0.77 on eth0");
        // One for a socket with no attempt on record is dropped.
        c.observe(&icmp(4, 11, "10.1.0.1", 1, 113), 11);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_refusal_carries_its_rsts_ttl_only_where_that_rst_made_the_errno() {
        let mut c = corr();
        let refused = |skaddr, ttl| Record {
            rst_ttl: Some(ttl),
            ..ev(skaddr, 12, SynSent, Close, 111)
        };
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        let f = failed(c.observe(&refused(1, 63), 12));
        assert_eq!((f.reason, f.rst_ttl), (Reason::Refused, Some(63)));
        // Refused by an ICMP port-unreachable: no RST, whatever the record
        // says (a leftover could only be another socket's).
        c.observe(&ev(2, 10, Close, SynSent, 0), 10);
        c.observe(&icmp(2, 11, "10.1.0.1", 3, 111), 11);
        let f = failed(c.observe(&refused(2, 64), 12));
        assert_eq!((f.reason, f.rst_ttl), (Reason::Refused, None));
        // None seen (no trampoline): null.
        c.observe(&ev(3, 10, Close, SynSent, 0), 10);
        let f = failed(c.observe(&ev(3, 12, SynSent, Close, 111), 12));
        assert_eq!(f.rst_ttl, None);
    }

    fn ev(skaddr: u64, ts_ns: u64, old: TcpState, new: TcpState, err: u32) -> Record {
        rec(Kind::State, skaddr, ts_ns, old, new, err)
    }

    fn from(mut r: Record, pid: u32, cgroup: u64) -> Record {
        r.caller = caller(pid, cgroup);
        r
    }

    fn failed(o: Outcome) -> Failure {
        match o {
            Outcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
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
        assert!(matches!(
            c.observe(&ev(1, 20, SynSent, Established, 0), 20),
            Outcome::Established(Connected { dport: 443, .. })
        ));
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
    fn close_is_a_handshake_failure_of_the_connecting_process() {
        let mut c = corr();
        c.observe(&ev(1, 100, Close, SynSent, 0), 100);
        let f = failed(c.observe(&ev(1, 350, SynSent, Close, 111), 350));
        assert_eq!(
            (f.reason, f.errno, f.stage, f.seen),
            (Reason::Refused, 111, Stage::Handshake, Seen::Live)
        );
        assert_eq!(f.caller.unwrap().pid, 42);
        assert_eq!(f.duration_ns, 250);
        assert_eq!(f.dport, 443);
        assert_eq!(c.counters().failures, 1);
    }

    #[test]
    fn reused_address_starts_a_new_attempt() {
        let mut c = corr();
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        c.observe(&ev(1, 20, SynSent, Close, 111), 20);
        c.observe(&ev(1, 25, Close, SynSent, 0), 25);
        let f = failed(c.observe(&ev(1, 40, SynSent, Close, 110), 40));
        assert_eq!((f.reason, f.duration_ns), (Reason::Timeout, 15));
        c.observe(&ev(2, 50, Close, SynSent, 0), 50);
        c.observe(&ev(2, 60, Close, SynSent, 0), 60);
        assert_eq!(c.counters().replaced, 1);
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn an_end_without_a_start_is_still_reported_as_unmatched() {
        let mut c = corr();
        let f = failed(c.observe(&ev(7, 5, SynSent, Close, 111), 5));
        assert_eq!(
            (f.reason, f.seen, f.caller),
            (Reason::Refused, Seen::Unmatched, None)
        );
        // A stale close, older than the attempt on record, does not end it.
        c.observe(&ev(8, 100, Close, SynSent, 0), 100);
        let f = failed(c.observe(&ev(8, 90, SynSent, Close, 111), 100));
        assert_eq!(f.seen, Seen::Unmatched);
        assert_eq!(c.counters().unmatched, 2);
        let f = failed(c.observe(&ev(8, 120, SynSent, Close, 111), 120));
        assert_eq!(f.seen, Seen::Live);
    }

    #[test]
    fn connect_errors_are_connect_stage_failures() {
        let mut c = corr();
        // No route: no SYN_SENT at all.
        let f = failed(c.observe(&rec(Kind::ConnectErr, 9, 10, Close, Close, 101), 10));
        assert_eq!(
            (f.reason, f.stage, f.errno),
            (Reason::NetUnreachable, Stage::Connect, 101)
        );
        assert_eq!(f.caller.unwrap().pid, 42);
        // No local port: SYN_SENT, then closed inside connect() (the kernel
        // side leaves that close to the syscall's error).
        c.observe(&ev(3, 20, Close, SynSent, 0), 20);
        let f = failed(c.observe(&rec(Kind::ConnectErr, 3, 25, Close, Close, 99), 25));
        assert_eq!((f.reason, f.stage), (Reason::PortExhausted, Stage::Connect));
        assert_eq!(f.duration_ns, 5);
        assert_eq!(c.pending(), 0);
        let k = c.counters();
        assert_eq!((k.attempts, k.failures), (2, 2));
    }

    #[test]
    fn an_error_read_away_by_the_application_is_kept() {
        let mut c = corr();
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        c.observe(&rec(Kind::SkError, 1, 11, Close, Close, 113), 11);
        let f = failed(c.observe(&ev(1, 12, SynSent, Close, 0), 12));
        assert_eq!((f.reason, f.errno), (Reason::HostUnreachable, 113));
        // Without one, a close with no error is the application giving up.
        c.observe(&ev(2, 10, Close, SynSent, 0), 10);
        assert_eq!(
            failed(c.observe(&ev(2, 12, SynSent, Close, 0), 12)).reason,
            Reason::Canceled
        );
        // A client's 1 s timeout, started just before connect(): a timeout.
        c.observe(&ev(3, 10, Close, SynSent, 0), 10);
        let f = failed(c.observe(&ev(3, 10 + 999_586_000, SynSent, Close, 0), 999_586_010));
        assert_eq!(
            (f.reason, f.timeout_by),
            (Reason::Timeout, Some(TimeoutBy::Application))
        );
    }

    #[test]
    fn a_syn_dropped_here_is_denied_with_the_application_errno() {
        let mut c = corr();
        c.observe(&ev(1, 10, Close, SynSent, 0), 10);
        c.observe(&rec(Kind::Drop, 1, 11, Close, Close, 0), 11);
        c.observe(&rec(Kind::Retrans, 1, 12, Close, Close, 0), 12);
        c.observe(&rec(Kind::Drop, 1, 12, Close, Close, 0), 12);
        let f = failed(c.observe(&ev(1, 3 * S, SynSent, Close, 110), 3 * S));
        assert_eq!((f.reason, f.errno, f.retransmits), (Reason::Denied, 110, 1));
    }

    #[test]
    fn slow_attempts_are_said_once() {
        let mut c = Correlator::new(16, 300 * S);
        c.observe(&ev(1, 0, Close, SynSent, 0), 0);
        c.observe(&ev(2, 2 * S, Close, SynSent, 0), 2 * S);
        let mut out = Vec::new();
        c.slow(S, 3 * S, &mut out);
        assert!(out.is_empty());
        c.slow(3 * S, 3 * S, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].0, out[0].1.elapsed_ns, out[0].1.dport),
            (1, 3 * S, 443)
        );
        c.slow(4 * S, 3 * S, &mut out);
        assert_eq!(out.len(), 1, "once only");
        // Its failure still comes after.
        assert!(matches!(
            c.observe(&ev(1, 5 * S, SynSent, Close, 110), 5 * S),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn attempts_found_at_start_are_concluded_and_marked() {
        let mut c = corr();
        let found = Found {
            skaddr: 5,
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            daddr: "192.0.2.2".parse().unwrap(),
            dport: 443,
            uid: 1000,
        };
        c.seed(&found, Some(caller(77, 9)), 100);
        // The tracepoint's own SYN_SENT of the same socket is no replacement.
        let f = failed(c.observe(&ev(5, 200, SynSent, Close, 111), 200));
        assert_eq!(
            (f.seen, f.caller.unwrap().pid, f.duration_ns),
            (Seen::AtStart, 77, 100)
        );
        assert_eq!(c.counters().replaced, 0);
    }

    #[test]
    fn a_full_table_makes_room_from_the_largest_source_oldest_first() {
        let mut c = Correlator::new(8, 300 * S);
        // The flooder (cgroup 1) fills the table.
        for sk in 0..8 {
            c.observe(&from(ev(100 + sk, sk, Close, SynSent, 0), 1, 1), sk);
        }
        // The victim (cgroup 2) still gets its attempts tracked...
        for sk in 0..3 {
            c.observe(
                &from(ev(200 + sk, 10 + sk, Close, SynSent, 0), 2, 2),
                10 + sk,
            );
        }
        assert_eq!(c.pending(), 8);
        assert_eq!(c.counters().evicted_full, 3);
        // ...at the flooder's expense, oldest first.
        for sk in 0..3 {
            assert_eq!(
                c.observe(&ev(100 + sk, 20, SynSent, Close, 111), 20)
                    .failure_seen(),
                Some(Seen::Unmatched)
            );
        }
        for sk in 0..3 {
            let f = failed(c.observe(&ev(200 + sk, 30, SynSent, Close, 111), 30));
            assert_eq!((f.seen, f.caller.unwrap().pid), (Seen::Live, 2));
        }
        // The flooder's newest are kept too.
        assert_eq!(
            failed(c.observe(&ev(107, 40, SynSent, Close, 111), 40)).seen,
            Seen::Live
        );
        // More flooding only ever pushes out the flooder's own.
        for sk in 300..400 {
            c.observe(&from(ev(sk, 50, Close, SynSent, 0), 1, 1), 50);
        }
        c.observe(&from(ev(500, 60, Close, SynSent, 0), 2, 2), 60);
        assert_eq!(
            failed(c.observe(&ev(500, 70, SynSent, Close, 111), 70)).seen,
            Seen::Live
        );
    }

    /// The per-source queues exist only while the table is full or was
    /// until it fell under half: fairness must hold on each filling.
    #[test]
    fn a_table_that_fills_again_is_shared_fairly_again() {
        let mut c = Correlator::new(8, 300 * S);
        for round in 0..2u64 {
            let base = 1000 * (round + 1);
            // The flooder (cgroup 1) fills the table, oldest first.
            for i in 0..8 {
                c.observe(&from(ev(base + i, base + i, Close, SynSent, 0), 1, 1), base);
            }
            // The victim's attempt is kept, at the flooder's oldest's expense.
            c.observe(
                &from(ev(base + 100, base + 50, Close, SynSent, 0), 2, 2),
                base,
            );
            assert_eq!(c.pending(), 8);
            let f = c.observe(&ev(base, base + 60, SynSent, Close, 111), base);
            assert_eq!(f.failure_seen(), Some(Seen::Unmatched), "round {round}");
            let f = failed(c.observe(&ev(base + 100, base + 60, SynSent, Close, 111), base));
            assert_eq!(
                (f.seen, f.caller.unwrap().pid),
                (Seen::Live, 2),
                "round {round}"
            );
            // Every other attempt ends: the table empties.
            for i in 1..8 {
                c.observe(&ev(base + i, base + 70, SynSent, Close, 111), base);
            }
            assert_eq!(c.pending(), 0);
        }
        assert_eq!(c.counters().evicted_full, 2);
    }

    #[test]
    fn old_attempts_are_swept() {
        let mut c = Correlator::new(4, S);
        for sk in 0..4 {
            c.observe(&ev(sk, 10, Close, SynSent, 0), 10);
        }
        c.sweep(S / 2);
        assert_eq!(c.pending(), 4);
        c.sweep(2 * S);
        assert_eq!((c.pending(), c.counters().evicted_age), (0, 4));
        // An evicted attempt's late end is reported, unmatched.
        assert_eq!(
            failed(c.observe(&ev(1, 3 * S, SynSent, Close, 110), 3 * S)).seen,
            Seen::Unmatched
        );
    }

    impl Outcome {
        fn failure_seen(&self) -> Option<Seen> {
            match self {
                Outcome::Failed(f) => Some(f.seen),
                _ => None,
            }
        }
    }
}

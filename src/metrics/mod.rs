//! Prometheus metrics. Counting is pure and owned by the event loop
//! ([`Metrics`], driven by `Engine`): plain maps keyed by small `Copy`
//! keys, one hash lookup and no allocation per failure once a series
//! exists. Nothing is shared per event: when a scrape comes, the server
//! raises a flag, the loop copies its counts into a [`Shared`] snapshot
//! after its next drain (reusing the snapshot's buffers), and the server
//! encodes that (see `server`). A scraper can never hold up the loop.

pub mod counters;
pub mod server;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::alert::policy::Dest;
use crate::event::hash::FastHash;
use crate::event::{Failure, Reason};

/// Upper bounds of the failure-duration histogram, in nanoseconds: a
/// refusal takes well under a millisecond on a LAN, a timeout seconds
/// (1 s, 3 s, 7 s, … with the SYN retries), up to 127 s by default.
pub const BUCKETS_NS: [u64; 14] = [
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    3_500_000_000,
    7_500_000_000,
    15_500_000_000,
    31_500_000_000,
    130_000_000_000,
];

/// The attribution of a failure (systemd unit or container), interned:
/// 0 is "none known" and shows as an empty label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UnitId(pub u32);

/// One `tcpstate_connect_failures_total` series: `dest` None is
/// `destination="other"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FailKey {
    pub reason: u8,
    /// The application recovered from it (`outcome="recovered"`), or not
    /// (`failed`): see `pipeline::verdict`.
    pub recovered: bool,
    pub dest: Option<Dest>,
    pub unit: UnitId,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// Per bucket (not cumulative), plus the +Inf overflow at the end.
    pub buckets: [u64; BUCKETS_NS.len() + 1],
    pub count: u64,
    pub sum_ns: u64,
}

impl Histogram {
    fn observe(&mut self, ns: u64) {
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }
}

/// A failure series' count, and when it last counted (the failures'
/// running number), so the least recently updated fold first.
#[derive(Debug, Clone, Copy)]
struct Series {
    n: u64,
    last: u64,
}

/// The most `tcpstate_connect_failures_total` series: each label is
/// bounded alone, but units × destinations would multiply (512 × 1000 × 9
/// reasons × 2 outcomes). At about 110 bytes a series, a scrape at the cap
/// is about 1.1 MB.
pub const MAX_SERIES: usize = 10_000;
/// Folded at once when the cap is reached, so the scan for the least
/// recently updated is paid once per this many new series.
const FOLD_BATCH: usize = MAX_SERIES / 10;

/// The counts, owned by the event loop.
#[derive(Debug)]
pub struct Metrics {
    max_dests: usize,
    max_series: usize,
    /// Destinations given a label value of their own: at most `max_dests`.
    dests: HashSet<Dest, FastHash>,
    failures: HashMap<FailKey, Series, FastHash>,
    /// Failures counted: the clock of `Series::last`.
    seq: u64,
    /// Series folded into `destination="other",unit="other"`.
    folded: u64,
    slow: HashMap<Option<Dest>, u64, FastHash>,
    durations: [Histogram; Reason::ALL.len()],
    /// Connections that broke after they were established, by reason
    /// only: the label set is bounded by the reasons.
    broken: [u64; Reason::ALL.len()],
    units: Vec<String>,
    unit_ids: HashMap<String, UnitId, FastHash>,
    /// Lookups that failed (issue 32), by reason: names are never labels.
    resolve: [u64; crate::dns::outcome::Reason::ALL.len()],
}

/// Units (or containers, by id) given a label value of their own; the rest
/// share `unit="other"`. Containers come and go: without a bound, each
/// would add its series for the life of the process.
pub const MAX_UNITS: usize = 512;

impl Metrics {
    pub fn new(max_dests: usize) -> Self {
        Self::with_max_series(max_dests, MAX_SERIES)
    }

    fn with_max_series(max_dests: usize, max_series: usize) -> Self {
        Metrics {
            max_dests,
            max_series,
            dests: HashSet::with_capacity_and_hasher(max_dests.min(1024), FastHash::default()),
            failures: HashMap::with_capacity_and_hasher(max_dests.min(1024), FastHash::default()),
            seq: 0,
            folded: 0,
            slow: HashMap::default(),
            durations: Default::default(),
            broken: [0; Reason::ALL.len()],
            units: vec![String::new()],
            unit_ids: HashMap::default(),
            resolve: Default::default(),
        }
    }

    /// The id of a unit name, for [`Metrics::failure`]; allocates only
    /// for a name not seen before. Past [`MAX_UNITS`] names, `other`
    /// (no unit or container name can be that: they end in `.service` or
    /// `.scope`, or are hex ids).
    pub fn unit(&mut self, name: &str) -> UnitId {
        if name.is_empty() {
            return UnitId(0);
        }
        if let Some(i) = self.unit_ids.get(name) {
            return *i;
        }
        let name = if self.units.len() > MAX_UNITS {
            "other"
        } else {
            name
        };
        self.intern(name)
    }

    fn intern(&mut self, name: &str) -> UnitId {
        if let Some(i) = self.unit_ids.get(name) {
            return *i;
        }
        self.units.push(name.to_string());
        let id = UnitId(self.units.len() as u32 - 1);
        self.unit_ids.insert(name.to_string(), id);
        id
    }

    /// The label value a destination is counted under: its own while
    /// fewer than `max_dests` have one, else `other`.
    fn label(&mut self, d: Dest) -> Option<Dest> {
        if self.dests.contains(&d) {
            return Some(d);
        }
        if self.dests.len() < self.max_dests {
            self.dests.insert(d);
            return Some(d);
        }
        None
    }

    /// One failure, once its verdict is known: the hot path. One lookup
    /// when the series exists.
    pub fn failure(&mut self, f: &Failure, unit: UnitId, recovered: bool) {
        let reason = f.reason.index();
        // An unmatched failure's start is unknown: it has no duration.
        if let Some(ns) = f.duration() {
            self.durations[reason].observe(ns);
        }
        let dest = Dest {
            addr: f.daddr,
            port: f.dport,
        };
        let key = FailKey {
            reason: reason as u8,
            recovered,
            dest: Some(dest),
            unit,
        };
        self.seq += 1;
        let last = self.seq;
        if let Some(s) = self.failures.get_mut(&key) {
            s.n += 1;
            s.last = last;
            return;
        }
        let key = FailKey {
            dest: self.label(dest),
            ..key
        };
        if !self.failures.contains_key(&key) && self.failures.len() >= self.max_series {
            self.fold();
        }
        let s = self.failures.entry(key).or_insert(Series { n: 0, last });
        s.n += 1;
        s.last = last;
    }

    /// At the cap: the least recently updated series (a batch of them)
    /// add their counts to `destination="other",unit="other"` of their
    /// reason and outcome, and go. The sum over all series stays the
    /// failures, and what folded is counted.
    fn fold(&mut self) {
        let other = self.intern("other");
        let is_fold = |k: &FailKey| k.dest.is_none() && k.unit == other;
        let mut by_age: Vec<(u64, FailKey)> = self
            .failures
            .iter()
            .filter(|(k, _)| !is_fold(k))
            .map(|(k, s)| (s.last, *k))
            .collect();
        // Room for the batch and for the fold series themselves (at most
        // reasons × outcomes of them).
        let n = FOLD_BATCH
            .min(self.max_series / 10)
            .max(1)
            .min(by_age.len());
        if n == 0 {
            return;
        }
        by_age.select_nth_unstable_by_key(n - 1, |(last, _)| *last);
        for (_, k) in &by_age[..n] {
            let Some(s) = self.failures.remove(k) else {
                continue;
            };
            let into = FailKey {
                dest: None,
                unit: other,
                ..*k
            };
            let f = self
                .failures
                .entry(into)
                .or_insert(Series { n: 0, last: 0 });
            f.n += s.n;
            f.last = f.last.max(s.last);
            self.folded += 1;
        }
    }

    /// One connection that broke after it was established
    /// (`connection_broken`).
    pub fn broken(&mut self, f: &Failure) {
        self.broken[f.reason.index()] += 1;
    }

    /// One connection that stayed in SYN_SENT too long (`connect_slow`).
    /// A lookup that failed, by its reason.
    pub fn resolve_failed(&mut self, r: crate::dns::outcome::Reason) {
        self.resolve_failed_n(r, 1);
    }

    /// `n` lookups that failed (a source's folded ones).
    pub fn resolve_failed_n(&mut self, r: crate::dns::outcome::Reason, n: u64) {
        if let Some(i) = crate::dns::outcome::Reason::ALL
            .iter()
            .position(|x| *x == r)
        {
            self.resolve[i] += n;
        }
    }

    pub fn slow(&mut self, addr: IpAddr, port: u16) {
        let d = Dest { addr, port };
        if let Some(n) = self.slow.get_mut(&Some(d)) {
            *n += 1;
            return;
        }
        let key = self.label(d);
        *self.slow.entry(key).or_insert(0) += 1;
    }

    /// Copies the counts into `s`, reusing its buffers.
    pub fn copy_into(&self, s: &mut Snapshot) {
        s.failures.clear();
        s.failures
            .extend(self.failures.iter().map(|(k, f)| (*k, f.n)));
        s.slow.clear();
        s.slow.extend(self.slow.iter().map(|(k, n)| (*k, *n)));
        s.durations = self.durations;
        s.broken = self.broken;
        if s.units.len() != self.units.len() {
            s.units.clone_from(&self.units);
        }
        s.max_dests = self.max_dests;
        s.series_folded = self.folded;
        s.resolve = self.resolve;
    }

    #[cfg(test)]
    fn series(&self) -> usize {
        self.failures.len()
    }
}

/// Totals the loop knows besides the per-failure counts: what the stop
/// line and /metrics' unlabelled families are written from (see
/// [`counters`]). Made in one place, `daemon::lines::totals`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Verdicts (see `pipeline::verdict`).
    pub recovered: u64,
    pub verdicts_early: u64,
    pub verdicts_successes_dropped: u64,
    pub verdicts_answers_dropped: u64,
    pub verdicts_pending: u64,
    pub slow: u64,
    pub evicted_age: u64,
    pub evicted_full: u64,
    pub replaced: u64,
    pub unmatched: u64,
    pub at_start: u64,
    /// Connections that broke after they were established, reported; and
    /// breaks not reported because the connection was not on record, and
    /// established connections forgotten to make room (see
    /// `pipeline::established`).
    pub broken: u64,
    pub broken_unmatched: u64,
    pub established_forgotten: u64,
    pub pending: u64,
    /// Records that could not be decoded.
    pub bad_records: u64,
    /// Runtime files refused while naming containers.
    pub names_refused: u64,
    pub ring_drops: u64,
    pub alerts: u64,
    pub summaries: u64,
    pub folded: u64,
    pub fired: u64,
    pub resolved: u64,
    /// Failures to destinations beyond the resolver's table (not alerted
    /// to Alertmanager).
    pub untracked: u64,
    /// Whether DNS answers are read at all: without, the stop line leaves
    /// the `dns_` counters out (/metrics shows them as 0).
    pub dns: bool,
    /// DNS answers read, names held, and names forgotten before their
    /// time (the memory's bound) or never sent (the ring half full).
    /// Names are never labels: their number has no bound.
    pub dns_answers: u64,
    pub dns_ignored: u64,
    pub dns_malformed: u64,
    pub dns_bad_names: u64,
    pub dns_partial: u64,
    pub dns_addrs_dropped: u64,
    pub dns_skipped: u64,
    pub dns_learned: u64,
    pub dns_names: u64,
    pub dns_bytes: u64,
    pub dns_expired: u64,
    pub dns_evicted: u64,
    /// Answers for a watched name the watch did not follow (not the
    /// host's resolver's, not tcpstate's own).
    pub dns_untrusted: u64,
    /// Answers to no outstanding query of their socket: not learned.
    pub dns_unmatched: u64,
    /// DNS over TCP: messages read, messages cut (the copy or the
    /// stream's split), truncated UDP answers not learned from.
    pub dns_tcp_messages: u64,
    pub dns_tcp_cut: u64,
    pub dns_truncated: u64,
    /// Lookups (issue 32): failed, recovered, with no verdict, folded
    /// into their source's summary, forgotten unjudged; queries not held;
    /// resolv.conf files that could not be read.
    pub dns_lookups_failed: u64,
    pub dns_lookups_recovered: u64,
    pub dns_lookups_undecided: u64,
    pub dns_lookups_folded: u64,
    pub dns_lookups_evicted: u64,
    pub dns_queries_dropped: u64,
    pub dns_resolv_conf_unreadable: u64,
}

/// What a scrape encodes: the loop's last copy.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub failures: Vec<(FailKey, u64)>,
    pub slow: Vec<(Option<Dest>, u64)>,
    pub durations: [Histogram; Reason::ALL.len()],
    pub broken: [u64; Reason::ALL.len()],
    pub units: Vec<String>,
    pub totals: Totals,
    pub max_dests: usize,
    /// Failure series folded into `other` at the series cap.
    pub series_folded: u64,
    /// Failed lookups by reason (see `Metrics::resolve_failed`).
    pub resolve: [u64; crate::dns::outcome::Reason::ALL.len()],
}

/// Between the loop and the server: a flag the server raises when it
/// wants a fresh snapshot, and the snapshot.
#[derive(Debug, Default)]
pub struct Shared {
    wanted: AtomicBool,
    pub snapshot: Mutex<Snapshot>,
    pub published: tokio::sync::Notify,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Shared::default())
    }

    /// Called by the loop after each drain: an atomic load unless a
    /// scrape is waiting.
    pub fn publish_if_wanted(&self, m: &Metrics, totals: impl FnOnce() -> Totals) {
        if !self.wanted.load(Ordering::Relaxed) || !self.wanted.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut s) = self.snapshot.lock() {
            m.copy_into(&mut s);
            s.totals = totals();
        }
        self.published.notify_waiters();
    }

    pub fn want(&self) {
        self.wanted.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(addr: &str, port: u16, reason: Reason, duration_ns: u64) -> Failure {
        Failure {
            duration_ns,
            ..Failure::sample(addr, port, reason)
        }
    }

    #[test]
    fn destinations_beyond_the_bound_count_as_other_and_nothing_is_lost() {
        let mut m = Metrics::new(10);
        for port in 0..3000u16 {
            m.failure(
                &failure("192.0.2.9", port, Reason::Refused, 1000),
                UnitId(0),
                false,
            );
        }
        // The first ten again: still their own series.
        for port in 0..10u16 {
            m.failure(
                &failure("192.0.2.9", port, Reason::Timeout, 2_000_000_000),
                UnitId(0),
                false,
            );
        }
        let mut s = Snapshot::default();
        m.copy_into(&mut s);
        let total: u64 = s.failures.iter().map(|f| f.1).sum();
        assert_eq!(total, 3010);
        let dests: std::collections::HashSet<_> = s.failures.iter().map(|f| f.0.dest).collect();
        assert_eq!(dests.len(), 11, "ten destinations and other");
        let other: u64 = s
            .failures
            .iter()
            .filter(|f| f.0.dest.is_none())
            .map(|f| f.1)
            .sum();
        assert_eq!(other, 2990);
        assert_eq!(m.series(), 21);
        assert_eq!(s.durations[0].count, 3000);
        assert_eq!(s.durations[0].buckets[0], 3000);
        assert_eq!(s.durations[1].count, 10);
        assert_eq!(s.durations[1].buckets[9], 10, "2 s is in the 3.5 s bucket");
    }

    #[test]
    fn units_are_bounded_and_the_rest_share_other() {
        let mut m = Metrics::new(10);
        let first = m.unit("first.scope");
        for i in 0..MAX_UNITS * 2 {
            m.unit(&format!("libpod-{i:064x}"));
        }
        assert_eq!(m.units.len(), MAX_UNITS + 2, "named, the empty one, other");
        let other = m.unit("late.service");
        assert_eq!(m.units[other.0 as usize], "other");
        assert_eq!(m.unit("later.service"), other);
        assert_eq!(m.unit("first.scope"), first);
        // Unmatched failures count, but give the histogram no duration.
        let f = Failure {
            seen: crate::event::Seen::Unmatched,
            ..Failure::sample("192.0.2.1", 80, Reason::Refused)
        };
        m.failure(&f, other, false);
        assert_eq!(m.durations[Reason::Refused.index()].count, 0);
        assert_eq!(m.series(), 1);
    }

    #[test]
    fn units_are_interned_and_make_their_own_series() {
        let mut m = Metrics::new(10);
        let a = m.unit("a.service");
        let b = m.unit("b.service");
        assert_eq!(m.unit("a.service"), a);
        assert_eq!(m.unit(""), UnitId(0));
        assert_ne!(a, b);
        let f = failure("2001:db8::1", 443, Reason::Refused, 1);
        m.failure(&f, a, false);
        m.failure(&f, b, false);
        m.failure(&f, b, false);
        assert_eq!(m.series(), 2);
        m.slow("2001:db8::1".parse().unwrap(), 443);
        let mut s = Snapshot::default();
        m.copy_into(&mut s);
        assert_eq!(s.units, vec!["", "a.service", "b.service"]);
        assert_eq!(s.slow.len(), 1);
    }

    #[test]
    fn series_are_bounded_across_labels_and_the_oldest_fold_into_other() {
        // The case: 300 units each failing to the same 300
        // destinations made 90,000 series.
        let mut m = Metrics::new(1000);
        let units: Vec<_> = (0..300).map(|u| m.unit(&format!("u{u}.service"))).collect();
        let mut n = 0;
        for port in 1..=300u16 {
            for u in &units {
                m.failure(&failure("127.0.0.1", port, Reason::Refused, 1), *u, false);
                n += 1;
            }
        }
        assert!(m.series() <= MAX_SERIES, "{} series", m.series());
        let mut s = Snapshot::default();
        m.copy_into(&mut s);
        assert_eq!(
            s.failures.iter().map(|f| f.1).sum::<u64>(),
            n,
            "nothing lost"
        );
        let other = s.units.iter().position(|u| u == "other").unwrap();
        let fold: Vec<_> = s
            .failures
            .iter()
            .filter(|f| f.0.dest.is_none() && f.0.unit.0 as usize == other)
            .collect();
        assert_eq!(fold.len(), 1, "one fold series per reason and outcome");
        assert_eq!(
            s.series_folded, fold[0].1,
            "each folded series had one failure"
        );
        assert_eq!(s.series_folded + s.failures.len() as u64 - 1, n);
        // The newest stay: the last destination, for every unit.
        let last = s
            .failures
            .iter()
            .filter(|f| f.0.dest.is_some_and(|d| d.port == 300));
        assert_eq!(last.count(), 300);
    }

    #[test]
    fn a_series_updated_lately_is_kept_over_older_ones() {
        let mut m = Metrics::with_max_series(100, 10);
        let f = |p| failure("192.0.2.1", p, Reason::Refused, 1);
        for p in 0..10 {
            m.failure(&f(p), UnitId(0), false);
        }
        m.failure(&f(0), UnitId(0), false); // port 0 is now the newest
        m.failure(&f(10), UnitId(0), false); // one folds: port 1
        let mut s = Snapshot::default();
        m.copy_into(&mut s);
        let ports: HashSet<_> = s
            .failures
            .iter()
            .filter_map(|f| f.0.dest.map(|d| d.port))
            .collect();
        assert!(ports.contains(&0) && !ports.contains(&1), "{ports:?}");
        assert_eq!(s.series_folded, 1);
        assert_eq!(s.failures.iter().map(|f| f.1).sum::<u64>(), 12);
    }

    #[test]
    fn durations_land_in_their_bucket() {
        let mut h = Histogram::default();
        h.observe(100_000); // le=0.0001 is inclusive
        h.observe(100_001);
        h.observe(200_000_000_000);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BUCKETS_NS.len()], 1);
        assert_eq!(h.count, 3);
    }
}

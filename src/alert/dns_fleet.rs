//! Firing and resolved, per name: Alertmanager's `DNSResolutionFailing`
//! (issue 32). Pure: the caller passes the time. Beside `resolve`, which
//! keys its alerts by destination address: a name that does not resolve
//! has none.
//!
//! A name fires on its first failed lookup (`resolve_failed`), from any
//! source on the host; while it fires it is re-posted once per period with
//! `endsAt` ahead, as `resolve` does. It resolves when a lookup of that
//! very name is answered with an address, or when no lookup of it has
//! failed for `resolve_after`. An answer for a search-list expansion
//! (`api.ns.svc.cluster.local` for `api`) does not resolve `api`: another
//! pod's search list may differ, so only quiet does.
//!
//! Folded failures (a source's flood past its first few a minute) never
//! fire a name: a flood is of unique names, each would be an alert. They
//! count in the metrics and the source's summary.

use super::firing::{Due, Quiet, Table};
use super::resolve::{Config, FleetState, ResolvedBy, ENDS_AFTER_PERIODS};
use super::types::MAX_PROCS;
use crate::dns::lookup::{Failed, Server};
use crate::dns::outcome::Reason;

/// One post of a name's alert to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFleetAlert {
    /// The name as the first failed lookup asked it (untrusted bytes).
    pub name: Vec<u8>,
    /// The first failure's reason: a label, fixed for the alert's life.
    pub reason: Reason,
    pub state: FleetState,
    /// Monotonic ns: the first failure (`startsAt`), `endsAt`, the last.
    pub starts_ns: u64,
    pub ends_ns: u64,
    pub last_ns: u64,
    /// Lookups that failed.
    pub count: u64,
    /// Failures per reason, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
    /// Who failed (unit, container or process, escaped), most frequent
    /// first, at most [`MAX_PROCS`]; the rest counted.
    pub sources: Vec<(String, u64)>,
    pub other_sources: u64,
    /// The latest failure's server, query type and what it said.
    pub server: Option<Server>,
    pub qtype: u16,
    pub said: String,
    /// The latest failure could not read its process's resolv.conf: the
    /// name is a query's own, maybe a search-list expansion.
    pub per_query: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DnsFleetStats {
    pub fired: u64,
    pub reposts: u64,
    pub resolved: u64,
    /// Failed lookups of names beyond `max_dests` firing, not tracked.
    pub untracked: u64,
}

#[derive(Debug)]
struct Firing {
    alert: DnsFleetAlert,
}

impl Quiet for Firing {
    fn last_ns(&self) -> u64 {
        self.alert.last_ns
    }
}

impl Firing {
    fn add(&mut self, f: &Failed, source: String) {
        let a = &mut self.alert;
        a.last_ns = a.last_ns.max(f.ts_ns);
        a.count += 1;
        bump(&mut a.reasons, f.reason, usize::MAX);
        if !bump(&mut a.sources, source, MAX_PROCS) {
            a.other_sources += 1;
        }
        a.server = f.server;
        a.qtype = f.qtype;
        a.said = super::dns::what_said(f);
        a.per_query = f.per_query;
    }

    fn post(&self, state: FleetState, ends_ns: u64) -> DnsFleetAlert {
        let mut a = self.alert.clone();
        a.state = state;
        a.ends_ns = ends_ns;
        a.reasons.sort_by_key(|e| std::cmp::Reverse(e.1));
        a.sources.sort_by_key(|e| std::cmp::Reverse(e.1));
        a
    }
}

/// Counts `k` in `v` (at most `max` keys); false if it had no room.
fn bump<K: PartialEq>(v: &mut Vec<(K, u64)>, k: K, max: usize) -> bool {
    if let Some(e) = v.iter_mut().find(|e| e.0 == k) {
        e.1 += 1;
    } else if v.len() < max {
        v.push((k, 1));
    } else {
        return false;
    }
    true
}

/// Names compare as DNS compares them: ASCII case aside, a trailing dot
/// aside.
fn key(name: &[u8]) -> Vec<u8> {
    name.strip_suffix(b".").unwrap_or(name).to_ascii_lowercase()
}

pub struct DnsFleet {
    cfg: Config,
    firing: Table<Vec<u8>, Firing>,
    stats: DnsFleetStats,
}

impl DnsFleet {
    pub fn new(cfg: Config) -> Self {
        DnsFleet {
            cfg,
            firing: Table::new(),
            stats: DnsFleetStats::default(),
        }
    }

    pub fn stats(&self) -> DnsFleetStats {
        self.stats
    }

    pub fn firing(&self) -> usize {
        self.firing.len()
    }

    fn ends(&self, now_ns: u64) -> u64 {
        now_ns.saturating_add(self.cfg.period_ns().saturating_mul(ENDS_AFTER_PERIODS))
    }

    /// A failed lookup, and who made it (as [`super::dns::subject`] says).
    pub fn on_failed(
        &mut self,
        f: &Failed,
        source: String,
        now_ns: u64,
        out: &mut Vec<DnsFleetAlert>,
    ) {
        let k = key(&f.name);
        if let Some(x) = self.firing.get_mut(&k) {
            x.add(f, source);
            return;
        }
        if self.firing.len() >= self.cfg.max_dests {
            self.stats.untracked += 1;
            return;
        }
        let check_ns = now_ns.saturating_add(self.cfg.period_ns());
        let first = f.ts_ns.min(now_ns);
        let mut x = Firing {
            alert: DnsFleetAlert {
                name: f.name.clone(),
                reason: f.reason,
                state: FleetState::Firing,
                starts_ns: first,
                ends_ns: 0,
                last_ns: first,
                count: 0,
                reasons: Vec::new(),
                sources: Vec::new(),
                other_sources: 0,
                server: None,
                qtype: 0,
                said: String::new(),
                per_query: false,
            },
        };
        x.add(f, source);
        self.stats.fired += 1;
        out.push(x.post(FleetState::Firing, self.ends(now_ns)));
        self.firing.insert(k, x, check_ns);
    }

    /// A lookup of `qname` was answered with an address. Free when
    /// nothing fires.
    pub fn on_answered(&mut self, qname: &[u8], now_ns: u64, out: &mut Vec<DnsFleetAlert>) {
        if self.firing.is_empty() {
            return;
        }
        if let Some(x) = self.firing.remove(&key(qname)) {
            self.stats.resolved += 1;
            out.push(x.post(FleetState::Resolved(ResolvedBy::Success), now_ns));
        }
    }

    /// Brings the firing posts of this batch up to date (a burst's later
    /// failures are counted after its first post was made).
    pub fn refresh(&self, out: &mut [DnsFleetAlert]) {
        for a in out.iter_mut().filter(|a| a.state == FleetState::Firing) {
            if let Some(x) = self.firing.get(&key(&a.name)) {
                *a = x.post(FleetState::Firing, a.ends_ns);
            }
        }
    }

    /// The checks due by `now_ns`: resolves the quiet names, re-posts the
    /// others. O(1) when none is due.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<DnsFleetAlert>) {
        let period = self.cfg.period_ns();
        for due in self.firing.due(now_ns, period, self.cfg.resolve_after_ns) {
            match due {
                Due::Quiet(_, x) => {
                    self.stats.resolved += 1;
                    out.push(x.post(FleetState::Resolved(ResolvedBy::Quiet), now_ns));
                }
                Due::Repost(k) => {
                    if let Some(x) = self.firing.get(&k) {
                        out.push(x.post(FleetState::Firing, self.ends(now_ns)));
                        self.stats.reposts += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn fleet(max: usize) -> DnsFleet {
        DnsFleet::new(Config {
            window_ns: 60 * S,
            resolve_after_ns: 300 * S,
            max_dests: max,
            fleet: true,
        })
    }

    fn failed(name: &[u8], reason: Reason, ts_ns: u64) -> Failed {
        Failed {
            reason,
            ts_ns,
            ..Failed::sample(name, 7, 0, b"java")
        }
    }

    #[test]
    fn a_name_fires_once_counts_its_sources_and_resolves_on_an_answer() {
        let mut d = fleet(10);
        let mut out = Vec::new();
        d.on_failed(
            &failed(b"API.example.com.", Reason::NxDomain, S),
            "a.service".into(),
            S,
            &mut out,
        );
        d.on_failed(
            &failed(b"api.example.com", Reason::Timeout, 2 * S),
            "b.service".into(),
            2 * S,
            &mut out,
        );
        d.on_failed(
            &failed(b"api.example.com", Reason::NxDomain, 3 * S),
            "a.service".into(),
            3 * S,
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        d.refresh(&mut out);
        let a = &out[0];
        assert_eq!(
            (a.name.as_slice(), a.reason, a.count),
            (&b"API.example.com."[..], Reason::NxDomain, 3)
        );
        assert_eq!(a.reasons, [(Reason::NxDomain, 2), (Reason::Timeout, 1)]);
        assert_eq!(
            a.sources,
            [("a.service".to_string(), 2), ("b.service".to_string(), 1)]
        );
        assert_eq!((a.starts_ns, a.last_ns), (S, 3 * S));
        assert_eq!(a.said, "NXDOMAIN from 10.0.0.2");
        // An answer for another name, or an expansion of it, resolves nothing.
        d.on_answered(b"api.example.com.svc.cluster.local", 4 * S, &mut out);
        d.on_answered(b"web.example.com", 4 * S, &mut out);
        assert_eq!(out.len(), 1);
        d.on_answered(b"api.EXAMPLE.com", 5 * S, &mut out);
        assert_eq!(out[1].state, FleetState::Resolved(ResolvedBy::Success));
        assert_eq!(d.firing(), 0);
        assert_eq!(d.stats().fired, 1);
        assert_eq!(d.stats().resolved, 1);
    }

    #[test]
    fn a_firing_name_is_reposted_then_resolves_when_quiet() {
        let mut d = fleet(10);
        let mut out = Vec::new();
        d.on_failed(
            &failed(b"db.internal", Reason::ServFail, S),
            "x".into(),
            S,
            &mut out,
        );
        d.tick(60 * S, &mut out);
        assert_eq!(out.len(), 1, "not due yet");
        d.tick(61 * S, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].state, FleetState::Firing);
        assert_eq!(out[1].ends_ns, 61 * S + 4 * 60 * S);
        d.tick(400 * S, &mut out);
        assert_eq!(out[2].state, FleetState::Resolved(ResolvedBy::Quiet));
        assert_eq!(d.stats().reposts, 1);
    }

    #[test]
    fn names_past_the_bound_are_counted_not_tracked_and_sources_are_bounded() {
        let mut d = fleet(2);
        let mut out = Vec::new();
        for (i, n) in [&b"a.t"[..], b"b.t", b"c.t"].iter().enumerate() {
            d.on_failed(
                &failed(n, Reason::NxDomain, S),
                format!("s{i}"),
                S,
                &mut out,
            );
        }
        assert_eq!(out.len(), 2);
        assert_eq!(d.stats().untracked, 1);
        for i in 0..8 {
            d.on_failed(
                &failed(b"a.t", Reason::NxDomain, S),
                format!("src{i}"),
                S,
                &mut out,
            );
        }
        d.refresh(&mut out);
        assert_eq!(out[0].sources.len(), MAX_PROCS);
        assert_eq!(out[0].other_sources, 4);
    }
}

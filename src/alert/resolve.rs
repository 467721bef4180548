//! Firing and resolved, per destination: the state Alertmanager needs
//! (and the "recovered" message Slack and syslog get). Pure: the caller
//! passes the time. The engine drives it beside the window policy.
//!
//! A destination fires on its first failure. While it fires, its alert is
//! re-posted once per period (the alert window, or `resolve_after` if
//! shorter) with `endsAt` [`ENDS_AFTER_PERIODS`] periods ahead, as
//! Prometheus does: if tcpstate dies, Alertmanager resolves it by itself.
//! It resolves when a connection to it succeeds, or when it has not
//! failed for `resolve_after` (checked at the period's ticks, so up to
//! one period late).
//!
//! Hanging attempts (`connect_slow`) fire a destination's second alert,
//! [`Trouble::Hanging`], tracked beside its failures and resolved the
//! same way: a connection that succeeds, or no attempt found hanging for
//! `resolve_after`. Only Alertmanager gets it: Slack and syslog already
//! say "hanging" under the window policy, and their "recovered" message
//! stays the failures'.

use std::net::IpAddr;
use std::rc::Rc;

use super::firing::{Due, Quiet, Table};
use super::types::{Alert, Dest, Proc, Tally, MAX_PROCS};
pub use super::types::{Recovery, ResolvedBy};
use crate::event::{Attribution, Caller, Failure, Reason, Slow};

/// `endsAt` of a firing alert: this many periods after its last post.
pub const ENDS_AFTER_PERIODS: u64 = 4;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub window_ns: u64,
    pub resolve_after_ns: u64,
    /// Most destinations firing at once; failures to more are not tracked
    /// for resolution (they still alert through the policy), and counted.
    pub max_dests: usize,
    /// Whether anything takes [`FleetAlert`]s (Alertmanager is on).
    pub fleet: bool,
}

impl Config {
    pub fn period_ns(&self) -> u64 {
        self.window_ns.min(self.resolve_after_ns).max(1)
    }
}

/// What is wrong with a destination: each is an alert of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trouble {
    /// Connections to it fail (`TCPConnectFailures`).
    Failing,
    /// Connections to it hang in SYN_SENT (`TCPConnectHanging`).
    Hanging,
    /// Connections to it fail but the applications recover through
    /// another path (`TCPPathDegraded`, lower severity).
    Degraded,
    /// Connections to it that were established break (`TCPConnectionBroken`).
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetState {
    Firing,
    Resolved(ResolvedBy),
}

/// One post of a destination's alert to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAlert {
    pub dest: Dest,
    pub trouble: Trouble,
    /// The first failure's reason: a label, so fixed for the alert's life.
    /// None for [`Trouble::Hanging`].
    pub reason: Option<Reason>,
    pub state: FleetState,
    /// Monotonic ns: the first failure (`startsAt`) and `endsAt`.
    pub starts_ns: u64,
    pub ends_ns: u64,
    pub last_ns: u64,
    /// Failures, or attempts found hanging.
    pub count: u64,
    /// Failures per reason, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
    pub procs: Vec<Proc>,
    pub other_procs: u64,
    /// The DNS name of the latest failure that had one (an annotation:
    /// not a label, so the alert's identity stays the address).
    pub dname: Option<crate::event::Dname>,
    /// The containers (and pods) failing, by name, most frequent first, at
    /// most [`MAX_PROCS`]; escaped.
    pub containers: Vec<(String, u64)>,
    /// The ICMP error of the latest failure that had one: who rejected it.
    pub icmp: Option<crate::event::Icmp>,
    /// The latest packet this host dropped, and why.
    pub dropped: Option<crate::event::Dropped>,
    /// The TTL of the latest RST that refused or reset one.
    pub rst_ttl: Option<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResolveStats {
    pub fired: u64,
    pub reposts: u64,
    pub resolved: u64,
    /// Failures to destinations beyond `max_dests`, not tracked.
    pub untracked: u64,
}

#[derive(Debug)]
struct Firing {
    reason: Option<Reason>,
    first_ns: u64,
    last_ns: u64,
    tally: Tally,
    dname: Option<crate::event::Dname>,
    containers: Vec<(String, u64)>,
    icmp: Option<crate::event::Icmp>,
    dropped: Option<crate::event::Dropped>,
    rst_ttl: Option<u8>,
}

/// One failure or hanging attempt, as the resolver keeps it. Borrows the
/// failure's caller and name: a `Dname` is 254 bytes, and copying it (and
/// the caller) for every failure cost the per-event path a memcpy each.
struct Sighting<'a> {
    reason: Option<Reason>,
    ts_ns: u64,
    caller: Option<&'a Caller>,
    dname: Option<&'a crate::event::Dname>,
    /// The caller's container or pod, as an annotation names it.
    container: Option<Rc<str>>,
    icmp: Option<crate::event::Icmp>,
    dropped: Option<crate::event::Dropped>,
    rst_ttl: Option<u8>,
}

impl<'a> Sighting<'a> {
    /// A failure's, with its caller's container label.
    fn of(f: &'a Failure, container: Option<Rc<str>>) -> Self {
        Sighting {
            reason: Some(f.reason),
            ts_ns: f.ts_ns,
            caller: f.caller.as_ref(),
            dname: f.dname.as_ref(),
            container,
            icmp: f.icmp,
            dropped: f.dropped,
            rst_ttl: f.rst_ttl,
        }
    }
}

/// The last caller's container label and the four fields it is made of:
/// a storm comes from one container, and formatting (and allocating) the
/// label for every failure cost a containerised caller more than a third
/// of its per-failure path.
#[derive(Default)]
struct LastLabel {
    from: [Option<String>; 4],
    label: Option<Rc<str>>,
}

impl LastLabel {
    fn of(&mut self, a: &Attribution) -> Option<Rc<str>> {
        let from = [
            &a.container_name,
            &a.pod_name,
            &a.pod_namespace,
            &a.container,
        ];
        // Outside containers (most callers): no label, nothing to compare.
        if from.iter().all(|f| f.is_none()) {
            return None;
        }
        if self.from.iter().zip(from).any(|(had, has)| had != has) {
            self.from = from.map(Clone::clone);
            self.label = container_label(a).map(Rc::from);
        }
        self.label.clone()
    }
}

/// A container as an annotation names it: `namespace/pod (container)` in
/// a pod, else its name, else its short id; escaped.
pub fn container_label(a: &Attribution) -> Option<String> {
    use crate::output::text::{Escaped, PodRef};
    let name = a.container_name.as_deref().map(Escaped);
    if a.pod_name.is_some() || a.pod_namespace.is_some() {
        return Some(match name {
            Some(n) => format!("{} ({n})", PodRef(a)),
            None => PodRef(a).to_string(),
        });
    }
    if let Some(n) = name {
        return Some(n.to_string());
    }
    a.container
        .as_deref()
        .map(|id| Escaped(id.get(..12).unwrap_or(id)).to_string())
}

impl Firing {
    fn add_container(&mut self, label: Option<&str>) {
        let Some(label) = label else {
            return;
        };
        if let Some(e) = self.containers.iter_mut().find(|e| e.0 == label) {
            e.1 += 1;
        } else if self.containers.len() < MAX_PROCS {
            self.containers.push((label.to_string(), 1));
        }
    }

    fn new(reason: Option<Reason>, at_ns: u64) -> Self {
        Firing {
            reason,
            first_ns: at_ns,
            last_ns: at_ns,
            tally: Tally::default(),
            dname: None,
            containers: Vec::new(),
            icmp: None,
            dropped: None,
            rst_ttl: None,
        }
    }

    fn add(&mut self, s: &Sighting<'_>) {
        self.last_ns = self.last_ns.max(s.ts_ns);
        // The latest name the application resolved for it.
        if let Some(n) = s.dname {
            self.dname = Some(*n);
        }
        if s.icmp.is_some() {
            self.icmp = s.icmp;
        }
        if s.dropped.is_some() {
            self.dropped = s.dropped;
        }
        if s.rst_ttl.is_some() {
            self.rst_ttl = s.rst_ttl;
        }
        self.tally
            .add(s.reason, s.caller.map(|c| c.comm), s.caller.map(|c| c.pid));
        self.add_container(s.container.as_deref());
    }

    fn alert(&self, dest: Dest, trouble: Trouble, state: FleetState, ends_ns: u64) -> FleetAlert {
        FleetAlert {
            dest,
            trouble,
            reason: self.reason,
            state,
            starts_ns: self.first_ns,
            ends_ns,
            last_ns: self.last_ns,
            count: self.tally.count,
            reasons: self.tally.reasons_by_count(),
            procs: self.tally.procs_by_count(),
            other_procs: self.tally.other_procs,
            dname: self.dname,
            icmp: self.icmp,
            dropped: self.dropped,
            rst_ttl: self.rst_ttl,
            containers: {
                let mut c = self.containers.clone();
                c.sort_by_key(|e| std::cmp::Reverse(e.1));
                c
            },
        }
    }

    fn recovery(&self, dest: Dest, at_ns: u64, by: ResolvedBy) -> Recovery {
        Recovery {
            dest,
            count: self.tally.count,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            at_ns,
            by,
        }
    }
}

impl Quiet for Firing {
    fn last_ns(&self) -> u64 {
        self.last_ns
    }
}

/// A firing alert: a destination and what is wrong with it.
type Key = (Trouble, Dest);

pub struct Resolver {
    cfg: Config,
    firing: Table<Key, Firing>,
    stats: ResolveStats,
    last_label: LastLabel,
}

impl Resolver {
    pub fn new(cfg: Config) -> Self {
        Resolver {
            cfg,
            firing: Table::new(),
            stats: ResolveStats::default(),
            last_label: LastLabel::default(),
        }
    }

    pub fn stats(&self) -> ResolveStats {
        self.stats
    }

    pub fn firing(&self) -> usize {
        self.firing.len()
    }

    fn ends(&self, now_ns: u64) -> u64 {
        now_ns.saturating_add(self.cfg.period_ns().saturating_mul(ENDS_AFTER_PERIODS))
    }

    /// A failure: one lookup while its destination fires.
    pub fn on_failure(&mut self, f: &Failure, now_ns: u64, fleet: &mut Vec<FleetAlert>) {
        self.on_failure_in(f, None, now_ns, fleet);
    }

    /// A failure, with the caller's container and pod names if known.
    pub fn on_failure_in(
        &mut self,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
        fleet: &mut Vec<FleetAlert>,
    ) {
        self.failed(Trouble::Failing, f, attr, now_ns, fleet);
    }

    /// A failure tracked only for Alertmanager: one the application
    /// recovered from ([`Trouble::Degraded`]), or a connection that broke
    /// after it was established ([`Trouble::Broken`]: a success does not
    /// resolve it, connections are made and still break; only quiet does).
    pub fn on_fleet_only(
        &mut self,
        trouble: Trouble,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
        fleet: &mut Vec<FleetAlert>,
    ) {
        if self.cfg.fleet {
            self.failed(trouble, f, attr, now_ns, fleet);
        }
    }

    fn failed(
        &mut self,
        trouble: Trouble,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
        fleet: &mut Vec<FleetAlert>,
    ) {
        let dest = Dest {
            addr: f.daddr,
            port: f.dport,
        };
        let at = Sighting::of(f, attr.and_then(|a| self.last_label.of(a)));
        self.seen((trouble, dest), at, now_ns, fleet);
    }

    /// An attempt found hanging (`connect_slow`). Tracked only for
    /// Alertmanager: nothing else takes its alert.
    pub fn on_slow(&mut self, s: &Slow, now_ns: u64, fleet: &mut Vec<FleetAlert>) {
        if !self.cfg.fleet {
            return;
        }
        let dest = Dest {
            addr: s.daddr,
            port: s.dport,
        };
        let at = Sighting {
            reason: None,
            ts_ns: s.ts_ns,
            caller: s.caller.as_ref(),
            dname: s.dname.as_ref(),
            container: None,
            icmp: None,
            dropped: None,
            rst_ttl: None,
        };
        self.seen((Trouble::Hanging, dest), at, now_ns, fleet);
    }

    /// One more failure or hanging attempt for `key`: fires it if new.
    fn seen(&mut self, key: Key, at: Sighting<'_>, now_ns: u64, fleet: &mut Vec<FleetAlert>) {
        if let Some(x) = self.firing.get_mut(&key) {
            x.add(&at);
            return;
        }
        if self.firing.len() >= self.cfg.max_dests {
            self.stats.untracked += 1;
            return;
        }
        let check_ns = now_ns.saturating_add(self.cfg.period_ns());
        // The kernel's time of the failure (same clock, a little earlier).
        let mut x = Firing::new(at.reason, at.ts_ns.min(now_ns));
        x.add(&at);
        self.stats.fired += 1;
        if self.cfg.fleet {
            fleet.push(x.alert(key.1, key.0, FleetState::Firing, self.ends(now_ns)));
        }
        self.firing.insert(key, x, check_ns);
    }

    /// A connection to `addr:port` succeeded. Free when nothing fires.
    pub fn on_established(
        &mut self,
        addr: IpAddr,
        port: u16,
        now_ns: u64,
        fleet: &mut Vec<FleetAlert>,
        alerts: &mut Vec<Alert>,
    ) {
        if self.firing.is_empty() {
            return;
        }
        let dest = Dest { addr, port };
        for trouble in [Trouble::Failing, Trouble::Hanging, Trouble::Degraded] {
            if let Some(x) = self.firing.remove(&(trouble, dest)) {
                let by = ResolvedBy::Success;
                self.resolve((trouble, dest), &x, now_ns, by, fleet, alerts);
            }
        }
    }

    fn resolve(
        &mut self,
        (trouble, dest): Key,
        x: &Firing,
        now_ns: u64,
        by: ResolvedBy,
        fleet: &mut Vec<FleetAlert>,
        alerts: &mut Vec<Alert>,
    ) {
        self.stats.resolved += 1;
        if self.cfg.fleet {
            fleet.push(x.alert(dest, trouble, FleetState::Resolved(by), now_ns));
        }
        if trouble == Trouble::Failing {
            alerts.push(Alert::Resolved(x.recovery(dest, now_ns, by)));
        }
    }

    /// Brings the firing posts of this batch up to date: a burst's
    /// failures (decided together) fire the alert with the first and are
    /// counted after it; its first post should say all of them.
    pub fn refresh(&self, fleet: &mut [FleetAlert]) {
        for a in fleet.iter_mut().filter(|a| a.state == FleetState::Firing) {
            if let Some(x) = self.firing.get(&(a.trouble, a.dest)) {
                *a = x.alert(a.dest, a.trouble, FleetState::Firing, a.ends_ns);
            }
        }
    }

    /// The checks due by `now_ns`: resolves the quiet destinations and
    /// re-posts the others. O(1) when none is due (called after every drain).
    pub fn tick(&mut self, now_ns: u64, fleet: &mut Vec<FleetAlert>, alerts: &mut Vec<Alert>) {
        let period = self.cfg.period_ns();
        for due in self.firing.due(now_ns, period, self.cfg.resolve_after_ns) {
            match due {
                Due::Quiet(key, x) => {
                    self.resolve(key, &x, now_ns, ResolvedBy::Quiet, fleet, alerts);
                }
                Due::Repost(key) => {
                    self.stats.reposts += 1;
                    if let (true, Some(x)) = (self.cfg.fleet, self.firing.get(&key)) {
                        fleet.push(x.alert(key.1, key.0, FleetState::Firing, self.ends(now_ns)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Caller;

    const S: u64 = 1_000_000_000;

    fn failure(daddr: &str, port: u16, reason: Reason) -> Failure {
        Failure {
            caller: Some(Caller::sample(7, b"app")),
            ..Failure::sample(daddr, port, reason)
        }
    }

    fn resolver(max: usize) -> Resolver {
        Resolver::new(Config {
            window_ns: 60 * S,
            resolve_after_ns: 300 * S,
            max_dests: max,
            fleet: true,
        })
    }

    #[test]
    fn firing_names_its_containers_escaped_and_bounded() {
        let a = |name: &str, pod: Option<&str>| Attribution {
            container: Some(format!("{:064x}", name.len())),
            container_name: Some(name.to_string()),
            pod_name: pod.map(String::from),
            pod_namespace: pod.map(|_| "payments".to_string()),
            ..Default::default()
        };
        assert_eq!(
            container_label(&a("api", Some("api-7f9c"))).as_deref(),
            Some("payments/api-7f9c (api)")
        );
        assert_eq!(
            container_label(&a("web 1", None)).as_deref(),
            Some("web\\x201")
        );
        let id_only = Attribution {
            container: Some(format!("{:064x}", 7)),
            ..Default::default()
        };
        assert_eq!(container_label(&id_only).as_deref(), Some("000000000000"));
        assert_eq!(container_label(&Attribution::default()), None);

        let mut r = Resolver::new(Config {
            window_ns: S,
            resolve_after_ns: 10 * S,
            max_dests: 10,
            fleet: true,
        });
        let mut fleet = Vec::new();
        let f = failure("192.0.2.9", 443, Reason::Refused);
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        for (i, n) in names.iter().enumerate() {
            for _ in 0..=i {
                r.on_failure_in(&f, Some(&a(n, None)), S, &mut fleet);
            }
        }
        let mut rec = Vec::new();
        r.tick(2 * S, &mut fleet, &mut rec);
        let last = fleet.last().unwrap();
        assert_eq!(last.containers.len(), MAX_PROCS);
        assert_eq!(last.containers[0], ("e".to_string(), 5));

        // The last label is reused only while all four fields stay the
        // same: names learned later, another pod's namespace, a host caller.
        let mut r = Resolver::new(Config {
            window_ns: S,
            resolve_after_ns: 10 * S,
            max_dests: 10,
            fleet: true,
        });
        let mut fleet = Vec::new();
        let named = a("api", Some("api-7f9c"));
        let other_ns = Attribution {
            pod_namespace: Some("billing".into()),
            ..named.clone()
        };
        let callers = [
            id_only.clone(),
            id_only,
            named.clone(),
            other_ns,
            Attribution::default(),
            named,
        ];
        for c in &callers {
            r.on_failure_in(&f, Some(c), S, &mut fleet);
        }
        let mut rec = Vec::new();
        r.tick(2 * S, &mut fleet, &mut rec);
        assert_eq!(
            fleet.last().unwrap().containers,
            vec![
                ("000000000000".to_string(), 2),
                ("payments/api-7f9c (api)".to_string(), 2),
                ("billing/api-7f9c (api)".to_string(), 1),
            ]
        );
    }

    #[test]
    fn fires_once_reposts_each_window_and_resolves_on_success() {
        let mut r = resolver(10);
        let (mut fleet, mut rec) = (Vec::new(), Vec::new());
        let f = Failure {
            ts_ns: S,
            ..failure("192.0.2.9", 443, Reason::Refused)
        };
        r.on_failure(&f, S, &mut fleet);
        for i in 2..100 {
            let t = i * S / 10 + S;
            let g = Failure {
                ts_ns: t,
                ..failure("192.0.2.9", 443, Reason::Timeout)
            };
            r.on_failure(&g, t, &mut fleet);
        }
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet[0].state, FleetState::Firing);
        assert_eq!(fleet[0].ends_ns, S + 240 * S);
        r.tick(60 * S, &mut fleet, &mut rec);
        assert_eq!(fleet.len(), 1, "not due yet");
        r.tick(61 * S, &mut fleet, &mut rec);
        assert_eq!(fleet.len(), 2, "re-posted after one window");
        let a = &fleet[1];
        assert_eq!(a.count, 99);
        assert_eq!(
            a.reason,
            Some(Reason::Refused),
            "the label stays the first reason"
        );
        assert_eq!(a.reasons, vec![(Reason::Timeout, 98), (Reason::Refused, 1)]);
        assert_eq!(a.starts_ns, S);
        assert_eq!(a.ends_ns, 61 * S + 240 * S);
        // Another destination succeeding changes nothing.
        r.on_established(
            "192.0.2.9".parse().unwrap(),
            80,
            70 * S,
            &mut fleet,
            &mut rec,
        );
        assert!(rec.is_empty());
        r.on_established(
            "192.0.2.9".parse().unwrap(),
            443,
            70 * S,
            &mut fleet,
            &mut rec,
        );
        assert_eq!(rec.len(), 1);
        let Alert::Resolved(r0) = &rec[0] else {
            panic!("{rec:?}")
        };
        assert_eq!(r0.by, ResolvedBy::Success);
        assert_eq!(r0.count, 99);
        assert_eq!(fleet[2].state, FleetState::Resolved(ResolvedBy::Success));
        assert_eq!(fleet[2].ends_ns, 70 * S);
        assert_eq!(r.firing(), 0);
        // Its stale check does nothing.
        r.tick(200 * S, &mut fleet, &mut rec);
        assert_eq!((fleet.len(), rec.len()), (3, 1));
        // Failing again fires again.
        r.on_failure(&f, 201 * S, &mut fleet);
        assert_eq!(fleet.len(), 4);
        assert_eq!(r.stats().fired, 2);
    }

    #[test]
    fn quiet_for_resolve_after_resolves() {
        let mut r = resolver(10);
        let (mut fleet, mut rec) = (Vec::new(), Vec::new());
        r.on_failure(
            &failure("2001:db8::1", 5432, Reason::Timeout),
            0,
            &mut fleet,
        );
        for t in (60..=240).step_by(60) {
            r.tick(t * S, &mut fleet, &mut rec);
        }
        assert!(rec.is_empty(), "reposted while quiet for < 5m");
        assert_eq!(fleet.len(), 5);
        r.tick(300 * S, &mut fleet, &mut rec);
        assert_eq!(rec.len(), 1);
        assert!(matches!(&rec[0], Alert::Resolved(r) if r.by == ResolvedBy::Quiet));
        assert_eq!(
            fleet.last().unwrap().state,
            FleetState::Resolved(ResolvedBy::Quiet)
        );
        assert_eq!(
            r.stats(),
            ResolveStats {
                fired: 1,
                reposts: 4,
                resolved: 1,
                untracked: 0
            }
        );
    }

    fn slow(daddr: &str, port: u16, ts_ns: u64) -> Slow {
        Slow {
            caller: Some(Caller::sample(9, b"psql")),
            family: crate::event::Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            daddr: daddr.parse().unwrap(),
            dport: port,
            seen: crate::event::Seen::Live,
            ts_ns,
            elapsed_ns: 3 * S,
            retransmits: 1,
            dname: None,
        }
    }

    #[test]
    fn hanging_fires_its_own_alert_and_resolves_like_failures() {
        let mut r = resolver(10);
        let (mut fleet, mut rec) = (Vec::new(), Vec::new());
        r.on_slow(&slow("192.0.2.9", 5432, S), S, &mut fleet);
        r.on_slow(&slow("192.0.2.9", 5432, 2 * S), 2 * S, &mut fleet);
        assert_eq!(fleet.len(), 1, "fires once");
        assert_eq!(
            (fleet[0].trouble, fleet[0].reason, fleet[0].state),
            (Trouble::Hanging, None, FleetState::Firing)
        );
        // The attempt then times out: the failure is an alert of its own.
        r.on_failure(
            &Failure {
                ts_ns: 4 * S,
                ..failure("192.0.2.9", 5432, Reason::Timeout)
            },
            4 * S,
            &mut fleet,
        );
        assert_eq!(fleet.len(), 2);
        assert_eq!(fleet[1].trouble, Trouble::Failing);
        assert_eq!(r.firing(), 2);
        // Re-posted each period, with the count of hanging attempts.
        r.tick(64 * S, &mut fleet, &mut rec);
        let hang = fleet.iter().rev().find(|a| a.trouble == Trouble::Hanging);
        assert_eq!(hang.map(|a| a.count), Some(2));
        assert_eq!(fleet.len(), 4);
        // A success resolves both; only the failures say "recovered".
        r.on_established(
            "192.0.2.9".parse().unwrap(),
            5432,
            70 * S,
            &mut fleet,
            &mut rec,
        );
        let resolved: Vec<_> = fleet[4..].iter().map(|a| (a.trouble, a.state)).collect();
        assert_eq!(
            resolved,
            [
                (Trouble::Failing, FleetState::Resolved(ResolvedBy::Success)),
                (Trouble::Hanging, FleetState::Resolved(ResolvedBy::Success)),
            ]
        );
        assert_eq!(rec.len(), 1);
        assert_eq!(r.firing(), 0);
        // Hanging again, then quiet for resolve_after: resolved by the timer.
        r.on_slow(&slow("192.0.2.9", 5432, 100 * S), 100 * S, &mut fleet);
        for t in (160..=400).step_by(60) {
            r.tick(t * S, &mut fleet, &mut rec);
        }
        assert_eq!(
            fleet.last().map(|a| (a.trouble, a.state)),
            Some((Trouble::Hanging, FleetState::Resolved(ResolvedBy::Quiet)))
        );
        assert_eq!(rec.len(), 1, "no recovered message for hanging");
        assert_eq!(r.firing(), 0);
    }

    #[test]
    fn hanging_is_not_tracked_without_alertmanager() {
        let mut r = Resolver::new(Config {
            fleet: false,
            ..resolver(10).cfg
        });
        let mut fleet = Vec::new();
        r.on_slow(&slow("192.0.2.9", 5432, S), S, &mut fleet);
        assert_eq!((r.firing(), fleet.len()), (0, 0));
    }

    #[test]
    fn bounded_and_silent_without_alertmanager() {
        let mut r = Resolver::new(Config {
            window_ns: 3 * S,
            resolve_after_ns: S,
            max_dests: 2,
            fleet: false,
        });
        let (mut fleet, mut rec) = (Vec::new(), Vec::new());
        for port in 0..5 {
            r.on_failure(&failure("192.0.2.9", port, Reason::Refused), 0, &mut fleet);
        }
        assert_eq!(r.firing(), 2);
        assert_eq!(r.stats().untracked, 3);
        r.tick(S, &mut fleet, &mut rec);
        assert!(fleet.is_empty());
        assert_eq!(rec.len(), 2, "period is min(window, resolve_after)");
    }
}

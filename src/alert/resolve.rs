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

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::policy::{Alert, Dest, Proc, Tally, MAX_PROCS};
use crate::event::{Attribution, Failure, Reason};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetState {
    Firing,
    Resolved(ResolvedBy),
}

/// One post of a destination's alert to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAlert {
    pub dest: Dest,
    /// The first failure's reason: a label, so fixed for the alert's life.
    pub reason: Reason,
    pub state: FleetState,
    /// Monotonic ns: the first failure (`startsAt`) and `endsAt`.
    pub starts_ns: u64,
    pub ends_ns: u64,
    pub last_ns: u64,
    pub count: u64,
    /// Failures per reason, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
    pub procs: Vec<Proc>,
    pub other_procs: u64,
    /// The containers (and pods) failing, by name, most frequent first, at
    /// most [`MAX_PROCS`]; escaped.
    pub containers: Vec<(String, u64)>,
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
    reason: Reason,
    first_ns: u64,
    last_ns: u64,
    tally: Tally,
    /// The time of its one live entry in `checks`.
    check_ns: u64,
    containers: Vec<(String, u64)>,
}

/// A container as an annotation names it: `namespace/pod (container)` in
/// a pod, else its name, else its short id; escaped.
pub fn container_label(a: &Attribution) -> Option<String> {
    use crate::text::{Escaped, PodRef};
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
    fn add_container(&mut self, attr: Option<&Attribution>) {
        let Some(label) = attr.and_then(container_label) else {
            return;
        };
        if let Some(e) = self.containers.iter_mut().find(|e| e.0 == label) {
            e.1 += 1;
        } else if self.containers.len() < MAX_PROCS {
            self.containers.push((label, 1));
        }
    }

    fn add(&mut self, f: &Failure) {
        self.last_ns = self.last_ns.max(f.ts_ns);
        self.tally.add(
            Some(f.reason),
            f.caller.map(|c| c.comm),
            f.caller.map(|c| c.pid),
        );
    }

    fn alert(&self, dest: Dest, state: FleetState, ends_ns: u64) -> FleetAlert {
        FleetAlert {
            dest,
            reason: self.reason,
            state,
            starts_ns: self.first_ns,
            ends_ns,
            last_ns: self.last_ns,
            count: self.tally.count,
            reasons: self.tally.reasons_by_count(),
            procs: self.tally.procs_by_count(),
            other_procs: self.tally.other_procs,
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

pub struct Resolver {
    cfg: Config,
    firing: HashMap<Dest, Firing, crate::hash::FastHash>,
    /// (time, destination) of each firing destination's next check, in
    /// time order: each is pushed at `now + period` with a non-decreasing
    /// `now`. An entry whose destination resolved since is stale.
    checks: VecDeque<(u64, Dest)>,
    stats: ResolveStats,
}

impl Resolver {
    pub fn new(cfg: Config) -> Self {
        Resolver {
            cfg,
            firing: HashMap::default(),
            checks: VecDeque::new(),
            stats: ResolveStats::default(),
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
        let dest = Dest {
            addr: f.daddr,
            port: f.dport,
        };
        if let Some(x) = self.firing.get_mut(&dest) {
            x.add(f);
            x.add_container(attr);
            return;
        }
        if self.firing.len() >= self.cfg.max_dests {
            self.stats.untracked += 1;
            return;
        }
        let check_ns = now_ns.saturating_add(self.cfg.period_ns());
        // The kernel's time of the failure (same clock, a little earlier).
        let at = f.ts_ns.min(now_ns);
        let mut x = Firing {
            reason: f.reason,
            first_ns: at,
            last_ns: at,
            tally: Tally::default(),
            check_ns,
            containers: Vec::new(),
        };
        x.add(f);
        x.add_container(attr);
        self.stats.fired += 1;
        if self.cfg.fleet {
            fleet.push(x.alert(dest, FleetState::Firing, self.ends(now_ns)));
        }
        self.checks.push_back((check_ns, dest));
        self.firing.insert(dest, x);
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
        if let Some(x) = self.firing.remove(&dest) {
            self.resolve(dest, &x, now_ns, ResolvedBy::Success, fleet, alerts);
        }
    }

    fn resolve(
        &mut self,
        dest: Dest,
        x: &Firing,
        now_ns: u64,
        by: ResolvedBy,
        fleet: &mut Vec<FleetAlert>,
        alerts: &mut Vec<Alert>,
    ) {
        self.stats.resolved += 1;
        if self.cfg.fleet {
            fleet.push(x.alert(dest, FleetState::Resolved(by), now_ns));
        }
        alerts.push(Alert::Resolved(x.recovery(dest, now_ns, by)));
    }

    /// The checks due by `now_ns`: resolves the quiet destinations and
    /// re-posts the others. O(1) when none is due (called after every drain).
    pub fn tick(&mut self, now_ns: u64, fleet: &mut Vec<FleetAlert>, alerts: &mut Vec<Alert>) {
        while let Some(&(at, dest)) = self.checks.front() {
            if at > now_ns {
                break;
            }
            self.checks.pop_front();
            let Some(x) = self.firing.get_mut(&dest) else {
                continue; // resolved since
            };
            if x.check_ns != at {
                continue; // stale
            }
            if now_ns.saturating_sub(x.last_ns) >= self.cfg.resolve_after_ns {
                if let Some(x) = self.firing.remove(&dest) {
                    self.resolve(dest, &x, now_ns, ResolvedBy::Quiet, fleet, alerts);
                }
                continue;
            }
            let check_ns = now_ns.saturating_add(self.cfg.period_ns());
            x.check_ns = check_ns;
            let ends =
                now_ns.saturating_add(self.cfg.period_ns().saturating_mul(ENDS_AFTER_PERIODS));
            if self.cfg.fleet {
                let a = x.alert(dest, FleetState::Firing, ends);
                fleet.push(a);
            }
            self.stats.reposts += 1;
            self.checks.push_back((check_ns, dest));
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
            Reason::Refused,
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

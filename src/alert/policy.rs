//! Which failures become alerts. The first failure to a destination alerts
//! at once, in full; further failures to it are counted for one window and
//! then summarised, one summary per window while it keeps failing. Hanging
//! attempts (`connect_slow`) get the same treatment, apart.
//!
//! Fair shares: a source (cgroup and uid: the unit or container, and the
//! user) may hold at most `per_source` open windows. Past that, its new
//! destinations fold into one summary per source and window, naming the
//! source, its top destinations and the total, while every other source's
//! first failure to a destination still alerts at once. When the whole
//! table is full, room is made from the source holding the most windows.
//! Pure: the caller passes the time, so tests use a fake clock.

use std::collections::{HashMap, VecDeque};

pub use super::types::{Alert, Dest, Proc, Summary, Tally, What, MAX_PROCS, MAX_TOP_DESTS};
use crate::event::hash::FastHash;
use crate::event::{Attribution, Comm, Failure, Fallback, Reason, Slow, Source};

/// Destinations a fold counts one by one; the rest only in the total.
const FOLD_DESTS: usize = 1024;
/// Sources with a fold of their own; beyond, they share one.
const MAX_FOLDS: usize = 1024;

/// One failure (or hanging attempt) as a window counts it.
#[derive(Clone, Copy)]
struct Seen<'a> {
    reason: Option<Reason>,
    comm: Option<Comm>,
    pid: Option<u32>,
    unit: Option<&'a str>,
}

#[derive(Debug, Default)]
struct Window {
    ends_ns: u64,
    source: Source,
    tally: Tally,
    units: Vec<(String, u64)>,
}

impl Window {
    fn new(ends_ns: u64, source: Source) -> Self {
        Window {
            ends_ns,
            source,
            ..Default::default()
        }
    }

    fn add(&mut self, s: &Seen<'_>) {
        self.tally.add(s.reason, s.comm, s.pid);
        if let Some(u) = s.unit {
            if let Some(e) = self.units.iter_mut().find(|e| e.0 == u) {
                e.1 += 1;
            } else if self.units.len() < MAX_PROCS {
                self.units.push((u.to_string(), 1));
            }
        }
    }

    fn summary(&mut self, what: What, dest: Option<Dest>, window_ns: u64) -> Summary {
        let mut units = std::mem::take(&mut self.units);
        units.sort_by_key(|u| std::cmp::Reverse(u.1));
        Summary {
            what,
            dest,
            source: None,
            count: self.tally.count,
            window_ns,
            reasons: self.tally.reasons_by_count(),
            procs: self.tally.procs_by_count(),
            other_procs: self.tally.other_procs,
            units,
            top_dests: Vec::new(),
            dests: u64::from(dest.is_some()),
        }
    }
}

/// A source's failures beyond its share, in one window.
#[derive(Debug, Default)]
struct Fold {
    /// Failures, unless this policy counts degradations (see `on_recovered`).
    what: What,
    window: Window,
    name: String,
    dests: HashMap<Dest, u64, FastHash>,
    /// Destinations not counted one by one (FOLD_DESTS reached).
    other_dests: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PolicyStats {
    pub firsts: u64,
    pub summaries: u64,
    /// Failures counted into a summary instead of alerting on their own.
    pub summarised: u64,
    /// Failures folded into their source's summary (over its share).
    pub folded: u64,
}

type Key = (What, Dest);

pub struct Policy {
    window_ns: u64,
    max_dests: usize,
    per_source: usize,
    windows: HashMap<Key, Window, FastHash>,
    /// Open windows per source.
    held: HashMap<Source, usize, FastHash>,
    folds: HashMap<Source, Fold, FastHash>,
    /// When each window ends, in the order they end: windows are opened
    /// with a non-decreasing `now`, so this is sorted, and `tick` looks at
    /// its front only. An entry whose window has since moved on is stale.
    ends: VecDeque<(u64, Option<Key>, Source)>,
    stats: PolicyStats,
}

/// Who a summary names a caller by: its container's name where the
/// runtime gave one (what operators know it by), else its unit, else its
/// container's id.
fn who(attr: Option<&Attribution>) -> Option<&str> {
    attr.and_then(|a| {
        a.container_name
            .as_deref()
            .or(a.unit.as_deref())
            .or(a.container.as_deref())
    })
}

fn name_source(s: Source, attr: Option<&Attribution>) -> String {
    let who = who(attr)
        .map(str::to_string)
        .map(|u| crate::output::text::Escaped(&u).to_string())
        .unwrap_or_else(|| format!("cgroup {}", s.cgroup_id));
    format!("{who} uid {}", s.uid)
}

impl Policy {
    pub fn new(window_ns: u64, max_dests: usize, per_source: usize) -> Self {
        Policy {
            window_ns,
            max_dests,
            per_source: per_source.max(1),
            windows: HashMap::default(),
            held: HashMap::default(),
            folds: HashMap::default(),
            ends: VecDeque::new(),
            stats: PolicyStats::default(),
        }
    }

    pub fn stats(&self) -> PolicyStats {
        self.stats
    }

    /// A failure seen at `now_ns`: the alert to send now, if any.
    pub fn on_failure(
        &mut self,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> Option<Alert> {
        self.count_failure(What::Failures, f, attr, now_ns)
            .then(|| Alert::First(*f, attr.cloned()))
    }

    /// A failure the application recovered from, at `now_ns`: the notice
    /// to send now, if any. Keep these in a policy of their own, so their
    /// windows and shares are apart from the failures' and their folds
    /// say "degraded", never "failed".
    pub fn on_recovered(
        &mut self,
        f: &Failure,
        fb: &Fallback,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> Option<Alert> {
        self.count_failure(What::Degraded, f, attr, now_ns)
            .then(|| Alert::Degraded(*f, *fb, attr.cloned()))
    }

    /// A connection that broke after it was established, at `now_ns`: the
    /// alert to send now, if any. Kept in a policy of its own, as
    /// recoveries are, so its folds say "broken", never "failed".
    pub fn on_broken(
        &mut self,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> Option<Alert> {
        self.count_failure(What::Broken, f, attr, now_ns)
            .then(|| Alert::First(*f, attr.cloned()))
    }

    fn count_failure(
        &mut self,
        what: What,
        f: &Failure,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> bool {
        let dest = Dest {
            addr: f.daddr,
            port: f.dport,
        };
        let source = f.caller.map(|c| c.source()).unwrap_or_default();
        let seen = Seen {
            reason: Some(f.reason),
            comm: f.caller.map(|c| c.comm),
            pid: f.caller.map(|c| c.pid),
            unit: who(attr),
        };
        self.count(what, dest, source, &seen, attr, now_ns)
    }

    /// An attempt found hanging at `now_ns`: the alert to send now, if any.
    pub fn on_slow(&mut self, s: &Slow, attr: Option<&Attribution>, now_ns: u64) -> Option<Alert> {
        let dest = Dest {
            addr: s.daddr,
            port: s.dport,
        };
        let source = s.caller.map(|c| c.source()).unwrap_or_default();
        let seen = Seen {
            reason: None,
            comm: s.caller.map(|c| c.comm),
            pid: s.caller.map(|c| c.pid),
            unit: who(attr),
        };
        self.count(What::Hanging, dest, source, &seen, attr, now_ns)
            .then(|| Alert::Slow(*s, attr.cloned()))
    }

    /// Counts one into its window; true when it opened one (alert it now).
    fn count(
        &mut self,
        what: What,
        dest: Dest,
        source: Source,
        seen: &Seen<'_>,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> bool {
        if let Some(w) = self.windows.get_mut(&(what, dest)) {
            w.add(seen);
            self.stats.summarised += 1;
            return false;
        }
        let held = self.held.get(&source).copied().unwrap_or(0);
        if held >= self.per_source
            || (self.windows.len() >= self.max_dests && !self.make_room(source, now_ns))
        {
            self.fold(what, dest, source, seen, attr, now_ns);
            return false;
        }
        let ends = now_ns.saturating_add(self.window_ns);
        self.ends.push_back((ends, Some((what, dest)), source));
        self.windows.insert((what, dest), Window::new(ends, source));
        *self.held.entry(source).or_default() += 1;
        self.stats.firsts += 1;
        true
    }

    /// A full table: closes the newest-ending window of the source holding
    /// the most, unless that is `incoming`'s own source. Its counts so far
    /// move to that source's fold, so nothing counted is lost.
    fn make_room(&mut self, incoming: Source, now_ns: u64) -> bool {
        let Some((&hog, &n)) = self.held.iter().max_by_key(|(_, n)| **n) else {
            return false;
        };
        let mine = self.held.get(&incoming).copied().unwrap_or(0);
        if hog == incoming || n <= mine + 1 {
            return false;
        }
        let Some(key) = self
            .windows
            .iter()
            .filter(|(_, w)| w.source == hog)
            .max_by_key(|(_, w)| w.ends_ns)
            .map(|(k, _)| *k)
        else {
            return false;
        };
        let w = self.windows.remove(&key).expect("found above");
        self.release(hog);
        if w.tally.count > 0 {
            let fold = self.fold_of(hog, None, now_ns);
            fold.window.tally.count += w.tally.count;
            for (i, n) in w.tally.reasons.iter().enumerate() {
                fold.window.tally.reasons[i] += n;
            }
            *fold.dests.entry(key.1).or_default() += w.tally.count;
        }
        true
    }

    fn release(&mut self, source: Source) {
        if let Some(n) = self.held.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&source);
            }
        }
    }

    /// The source's fold for this window, opened if need be; too many
    /// sources folding at once share one.
    fn fold_of(&mut self, source: Source, attr: Option<&Attribution>, now_ns: u64) -> &mut Fold {
        let key = if self.folds.len() >= MAX_FOLDS && !self.folds.contains_key(&source) {
            Source {
                cgroup_id: u64::MAX,
                uid: u32::MAX,
            }
        } else {
            source
        };
        if !self.folds.contains_key(&key) {
            let ends = now_ns.saturating_add(self.window_ns);
            self.ends.push_back((ends, None, key));
            let name = if key.cgroup_id == u64::MAX {
                "other sources (too many folding at once)".to_string()
            } else {
                name_source(source, attr)
            };
            self.folds.insert(
                key,
                Fold {
                    what: What::Failures,
                    window: Window::new(ends, key),
                    name,
                    ..Default::default()
                },
            );
        }
        self.folds.get_mut(&key).expect("inserted above")
    }

    fn fold(
        &mut self,
        what: What,
        dest: Dest,
        source: Source,
        seen: &Seen<'_>,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) {
        self.stats.folded += 1;
        let fold = self.fold_of(source, attr, now_ns);
        if matches!(what, What::Degraded | What::Broken) {
            fold.what = what;
        }
        fold.window.add(seen);
        if let Some(n) = fold.dests.get_mut(&dest) {
            *n += 1;
        } else if fold.dests.len() < FOLD_DESTS {
            fold.dests.insert(dest, 1);
        } else {
            fold.other_dests += 1;
        }
    }

    /// Ends the windows due by `now_ns`: a summary for each that counted
    /// (and a new window, as it is still failing); a quiet one is
    /// forgotten, so its next failure alerts at once again. O(1) when
    /// nothing is due: the daemon calls it after every drain.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        while let Some(&(ends, key, source)) = self.ends.front() {
            if ends > now_ns {
                break;
            }
            self.ends.pop_front();
            match key {
                Some(k) => self.end_window(k, ends, now_ns, out),
                None => self.end_fold(source, ends, out),
            }
        }
    }

    fn end_window(&mut self, k: Key, ends: u64, now_ns: u64, out: &mut Vec<Alert>) {
        let Some(w) = self.windows.get_mut(&k) else {
            return;
        };
        if w.ends_ns != ends {
            return; // stale: this window was renewed later
        }
        if w.tally.count == 0 {
            let source = w.source;
            self.windows.remove(&k);
            self.release(source);
            return;
        }
        out.push(Alert::Summary(w.summary(k.0, Some(k.1), self.window_ns)));
        self.stats.summaries += 1;
        let renewed = now_ns.saturating_add(self.window_ns);
        let source = w.source;
        *w = Window::new(renewed, source);
        self.ends.push_back((renewed, Some(k), source));
    }

    fn end_fold(&mut self, source: Source, ends: u64, out: &mut Vec<Alert>) {
        let Some(f) = self.folds.get(&source) else {
            return;
        };
        if f.window.ends_ns != ends {
            return;
        }
        let mut f = self.folds.remove(&source).expect("found above");
        out.push(Alert::Summary(fold_summary(&mut f, self.window_ns)));
        self.stats.summaries += 1;
    }

    /// At shutdown: summaries of every open window that counted.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        let window_ns = self.window_ns;
        for (k, w) in self.windows.iter_mut() {
            if w.tally.count > 0 {
                out.push(Alert::Summary(w.summary(k.0, Some(k.1), window_ns)));
                self.stats.summaries += 1;
            }
        }
        for f in self.folds.values_mut() {
            if f.window.tally.count > 0 {
                out.push(Alert::Summary(fold_summary(f, window_ns)));
                self.stats.summaries += 1;
            }
        }
        self.windows.clear();
        self.folds.clear();
        self.held.clear();
        self.ends.clear();
    }

    /// When the next window ends, for the caller's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.ends.front().map(|e| e.0)
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }
}

fn fold_summary(f: &mut Fold, window_ns: u64) -> Summary {
    let mut s = f.window.summary(f.what, None, window_ns);
    let mut top: Vec<(Dest, u64)> = f.dests.iter().map(|(d, n)| (*d, *n)).collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    s.dests = top.len() as u64 + f.other_dests;
    top.truncate(MAX_TOP_DESTS);
    s.top_dests = top;
    s.source = Some(std::mem::take(&mut f.name));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Caller, Family, Seen as SeenMark};

    const S: u64 = 1_000_000_000;

    fn failure_from(
        daddr: &str,
        port: u16,
        reason: Reason,
        comm: &[u8],
        pid: u32,
        cgroup: u64,
    ) -> Failure {
        Failure {
            caller: Some(Caller {
                uid: 1000,
                cgroup_id: cgroup,
                ..Caller::sample(pid, comm)
            }),
            ..Failure::sample(daddr, port, reason)
        }
    }

    fn failure(daddr: &str, port: u16, reason: Reason, comm: &[u8], pid: u32) -> Failure {
        failure_from(daddr, port, reason, comm, pid, 1)
    }

    fn summaries(out: &[Alert]) -> Vec<&Summary> {
        out.iter()
            .filter_map(|a| match a {
                Alert::Summary(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn first(p: &mut Policy, f: &Failure, now: u64) -> bool {
        matches!(p.on_failure(f, None, now), Some(Alert::First(..)))
    }

    #[test]
    fn first_alerts_at_once_then_one_summary_per_window() {
        let mut p = Policy::new(60 * S, 100, 100);
        let f = failure("192.0.2.9", 443, Reason::Refused, b"curl", 10);
        assert_eq!(p.on_failure(&f, None, 0), Some(Alert::First(f, None)));
        for i in 1..=1999u64 {
            let reason = if i % 2 == 0 {
                Reason::Refused
            } else {
                Reason::Timeout
            };
            let comm: &[u8] = if i % 3 == 0 { b"wget" } else { b"curl" };
            let g = failure("192.0.2.9", 443, reason, comm, 10 + (i % 3 == 0) as u32);
            assert_eq!(p.on_failure(&g, None, i * S / 100), None);
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
        assert_eq!(s[0].procs[0].comm, Some(Comm::new(b"curl")));
        assert_eq!(s[0].procs[0].count, 1333);
        assert_eq!(s[0].procs[1].count, 666);
        out.clear();
        p.on_failure(&f, None, 61 * S);
        p.on_failure(&f, None, 62 * S);
        p.tick(120 * S, &mut out);
        assert_eq!(summaries(&out)[0].count, 2);
        // A quiet window forgets the destination: the next failure is new.
        out.clear();
        p.tick(180 * S, &mut out);
        assert!(out.is_empty());
        assert_eq!(p.tracked(), 0);
        assert!(first(&mut p, &f, 181 * S));
        assert_eq!(
            p.stats(),
            PolicyStats {
                firsts: 2,
                summaries: 2,
                summarised: 2001,
                folded: 0,
            }
        );
    }

    #[test]
    fn summaries_group_by_unit() {
        let mut p = Policy::new(10 * S, 100, 100);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        let a = Attribution {
            path: "/system.slice/api.service".into(),
            unit: Some("api.service".into()),
            ..Default::default()
        };
        p.on_failure(&f, Some(&a), 0);
        p.on_failure(&f, Some(&a), 1);
        p.on_failure(&f, None, 2);
        let mut out = Vec::new();
        p.flush(&mut out);
        assert_eq!(
            summaries(&out)[0].units,
            vec![("api.service".to_string(), 1)]
        );
        // A container the runtime named goes by its name, not its scope.
        let mut p = Policy::new(10 * S, 100, 100);
        let c = Attribution {
            unit: Some(format!("docker-{:064x}.scope", 1)),
            container: Some(format!("{:064x}", 1)),
            container_name: Some("web-1".into()),
            ..Default::default()
        };
        p.on_failure(&f, Some(&c), 0);
        p.on_failure(&f, Some(&c), 1);
        let mut out = Vec::new();
        p.flush(&mut out);
        assert_eq!(summaries(&out)[0].units, vec![("web-1".to_string(), 1)]);
    }

    #[test]
    fn a_single_failure_gives_no_summary() {
        let mut p = Policy::new(3 * S, 100, 100);
        let f = failure("192.0.2.9", 80, Reason::Timeout, b"app", 1);
        assert!(p.on_failure(&f, None, 0).is_some());
        let mut out = Vec::new();
        p.tick(10 * S, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn destinations_are_independent_and_keyed_by_port() {
        let mut p = Policy::new(60 * S, 100, 100);
        let a = failure("192.0.2.9", 80, Reason::Refused, b"a", 1);
        let b = failure("192.0.2.9", 81, Reason::Refused, b"a", 1);
        let c = failure("2001:db8::1", 80, Reason::Refused, b"a", 1);
        assert!(p.on_failure(&a, None, 0).is_some());
        assert!(p.on_failure(&b, None, 0).is_some());
        assert!(p.on_failure(&c, None, 0).is_some());
        assert!(p.on_failure(&a, None, 1).is_none());
        assert_eq!(p.tracked(), 3);
    }

    #[test]
    fn processes_beyond_the_limit_are_counted_together() {
        let mut p = Policy::new(10 * S, 100, 100);
        p.on_failure(&failure("192.0.2.9", 80, Reason::Refused, b"p", 0), None, 0);
        for pid in 1..=8 {
            p.on_failure(
                &failure("192.0.2.9", 80, Reason::Refused, b"p", pid),
                None,
                1,
            );
        }
        let mut out = Vec::new();
        p.flush(&mut out);
        let s = summaries(&out);
        assert_eq!(s[0].procs.len(), MAX_PROCS);
        assert_eq!(s[0].other_procs, 3);
        assert_eq!(s[0].count, 8);
    }

    #[test]
    fn a_flooding_source_folds_and_never_hides_another() {
        let mut p = Policy::new(10 * S, 64, 8);
        // The flooder (cgroup 1) fails to 1000 destinations.
        let mut firsts = 0;
        for i in 0..1000u32 {
            let f = failure_from(
                &format!("10.0.{}.{}", i / 250, i % 250),
                80,
                Reason::Refused,
                b"flood",
                1,
                1,
            );
            firsts += u32::from(first(&mut p, &f, 1));
        }
        assert_eq!(firsts, 8, "its share, then it folds");
        // The victim (cgroup 2) is alerted at once, for each destination.
        for port in [5432, 5433] {
            let v = failure_from("192.0.2.50", port, Reason::Refused, b"db", 2, 2);
            assert!(first(&mut p, &v, 2));
        }
        let mut out = Vec::new();
        p.tick(11 * S, &mut out);
        let folds: Vec<&Summary> = summaries(&out)
            .into_iter()
            .filter(|s| s.source.is_some())
            .collect();
        assert_eq!(folds.len(), 1);
        assert_eq!(folds[0].count, 992);
        assert_eq!(folds[0].dests, 992);
        assert_eq!(folds[0].top_dests.len(), MAX_TOP_DESTS);
        assert_eq!(folds[0].source.as_deref(), Some("cgroup 1 uid 1000"));
        assert_eq!(p.stats().folded, 992);
    }

    #[test]
    fn a_full_table_makes_room_from_the_largest_source() {
        // Table of 16, 8 per source: two flooders fill it.
        let mut p = Policy::new(10 * S, 16, 8);
        for cg in [1u64, 3] {
            for i in 0..8u32 {
                let f = failure_from(&format!("10.{cg}.0.{i}"), 80, Reason::Refused, b"f", 1, cg);
                assert!(first(&mut p, &f, 1));
            }
        }
        // A third source still gets its first alert, at a flooder's cost.
        let v = failure_from("192.0.2.50", 5432, Reason::Refused, b"db", 2, 2);
        assert!(first(&mut p, &v, 2));
        assert_eq!(p.tracked(), 16);
    }

    #[test]
    fn hanging_attempts_have_windows_of_their_own() {
        let mut p = Policy::new(10 * S, 100, 100);
        let f = failure("192.0.2.9", 80, Reason::Timeout, b"x", 1);
        let slow = Slow {
            caller: f.caller,
            family: Family::Ipv4,
            saddr: f.saddr,
            daddr: f.daddr,
            dport: 80,
            seen: SeenMark::Live,
            ts_ns: 0,
            elapsed_ns: 3 * S,
            retransmits: 1,
            dname: None,
        };
        assert!(matches!(p.on_slow(&slow, None, 0), Some(Alert::Slow(..))));
        assert!(p.on_slow(&slow, None, 1).is_none());
        // Its failure later is a first of its own kind.
        assert!(first(&mut p, &f, 2));
    }

    #[test]
    fn summaries_are_counted_whatever_the_buffer_held() {
        let mut p = Policy::new(10 * S, 10, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        p.on_failure(&f, None, 0);
        p.on_failure(&f, None, 1);
        let mut out = vec![Alert::First(f, None), Alert::First(f, None)];
        p.tick(10 * S, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(p.stats().summaries, 1);
    }

    #[test]
    fn time_at_the_end_of_the_clock_does_not_overflow() {
        let mut p = Policy::new(60 * S, 10, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        assert!(p.on_failure(&f, None, u64::MAX - S).is_some());
        p.on_failure(&f, None, u64::MAX - 1);
        let mut out = Vec::new();
        p.tick(u64::MAX, &mut out);
        assert_eq!(summaries(&out).len(), 1);
        p.flush(&mut out);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn flush_summarises_open_windows() {
        let mut p = Policy::new(60 * S, 10, 10);
        let f = failure("192.0.2.9", 80, Reason::Refused, b"x", 1);
        p.on_failure(&f, None, 0);
        p.on_failure(&f, None, 1);
        let mut out = Vec::new();
        p.flush(&mut out);
        assert_eq!(summaries(&out)[0].count, 1);
        assert_eq!(p.next_deadline(), None);
    }
}

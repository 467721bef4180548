//! Recovered or failed: a failed attempt is often not a failed request.
//! Clients race IPv6 against IPv4, walk the addresses a name resolved to,
//! or retry; when another path works the request succeeds. Each failure
//! is held for a short window and decided from what the same source did
//! next:
//!
//! - `ByName`: a connection of the same process (else the same source:
//!   cgroup and uid) to the same name and port succeeded, during or after
//!   the failed attempt. Exact: the name is the target.
//! - `Retry`: the same, to the same address and port.
//! - Without a name only unambiguous patterns of one process count, so a
//!   success to one service never hides another's outage on the same port:
//!   - `Race`: an attempt to the same port, overlapping the failed one,
//!     connected, and the failed one was abandoned right after;
//!   - `FamilySwitch`: the same thread's next attempt, right after the
//!     failure, went to the same port over the other address family (the
//!     A and AAAA of one name) and connected.
//!
//! A failure nothing recovers within the window is `Failed` (and pages);
//! at once when there is nothing left to wait for: the source has failed
//! on every address its DNS answers gave for that name.
//! Held failures and recent successes are bounded per source, so one
//! source's flood cannot decide another's early (a source over its share
//! has its further failures decided at once); what is decided early or
//! not remembered is counted. Pure: time comes from the caller.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::event::hash::FastHash;
pub use crate::event::{Decided, Fallback, Rule};
use crate::event::{Failure, Reason, Source, TimeoutBy};
use crate::pipeline::correlate::Connected;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long a failure waits for what recovers it; 0: no verdicts.
    pub window_ns: u64,
    /// Failures one source may have held; past it, its further ones are
    /// decided at once.
    pub per_source: usize,
    /// Failures held in all.
    pub max_held: usize,
    /// Successes remembered per source, and sources remembered.
    pub successes_per_source: usize,
    pub max_sources: usize,
}

impl Config {
    pub fn with_window(window_ns: u64) -> Config {
        Config {
            window_ns,
            per_source: 256,
            max_held: 16_384,
            successes_per_source: 32,
            max_sources: 4096,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VerdictStats {
    pub failed: u64,
    /// Recovered, by [`Rule`] (in `Rule::ALL`'s order).
    pub recovered: [u64; 4],
    /// Decided failed before their window ended: their source held its
    /// share, or the table was full.
    pub early: u64,
    /// Successes not remembered: too many sources at once.
    pub successes_dropped: u64,
    /// DNS answers not remembered: the table of answers full of live ones.
    pub answers_dropped: u64,
    /// Failures paged before their window ended because the source had
    /// failed on every address of the name: nothing left to wait for.
    pub exhausted: u64,
}

/// A successful attempt moves the name its address resolved from along:
/// a hash, so a success costs no copy of the name.
#[derive(Debug, Clone, Copy)]
struct Success {
    c: Connected,
    name: Option<u64>,
}

#[derive(Debug, Default)]
struct Answer {
    addrs: Vec<IpAddr>,
    at_ns: u64,
    /// The addresses (and ports) the source has failed on since its last
    /// success to the name: held or already decided, so a walk slower
    /// than the window is still seen to the end.
    failed: Vec<(IpAddr, u16)>,
}

/// Addresses of one answer kept for knowing when all have failed.
const MAX_ANSWER_ADDRS: usize = 16;

struct Held {
    f: Failure,
    name: Option<u64>,
    seq: u64,
}

pub struct Verdicts {
    cfg: Config,
    held: HashMap<Source, VecDeque<Held>, FastHash>,
    held_count: usize,
    /// (deadline, source, seq) in deadline order: deadlines are
    /// `now + window` with a non-decreasing `now`. Stale when decided since.
    deadlines: VecDeque<(u64, Source, u64)>,
    recent: HashMap<Source, VecDeque<Success>, FastHash>,
    /// The addresses each source's latest answers gave a name (A and
    /// AAAA apart, merged), and when: to know when every one has failed.
    answers: HashMap<(Source, u64), Answer, FastHash>,
    /// Each source's names in `answers`, oldest first (some maybe gone).
    answer_names: HashMap<Source, VecDeque<u64>, FastHash>,
    /// When a full table may be swept again (see [`FULL_SWEEP_NS`]).
    answers_sweep_ns: u64,
    recent_sweep_ns: u64,
    seq: u64,
    stats: VerdictStats,
    /// Keyed at random: names come from DNS servers, and one made to
    /// collide with another must not pass for it.
    names: std::hash::RandomState,
}

/// How long a success may still recover an attempt it overlapped (one
/// abandoned long after it, still by name or address).
const REMEMBER_NS: u64 = 30_000_000_000;
/// "Right after": a race's loser closed after the winner connected, or a
/// thread's next attempt after a failure.
const RIGHT_AFTER_NS: u64 = 100_000_000;
/// See [`Verdicts::tick`].
const BATCH_NS: u64 = 20_000_000;
/// Names whose answers are kept per source: a source asking a flood of
/// new names (a crawler, a scanner) makes room from its own oldest, never
/// from another source's.
const ANSWERS_PER_SOURCE: usize = 64;
/// A full table is swept for entries too old to matter at most this
/// often: a sweep walks the whole table, and a flood of new names or
/// sources would otherwise pay it once per answer or success (it was
/// 46% of tcpstate's CPU under a DNS client asking 30,000 new names a
/// second).
const FULL_SWEEP_NS: u64 = 1_000_000_000;

impl Verdicts {
    pub fn new(cfg: Config) -> Self {
        Verdicts {
            cfg,
            held: HashMap::default(),
            held_count: 0,
            deadlines: VecDeque::new(),
            recent: HashMap::default(),
            answers: HashMap::default(),
            answer_names: HashMap::default(),
            answers_sweep_ns: 0,
            recent_sweep_ns: 0,
            seq: 0,
            stats: VerdictStats::default(),
            names: std::hash::RandomState::new(),
        }
    }

    /// The key a name is compared by.
    pub fn name_key(&self, name: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.names.hash_one(name)
    }

    pub fn stats(&self) -> VerdictStats {
        self.stats
    }

    pub fn held(&self) -> usize {
        self.held_count
    }

    /// When the next held failure's window ends (maybe one decided since).
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.front().map(|d| d.0)
    }

    pub fn window_ns(&self) -> u64 {
        self.cfg.window_ns
    }

    fn decide(&mut self, d: Decided, out: &mut Vec<Decided>) {
        match &d {
            Decided::Failed(_) => self.stats.failed += 1,
            Decided::Recovered(_, fb) => self.stats.recovered[fb.rule as usize] += 1,
        }
        out.push(d);
    }

    /// A failure at `now_ns`, `name` its name's [`name_key`]: decided now
    /// (a success already recovered it, or it cannot be held) or held.
    pub fn on_failure(
        &mut self,
        f: &Failure,
        name: Option<u64>,
        now_ns: u64,
        out: &mut Vec<Decided>,
    ) {
        let Some(caller) = f.caller else {
            // Whose it was is unknown: nothing can recover it.
            return self.decide(Decided::Failed(*f), out);
        };
        let source = caller.source();
        if let Some(fb) = self.recent.get(&source).and_then(|r| {
            r.iter()
                .rev()
                .find_map(|s| recovers(f, name, s, self.cfg.window_ns))
        }) {
            return self.decide(Decided::Recovered(*f, fb), out);
        }
        if self.cfg.window_ns == 0 {
            return self.decide(Decided::Failed(*f), out);
        }
        // A source over its share (a storm) has its further failures
        // decided at once: never another source's, and the storm's path
        // copies nothing into the table.
        let queue_len = self.held.get(&source).map_or(0, VecDeque::len);
        if queue_len >= self.cfg.per_source
            || (self.held_count >= self.cfg.max_held && !self.make_room(source, out))
        {
            self.stats.early += 1;
            return self.decide(Decided::Failed(*f), out);
        }
        self.seq += 1;
        let seq = self.seq;
        let q = self.held.entry(source).or_default();
        q.push_back(Held { f: *f, name, seq });
        self.held_count += 1;
        self.deadlines
            .push_back((now_ns.saturating_add(self.cfg.window_ns), source, seq));
        if let Some(name) = name {
            self.exhausted(source, f, name, out);
        }
    }

    /// The oldest held failure of `source`, decided failed now.
    fn decide_oldest(&mut self, source: Source, out: &mut Vec<Decided>) {
        let Some(q) = self.held.get_mut(&source) else {
            return;
        };
        if let Some(h) = q.pop_front() {
            if q.is_empty() {
                self.held.remove(&source);
            }
            self.held_count -= 1;
            self.stats.early += 1;
            self.decide(Decided::Failed(h.f), out);
        }
    }

    /// A full table: room from the source holding the most, unless that
    /// is `incoming`'s own (then `incoming` is decided at once).
    fn make_room(&mut self, incoming: Source, out: &mut Vec<Decided>) -> bool {
        let Some((&hog, n)) = self.held.iter().max_by_key(|(_, q)| q.len()) else {
            return false;
        };
        let mine = self.held.get(&incoming).map_or(0, VecDeque::len);
        if hog == incoming || n.len() <= mine + 1 {
            return false;
        }
        self.decide_oldest(hog, out);
        true
    }

    /// A connection was made at `now_ns`; `name` is its address's name's
    /// [`name_key`]. Decides the held failures it recovers.
    pub fn on_success(&mut self, c: &Connected, name: Option<u64>, out: &mut Vec<Decided>) {
        let Some(caller) = c.caller else { return };
        let source = caller.source();
        // The name works: a later walk must fail on every address again.
        if let Some(a) = name.and_then(|n| self.answers.get_mut(&(source, n))) {
            a.failed.clear();
        }
        let s = Success { c: *c, name };
        if let Some(q) = self.held.get_mut(&source) {
            let window = self.cfg.window_ns;
            let mut i = 0;
            while i < q.len() {
                if let Some(fb) = recovers(&q[i].f, q[i].name, &s, window) {
                    let h = q.remove(i).expect("in range");
                    self.held_count -= 1;
                    self.stats.recovered[fb.rule as usize] += 1;
                    out.push(Decided::Recovered(h.f, fb));
                } else {
                    i += 1;
                }
            }
            if q.is_empty() {
                self.held.remove(&source);
            }
        }
        self.remember(source, s);
    }

    /// A DNS answer `source` received: `name` (its [`Verdicts::name_key`])
    /// has these addresses, all of one family, replacing that family's.
    pub fn learn_answer(&mut self, source: Source, name: u64, addrs: &[IpAddr], now_ns: u64) {
        let Some(v6) = addrs.first().map(IpAddr::is_ipv6) else {
            return;
        };
        if !self.answers.contains_key(&(source, name)) {
            let order = self.answer_names.entry(source).or_default();
            while order.len() >= ANSWERS_PER_SOURCE {
                if let Some(old) = order.pop_front() {
                    self.answers.remove(&(source, old));
                }
            }
            if self.answers.len() >= self.cfg.max_sources && now_ns >= self.answers_sweep_ns {
                self.answers_sweep_ns = now_ns.saturating_add(FULL_SWEEP_NS);
                self.expire_answers(now_ns);
            }
            if self.answers.len() >= self.cfg.max_sources {
                // Not knowing them only means waiting the window.
                self.stats.answers_dropped += 1;
                return;
            }
            self.answer_names.entry(source).or_default().push_back(name);
        }
        let a = self.answers.entry((source, name)).or_default();
        a.addrs.retain(|x| x.is_ipv6() != v6);
        a.addrs.extend(addrs.iter().take(MAX_ANSWER_ADDRS));
        a.at_ns = now_ns;
    }

    /// After `f` (named `name`) was held: when the source has now failed
    /// on every address its answers gave that name, on `f`'s port, those
    /// failures are decided failed at once.
    fn exhausted(&mut self, source: Source, f: &Failure, name: u64, out: &mut Vec<Decided>) {
        let Some(a) = self.answers.get_mut(&(source, name)) else {
            return;
        };
        let at = (f.daddr, f.dport);
        if !a.failed.contains(&at) && a.failed.len() < 2 * MAX_ANSWER_ADDRS {
            a.failed.push(at);
        }
        if a.addrs.is_empty() || !a.addrs.iter().all(|x| a.failed.contains(&(*x, f.dport))) {
            return;
        }
        let Some(q) = self.held.get_mut(&source) else {
            return;
        };
        let (done, kept): (VecDeque<Held>, VecDeque<Held>) = q
            .drain(..)
            .partition(|h| h.name == Some(name) && h.f.dport == f.dport);
        *q = kept;
        if q.is_empty() {
            self.held.remove(&source);
        }
        self.held_count -= done.len();
        for h in done {
            self.stats.exhausted += 1;
            self.decide(Decided::Failed(h.f), out);
        }
    }

    fn remember(&mut self, source: Source, s: Success) {
        if !self.recent.contains_key(&source) && self.recent.len() >= self.cfg.max_sources {
            if s.c.end_ns >= self.recent_sweep_ns {
                self.recent_sweep_ns = s.c.end_ns.saturating_add(FULL_SWEEP_NS);
                self.forget(s.c.end_ns);
            }
            if self.recent.len() >= self.cfg.max_sources {
                self.stats.successes_dropped += 1;
                return;
            }
        }
        let r = self.recent.entry(source).or_default();
        if r.len() >= self.cfg.successes_per_source {
            r.pop_front();
        }
        r.push_back(s);
    }

    /// Successes too old to recover anything.
    fn forget(&mut self, now_ns: u64) {
        let keep = REMEMBER_NS.max(self.cfg.window_ns);
        self.recent.retain(|_, r| {
            while r
                .front()
                .is_some_and(|s| s.c.end_ns.saturating_add(keep) < now_ns)
            {
                r.pop_front();
            }
            !r.is_empty()
        });
    }

    /// The failures whose window ended by `now_ns` (or ends within
    /// [`BATCH_NS`]: a burst's failures are decided, and alerted, together
    /// rather than one per wake-up): failed. O(1) when none is due.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Decided>) {
        while let Some(&(at, source, seq)) = self.deadlines.front() {
            if at > now_ns.saturating_add(BATCH_NS) {
                break;
            }
            self.deadlines.pop_front();
            self.expire(source, seq, out);
        }
    }

    fn expire(&mut self, source: Source, seq: u64, out: &mut Vec<Decided>) {
        let Some(q) = self.held.get_mut(&source) else {
            return; // decided since
        };
        // Held in seq order (removals keep it): a binary search, since
        // under a storm most deadlines are of failures decided early.
        let Ok(i) = q.binary_search_by_key(&seq, |h| h.seq) else {
            return;
        };
        let h = q.remove(i).expect("found");
        if q.is_empty() {
            self.held.remove(&source);
        }
        self.held_count -= 1;
        self.decide(Decided::Failed(h.f), out);
    }

    /// Answers too old to matter.
    fn expire_answers(&mut self, now_ns: u64) {
        let keep = REMEMBER_NS.max(self.cfg.window_ns);
        self.answers
            .retain(|_, a| a.at_ns.saturating_add(keep) >= now_ns);
        let answers = &self.answers;
        self.answer_names.retain(|s, q| {
            q.retain(|n| answers.contains_key(&(*s, *n)));
            !q.is_empty()
        });
    }

    /// Housekeeping: drops successes and answers too old to matter.
    pub fn sweep(&mut self, now_ns: u64) {
        self.forget(now_ns);
        self.expire_answers(now_ns);
    }

    /// At exit: every held failure is decided failed (nothing more can
    /// recover it, and an outage must not go unsaid).
    pub fn flush(&mut self, out: &mut Vec<Decided>) {
        let mut all: Vec<Held> = self.held.drain().flat_map(|(_, q)| q).collect();
        all.sort_by_key(|h| h.seq);
        self.held_count = 0;
        self.deadlines.clear();
        for h in all {
            self.decide(Decided::Failed(h.f), out);
        }
    }
}

/// Whether success `s` (of the failure's source) recovers failure `f`.
fn recovers(f: &Failure, name: Option<u64>, s: &Success, window_ns: u64) -> Option<Fallback> {
    let c = &s.c;
    if c.dport != f.dport {
        return None;
    }
    let f_start = f.ts_ns.saturating_sub(f.duration_ns);
    // It connected while the failed attempt was under way, or within the
    // window after it failed.
    if c.end_ns < f_start || c.end_ns > f.ts_ns.saturating_add(window_ns) {
        return None;
    }
    let (fc, sc) = (f.caller?, c.caller?);
    let fallback = |rule| {
        Some(Fallback {
            family: c.family,
            daddr: c.daddr,
            dport: c.dport,
            rule,
        })
    };
    if name.is_some() && name == s.name {
        return fallback(Rule::ByName);
    }
    if c.daddr == f.daddr {
        return fallback(Rule::Retry);
    }
    // Two different names: two targets, whatever the timing.
    if name.is_some() && s.name.is_some() || fc.pid != sc.pid {
        return None;
    }
    let abandoned = f.reason == Reason::Canceled || f.timeout_by == Some(TimeoutBy::Application);
    if abandoned
        && c.start_ns <= f.ts_ns
        && f.ts_ns >= c.end_ns
        && f.ts_ns - c.end_ns <= RIGHT_AFTER_NS
    {
        return fallback(Rule::Race);
    }
    if c.family != f.family
        && fc.tid == sc.tid
        && c.start_ns >= f.ts_ns
        && c.start_ns - f.ts_ns <= RIGHT_AFTER_NS
    {
        return fallback(Rule::FamilySwitch);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Caller, Family};

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn caller(pid: u32, tid: u32) -> Caller {
        Caller {
            tid,
            ..Caller::sample(pid, b"app")
        }
    }

    fn fail(
        daddr: &str,
        port: u16,
        reason: Reason,
        start_ms: u64,
        end_ms: u64,
        pid: u32,
    ) -> Failure {
        let family = if daddr.contains(':') {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        Failure {
            caller: Some(caller(pid, pid)),
            family,
            ts_ns: end_ms * MS,
            duration_ns: (end_ms - start_ms) * MS,
            ..Failure::sample(daddr, port, reason)
        }
    }

    fn ok(daddr: &str, port: u16, start_ms: u64, end_ms: u64, pid: u32) -> Connected {
        Connected {
            caller: Some(caller(pid, pid)),
            family: if daddr.contains(':') {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            daddr: daddr.parse().unwrap(),
            dport: port,
            start_ns: start_ms * MS,
            end_ns: end_ms * MS,
        }
    }

    fn verdicts() -> Verdicts {
        Verdicts::new(Config::with_window(1000 * MS))
    }

    fn rule(d: &[Decided]) -> Vec<Option<Rule>> {
        d.iter()
            .map(|d| match d {
                Decided::Failed(_) => None,
                Decided::Recovered(_, fb) => Some(fb.rule),
            })
            .collect()
    }

    #[test]
    fn a_walker_recovers_by_name_on_the_next_address() {
        let mut v = verdicts();
        let mut out = Vec::new();
        let name = Some(v.name_key(b"api.example"));
        v.on_failure(
            &fail("10.0.0.1", 443, Reason::Refused, 0, 1, 7),
            name,
            MS,
            &mut out,
        );
        assert!(out.is_empty());
        v.on_success(&ok("10.0.0.2", 443, 2, 3, 7), name, &mut out);
        assert_eq!(rule(&out), [Some(Rule::ByName)]);
        assert_eq!(v.held(), 0);
    }

    #[test]
    fn another_name_on_the_same_port_never_recovers() {
        let mut v = verdicts();
        let mut out = Vec::new();
        let (down, up) = (Some(v.name_key(b"db2")), Some(v.name_key(b"db1")));
        v.on_failure(
            &fail("10.0.0.2", 5432, Reason::Canceled, 0, 50, 7),
            down,
            50 * MS,
            &mut out,
        );
        // Same process, overlapping, right before: a race by timing alone.
        v.on_success(&ok("10.0.0.1", 5432, 0, 45, 7), up, &mut out);
        v.tick(2000 * MS, &mut out);
        assert_eq!(rule(&out), [None]);
    }

    #[test]
    fn without_names_two_services_on_one_port_page() {
        let mut v = verdicts();
        let mut out = Vec::new();
        // db2 refuses, db1 works, same process, same family, one after
        // the other: no rule applies.
        v.on_failure(
            &fail("10.0.0.2", 5432, Reason::Refused, 0, 1, 7),
            None,
            MS,
            &mut out,
        );
        v.on_success(&ok("10.0.0.1", 5432, 2, 3, 7), None, &mut out);
        // Its own timeout on db2 while db1 had long connected: not a race.
        let mut f = fail("10.0.0.2", 5432, Reason::Timeout, 0, 3000, 7);
        f.timeout_by = Some(TimeoutBy::Application);
        v.on_failure(&f, None, 3000 * MS, &mut out);
        v.tick(5000 * MS, &mut out);
        assert_eq!(rule(&out), [None, None]);
    }

    #[test]
    fn a_happy_eyeballs_loser_is_decided_at_once() {
        let mut v = verdicts();
        let mut out = Vec::new();
        v.on_success(&ok("10.0.0.1", 443, 250, 251, 7), None, &mut out);
        let mut f = fail("2001:db8::1", 443, Reason::Canceled, 0, 252, 7);
        f.caller = Some(caller(7, 8)); // another thread of the racer
        v.on_failure(&f, None, 252 * MS, &mut out);
        assert_eq!(rule(&out), [Some(Rule::Race)]);
        assert_eq!(v.held(), 0);
    }

    #[test]
    fn a_family_switch_must_be_the_same_thread_right_after() {
        let mut v = verdicts();
        let mut out = Vec::new();
        v.on_failure(
            &fail("2001:db8::1", 80, Reason::Refused, 0, 1, 7),
            None,
            MS,
            &mut out,
        );
        v.on_success(&ok("10.0.0.1", 80, 2, 3, 7), None, &mut out);
        assert_eq!(rule(&out), [Some(Rule::FamilySwitch)]);
        out.clear();
        v.on_failure(
            &fail("2001:db8::1", 80, Reason::Refused, 10, 11, 7),
            None,
            11 * MS,
            &mut out,
        );
        v.on_success(&ok("10.0.0.1", 80, 500, 501, 7), None, &mut out);
        v.tick(1100 * MS, &mut out);
        assert_eq!(rule(&out), [None]);
    }

    #[test]
    fn a_retry_of_the_same_address_recovers_from_the_same_source() {
        let mut v = verdicts();
        let mut out = Vec::new();
        v.on_failure(
            &fail("10.0.0.1", 6379, Reason::Refused, 0, 1, 7),
            None,
            MS,
            &mut out,
        );
        // Another process of the same cgroup and uid.
        v.on_success(&ok("10.0.0.1", 6379, 300, 301, 9), None, &mut out);
        assert_eq!(rule(&out), [Some(Rule::Retry)]);
        // A success long before a failure does not recover it.
        out.clear();
        v.on_failure(
            &fail("10.0.0.1", 6379, Reason::Refused, 900, 901, 7),
            None,
            901 * MS,
            &mut out,
        );
        v.tick(3000 * MS, &mut out);
        assert_eq!(rule(&out), [None]);
    }

    #[test]
    fn a_flood_decides_its_own_failures_early_not_anothers() {
        let mut v = Verdicts::new(Config {
            per_source: 4,
            max_held: 6,
            ..Config::with_window(1000 * MS)
        });
        let mut out = Vec::new();
        let quiet = fail("10.0.0.9", 443, Reason::Refused, 0, 1, 99);
        let quiet = Failure {
            caller: Some(Caller {
                cgroup_id: 2,
                ..caller(99, 99)
            }),
            ..quiet
        };
        v.on_failure(&quiet, None, MS, &mut out);
        for i in 0..100 {
            v.on_failure(
                &fail("10.0.0.1", 443, Reason::Refused, i, i + 1, 7),
                None,
                MS,
                &mut out,
            );
        }
        assert_eq!(out.len(), 96);
        assert!(out.iter().all(|d| d.failure().caller.unwrap().pid == 7));
        assert_eq!(v.stats().early, 96);
        // The quiet source's failure is still held, and can be recovered.
        v.on_success(
            &Connected {
                caller: quiet.caller,
                ..ok("10.0.0.9", 443, 5, 6, 99)
            },
            None,
            &mut out,
        );
        assert_eq!(out.last().map(|d| rule(&[*d])[0]), Some(Some(Rule::Retry)));
    }

    #[test]
    fn failing_on_every_address_of_the_name_pages_at_once() {
        let mut v = verdicts();
        let mut out = Vec::new();
        let name = v.name_key(b"api.example");
        let source = caller(7, 7).source();
        v.learn_answer(
            source,
            name,
            &["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            0,
        );
        v.learn_answer(source, name, &["2001:db8::1".parse().unwrap()], 0);
        // Another port of the same name does not count.
        v.on_failure(
            &fail("10.0.0.1", 80, Reason::Refused, 0, 1, 7),
            Some(name),
            MS,
            &mut out,
        );
        for addr in ["10.0.0.1", "2001:db8::1"] {
            v.on_failure(
                &fail(addr, 443, Reason::Refused, 1, 2, 7),
                Some(name),
                2 * MS,
                &mut out,
            );
        }
        assert!(out.is_empty(), "10.0.0.2 is still to try");
        v.on_failure(
            &fail("10.0.0.2", 443, Reason::Refused, 2, 3, 7),
            Some(name),
            3 * MS,
            &mut out,
        );
        assert_eq!(rule(&out), [None, None, None]);
        assert_eq!(v.stats().exhausted, 3);
        assert_eq!(v.held(), 1, "port 80's failure still waits");
    }

    #[test]
    fn a_flood_of_new_names_keeps_its_own_share_and_never_evicts_another_sources() {
        let mut v = verdicts();
        let mut out = Vec::new();
        let victim = caller(7, 7).source();
        let flood = Source {
            cgroup_id: victim.cgroup_id + 1,
            ..victim
        };
        let name = v.name_key(b"db.example");
        v.learn_answer(victim, name, &["10.0.0.9".parse().unwrap()], 0);
        for i in 0..20_000u32 {
            let n = v.name_key(format!("n{i}.crawl.example").as_bytes());
            v.learn_answer(
                flood,
                n,
                &["10.1.0.1".parse().unwrap()],
                u64::from(i) * 1000,
            );
        }
        assert_eq!(v.answers.len(), 1 + ANSWERS_PER_SOURCE);
        assert_eq!(v.stats().answers_dropped, 0);
        // The victim's answer is still known: its one address failing pages at once.
        v.on_failure(
            &fail("10.0.0.9", 5432, Reason::Refused, 0, 1, 7),
            Some(name),
            MS,
            &mut out,
        );
        assert_eq!(rule(&out), [None]);
        assert_eq!(v.stats().exhausted, 1);
        // Old answers go at housekeeping.
        v.sweep(REMEMBER_NS + 10 * S);
        assert!(v.answers.is_empty() && v.answer_names.is_empty());
    }

    #[test]
    fn a_full_table_of_live_answers_counts_what_it_drops_and_is_swept_at_most_once_a_second() {
        let mut v = Verdicts::new(Config {
            max_sources: 8,
            ..Config::with_window(1000 * MS)
        });
        let src = |cgroup_id| Source { cgroup_id, uid: 0 };
        for cg in 0..8 {
            let n = v.name_key(b"a.example");
            v.learn_answer(src(cg), n, &["10.0.0.1".parse().unwrap()], 0);
        }
        let n = v.name_key(b"b.example");
        for t in 0..3 {
            v.learn_answer(src(99), n, &["10.0.0.2".parse().unwrap()], t * MS);
        }
        assert_eq!(v.stats().answers_dropped, 3);
        assert_eq!(v.answers_sweep_ns, FULL_SWEEP_NS, "one sweep, at 0");
        // Once the others are old, the next sweep makes room.
        v.learn_answer(
            src(99),
            n,
            &["10.0.0.2".parse().unwrap()],
            REMEMBER_NS + 2 * S,
        );
        assert_eq!(v.answers.len(), 1);
    }

    #[test]
    fn a_walk_slower_than_the_window_still_pages_at_its_last_address() {
        let mut v = verdicts();
        let mut out = Vec::new();
        let name = v.name_key(b"dead.example");
        let source = caller(7, 7).source();
        let addrs = ["10.0.0.3".parse().unwrap(), "10.0.0.4".parse().unwrap()];
        v.learn_answer(source, name, &addrs, 0);
        v.on_failure(
            &fail("10.0.0.3", 80, Reason::Refused, 0, 1, 7),
            Some(name),
            MS,
            &mut out,
        );
        // Its window ends before the walk's next address times out.
        v.tick(1002 * MS, &mut out);
        assert_eq!(rule(&out), [None]);
        v.on_failure(
            &fail("10.0.0.4", 80, Reason::Timeout, 1, 1001, 7),
            Some(name),
            1003 * MS,
            &mut out,
        );
        assert_eq!(rule(&out), [None, None], "the last address pages at once");
        assert_eq!(v.held(), 0);
    }

    #[test]
    fn a_window_of_zero_decides_at_once_and_flush_decides_the_rest() {
        let mut v = Verdicts::new(Config::with_window(0));
        let mut out = Vec::new();
        v.on_failure(
            &fail("10.0.0.1", 1, Reason::Refused, 0, 1, 7),
            None,
            MS,
            &mut out,
        );
        assert_eq!(rule(&out), [None]);
        let mut v = verdicts();
        out.clear();
        v.on_failure(
            &fail("10.0.0.1", 1, Reason::Refused, 0, 1, 7),
            None,
            MS,
            &mut out,
        );
        v.on_failure(
            &fail("10.0.0.2", 1, Reason::Refused, 0, 1, 8),
            None,
            MS,
            &mut out,
        );
        v.flush(&mut out);
        assert_eq!(rule(&out), [None, None]);
        assert_eq!(v.held(), 0);
    }
}

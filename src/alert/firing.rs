//! The firing alerts of `resolve` (per destination) and `dns_fleet` (per
//! name): a bounded table, each entry checked once a period. At a check a
//! quiet entry resolves and a live one is re-posted. Pure: the caller
//! passes the time.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::event::hash::FastHash;

/// What an entry keeps that the table needs: when it last failed.
pub trait Quiet {
    fn last_ns(&self) -> u64;
}

/// A check that came due.
pub enum Due<K, P> {
    /// Nothing failed for `resolve_after`: removed, to resolve.
    Quiet(K, P),
    /// Still failing: to re-post (read it with [`Table::get`]).
    Repost(K),
}

struct Entry<P> {
    p: P,
    /// The time of its one live entry in `checks`.
    check_ns: u64,
}

pub struct Table<K, P> {
    entries: HashMap<K, Entry<P>, FastHash>,
    /// (time, key) of each entry's next check, in time order: each is
    /// pushed at `now + period` with a non-decreasing `now`. An entry
    /// removed or rescheduled since leaves a stale one behind.
    checks: VecDeque<(u64, K)>,
}

impl<K: Hash + Eq + Clone, P: Quiet> Table<K, P> {
    pub fn new() -> Self {
        Table {
            entries: HashMap::default(),
            checks: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&P> {
        self.entries.get(k).map(|e| &e.p)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut P> {
        self.entries.get_mut(k).map(|e| &mut e.p)
    }

    pub fn remove(&mut self, k: &K) -> Option<P> {
        self.entries.remove(k).map(|e| e.p)
    }

    /// Starts `k` firing, first checked at `check_ns`.
    pub fn insert(&mut self, k: K, p: P, check_ns: u64) {
        self.checks.push_back((check_ns, k.clone()));
        self.entries.insert(k, Entry { p, check_ns });
    }

    /// The checks due by `now_ns`, in order; the live ones are checked
    /// again a `period_ns` later. O(1) when none is due.
    pub fn due(&mut self, now_ns: u64, period_ns: u64, resolve_after_ns: u64) -> Vec<Due<K, P>> {
        let mut out = Vec::new();
        while self.checks.front().is_some_and(|c| c.0 <= now_ns) {
            let Some((at, k)) = self.checks.pop_front() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&k) else {
                continue; // resolved since
            };
            if e.check_ns != at {
                continue; // stale
            }
            if now_ns.saturating_sub(e.p.last_ns()) >= resolve_after_ns {
                if let Some(e) = self.entries.remove(&k) {
                    out.push(Due::Quiet(k, e.p));
                }
                continue;
            }
            e.check_ns = now_ns.saturating_add(period_ns);
            self.checks.push_back((e.check_ns, k.clone()));
            out.push(Due::Repost(k));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Last(u64);
    impl Quiet for Last {
        fn last_ns(&self) -> u64 {
            self.0
        }
    }

    fn keys(d: &[Due<u32, Last>]) -> Vec<(char, u32)> {
        d.iter()
            .map(|d| match d {
                Due::Quiet(k, _) => ('q', *k),
                Due::Repost(k) => ('r', *k),
            })
            .collect()
    }

    #[test]
    fn live_entries_repost_each_period_quiet_ones_resolve_removed_ones_are_skipped() {
        let mut t = Table::new();
        t.insert(1, Last(0), 10);
        t.insert(2, Last(0), 10);
        t.insert(3, Last(0), 12);
        assert!(t.due(9, 10, 25).is_empty());
        t.get_mut(&1).unwrap().0 = 9;
        assert!(t.remove(&2).is_some());
        assert_eq!(keys(&t.due(10, 10, 25)), [('r', 1)]);
        assert_eq!(keys(&t.due(12, 10, 25)), [('r', 3)]);
        // 1 last failed at 9: quiet from 34; 3 at 0: quiet from 25.
        assert_eq!(keys(&t.due(22, 10, 25)), [('r', 1), ('r', 3)]);
        // Checked again a period after the check, not after the last.
        assert!(t.due(31, 10, 25).is_empty());
        assert_eq!(keys(&t.due(32, 10, 25)), [('r', 1), ('q', 3)]);
        assert_eq!(keys(&t.due(42, 10, 25)), [('q', 1)]);
        assert!(t.is_empty());
        assert!(t.due(1000, 10, 25).is_empty());
    }

    #[test]
    fn an_entry_fired_again_after_resolving_keeps_only_its_new_schedule() {
        let mut t = Table::new();
        t.insert(7, Last(0), 10);
        assert!(t.remove(&7).is_some());
        t.insert(7, Last(5), 15);
        // The first entry's check at 10 is stale: one re-post, at 15.
        assert!(t.due(10, 10, 100).is_empty());
        assert_eq!(keys(&t.due(15, 10, 100)), [('r', 7)]);
        assert_eq!(t.len(), 1);
    }
}

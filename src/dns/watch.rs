//! `--dest NAME`: the addresses a watched name has now. They come from
//! resolving it (at start, then at its TTL) and from the answers the
//! host's resolver receives for it (the engine passes only those and
//! tcpstate's own: see `pipeline::engine`), so the watch follows CDN
//! rotation; each leaves TTL (at most [`MAX_TTL_S`]) plus grace after
//! nothing renewed it. A name holds at most [`MAX_ADDRS`]: a new address
//! replaces the one leaving soonest, counted, so a burst of answers can
//! never lock the name's real address out. Pure: the daemon resolves,
//! and fills the BPF destination trie with what comes out.

use std::collections::HashMap;
use std::net::IpAddr;

const S: u64 = 1_000_000_000;
/// Re-resolved at the TTL, within these bounds (a TTL of 0 is common).
pub const MIN_RESOLVE_NS: u64 = S;
pub const MAX_RESOLVE_NS: u64 = 300 * S;
/// When the answer's TTL is unknown (getaddrinfo gives none) or after a
/// failure.
pub const DEFAULT_TTL_S: u32 = 30;
pub const RETRY_NS: u64 = 5 * S;
/// Addresses one name may hold: the trie is shared and bounded.
pub const MAX_ADDRS: usize = 64;
/// TTLs are cut to a day: an answer must not hold an address for years.
pub const MAX_TTL_S: u32 = 86_400;

/// What the daemon does to the trie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(IpAddr),
    Remove(IpAddr),
}

#[derive(Debug)]
struct Name {
    name: String,
    /// Address → when it leaves (TTL + grace from its last renewal).
    addrs: HashMap<IpAddr, u64>,
    next_resolve_ns: u64,
    resolving: bool,
    /// The last resolution's error, until one succeeds.
    error: Option<String>,
    /// Addresses that made room for newer ones (`MAX_ADDRS`).
    replaced: u64,
}

pub struct Watch {
    names: Vec<Name>,
    grace_ns: u64,
}

impl Watch {
    pub fn new(names: &[String], grace_ns: u64) -> Self {
        Watch {
            names: names
                .iter()
                .map(|n| Name {
                    name: n.clone(),
                    addrs: HashMap::new(),
                    next_resolve_ns: 0,
                    resolving: false,
                    error: None,
                    replaced: 0,
                })
                .collect(),
            grace_ns,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names to resolve now; each is marked under way until `resolved`.
    pub fn due(&mut self, now_ns: u64) -> Vec<String> {
        let mut out = Vec::new();
        for n in &mut self.names {
            if !n.resolving && n.next_resolve_ns <= now_ns {
                n.resolving = true;
                out.push(n.name.clone());
            }
        }
        out
    }

    /// Addresses (with TTL seconds) for `name`, from an answer or a
    /// resolution; what joins the trie, and what leaves it to make room.
    fn renew(&mut self, name: &str, addrs: &[(IpAddr, u32)], now_ns: u64, out: &mut Vec<Change>) {
        let grace = self.grace_ns;
        // Already in the trie for another name: no second add, no remove.
        let others: Vec<IpAddr> = self
            .names
            .iter()
            .filter(|n| n.name != name)
            .flat_map(|n| n.addrs.keys().copied())
            .collect();
        let Some(n) = self.names.iter_mut().find(|n| n.name == name) else {
            return;
        };
        for &(a, ttl) in addrs {
            let a = a.to_canonical();
            let until = now_ns + u64::from(ttl.min(MAX_TTL_S)) * S + grace;
            if let Some(t) = n.addrs.get_mut(&a) {
                *t = (*t).max(until);
                continue;
            }
            if n.addrs.len() >= MAX_ADDRS {
                // The one leaving soonest makes room (ties: the lowest).
                let Some(old) = n.addrs.iter().map(|(a, t)| (*t, *a)).min().map(|(_, a)| a) else {
                    continue;
                };
                n.addrs.remove(&old);
                n.replaced += 1;
                if !others.contains(&old) {
                    out.push(Change::Remove(old));
                }
            }
            n.addrs.insert(a, until);
            if !others.contains(&a) {
                out.push(Change::Add(a));
            }
        }
    }

    /// Addresses that made room for newer ones, per name, for the
    /// warning and the stop line.
    pub fn replaced(&self) -> Vec<(String, u64)> {
        self.names
            .iter()
            .filter(|n| n.replaced > 0)
            .map(|n| (n.name.clone(), n.replaced))
            .collect()
    }

    /// An answer some application received for a watched name.
    pub fn answer(&mut self, name: &str, addrs: &[(IpAddr, u32)], now_ns: u64) -> Vec<Change> {
        let mut out = Vec::new();
        self.renew(name, addrs, now_ns, &mut out);
        // Re-resolve at this answer's TTL.
        if let (Some(n), Some(ttl)) = (
            self.names.iter_mut().find(|n| n.name == name),
            addrs.iter().map(|a| a.1).min(),
        ) {
            let at =
                now_ns + (u64::from(ttl.min(MAX_TTL_S)) * S).clamp(MIN_RESOLVE_NS, MAX_RESOLVE_NS);
            if !n.resolving {
                n.next_resolve_ns = n.next_resolve_ns.min(at).max(now_ns);
            }
        }
        out
    }

    /// The system resolver's result for `name` (its addresses, or why not).
    pub fn resolved(
        &mut self,
        name: &str,
        r: Result<Vec<IpAddr>, String>,
        now_ns: u64,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        let ok = match r {
            Ok(addrs) if !addrs.is_empty() => {
                let with_ttl: Vec<_> = addrs.iter().map(|a| (*a, DEFAULT_TTL_S)).collect();
                self.renew(name, &with_ttl, now_ns, &mut out);
                Ok(())
            }
            Ok(_) => Err("no addresses".to_string()),
            Err(e) => Err(e),
        };
        if let Some(n) = self.names.iter_mut().find(|n| n.name == name) {
            n.resolving = false;
            match ok {
                Ok(()) => {
                    n.error = None;
                    // The answer to this very lookup, seen by the hook,
                    // brings the real TTL forward (see `answer`).
                    n.next_resolve_ns = now_ns + u64::from(DEFAULT_TTL_S) * S;
                }
                Err(e) => {
                    n.error = Some(e);
                    n.next_resolve_ns = now_ns + RETRY_NS;
                }
            }
        }
        out
    }

    /// Addresses nothing renewed for TTL plus grace leave the trie.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Change> {
        let mut gone = Vec::new();
        for n in &mut self.names {
            n.addrs.retain(|a, until| {
                let keep = *until > now_ns;
                if !keep {
                    gone.push(*a);
                }
                keep
            });
        }
        gone.sort();
        gone.dedup();
        gone.into_iter()
            .filter(|a| !self.names.iter().any(|n| n.addrs.contains_key(a)))
            .map(Change::Remove)
            .collect()
    }

    /// Names whose last resolution failed, and why.
    pub fn errors(&self) -> Vec<(String, String)> {
        self.names
            .iter()
            .filter_map(|n| n.error.clone().map(|e| (n.name.clone(), e)))
            .collect()
    }

    /// `moving.test=198.18.80.3+2001:db8::3`, `down.test=(unresolved: why)`.
    pub fn describe(&self) -> String {
        self.names
            .iter()
            .map(|n| {
                let mut a: Vec<_> = n.addrs.keys().collect();
                a.sort();
                let list = a
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join("+");
                match (&n.error, list.is_empty()) {
                    (Some(e), true) => format!("{}=(unresolved: {e}; retrying)", n.name),
                    (None, true) => format!("{}=(resolving)", n.name),
                    _ => format!("{}={list}", n.name),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_follows_answers_and_addresses_leave_after_ttl_and_grace() {
        let mut w = Watch::new(&["moving.test".into()], 10 * S);
        assert_eq!(w.due(0), vec!["moving.test".to_string()]);
        assert!(w.due(0).is_empty(), "one resolution at a time");
        let ch = w.resolved("moving.test", Ok(vec![ip("192.0.2.1")]), 0);
        assert_eq!(ch, vec![Change::Add(ip("192.0.2.1"))]);
        assert_eq!(w.describe(), "moving.test=192.0.2.1");
        // An application's answer: the record moved (TTL 1 s).
        let ch = w.answer("moving.test", &[(ip("192.0.2.2"), 1)], S);
        assert_eq!(ch, vec![Change::Add(ip("192.0.2.2"))]);
        assert_eq!(w.due(S), Vec::<String>::new());
        assert_eq!(
            w.due(2 * S),
            vec!["moving.test".to_string()],
            "re-resolved at its TTL"
        );
        // Renewed answers add nothing new.
        assert!(w
            .answer("moving.test", &[(ip("192.0.2.2"), 1)], 2 * S)
            .is_empty());
        // 192.0.2.1: 30 s + 10 s grace from 0; 192.0.2.2: 1 s + 10 s from 2 s.
        assert!(w.expire(12 * S).is_empty());
        assert_eq!(w.expire(13 * S), vec![Change::Remove(ip("192.0.2.2"))]);
        assert_eq!(w.expire(41 * S), vec![Change::Remove(ip("192.0.2.1"))]);
        assert_eq!(w.describe(), "moving.test=(resolving)");
        // Answers for other names are not followed.
        assert!(w
            .answer("other.test", &[(ip("192.0.2.9"), 1)], 0)
            .is_empty());
    }

    #[test]
    fn an_unresolvable_name_warns_and_is_retried() {
        let mut w = Watch::new(&["down.test".into()], 0);
        w.due(0);
        assert!(w
            .resolved("down.test", Err("no such name".into()), 0)
            .is_empty());
        assert_eq!(
            w.errors(),
            vec![("down.test".into(), "no such name".into())]
        );
        assert_eq!(
            w.describe(),
            "down.test=(unresolved: no such name; retrying)"
        );
        assert!(w.due(RETRY_NS - 1).is_empty());
        assert_eq!(w.due(RETRY_NS).len(), 1);
    }

    #[test]
    fn shared_addresses_leave_only_when_no_name_has_them_and_are_bounded() {
        let mut w = Watch::new(&["a.test".into(), "b.test".into()], 0);
        assert_eq!(w.answer("a.test", &[(ip("192.0.2.1"), 1)], 0).len(), 1);
        assert!(w.answer("b.test", &[(ip("192.0.2.1"), 5)], 0).is_empty());
        assert!(w.expire(2 * S).is_empty(), "b.test still has it");
        assert_eq!(w.expire(6 * S), vec![Change::Remove(ip("192.0.2.1"))]);
        let many: Vec<_> = (0..100u8)
            .map(|i| (IpAddr::from([10, 0, 0, i]), 60))
            .collect();
        let ch = w.answer("a.test", &many, 0);
        let adds = ch.iter().filter(|c| matches!(c, Change::Add(_))).count();
        assert_eq!((adds, ch.len() - adds), (100, 100 - MAX_ADDRS));
        assert_eq!(w.replaced(), vec![("a.test".to_string(), 36)]);
        assert_eq!(w.describe().matches('+').count(), MAX_ADDRS - 1);
    }

    /// The blinding attack of issue 29: a name filled with bogus
    /// addresses for 2^31-1 s. TTLs are cut to a day, and the real
    /// address, when it comes, replaces the bogus one leaving soonest.
    #[test]
    fn a_full_name_makes_room_and_no_ttl_outlives_a_day() {
        let mut w = Watch::new(&["real.test".into()], 0);
        let bogus: Vec<_> = (0..MAX_ADDRS as u8)
            .map(|i| (IpAddr::from([10, 9, 0, i]), i32::MAX as u32))
            .collect();
        assert_eq!(w.answer("real.test", &bogus, 0).len(), MAX_ADDRS);
        let ch = w.resolved("real.test", Ok(vec![ip("192.0.2.80")]), S);
        assert_eq!(
            ch,
            vec![
                Change::Remove(ip("10.9.0.0")),
                Change::Add(ip("192.0.2.80"))
            ]
        );
        assert_eq!(w.replaced(), vec![("real.test".to_string(), 1)]);
        assert_eq!(w.expire(40 * S), vec![Change::Remove(ip("192.0.2.80"))]);
        // A day (and grace 0) from 0: the bogus ones are gone.
        assert!(w.expire(u64::from(MAX_TTL_S) * S - 1).is_empty());
        assert_eq!(w.expire(u64::from(MAX_TTL_S) * S).len(), MAX_ADDRS - 1);
    }
}

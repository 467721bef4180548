//! The address→name memory: which name an application resolved to reach
//! an address, so a failure to that address can say it. Pure: the caller
//! passes the time.
//!
//! - Scoped: a name a source (cgroup) received labels only that source's
//!   destinations, except answers a host-wide resolver received (see
//!   [`Scope`]), which label everyone's. A source's own answer comes first.
//! - TTLs are honoured with a grace period, because connections outlive
//!   TTLs (and applications cache answers past them).
//! - The most recent answer for an address wins.
//! - Bounded in entries and in bytes, and fair: each scope (a source, or
//!   the host's resolver) has a share, like the alert windows. When the
//!   memory is full, a scope past its share loses its own oldest entry
//!   first, so a flood of answers to one source erases only its own
//!   names; else the scope holding the most bytes loses its oldest. Every
//!   entry forgotten before its time is counted.
//! - Only names learned from answers: never a reverse lookup, never a guess.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::name::Dname;
use crate::event::hash::FastHash;

/// Whose destinations an answer may label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Received by a resolver that serves the whole host.
    Host,
    /// Received by a process of this cgroup (its id).
    Source(u64),
}

/// TTLs are cut to a day: an answer must not hold a name for years.
pub const MAX_TTL_S: u32 = 86_400;

/// The highest uid of a system user (Debian's and systemd's SYS_UID_MAX).
pub const SYS_UID_MAX: u32 = 999;

impl Scope {
    /// An answer is host-wide when the process receiving it runs as a
    /// system user (uid 1 to [`SYS_UID_MAX`], as systemd-resolved,
    /// dnsmasq, nscd and unbound do) in the host's network namespace.
    /// Not root: root inside a container is root here too, and rootless
    /// users and containers' own namespaces never qualify. Only a host
    /// administrator can start a process that passes this.
    pub fn of(uid: u32, netns: u32, host_netns: Option<u32>, cgroup_id: u64) -> Scope {
        if (1..=SYS_UID_MAX).contains(&uid) && host_netns == Some(netns) {
            Scope::Host
        } else {
            Scope::Source(cgroup_id)
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// Kept this long past each TTL.
    pub grace_ns: u64,
}

/// What an entry costs beyond its name, at worst, in memory really held:
/// its share of the hash table's buckets (the table keeps at most 7/8 of
/// them full and doubles, so up to 16/7 buckets an entry, each with a
/// control byte), of the age queue's capacity (stale slots are compacted
/// past twice the live ones, and a VecDeque doubles: up to 4 slots), and
/// the allocator's header on the name. Neither the table nor the queue
/// gives memory back after a flood: the bound has to count them full.
pub const ENTRY_COST: usize =
    (std::mem::size_of::<(Key, Entry)>() + 1) * 16 / 7 + 4 * std::mem::size_of::<(Key, u64)>() + 16;

/// An entry's cost with its name, allocated in 16-byte steps.
fn cost(name: &[u8]) -> usize {
    ENTRY_COST + name.len().next_multiple_of(16)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    pub entries: usize,
    pub bytes: usize,
    /// Address→name pairs learned (a renewal counts again).
    pub learned: u64,
    /// Forgotten to stay within the bounds, before their TTL and grace.
    pub evicted: u64,
    /// Forgotten when their TTL and grace ran out.
    pub expired: u64,
}

type Key = (Scope, IpAddr);

/// One scope's part of the memory: its keys oldest-written first (with
/// the generation written; older slots are stale), and what it holds.
#[derive(Default)]
struct Share {
    queue: VecDeque<(IpAddr, u64)>,
    entries: usize,
    bytes: usize,
}

struct Entry {
    name: Box<[u8]>,
    expires_ns: u64,
    /// Which queue slot is this entry's latest (older slots are stale).
    generation: u64,
}

pub struct Memory {
    cfg: Config,
    map: HashMap<Key, Entry, FastHash>,
    shares: HashMap<Scope, Share, FastHash>,
    generation: u64,
    stats: MemoryStats,
}

impl Memory {
    pub fn new(cfg: Config) -> Self {
        Memory {
            cfg,
            map: HashMap::with_hasher(FastHash::default()),
            shares: HashMap::with_hasher(FastHash::default()),
            generation: 0,
            stats: MemoryStats::default(),
        }
    }

    /// One answer: `name` for each address, for TTL seconds (at most
    /// [`MAX_TTL_S`]) plus grace.
    pub fn learn(&mut self, scope: Scope, name: &[u8], addrs: &[(IpAddr, u32)], now_ns: u64) {
        if Dname::new(name).is_none() {
            return;
        }
        for &(addr, ttl) in addrs {
            let addr = addr.to_canonical();
            let expires_ns = now_ns
                .saturating_add(u64::from(ttl.min(MAX_TTL_S)) * 1_000_000_000)
                .saturating_add(self.cfg.grace_ns);
            self.generation += 1;
            let generation = self.generation;
            self.stats.learned += 1;
            let share = self.shares.entry(scope).or_default();
            match self.map.get_mut(&(scope, addr)) {
                Some(e) => {
                    if *e.name != *name {
                        share.bytes = share.bytes - cost(&e.name) + cost(name);
                        self.stats.bytes = self.stats.bytes - cost(&e.name) + cost(name);
                        e.name = name.into();
                    }
                    e.expires_ns = expires_ns;
                    e.generation = generation;
                }
                None => {
                    share.entries += 1;
                    share.bytes += cost(name);
                    self.stats.bytes += cost(name);
                    let entry = Entry {
                        name: name.into(),
                        expires_ns,
                        generation,
                    };
                    self.map.insert((scope, addr), entry);
                }
            }
            share.queue.push_back((addr, generation));
            self.shrink(scope);
        }
    }

    fn full(&self) -> bool {
        self.map.len() > self.cfg.max_entries || self.stats.bytes > self.cfg.max_bytes
    }

    /// Which scope loses an entry: `learner` when it holds more than its
    /// share, else whoever holds the most bytes.
    fn victim(&self, learner: Scope) -> Option<Scope> {
        let n = self.shares.len().max(1);
        let over =
            |s: &Share| s.entries > self.cfg.max_entries / n || s.bytes > self.cfg.max_bytes / n;
        if self
            .shares
            .get(&learner)
            .is_some_and(|s| s.entries > 0 && over(s))
        {
            return Some(learner);
        }
        self.shares
            .iter()
            .filter(|(_, s)| s.entries > 0)
            .max_by_key(|(_, s)| s.bytes)
            .map(|(k, _)| *k)
    }

    /// Forgets entries until within bounds, fairly (see [`Memory::victim`]);
    /// drops stale queue slots.
    fn shrink(&mut self, learner: Scope) {
        while self.full() {
            let Some(scope) = self.victim(learner) else {
                break;
            };
            let Some(share) = self.shares.get_mut(&scope) else {
                break;
            };
            let Some((addr, generation)) = share.queue.pop_front() else {
                break;
            };
            let key = (scope, addr);
            if self
                .map
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.remove(&key);
                self.stats.evicted += 1;
            }
        }
        // Renewals leave stale slots behind: compact before they outgrow
        // the live ones.
        if let Some(share) = self.shares.get_mut(&learner) {
            if share.queue.len() > 2 * share.entries + 64 {
                let map = &self.map;
                share
                    .queue
                    .retain(|(a, g)| map.get(&(learner, *a)).is_some_and(|e| e.generation == *g));
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.map.remove(key) {
            let cost = cost(&e.name);
            self.stats.bytes -= cost;
            if let Some(s) = self.shares.get_mut(&key.0) {
                s.entries -= 1;
                s.bytes -= cost;
            }
        }
    }

    /// The name `cgroup_id`'s processes resolved for `addr`: their own
    /// answer first, then a host-wide resolver's; None when nobody's
    /// answer (still in its TTL and grace) gave this address.
    pub fn lookup(&self, cgroup_id: u64, addr: IpAddr, now_ns: u64) -> Option<Dname> {
        let addr = addr.to_canonical();
        [Scope::Source(cgroup_id), Scope::Host]
            .iter()
            .filter_map(|s| self.map.get(&(*s, addr)))
            .find(|e| e.expires_ns > now_ns)
            .and_then(|e| Dname::new(&e.name))
    }

    /// Forgets what ran out (the daemon calls it now and then).
    pub fn sweep(&mut self, now_ns: u64) {
        let gone: Vec<Key> = self
            .map
            .iter()
            .filter(|(_, e)| e.expires_ns <= now_ns)
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.remove(k);
        }
        self.stats.expired += gone.len() as u64;
        let map = &self.map;
        self.shares.retain(|scope, s| {
            s.queue
                .retain(|(a, g)| map.get(&(*scope, *a)).is_some_and(|e| e.generation == *g));
            s.entries > 0
        });
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            entries: self.map.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// What the memory really holds: the table and queue at their
    /// capacity, and each name's allocation (16-byte steps, a header).
    fn held(m: &Memory) -> usize {
        m.map.capacity() * (std::mem::size_of::<(Key, Entry)>() + 1)
            + m.shares
                .values()
                .map(|s| s.queue.capacity() * std::mem::size_of::<(IpAddr, u64)>())
                .sum::<usize>()
            + m.map
                .values()
                .map(|e| e.name.len().next_multiple_of(16) + 16)
                .sum::<usize>()
    }

    #[test]
    fn a_flood_of_long_unique_names_holds_no_more_than_the_bound() {
        // The bound counts the table and the queue: under a flood they
        // hold more than the names, and keep it.
        let max_bytes = 4 << 20;
        let mut m = mem(1 << 20, max_bytes);
        let mut peak = 0;
        for i in 0..100_000u32 {
            let name = format!("{i:08x}-{}.flood.test", "x".repeat(40));
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            m.learn(
                Scope::Source(u64::from(i % 7)),
                name.as_bytes(),
                &[(a.into(), 60)],
                0,
            );
            peak = peak.max(held(&m));
        }
        assert!(m.stats().evicted > 0);
        assert!(
            peak <= max_bytes + max_bytes / 4,
            "held {peak} bytes for a bound of {max_bytes} ({} entries)",
            m.stats().entries
        );
    }

    fn mem(max_entries: usize, max_bytes: usize) -> Memory {
        Memory::new(Config {
            max_entries,
            max_bytes,
            grace_ns: 60 * S,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn name(m: &Memory, cg: u64, a: &str, now: u64) -> Option<String> {
        m.lookup(cg, ip(a), now).map(|d| d.to_string())
    }

    #[test]
    fn a_source_name_labels_only_that_source() {
        let mut m = mem(100, 1 << 20);
        m.learn(
            Scope::Source(7),
            b"api.example.com",
            &[(ip("203.0.113.7"), 30)],
            0,
        );
        assert_eq!(
            name(&m, 7, "203.0.113.7", S).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            name(&m, 8, "203.0.113.7", S),
            None,
            "another source's answer"
        );
        assert_eq!(name(&m, 7, "203.0.113.8", S), None, "never a guess");
        // A host-wide resolver's answer labels everyone, but a source's
        // own answer comes first.
        m.learn(
            Scope::Host,
            b"shared.example.com",
            &[(ip("203.0.113.7"), 30)],
            0,
        );
        assert_eq!(
            name(&m, 8, "203.0.113.7", S).as_deref(),
            Some("shared.example.com")
        );
        assert_eq!(
            name(&m, 7, "203.0.113.7", S).as_deref(),
            Some("api.example.com")
        );
    }

    #[test]
    fn who_counts_as_a_host_wide_resolver() {
        let host = Some(4026531840);
        // systemd-resolved (uid 991) in the host's namespace.
        assert_eq!(Scope::of(991, 4026531840, host, 5), Scope::Host);
        // Root is not: a container's root is root too.
        assert_eq!(Scope::of(0, 4026531840, host, 5), Scope::Source(5));
        // A login user, or a system uid in another network namespace.
        assert_eq!(Scope::of(1000, 4026531840, host, 5), Scope::Source(5));
        assert_eq!(Scope::of(101, 4026532000, host, 5), Scope::Source(5));
        assert_eq!(Scope::of(101, 4026531840, None, 5), Scope::Source(5));
    }

    #[test]
    fn ttl_and_grace_then_gone_and_the_latest_wins() {
        let mut m = mem(100, 1 << 20);
        m.learn(Scope::Source(1), b"old.test", &[(ip("192.0.2.1"), 10)], 0);
        m.learn(Scope::Source(1), b"new.test", &[(ip("192.0.2.1"), 10)], S);
        assert_eq!(name(&m, 1, "192.0.2.1", 2 * S).as_deref(), Some("new.test"));
        // TTL 10 s + grace 60 s from 1 s.
        assert!(name(&m, 1, "192.0.2.1", 70 * S).is_some());
        assert_eq!(name(&m, 1, "192.0.2.1", 71 * S), None);
        m.sweep(71 * S);
        let s = m.stats();
        assert_eq!((s.entries, s.bytes, s.expired, s.evicted), (0, 0, 1, 0));
        // v4-mapped and plain IPv4 are one address.
        m.learn(
            Scope::Source(1),
            b"v4.test",
            &[(ip("::ffff:192.0.2.9"), 10)],
            0,
        );
        assert_eq!(name(&m, 1, "192.0.2.9", 0).as_deref(), Some("v4.test"));
    }

    #[test]
    fn a_flood_stays_within_both_bounds_and_is_counted() {
        let mut m = mem(1000, 64 * 1024);
        for i in 0..100_000u32 {
            let n = format!("n{i}.flood.test");
            let a = IpAddr::from((0x0a00_0000 | i).to_be_bytes());
            m.learn(
                Scope::Source(u64::from(i % 7)),
                n.as_bytes(),
                &[(a, 300)],
                u64::from(i),
            );
            assert!(m.stats().entries <= 1000 && m.stats().bytes <= 64 * 1024);
        }
        let s = m.stats();
        assert_eq!(s.learned, 100_000);
        assert_eq!(
            s.evicted + s.entries as u64,
            100_000,
            "every one forgotten is counted"
        );
        // The newest are the ones kept.
        assert!(name(&m, 99_999 % 7, "10.1.134.159", 100_000).is_some());
        let queued: usize = m.shares.values().map(|s| s.queue.len()).sum();
        assert!(queued <= 2 * m.map.len() + 7 * 64);
    }

    /// Issue 29: one source's flood of unique names beside another
    /// source's long-lived name and the host resolver's.
    #[test]
    fn a_flood_from_one_source_evicts_its_own_names_first() {
        let mut m = mem(1000, 64 * 1024);
        m.learn(
            Scope::Source(1),
            b"db.svc.test",
            &[(ip("192.0.2.5"), 3600)],
            0,
        );
        m.learn(Scope::Host, b"host.test", &[(ip("192.0.2.6"), 3600)], 0);
        for i in 0..72_000u32 {
            let n = format!("n{i}.flood.test");
            let a = IpAddr::from((0x0a00_0000 | i).to_be_bytes());
            m.learn(Scope::Source(2), n.as_bytes(), &[(a, 300)], u64::from(i));
        }
        assert_eq!(name(&m, 1, "192.0.2.5", S).as_deref(), Some("db.svc.test"));
        assert_eq!(name(&m, 3, "192.0.2.6", S).as_deref(), Some("host.test"));
        let s = m.stats();
        assert!(s.entries <= 1000 && s.bytes <= 64 * 1024);
        assert_eq!(s.evicted + s.entries as u64, 72_002);
        // The flood kept its newest.
        assert!(name(&m, 2, "10.1.25.63", S).is_some());
        // When the small one outgrows its share, it loses its own oldest.
        for i in 0..2000u32 {
            let a = IpAddr::from((0x0b00_0000 | i).to_be_bytes());
            m.learn(Scope::Source(1), b"many.test", &[(a, 300)], 72_000);
        }
        assert_eq!(name(&m, 1, "192.0.2.5", S), None);
        assert_eq!(name(&m, 3, "192.0.2.6", S).as_deref(), Some("host.test"));
    }

    #[test]
    fn no_ttl_outlives_a_day() {
        let mut m = mem(10, 1 << 20);
        m.learn(
            Scope::Source(1),
            b"long.test",
            &[(ip("192.0.2.1"), i32::MAX as u32)],
            0,
        );
        let day = u64::from(MAX_TTL_S) * S;
        assert!(name(&m, 1, "192.0.2.1", day + 60 * S - 1).is_some());
        assert_eq!(name(&m, 1, "192.0.2.1", day + 60 * S), None);
    }

    #[test]
    fn renewals_do_not_grow_the_queue() {
        let mut m = mem(10, 1 << 20);
        for t in 0..10_000u64 {
            m.learn(Scope::Host, b"same.test", &[(ip("192.0.2.1"), 1)], t);
        }
        assert_eq!(m.stats().entries, 1);
        assert_eq!(m.stats().evicted, 0);
        assert!(m.shares[&Scope::Host].queue.len() <= 66);
    }
}

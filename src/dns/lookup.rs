//! One lookup, one verdict (issue 32). A resolver asks several queries
//! for one name: the search list walked (`api` → `api.ns.svc.cluster.local`,
//! ..., `api`), A and AAAA in parallel, each retried on the next server.
//! Their failures along the way are noise when the lookup ends with an
//! address; a lookup whose every candidate failed is one failure, named
//! by the name the application asked. So queries are grouped per process
//! into lookups by the name they stand for (the process's own search list
//! strips the suffix), and a lookup is judged once it has nothing
//! outstanding and has been quiet for [`Config::settle_ns`].
//!
//! Bounded: lookups per source (cgroup and uid) and in all; past a
//! source's share its own oldest goes, past the whole table the oldest of
//! the source holding most: every one counted. Verdicts fold per source:
//! past its first few in a window, a source's failures are counted into
//! one summary, so a flood of unique NXDOMAINs from one source cannot
//! hide another's first failure. Pure: the caller passes the time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use super::answer::Query;
use super::outcome::{Reason, Response, Said};
use super::resolvconf::Conf;
use crate::event::hash::FastHash;
use crate::event::{Comm, Source};

const S: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Open lookups in all, and per source.
    pub max_lookups: usize,
    pub per_source: usize,
    /// Queries one lookup may have outstanding (a stub has two).
    pub per_lookup: usize,
    /// Quiet (nothing outstanding, no new query) before a verdict: the
    /// next candidate of a walk leaves well within it.
    pub settle_ns: u64,
    /// A source's verdicts in full per window; the rest fold.
    pub firsts: u64,
    pub window_ns: u64,
    /// Sources with a fold of their own.
    pub max_folds: usize,
    /// DNS over TCP is seen (queries, answers, and connections to port
    /// 53): a truncated answer waits for its retry over TCP, whose answer
    /// decides, and ends as `truncated_unanswered` without one. Else a
    /// truncated answer decides nothing (its retry is not seen).
    pub tcp_seen: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_lookups: 4096,
            per_source: 256,
            per_lookup: 16,
            settle_ns: S,
            firsts: 10,
            window_ns: 60 * S,
            max_folds: 1024,
            tcp_seen: false,
        }
    }
}

/// Who asked: the sending process as the kernel saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Who {
    pub pid: u32,
    pub uid: u32,
    pub cgroup_id: u64,
    pub comm: Comm,
}

impl Who {
    pub fn source(&self) -> Source {
        Source {
            cgroup_id: self.cgroup_id,
            uid: self.uid,
        }
    }
}

/// The server a query went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub addr: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// A lookup that failed: `resolve_failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The name asked (untrusted bytes: shown escaped), or, with
    /// `per_query`, the query's own.
    pub name: Vec<u8>,
    /// The process's resolv.conf could not be read: each query's name is
    /// its own lookup.
    pub per_query: bool,
    pub reason: Reason,
    pub qtype: u16,
    pub server: Option<Server>,
    /// None for a timeout.
    pub rcode: Option<u8>,
    pub who: Who,
    /// When the lookup's last candidate failed (monotonic ns).
    pub ts_ns: u64,
    /// Queries that failed (answers and timeouts).
    pub queries: u32,
}

impl Failed {
    /// An NXDOMAIN for `name` from 10.0.0.2:53 (A, 8 queries), as the
    /// sinks' tests use it.
    #[cfg(test)]
    pub fn sample(name: &[u8], pid: u32, uid: u32, comm: &[u8]) -> Failed {
        Failed {
            name: name.to_vec(),
            per_query: false,
            reason: Reason::NxDomain,
            qtype: 1,
            server: Some(Server {
                addr: "10.0.0.2".parse().unwrap(),
                port: 53,
            }),
            rcode: Some(3),
            who: Who {
                pid,
                uid,
                cgroup_id: 1,
                comm: crate::event::Comm::new(comm),
            },
            ts_ns: 1_000_000_000,
            queries: 8,
        }
    }
}

/// A source's failures past its firsts, in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub source: Source,
    /// The last process seen failing.
    pub who: Who,
    pub count: u64,
    pub window_ns: u64,
    /// By reason, most first.
    pub reasons: Vec<(Reason, u64)>,
    /// A few of the names (the first seen).
    pub names: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Failed(Failed),
    Folded(Folded),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub lookups: u64,
    pub failed: u64,
    /// Failed along the way, then answered: no verdict of failure.
    pub recovered: u64,
    /// Ended with no address and nothing to judge by: a truncated answer
    /// (where the retry over TCP is not seen) or rcodes that say nothing.
    pub undecided: u64,
    /// Failures counted into their source's summary.
    pub folded: u64,
    /// Lookups forgotten unjudged to stay within bounds.
    pub evicted: u64,
    /// Queries not held: the lookup had [`Config::per_lookup`] outstanding.
    pub queries_dropped: u64,
    /// Answers that matched no outstanding query.
    pub unmatched: u64,
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    reason: Reason,
    qtype: u16,
    server: Option<Server>,
    rcode: Option<u8>,
    /// For the name asked itself, not an expansion: the most telling.
    exact: bool,
}

struct Lookup {
    who: Who,
    asked: Vec<u8>,
    /// Its key in `by_asked`.
    asked_key: AskedKey,
    per_query: bool,
    conf_timeout_ns: u64,
    /// Outstanding queries' keys.
    queries: Vec<QKey>,
    succeeded: bool,
    truncated: bool,
    /// A truncated answer carried addresses: a client that ignores TC
    /// uses them.
    truncated_addrs: bool,
    /// The process opened a TCP connection to port 53, or sent a query
    /// over one, since: it retries over TCP.
    retried_tcp: bool,
    failed: u32,
    best: Option<Cand>,
    last_ns: u64,
}

/// A query outstanding: its socket, id, type and name; or (`wait` set
/// to its lookup's id, `sk` 0) a truncated answer's question waiting for
/// its retry over TCP to be answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct QKey {
    sk: u64,
    id: u16,
    qtype: u16,
    name: Vec<u8>,
    wait: u64,
}

impl QKey {
    fn query(sk: u64, q: &Query) -> QKey {
        QKey {
            sk,
            id: q.id,
            qtype: q.qtype,
            name: q.name.clone(),
            wait: 0,
        }
    }
}

struct Outstanding {
    lookup: u64,
    expires_ns: u64,
    qtype: u16,
    server: Option<Server>,
    /// Sent over TCP.
    tcp: bool,
}

#[derive(Default)]
struct Fold {
    ends_ns: u64,
    emitted: u64,
    folded: u64,
    who: Who,
    reasons: HashMap<Reason, u64>,
    names: Vec<Vec<u8>>,
}

const FOLD_NAMES: usize = 5;

/// A process, whether it is judged query by query, and the name it asked,
/// hashed (keyed at random: names come from DNS servers and applications).
type AskedKey = (u32, bool, u64);

pub struct Lookups {
    cfg: Config,
    lookups: HashMap<u64, Lookup, FastHash>,
    next_id: u64,
    /// Open lookups with a truncated answer, per process: a TCP retry
    /// finds its own (few: kept apart from the rest, so opening and
    /// closing a lookup costs no walk of its process's others).
    truncated_by_pid: HashMap<u32, Vec<u64>, FastHash>,
    /// Open lookups by the name asked, for a query to find its own in a
    /// few hash probes: a process with hundreds open (a crawler) made each
    /// query scan and compare them all, most of tcpstate's CPU under a DNS
    /// client asking new names.
    by_asked: HashMap<AskedKey, Vec<u64>, FastHash>,
    names: std::hash::RandomState,
    /// Per source: its lookups, oldest first (ids gone are skipped).
    by_source: HashMap<Source, VecDeque<u64>, FastHash>,
    held: HashMap<Source, usize, FastHash>,
    outstanding: HashMap<QKey, Outstanding>,
    /// When each outstanding query expires.
    expiries: BTreeSet<(u64, QKey)>,
    folds: HashMap<Source, Fold, FastHash>,
    /// Verdicts reached while making room, out at the next tick.
    early: Vec<Verdict>,
    next_scan_ns: u64,
    stats: Stats,
}

impl Lookups {
    pub fn new(cfg: Config) -> Self {
        Lookups {
            cfg,
            lookups: HashMap::default(),
            next_id: 0,
            truncated_by_pid: HashMap::default(),
            by_asked: HashMap::default(),
            names: std::hash::RandomState::new(),
            by_source: HashMap::default(),
            held: HashMap::default(),
            outstanding: HashMap::new(),
            expiries: BTreeSet::new(),
            folds: HashMap::default(),
            early: Vec::new(),
            next_scan_ns: 0,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Lookups open.
    pub fn open(&self) -> usize {
        self.lookups.len()
    }

    /// A query `who` sent on socket `sk` to `server` at `now_ns` (over
    /// TCP with `tcp`); `conf` is its resolv.conf, None where it could
    /// not be read.
    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &mut self,
        who: Who,
        conf: Option<&Conf>,
        sk: u64,
        q: &Query,
        server: Option<Server>,
        tcp: bool,
        now_ns: u64,
    ) {
        let id = self.find_or_open(who, conf, &q.name, now_ns);
        let key = QKey::query(sk, q);
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        l.last_ns = now_ns;
        l.retried_tcp |= tcp && l.truncated;
        let expires_ns = now_ns + l.conf_timeout_ns;
        if let Some(o) = self.outstanding.get_mut(&key) {
            // The same query again (a retry with its id): its clock restarts.
            self.expiries.remove(&(o.expires_ns, key.clone()));
            o.expires_ns = expires_ns;
            o.server = server;
            o.tcp = tcp;
            self.expiries.insert((expires_ns, key));
            return;
        }
        if l.queries.len() >= self.cfg.per_lookup {
            self.stats.queries_dropped += 1;
            return;
        }
        l.queries.push(key.clone());
        self.outstanding.insert(
            key.clone(),
            Outstanding {
                lookup: id,
                expires_ns,
                qtype: q.qtype,
                server,
                tcp,
            },
        );
        self.expiries.insert((expires_ns, key));
    }

    /// `pid` opened a TCP connection to port 53 at `now_ns`: its lookups
    /// waiting on a truncated answer are being retried over TCP (the
    /// query itself may never leave: a firewall that drops the SYN).
    pub fn tcp_connect(&mut self, pid: u32, now_ns: u64) {
        let Some(ids) = self.truncated_by_pid.get(&pid) else {
            return;
        };
        for id in ids {
            if let Some(l) = self.lookups.get_mut(id) {
                if l.truncated {
                    l.retried_tcp = true;
                    l.last_ns = l.last_ns.max(now_ns);
                }
            }
        }
    }

    /// A truncated answer to `q` for lookup `id`: its question waits, for
    /// the resolver's timeout, for an answer over TCP. Again on a second
    /// truncated answer (the UDP query retried): its clock restarts.
    fn wait_for_tcp(&mut self, id: u64, q: &Query, server: Option<Server>, now_ns: u64) {
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        let key = QKey {
            sk: 0,
            wait: id,
            ..QKey::query(0, q)
        };
        let expires_ns = now_ns + l.conf_timeout_ns;
        if let Some(o) = self.outstanding.get_mut(&key) {
            self.expiries.remove(&(o.expires_ns, key.clone()));
            o.expires_ns = expires_ns;
        } else {
            l.queries.push(key.clone());
            self.outstanding.insert(
                key.clone(),
                Outstanding {
                    lookup: id,
                    expires_ns,
                    qtype: q.qtype,
                    server,
                    tcp: false,
                },
            );
        }
        self.expiries.insert((expires_ns, key));
    }

    /// An answer to `q` came for lookup `id`: its question waits no more.
    fn stop_waiting(&mut self, id: u64, q: &Query) {
        let key = QKey {
            sk: 0,
            wait: id,
            ..QKey::query(0, q)
        };
        if let Some(o) = self.outstanding.remove(&key) {
            self.expiries.remove(&(o.expires_ns, key.clone()));
            if let Some(l) = self.lookups.get_mut(&id) {
                l.queries.retain(|k| *k != key);
            }
        }
    }

    fn asked_key(&self, pid: u32, per_query: bool, asked: &[u8]) -> AskedKey {
        use std::hash::BuildHasher;
        (pid, per_query, self.names.hash_one(asked))
    }

    /// The newest open lookup of `who` that a query for `qname` joins: one
    /// that asked `qname` itself, or (with a resolv.conf) `qname` less one
    /// of its search domains.
    fn find(&self, who: Who, conf: Option<&Conf>, qname: &[u8]) -> Option<u64> {
        let mut asked: Vec<&[u8]> = vec![qname];
        if let Some(c) = conf {
            asked.extend(c.search.iter().filter_map(|s| {
                let cut = qname.len().checked_sub(s.len() + 1)?;
                (cut > 0 && qname.ends_with(s) && qname[cut] == b'.').then(|| &qname[..cut])
            }));
        }
        let mut best = None;
        for a in asked {
            let key = self.asked_key(who.pid, conf.is_none(), a);
            for id in self.by_asked.get(&key).into_iter().flatten() {
                let Some(l) = self.lookups.get(id) else {
                    continue;
                };
                let joins = match conf {
                    Some(c) => !l.per_query && c.is_candidate(&l.asked, qname),
                    None => l.per_query && l.asked == qname,
                };
                if joins && best < Some(*id) {
                    best = Some(*id);
                }
            }
        }
        best
    }

    fn find_or_open(&mut self, who: Who, conf: Option<&Conf>, qname: &[u8], now_ns: u64) -> u64 {
        if let Some(id) = self.find(who, conf, qname) {
            return id;
        }
        let source = who.source();
        // Room first: the source's own oldest past its share, else the
        // oldest of the source holding most.
        if self.held.get(&source).copied().unwrap_or(0) >= self.cfg.per_source {
            self.evict_oldest_of(source);
        } else if self.lookups.len() >= self.cfg.max_lookups {
            if let Some(big) = self.held.iter().max_by_key(|(_, n)| **n).map(|(s, _)| *s) {
                self.evict_oldest_of(big);
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.stats.lookups += 1;
        let asked = conf.map_or(qname, |c| c.asked(qname)).to_vec();
        let asked_key = self.asked_key(who.pid, conf.is_none(), &asked);
        self.by_asked.entry(asked_key).or_default().push(id);
        self.lookups.insert(
            id,
            Lookup {
                who,
                asked,
                asked_key,
                per_query: conf.is_none(),
                conf_timeout_ns: conf.cloned().unwrap_or_default().query_timeout_ns(),
                queries: Vec::new(),
                succeeded: false,
                truncated: false,
                truncated_addrs: false,
                retried_tcp: false,
                failed: 0,
                best: None,
                last_ns: now_ns,
            },
        );
        self.by_source.entry(source).or_default().push_back(id);
        *self.held.entry(source).or_default() += 1;
        id
    }

    /// Room from `source`: its oldest lookup is judged as it stands when
    /// nothing of it is outstanding (a flood's lookups end faster than they
    /// settle: they fold, counted), else forgotten, counted.
    fn evict_oldest_of(&mut self, source: Source) {
        while let Some(id) = self
            .by_source
            .get_mut(&source)
            .and_then(VecDeque::pop_front)
        {
            if let Some(l) = self.remove(id) {
                if l.queries.is_empty() && (l.succeeded || l.best.is_some()) {
                    let mut early = std::mem::take(&mut self.early);
                    self.judge(l, &mut early);
                    self.early = early;
                } else {
                    self.stats.evicted += 1;
                }
                return;
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Lookup> {
        let l = self.lookups.remove(&id)?;
        for k in &l.queries {
            if let Some(o) = self.outstanding.remove(k) {
                self.expiries.remove(&(o.expires_ns, k.clone()));
            }
        }
        if l.truncated {
            if let Some(ids) = self.truncated_by_pid.get_mut(&l.who.pid) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.truncated_by_pid.remove(&l.who.pid);
                }
            }
        }
        if let Some(ids) = self.by_asked.get_mut(&l.asked_key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_asked.remove(&l.asked_key);
            }
        }
        let source = l.who.source();
        if let Some(n) = self.held.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&source);
                self.by_source.remove(&source);
            }
        }
        if let Some(q) = self.by_source.get_mut(&source) {
            if q.len() > 2 * self.cfg.per_source {
                let lookups = &self.lookups;
                q.retain(|i| lookups.contains_key(i));
            }
        }
        Some(l)
    }

    /// A response received on socket `sk` from `server`; false when it
    /// answers no query outstanding there (counted).
    pub fn answer(&mut self, sk: u64, r: &Response, server: Option<Server>, now_ns: u64) -> bool {
        let key = QKey::query(sk, &r.query);
        let Some(o) = self.outstanding.remove(&key) else {
            self.stats.unmatched += 1;
            return false;
        };
        self.expiries.remove(&(o.expires_ns, key.clone()));
        let id = o.lookup;
        let tcp_seen = self.cfg.tcp_seen;
        if let Said::Truncated { addresses } = r.said {
            if tcp_seen {
                self.wait_for_tcp(id, &r.query, server.or(o.server), now_ns);
            }
            if let Some(l) = self.lookups.get_mut(&id) {
                l.queries.retain(|k| *k != key);
                l.last_ns = now_ns;
                if !l.truncated {
                    let pid = l.who.pid;
                    self.truncated_by_pid.entry(pid).or_default().push(id);
                }
                l.truncated = true;
                l.truncated_addrs |= addresses;
                // Where the retry is not seen, the addresses decide.
                l.succeeded |= addresses && !tcp_seen;
            }
            return true;
        }
        self.stop_waiting(id, &r.query);
        let Some(l) = self.lookups.get_mut(&id) else {
            return true;
        };
        l.queries.retain(|k| *k != key);
        l.last_ns = now_ns;
        let exact = r.query.name == l.asked;
        match r.said {
            Said::Addresses => l.succeeded = true,
            Said::Truncated { .. } | Said::Unknown => {}
            Said::Failed(reason) => l.fail(Cand {
                reason,
                qtype: r.query.qtype,
                server: server.or(o.server),
                rcode: Some(r.rcode),
                exact,
            }),
        }
        true
    }

    /// Expires unanswered queries and judges the lookups gone quiet; a
    /// scan at most every 100 ms.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Verdict>) {
        out.append(&mut self.early);
        while let Some((at, _)) = self.expiries.first() {
            if *at > now_ns {
                break;
            }
            let Some((at, key)) = self.expiries.pop_first() else {
                break;
            };
            let Some(o) = self.outstanding.remove(&key) else {
                continue;
            };
            // A TCP retry unanswered: the question's wait ends with it.
            let retry = key.wait != 0 || o.tcp;
            if o.tcp {
                self.stop_waiting(o.lookup, &query_of(&key));
            }
            if let Some(l) = self.lookups.get_mut(&o.lookup) {
                l.queries.retain(|k| *k != key);
                // Quiet counts from when the resolver gave up.
                l.last_ns = l.last_ns.max(at);
                if key.wait != 0 && !l.retried_tcp && l.truncated_addrs {
                    // No retry over TCP seen: a client that ignores TC
                    // used the truncated answer's addresses.
                    l.succeeded = true;
                    continue;
                }
                let exact = key.name == l.asked;
                let truncated = retry && l.truncated;
                l.fail(Cand {
                    reason: if truncated {
                        Reason::TruncatedUnanswered
                    } else {
                        Reason::Timeout
                    },
                    qtype: o.qtype,
                    server: o.server,
                    rcode: None,
                    exact,
                });
            }
        }
        if now_ns >= self.next_scan_ns {
            self.next_scan_ns = now_ns + S / 10;
            let settle = self.cfg.settle_ns;
            let mut quiet: Vec<u64> = self
                .lookups
                .iter()
                .filter(|(_, l)| l.queries.is_empty() && now_ns >= l.last_ns + settle)
                .map(|(id, _)| *id)
                .collect();
            quiet.sort_unstable();
            for id in quiet {
                if let Some(l) = self.remove(id) {
                    self.judge(l, out);
                }
            }
        }
        self.end_folds(now_ns, false, out);
    }

    /// At shutdown: every lookup still open is judged as it stands, and
    /// the folds say what they hold.
    pub fn finish(&mut self, out: &mut Vec<Verdict>) {
        out.append(&mut self.early);
        let mut ids: Vec<u64> = self.lookups.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(l) = self.remove(id) {
                if l.queries.is_empty() {
                    self.judge(l, out);
                } else {
                    // Still waiting for an answer: nothing to say.
                    self.stats.undecided += 1;
                }
            }
        }
        self.end_folds(u64::MAX, true, out);
    }

    fn judge(&mut self, l: Lookup, out: &mut Vec<Verdict>) {
        if l.succeeded {
            self.stats.recovered += u64::from(l.failed > 0);
            return;
        }
        let Some(c) = l.best.filter(|_| self.cfg.tcp_seen || !l.truncated) else {
            self.stats.undecided += 1;
            return;
        };
        self.stats.failed += 1;
        let f = Failed {
            name: l.asked,
            per_query: l.per_query,
            reason: c.reason,
            qtype: c.qtype,
            server: c.server,
            rcode: c.rcode,
            who: l.who,
            ts_ns: l.last_ns,
            queries: l.failed,
        };
        let source = f.who.source();
        if !self.folds.contains_key(&source) && self.folds.len() >= self.cfg.max_folds {
            // Room: the window that ends first says what it holds.
            if let Some(old) = self
                .folds
                .iter()
                .min_by_key(|(_, f)| f.ends_ns)
                .map(|(s, _)| *s)
            {
                if let Some(fo) = self.folds.remove(&old) {
                    self.summary(old, fo, out);
                }
            }
        }
        let window = self.cfg.window_ns;
        let fold = self.folds.entry(source).or_insert_with(|| Fold {
            ends_ns: f.ts_ns.saturating_add(window),
            ..Fold::default()
        });
        if fold.emitted < self.cfg.firsts {
            fold.emitted += 1;
            out.push(Verdict::Failed(f));
            return;
        }
        self.stats.folded += 1;
        fold.folded += 1;
        fold.who = f.who;
        *fold.reasons.entry(f.reason).or_default() += 1;
        if fold.names.len() < FOLD_NAMES {
            fold.names.push(f.name);
        }
    }

    fn end_folds(&mut self, now_ns: u64, all: bool, out: &mut Vec<Verdict>) {
        if self.folds.is_empty() {
            return;
        }
        let mut ended: Vec<Source> = self
            .folds
            .iter()
            .filter(|(_, f)| all || f.ends_ns <= now_ns)
            .map(|(s, _)| *s)
            .collect();
        ended.sort_unstable_by_key(|s| (s.cgroup_id, s.uid));
        for s in ended {
            if let Some(f) = self.folds.remove(&s) {
                self.summary(s, f, out);
            }
        }
    }

    fn summary(&self, source: Source, f: Fold, out: &mut Vec<Verdict>) {
        if f.folded == 0 {
            return;
        }
        let mut reasons: Vec<(Reason, u64)> = f.reasons.into_iter().collect();
        reasons.sort_by_key(|(r, n)| (std::cmp::Reverse(*n), *r));
        out.push(Verdict::Folded(Folded {
            source,
            who: f.who,
            count: f.folded,
            window_ns: self.cfg.window_ns,
            reasons,
            names: f.names,
        }));
    }
}

/// The question of an outstanding key.
fn query_of(k: &QKey) -> Query {
    Query {
        id: k.id,
        qtype: k.qtype,
        name: k.name.clone(),
    }
}

impl Lookup {
    fn fail(&mut self, c: Cand) {
        self.failed += 1;
        // The answer for the name asked itself says most; else the latest.
        if self.best.is_none_or(|b| c.exact || !b.exact) {
            self.best = Some(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::outcome::Said;

    const MS: u64 = 1_000_000;

    fn conf() -> Conf {
        Conf::parse(b"search ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:2\nnameserver 10.0.0.2\n")
    }

    fn who(pid: u32, cgroup_id: u64) -> Who {
        Who {
            pid,
            uid: 1000,
            cgroup_id,
            comm: Comm::new(b"curl"),
        }
    }

    fn q(name: &str, qtype: u16, id: u16) -> Query {
        Query {
            id,
            qtype,
            name: name.as_bytes().to_vec(),
        }
    }

    fn resp(name: &str, qtype: u16, id: u16, rcode: u8, said: Said) -> Response {
        Response {
            query: q(name, qtype, id),
            rcode,
            said,
        }
    }

    fn srv(last: u8) -> Option<Server> {
        Some(Server {
            addr: IpAddr::from([10, 0, 0, last]),
            port: 53,
        })
    }

    const NX: Said = Said::Failed(Reason::NxDomain);

    /// A glibc walk of `api` with ndots:5: each candidate A and AAAA.
    fn walk(l: &mut Lookups, w: Who, c: Option<&Conf>, last: Said, t: &mut u64) {
        let names = [
            "api.ns.svc.cluster.local",
            "api.svc.cluster.local",
            "api.cluster.local",
            "api",
        ];
        for (i, n) in names.iter().enumerate() {
            let id = i as u16 * 2;
            l.query(w, c, 1, &q(n, 1, id), srv(2), false, *t);
            l.query(w, c, 1, &q(n, 28, id + 1), srv(2), false, *t);
            *t += MS;
            let said = if i == 3 { last } else { NX };
            let rc = if said == NX { 3 } else { 0 };
            assert!(l.answer(1, &resp(n, 1, id, rc, said), srv(2), *t));
            let aaaa = if said == Said::Addresses {
                Said::Failed(Reason::NoData)
            } else {
                said
            };
            assert!(l.answer(1, &resp(n, 28, id + 1, rc, aaaa), srv(2), *t));
            *t += MS;
        }
    }

    #[test]
    fn a_search_list_walk_that_fails_is_one_failure_named_as_asked() {
        let mut l = Lookups::new(Config::default());
        let mut t = 0;
        walk(&mut l, who(7, 1), Some(&conf()), NX, &mut t);
        let mut out = Vec::new();
        l.tick(t, &mut out);
        assert!(out.is_empty(), "not quiet yet");
        l.tick(t + S, &mut out);
        let [Verdict::Failed(f)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(f.name, b"api");
        assert_eq!(
            (f.reason, f.rcode, f.queries, f.per_query),
            (Reason::NxDomain, Some(3), 8, false)
        );
        assert_eq!(f.server, srv(2));
        assert_eq!(l.open(), 0);
    }

    #[test]
    fn a_walk_finds_its_lookup_among_hundreds_a_process_has_open() {
        let mut l = Lookups::new(Config::default());
        let (w, c) = (who(7, 1), conf());
        // A crawler's lookups, answered, not yet quiet.
        for i in 0..200u16 {
            let n = format!("site{i}.example.com");
            l.query(w, Some(&c), 1, &q(&n, 1, i), srv(2), false, 0);
            assert!(l.answer(1, &resp(&n, 1, i, 0, Said::Addresses), srv(2), 0));
        }
        let mut t = MS;
        walk(&mut l, w, Some(&c), NX, &mut t);
        // Another process walking the same name is its own lookup.
        walk(&mut l, who(8, 1), Some(&c), NX, &mut t);
        assert_eq!(l.open(), 202, "each walk is one lookup");
        let mut out = Vec::new();
        l.tick(t + S, &mut out);
        let failed: Vec<_> = out
            .iter()
            .filter_map(|v| match v {
                Verdict::Failed(f) => Some((f.name.clone(), f.who.pid, f.queries)),
                _ => None,
            })
            .collect();
        assert_eq!(failed, [(b"api".to_vec(), 7, 8), (b"api".to_vec(), 8, 8)]);
    }

    #[test]
    fn a_walk_that_ends_in_an_address_with_nodata_beside_it_is_no_failure() {
        let mut l = Lookups::new(Config::default());
        let mut t = 0;
        walk(&mut l, who(7, 1), Some(&conf()), Said::Addresses, &mut t);
        let mut out = Vec::new();
        l.tick(t + 10 * S, &mut out);
        assert!(out.is_empty());
        assert_eq!(l.stats().recovered, 1);
    }

    #[test]
    fn a_server_that_times_out_then_the_next_answers_is_recovered() {
        let c = conf();
        let mut l = Lookups::new(Config::default());
        let w = who(7, 1);
        let mut out = Vec::new();
        // The first server never answers; after 1 s the next does.
        l.query(
            w,
            Some(&c),
            1,
            &q("api.example.com", 1, 5),
            srv(9),
            false,
            0,
        );
        l.tick(S, &mut out);
        l.query(
            w,
            Some(&c),
            2,
            &q("api.example.com", 1, 5),
            srv(2),
            false,
            S,
        );
        assert!(l.answer(
            2,
            &resp("api.example.com", 1, 5, 0, Said::Addresses),
            srv(2),
            S + MS
        ));
        l.tick(10 * S, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(l.stats().recovered, 1);
    }

    #[test]
    fn unanswered_queries_time_out_after_timeout_times_attempts() {
        let c = conf();
        let mut l = Lookups::new(Config::default());
        let mut out = Vec::new();
        l.query(
            who(7, 1),
            Some(&c),
            1,
            &q("db.example.com", 1, 5),
            srv(9),
            false,
            0,
        );
        l.query(
            who(7, 1),
            Some(&c),
            1,
            &q("db.example.com", 28, 6),
            srv(9),
            false,
            0,
        );
        l.tick(2 * S - 1, &mut out);
        l.tick(2 * S + S / 2, &mut out);
        assert!(out.is_empty());
        l.tick(3 * S, &mut out);
        let [Verdict::Failed(f)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((f.reason, f.rcode, f.queries), (Reason::Timeout, None, 2));
        assert_eq!(f.name, b"db.example.com");
    }

    #[test]
    fn without_resolv_conf_each_query_name_is_its_own_lookup() {
        let mut l = Lookups::new(Config::default());
        let mut t = 0;
        walk(&mut l, who(7, 1), None, NX, &mut t);
        let mut out = Vec::new();
        l.tick(t + S, &mut out);
        assert_eq!(out.len(), 4);
        assert!(out
            .iter()
            .all(|v| matches!(v, Verdict::Failed(f) if f.per_query)));
    }

    #[test]
    fn a_truncated_answer_gets_no_verdict() {
        let mut l = Lookups::new(Config::default());
        l.query(
            who(7, 1),
            Some(&conf()),
            1,
            &q("big.test", 1, 5),
            srv(2),
            false,
            0,
        );
        assert!(l.answer(
            1,
            &resp("big.test", 1, 5, 0, Said::Truncated { addresses: false }),
            srv(2),
            MS
        ));
        let mut out = Vec::new();
        l.tick(5 * S, &mut out);
        assert!(out.is_empty());
        assert_eq!(l.stats().undecided, 1);
        // An answer to nothing asked is counted, not judged.
        assert!(!l.answer(1, &resp("big.test", 1, 5, 3, NX), srv(2), MS));
        assert_eq!(l.stats().unmatched, 1);
    }

    fn tcp_lookups() -> Lookups {
        Lookups::new(Config {
            tcp_seen: true,
            ..Config::default()
        })
    }

    const TC: Said = Said::Truncated { addresses: true };

    /// Issue 32, DNS over TCP: a truncated UDP answer waits for its retry
    /// over TCP, whose answer decides: an address, or a failure.
    #[test]
    fn a_truncated_answer_is_decided_by_its_retry_over_tcp() {
        for (tcp_said, rcode, failed) in [(Said::Addresses, 0, false), (NX, 3, true)] {
            let mut l = tcp_lookups();
            let w = who(7, 1);
            let c = conf();
            let mut out = Vec::new();
            l.query(w, Some(&c), 1, &q("big.test", 1, 5), srv(2), false, 0);
            assert!(l.answer(1, &resp("big.test", 1, 5, 0, TC), srv(2), MS));
            l.tick(S + S / 2, &mut out);
            assert!(out.is_empty(), "waiting for the TCP retry: {out:?}");
            l.tcp_connect(7, S + S / 2);
            l.query(
                w,
                Some(&c),
                2,
                &q("big.test", 1, 5),
                srv(2),
                true,
                S + S / 2,
            );
            assert!(l.answer(2, &resp("big.test", 1, 5, rcode, tcp_said), srv(2), 2 * S));
            l.tick(10 * S, &mut out);
            if failed {
                let [Verdict::Failed(f)] = &out[..] else {
                    panic!("{out:?}")
                };
                assert_eq!((f.reason, f.rcode), (Reason::NxDomain, Some(3)));
            } else {
                assert!(out.is_empty(), "{out:?}");
            }
            assert_eq!(l.outstanding.len() + l.expiries.len(), 0);
        }
    }

    /// Retried over TCP (a connection to port 53 opened, whose SYN a
    /// firewall drops, or a query sent that nobody answers): no answer
    /// within the resolver's timeout is `truncated_unanswered`, once.
    #[test]
    fn a_tcp_retry_unanswered_is_truncated_unanswered() {
        for query_sent in [false, true] {
            let mut l = tcp_lookups();
            let w = who(7, 1);
            let c = conf();
            let mut out = Vec::new();
            l.query(w, Some(&c), 1, &q("big.test", 1, 5), srv(2), false, 0);
            assert!(l.answer(1, &resp("big.test", 1, 5, 0, TC), srv(2), MS));
            l.tcp_connect(7, 2 * MS);
            if query_sent {
                l.query(w, Some(&c), 2, &q("big.test", 1, 5), srv(2), true, 3 * MS);
            }
            l.tick(S, &mut out);
            assert!(out.is_empty());
            l.tick(4 * S, &mut out);
            let [Verdict::Failed(f)] = &out[..] else {
                panic!("{out:?}")
            };
            assert_eq!(
                (f.reason, f.rcode, f.server),
                (Reason::TruncatedUnanswered, None, srv(2))
            );
            assert_eq!(f.name, b"big.test");
        }
    }

    /// No retry over TCP seen: a client that ignores TC used the
    /// truncated answer's addresses (no failure); one with none got
    /// nothing (a failure). Over TCP from the start (use-vc), a query
    /// unanswered is a plain timeout.
    #[test]
    fn without_a_tcp_retry_the_truncated_answer_decides() {
        for (said, failure) in [
            (TC, None),
            (
                Said::Truncated { addresses: false },
                Some(Reason::TruncatedUnanswered),
            ),
        ] {
            let mut l = tcp_lookups();
            let mut out = Vec::new();
            l.query(
                who(7, 1),
                Some(&conf()),
                1,
                &q("big.test", 1, 5),
                srv(2),
                false,
                0,
            );
            assert!(l.answer(1, &resp("big.test", 1, 5, 0, said), srv(2), MS));
            l.tick(10 * S, &mut out);
            let reasons: Vec<_> = out
                .iter()
                .filter_map(|v| match v {
                    Verdict::Failed(f) => Some(f.reason),
                    _ => None,
                })
                .collect();
            assert_eq!(reasons, failure.into_iter().collect::<Vec<_>>());
        }
        let mut l = tcp_lookups();
        let mut out = Vec::new();
        l.query(
            who(7, 1),
            Some(&conf()),
            3,
            &q("vc.test", 1, 5),
            srv(2),
            true,
            0,
        );
        l.tick(10 * S, &mut out);
        let [Verdict::Failed(f)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(f.reason, Reason::Timeout);
    }

    /// The flood of the issue: one source asks 100,000 unique names that
    /// do not exist; another's single failure still comes out in full,
    /// and the flood is one summary with its count.
    #[test]
    fn a_flood_of_nxdomains_folds_and_cannot_hide_a_victims_failure() {
        let cfg = Config::default();
        let mut l = Lookups::new(cfg);
        let c = conf();
        let mut out = Vec::new();
        let flood = who(66, 6);
        let victim = who(7, 1);
        l.query(
            victim,
            Some(&c),
            1,
            &q("pay.example.com", 1, 1),
            srv(2),
            false,
            0,
        );
        for i in 0..100_000u64 {
            let n = format!("x{i}.scan.test");
            let t = i * 10_000;
            l.query(flood, Some(&c), 9, &q(&n, 1, i as u16), srv(2), false, t);
            assert!(l.open() <= cfg.max_lookups);
            if i % 2 == 0 {
                l.answer(9, &resp(&n, 1, i as u16, 3, NX), srv(2), t);
            }
            if i == 500 {
                l.answer(
                    1,
                    &resp("pay.example.com", 1, 1, 5, Said::Failed(Reason::Refused)),
                    srv(2),
                    t,
                );
            }
            l.tick(t, &mut out);
        }
        l.finish(&mut out);
        let victims: Vec<_> = out
            .iter()
            .filter(|v| matches!(v, Verdict::Failed(f) if f.who.pid == 7))
            .collect();
        assert_eq!(victims.len(), 1, "the victim's failure in full");
        let full = out
            .iter()
            .filter(|v| matches!(v, Verdict::Failed(f) if f.who.pid == 66))
            .count() as u64;
        let folded: u64 = out
            .iter()
            .filter_map(|v| match v {
                Verdict::Folded(f) => Some(f.count),
                _ => None,
            })
            .sum();
        assert_eq!(full, cfg.firsts, "one window: its firsts in full");
        assert!(folded > 40_000, "{folded}");
        let s = l.stats();
        assert_eq!(s.failed, full + folded + 1);
        assert_eq!(s.folded, folded);
        assert!(s.evicted > 0 && s.lookups == 100_001);
        assert_eq!(l.outstanding.len(), 0);
        assert_eq!(l.expiries.len(), 0);
    }

    /// Another source's lookups are not evicted by a flood.
    #[test]
    fn a_flood_evicts_only_its_own_lookups() {
        let cfg = Config {
            max_lookups: 64,
            per_source: 16,
            ..Config::default()
        };
        let mut l = Lookups::new(cfg);
        let c = conf();
        l.query(
            who(7, 1),
            Some(&c),
            1,
            &q("slow.example.com", 1, 1),
            srv(2),
            false,
            0,
        );
        for i in 0..1000u64 {
            l.query(
                who(66, 6),
                Some(&c),
                9,
                &q(&format!("x{i}.test"), 1, 1),
                srv(2),
                false,
                i,
            );
        }
        for s in 0..10u64 {
            for i in 0..100u64 {
                l.query(
                    who(100 + s as u32, 100 + s),
                    Some(&c),
                    9,
                    &q(&format!("y{i}.test"), 1, 1),
                    srv(2),
                    false,
                    1000 + i,
                );
            }
        }
        assert!(l.open() <= 64);
        assert!(l.answer(
            1,
            &resp("slow.example.com", 1, 1, 2, Said::Failed(Reason::ServFail)),
            srv(2),
            MS
        ));
    }
}

//! The queries each socket has outstanding, so an answer counts only if
//! its socket asked that question with that id (issue 29): a server
//! cannot slip in an answer to a question it was not asked, and an answer
//! forged into a socket that sent no query is nothing. Bounded: some
//! queries per socket (a forwarder has many in flight on one), a few
//! thousand sockets and queries in all, each kept for a while; what goes
//! first is the socket that asked least recently. Pure: the caller
//! passes the time.

use std::collections::{HashMap, VecDeque};

use super::answer::{Answer, Query};
use crate::event::hash::FastHash;

/// Queries kept per socket: a stub asks A and AAAA; a forwarder such as
/// dnsmasq has many in flight on one socket.
pub const PER_SOCKET: usize = 64;
/// Sockets and queries kept in all; past either, the socket that asked
/// least recently goes.
pub const MAX_SOCKETS: usize = 4096;
pub const MAX_QUERIES: usize = 16_384;
/// An answer later than this is not to a query still outstanding.
pub const MAX_AGE_NS: u64 = 30_000_000_000;

struct Asked {
    queries: VecDeque<(Query, u64)>,
    /// Which slot of `order` is this socket's latest.
    generation: u64,
}

#[derive(Default)]
pub struct Pending {
    sockets: HashMap<u64, Asked, FastHash>,
    /// Sockets by their last query, oldest first, with the generation.
    order: VecDeque<(u64, u64)>,
    generation: u64,
    /// Queries held, in all sockets.
    queries: usize,
}

impl Pending {
    /// A query socket `sk` sent at `now_ns`.
    pub fn sent(&mut self, sk: u64, q: Query, now_ns: u64) {
        self.generation += 1;
        let generation = self.generation;
        let asked = self.sockets.entry(sk).or_insert_with(|| Asked {
            queries: VecDeque::new(),
            generation,
        });
        if asked.queries.len() == PER_SOCKET {
            asked.queries.pop_front();
            self.queries -= 1;
        }
        asked.queries.push_back((q, now_ns));
        self.queries += 1;
        asked.generation = generation;
        self.order.push_back((sk, generation));
        while self.sockets.len() > MAX_SOCKETS || self.queries > MAX_QUERIES {
            let Some((old, g)) = self.order.pop_front() else {
                break;
            };
            if self.sockets.get(&old).is_some_and(|a| a.generation == g) {
                if let Some(a) = self.sockets.remove(&old) {
                    self.queries -= a.queries.len();
                }
            }
        }
        if self.order.len() > 2 * self.sockets.len() + 64 {
            let sockets = &self.sockets;
            self.order
                .retain(|(s, g)| sockets.get(s).is_some_and(|a| a.generation == *g));
        }
    }

    /// Whether `a`, received on `sk` at `now_ns`, answers a query `sk`
    /// has outstanding; that query is then answered and forgotten.
    pub fn answered(&mut self, sk: u64, a: &Answer, now_ns: u64) -> bool {
        let Some(asked) = self.sockets.get_mut(&sk) else {
            return false;
        };
        let Some(i) = asked
            .queries
            .iter()
            .position(|(q, at)| a.answers(q) && now_ns.saturating_sub(*at) < MAX_AGE_NS)
        else {
            return false;
        };
        asked.queries.remove(i);
        self.queries -= 1;
        if asked.queries.is_empty() {
            self.sockets.remove(&sk);
        }
        true
    }

    /// Forgets queries past [`MAX_AGE_NS`] (the daemon calls it now and then).
    pub fn sweep(&mut self, now_ns: u64) {
        let mut held = 0;
        self.sockets.retain(|_, a| {
            a.queries
                .retain(|(_, at)| now_ns.saturating_sub(*at) < MAX_AGE_NS);
            held += a.queries.len();
            !a.queries.is_empty()
        });
        self.queries = held;
        let sockets = &self.sockets;
        self.order
            .retain(|(s, g)| sockets.get(s).is_some_and(|a| a.generation == *g));
    }

    pub fn sockets(&self) -> usize {
        self.sockets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::answer::wire::*;
    use crate::dns::answer::{parse, parse_query};

    fn q(n: &str, qtype: u16) -> Query {
        parse_query(&query(&name(n), qtype)).unwrap()
    }

    fn a(n: &str, qtype: u16) -> Answer {
        parse(&response(
            &name(n),
            qtype,
            &[rr(&QNAME, qtype, 9, &[192, 0, 2, 1])],
        ))
        .unwrap()
    }

    #[test]
    fn an_answer_counts_once_on_the_socket_that_asked_within_its_time() {
        let mut p = Pending::default();
        p.sent(1, q("shop.t", 1), 0);
        p.sent(1, q("shop.t", 28), 0);
        assert!(!p.answered(2, &a("shop.t", 1), 1), "another socket");
        assert!(!p.answered(1, &a("bank.example", 1), 1), "another question");
        assert!(p.answered(1, &a("shop.t", 1), 1));
        assert!(!p.answered(1, &a("shop.t", 1), 1), "answered once");
        assert!(!p.answered(1, &a("shop.t", 28), MAX_AGE_NS), "too late");
        p.sweep(MAX_AGE_NS);
        assert_eq!(p.sockets(), 0);
    }

    #[test]
    fn a_flood_of_queries_stays_bounded() {
        let mut p = Pending::default();
        for i in 0..100_000u64 {
            p.sent(i % 10_000, q("x.test", 1), i);
            assert!(p.sockets() <= MAX_SOCKETS && p.queries <= MAX_QUERIES);
            assert!(p.order.len() <= 2 * MAX_SOCKETS + 64);
        }
        for i in 0..100_000u64 {
            p.sent(1, q(&format!("n{i}.test"), 1), i);
            assert!(p.queries <= MAX_QUERIES);
        }
        let held: usize = p.sockets.values().map(|a| a.queries.len()).sum();
        assert_eq!(held, p.queries);
        // The newest sockets are kept, each with its last few.
        assert!(p.answered(9_999, &a("x.test", 1), 100_000));
        assert!(!p.answered(0, &a("x.test", 1), 100_000));
        for _ in 0..100 {
            p.sent(7, q("y.test", 1), 0);
        }
        assert_eq!(p.sockets[&7].queries.len(), PER_SOCKET);
    }
}

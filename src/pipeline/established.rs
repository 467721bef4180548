//! Connections this host opened, from ESTABLISHED on, kept so that one
//! that breaks later (`connection_broken`) is reported with who opened
//! it: at the break the kernel runs a softirq or a timer, not the owner.
//! Pure and bounded. The kernel says nothing of a normal close (it would
//! cost every connection a record), so an entry leaves when its
//! connection breaks, when its socket address is established again, or,
//! oldest first, to make room: a long-lived connection on a host that
//! opens many short ones may be forgotten, and its break is then counted
//! (`unmatched`), not reported.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::event::hash::FastHash;
use crate::event::{Broken, Caller, Failure, Reason, Record, Seen, Stage, TimeoutBy};
use crate::pipeline::correlate::Connected;

/// One established connection: who opened it and when it was made.
#[derive(Debug, Clone, Copy)]
struct Open {
    caller: Option<Caller>,
    established_ns: u64,
    daddr: IpAddr,
    dport: u16,
    sport: Option<u16>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenCounters {
    /// Connections that broke, reported.
    pub broken: u64,
    /// Breaks of connections not on record (made before tcpstate started,
    /// forgotten to make room, or tcpstate's own), counted only.
    pub unmatched: u64,
    /// Forgotten to make room while possibly still open.
    pub evicted: u64,
}

pub struct Established {
    open: HashMap<u64, Open, FastHash>,
    /// Insertion order (skaddr, established_ns), for making room; entries
    /// of connections gone or replaced are skipped when they come up.
    order: VecDeque<(u64, u64)>,
    max: usize,
    counters: OpenCounters,
}

impl Established {
    pub fn new(max: usize) -> Self {
        Established {
            open: HashMap::default(),
            order: VecDeque::new(),
            max: max.max(1),
            counters: OpenCounters::default(),
        }
    }

    pub fn counters(&self) -> OpenCounters {
        self.counters
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A connection was made on socket `skaddr` (its ESTABLISHED record).
    pub fn connected(&mut self, skaddr: u64, c: &Connected, sport: Option<u16>) {
        while self.open.len() >= self.max && !self.open.contains_key(&skaddr) {
            let Some((sk, ts)) = self.order.pop_front() else {
                break;
            };
            if self.open.get(&sk).is_some_and(|o| o.established_ns == ts) {
                self.open.remove(&sk);
                self.counters.evicted += 1;
            }
        }
        self.open.insert(
            skaddr,
            Open {
                caller: c.caller,
                established_ns: c.end_ns,
                daddr: c.daddr,
                dport: c.dport,
                sport,
            },
        );
        self.order.push_back((skaddr, c.end_ns));
        // Entries left by replaced sockets: compact before they pile up.
        if self.order.len() > 2 * self.open.len() + 1024 {
            let open = &self.open;
            self.order
                .retain(|&(sk, ts)| open.get(&sk).is_some_and(|o| o.established_ns == ts));
        }
    }

    /// A Broken record: the failure to report, or None (counted) when the
    /// connection is not on record as one this host opened.
    pub fn broke(&mut self, ev: &Record) -> Option<Failure> {
        let matches = self.open.get(&ev.skaddr).is_some_and(|o| {
            o.daddr == ev.daddr
                && o.dport == ev.dport
                && o.established_ns <= ev.ts_ns
                && (o.sport.is_none() || ev.sport.is_none() || o.sport == ev.sport)
        });
        if !matches {
            self.counters.unmatched += 1;
            return None;
        }
        let o = self.open.remove(&ev.skaddr)?;
        self.counters.broken += 1;
        let reason = Reason::from_errno(ev.sk_err);
        Some(Failure {
            caller: o.caller,
            family: ev.family,
            saddr: ev.saddr,
            sport: ev.sport.or(o.sport),
            daddr: ev.daddr,
            dport: ev.dport,
            reason,
            errno: ev.sk_err,
            stage: Stage::Established(Broken {
                state: ev.oldstate,
                // The kernel counts the SYN's sequence number too (the
                // SYN-ACK advances snd_una through tcp_snd_una_update):
                // what is left is data (and a FIN, if one was acked).
                bytes_acked: ev.bytes_acked.saturating_sub(1),
                bytes_received: ev.bytes_received,
            }),
            seen: if o.caller.is_some() {
                Seen::Live
            } else {
                Seen::Unmatched
            },
            ts_ns: ev.ts_ns,
            duration_ns: ev.ts_ns.saturating_sub(o.established_ns),
            retransmits: 0,
            timeout_by: (reason == Reason::Timeout).then_some(TimeoutBy::Kernel),
            icmp: None,
            dropped: None,
            rst_ttl: ev.rst_ttl,
            dname: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Family, Kind, TcpState};

    fn connected(daddr: &str, end_ns: u64) -> Connected {
        Connected {
            caller: Some(Caller::sample(42, b"curl")),
            family: Family::Ipv4,
            daddr: daddr.parse().unwrap(),
            dport: 443,
            start_ns: end_ns - 1,
            end_ns,
        }
    }

    fn broken(skaddr: u64, daddr: &str, ts_ns: u64, err: u32) -> Record {
        Record {
            kind: Kind::Broken,
            skaddr,
            ts_ns,
            caller: Caller::default(),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            daddr: daddr.parse().unwrap(),
            sport: Some(40000),
            dport: 443,
            oldstate: TcpState::Established,
            newstate: TcpState::Close,
            sk_err: err,
            icmp_type: 0,
            icmp_code: 0,
            drop_reason: 0,
            bytes_acked: 10,
            bytes_received: 2000,
            rst_ttl: None,
        }
    }

    #[test]
    fn a_break_is_reported_with_who_opened_it_and_for_how_long() {
        let mut t = Established::new(8);
        t.connected(1, &connected("192.0.2.2", 1_000), Some(40000));
        let f = t.broke(&broken(1, "192.0.2.2", 3_201_000, 104)).unwrap();
        assert_eq!(f.reason, Reason::Reset);
        assert_eq!(f.caller.unwrap().pid, 42);
        assert_eq!(f.duration_ns, 3_200_000);
        let b = f.stage.broken().unwrap();
        assert_eq!(
            (b.state, b.bytes_acked, b.bytes_received),
            (TcpState::Established, 9, 2000)
        );
        // Once.
        assert!(t.broke(&broken(1, "192.0.2.2", 3_300_000, 104)).is_none());
        let f = {
            t.connected(2, &connected("192.0.2.2", 5), None);
            t.broke(&broken(2, "192.0.2.2", 10, 110)).unwrap()
        };
        assert_eq!(
            (f.reason, f.timeout_by),
            (Reason::Timeout, Some(TimeoutBy::Kernel))
        );
        assert_eq!(t.counters().broken, 2);
        assert_eq!(t.counters().unmatched, 1);
    }

    #[test]
    fn a_reset_carries_its_rsts_ttl() {
        let mut t = Established::new(8);
        t.connected(1, &connected("192.0.2.2", 5), Some(40000));
        let r = Record {
            rst_ttl: Some(57),
            ..broken(1, "192.0.2.2", 10, 104)
        };
        let f = t.broke(&r).unwrap();
        assert_eq!((f.reason, f.rst_ttl), (Reason::Reset, Some(57)));
        t.connected(2, &connected("192.0.2.2", 5), None);
        assert_eq!(
            t.broke(&broken(2, "192.0.2.2", 10, 104)).unwrap().rst_ttl,
            None
        );
    }

    #[test]
    fn a_socket_reused_for_another_destination_is_not_mistaken() {
        let mut t = Established::new(8);
        t.connected(1, &connected("192.0.2.2", 5), Some(40000));
        assert!(t.broke(&broken(1, "192.0.2.9", 10, 104)).is_none());
        // Not before it was made either.
        assert!(t.broke(&broken(1, "192.0.2.2", 4, 104)).is_none());
        assert_eq!(t.counters().unmatched, 2);
    }

    #[test]
    fn the_table_is_bounded_oldest_first() {
        let mut t = Established::new(2);
        for sk in 1..=3 {
            t.connected(sk, &connected("192.0.2.2", sk * 10), None);
        }
        assert_eq!((t.len(), t.counters().evicted), (2, 1));
        assert!(t.broke(&broken(1, "192.0.2.2", 100, 104)).is_none());
        assert!(t.broke(&broken(3, "192.0.2.2", 100, 104)).is_some());
        // Re-established sockets do not grow the order queue without bound.
        for i in 0..10_000 {
            t.connected(7, &connected("192.0.2.2", 1000 + i), None);
        }
        assert!(t.order.len() <= 2 * t.len() + 1024);
    }
}

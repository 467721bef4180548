//! DNS answers, parsed with the `domain` crate in place (no copy of the
//! message): the name an application asked for, and the addresses the
//! answer gives it, through any CNAME chain; and the queries they answer
//! (id and question), so an answer can be paired with one. Pure.

use std::net::IpAddr;

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::name::ParsedName;
use domain::base::{Message, ParsedRecord, Question, RecordSection};
use domain::rdata::{Aaaa, Cname, A};

use super::name::MAX_LEN;

/// Addresses kept from one answer; the rest are counted as dropped.
pub const MAX_ADDRS: usize = 16;
/// CNAMEs followed from the question name.
pub const MAX_CHAIN: usize = 8;

/// What one answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The message id and the question's type: with `name`, the query
    /// this answers.
    pub id: u16,
    pub qtype: u16,
    /// The question name, lowercased, dot-joined, no trailing dot.
    pub name: Vec<u8>,
    /// Each address with its TTL in seconds (the smallest along the chain).
    pub addrs: Vec<(IpAddr, u32)>,
    /// Addresses beyond [`MAX_ADDRS`], not kept.
    pub dropped: usize,
    /// The message ended inside its answer section (cut at the 512
    /// bytes the kernel copies, or malformed there): what came before is
    /// kept.
    pub partial: bool,
    /// TC set: cut by the server to fit UDP; the resolver asks again
    /// over TCP.
    pub truncated: bool,
}

/// Why a message gives no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a standard-query response, not NOERROR, not one question of
    /// class IN for A, AAAA or ANY: nothing to learn, and not an error.
    NotAnAddressAnswer,
    /// Shorter than a header, or its question does not parse.
    Malformed,
    /// A question name with a dot inside a label, or too long to show.
    BadName,
}

/// The question name as kept: labels lowercased and joined with dots. A
/// label with a dot in it would read as two: refused.
pub(super) fn name_text<O: AsRef<[u8]>>(n: &ParsedName<O>) -> Result<Vec<u8>, Skip> {
    let mut out = Vec::with_capacity(64);
    for label in n.iter() {
        if label.is_root() {
            break;
        }
        if !out.is_empty() {
            out.push(b'.');
        }
        let l = label.as_slice();
        if l.contains(&b'.') {
            return Err(Skip::BadName);
        }
        out.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    if out.is_empty() || out.len() > MAX_LEN {
        return Err(Skip::BadName);
    }
    Ok(out)
}

type Name<'a> = ParsedName<&'a [u8]>;
type Section<'a> = RecordSection<'a, &'a [u8]>;
type Rec<'a> = ParsedRecord<'a, &'a [u8]>;

pub fn parse(bytes: &[u8]) -> Result<Answer, Skip> {
    let msg = Message::from_octets(bytes).map_err(|_| Skip::Malformed)?;
    let q = address_question(&msg)?;
    let mut ans = Answer {
        id: msg.header().id(),
        qtype: q.qtype().to_int(),
        name: name_text(q.qname())?,
        addrs: Vec::new(),
        dropped: 0,
        partial: false,
        truncated: msg.header().tc(),
    };
    let Ok(section) = msg.answer() else {
        ans.partial = true;
        return Ok(ans);
    };
    let chain = ans.follow_cnames(*q.qname(), section);
    ans.take_addresses(&chain, section);
    Ok(ans)
}

/// A query for addresses an application sent: what an answer must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub qtype: u16,
    /// As [`Answer::name`].
    pub name: Vec<u8>,
}

/// A standard query with one question for addresses (A, AAAA or ANY) of
/// class IN; None for anything else (no answer to it is learned from).
pub fn parse_query(bytes: &[u8]) -> Option<Query> {
    let msg = Message::from_octets(bytes).ok()?;
    let h = msg.header();
    if h.qr() || h.opcode() != Opcode::QUERY || msg.header_counts().qdcount() != 1 {
        return None;
    }
    let q = msg.first_question()?;
    if q.qclass() != Class::IN || !matches!(q.qtype(), Rtype::A | Rtype::AAAA | Rtype::ANY) {
        return None;
    }
    Some(Query {
        id: h.id(),
        qtype: q.qtype().to_int(),
        name: name_text(q.qname()).ok()?,
    })
}

impl Answer {
    /// Whether this answers `q`: the same id and question.
    pub fn answers(&self, q: &Query) -> bool {
        self.id == q.id && self.qtype == q.qtype && self.name == q.name
    }
}

/// The one question of a standard-query NOERROR response, if it asks
/// for addresses (A, AAAA or ANY) of class IN.
fn address_question<'a>(msg: &'a Message<&'a [u8]>) -> Result<Question<Name<'a>>, Skip> {
    let h = msg.header();
    if !h.qr() || h.opcode() != Opcode::QUERY || h.rcode() != Rcode::NOERROR {
        return Err(Skip::NotAnAddressAnswer);
    }
    if msg.header_counts().qdcount() != 1 {
        return Err(Skip::NotAnAddressAnswer);
    }
    let q = msg.first_question().ok_or(Skip::Malformed)?;
    if q.qclass() != Class::IN || !matches!(q.qtype(), Rtype::A | Rtype::AAAA | Rtype::ANY) {
        return Err(Skip::NotAnAddressAnswer);
    }
    Ok(q)
}

/// A CNAME of class IN from a name in `chain`: its target, with the
/// smallest TTL along the way; `Err` where its data does not parse.
fn cname_from<'a>(chain: &[(Name<'a>, u32)], rec: &Rec<'a>) -> Result<Option<(Name<'a>, u32)>, ()> {
    if rec.rtype() != Rtype::CNAME || rec.class() != Class::IN {
        return Ok(None);
    }
    let owner = rec.owner();
    let Some(&(_, ttl)) = chain.iter().find(|(n, _)| *n == owner) else {
        return Ok(None);
    };
    let Ok(Some(c)) = rec.to_record::<Cname<Name<'a>>>() else {
        return Err(());
    };
    Ok(Some((*c.data().cname(), ttl.min(rec.ttl().as_secs()))))
}

/// An A or AAAA record's address; `None` where its data does not parse.
fn address(rec: &Rec<'_>) -> Option<IpAddr> {
    match rec.rtype() {
        Rtype::A => rec
            .to_record::<A>()
            .ok()
            .flatten()
            .map(|r| IpAddr::from(r.data().addr().octets())),
        _ => rec
            .to_record::<Aaaa>()
            .ok()
            .flatten()
            .map(|r| IpAddr::from(r.data().addr().octets())),
    }
}

impl Answer {
    /// The names that stand for the question: itself, then each CNAME
    /// target from one of them, however the records are ordered; each
    /// with the smallest TTL along its chain.
    fn follow_cnames<'a>(&mut self, qname: Name<'a>, section: Section<'a>) -> Vec<(Name<'a>, u32)> {
        let mut chain = vec![(qname, u32::MAX)];
        let mut grew = true;
        while grew && chain.len() <= MAX_CHAIN {
            grew = false;
            for rec in section {
                let Ok(rec) = rec else {
                    self.partial = true;
                    break;
                };
                match cname_from(&chain, &rec) {
                    Ok(None) => {}
                    Err(()) => self.partial = true,
                    Ok(Some((target, ttl))) => {
                        if chain.iter().any(|(n, _)| *n == target) || chain.len() > MAX_CHAIN {
                            continue;
                        }
                        chain.push((target, ttl));
                        grew = true;
                    }
                }
            }
        }
        chain
    }

    /// The addresses of the names in `chain`, up to [`MAX_ADDRS`]; the
    /// rest counted as dropped.
    fn take_addresses<'a>(&mut self, chain: &[(Name<'a>, u32)], section: Section<'a>) {
        for rec in section {
            let Ok(rec) = rec else {
                self.partial = true;
                break;
            };
            if rec.class() != Class::IN || !matches!(rec.rtype(), Rtype::A | Rtype::AAAA) {
                continue;
            }
            let owner = rec.owner();
            let Some(&(_, chain_ttl)) = chain.iter().find(|(n, _)| *n == owner) else {
                continue; // an address of some other name: not this question's
            };
            let Some(addr) = address(&rec) else {
                self.partial = true;
                continue;
            };
            if self.addrs.len() >= MAX_ADDRS {
                self.dropped += 1;
                continue;
            }
            self.addrs.push((addr, chain_ttl.min(rec.ttl().as_secs())));
        }
    }
}

/// Builders of wire-format messages, for this module's tests and the
/// memory's.
#[cfg(test)]
pub mod wire {
    pub fn name(n: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for l in n.split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    /// A record: owner as wire bytes (a name, or a pointer), type, TTL,
    /// rdata.
    pub fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut out = owner.to_vec();
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        out
    }

    /// The query (id 0x1234) that [`response`] answers.
    pub fn query(qname: &[u8], qtype: u16) -> Vec<u8> {
        let mut out = response(qname, qtype, &[]);
        out[2] = 0x01; // QR clear, recursion desired
        out[3] = 0;
        out
    }

    /// A response to `qname`/`qtype` with `answers` (already encoded).
    pub fn response(qname: &[u8], qtype: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(qname);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        for a in answers {
            out.extend_from_slice(a);
        }
        out
    }

    /// The pointer to the question name (offset 12).
    pub const QNAME: [u8; 2] = [0xc0, 12];
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;
    use proptest::prelude::*;

    const PIN_CHAIN: &str = "Answer { id: 4660, qtype: 1, name: [110, 48, 46, 116, 101, 115, 116], addrs: [(192.0.2.0, 100), (192.0.2.1, 99), (192.0.2.2, 98), (192.0.2.3, 97), (192.0.2.4, 96), (192.0.2.5, 95), (192.0.2.6, 94), (192.0.2.7, 93)], dropped: 0, partial: false, truncated: false }";
    const PIN_ODD: &str = "Answer { id: 4660, qtype: 255, name: [110, 48, 46, 116, 101, 115, 116], addrs: [(192.0.2.1, 7)], dropped: 0, partial: true, truncated: false }";

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_a_answer_names_its_address() {
        let m = response(
            &name("Api.Example.COM"),
            1,
            &[rr(&QNAME, 1, 300, &[203, 0, 113, 7])],
        );
        let ans = parse(&m).unwrap();
        assert_eq!(ans.name, b"api.example.com");
        assert_eq!(ans.addrs, vec![(a("203.0.113.7"), 300)]);
        assert!(!ans.partial);
    }

    #[test]
    fn aaaa_and_a_cname_chain_keep_the_question_name() {
        let target = name("edge.cdn.test");
        let ip6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        let m = response(
            &name("www.example.test"),
            28,
            &[
                // Out of order: the address first, then the CNAME to it.
                rr(&target, 28, 60, &ip6.octets()),
                rr(&QNAME, 5, 30, &target),
                // An address of a name nobody asked for: not kept.
                rr(&name("other.test"), 28, 60, &ip6.octets()),
            ],
        );
        let ans = parse(&m).unwrap();
        assert_eq!(ans.name, b"www.example.test");
        assert_eq!(
            ans.addrs,
            vec![(IpAddr::V6(ip6), 30)],
            "the chain's smallest TTL"
        );
    }

    #[test]
    fn what_is_not_an_address_answer_is_skipped() {
        let q = name("x.test");
        let mut m = response(&q, 1, &[rr(&QNAME, 1, 1, &[192, 0, 2, 1])]);
        m[2] = 0x01; // a query, not a response
        assert_eq!(parse(&m), Err(Skip::NotAnAddressAnswer));
        let mut m = response(&q, 1, &[]);
        m[3] = 0x83; // NXDOMAIN
        assert_eq!(parse(&m), Err(Skip::NotAnAddressAnswer));
        assert_eq!(
            parse(&response(&q, 12, &[])),
            Err(Skip::NotAnAddressAnswer),
            "PTR"
        );
        assert_eq!(parse(&[0u8; 5]), Err(Skip::Malformed));
    }

    #[test]
    fn hostile_names_are_refused_or_kept_for_escaping() {
        // A compression loop in the question: a pointer to itself.
        let mut m = response(&[0xc0, 12], 1, &[]);
        assert_eq!(parse(&m), Err(Skip::Malformed));
        // A forward pointer in an answer's owner: that record is cut off.
        m = response(
            &name("ok.test"),
            1,
            &[rr(&[0xc0, 200], 1, 1, &[192, 0, 2, 1])],
        );
        let ans = parse(&m).unwrap();
        assert!(ans.partial && ans.addrs.is_empty());
        // A dot inside a label.
        let mut dotted = vec![3, b'a', b'.', b'b', 4];
        dotted.extend_from_slice(b"test\0");
        assert_eq!(parse(&response(&dotted, 1, &[])), Err(Skip::BadName));
        // Control characters and non-ASCII are kept, to be escaped.
        let mut odd = vec![4, b'a', b'\n', 0xc3, 0xa9, 4];
        odd.extend_from_slice(b"test\0");
        let ans = parse(&response(&odd, 1, &[rr(&QNAME, 1, 1, &[192, 0, 2, 1])])).unwrap();
        assert_eq!(ans.name, b"a\n\xc3\xa9.test");
        // Over-long: 4 labels of 63 = 255 on the wire, 255 in text: refused.
        let long = [&"a".repeat(63)[..]; 4].join(".");
        assert!(matches!(
            parse(&response(&name(&long), 1, &[])),
            Err(Skip::BadName | Skip::Malformed)
        ));
    }

    /// Issue 29: an answer is paired with its query by id and question.
    #[test]
    fn an_answer_answers_only_its_query() {
        let q = parse_query(&query(&name("Shop.T"), 1)).unwrap();
        assert_eq!((q.id, q.qtype, &q.name[..]), (0x1234, 1, &b"shop.t"[..]));
        let ok = parse(&response(
            &name("shop.t"),
            1,
            &[rr(&QNAME, 1, 9, &[10, 70, 0, 1])],
        ))
        .unwrap();
        assert!(ok.answers(&q));
        let other = parse(&response(
            &name("bank.example"),
            1,
            &[rr(&QNAME, 1, 9, &[10, 70, 0, 42])],
        ))
        .unwrap();
        assert!(!other.answers(&q), "another question");
        let aaaa = parse(&response(&name("shop.t"), 28, &[])).unwrap();
        assert!(!aaaa.answers(&q), "another type");
        let mut m = response(&name("shop.t"), 1, &[]);
        m[1] = 0x35;
        assert!(!parse(&m).unwrap().answers(&q), "another id");
        // Not queries: a response, a PTR question.
        assert_eq!(parse_query(&m), None);
        assert_eq!(parse_query(&query(&name("x.test"), 12)), None);
    }

    #[test]
    fn a_cut_answer_keeps_what_came_before_the_cut() {
        let recs: Vec<_> = (0..40u8)
            .map(|i| rr(&QNAME, 1, 9, &[192, 0, 2, i]))
            .collect();
        let m = response(&name("many.test"), 1, &recs);
        let ans = parse(&m[..512]).unwrap();
        assert!(ans.partial);
        assert_eq!(ans.addrs.len(), MAX_ADDRS);
        let ans = parse(&m).unwrap();
        assert_eq!(
            (ans.addrs.len(), ans.dropped, ans.partial),
            (MAX_ADDRS, 24, false)
        );
    }

    #[test]
    fn a_cname_loop_ends() {
        let b = name("b.test");
        let m = response(
            &name("a.test"),
            1,
            &[
                rr(&QNAME, 5, 9, &b),
                rr(&b, 5, 9, &name("a.test")),
                rr(&b, 1, 9, &[192, 0, 2, 1]),
            ],
        );
        assert_eq!(parse(&m).unwrap().addrs, vec![(a("192.0.2.1"), 9)]);
    }

    /// A chain longer than [`MAX_CHAIN`], a record of another class, and
    /// rdata that does not parse: pinned as they are, to the field.
    #[test]
    fn long_chains_odd_classes_and_bad_rdata_are_pinned() {
        let names: Vec<Vec<u8>> = (0..12).map(|i| name(&format!("n{i}.test"))).collect();
        let mut recs = Vec::new();
        for i in 0..11 {
            let owner = if i == 0 {
                QNAME.to_vec()
            } else {
                names[i].clone()
            };
            recs.push(rr(&owner, 5, 100 - i as u32, &names[i + 1]));
            recs.push(rr(&names[i + 1], 1, 200, &[192, 0, 2, i as u8]));
        }
        let chain = parse(&response(&names[0], 1, &recs)).unwrap();
        let mut ch = rr(&QNAME, 1, 5, &[192, 0, 2, 99]);
        ch[5] = 3; // class CH (the owner is a 2-byte pointer)
        let recs = [
            ch,
            rr(&QNAME, 5, 5, &[0xc0]),
            rr(&QNAME, 1, 5, &[192, 0, 2]),
            rr(&QNAME, 28, 5, &[0; 4]),
            rr(&QNAME, 1, 7, &[192, 0, 2, 1]),
        ];
        let odd = parse(&response(&names[0], 255, &recs)).unwrap();
        assert_eq!(format!("{chain:?}"), PIN_CHAIN);
        assert_eq!(format!("{odd:?}"), PIN_ODD);
    }

    proptest! {
        // The parser's boundary: any bytes at all, and any mutation of a
        // valid answer, give a result, never a panic; whatever name comes
        // out is bounded and has no empty label.
        #[test]
        fn any_bytes_parse_or_are_skipped(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(a) = parse(&bytes) {
                prop_assert!(!a.name.is_empty() && a.name.len() <= MAX_LEN);
                prop_assert!(a.addrs.len() <= MAX_ADDRS);
            }
        }

        #[test]
        fn mutated_answers_never_panic(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8),
            cut in 12usize..200,
        ) {
            let mut m = response(
                &name("www.example.test"),
                1,
                &[rr(&QNAME, 5, 30, &name("edge.test")), rr(&name("edge.test"), 1, 60, &[192, 0, 2, 9])],
            );
            for (i, b) in flips {
                let n = m.len();
                m[i % n] = b;
            }
            m.truncate(cut.min(m.len()));
            if let Ok(a) = parse(&m) {
                prop_assert!(a.name.len() <= MAX_LEN);
                prop_assert!(!a.name.split(|&b| b == b'.').any(|l| l.is_empty()));
            }
        }
    }
}

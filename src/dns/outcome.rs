//! What a DNS answer says about its lookup (issue 32): addresses, or why
//! not (NXDOMAIN, NODATA, SERVFAIL, REFUSED), or truncated. `answer`
//! reads addresses out of NOERROR answers only; this reads every
//! response's header and question, so a failed answer can be paired with
//! its query too. Pure.

use domain::base::iana::{Class, Opcode, Rcode};
use domain::base::Message;

use super::answer::{self, Query};

/// Why a lookup's candidate failed: the `reason` of `resolve_failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The name does not exist (rcode 3).
    NxDomain,
    /// The name exists, with no address of the family asked (NOERROR,
    /// no answer).
    NoData,
    /// The server failed (rcode 2).
    ServFail,
    /// The server refused (rcode 5).
    Refused,
    /// No answer within the resolver's timeout and attempts.
    Timeout,
    /// Truncated over UDP (TC) and no answer seen after.
    TruncatedUnanswered,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::NxDomain,
        Reason::NoData,
        Reason::ServFail,
        Reason::Refused,
        Reason::Timeout,
        Reason::TruncatedUnanswered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NxDomain => "nxdomain",
            Reason::NoData => "nodata",
            Reason::ServFail => "servfail",
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::TruncatedUnanswered => "truncated_unanswered",
        }
    }

    /// As people write it: `NXDOMAIN`, `no address (NODATA)`, ...
    pub fn shout(self) -> &'static str {
        match self {
            Reason::NxDomain => "NXDOMAIN",
            Reason::NoData => "NODATA (no address of that type)",
            Reason::ServFail => "SERVFAIL",
            Reason::Refused => "REFUSED",
            Reason::Timeout => "timeout (no answer)",
            Reason::TruncatedUnanswered => "truncated, no answer over TCP",
        }
    }
}

/// What one response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// At least one address of the name asked (through CNAMEs).
    Addresses,
    Failed(Reason),
    /// TC set: the resolver retries over TCP (RFC 2181 section 9: a
    /// client ignores a truncated answer). `addresses`: it carried some
    /// all the same (dnsmasq fills it up to the cut), which a client that
    /// ignores TC may use.
    Truncated {
        addresses: bool,
    },
    /// Nothing to judge by: an rcode no resolver reports as the name's
    /// (FORMERR, NOTIMP, ...), or cut before its answer section ended.
    Unknown,
}

/// A response: the query it answers (id and question), its rcode and what
/// it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub query: Query,
    pub rcode: u8,
    pub said: Said,
}

/// Any standard-query response with one address question (A, AAAA or
/// ANY, class IN); None for anything else.
pub fn classify(bytes: &[u8]) -> Option<Response> {
    let msg = Message::from_octets(bytes).ok()?;
    let h = msg.header();
    if !h.qr() || h.opcode() != Opcode::QUERY || msg.header_counts().qdcount() != 1 {
        return None;
    }
    let q = msg.first_question()?;
    if q.qclass() != Class::IN {
        return None;
    }
    let query = Query {
        id: h.id(),
        qtype: q.qtype().to_int(),
        name: answer::name_text(q.qname()).ok()?,
    };
    if !matches!(query.qtype, 1 | 28 | 255) {
        return None;
    }
    let rcode = h.rcode();
    let said = match rcode {
        Rcode::NOERROR => match answer::parse(bytes) {
            Ok(a) if h.tc() => Said::Truncated {
                addresses: !a.addrs.is_empty(),
            },
            _ if h.tc() => Said::Truncated { addresses: false },
            Ok(a) if !a.addrs.is_empty() => Said::Addresses,
            Ok(a) if a.partial => Said::Unknown,
            Ok(_) => Said::Failed(Reason::NoData),
            Err(_) => Said::Unknown,
        },
        Rcode::NXDOMAIN => Said::Failed(Reason::NxDomain),
        Rcode::SERVFAIL => Said::Failed(Reason::ServFail),
        Rcode::REFUSED => Said::Failed(Reason::Refused),
        _ => Said::Unknown,
    };
    Some(Response {
        query,
        rcode: rcode.to_int(),
        said,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::answer::wire::*;

    fn with_rcode(mut m: Vec<u8>, rcode: u8, tc: bool) -> Vec<u8> {
        m[3] = (m[3] & 0xf0) | rcode;
        if tc {
            m[2] |= 0x02;
        }
        m
    }

    #[test]
    fn each_rcode_and_an_empty_answer_say_why() {
        let n = name("api.example.com");
        let a = rr(&QNAME, 1, 60, &[192, 0, 2, 1]);
        let ok = classify(&response(&n, 1, &[a])).unwrap();
        assert_eq!((ok.said, ok.rcode), (Said::Addresses, 0));
        assert_eq!(ok.query.name, b"api.example.com");
        let said = |rcode, tc| {
            classify(&with_rcode(response(&n, 28, &[]), rcode, tc))
                .unwrap()
                .said
        };
        assert_eq!(said(0, false), Said::Failed(Reason::NoData));
        assert_eq!(said(3, false), Said::Failed(Reason::NxDomain));
        assert_eq!(said(2, false), Said::Failed(Reason::ServFail));
        assert_eq!(said(5, false), Said::Failed(Reason::Refused));
        assert_eq!(said(0, true), Said::Truncated { addresses: false });
        let a = rr(&QNAME, 1, 60, &[192, 0, 2, 1]);
        let tc = classify(&with_rcode(response(&n, 1, &[a]), 0, true)).unwrap();
        assert_eq!(tc.said, Said::Truncated { addresses: true });
        assert_eq!(
            said(4, false),
            Said::Unknown,
            "NOTIMP says nothing of the name"
        );
        // A CNAME to nowhere is NODATA too; a query is no response.
        let c = rr(&QNAME, 5, 60, &name("gone.example.com"));
        assert_eq!(
            classify(&response(&n, 1, &[c])).unwrap().said,
            Said::Failed(Reason::NoData)
        );
        assert_eq!(classify(&query(&n, 1)), None);
        assert_eq!(
            classify(&response(&n, 16, &[])),
            None,
            "TXT: not a lookup of addresses"
        );
        assert_eq!(classify(&[0xff; 7]), None);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let base = with_rcode(response(&name("x.test"), 1, &[]), 3, false);
        for i in 0..base.len() {
            for b in [0u8, 0xff, 0xc0, 0x3f] {
                let mut m = base.clone();
                m[i] = b;
                let _ = classify(&m);
                let _ = classify(&m[..i]);
            }
        }
    }
}

//! How a DNS failure reads in an alert (issue 32): who could not resolve
//! what, and what the server said. The name, units and process names are
//! untrusted: escaped here, and by each sink's own rules on top.

use crate::dns::lookup::{Failed, Folded, Server, Who};
use crate::dns::outcome::Reason;
use crate::event::Attribution;
use crate::output::dns::{qtype_name, Shown};
use crate::output::text::{Escaped, PodRef};

/// Who: the container (and pod), else the unit (a user's unit under its
/// user's, never as the system's), else the process.
pub fn subject(w: &Who, attr: Option<&Attribution>) -> String {
    if let Some(a) = attr {
        if let Some(c) = &a.container_name {
            let pod = match (&a.pod_name, &a.pod_namespace) {
                (None, None) => String::new(),
                _ => format!(" (pod {})", PodRef(a)),
            };
            return format!("{}{pod}", Escaped(c));
        }
        match (&a.unit, &a.user_unit) {
            (Some(u), Some(uu)) => return format!("{}/{}", Escaped(u), Escaped(uu)),
            (Some(u), None) => return Escaped(u).to_string(),
            _ => {}
        }
    }
    format!("{} (pid {})", w.comm, w.pid)
}

/// `10.0.0.2`, or `10.0.0.2:5353` off port 53.
fn server(s: Option<Server>) -> String {
    match s {
        Some(s) if s.port == 53 => s.addr.to_string(),
        Some(s) => s.to_string(),
        None => "the server".to_string(),
    }
}

/// `NXDOMAIN from 10.0.0.2`, `no answer from 10.0.0.3 (timeout)`.
pub fn what_said(f: &Failed) -> String {
    let from = server(f.server);
    match f.reason {
        Reason::NoData => format!("no {} record (NODATA) from {from}", qtype_name(f.qtype)),
        Reason::Timeout => format!("no answer from {from} (timeout)"),
        Reason::TruncatedUnanswered => {
            format!("truncated answer from {from}, no answer over TCP")
        }
        r => format!("{} from {from}", r.shout()),
    }
}

/// `DNS failure: checkout.service cannot resolve api.example.com: NXDOMAIN
/// from 10.0.0.2`
pub fn slack_line(f: &Failed, attr: Option<&Attribution>) -> String {
    let per_query = if f.per_query {
        " (its resolv.conf unread: the query's own name)"
    } else {
        ""
    };
    format!(
        "DNS failure: {} cannot resolve {}: {}{per_query}",
        subject(&f.who, attr),
        Shown(&f.name),
        what_said(f)
    )
}

/// `DNS failures: scanner.service: 4211 more lookups failed in 1m
/// (nxdomain×4211), e.g. x1.example, x2.example`
pub fn slack_folded(s: &Folded, attr: Option<&Attribution>) -> String {
    let names: Vec<String> = s.names.iter().map(|n| Shown(n).to_string()).collect();
    format!(
        "DNS failures: {}: {} more lookups failed in {} ({}), e.g. {}",
        subject(&s.who, attr),
        s.count,
        crate::alert::wording::window(s.window_ns),
        crate::alert::wording::counts(s.reasons.iter().map(|(r, n)| (r.as_str(), *n))),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_wording() {
        let f = Failed::sample(b"api.example.com", 7, 0, b"java");
        let unit = Attribution {
            unit: Some("checkout.service".into()),
            ..Default::default()
        };
        assert_eq!(
            slack_line(&f, Some(&unit)),
            "DNS failure: checkout.service cannot resolve api.example.com: NXDOMAIN from 10.0.0.2"
        );
        let user = Attribution {
            unit: Some("user@1000.service".into()),
            user_unit: Some("checkout.service".into()),
            ..Default::default()
        };
        assert!(slack_line(&f, Some(&user)).contains("user@1000.service/checkout.service cannot"));
        let hostile = Failed {
            name: b"<!channel> x\n".to_vec(),
            reason: Reason::Timeout,
            ..f.clone()
        };
        assert_eq!(
            slack_line(&hostile, None),
            "DNS failure: java (pid 7) cannot resolve <!channel>\\x20x\\x0a: no answer from 10.0.0.2 (timeout)"
        );
    }
}

//! The human one-line forms: stdout's text format and the syslog alerts
//! share them. Untrusted names appear only through `escape`.

use std::fmt;
use std::net::IpAddr;

use crate::event::{
    Attribution, Caller, Dname, Failure, Fallback, Reason, Record, Seen, Slow, TimeoutBy,
};
use crate::output::clock::Stamp;

/// `addr:port`, with IPv6 in brackets; an unknown port (no source port
/// picked yet) is `*`, never a made-up number.
pub struct Endpoint(pub IpAddr, pub Option<u16>);

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:")?,
            IpAddr::V6(a) => write!(f, "[{a}]:")?,
        }
        match self.1 {
            Some(p) => write!(f, "{p}"),
            None => f.write_str("*"),
        }
    }
}

/// Milliseconds with one decimal, for humans.
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integer arithmetic: float formatting with a precision is slow.
        let tenths = (self.0 + 50_000) / 100_000;
        write!(f, "{}.{}ms", tenths / 10, tenths % 10)
    }
}

/// ` pid=… comm=… [process=…] uid=…` for a known caller, ` pid=- comm=-`
/// for an attempt whose start was not seen.
pub struct Who<'a>(pub &'a Option<Caller>);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = self.0 else {
            return f.write_str(" pid=- comm=-");
        };
        write!(f, " pid={} comm={}", c.pid, c.comm)?;
        if c.process != c.comm {
            write!(f, " process={}", c.process)?;
        }
        write!(f, " uid={}", c.uid)
    }
}

/// ` seen=at_start` / ` seen=unmatched`; nothing for a live attempt.
struct SeenMark(Seen);

impl fmt::Display for SeenMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Seen::Live => Ok(()),
            s => write!(f, " seen={}", s.name()),
        }
    }
}

/// ` unit=… user_unit=… container=… container_name=… pod=namespace/pod` where the
/// caller's cgroup and its runtime name them; escaped as process names are
/// (a cgroup path is chosen inside a container, names by whoever starts it).
pub struct AttributionMark<'a>(pub Option<&'a Attribution>);

impl fmt::Display for AttributionMark<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(a) = self.0 else { return Ok(()) };
        if let Some(u) = &a.unit {
            write!(f, " unit={}", Escaped(u))?;
        }
        if let Some(u) = &a.user_unit {
            write!(f, " user_unit={}", Escaped(u))?;
        }
        if let Some(c) = &a.container {
            write!(f, " container={}", Escaped(c))?;
        }
        if let Some(n) = &a.container_name {
            write!(f, " container_name={}", Escaped(n))?;
        }
        if a.pod_name.is_some() || a.pod_namespace.is_some() {
            write!(f, " pod={}", PodRef(a))?;
        }
        Ok(())
    }
}

/// `namespace/pod`, each part escaped (`?` for a part not known).
pub struct PodRef<'a>(pub &'a Attribution);

impl fmt::Display for PodRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.pod_namespace.as_deref().map(Escaped);
        match (ns, self.0.pod_name.as_deref().map(Escaped)) {
            (Some(ns), Some(p)) => write!(f, "{ns}/{p}"),
            (None, Some(p)) => write!(f, "{p}"),
            (Some(ns), None) => write!(f, "{ns}/?"),
            (None, None) => f.write_str("?"),
        }
    }
}

/// Milliseconds with one decimal, or `-` where the start is unknown.
pub struct MaybeMillis(pub Option<u64>);

impl fmt::Display for MaybeMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ns) => Millis(ns).fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Untrusted text shown escaped (`escape`), whatever its length.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::event::escape::write(f, self.0.as_bytes())
    }
}

/// ` dname=<name>` where the caller's DNS answer named the address;
/// nothing otherwise. Escaped (`Dname`'s Display).
pub struct DnameMark<'a>(pub Option<&'a Dname>);

impl fmt::Display for DnameMark<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, " dname={n}"),
            None => Ok(()),
        }
    }
}

/// `api.example.com (203.0.113.7):443`, or `203.0.113.7:443` without a
/// name: for people (Slack, Alertmanager's summaries).
pub struct NamedEndpoint<'a>(pub Option<&'a Dname>, pub IpAddr, pub u16);

impl fmt::Display for NamedEndpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n} ({}):{}", self.1, self.2),
            None => Endpoint(self.1, Some(self.2)).fmt(f),
        }
    }
}

/// `TCP failure detected: <daddr>:<dport> reason=… stage=… pid=… comm=… saddr=… after=…ms`.
pub struct FailureLine<'a>(pub &'a Failure);

impl fmt::Display for FailureLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if e.stage.broken().is_some() {
            return BrokenLine(e).fmt(f);
        }
        write!(
            f,
            "TCP failure detected: {}{} reason={}",
            Endpoint(e.daddr, Some(e.dport)),
            DnameMark(e.dname.as_ref()),
            e.reason
        )?;
        if matches!(e.reason, Reason::Error | Reason::Denied) {
            write!(f, " errno={}", e.errno)?;
        }
        if let Some(by) = e.timeout_by {
            write!(f, " timeout_by={}", by.name())?;
        }
        if let Some(i) = e.icmp {
            write!(
                f,
                " icmp_from={} icmp_type={} icmp_code={}",
                i.from, i.kind, i.code
            )?;
        }
        if let Some(t) = e.rst_ttl {
            write!(f, " rst_ttl={t}")?;
        }
        if let Some(d) = e.dropped {
            write!(f, " drop_reason={}", d.name.unwrap_or("unknown"))?;
            if let Some(hop) = d.next_hop {
                write!(f, " next_hop={hop}")?;
            }
            if !d.dev.as_bytes().is_empty() {
                write!(f, " dev={}", d.dev)?;
            }
        }
        write!(f, " stage={}{}", e.stage.name(), Who(&e.caller))?;
        write!(f, " saddr={}", e.saddr)?;
        if let Some(p) = e.sport {
            write!(f, " sport={p}")?;
        }
        write!(
            f,
            " after={}{}",
            MaybeMillis(e.duration()),
            SeenMark(e.seen)
        )
    }
}

/// What broke a connection, in operators' words: `reset by peer`,
/// `timed out`, else the reason's name.
pub fn broken_how(e: &Failure) -> &'static str {
    match e.reason {
        Reason::Reset => "reset by peer",
        Reason::Timeout => "timed out",
        r => r.name(),
    }
}

/// Seconds with one decimal: `3.2 s`.
pub struct Secs(pub u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0 + 50_000_000) / 100_000_000;
        write!(f, "{}.{} s", tenths / 10, tenths % 10)
    }
}

/// `TCP connection broken: <daddr>:<dport> reset by peer after 3.2 s
/// reason=reset state=ESTABLISHED pid=… comm=… saddr=… sport=…
/// bytes_acked=… bytes_received=…`: a connection this host opened that
/// broke after it was established.
pub struct BrokenLine<'a>(pub &'a Failure);

impl fmt::Display for BrokenLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "TCP connection broken: {}{} {} after {} reason={}",
            Endpoint(e.daddr, Some(e.dport)),
            DnameMark(e.dname.as_ref()),
            broken_how(e),
            Secs(e.duration_ns),
            e.reason
        )?;
        if matches!(e.reason, Reason::Error | Reason::Denied) {
            write!(f, " errno={}", e.errno)?;
        }
        if let Some(b) = e.stage.broken() {
            write!(f, " state={}", b.state)?;
        }
        if let Some(t) = e.rst_ttl {
            write!(f, " rst_ttl={t}")?;
        }
        write!(f, "{} saddr={}", Who(&e.caller), e.saddr)?;
        if let Some(p) = e.sport {
            write!(f, " sport={p}")?;
        }
        if let Some(b) = e.stage.broken() {
            write!(
                f,
                " bytes_acked={} bytes_received={}",
                b.bytes_acked, b.bytes_received
            )?;
        }
        write!(f, "{}", SeenMark(e.seen))
    }
}

/// `TCP path degraded: <name>:<port> [<daddr>] <reason> (<why>) pid=… comm=…
/// uid=… fell back to <addr>:<port> (<rule>)`: a failure the application
/// recovered from, said at notice level.
pub struct DegradedLine<'a>(pub &'a Failure, pub &'a Fallback);

impl fmt::Display for DegradedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (e, fb) = (self.0, self.1);
        f.write_str("TCP path degraded: ")?;
        match &e.dname {
            Some(n) => write!(f, "{n}:{} [{}]", e.dport, e.daddr)?,
            None => Endpoint(e.daddr, Some(e.dport)).fmt(f)?,
        }
        write!(f, " {}", e.reason)?;
        match e.timeout_by {
            Some(TimeoutBy::Application) => write!(
                f,
                " (SYN unanswered; the application gave up after {})",
                MaybeMillis(e.duration())
            )?,
            Some(TimeoutBy::Kernel) => {
                write!(f, " (SYN unanswered; {} retransmits)", e.retransmits)?
            }
            None => {}
        }
        if let Some(i) = e.icmp {
            write!(f, " ({})", i.wording(e.daddr))?;
        }
        if let Some(d) = e.dropped {
            write!(f, " ({})", d.wording())?;
        }
        write!(
            f,
            "{} fell back to {} ({})",
            Who(&e.caller),
            Endpoint(fb.daddr, Some(fb.dport)),
            fb.rule.name()
        )
    }
}

/// `TCP connect slow: <daddr>:<dport> after=…ms retransmits=… pid=… comm=…`.
pub struct SlowLine<'a>(pub &'a Slow);

impl fmt::Display for SlowLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "TCP connect slow: {}{} after={} retransmits={}{} saddr={}{}",
            Endpoint(e.daddr, Some(e.dport)),
            DnameMark(e.dname.as_ref()),
            Millis(e.elapsed_ns),
            e.retransmits,
            Who(&e.caller),
            e.saddr,
            SeenMark(e.seen)
        )
    }
}

/// `--verbose`: one traced state change, like the original tool's lines.
pub struct StateChangeLine<'a>(pub &'a Record, pub Stamp);

impl fmt::Display for StateChangeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "{} pid={} comm={} {} -> {} {} -> {}",
            self.1,
            e.caller.pid,
            e.caller.comm,
            e.oldstate,
            e.newstate,
            Endpoint(e.saddr, e.sport),
            Endpoint(e.daddr, Some(e.dport)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_to_a_tenth() {
        assert_eq!(Millis(0).to_string(), "0.0ms");
        assert_eq!(Millis(49_999).to_string(), "0.0ms");
        assert_eq!(Millis(50_000).to_string(), "0.1ms");
        assert_eq!(Millis(3_012_345_678).to_string(), "3012.3ms");
    }

    #[test]
    fn a_refusal_says_its_rsts_ttl_only_where_seen() {
        let mut f = Failure::sample("198.51.100.7", 443, Reason::Refused);
        assert!(!FailureLine(&f).to_string().contains("rst_ttl"));
        f.rst_ttl = Some(63);
        let line = FailureLine(&f).to_string();
        assert!(
            line.starts_with(
                "TCP failure detected: 198.51.100.7:443 reason=refused rst_ttl=63 stage=handshake"
            ),
            "{line}"
        );
    }

    #[test]
    fn names_are_escaped_wherever_they_show() {
        let n = Dname::new(b"api.example.com\n<!here>").unwrap();
        assert_eq!(
            DnameMark(Some(&n)).to_string(),
            " dname=api.example.com\\x0a<!here>"
        );
        assert_eq!(DnameMark(None).to_string(), "");
        let a = "203.0.113.7".parse().unwrap();
        let n = Dname::new(b"api.example.com").unwrap();
        assert_eq!(
            NamedEndpoint(Some(&n), a, 443).to_string(),
            "api.example.com (203.0.113.7):443"
        );
        assert_eq!(NamedEndpoint(None, a, 443).to_string(), "203.0.113.7:443");
        let v6 = "2001:db8::7".parse().unwrap();
        assert_eq!(
            NamedEndpoint(Some(&n), v6, 443).to_string(),
            "api.example.com (2001:db8::7):443"
        );
    }

    #[test]
    fn names_are_escaped_and_pods_read_namespace_slash_name() {
        let a = Attribution {
            id: 1,
            path: "/libpod_parent/libpod-0123".into(),
            container: Some("0123".into()),
            container_name: Some("web 1\n<!here>".into()),
            pod_name: Some("api-7f9c".into()),
            pod_namespace: Some("pay ments".into()),
            ..Default::default()
        };
        assert_eq!(
            AttributionMark(Some(&a)).to_string(),
            " container=0123 container_name=web\\x201\\x0a<!here> pod=pay\\x20ments/api-7f9c"
        );
        let only_pod = Attribution {
            pod_name: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(AttributionMark(Some(&only_pod)).to_string(), " pod=p");
        assert_eq!(
            AttributionMark(Some(&Attribution::default())).to_string(),
            ""
        );
        assert_eq!(MaybeMillis(None).to_string(), "-");
        assert_eq!(MaybeMillis(Some(1_500_000)).to_string(), "1.5ms");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint("192.0.2.1".parse().unwrap(), Some(80)).to_string(),
            "192.0.2.1:80"
        );
        assert_eq!(
            Endpoint("::1".parse().unwrap(), Some(80)).to_string(),
            "[::1]:80"
        );
        assert_eq!(
            Endpoint("192.0.2.1".parse().unwrap(), None).to_string(),
            "192.0.2.1:*"
        );
    }
}

//! The human one-line forms: stdout's text format and the syslog alerts
//! share them. Process names appear only through `Comm`'s escaping.

use std::fmt;
use std::net::IpAddr;

use crate::clock::Stamp;
use crate::event::{Failure, Reason, StateChange};

/// `addr:port`, with IPv6 in brackets; an unknown port (a failed attempt's
/// source port reads 0) is `*`, never a made-up number.
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

/// `TCP failure detected: <daddr>:<dport> reason=… pid=… comm=… saddr=… after=…ms`.
pub struct FailureLine<'a>(pub &'a Failure);

impl fmt::Display for FailureLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "TCP failure detected: {} reason={}",
            Endpoint(e.daddr, Some(e.dport)),
            e.reason
        )?;
        if e.reason == Reason::Error {
            write!(f, " errno={}", e.errno)?;
        }
        write!(f, " pid={} comm={} saddr={}", e.pid, e.comm, e.saddr)?;
        if let Some(p) = e.sport {
            write!(f, " sport={p}")?;
        }
        write!(f, " after={}", Millis(e.duration_ns))
    }
}

/// `--verbose`: one traced state change, like the original tool's lines.
pub struct StateChangeLine<'a>(pub &'a StateChange, pub Stamp);

impl fmt::Display for StateChangeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "{} pid={} comm={} {} -> {} {} -> {}",
            self.1,
            e.pid,
            e.comm,
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

//! Alert wording shared by the sinks. Process names appear only through
//! `Comm`'s escaping `Display`, so no line can be broken or forged.

use std::fmt::{self, Write as _};

use super::policy::{Alert, Summary};
use super::resolve::{Recovery, ResolvedBy};
use crate::text::{Endpoint, FailureLine};

/// `60s`, `5m`, `1h30m`.
pub fn window(ns: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ns.div_ceil(1_000_000_000)))
        .to_string()
        .replace(' ', "")
}

/// A span of time as people say it: `<1ms`, `350ms`, `3s`, `2m5s`.
pub fn span(ns: u64) -> String {
    if ns < 1_000_000 {
        "<1ms".to_string()
    } else if ns < 1_000_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else {
        humantime::format_duration(std::time::Duration::from_secs(ns / 1_000_000_000))
            .to_string()
            .replace(' ', "")
    }
}

pub fn dest_or_overflow(s: &Summary) -> String {
    match s.dest {
        Some(d) => Endpoint(d.addr, Some(d.port)).to_string(),
        None => "other destinations (too many failing at once)".to_string(),
    }
}

/// `refused×1990,timeout×9`.
pub fn reasons(s: &Summary) -> String {
    let mut out = String::new();
    for (i, (r, n)) in s.reasons.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{r}×{n}");
    }
    out
}

/// `curl[77]×1333,wget[78]×666,others×3`.
pub fn procs(s: &Summary) -> String {
    let mut out = String::new();
    for (i, p) in s.procs.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{}[{}]×{}", p.comm, p.pid, p.count);
    }
    if s.other_procs > 0 {
        let _ = write!(out, ",others×{}", s.other_procs);
    }
    out
}

/// `recovered: 10.1.2.3:5432 (12 failures over 3m)`, and how.
pub fn recovered(r: &Recovery) -> String {
    let how = match r.by {
        ResolvedBy::Success => "a connection succeeded",
        ResolvedBy::Quiet => "no failures since",
    };
    let dest = Endpoint(r.dest.addr, Some(r.dest.port));
    if r.count == 1 {
        format!("recovered: {dest} (1 failure; {how})")
    } else {
        format!(
            "recovered: {dest} ({} failures over {}; {how})",
            r.count,
            span(r.failing_ns())
        )
    }
}

/// The syslog line for an alert: the first failure in the original tool's
/// wording, a summary as `TCP failures repeated: …`.
pub struct SyslogLine<'a>(pub &'a Alert);

impl fmt::Display for SyslogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Alert::First(e) => FailureLine(e).fmt(f),
            Alert::Summary(s) => write!(
                f,
                "TCP failures repeated: {} count={} window={} reasons={} processes={}",
                dest_or_overflow(s),
                s.count,
                window(s.window_ns),
                reasons(s),
                procs(s)
            ),
            Alert::Resolved(r) => write!(f, "TCP {}", recovered(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::{Dest, Proc};
    use crate::event::{Comm, Reason};

    #[test]
    fn summary_line_is_one_escaped_line() {
        let s = Summary {
            dest: Some(Dest {
                addr: "2001:db8::7".parse().unwrap(),
                port: 443,
            }),
            count: 1999,
            window_ns: 60_000_000_000,
            reasons: vec![(Reason::Refused, 1990), (Reason::Timeout, 9)],
            procs: vec![Proc {
                comm: Comm::new(b"evil\nTCP ok"),
                pid: 7,
                count: 1999,
            }],
            other_procs: 2,
        };
        let line = SyslogLine(&Alert::Summary(s)).to_string();
        assert_eq!(
            line,
            "TCP failures repeated: [2001:db8::7]:443 count=1999 window=1m \
             reasons=refused×1990,timeout×9 processes=evil\\x0aTCP\\x20ok[7]×1999,others×2"
        );
    }

    #[test]
    fn windows() {
        assert_eq!(window(3_000_000_000), "3s");
        assert_eq!(window(90_000_000_000), "1m30s");
        assert_eq!(span(7_400_000), "7ms");
        assert_eq!(span(250_000), "<1ms");
        assert_eq!(span(125_900_000_000), "2m5s");
    }
}

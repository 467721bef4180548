//! Alert wording shared by the sinks. Process names, units and cgroup
//! paths appear only escaped (`Comm`'s rules), so no line can be broken or
//! forged.

use std::fmt::{self, Write as _};

use super::policy::{Alert, Proc, Summary, What};
use super::resolve::{Recovery, ResolvedBy};
use crate::output::text::{
    AttributionMark, DegradedLine, Endpoint, Escaped, FailureLine, SlowLine,
};

/// `60s`, `5m`, `1h30m`.
pub fn window(ns: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ns.div_ceil(1_000_000_000)))
        .to_string()
        .replace(' ', "")
}

/// The destination a summary is about, or the source a fold is about.
pub fn subject(s: &Summary) -> String {
    match (s.dest, &s.source) {
        (Some(d), _) => Endpoint(d.addr, Some(d.port)).to_string(),
        (None, Some(src)) => format!("{} destinations from {src}", s.dests),
        (None, None) => "other destinations".to_string(),
    }
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

/// Counts joined with commas, most frequent first as given:
/// `refused×1990,timeout×9`, `api×12,cron×1`.
pub fn counts<T: fmt::Display>(items: impl IntoIterator<Item = (T, u64)>) -> String {
    let mut out = String::new();
    for (i, (x, n)) in items.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{x}×{n}");
    }
    out
}

/// `1 failure`, or `12 failures over 3m`: a count of `(one, many)`, and
/// the span it took when there are several.
pub fn count_over(count: u64, (one, many): (&str, &str), ns: u64) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many} over {}", span(ns))
    }
}

/// `refused×1990,timeout×9`.
pub fn reasons(s: &Summary) -> String {
    counts(s.reasons.iter().copied())
}

/// A process as the lists show it: `curl[77]`, or `?` when unknown.
struct Who<'a>(&'a Proc);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.comm, self.0.pid) {
            (Some(c), Some(pid)) => write!(f, "{c}[{pid}]"),
            _ => f.write_str("?"),
        }
    }
}

/// `curl[77]×1333,wget[78]×666,others×3`; `?` for unknown processes.
pub fn proc_counts(procs: &[Proc], others: u64) -> String {
    let mut out = counts(procs.iter().map(|p| (Who(p), p.count)));
    if others > 0 {
        let _ = write!(out, ",others×{others}");
    }
    out
}

/// A summary's processes: see [`proc_counts`].
pub fn procs(s: &Summary) -> String {
    proc_counts(&s.procs, s.other_procs)
}

/// `api.service×12,cron.service×1`.
pub fn units(s: &Summary) -> String {
    counts(s.units.iter().map(|(u, n)| (Escaped(u), *n)))
}

/// A fold's `10.0.0.1:80×40,10.0.0.2:80×38`.
pub fn top_dests(s: &Summary) -> String {
    counts(
        s.top_dests
            .iter()
            .map(|(d, n)| (Endpoint(d.addr, Some(d.port)), *n)),
    )
}

/// How a destination recovered: `a connection succeeded`, or
/// `no failures since` (`what` names what stopped).
pub fn resolved_by(by: ResolvedBy, what: &str) -> String {
    match by {
        ResolvedBy::Success => "a connection succeeded".to_string(),
        ResolvedBy::Quiet => format!("no {what} since"),
    }
}

/// `recovered: 10.1.2.3:5432 (12 failures over 3m)`, and how.
pub fn recovered(r: &Recovery) -> String {
    let how = resolved_by(r.by, "failures");
    let dest = Endpoint(r.dest.addr, Some(r.dest.port));
    let count = count_over(r.count, ("failure", "failures"), r.failing_ns());
    format!("recovered: {dest} ({count}; {how})")
}

/// The syslog line for an alert: the first failure in the original tool's
/// wording, a summary as `TCP failures repeated: …`, a source over its
/// share as `TCP failures folded: …`.
pub struct SyslogLine<'a>(pub &'a Alert);

impl fmt::Display for SyslogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Alert::First(e, a) => write!(f, "{}{}", FailureLine(e), AttributionMark(a.as_ref())),
            Alert::Slow(e, a) => write!(f, "{}{}", SlowLine(e), AttributionMark(a.as_ref())),
            Alert::Degraded(e, fb, a) => {
                write!(f, "{}{}", DegradedLine(e, fb), AttributionMark(a.as_ref()))
            }
            Alert::Summary(s) => {
                let head = match (s.what, s.dest) {
                    (What::Hanging, _) => "TCP connects still hanging",
                    (What::Degraded, Some(_)) => "TCP path degraded, recovered from",
                    (What::Degraded, None) => "TCP paths degraded, folded",
                    (What::Failures, Some(_)) => "TCP failures repeated",
                    (What::Failures, None) => "TCP failures folded",
                    (What::Broken, Some(_)) => "TCP connections broken again",
                    (What::Broken, None) => "TCP connections broken, folded",
                };
                write!(
                    f,
                    "{head}: {} count={} window={}",
                    subject(s),
                    s.count,
                    window(s.window_ns)
                )?;
                if !s.top_dests.is_empty() {
                    write!(f, " top={}", top_dests(s))?;
                }
                if !s.reasons.is_empty() {
                    write!(f, " reasons={}", reasons(s))?;
                }
                write!(f, " processes={}", procs(s))?;
                if !s.units.is_empty() {
                    write!(f, " units={}", units(s))?;
                }
                Ok(())
            }
            Alert::Resolved(r) => write!(f, "TCP {}", recovered(r)),
            Alert::ResolveFailed(e, a) => {
                write!(f, "{}", crate::output::dns::FailedLine(e, a.as_ref()))
            }
            Alert::ResolveFolded(s, a) => {
                write!(f, "{}", crate::output::dns::FoldedLine(s, a.as_ref()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::{Dest, Proc};
    use crate::event::{Comm, Reason};

    fn summary() -> Summary {
        Summary {
            what: What::Failures,
            dest: Some(Dest {
                addr: "2001:db8::7".parse().unwrap(),
                port: 443,
            }),
            source: None,
            count: 1999,
            window_ns: 60_000_000_000,
            reasons: vec![(Reason::Refused, 1990), (Reason::Timeout, 9)],
            procs: vec![
                Proc {
                    comm: Some(Comm::new(b"evil\nTCP ok")),
                    pid: Some(7),
                    count: 1998,
                },
                Proc {
                    comm: None,
                    pid: None,
                    count: 1,
                },
            ],
            other_procs: 2,
            units: vec![("a b.service".into(), 3)],
            top_dests: Vec::new(),
            dests: 1,
        }
    }

    #[test]
    fn summary_line_is_one_escaped_line() {
        let line = SyslogLine(&Alert::Summary(summary())).to_string();
        assert_eq!(
            line,
            "TCP failures repeated: [2001:db8::7]:443 count=1999 window=1m \
             reasons=refused×1990,timeout×9 processes=evil\\x0aTCP\\x20ok[7]×1998,?×1,others×2 \
             units=a\\x20b.service×3"
        );
    }

    #[test]
    fn a_fold_names_its_source_and_top_destinations() {
        let mut s = summary();
        s.dest = None;
        s.source = Some("flood.service uid 65534".into());
        s.dests = 60000;
        s.top_dests = vec![(
            Dest {
                addr: "127.0.0.1".parse().unwrap(),
                port: 9,
            },
            3,
        )];
        let line = SyslogLine(&Alert::Summary(s)).to_string();
        assert!(
            line.starts_with(
                "TCP failures folded: 60000 destinations from flood.service uid 65534 count=1999 window=1m top=127.0.0.1:9×3 "
            ),
            "{line}"
        );
    }

    #[test]
    fn recoveries_and_bare_lists_are_pinned() {
        let r = Recovery {
            dest: Dest {
                addr: "10.1.2.3".parse().unwrap(),
                port: 5432,
            },
            count: 12,
            first_ns: 0,
            last_ns: 180_000_000_000,
            at_ns: 200_000_000_000,
            by: ResolvedBy::Success,
        };
        assert_eq!(
            SyslogLine(&Alert::Resolved(r.clone())).to_string(),
            "TCP recovered: 10.1.2.3:5432 (12 failures over 3m; a connection succeeded)"
        );
        let quiet = Recovery {
            count: 1,
            by: ResolvedBy::Quiet,
            ..r
        };
        assert_eq!(
            recovered(&quiet),
            "recovered: 10.1.2.3:5432 (1 failure; no failures since)"
        );
        let mut s = summary();
        s.procs.clear();
        s.other_procs = 3;
        s.units.clear();
        assert_eq!(procs(&s), ",others×3");
        assert_eq!(units(&s), "");
        s.reasons.clear();
        assert_eq!(reasons(&s), "");
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

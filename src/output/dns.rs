//! The `resolve_failed` line (issue 32), JSON and text, and the summary
//! of a source's failures past its firsts. The name is what a DNS message
//! said: untrusted, escaped as every such string is.

use std::fmt;
use std::io::Write;

use crate::dns::lookup::{Failed, Folded, Who};
use crate::event::escape;
use crate::event::{Attribution, Caller};
use crate::output::clock::Stamp;
use crate::output::json;
use crate::output::text::{AttributionMark, Who as WhoMark};

/// `A`, `AAAA`, `ANY`; else the number.
pub fn qtype_name(t: u16) -> std::borrow::Cow<'static, str> {
    match t {
        1 => "A".into(),
        28 => "AAAA".into(),
        255 => "ANY".into(),
        n => n.to_string().into(),
    }
}

/// The DNS record's process as a failure's caller: the sending thread's
/// name stands for the process's too (the record carries one).
pub fn caller(w: &Who) -> Caller {
    Caller {
        pid: w.pid,
        tid: w.pid,
        uid: w.uid,
        cgroup_id: w.cgroup_id,
        comm: w.comm,
        process: w.comm,
    }
}

/// Untrusted bytes, escaped.
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape::write(f, self.0)
    }
}

pub fn lookup_kind(f: &Failed) -> &'static str {
    if f.per_query {
        "per_query"
    } else {
        "search"
    }
}

/// One `resolve_failed` JSON object and a newline.
pub fn json_failed(line: &mut Vec<u8>, ts: &Stamp, f: &Failed, attr: Option<&Attribution>) {
    line.extend_from_slice(b"{\"event\":\"resolve_failed\",\"ts\":\"");
    line.extend_from_slice(&ts.bytes());
    line.extend_from_slice(b"\",\"name\":");
    json::escaped(line, &f.name);
    // `search`: named by the name asked (the search suffix stripped by the
    // process's resolv.conf); `per_query`: it could not be read.
    line.extend_from_slice(b",\"lookup\":\"");
    line.extend_from_slice(lookup_kind(f).as_bytes());
    line.extend_from_slice(b"\",\"reason\":\"");
    line.extend_from_slice(f.reason.as_str().as_bytes());
    line.extend_from_slice(b"\",\"qtype\":\"");
    line.extend_from_slice(qtype_name(f.qtype).as_bytes());
    line.extend_from_slice(b"\",\"rcode\":");
    match f.rcode {
        Some(r) => json::int(line, r),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"server\":");
    match f.server {
        Some(s) => {
            let _ = write!(line, "\"{s}\"");
        }
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"queries\":");
    json::int(line, f.queries);
    line.push(b',');
    json::who(line, &Some(caller(&f.who)), attr);
    line.extend_from_slice(b"}\n");
}

/// One `resolve_failed_summary` JSON object and a newline: a source's
/// failures past its firsts in a window.
pub fn json_folded(line: &mut Vec<u8>, ts: &Stamp, s: &Folded, attr: Option<&Attribution>) {
    line.extend_from_slice(b"{\"event\":\"resolve_failed_summary\",\"ts\":\"");
    line.extend_from_slice(&ts.bytes());
    line.extend_from_slice(b"\",\"count\":");
    json::int(line, s.count);
    line.extend_from_slice(b",\"window_s\":");
    json::int(line, s.window_ns / 1_000_000_000);
    line.extend_from_slice(b",\"reasons\":{");
    for (i, (r, n)) in s.reasons.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        let _ = write!(line, "\"{}\":", r.as_str());
        json::int(line, *n);
    }
    line.extend_from_slice(b"},\"names\":[");
    for (i, n) in s.names.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        json::escaped(line, n);
    }
    line.extend_from_slice(b"],");
    json::who(line, &Some(caller(&s.who)), attr);
    line.extend_from_slice(b"}\n");
}

/// `DNS failure detected: name=api reason=nxdomain qtype=A rcode=3
/// server=10.0.0.2:53 queries=8 pid=… comm=… uid=… unit=…`
pub struct FailedLine<'a>(pub &'a Failed, pub Option<&'a Attribution>);

impl fmt::Display for FailedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "DNS failure detected: name={} reason={} qtype={}",
            Shown(&e.name),
            e.reason.as_str(),
            qtype_name(e.qtype)
        )?;
        if let Some(r) = e.rcode {
            write!(f, " rcode={r}")?;
        }
        if let Some(s) = e.server {
            write!(f, " server={s}")?;
        }
        if e.per_query {
            f.write_str(" lookup=per_query")?;
        }
        write!(
            f,
            " queries={}{}{}",
            e.queries,
            WhoMark(&Some(caller(&e.who))),
            AttributionMark(self.1)
        )
    }
}

/// `DNS failures summarised: 4211 more in 60s (nxdomain=4211) names=a.test,…
/// pid=… comm=… unit=…`
pub struct FoldedLine<'a>(pub &'a Folded, pub Option<&'a Attribution>);

impl fmt::Display for FoldedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "DNS failures summarised: {} more in {}s (",
            s.count,
            s.window_ns / 1_000_000_000
        )?;
        for (i, (r, n)) in s.reasons.iter().enumerate() {
            write!(f, "{}{}={n}", if i > 0 { " " } else { "" }, r.as_str())?;
        }
        f.write_str(") names=")?;
        for (i, n) in s.names.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { "," } else { "" }, Shown(n))?;
        }
        write!(
            f,
            "{}{}",
            WhoMark(&Some(caller(&s.who))),
            AttributionMark(self.1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::clock::{Clock, Stamps};

    fn failed() -> Failed {
        Failed::sample(b"api\n\"x\xff", 42, 1000, b"getent")
    }

    #[test]
    fn a_failure_is_one_json_object_with_its_name_escaped() {
        let stamps = Stamps::new(Clock::new(1_795_521_599 * 1_000_000_000));
        let mut line = Vec::new();
        json_failed(&mut line, &stamps.at(1_000_000_000), &failed(), None);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["event"], "resolve_failed");
        assert_eq!(v["name"], "api\\x0a\"x\\xff");
        assert_eq!(
            (
                &v["reason"],
                &v["qtype"],
                &v["rcode"],
                &v["server"],
                &v["lookup"]
            ),
            (
                &"nxdomain".into(),
                &"A".into(),
                &3.into(),
                &"10.0.0.2:53".into(),
                &"search".into()
            )
        );
        assert_eq!(
            (&v["pid"], &v["comm"], &v["uid"]),
            (&42.into(), &"getent".into(), &1000.into())
        );
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let t = FailedLine(&failed(), None).to_string();
        assert_eq!(
            t,
            "DNS failure detected: name=api\\x0a\"x\\xff reason=nxdomain qtype=A rcode=3 server=10.0.0.2:53 queries=8 pid=42 comm=getent uid=1000"
        );
    }
}

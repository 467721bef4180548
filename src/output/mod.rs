//! The per-failure stream on stdout: `--format text`, `json` or `none`.
//!
//! Lines are appended to the caller's buffer, so the hot path allocates
//! nothing; the caller owns writing (see `stdout`).

pub mod clock;
pub mod dns;
pub mod json;
pub mod stdout;
pub mod text;

use std::io::Write;

use crate::event::{Attribution, Decided, Failure, Record, Slow};
use crate::output::clock::{Clock, Stamps};
use crate::output::text::{AttributionMark, FailureLine, SlowLine, StateChangeLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// No per-failure stream: for services whose stdout is the journal,
    /// where the alerts already are.
    None,
}

pub struct Printer {
    format: Format,
    stamps: Stamps,
}

impl Printer {
    pub fn new(format: Format, clock: Clock) -> Self {
        Printer {
            format,
            stamps: Stamps::new(clock),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.stamps.set_clock(clock);
    }

    /// Appends the failure's line to `w`; false when the format prints none.
    pub fn failure(&self, w: &mut Vec<u8>, e: &Failure, attr: Option<&Attribution>) -> bool {
        match self.format {
            Format::None => return false,
            // Writing into a Vec cannot fail.
            Format::Text => {
                let _ = writeln!(
                    w,
                    "{}{} at={}",
                    FailureLine(e),
                    AttributionMark(attr),
                    self.stamps.at(e.ts_ns)
                );
            }
            Format::Json => crate::output::json::failure(w, &self.stamps.at(e.ts_ns), e, attr),
        }
        true
    }

    /// JSON only: appends a failure's `verdict` line (recovered or failed),
    /// written when it is known; false for the other formats, whose
    /// readers get the verdict as alerts and notices.
    pub fn verdict(&self, w: &mut Vec<u8>, d: &Decided, attr: Option<&Attribution>) -> bool {
        if self.format != Format::Json {
            return false;
        }
        let f = d.failure();
        crate::output::json::verdict(w, &self.stamps.at(f.ts_ns), d, attr);
        true
    }

    /// Appends the slow attempt's line to `w`; false when the format prints none.
    pub fn slow(&self, w: &mut Vec<u8>, e: &Slow, attr: Option<&Attribution>) -> bool {
        match self.format {
            Format::None => return false,
            Format::Text => {
                let _ = writeln!(
                    w,
                    "{}{} at={}",
                    SlowLine(e),
                    AttributionMark(attr),
                    self.stamps.at(e.ts_ns)
                );
            }
            Format::Json => crate::output::json::slow(w, &self.stamps.at(e.ts_ns), e, attr),
        }
        true
    }

    /// Appends a `resolve_failed` line (issue 32); false when the format
    /// prints none.
    pub fn resolve_failed(
        &self,
        w: &mut Vec<u8>,
        f: &crate::dns::lookup::Failed,
        attr: Option<&Attribution>,
    ) -> bool {
        match self.format {
            Format::None => return false,
            Format::Text => {
                let _ = writeln!(
                    w,
                    "{} at={}",
                    dns::FailedLine(f, attr),
                    self.stamps.at(f.ts_ns)
                );
            }
            Format::Json => dns::json_failed(w, &self.stamps.at(f.ts_ns), f, attr),
        }
        true
    }

    /// Appends a source's folded DNS failures, stamped `now_ns`.
    pub fn resolve_folded(
        &self,
        w: &mut Vec<u8>,
        s: &crate::dns::lookup::Folded,
        attr: Option<&Attribution>,
        now_ns: u64,
    ) -> bool {
        match self.format {
            Format::None => return false,
            Format::Text => {
                let _ = writeln!(
                    w,
                    "{} at={}",
                    dns::FoldedLine(s, attr),
                    self.stamps.at(now_ns)
                );
            }
            Format::Json => dns::json_folded(w, &self.stamps.at(now_ns), s, attr),
        }
        true
    }

    /// `--verbose`: appends the state change's line to `w`.
    pub fn state_change(&self, w: &mut Vec<u8>, e: &Record) -> bool {
        let ts = self.stamps.at(e.ts_ns);
        match self.format {
            Format::None => return false,
            Format::Text => {
                let _ = writeln!(w, "{}", StateChangeLine(e, ts));
            }
            Format::Json => crate::output::json::state_change(w, ts, e),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Caller, Reason, Seen};

    fn failure(daddr: &str, reason: Reason, errno: u32) -> Failure {
        Failure {
            caller: Some(Caller {
                tid: 4243,
                uid: 1000,
                ..Caller::sample(4242, b"cu rl\n")
            }),
            errno,
            ts_ns: 1_000_000_000,
            duration_ns: 3_012_345_678,
            ..Failure::sample(daddr, 8080, reason)
        }
    }

    // 2026-11-24T12:00:00Z is 1_795_521_600 s after the epoch; the event
    // happened one second after the monotonic clock's zero.
    fn printer(format: Format) -> Printer {
        Printer::new(format, Clock::new(1_795_521_599 * 1_000_000_000))
    }

    fn text(p: &Printer, f: &Failure) -> String {
        let mut out = Vec::new();
        p.failure(&mut out, f, None);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_line() {
        let p = printer(Format::Text);
        assert_eq!(
            text(&p, &failure("192.0.2.2", Reason::Timeout, 110)),
            "TCP failure detected: 192.0.2.2:8080 reason=timeout stage=handshake \
             pid=4242 comm=cu\\x20rl\\x0a uid=1000 saddr=192.0.2.1 after=3012.3ms \
             at=2026-11-24T12:00:00.000000Z\n"
        );
        let mut f = failure("2001:db8::2", Reason::Error, 13);
        f.sport = Some(40000);
        let line = text(&p, &f);
        assert!(
            line.contains("detected: [2001:db8::2]:8080 reason=error errno=13 "),
            "{line}"
        );
        assert!(line.contains(" sport=40000 "), "{line}");
        let mut f = failure("192.0.2.2", Reason::Refused, 111);
        f.caller = None;
        f.seen = Seen::Unmatched;
        let line = text(&p, &f);
        assert!(line.contains(" pid=- comm=- saddr="), "{line}");
        // Its start is unknown: no made-up 0.0ms.
        assert!(line.contains(" after=- seen=unmatched at="), "{line}");
    }

    #[test]
    fn json_line() {
        let p = printer(Format::Json);
        let line = text(&p, &failure("192.0.2.2", Reason::Refused, 111));
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "connect_failed");
        assert_eq!(v["ts"], "2026-11-24T12:00:00.000000Z");
        assert_eq!(v["reason"], "refused");
        assert_eq!(v["errno"], 111);
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["tid"], 4243);
        assert_eq!(v["uid"], 1000);
        assert_eq!(v["comm"], "cu\\x20rl\\x0a");
        assert_eq!(v["process"], "cu\\x20rl\\x0a");
        assert_eq!(v["stage"], "handshake");
        assert_eq!(v["seen"], "live");
        assert_eq!(v["retransmits"], 0);
        assert_eq!(v["family"], "ipv4");
        assert_eq!(v["saddr"], "192.0.2.1");
        assert_eq!(v["sport"], serde_json::Value::Null);
        assert_eq!(v["daddr"], "192.0.2.2");
        assert_eq!(v["dport"], 8080);
        assert_eq!(v["duration_ms"], 3012.346);
        let mut f = failure("192.0.2.2", Reason::Refused, 111);
        f.caller = None;
        f.seen = Seen::Unmatched;
        f.duration_ns = 0;
        let v: serde_json::Value = serde_json::from_str(&text(&p, &f)).unwrap();
        assert_eq!(v["duration_ms"], serde_json::Value::Null, "{v}");
        assert_eq!(v["container_name"], serde_json::Value::Null, "{v}");
        assert_eq!(v["pod_name"], serde_json::Value::Null, "{v}");
        assert_eq!(v["pod_namespace"], serde_json::Value::Null, "{v}");
    }

    #[test]
    fn none_prints_nothing() {
        let p = printer(Format::None);
        assert_eq!(text(&p, &failure("192.0.2.2", Reason::Refused, 111)), "");
    }
}

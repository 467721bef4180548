//! The per-failure stream on stdout: `--format text` or `--format json`.
//!
//! Writers take `&mut impl Write` and format in place, so the hot path
//! allocates nothing; the caller owns buffering and flushes once per batch.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::event::{Comm, Failure, StateChange, TcpState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// No per-failure stream: for services whose stdout is the journal,
    /// where the syslog alerts already are.
    None,
}

/// Turns the events' monotonic timestamps into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    pub fn new(offset_ns: i128) -> Self {
        Clock { offset_ns }
    }

    /// Samples both clocks now.
    pub fn system() -> io::Result<Self> {
        use nix::time::{clock_gettime, ClockId};
        let ns = |c| -> io::Result<i128> {
            let t = clock_gettime(c).map_err(io::Error::from)?;
            Ok(i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        };
        let mono = ns(ClockId::CLOCK_MONOTONIC)?;
        let real = ns(ClockId::CLOCK_REALTIME)?;
        Ok(Clock::new(real - mono))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.offset_ns).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// Formats timestamps as RFC 3339 UTC with microseconds. The date and time
/// of day are formatted once per second and reused: events come in bursts,
/// and calendar arithmetic per line was a visible share of the hot path.
pub struct Stamps {
    clock: Clock,
    /// Whole wall-clock second and its `YYYY-MM-DDTHH:MM:SS`.
    cache: Cell<Option<(u64, [u8; 19])>>,
}

impl Stamps {
    pub fn new(clock: Clock) -> Self {
        Stamps {
            clock,
            cache: Cell::new(None),
        }
    }

    pub fn at(&self, mono_ns: u64) -> Stamp {
        let wall = self.clock.wall_ns(mono_ns);
        let sec = wall / 1_000_000_000;
        let head = match self.cache.get() {
            Some((s, head)) if s == sec => head,
            _ => {
                let mut head = [0u8; 19];
                let full = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(sec))
                    .to_string();
                head.copy_from_slice(&full.as_bytes()[..19]);
                self.cache.set(Some((sec, head)));
                head
            }
        };
        Stamp {
            head,
            micros: (wall % 1_000_000_000 / 1000) as u32,
        }
    }
}

pub struct Stamp {
    head: [u8; 19],
    micros: u32,
}

impl Stamp {
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` as bytes: one formatting for the JSON
    /// writer and `Display` alike, without the formatting machinery.
    pub fn bytes(&self) -> [u8; 27] {
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        out[..19].copy_from_slice(&self.head);
        let mut n = self.micros;
        for d in out[20..26].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ASCII digits and separators only.
        f.write_str(std::str::from_utf8(&self.bytes()).unwrap_or("invalid-time"))
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel's timestamps.
pub fn mono_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

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

/// The one-line description shared by stdout's text format and syslog:
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
        if e.reason == crate::event::Reason::Error {
            write!(f, " errno={}", e.errno)?;
        }
        write!(f, " pid={} comm={} saddr={}", e.pid, e.comm, e.saddr)?;
        if let Some(p) = e.sport {
            write!(f, " sport={p}")?;
        }
        write!(f, " after={}", Millis(e.duration_ns))
    }
}

/// Serializes through `Display`: serde_json escapes it straight into the
/// writer, with no intermediate String.
fn display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(Serialize)]
struct JsonStateChange {
    event: &'static str,
    #[serde(serialize_with = "display")]
    ts: Stamp,
    pid: u32,
    #[serde(serialize_with = "display")]
    comm: Comm,
    family: &'static str,
    #[serde(serialize_with = "display")]
    oldstate: TcpState,
    #[serde(serialize_with = "display")]
    newstate: TcpState,
    saddr: IpAddr,
    sport: Option<u16>,
    daddr: IpAddr,
    dport: u16,
}

/// Lines collected while draining the ring buffer, written with one
/// write(2) per drain (or whenever `limit` bytes are waiting): on a
/// journaling file system each write has a fixed cost, and formatting
/// straight into one buffer saves a copy per line.
pub struct Batch<W: Write> {
    pub buf: Vec<u8>,
    sink: W,
    limit: usize,
}

impl<W: Write> Batch<W> {
    pub fn new(sink: W, limit: usize) -> Self {
        Batch {
            buf: Vec::with_capacity(limit + 4096),
            sink,
            limit,
        }
    }

    pub fn full(&self) -> bool {
        self.buf.len() >= self.limit
    }

    /// Writes what is waiting. On error the batch is dropped (and the
    /// caller counts it), so memory stays bounded.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self
            .sink
            .write_all(&self.buf)
            .and_then(|()| self.sink.flush());
        self.buf.clear();
        r
    }
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

    /// Appends the failure's line to `w` (see [`Batch`]).
    pub fn failure(&self, w: &mut Vec<u8>, e: &Failure) {
        match self.format {
            Format::None => {}
            // Writing into a Vec cannot fail.
            Format::Text => {
                let _ = writeln!(w, "{} at={}", FailureLine(e), self.stamps.at(e.ts_ns));
            }
            Format::Json => crate::json::failure(w, &self.stamps.at(e.ts_ns), e),
        }
    }

    /// `--verbose`: every traced state change, like the original's lines.
    /// Appends the state change's line to `w`.
    pub fn state_change(&self, w: &mut Vec<u8>, e: &StateChange) {
        // Writing into a Vec cannot fail.
        let _ = match self.format {
            Format::None => Ok(()),
            Format::Text => {
                writeln!(
                    w,
                    "{} pid={} comm={} {} -> {} {} -> {}",
                    self.stamps.at(e.ts_ns),
                    e.pid,
                    e.comm,
                    e.oldstate,
                    e.newstate,
                    Endpoint(e.saddr, e.sport),
                    Endpoint(e.daddr, Some(e.dport)),
                )
            }
            Format::Json => {
                let j = JsonStateChange {
                    event: "state_change",
                    ts: self.stamps.at(e.ts_ns),
                    pid: e.pid,
                    comm: e.comm,
                    family: e.family.name(),
                    oldstate: e.oldstate,
                    newstate: e.newstate,
                    saddr: e.saddr,
                    sport: e.sport,
                    daddr: e.daddr,
                    dport: e.dport,
                };
                serde_json::to_writer(&mut *w, &j)
                    .map_err(io::Error::from)
                    .and_then(|()| w.write_all(b"\n"))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Family, Reason};

    fn failure(daddr: &str, reason: Reason, errno: u32) -> Failure {
        Failure {
            pid: 4242,
            comm: Comm::new(b"cu rl\n"),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            sport: None,
            daddr: daddr.parse().unwrap(),
            dport: 8080,
            reason,
            errno,
            ts_ns: 1_000_000_000,
            duration_ns: 3_012_345_678,
        }
    }

    // 2026-11-24T12:00:00Z is 1_795_521_600 s after the epoch; the event
    // happened one second after the monotonic clock's zero.
    fn printer(format: Format) -> Printer {
        Printer::new(format, Clock::new(1_795_521_599 * 1_000_000_000))
    }

    fn text(p: &Printer, f: &Failure) -> String {
        let mut out = Vec::new();
        p.failure(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_line() {
        let p = printer(Format::Text);
        assert_eq!(
            text(&p, &failure("192.0.2.2", Reason::Timeout, 110)),
            "TCP failure detected: 192.0.2.2:8080 reason=timeout \
             pid=4242 comm=cu\\x20rl\\x0a saddr=192.0.2.1 after=3012.3ms \
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
        assert_eq!(v["comm"], "cu\\x20rl\\x0a");
        assert_eq!(v["family"], "ipv4");
        assert_eq!(v["saddr"], "192.0.2.1");
        assert_eq!(v["sport"], serde_json::Value::Null);
        assert_eq!(v["daddr"], "192.0.2.2");
        assert_eq!(v["dport"], 8080);
        assert_eq!(v["duration_ms"], 3012.346);
    }

    #[test]
    fn stamps_reuse_the_second_and_keep_micros() {
        let s = Stamps::new(Clock::new(1_795_521_599 * 1_000_000_000));
        for (mono_ns, want) in [
            (1_000_000_000, "2026-11-24T12:00:00.000000Z"),
            (1_999_999_999, "2026-11-24T12:00:00.999999Z"),
            (2_000_001_000, "2026-11-24T12:00:01.000001Z"),
            // Back in time (another CPU's earlier event) is formatted afresh.
            (1_000_000_000, "2026-11-24T12:00:00.000000Z"),
            (87_401_000_000_000, "2026-11-25T12:16:40.000000Z"),
        ] {
            assert_eq!(s.at(mono_ns).to_string(), want);
        }
    }

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

//! Wall-clock time for the kernel's monotonic timestamps, and their RFC 3339
//! form. The realtime−monotonic offset moves (an NTP step, a suspend), so
//! the daemon samples it again every second.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

/// Turns the events' monotonic timestamps into wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    offset_ns: i128,
}

fn clock_ns(c: nix::time::ClockId) -> io::Result<i128> {
    let t = nix::time::clock_gettime(c).map_err(io::Error::from)?;
    Ok(i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
}

impl Clock {
    pub fn new(offset_ns: i128) -> Self {
        Clock { offset_ns }
    }

    /// Samples both clocks now.
    pub fn system() -> io::Result<Self> {
        use nix::time::ClockId;
        let mono = clock_ns(ClockId::CLOCK_MONOTONIC)?;
        let real = clock_ns(ClockId::CLOCK_REALTIME)?;
        Ok(Clock::new(real - mono))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.offset_ns).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel's timestamps.
pub fn mono_now_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |n| n as u64)
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

    /// A fresh sample of the clocks; what was cached is keyed by wall-clock
    /// second, so it stays right.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
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

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-24T12:00:00Z is 1_795_521_600 s after the epoch.
    const OFFSET: i128 = 1_795_521_599 * 1_000_000_000;

    #[test]
    fn stamps_reuse_the_second_and_keep_micros() {
        let s = Stamps::new(Clock::new(OFFSET));
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
    fn a_new_sample_moves_every_later_stamp() {
        let mut s = Stamps::new(Clock::new(OFFSET));
        assert_eq!(
            s.at(1_000_000_000).to_string(),
            "2026-11-24T12:00:00.000000Z"
        );
        // The wall clock was stepped 90 s ahead (NTP), the monotonic one not.
        s.set_clock(Clock::new(OFFSET + 90_000_000_000));
        assert_eq!(
            s.at(1_000_000_000).to_string(),
            "2026-11-24T12:01:30.000000Z"
        );
        assert_eq!(
            s.at(1_500_000_000).to_string(),
            "2026-11-24T12:01:30.500000Z"
        );
    }

    #[test]
    fn the_system_clock_is_near_now() {
        let c = Clock::system().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let wall = c.wall_ns(mono_now_ns()) as i128;
        assert!((wall - now).abs() < 1_000_000_000, "{wall} vs {now}");
    }
}

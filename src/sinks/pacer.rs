//! When the next message may go: Slack's posting limit as a token bucket,
//! `Retry-After` holds, and exponential back-off with jitter. Pure: the
//! caller passes the time.

use std::time::Duration;

use tokio::time::Instant;

/// About one message per second, with short bursts: a token bucket.
#[derive(Debug)]
pub struct Pacer {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
    hold_until: Instant,
}

impl Pacer {
    pub fn new(now: Instant, burst: u32, per_sec: f64) -> Self {
        Pacer {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_sec,
            last: now,
            hold_until: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        self.last = now;
    }

    /// How long until a message may go.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let hold = self.hold_until.saturating_duration_since(now);
        let token = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        };
        hold.max(token)
    }

    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Nothing goes before `until` (a `Retry-After`, or a back-off).
    pub fn hold(&mut self, until: Instant) {
        self.hold_until = self.hold_until.max(until);
        self.tokens = 0.0;
    }
}

/// Exponential back-off with jitter: attempt 0 waits 0.5–1 s, doubling up
/// to 30 s. `jitter` is in [0, 1).
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_millis(1000).saturating_mul(1 << attempt.min(5));
    base.min(Duration::from_secs(30))
        .mul_f64(0.5 + 0.5 * jitter)
}

/// A cheap jitter source; it need not be unpredictable, only spread out.
pub fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n.wrapping_mul(2_654_435_761) >> 8) / f64::from(1u32 << 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_allows_a_burst_then_one_per_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 3, 1.0);
        for _ in 0..3 {
            assert_eq!(p.wait(t0), Duration::ZERO);
            p.take(t0);
        }
        let w = p.wait(t0);
        assert!(
            w > Duration::from_millis(990) && w <= Duration::from_secs(1),
            "{w:?}"
        );
        assert_eq!(p.wait(t0 + Duration::from_secs(1)), Duration::ZERO);
        p.take(t0 + Duration::from_secs(1));
        p.hold(t0 + Duration::from_secs(30));
        let w = p.wait(t0 + Duration::from_secs(2));
        assert_eq!(w, Duration::from_secs(28));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(0, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(10, 0.0), Duration::from_secs(15));
        assert!((0.0..1.0).contains(&jitter()));
    }
}

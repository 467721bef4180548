//! Losses said while they happen: the first of each kind at once (the
//! daemon checks every second), then at most one line per kind a minute,
//! with the count since the last line and the total. Pure: the caller
//! passes the totals and the time.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(60);

/// Running totals of everything that can be lost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub ring_drops: u64,
    pub evicted: u64,
    pub unmatched: u64,
    pub stdout_dropped: u64,
    pub alert_queue_drops: u64,
    pub syslog_lost: u64,
    pub slack_folded: u64,
    pub slack_lost: u64,
    pub bad_records: u64,
}

impl Totals {
    fn get(&self, k: usize) -> u64 {
        [
            self.ring_drops,
            self.evicted,
            self.unmatched,
            self.stdout_dropped,
            self.alert_queue_drops,
            self.syslog_lost,
            self.slack_folded,
            self.slack_lost,
            self.bad_records,
        ][k]
    }
}

/// What each kind is, in words; `{n}` new, `{t}` total.
const KINDS: [(&str, &str); 9] = [
    (
        "events lost in the kernel: the ring buffer was full",
        "raise --ring-buffer-size",
    ),
    (
        "connection attempts forgotten before they ended: pending too long, or the table was full",
        "see --max-pending",
    ),
    (
        "connection attempts ended without a recorded start",
        "reported with \"seen\":\"unmatched\" where they failed",
    ),
    (
        "output lines dropped: stdout is not read fast enough",
        "read it faster, or use --format none",
    ),
    (
        "alerts dropped: a sink's queue was full",
        "the sink is slower than the alerts",
    ),
    ("syslog lines lost", "is the syslog socket there and read?"),
    (
        "alerts folded into a count: Slack's queue was full",
        "the next Slack message gives the count",
    ),
    ("Slack alerts lost", "see the Slack webhook lines for why"),
    (
        "records from the kernel that could not be decoded",
        "a tcpstate bug: please report it",
    ),
];

#[derive(Debug, Default, Clone, Copy)]
struct Said {
    total: u64,
    at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Losses {
    said: [Said; KINDS.len()],
}

impl Losses {
    /// The warnings due at `now` for these totals.
    pub fn check(&mut self, t: &Totals, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (k, (what, advice)) in KINDS.iter().enumerate() {
            let total = t.get(k);
            let said = &mut self.said[k];
            if total <= said.total {
                continue;
            }
            if said
                .at
                .is_some_and(|at| now.saturating_duration_since(at) < EVERY)
            {
                continue;
            }
            let since = match said.at {
                None => "since start".to_string(),
                Some(at) => format!(
                    "in the last {}s",
                    now.saturating_duration_since(at).as_secs()
                ),
            };
            out.push(format!(
                "{} {what} {since} (total {total}); {advice}",
                total - said.total
            ));
            *said = Said {
                total,
                at: Some(now),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_once_a_minute_per_kind_with_counts() {
        let mut l = Losses::default();
        let t0 = Instant::now();
        let mut t = Totals::default();
        assert!(l.check(&t, t0).is_empty());
        t.ring_drops = 5;
        let w = l.check(&t, t0);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("5 events lost"), "{}", w[0]);
        assert!(w[0].contains("since start (total 5)"), "{}", w[0]);
        // More of the same kind within the minute: quiet.
        t.ring_drops = 9;
        assert!(l.check(&t, t0 + Duration::from_secs(30)).is_empty());
        // Another kind is said at once.
        t.slack_lost = 2;
        let w = l.check(&t, t0 + Duration::from_secs(31));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("2 Slack alerts lost"), "{}", w[0]);
        // A minute on: the count since the last line.
        let w = l.check(&t, t0 + Duration::from_secs(60));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("4 events lost"), "{}", w[0]);
        assert!(w[0].contains("in the last 60s (total 9)"), "{}", w[0]);
        // Nothing new: nothing said.
        assert!(l.check(&t, t0 + Duration::from_secs(200)).is_empty());
    }
}

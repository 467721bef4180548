//! The one table of tcpstate's scalar counters: each row says where the
//! counter shows on the stop line (its key) and in /metrics (its family's
//! name, help and kind), and how its value is read. Both are written from
//! [`COUNTERS`], so a counter is added, named and summed once.
//! Labelled families (per reason, destination, unit, kind or sink) are
//! written by `server`; the per-sink numbers come from [`sinks`], which
//! the stop line's `alert_queue_drops` sums too.

use std::fmt::Write;

use super::stats::Stats;
use super::Totals;

/// What a counter is read from.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub totals: &'a Totals,
    pub stats: &'a Stats,
    /// `--metrics-max-destinations`, for /metrics only.
    pub max_dests: u64,
    /// Failure series folded at the series cap.
    pub series_folded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// How a counter shows on the stop line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Not on it.
    No,
    /// ` key=value`.
    Key(&'static str),
    /// ` key=value`, only when DNS answers are read.
    Dns(&'static str),
    /// ` (key value`: the first part of the counter before it.
    Open(&'static str),
    /// ` key value)`: the last part.
    Close(&'static str),
}

/// An unlabelled /metrics family.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its place among the unlabelled families in /metrics, from 0.
    pub rank: u8,
    /// Without `_total`: the encoder adds it to counters.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// How a counter's value is read.
pub type Read = fn(&Values) -> u64;

#[derive(Debug, Clone, Copy)]
pub struct Counter {
    pub stop: Stop,
    pub metric: Option<Metric>,
    pub value: Read,
}

const fn stop(stop: Stop, value: Read) -> Counter {
    Counter {
        stop,
        metric: None,
        value,
    }
}

const fn both(
    stop: Stop,
    (rank, name, kind): (u8, &'static str, Kind),
    help: &'static str,
    value: Read,
) -> Counter {
    Counter {
        stop,
        metric: Some(Metric {
            rank,
            name,
            help,
            kind,
        }),
        value,
    }
}

use Kind::{Counter as C, Gauge as G};
use Stop::{Close, Dns, Key, Open};

/// Every scalar counter, in the stop line's order.
pub const COUNTERS: &[Counter] = &[
    both(
        Key("events"),
        (2, "tcpstate_events", C),
        "Records read from the kernel's ring buffer.",
        |v| v.totals.events,
    ),
    both(
        Key("attempts"),
        (0, "tcpstate_connect_attempts", C),
        "Connection attempts seen entering SYN_SENT.",
        |v| v.totals.attempts,
    ),
    both(
        Key("successes"),
        (1, "tcpstate_connect_successes", C),
        "Connection attempts seen reaching ESTABLISHED.",
        |v| v.totals.successes,
    ),
    stop(Key("failures"), |v| v.totals.failures),
    both(
        Key("recovered"),
        (13, "tcpstate_connect_failures_recovered", C),
        "Failed attempts the application recovered from (another address or family of the name, or a retry, connected): degradation notices, not pages.",
        |v| v.totals.recovered,
    ),
    both(
        Key("verdicts_early"),
        (14, "tcpstate_verdicts_early", C),
        "Failures paged before their recovery window ended: their source held its share of the verdict table, or the table was full.",
        |v| v.totals.verdicts_early,
    ),
    both(
        Key("verdicts_successes_dropped"),
        (15, "tcpstate_verdicts_successes_dropped", C),
        "Successes not remembered for verdicts: too many sources at once (a failure they would have recovered pages).",
        |v| v.totals.verdicts_successes_dropped,
    ),
    both(
        Key("verdicts_answers_dropped"),
        (21, "tcpstate_verdicts_answers_dropped", C),
        "DNS answers not remembered for verdicts: the table was full of live ones (a failure on the name's last address then waits its window instead of paging at once).",
        |v| v.totals.verdicts_answers_dropped,
    ),
    both(
        Key("verdicts_pending"),
        (16, "tcpstate_verdicts_pending", G),
        "Failures waiting for their verdict now.",
        |v| v.totals.verdicts_pending,
    ),
    stop(Key("slow"), |v| v.totals.slow),
    both(
        Key("evicted"),
        (4, "tcpstate_attempts_evicted", C),
        "Attempts forgotten unconcluded: pending too long or the table full.",
        |v| v.totals.evicted_age + v.totals.evicted_full,
    ),
    stop(Open("age"), |v| v.totals.evicted_age),
    stop(Close("full"), |v| v.totals.evicted_full),
    stop(Key("replaced"), |v| v.totals.replaced),
    stop(Key("broken"), |v| v.totals.broken),
    both(
        Key("broken_unmatched"),
        (18, "tcpstate_connections_broken_unmatched", C),
        "Connections that broke after they were established but were not reported: not on record as opened by this host since tcpstate started (made before it, forgotten to make room, or its own).",
        |v| v.totals.broken_unmatched,
    ),
    both(
        Key("established_forgotten"),
        (19, "tcpstate_established_forgotten", C),
        "Established connections forgotten, oldest first, to keep the table of open connections bounded: a later break of one is not reported.",
        |v| v.totals.established_forgotten,
    ),
    both(
        Key("unmatched"),
        (5, "tcpstate_attempts_unmatched", C),
        "Attempt ends without a known start.",
        |v| v.totals.unmatched,
    ),
    stop(Key("at_start"), |v| v.totals.at_start),
    both(
        Key("pending"),
        (10, "tcpstate_attempts_pending", G),
        "Attempts in SYN_SENT now.",
        |v| v.totals.pending,
    ),
    stop(Key("bad_records"), |v| v.totals.bad_records),
    stop(Key("names_refused"), |v| v.totals.names_refused),
    both(
        Key("ringbuf_drops"),
        (3, "tcpstate_ringbuf_lost_events", C),
        "Events the kernel could not queue: the ring buffer was full (lost, never seen).",
        |v| v.totals.ring_drops,
    ),
    both(
        Key("stdout_dropped"),
        (11, "tcpstate_stdout_lines_dropped", C),
        "Per-failure lines not written to stdout because its reader did not keep up.",
        |v| v.stats.stdout_dropped.get(),
    ),
    stop(Key("alerts"), |v| v.totals.alerts),
    stop(Key("summaries"), |v| v.totals.summaries),
    stop(Key("folded"), |v| v.totals.folded),
    // Every sink's queue, Alertmanager's too: the sum of the queue drops
    // /metrics counts per sink in tcpstate_alerts_dropped_total.
    stop(Key("alert_queue_drops"), |v| {
        sinks(v.stats).iter().map(|s| s.queue_drops).sum()
    }),
    stop(Key("syslog_lines"), |v| v.stats.syslog_lines.get()),
    stop(Key("syslog_lost"), |v| v.stats.syslog_lost.get()),
    stop(Key("slack_messages"), |v| v.stats.slack_messages.get()),
    stop(Key("slack_alerts"), |v| v.stats.slack_alerts.get()),
    stop(Key("slack_retries"), |v| v.stats.slack_retries.get()),
    stop(Key("slack_rate_limited"), |v| {
        v.stats.slack_rate_limited.get()
    }),
    stop(Key("slack_folded"), |v| v.stats.slack_folded.get()),
    stop(Key("slack_lost_alerts"), |v| {
        v.stats.slack_lost_alerts.get()
    }),
    stop(Key("slack_lost_failures"), |v| {
        v.stats.slack_lost_failures.get()
    }),
    stop(Key("fired"), |v| v.totals.fired),
    stop(Key("resolved"), |v| v.totals.resolved),
    stop(Key("am_posts"), |v| v.stats.am_posts.get()),
    stop(Key("am_alerts"), |v| v.stats.am_alerts.get()),
    stop(Key("am_retries"), |v| v.stats.am_retries.get()),
    stop(Key("am_queue_drops"), |v| v.stats.am_queue_drops.get()),
    stop(Key("am_lost_alerts"), |v| v.stats.am_lost_alerts.get()),
    stop(Key("otlp_records"), |v| v.stats.otlp_records.get()),
    stop(Key("otlp_retries"), |v| v.stats.otlp_retries.get()),
    stop(Key("otlp_queue_drops"), |v| v.stats.otlp_queue_drops.get()),
    stop(Key("otlp_lost"), |v| v.stats.otlp_lost_records.get()),
    stop(Key("otlp_metric_posts"), |v| {
        v.stats.otlp_metric_posts.get()
    }),
    stop(Key("otlp_metric_failed"), |v| {
        v.stats.otlp_metric_failed.get()
    }),
    both(
        Dns("dns_answers"),
        (6, "tcpstate_dns_answers", C),
        "DNS answers to applications read from the kernel.",
        |v| v.totals.dns_answers,
    ),
    stop(Dns("dns_ignored"), |v| v.totals.dns_ignored),
    stop(Dns("dns_malformed"), |v| v.totals.dns_malformed),
    stop(Dns("dns_bad_names"), |v| v.totals.dns_bad_names),
    stop(Dns("dns_partial"), |v| v.totals.dns_partial),
    stop(Dns("dns_addrs_dropped"), |v| v.totals.dns_addrs_dropped),
    both(
        Dns("dns_skipped"),
        (9, "tcpstate_dns_answers_skipped", C),
        "DNS answers the kernel did not send because the ring buffer was half full.",
        |v| v.totals.dns_skipped,
    ),
    stop(Dns("dns_learned"), |v| v.totals.dns_learned),
    both(
        Dns("dns_names"),
        (7, "tcpstate_dns_names", G),
        "Address-to-name pairs held (bounded).",
        |v| v.totals.dns_names,
    ),
    stop(Dns("dns_bytes"), |v| v.totals.dns_bytes),
    stop(Dns("dns_expired"), |v| v.totals.dns_expired),
    both(
        Dns("dns_evicted"),
        (8, "tcpstate_dns_names_evicted", C),
        "Address-to-name pairs forgotten before their TTL and grace: the memory was full.",
        |v| v.totals.dns_evicted,
    ),
    stop(Dns("dns_untrusted"), |v| v.totals.dns_untrusted),
    stop(Dns("dns_unmatched"), |v| v.totals.dns_unmatched),
    stop(Dns("dns_tcp_messages"), |v| v.totals.dns_tcp_messages),
    both(
        Dns("dns_tcp_cut"),
        (20, "tcpstate_dns_tcp_cut", C),
        "DNS messages over TCP read only in part: the kernel's copy or the stream's split ended inside one, one buffer held more than are framed, or the TCP trampolines could not read a call's buffer.",
        |v| v.totals.dns_tcp_cut,
    ),
    stop(Dns("dns_truncated"), |v| v.totals.dns_truncated),
    stop(Dns("dns_lookups_failed"), |v| v.totals.dns_lookups_failed),
    stop(Dns("dns_lookups_recovered"), |v| {
        v.totals.dns_lookups_recovered
    }),
    stop(Dns("dns_lookups_undecided"), |v| {
        v.totals.dns_lookups_undecided
    }),
    stop(Dns("dns_lookups_folded"), |v| v.totals.dns_lookups_folded),
    stop(Dns("dns_lookups_evicted"), |v| v.totals.dns_lookups_evicted),
    stop(Dns("dns_queries_dropped"), |v| v.totals.dns_queries_dropped),
    stop(Dns("dns_resolv_conf_unreadable"), |v| {
        v.totals.dns_resolv_conf_unreadable
    }),
    both(
        Stop::No,
        (12, "tcpstate_metrics_max_destinations", G),
        "The bound on distinct destination label values (--metrics-max-destinations).",
        |v| v.max_dests,
    ),
    both(
        Stop::No,
        (17, "tcpstate_metrics_series_folded", C),
        "Failure series folded into destination=\"other\",unit=\"other\": the least recently updated, at the cap of 10000 series (their counts move, none is lost).",
        |v| v.series_folded,
    ),
];

/// The stop line's counters: ` key=value` each, in [`COUNTERS`]' order.
pub fn stop_fields(v: &Values) -> String {
    let mut out = String::with_capacity(1024);
    for c in COUNTERS {
        let n = (c.value)(v);
        let _ = match c.stop {
            Stop::No => Ok(()),
            Dns(_) if !v.totals.dns => Ok(()),
            Key(k) | Dns(k) => write!(out, " {k}={n}"),
            Open(k) => write!(out, " ({k} {n}"),
            Close(k) => write!(out, " {k} {n})"),
        };
    }
    out
}

/// The unlabelled /metrics families, in their order there.
pub fn metrics() -> Vec<(Metric, Read)> {
    let mut m: Vec<_> = COUNTERS
        .iter()
        .filter_map(|c| c.metric.map(|m| (m, c.value)))
        .collect();
    m.sort_by_key(|(m, _)| m.rank);
    m
}

/// One alert sink's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sink {
    pub name: &'static str,
    /// Alerts delivered (syslog: lines written).
    pub delivered: u64,
    /// Alerts its queue could not take.
    pub queue_drops: u64,
    /// Alerts given up: not written, rejected, retries exhausted or not
    /// sent before exit.
    pub lost: u64,
    pub retries: u64,
}

pub fn sinks(s: &Stats) -> [Sink; 4] {
    [
        Sink {
            name: "syslog",
            delivered: s.syslog_lines.get(),
            queue_drops: s.syslog_queue_drops.get(),
            lost: s.syslog_lost.get(),
            retries: 0,
        },
        Sink {
            name: "slack",
            delivered: s.slack_alerts.get(),
            queue_drops: s.slack_queue_drops.get(),
            lost: s.slack_lost_alerts.get(),
            retries: s.slack_retries.get(),
        },
        Sink {
            name: "alertmanager",
            delivered: s.am_alerts.get(),
            queue_drops: s.am_queue_drops.get(),
            lost: s.am_lost_alerts.get(),
            retries: s.am_retries.get(),
        },
        // Log records, not alerts: every failure and slow attempt.
        Sink {
            name: "otlp",
            delivered: s.otlp_records.get(),
            queue_drops: s.otlp_queue_drops.get(),
            lost: s.otlp_lost_records.get(),
            retries: s.otlp_retries.get(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_each_place_once_and_keys_are_unique() {
        let m = metrics();
        for (i, (m, _)) in m.iter().enumerate() {
            assert_eq!(m.rank as usize, i, "{}", m.name);
        }
        let mut keys: Vec<_> = COUNTERS
            .iter()
            .filter_map(|c| match c.stop {
                Stop::No => None,
                Key(k) | Dns(k) | Open(k) | Close(k) => Some(k),
            })
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}

//! The lines tcpstate says about itself: `--check`'s verdict, the start
//! line (what it attached to, how connect errors are seen, what it
//! watches, where alerts go) and the stop line's counters.

use crate::cli::Cli;
use crate::metrics::counters::{self, Values};
use crate::metrics::stats::Stats;
use crate::metrics::Totals;
use crate::pipeline::engine::{self, EngineStats};
use crate::tracer::Tracer;

use super::config::syslog_target;

fn watching(cli: &Cli) -> String {
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "all".to_string()
        } else {
            v.join(",")
        }
    };
    format!(
        "destinations {} ports {}",
        list(cli.dest.iter().map(|p| p.to_string()).collect()),
        list(cli.port.iter().map(|p| p.to_string()).collect()),
    )
}

fn alerting(cli: &Cli) -> String {
    let mut sinks = Vec::new();
    if let Some(t) = syslog_target(cli) {
        sinks.push(t.to_string());
    }
    if let Some(u) = &cli.webhook {
        sinks.push(format!("slack {}", u.redacted()));
    }
    for u in &cli.alertmanager {
        sinks.push(format!("alertmanager {}", u.redacted()));
    }
    if sinks.is_empty() {
        return match cli.metrics_addr {
            Some(a) => format!("alerts off; metrics at http://{a}/metrics"),
            None => "alerts off".into(),
        };
    }
    let metrics = match cli.metrics_addr {
        Some(a) => format!("; metrics at http://{a}/metrics"),
        None => String::new(),
    };
    format!(
        "alerts to {} (window {}, resolve after {}){metrics}",
        sinks.join(", "),
        humantime::format_duration(cli.alert_window),
        humantime::format_duration(cli.resolve_after)
    )
}

pub(super) fn check_line(cli: &Cli, tracer: &Tracer<'_>) -> String {
    format!(
        "tcpstate {}: ok: kernel {}, BTF from {}, tp_btf/inet_sock_set_state loaded and attached; \
         {}; ring buffer {} KiB, {}; detached",
        env!("CARGO_PKG_VERSION"),
        tracer.info.kernel,
        tracer.info.btf_source,
        tracer.info.features.describe(),
        cli.ring_buffer_size / 1024,
        watching(cli)
    )
}

pub(super) fn started_line(cli: &Cli, tracer: &Tracer<'_>, seeded: usize) -> String {
    format!(
        "started (version {}): attached to sock:inet_sock_set_state on kernel {} (BTF {}; {}); \
         {seeded} attempts in flight at start; watching {}; {}{}",
        env!("CARGO_PKG_VERSION"),
        tracer.info.kernel,
        tracer.info.btf_source,
        tracer.info.features.describe(),
        watching(cli),
        alerting(cli),
        tracer.info.handover.describe()
    )
}

/// What the kernel side counted of DNS (its per-CPU counters).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KernelDns {
    /// Answers not sent: the ring was half full.
    pub(super) skipped: u64,
    /// DNS over TCP the trampolines could not read: counted with what
    /// user space found cut (`dns_tcp_cut`).
    pub(super) tcp_unread: u64,
}

/// The loop's totals, as the stop line and /metrics show them: made here
/// for both. Without DNS its counters are 0 (and `dns` false).
pub(super) fn totals(
    e: &EngineStats,
    ring_drops: u64,
    dns: Option<engine::DnsStats>,
    kernel: KernelDns,
) -> Totals {
    let c = e.correlate;
    let d = dns.unwrap_or_default();
    Totals {
        events: e.events,
        attempts: c.attempts,
        successes: c.successes,
        failures: c.failures,
        recovered: e.verdicts.recovered.iter().sum(),
        verdicts_early: e.verdicts.early,
        verdicts_successes_dropped: e.verdicts.successes_dropped,
        verdicts_answers_dropped: e.verdicts.answers_dropped,
        verdicts_pending: e.held as u64,
        slow: e.slow,
        evicted_age: c.evicted_age,
        evicted_full: c.evicted_full,
        replaced: c.replaced,
        unmatched: c.unmatched,
        at_start: c.at_start,
        broken: e.open.broken,
        broken_unmatched: e.open.unmatched,
        established_forgotten: e.open.evicted,
        pending: e.pending as u64,
        bad_records: e.bad_records,
        names_refused: e.names_refused,
        ring_drops,
        alerts: e.policy.firsts,
        summaries: e.policy.summaries,
        folded: e.policy.folded,
        fired: e.resolve.fired,
        resolved: e.resolve.resolved,
        untracked: e.resolve.untracked,
        dns: dns.is_some(),
        dns_answers: d.answers,
        dns_ignored: d.ignored,
        dns_malformed: d.malformed,
        dns_bad_names: d.bad_names,
        dns_partial: d.partial,
        dns_addrs_dropped: d.addrs_dropped,
        dns_skipped: kernel.skipped,
        dns_learned: d.memory.learned,
        dns_names: d.memory.entries as u64,
        dns_bytes: d.memory.bytes as u64,
        dns_expired: d.memory.expired,
        dns_evicted: d.memory.evicted,
        dns_untrusted: d.untrusted,
        dns_unmatched: d.unmatched,
        dns_tcp_messages: d.tcp_messages,
        dns_tcp_cut: d.tcp_cut + kernel.tcp_unread,
        dns_truncated: d.truncated,
        dns_lookups_failed: d.lookups.failed,
        dns_lookups_recovered: d.lookups.recovered,
        dns_lookups_undecided: d.lookups.undecided,
        dns_lookups_folded: d.lookups.folded,
        dns_lookups_evicted: d.lookups.evicted,
        dns_queries_dropped: d.lookups.queries_dropped,
        dns_resolv_conf_unreadable: d.resolv_conf_unreadable,
    }
}

/// `stopped: <why>` and every counter of [`counters::COUNTERS`] that has
/// a stop-line key.
pub(super) fn stop_line(
    why: &str,
    e: &EngineStats,
    ring_drops: u64,
    s: &Stats,
    dns: Option<(engine::DnsStats, KernelDns)>,
) -> String {
    let t = totals(
        e,
        ring_drops,
        dns.map(|d| d.0),
        dns.map(|d| d.1).unwrap_or_default(),
    );
    let v = Values {
        totals: &t,
        stats: s,
        max_dests: 0,
        series_folded: 0,
    };
    format!("stopped: {why}{}", counters::stop_fields(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::PolicyStats;
    use crate::alert::resolve::ResolveStats;
    use crate::dns::memory::MemoryStats;
    use crate::pipeline::correlate::Counters;
    use crate::pipeline::verdict::VerdictStats;

    /// Every counter a different value, so a swap shows.
    fn engine() -> EngineStats {
        EngineStats {
            events: 1,
            bad_records: 2,
            correlate: Counters {
                attempts: 3,
                successes: 4,
                failures: 5,
                evicted_age: 6,
                evicted_full: 7,
                replaced: 8,
                unmatched: 9,
                at_start: 10,
            },
            policy: PolicyStats {
                firsts: 11,
                summaries: 12,
                summarised: 13,
                folded: 14,
            },
            pending: 15,
            slow: 16,
            names_refused: 17,
            resolve: ResolveStats {
                fired: 18,
                reposts: 19,
                resolved: 20,
                untracked: 21,
            },
            verdicts: VerdictStats {
                failed: 22,
                recovered: [23, 24, 25, 26],
                early: 27,
                successes_dropped: 28,
                answers_dropped: 34,
                exhausted: 30,
            },
            held: 29,
            open: crate::pipeline::established::OpenCounters {
                broken: 31,
                unmatched: 32,
                evicted: 33,
            },
        }
    }

    fn stats() -> Stats {
        let s = Stats::default();
        for (i, c) in [
            &s.stdout_dropped,
            &s.syslog_lines,
            &s.syslog_lost,
            &s.syslog_queue_drops,
            &s.slack_queue_drops,
            &s.slack_messages,
            &s.slack_alerts,
            &s.slack_retries,
            &s.slack_rate_limited,
            &s.slack_folded,
            &s.slack_lost_alerts,
            &s.slack_lost_failures,
            &s.am_posts,
            &s.am_alerts,
            &s.am_retries,
            &s.am_queue_drops,
            &s.am_lost_alerts,
            &s.otlp_records,
            &s.otlp_retries,
            &s.otlp_queue_drops,
            &s.otlp_lost_records,
            &s.otlp_metric_posts,
            &s.otlp_metric_failed,
        ]
        .into_iter()
        .enumerate()
        {
            c.add(100 + i as u64);
        }
        s
    }

    fn dns() -> engine::DnsStats {
        engine::DnsStats {
            answers: 201,
            ignored: 202,
            malformed: 203,
            bad_names: 204,
            partial: 205,
            addrs_dropped: 206,
            untrusted: 213,
            unmatched: 214,
            tcp_messages: 215,
            tcp_cut: 216,
            truncated: 217,
            memory: MemoryStats {
                entries: 207,
                bytes: 208,
                learned: 209,
                evicted: 210,
                expired: 211,
            },
            lookups: crate::dns::lookup::Stats {
                lookups: 300,
                failed: 301,
                recovered: 302,
                undecided: 303,
                folded: 304,
                evicted: 305,
                queries_dropped: 306,
                unmatched: 307,
            },
            resolv_conf_unreadable: 308,
        }
    }

    /// The stop line for `stats()` and `engine()`, without DNS.
    const PINNED: &str = "stopped: signal=SIGTERM events=1 attempts=3 successes=4 failures=5 \
             recovered=98 verdicts_early=27 verdicts_successes_dropped=28 verdicts_answers_dropped=34 verdicts_pending=29 \
             slow=16 evicted=13 (age 6 full 7) replaced=8 broken=31 broken_unmatched=32 established_forgotten=33 unmatched=9 at_start=10 \
             pending=15 bad_records=2 names_refused=17 ringbuf_drops=99 \
             stdout_dropped=100 alerts=11 summaries=12 folded=14 \
             alert_queue_drops=441 syslog_lines=101 syslog_lost=102 \
             slack_messages=105 slack_alerts=106 slack_retries=107 \
             slack_rate_limited=108 slack_folded=109 slack_lost_alerts=110 \
             slack_lost_failures=111 fired=18 resolved=20 am_posts=112 \
             am_alerts=113 am_retries=114 am_queue_drops=115 am_lost_alerts=116 \
             otlp_records=117 otlp_retries=118 otlp_queue_drops=119 otlp_lost=120 \
             otlp_metric_posts=121 otlp_metric_failed=122";

    #[test]
    fn the_stop_line_is_pinned() {
        let line = stop_line("signal=SIGTERM", &engine(), 99, &stats(), None);
        assert_eq!(line, PINNED);
    }

    #[test]
    fn the_stop_line_with_dns_is_pinned() {
        let line = stop_line(
            "signal=SIGTERM",
            &engine(),
            99,
            &stats(),
            Some((
                dns(),
                KernelDns {
                    skipped: 212,
                    tcp_unread: 4,
                },
            )),
        );
        assert_eq!(
            line,
            format!(
                "{PINNED} dns_answers=201 dns_ignored=202 dns_malformed=203 dns_bad_names=204 \
                 dns_partial=205 dns_addrs_dropped=206 dns_skipped=212 dns_learned=209 \
                 dns_names=207 dns_bytes=208 dns_expired=211 dns_evicted=210 \
                 dns_untrusted=213 dns_unmatched=214 dns_tcp_messages=215 dns_tcp_cut=220 \
                 dns_truncated=217 dns_lookups_failed=301 \
                 dns_lookups_recovered=302 dns_lookups_undecided=303 dns_lookups_folded=304 \
                 dns_lookups_evicted=305 dns_queries_dropped=306 dns_resolv_conf_unreadable=308"
            )
        );
    }
}

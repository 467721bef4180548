//! The lines tcpstate says about itself: `--check`'s verdict, the start
//! line (what it attached to, how connect errors are seen, what it
//! watches, where alerts go) and the stop line's counters.

use crate::cli::Cli;
use crate::metrics::stats::Stats;
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
         {seeded} attempts in flight at start; watching {}; {}",
        env!("CARGO_PKG_VERSION"),
        tracer.info.kernel,
        tracer.info.btf_source,
        tracer.info.features.describe(),
        watching(cli),
        alerting(cli)
    )
}

pub(super) fn stop_line(
    why: &str,
    e: &EngineStats,
    ring_drops: u64,
    s: &Stats,
    dns: Option<(engine::DnsStats, u64)>,
) -> String {
    let c = e.correlate;
    let dns = match dns {
        Some((d, skipped)) => format!(
            " dns_answers={} dns_ignored={} dns_malformed={} dns_bad_names={} dns_partial={} \
             dns_addrs_dropped={} dns_skipped={skipped} dns_learned={} dns_names={} dns_bytes={} \
             dns_expired={} dns_evicted={}",
            d.answers,
            d.ignored,
            d.malformed,
            d.bad_names,
            d.partial,
            d.addrs_dropped,
            d.memory.learned,
            d.memory.entries,
            d.memory.bytes,
            d.memory.expired,
            d.memory.evicted,
        ),
        None => String::new(),
    };
    format!(
        "stopped: {why} events={} attempts={} successes={} failures={} slow={} evicted={} \
         (age {} full {}) replaced={} unmatched={} at_start={} pending={} bad_records={} names_refused={} ringbuf_drops={} \
         stdout_dropped={} alerts={} summaries={} folded={} alert_queue_drops={} syslog_lines={} syslog_lost={} \
         slack_messages={} slack_alerts={} slack_retries={} slack_rate_limited={} \
         slack_folded={} slack_lost_alerts={} slack_lost_failures={} \
         fired={} resolved={} am_posts={} am_alerts={} am_retries={} am_queue_drops={} \
         am_lost_alerts={}{dns}",
        e.events,
        c.attempts,
        c.successes,
        c.failures,
        e.slow,
        c.evicted_age + c.evicted_full,
        c.evicted_age,
        c.evicted_full,
        c.replaced,
        c.unmatched,
        c.at_start,
        e.pending,
        e.bad_records,
        e.names_refused,
        ring_drops,
        s.stdout_dropped.get(),
        e.policy.firsts,
        e.policy.summaries,
        e.policy.folded,
        s.syslog_queue_drops.get() + s.slack_queue_drops.get(),
        s.syslog_lines.get(),
        s.syslog_lost.get(),
        s.slack_messages.get(),
        s.slack_alerts.get(),
        s.slack_retries.get(),
        s.slack_rate_limited.get(),
        s.slack_folded.get(),
        s.slack_lost_alerts.get(),
        s.slack_lost_failures.get(),
        e.resolve.fired,
        e.resolve.resolved,
        s.am_posts.get(),
        s.am_alerts.get(),
        s.am_retries.get(),
        s.am_queue_drops.get(),
        s.am_lost_alerts.get(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::PolicyStats;
    use crate::alert::resolve::ResolveStats;
    use crate::dns::memory::MemoryStats;
    use crate::pipeline::correlate::Counters;

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
            memory: MemoryStats {
                entries: 207,
                bytes: 208,
                learned: 209,
                evicted: 210,
                expired: 211,
            },
        }
    }

    #[test]
    fn the_stop_line_is_pinned() {
        let s = stats();
        let line = stop_line("signal=SIGTERM", &engine(), 99, &s, None);
        assert_eq!(
            line,
            "stopped: signal=SIGTERM events=1 attempts=3 successes=4 failures=5 \
             slow=16 evicted=13 (age 6 full 7) replaced=8 unmatched=9 at_start=10 \
             pending=15 bad_records=2 names_refused=17 ringbuf_drops=99 \
             stdout_dropped=100 alerts=11 summaries=12 folded=14 \
             alert_queue_drops=207 syslog_lines=101 syslog_lost=102 \
             slack_messages=105 slack_alerts=106 slack_retries=107 \
             slack_rate_limited=108 slack_folded=109 slack_lost_alerts=110 \
             slack_lost_failures=111 fired=18 resolved=20 am_posts=112 \
             am_alerts=113 am_retries=114 am_queue_drops=115 am_lost_alerts=116"
        );
    }

    #[test]
    fn the_stop_line_with_dns_is_pinned() {
        let s = stats();
        let line = stop_line("signal=SIGTERM", &engine(), 99, &s, Some((dns(), 212)));
        assert_eq!(
            line,
            "stopped: signal=SIGTERM events=1 attempts=3 successes=4 failures=5 \
             slow=16 evicted=13 (age 6 full 7) replaced=8 unmatched=9 at_start=10 \
             pending=15 bad_records=2 names_refused=17 ringbuf_drops=99 \
             stdout_dropped=100 alerts=11 summaries=12 folded=14 \
             alert_queue_drops=207 syslog_lines=101 syslog_lost=102 \
             slack_messages=105 slack_alerts=106 slack_retries=107 \
             slack_rate_limited=108 slack_folded=109 slack_lost_alerts=110 \
             slack_lost_failures=111 fired=18 resolved=20 am_posts=112 \
             am_alerts=113 am_retries=114 am_queue_drops=115 am_lost_alerts=116 \
             dns_answers=201 dns_ignored=202 dns_malformed=203 dns_bad_names=204 \
             dns_partial=205 dns_addrs_dropped=206 dns_skipped=212 dns_learned=209 \
             dns_names=207 dns_bytes=208 dns_expired=211 dns_evicted=210"
        );
    }
}

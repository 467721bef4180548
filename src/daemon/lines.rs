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

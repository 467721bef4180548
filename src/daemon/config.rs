//! The command line turned into each part's configuration: the BPF
//! filters, the sinks, the alert windows, the DNS memory's bounds.

use std::sync::Arc;
use std::time::Duration;

use crate::alert::resolve;
use crate::cli::Cli;
use crate::metrics::Shared;
use crate::pipeline::engine;
use crate::sinks::{self, alertmanager, otlp, slack, syslog};
use crate::tracer;

/// Destinations with an open alert window; beyond this they share one.
pub(super) const MAX_ALERT_DESTS: usize = 4096;
/// The address→name memory's bounds: 65,536 entries and 16 MiB, whichever
/// comes first (see docs/dns.md).
const DNS_MAX_NAMES: usize = 65_536;
const DNS_MAX_BYTES: usize = 16 << 20;
/// How long past its TTL a name still labels its address: connections
/// outlive TTLs, and applications cache answers past them.
pub(super) const DNS_GRACE: Duration = Duration::from_secs(600);

pub(super) fn dns_config(tcp: bool) -> engine::DnsConfig {
    use std::os::unix::fs::MetadataExt;
    engine::DnsConfig {
        memory: crate::dns::memory::Config {
            max_entries: DNS_MAX_NAMES,
            max_bytes: DNS_MAX_BYTES,
            grace_ns: DNS_GRACE.as_nanos() as u64,
        },
        // The host's network namespace is init's (tcpstate itself may run
        // in another one).
        host_netns: std::fs::metadata("/proc/1/ns/net")
            .ok()
            .and_then(|m| u32::try_from(m.ino()).ok()),
        own_pid: std::process::id(),
        tcp,
    }
}

pub(super) fn resolve_config(cli: &Cli, fleet: bool) -> resolve::Config {
    resolve::Config {
        window_ns: cli.alert_window.as_nanos() as u64,
        resolve_after_ns: cli.resolve_after.as_nanos() as u64,
        max_dests: MAX_ALERT_DESTS,
        fleet,
    }
}

pub(super) fn bpf_config(cli: &Cli) -> tracer::Config {
    tracer::Config {
        dests: crate::tracer::filter::prefixes(&cli.dest),
        follow_names: !crate::tracer::filter::names(&cli.dest).is_empty(),
        connect_errors: cli.connect_errors,
        dns_names: cli.dns_names,
        ports: cli.port.clone(),
        trace_all: cli.verbose,
        btf: cli.btf.clone(),
        ring_bytes: cli.ring_buffer_size,
        // While records come, wake the busy loop only as the unread bytes
        // cross half the ring; its 10 ms timer drains the rest. A wake-up
        // per event costs the connecting process more than everything else
        // tcpstate does. At a quarter, a 2-thread refused storm (33 MB/s of
        // records) crossed it every 8 ms, before the timer: 400 wake-ups in
        // 2 s instead of 241, and 0.178 s of CPU per million failures
        // instead of 0.151. At that rate the other half gives the woken
        // loop 16 ms before records are dropped (and counted).
        wakeup_bytes: u64::from(cli.ring_buffer_size / 2),
    }
}

/// Where syslog lines go: the socket given, else the journal where
/// journald runs, else /dev/log.
pub(super) fn syslog_target(cli: &Cli) -> Option<syslog::Target> {
    if cli.no_syslog {
        return None;
    }
    Some(match &cli.syslog_socket {
        Some(p) => syslog::Target::Socket(p.clone()),
        None if crate::sinks::journal::journald_present() => syslog::Target::Journal,
        None => syslog::Target::Socket("/dev/log".into()),
    })
}

/// `shared`: the loop's snapshot of the counts, made whenever /metrics
/// or OTLP want it.
pub(super) fn sinks_config(cli: &Cli, shared: Option<&Arc<Shared>>) -> sinks::Config {
    sinks::Config {
        syslog: syslog_target(cli),
        slack: cli
            .webhook
            .clone()
            .map(|u| slack::Config::new(u, host_name())),
        alertmanager: cli
            .alertmanager
            .iter()
            .map(|u| alertmanager::Config::new(u.clone(), host_name()))
            .collect(),
        slack_degraded: cli.slack_degraded,
        otlp: cli
            .otlp
            .clone()
            .zip(shared)
            .map(|(u, s)| otlp::Config::new(u, host_name(), cli.otlp_interval, s.clone())),
    }
}

pub(super) fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

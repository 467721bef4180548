//! `GET /metrics` in the Prometheus text format (0.0.4), served by hyper
//! on the daemon's own tokio runtime. Each connection is a task of its
//! own with a deadline for its headers and one for its whole life, and
//! there are at most [`MAX_CONNS`] at once: a scraper that stalls, reads
//! slowly or never sends a request holds a task and a socket for a few
//! seconds, never the event loop. When all are taken, a new connection
//! whose whole request has come already (a real scraper sends it at once)
//! closes the one idle the longest, never one being answered; another
//! closes one only if it has been idle for [`MIN_IDLE`]. Slow connections
//! that trickle a header cannot keep a scraper out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::counters::{self, Kind, Metric, Values};
use super::{Shared, Snapshot, Totals, BUCKETS_NS};
use crate::alert::policy::Dest;
use crate::event::Reason;
use crate::metrics::stats::Stats;
use crate::output::text::Endpoint;

/// Most scrapers connected at once; more are closed at once.
pub const MAX_CONNS: usize = 16;
/// From accepting a connection to its request's last header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a connection may live, whatever it does.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection without a request for this long may be closed for a new
/// one when all are taken: a real scraper sends its request at once.
pub const MIN_IDLE: Duration = Duration::from_secs(1);
/// How long a scrape waits for the loop's fresh copy before it encodes
/// the last one (the loop drains every 10 ms).
const FRESH_WITHIN: Duration = Duration::from_millis(500);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Seconds the kernel holds a connection that has sent nothing before
/// handing it to accept() (TCP_DEFER_ACCEPT): a scraper's request is then
/// in the socket when it is accepted (see `asked`), and silent connections
/// take no slot meanwhile.
const DEFER_ACCEPT_SECS: nix::libc::c_int = 2;

/// Binds `addr` (so a busy port fails at start, exit 2 by the caller) and
/// serves until the runtime ends.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::AsRawFd;
    let l = TcpListener::bind(addr).await?;
    let secs = DEFER_ACCEPT_SECS;
    // SAFETY: setsockopt on the listener's open fd with a c_int it reads
    // for the duration of the call.
    let rc = unsafe {
        nix::libc::setsockopt(
            l.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_DEFER_ACCEPT,
            std::ptr::addr_of!(secs).cast(),
            std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(l)
}

pub fn spawn(listener: TcpListener, shared: Arc<Shared>, stats: Arc<Stats>) -> JoinHandle<()> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Fleet {
        shared: shared.clone(),
        stats,
    }));
    let registry = Arc::new(registry);
    tokio::spawn(async move {
        let mut slots: Vec<Slot> = Vec::with_capacity(MAX_CONNS);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                // EMFILE and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            slots.retain(|s| !s.task.is_finished());
            let idle: Vec<_> = slots.iter().map(Slot::idle).collect();
            match room(&idle, MAX_CONNS, asked(&stream)) {
                Room::Free => {}
                Room::Close(i) => slots.swap_remove(i).task.abort(),
                Room::Full => {
                    drop(stream); // every slot is answering or just came
                    continue;
                }
            }
            slots.push(serve(stream, registry.clone(), shared.clone()));
        }
    })
}

/// A connection being served: since when, whether a request of it is being
/// answered, and when its last answer ended (ms after `since`).
struct Slot {
    since: Instant,
    busy: Arc<AtomicBool>,
    idle_from_ms: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Slot {
    /// How long it has had no request; None while one is answered.
    fn idle(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) {
            return None;
        }
        let from = Duration::from_millis(self.idle_from_ms.load(Ordering::Acquire));
        Some(self.since.elapsed().saturating_sub(from))
    }
}

/// Serves one connection in a task of its own, with its deadlines.
fn serve(stream: tokio::net::TcpStream, registry: Arc<Registry>, shared: Arc<Shared>) -> Slot {
    let since = Instant::now();
    let busy = Arc::new(AtomicBool::new(false));
    let idle_from_ms = Arc::new(AtomicU64::new(0));
    let (b, idle) = (busy.clone(), idle_from_ms.clone());
    let task = tokio::spawn(async move {
        let service = service_fn(move |req| {
            let (registry, shared, b, idle) =
                (registry.clone(), shared.clone(), b.clone(), idle.clone());
            async move {
                b.store(true, Ordering::Release);
                let r = scrape(req, registry, shared).await;
                idle.store(since.elapsed().as_millis() as u64, Ordering::Release);
                b.store(false, Ordering::Release);
                r
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(CONN_TIMEOUT, conn).await;
    });
    Slot {
        since,
        busy,
        idle_from_ms,
        task,
    }
}

/// Whether a connection's request has come whole (its headers' end is in
/// the socket already); looked at without taking it.
fn asked(stream: &tokio::net::TcpStream) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 2048];
    recv(
        stream.as_raw_fd(),
        &mut buf,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    )
    .is_ok_and(|n| buf[..n].windows(4).any(|w| w == b"\r\n\r\n"))
}

/// What a new connection does, given how long each served one has been
/// idle (None: answering) and whether its own request has come whole.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    Free,
    /// Close this one, idle the longest, for the new one.
    Close(usize),
    /// Refuse the new one: every slot is answering or came just now.
    Full,
}

fn room(idle: &[Option<Duration>], max: usize, asked: bool) -> Room {
    if idle.len() < max {
        return Room::Free;
    }
    let min = if asked { Duration::ZERO } else { MIN_IDLE };
    idle.iter()
        .enumerate()
        .filter_map(|(i, d)| d.filter(|d| *d >= min).map(|d| (i, d)))
        .max_by_key(|(_, d)| *d)
        .map_or(Room::Full, |(i, _)| Room::Close(i))
}

async fn scrape(
    req: Request<Incoming>,
    registry: Arc<Registry>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |code: StatusCode, ct: &str, body: String| {
        Response::builder()
            .status(code)
            .header("Content-Type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "tcpstate: metrics are at /metrics\n".into(),
        ));
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        ));
    }
    // Ask the loop for a fresh copy; it makes one after its next drain.
    let fresh = shared.published.notified();
    tokio::pin!(fresh);
    fresh.as_mut().enable();
    shared.want();
    let _ = tokio::time::timeout(FRESH_WITHIN, fresh).await;
    let mut body = String::with_capacity(64 * 1024);
    if prometheus_client::encoding::prometheus_text::encode(&mut body, &registry).is_err() {
        return Ok(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "encoding failed\n".into(),
        ));
    }
    Ok(reply(StatusCode::OK, CONTENT_TYPE, body))
}

/// Everything the server exposes, built from the snapshot and the sinks'
/// counters at each scrape.
#[derive(Debug)]
struct Fleet {
    shared: Arc<Shared>,
    stats: Arc<Stats>,
}

impl Collector for Fleet {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = match self.shared.snapshot.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        failures(&mut e, &s)?;
        durations(&mut e, &s)?;
        slow(&mut e, &s)?;
        broken(&mut e, &s)?;
        // Only where DNS records are read: else there is nothing to count.
        if s.totals.dns {
            labelled(
                &mut e,
                "tcpstate_resolve_failures",
                "DNS lookups that failed, once per lookup (search list walked, A and AAAA, every server), by reason.",
                "reason",
                crate::dns::outcome::Reason::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .zip(s.resolve),
            )?;
        }
        let v = Values {
            totals: &s.totals,
            stats: &self.stats,
            max_dests: s.max_dests as u64,
            series_folded: s.series_folded,
        };
        for (m, value) in counters::metrics() {
            scalar(&mut e, &m, value(&v))?;
        }
        alerts(&mut e, &s.totals)?;
        sinks(&mut e, &self.stats)?;
        build_info(&mut e)
    }
}

/// One family of [`counters::COUNTERS`].
fn scalar(e: &mut DescriptorEncoder, m: &Metric, v: u64) -> std::fmt::Result {
    match m.kind {
        Kind::Counter => {
            let c = ConstCounter::new(v);
            c.encode(e.encode_descriptor(m.name, m.help, None, c.metric_type())?)
        }
        Kind::Gauge => {
            let g = ConstGauge::new(v as i64);
            g.encode(e.encode_descriptor(m.name, m.help, None, g.metric_type())?)
        }
    }
}

fn destination(d: Option<Dest>) -> String {
    match d {
        Some(d) => Endpoint(d.addr, Some(d.port)).to_string(),
        None => "other".to_string(),
    }
}

fn failures(e: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        "tcpstate_connect_failures",
        "Failed outbound TCP connection attempts, by reason, outcome (recovered: the application fell back to another path that worked; failed: nothing did), destination (ip:port, or other beyond --metrics-max-destinations) and unit.",
        None,
        MetricType::Counter,
    )?;
    for (k, n) in &s.failures {
        let dest = destination(k.dest);
        let unit = s.units.get(k.unit.0 as usize).map_or("", String::as_str);
        let labels = [
            ("reason", Reason::ALL[k.reason as usize].name()),
            ("outcome", if k.recovered { "recovered" } else { "failed" }),
            ("destination", dest.as_str()),
            ("unit", unit),
        ];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn durations(e: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        "tcpstate_connect_failure_duration_seconds",
        "Time from SYN_SENT to the failure, by reason.",
        None,
        MetricType::Histogram,
    )?;
    for (i, h) in s.durations.iter().enumerate() {
        // Per-bucket counts: the encoder accumulates them.
        let mut buckets = Vec::with_capacity(BUCKETS_NS.len() + 1);
        for (b, n) in BUCKETS_NS.iter().zip(h.buckets) {
            buckets.push((*b as f64 / 1e9, n));
        }
        buckets.push((f64::INFINITY, h.buckets[BUCKETS_NS.len()]));
        let labels = [("reason", Reason::ALL[i].name())];
        m.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum_ns as f64 / 1e9,
                h.count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}

fn broken(e: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        "tcpstate_connections_broken",
        "Connections this host opened that broke after they were established (connection_broken), by reason: reset (an RST), timeout (retransmissions, TCP_USER_TIMEOUT or keepalive gave up), or the ICMP-made errno's.",
        None,
        MetricType::Counter,
    )?;
    for (r, n) in Reason::ALL.iter().zip(s.broken) {
        if n > 0 {
            ConstCounter::new(n).encode(m.encode_family(&[("reason", r.name())])?)?;
        }
    }
    Ok(())
}

fn slow(e: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        "tcpstate_connect_slow",
        "Connection attempts still in SYN_SENT past the slow threshold, by destination.",
        None,
        MetricType::Counter,
    )?;
    for (d, n) in &s.slow {
        let dest = destination(*d);
        ConstCounter::new(*n).encode(m.encode_family(&[("destination", dest.as_str())])?)?;
    }
    Ok(())
}

/// A counter family with one label.
fn labelled<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        ConstCounter::new(v).encode(m.encode_family(&[(label, l)])?)?;
    }
    Ok(())
}

fn alerts(e: &mut DescriptorEncoder, t: &Totals) -> std::fmt::Result {
    labelled(
        e,
        "tcpstate_alerts",
        "Alert decisions: first failures, window summaries, destinations fired and resolved, failures untracked (too many destinations firing).",
        "kind",
        [
            ("first", t.alerts),
            ("summary", t.summaries),
            ("firing", t.fired),
            ("resolved", t.resolved),
            ("untracked", t.untracked),
        ],
    )
}

fn sinks(e: &mut DescriptorEncoder, st: &Stats) -> std::fmt::Result {
    let sinks = counters::sinks(st);
    labelled(
        e,
        "tcpstate_alerts_delivered",
        "Alerts delivered, per sink (syslog: lines written; otlp: log records).",
        "sink",
        sinks.map(|s| (s.name, s.delivered)),
    )?;
    labelled(
        e,
        "tcpstate_alerts_dropped",
        "Alerts lost, per sink: queue full, given up after retries, or not sent before exit.",
        "sink",
        sinks.map(|s| (s.name, s.queue_drops + s.lost)),
    )?;
    labelled(
        e,
        "tcpstate_alert_retries",
        "Deliveries retried after an error, per sink.",
        "sink",
        sinks.map(|s| (s.name, s.retries)),
    )
}

fn build_info(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let g = ConstGauge::new(1i64);
    let mut m = e.encode_descriptor(
        "tcpstate_build_info",
        "tcpstate's version.",
        None,
        g.metric_type(),
    )?;
    g.encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Failure, Family, Reason};
    use crate::metrics::{Metrics, Totals, UnitId};

    fn failure(addr: &str, port: u16, reason: Reason) -> Failure {
        Failure {
            family: Family::Ipv6,
            saddr: "2001:db8::9".parse().unwrap(),
            duration_ns: 2_000_000,
            ..Failure::sample(addr, port, reason)
        }
    }

    #[test]
    fn the_text_format_has_every_family_and_bounded_destinations() {
        let mut m = Metrics::new(1);
        let unit = m.unit("db.service");
        m.failure(&failure("2001:db8::1", 443, Reason::Refused), unit, false);
        m.failure(&failure("2001:db8::1", 443, Reason::Refused), unit, false);
        m.failure(&failure("192.0.2.7", 80, Reason::Timeout), UnitId(0), false);
        m.slow("192.0.2.7".parse().unwrap(), 80);
        let shared = Shared::new();
        shared.want();
        shared.publish_if_wanted(&m, || Totals {
            attempts: 4,
            ring_drops: 3,
            ..Totals::default()
        });
        let stats = Arc::new(Stats::default());
        stats.am_alerts.add(5);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fleet { shared, stats }));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for want in [
            "# TYPE tcpstate_connect_failures_total counter",
            "tcpstate_connect_failures_total{reason=\"refused\",outcome=\"failed\",destination=\"[2001:db8::1]:443\",unit=\"db.service\"} 2",
            "tcpstate_connect_failures_total{reason=\"timeout\",outcome=\"failed\",destination=\"other\",unit=\"\"} 1",
            "# TYPE tcpstate_connect_failure_duration_seconds histogram",
            "tcpstate_connect_failure_duration_seconds_bucket{reason=\"refused\",le=\"0.001\"} 0",
            "tcpstate_connect_failure_duration_seconds_bucket{reason=\"refused\",le=\"0.005\"} 2",
            "tcpstate_connect_failure_duration_seconds_bucket{reason=\"refused\",le=\"+Inf\"} 2",
            "tcpstate_connect_failure_duration_seconds_count{reason=\"refused\"} 2",
            "tcpstate_connect_slow_total{destination=\"other\"} 1",
            "tcpstate_connect_attempts_total 4",
            "tcpstate_ringbuf_lost_events_total 3",
            "tcpstate_alerts_delivered_total{sink=\"alertmanager\"} 5",
            "tcpstate_build_info{version=\"",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        assert_eq!(text.matches("le=\"+Inf\"").count(), Reason::ALL.len());
    }

    /// The whole body for fixed values, every scalar a different one.
    #[test]
    fn a_full_server_closes_the_longest_idle_never_one_answering() {
        let s = |ms: u64| Some(Duration::from_millis(ms));
        assert_eq!(room(&[s(5000), None], 3, false), Room::Free);
        let full = [s(1500), None, s(4000), s(2000)];
        assert_eq!(room(&full, 4, false), Room::Close(2));
        assert_eq!(room(&[None, s(999), None], 3, false), Room::Full);
        // A whole request takes the place of one idle for any time.
        assert_eq!(room(&[None, s(5), s(999)], 3, true), Room::Close(2));
        assert_eq!(room(&[None, None], 2, true), Room::Full);
    }

    #[test]
    fn the_body_is_pinned() {
        let mut m = Metrics::new(1);
        let unit = m.unit("db.service");
        m.failure(&failure("2001:db8::1", 443, Reason::Refused), unit, false);
        m.failure(&failure("192.0.2.7", 80, Reason::Timeout), UnitId(0), false);
        m.slow("2001:db8::1".parse().unwrap(), 443);
        let shared = Shared::new();
        shared.want();
        shared.publish_if_wanted(&m, || Totals {
            events: 1,
            attempts: 2,
            successes: 3,
            failures: 4,
            evicted_age: 2,
            evicted_full: 3,
            unmatched: 6,
            ring_drops: 7,
            pending: 8,
            alerts: 9,
            summaries: 10,
            fired: 11,
            resolved: 12,
            untracked: 13,
            dns_answers: 14,
            dns_names: 15,
            dns_evicted: 16,
            dns_skipped: 17,
            recovered: 18,
            verdicts_early: 19,
            verdicts_successes_dropped: 20,
            verdicts_pending: 21,
            ..Totals::default()
        });
        let stats = Arc::new(Stats::default());
        for (i, c) in [
            &stats.stdout_dropped,
            &stats.syslog_lines,
            &stats.syslog_lost,
            &stats.syslog_queue_drops,
            &stats.slack_queue_drops,
            &stats.slack_messages,
            &stats.slack_alerts,
            &stats.slack_retries,
            &stats.slack_rate_limited,
            &stats.slack_folded,
            &stats.slack_lost_alerts,
            &stats.slack_lost_failures,
            &stats.am_posts,
            &stats.am_alerts,
            &stats.am_retries,
            &stats.am_queue_drops,
            &stats.am_lost_alerts,
        ]
        .into_iter()
        .enumerate()
        {
            c.add(100 + i as u64);
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fleet { shared, stats }));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        let text = text.replace(env!("CARGO_PKG_VERSION"), "VERSION");
        assert_eq!(
            series_sorted(&text),
            series_sorted(include_str!("testdata/body.txt"))
        );
    }

    /// The body with each family's series in a fixed order: families and
    /// their HELP lines keep theirs, but a labelled family's series come
    /// from a hash map, in no order a scraper may rely on.
    fn series_sorted(body: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut series: Vec<&str> = Vec::new();
        for l in body.lines() {
            if l.starts_with('#') {
                series.sort_unstable();
                out.extend(series.drain(..).map(String::from));
                out.push(l.to_string());
            } else {
                series.push(l);
            }
        }
        series.sort_unstable();
        out.extend(series.into_iter().map(String::from));
        out
    }
}

//! What the OTLP sink sends, built as OpenTelemetry's own protobuf types
//! (`opentelemetry-proto`): each notice (`event::notice`) a log record
//! whose attributes follow the semantic conventions, and the counters of
//! /metrics as OTLP metrics, under the same names and labels so one
//! dashboard reads either. Pure: the caller passes the times and how a
//! uid is named.

use std::fmt::Display;
use std::net::IpAddr;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::alert::types::Dest;
use crate::dns::Dname;
use crate::event::notice::{Notice, What};
use crate::event::{Attribution, Caller, Failure, Family, Reason};
use crate::metrics::counters::{self, Kind, Values};
use crate::metrics::stats::Stats;
use crate::metrics::{Snapshot, BUCKETS_NS};
use crate::output::text::{DegradedLine, Endpoint, Escaped, FailureLine, SlowLine};

/// The most bytes of one string attribute (after escaping): a cgroup path
/// can be long, and a collector may refuse a huge record.
pub const MAX_VALUE: usize = 1024;

/// The collector's base URL (`http://collector:4318`); records go to
/// `/v1/logs` under it, metrics to `/v1/metrics`, as OTLP/HTTP says.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpUrl {
    base: url::Url,
}

impl std::fmt::Debug for OtlpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl OtlpUrl {
    /// Checks an `http(s)://host[:port][/path]` URL. Errors never repeat it
    /// (a path may hold a token).
    pub fn parse(s: &str) -> Result<Self, String> {
        let base = url::Url::parse(s.trim())
            .map_err(|e| format!("not a valid URL ({e}); expected http://collector:4318"))?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err("unsupported scheme; expected http:// or https://".into());
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("credentials in the URL are not supported".into());
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err("the URL has a query or fragment; give the collector's base URL".into());
        }
        Ok(OtlpUrl { base })
    }

    fn signal(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }

    pub fn logs(&self) -> String {
        self.signal("v1/logs")
    }

    pub fn metrics(&self) -> String {
        self.signal("v1/metrics")
    }

    pub fn redacted(&self) -> String {
        super::webhook::redacted(&self.base)
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute from something whose Display is already safe
/// (escaped, or made by tcpstate), cut at [`MAX_VALUE`] bytes.
fn text(key: &str, v: impl Display) -> KeyValue {
    let mut s = v.to_string();
    if s.len() > MAX_VALUE {
        // Escaped text is ASCII: any byte is a boundary.
        s.truncate(MAX_VALUE);
    }
    kv(key, any_value::Value::StringValue(s))
}

fn int(key: &str, v: impl Into<i64>) -> KeyValue {
    kv(key, any_value::Value::IntValue(v.into()))
}

/// `service.name`, `service.version`, `host.name`.
pub fn resource(host: &str) -> Resource {
    Resource {
        attributes: vec![
            text("service.name", "tcpstate"),
            text("service.version", env!("CARGO_PKG_VERSION")),
            text("host.name", Escaped(host)),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "tcpstate".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The times of one record: the event's (wall clock) and now.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub event_ns: u64,
    pub observed_ns: u64,
}

/// The destination and the local end: `server.*` (the name the caller
/// resolved, where known) and `network.*`.
fn peer(out: &mut Vec<KeyValue>, family: Family, daddr: IpAddr, dport: u16, dname: Option<&Dname>) {
    match dname {
        Some(n) => out.push(text("server.address", n)),
        None => out.push(text("server.address", daddr)),
    }
    out.push(int("server.port", dport));
    out.push(text("network.peer.address", daddr));
    out.push(int("network.peer.port", dport));
    out.push(text("network.transport", "tcp"));
    out.push(text("network.type", family.name()));
}

/// `process.*`, and the thread under `tcpstate.*`. `owner` names a uid.
fn caller(
    out: &mut Vec<KeyValue>,
    c: Option<&Caller>,
    owner: &mut dyn FnMut(u32) -> Option<String>,
) {
    let Some(c) = c else { return };
    out.push(int("process.pid", c.pid));
    out.push(text("process.executable.name", c.process));
    if let Some(name) = owner(c.uid) {
        out.push(text("process.owner", Escaped(&name)));
    }
    out.push(int("tcpstate.uid", c.uid));
    out.push(int("tcpstate.tid", c.tid));
    out.push(text("tcpstate.comm", c.comm));
}

/// `container.*`, `k8s.*`, and the unit and cgroup under `tcpstate.*`.
fn attribution(out: &mut Vec<KeyValue>, a: Option<&Attribution>) {
    let Some(a) = a else { return };
    let fields = [
        ("container.id", &a.container),
        ("container.name", &a.container_name),
        ("k8s.pod.uid", &a.pod),
        ("k8s.pod.name", &a.pod_name),
        ("k8s.namespace.name", &a.pod_namespace),
        ("tcpstate.unit", &a.unit),
    ];
    for (key, v) in fields {
        if let Some(v) = v {
            out.push(text(key, Escaped(v)));
        }
    }
    out.push(text("tcpstate.cgroup", Escaped(&a.path)));
}

/// A failure's attributes: the peer, the local end, the error and the caller.
fn failure(a: &mut Vec<KeyValue>, f: &Failure, owner: &mut dyn FnMut(u32) -> Option<String>) {
    peer(a, f.family, f.daddr, f.dport, f.dname.as_ref());
    a.push(text("network.local.address", f.saddr));
    if let Some(p) = f.sport {
        a.push(int("network.local.port", p));
    }
    a.push(text("error.type", f.reason.name()));
    caller(a, f.caller.as_ref(), owner);
    if matches!(f.reason, Reason::Error | Reason::Denied) {
        a.push(int("tcpstate.errno", f.errno));
    }
    if let Some(by) = f.timeout_by {
        a.push(text("tcpstate.timeout_by", by.name()));
    }
    a.push(text("tcpstate.stage", f.stage.name()));
    a.push(text("tcpstate.seen", f.seen.name()));
    if let Some(ns) = f.duration() {
        a.push(int("tcpstate.duration_ms", (ns / 1_000_000) as i64));
    }
    a.push(int("tcpstate.retransmits", f.retransmits));
    if let Some(t) = f.rst_ttl {
        a.push(int("tcpstate.rst_ttl", t));
    }
}

/// One notice as a log record: its event name (`tcpstate.<event>`, the
/// JSON output's `event`), severity, a body (the text output's line) and
/// attributes.
pub fn record(n: &Notice, t: Times, owner: &mut dyn FnMut(u32) -> Option<String>) -> LogRecord {
    let mut a = Vec::with_capacity(32);
    let (event, severity, body) = match &n.what {
        What::Failed(f) => {
            failure(&mut a, f, owner);
            a.push(text("tcpstate.outcome", "failed"));
            (
                "connect_failed",
                SeverityNumber::Warn,
                FailureLine(f).to_string(),
            )
        }
        What::Degraded(f, fb) => {
            failure(&mut a, f, owner);
            a.push(text("tcpstate.outcome", "recovered"));
            a.push(text("tcpstate.rule", fb.rule.name()));
            a.push(text("tcpstate.fallback.address", fb.daddr));
            a.push(int("tcpstate.fallback.port", fb.dport));
            (
                "path_degraded",
                SeverityNumber::Info,
                DegradedLine(f, fb).to_string(),
            )
        }
        What::Broken(f) => {
            failure(&mut a, f, owner);
            if let Some(b) = f.stage.broken() {
                a.push(text("tcpstate.state", b.state.name()));
                a.push(int("tcpstate.bytes_acked", b.bytes_acked as i64));
                a.push(int("tcpstate.bytes_received", b.bytes_received as i64));
            }
            (
                "connection_broken",
                SeverityNumber::Warn,
                FailureLine(f).to_string(),
            )
        }
        What::Slow(s) => {
            peer(&mut a, s.family, s.daddr, s.dport, s.dname.as_ref());
            a.push(text("network.local.address", s.saddr));
            caller(&mut a, s.caller.as_ref(), owner);
            a.push(text("tcpstate.seen", s.seen.name()));
            a.push(int(
                "tcpstate.elapsed_ms",
                (s.elapsed_ns / 1_000_000) as i64,
            ));
            a.push(int("tcpstate.retransmits", s.retransmits));
            (
                "connect_slow",
                SeverityNumber::Info,
                SlowLine(s).to_string(),
            )
        }
        What::ResolveFailed(f) => {
            // The DNS semantic conventions' names where they have one.
            a.push(text(
                "dns.question.name",
                crate::output::dns::Shown(&f.name),
            ));
            a.push(text("error.type", f.reason.as_str()));
            a.push(text(
                "tcpstate.dns.qtype",
                crate::output::dns::qtype_name(f.qtype),
            ));
            if let Some(r) = f.rcode {
                a.push(int("tcpstate.dns.rcode", r));
            }
            if let Some(s) = f.server {
                a.push(text("server.address", s.addr));
                a.push(int("server.port", s.port));
            }
            a.push(text(
                "tcpstate.dns.lookup",
                crate::output::dns::lookup_kind(f),
            ));
            a.push(int("tcpstate.dns.queries", f.queries));
            caller(&mut a, Some(&crate::output::dns::caller(&f.who)), owner);
            (
                "resolve_failed",
                SeverityNumber::Warn,
                crate::output::dns::FailedLine(f, n.attribution.as_ref()).to_string(),
            )
        }
    };
    attribution(&mut a, n.attribution.as_ref());
    a.push(text("tcpstate.event", event));
    LogRecord {
        time_unix_nano: t.event_ns,
        observed_time_unix_nano: t.observed_ns,
        severity_number: severity as i32,
        severity_text: severity
            .as_str_name()
            .trim_start_matches("SEVERITY_NUMBER_")
            .into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes: a,
        event_name: format!("tcpstate.{event}"),
        ..Default::default()
    }
}

pub fn logs_request(resource: Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The time span of every cumulative point: since tcpstate started.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start_ns: u64,
    pub now_ns: u64,
}

fn point(span: Span, attrs: Vec<KeyValue>, v: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: span.start_ns,
        time_unix_nano: span.now_ns,
        value: Some(number_data_point::Value::AsInt(v as i64)),
        ..Default::default()
    }
}

fn metric(name: &str, help: &str, kind: Kind, points: Vec<NumberDataPoint>) -> Metric {
    let data = match kind {
        Kind::Counter => metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        Kind::Gauge => metric::Data::Gauge(Gauge {
            data_points: points,
        }),
    };
    Metric {
        name: name.into(),
        description: help.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn destination(d: Option<Dest>) -> String {
    d.map_or_else(
        || "other".into(),
        |d| Endpoint(d.addr, Some(d.port)).to_string(),
    )
}

/// The labelled families: failures by reason, destination and unit;
/// slow attempts by destination; their durations by reason.
fn labelled(s: &Snapshot, span: Span, out: &mut Vec<Metric>) {
    let failures = s
        .failures
        .iter()
        .map(|(k, n)| {
            let unit = s.units.get(k.unit.0 as usize).map_or("", String::as_str);
            let attrs = vec![
                text("reason", Reason::ALL[k.reason as usize].name()),
                text("outcome", if k.recovered { "recovered" } else { "failed" }),
                text("destination", destination(k.dest)),
                text("unit", Escaped(unit)),
            ];
            point(span, attrs, *n)
        })
        .collect();
    out.push(metric(
        "tcpstate_connect_failures",
        "Failed outbound TCP connection attempts, by reason, destination and unit.",
        Kind::Counter,
        failures,
    ));
    let slow = s
        .slow
        .iter()
        .map(|(d, n)| point(span, vec![text("destination", destination(*d))], *n))
        .collect();
    out.push(metric(
        "tcpstate_connect_slow",
        "Connection attempts still in SYN_SENT past the slow threshold, by destination.",
        Kind::Counter,
        slow,
    ));
    let broken = Reason::ALL
        .iter()
        .zip(s.broken)
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| point(span, vec![text("reason", r.name())], n))
        .collect();
    out.push(metric(
        "tcpstate_connections_broken",
        "Connections this host opened that broke after they were established, by reason.",
        Kind::Counter,
        broken,
    ));
    let durations = s
        .durations
        .iter()
        .enumerate()
        .map(|(i, h)| HistogramDataPoint {
            attributes: vec![text("reason", Reason::ALL[i].name())],
            start_time_unix_nano: span.start_ns,
            time_unix_nano: span.now_ns,
            count: h.count,
            sum: Some(h.sum_ns as f64 / 1e9),
            // Per bucket, the overflow last: as OTLP counts them.
            bucket_counts: h.buckets.to_vec(),
            explicit_bounds: BUCKETS_NS.iter().map(|b| *b as f64 / 1e9).collect(),
            ..Default::default()
        })
        .collect();
    out.push(Metric {
        name: "tcpstate_connect_failure_duration_seconds".into(),
        description: "Time from SYN_SENT to the failure, by reason.".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: durations,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    });
}

/// Every family /metrics shows, from the loop's last snapshot and the
/// sinks' counters.
pub fn metrics_request(
    resource: Resource,
    s: &Snapshot,
    stats: &Stats,
    span: Span,
) -> ExportMetricsServiceRequest {
    let mut out = Vec::with_capacity(32);
    labelled(s, span, &mut out);
    let v = Values {
        totals: &s.totals,
        stats,
        max_dests: s.max_dests as u64,
        series_folded: s.series_folded,
    };
    for (m, value) in counters::metrics() {
        out.push(metric(
            m.name,
            m.help,
            m.kind,
            vec![point(span, vec![], value(&v))],
        ));
    }
    let sinks = counters::sinks(stats);
    let per_sink = |f: fn(&counters::Sink) -> u64| {
        sinks
            .iter()
            .map(|s| point(span, vec![text("sink", s.name)], f(s)))
            .collect()
    };
    out.push(metric(
        "tcpstate_alerts_delivered",
        "Alerts delivered, per sink (syslog: lines written; otlp: log records).",
        Kind::Counter,
        per_sink(|s| s.delivered),
    ));
    out.push(metric(
        "tcpstate_alerts_dropped",
        "Alerts lost, per sink: queue full, given up after retries, or not sent before exit.",
        Kind::Counter,
        per_sink(|s| s.queue_drops + s.lost),
    ));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Comm, Failure};

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    #[test]
    fn a_failed_lookup_is_a_resolve_failed_record_with_its_name_escaped() {
        use crate::dns::lookup::{Failed, Server, Who};
        let f = Failed {
            name: b"api\n.example".to_vec(),
            per_query: false,
            reason: crate::dns::outcome::Reason::ServFail,
            qtype: 28,
            server: Some(Server {
                addr: "10.0.0.2".parse().unwrap(),
                port: 53,
            }),
            rcode: Some(2),
            who: Who {
                pid: 9,
                uid: 0,
                cgroup_id: 1,
                comm: Comm::new(b"java"),
            },
            ts_ns: 1,
            queries: 2,
        };
        let n = Notice {
            what: What::ResolveFailed(Box::new(f)),
            attribution: None,
        };
        let t = Times {
            event_ns: 5,
            observed_ns: 6,
        };
        let r = record(&n, t, &mut |_| None);
        assert_eq!(r.event_name, "tcpstate.resolve_failed");
        assert_eq!(attr(&r, "dns.question.name"), Some(&s("api\\x0a.example")));
        assert_eq!(attr(&r, "error.type"), Some(&s("servfail")));
        assert_eq!(attr(&r, "tcpstate.dns.qtype"), Some(&s("AAAA")));
        assert_eq!(attr(&r, "server.address"), Some(&s("10.0.0.2")));
        assert_eq!(attr(&r, "tcpstate.comm"), Some(&s("java")));
    }

    #[test]
    fn a_failure_carries_the_semantic_conventions_escaped() {
        let mut f = Failure::sample("198.18.0.2", 8080, Reason::Refused);
        let mut c = Caller::sample(42, b"curl");
        c.process = Comm::new(b"bad\nname");
        f.caller = Some(c);
        let n = Notice {
            what: What::Failed(f),
            attribution: Some(Attribution {
                path: "/kubepods/pod1/abc".into(),
                container: Some("abc".into()),
                container_name: Some("web client".into()),
                pod_name: Some("p".repeat(5000)),
                pod_namespace: Some("default".into()),
                ..Default::default()
            }),
        };
        let t = Times {
            event_ns: 5,
            observed_ns: 6,
        };
        let r = record(&n, t, &mut |uid| (uid == 0).then(|| "root".into()));
        assert_eq!(r.event_name, "tcpstate.connect_failed");
        assert_eq!(r.severity_text, "WARN");
        assert_eq!(r.time_unix_nano, 5);
        assert_eq!(attr(&r, "server.address"), Some(&s("198.18.0.2")));
        assert_eq!(
            attr(&r, "server.port"),
            Some(&any_value::Value::IntValue(8080))
        );
        assert_eq!(attr(&r, "network.type"), Some(&s("ipv4")));
        assert_eq!(attr(&r, "network.transport"), Some(&s("tcp")));
        assert_eq!(attr(&r, "error.type"), Some(&s("refused")));
        assert_eq!(
            attr(&r, "process.pid"),
            Some(&any_value::Value::IntValue(42))
        );
        assert_eq!(
            attr(&r, "process.executable.name"),
            Some(&s("bad\\x0aname"))
        );
        assert_eq!(attr(&r, "process.owner"), Some(&s("root")));
        assert_eq!(attr(&r, "container.name"), Some(&s("web\\x20client")));
        let Some(any_value::Value::StringValue(pod)) = attr(&r, "k8s.pod.name") else {
            panic!("no pod name")
        };
        assert_eq!(pod.len(), MAX_VALUE);
        assert_eq!(attr(&r, "tcpstate.rst_ttl"), None);
    }

    #[test]
    fn a_refusal_carries_its_rsts_ttl() {
        let f = Failure {
            rst_ttl: Some(63),
            ..Failure::sample("198.18.0.2", 8080, Reason::Refused)
        };
        let n = Notice {
            what: What::Failed(f),
            attribution: None,
        };
        let t = Times {
            event_ns: 5,
            observed_ns: 6,
        };
        let r = record(&n, t, &mut |_| None);
        assert_eq!(
            attr(&r, "tcpstate.rst_ttl"),
            Some(&any_value::Value::IntValue(63))
        );
    }

    #[test]
    fn the_endpoint_gets_the_signal_paths_and_is_never_repeated() {
        let u = OtlpUrl::parse("http://collector:4318/").unwrap();
        assert_eq!(u.logs(), "http://collector:4318/v1/logs");
        assert_eq!(u.metrics(), "http://collector:4318/v1/metrics");
        let u = OtlpUrl::parse("https://otel.example/secret-token").unwrap();
        assert_eq!(u.logs(), "https://otel.example/secret-token/v1/logs");
        assert_eq!(u.redacted(), "https://otel.example/***");
        for bad in ["ftp://x", "http://u:p@x", "http://x/?a=1", "nope"] {
            let e = OtlpUrl::parse(bad).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }
}

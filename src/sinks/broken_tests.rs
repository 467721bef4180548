//! A connection that breaks after it was established, from the kernel's
//! records through the engine to what each sink says: its own event name,
//! wording and alert name everywhere, and its own counter.

use crate::alert::resolve::{self, Resolver};
use crate::alert::wording::SyslogLine;
use crate::event::notice::What as NoticeWhat;
use crate::event::skel::RawEvent;
use crate::metrics::{Metrics, Snapshot};
use crate::output::clock::Clock;
use crate::output::{Format, Printer};
use crate::pipeline::engine::{Config, Engine, NoAttribution, Out};

const MS: u64 = 1_000_000;

fn raw(kind: u8, ts_ns: u64, old: u8, new: u8, err: u32) -> RawEvent {
    RawEvent {
        skaddr: 0xffff_8881_0000_0040,
        ts_ns,
        pid: 4242,
        tid: 4242,
        cgroup_id: 1,
        sk_err: err,
        family: 2,
        sport: if new == 2 { 0 } else { 40000 },
        dport: 5432,
        oldstate: old,
        newstate: new,
        kind,
        saddr: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        daddr: [192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // A Broken record carries its byte counts in `comm`.
        comm: if kind == 7 {
            counts(101, 2048)
        } else {
            *b"psql\0\0\0\0\0\0\0\0\0\0\0\0"
        },
        pcomm: *b"psql\0\0\0\0\0\0\0\0\0\0\0\0",
        ..Default::default()
    }
}

fn counts(acked: u64, received: u64) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..8].copy_from_slice(&acked.to_ne_bytes());
    c[8..].copy_from_slice(&received.to_ne_bytes());
    c
}

/// Opened at 1 ms, established at 2 ms, broken by `err` 3.2 s later.
fn broke(format: Format, err: u32) -> (Engine, Out) {
    broke_by(format, err, 0)
}

/// The same, the break's record carrying `rst_ttl` (0: none seen).
fn broke_by(format: Format, err: u32, rst_ttl: u8) -> (Engine, Out) {
    let mut e = Engine::new(
        Config {
            printer: Printer::new(format, Clock::new(1_795_521_599 * 1_000_000_000)),
            verbose: false,
            max_pending: 16,
            max_pending_age_ns: 10_000 * MS,
            alert_window_ns: Some(60_000 * MS),
            max_alert_dests: 16,
            alert_share: 16,
            slow_after_ns: None,
            recovery_window_ns: 0,
        },
        Box::new(NoAttribution),
    );
    e.set_resolver(Resolver::new(resolve::Config {
        window_ns: 60_000 * MS,
        resolve_after_ns: 300_000 * MS,
        max_dests: 10,
        fleet: true,
    }));
    e.set_metrics(Metrics::new(10));
    e.set_notices();
    let mut out = Out::default();
    e.event(&raw(0, MS, 7, 2, 0), MS, &mut out);
    e.event(&raw(0, 2 * MS, 2, 1, 0), 2 * MS, &mut out);
    let r = RawEvent {
        rst_ttl,
        ..raw(7, 3202 * MS, 1, 7, err)
    };
    e.event(&r, 3202 * MS, &mut out);
    (e, out)
}

#[test]
fn a_reset_reads_as_a_broken_connection_on_every_sink() {
    let (e, out) = broke(Format::Text, 104);
    let line = String::from_utf8(out.lines.clone()).unwrap();
    assert!(
        line.starts_with(
            "TCP connection broken: 192.0.2.7:5432 reset by peer after 3.2 s reason=reset \
             state=ESTABLISHED pid=4242 comm=psql uid=0 saddr=192.0.2.1 sport=40000 \
             bytes_acked=100 bytes_received=2048 at="
        ),
        "{line}"
    );
    assert_eq!(e.stats().open.broken, 1);

    // syslog and the journal.
    assert_eq!(out.alerts.len(), 1, "{:?}", out.alerts);
    let a = &out.alerts[0];
    assert!(SyslogLine(a)
        .to_string()
        .starts_with("TCP connection broken: 192.0.2.7:5432 reset by peer after 3.2 s"));
    let fields = super::journal::fields_of(a);
    assert!(fields
        .fields()
        .contains(&("TCPSTATE_EVENT", "connection_broken")));

    // Slack: its own headline.
    let slack = super::slack_msg::render("web-1", &out.alerts, Default::default());
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with("TCP connection broken on web-1: 192.0.2.7:5432 reset"),
        "{text}"
    );

    // Alertmanager: its own alert name, never TCPConnectFailures.
    assert_eq!(out.fleet.len(), 1, "{:?}", out.fleet);
    let am = super::alertmanager::render("web-1", "page", &out.fleet);
    assert_eq!(am[0]["labels"]["alertname"], "TCPConnectionBroken", "{am}");
    assert_eq!(am[0]["labels"]["reason"], "reset", "{am}");
    let summary = am[0]["annotations"]["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        "TCP connections from web-1 to 192.0.2.7:5432 break: 1 connection broken (reset×1)"
    );

    // OTLP: its own event name.
    assert_eq!(out.notices.len(), 1);
    assert!(matches!(out.notices[0].what, NoticeWhat::Broken(_)));
    let r = super::otlp_msg::record(
        &out.notices[0],
        super::otlp_msg::Times {
            event_ns: 1,
            observed_ns: 2,
        },
        &mut |_| None,
    );
    assert_eq!(r.event_name, "tcpstate.connection_broken");

    // Metrics: its own counter, by reason.
    let mut s = Snapshot::default();
    e.metrics().unwrap().copy_into(&mut s);
    assert_eq!(s.broken[crate::event::Reason::Reset.index()], 1);
    assert!(s.failures.is_empty(), "not a connect failure");
}

#[test]
fn a_resets_rst_ttl_reaches_every_sink() {
    let (_, out) = broke_by(Format::Text, 104, 63);
    let line = String::from_utf8(out.lines.clone()).unwrap();
    assert!(
        line.contains(" reason=reset state=ESTABLISHED rst_ttl=63 pid=4242"),
        "{line}"
    );
    let a = &out.alerts[0];
    assert!(SyslogLine(a).to_string().contains(" rst_ttl=63 "));
    let fields = super::journal::fields_of(a);
    assert!(fields.fields().contains(&("TCPSTATE_RST_TTL", "63")));
    let slack = super::slack_msg::render("web-1", &out.alerts, Default::default());
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains(": 192.0.2.7:5432 reset (RST TTL 63) at established"),
        "{text}"
    );
    let am = super::alertmanager::render("web-1", "page", &out.fleet);
    assert_eq!(am[0]["annotations"]["rst_ttl"], "63", "{am}");
    let r = super::otlp_msg::record(
        &out.notices[0],
        super::otlp_msg::Times {
            event_ns: 1,
            observed_ns: 2,
        },
        &mut |_| None,
    );
    assert!(r.attributes.iter().any(|kv| kv.key == "tcpstate.rst_ttl"));
    let (_, out) = broke_by(Format::Json, 104, 63);
    let v: serde_json::Value = serde_json::from_slice(&out.lines).unwrap();
    assert_eq!((&v["reason"], &v["rst_ttl"]), (&"reset".into(), &63.into()));
    // None seen (this machine: no trampolines): null, and no field elsewhere.
    let (_, out) = broke_by(Format::Json, 104, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.lines).unwrap();
    assert!(v["rst_ttl"].is_null(), "{v}");
    let fields = super::journal::fields_of(&out.alerts[0]);
    assert!(!fields
        .fields()
        .iter()
        .any(|(k, _)| *k == "TCPSTATE_RST_TTL"));
}

#[test]
fn a_timeout_is_worded_as_one_and_json_names_the_event() {
    let (_, out) = broke(Format::Json, 110);
    let v: serde_json::Value = serde_json::from_slice(&out.lines).unwrap();
    assert_eq!(v["event"], "connection_broken");
    assert_eq!(v["reason"], "timeout");
    assert_eq!(v["timeout_by"], "kernel");
    assert_eq!(v["stage"], "established");
    assert_eq!(v["state"], "ESTABLISHED");
    assert_eq!(v["duration_ms"], 3200.0);
    assert_eq!(v["bytes_acked"], 100);
    assert_eq!(v["bytes_received"], 2048);
    assert_eq!(v["pid"], 4242);
    let line = SyslogLine(&out.alerts[0]).to_string();
    assert!(
        line.contains(" timed out after 3.2 s reason=timeout"),
        "{line}"
    );
}

#[test]
fn a_break_nobody_opened_here_is_counted_not_reported() {
    let (mut e, _) = broke(Format::Json, 104);
    let mut out = Out::default();
    // An accepted connection the kernel let through (listen backlog 0), or
    // one established before tcpstate started.
    let mut other = raw(7, 4000 * MS, 1, 7, 104);
    other.skaddr = 0x99;
    e.event(&other, 4000 * MS, &mut out);
    assert!(out.lines.is_empty() && out.alerts.is_empty() && out.fleet.is_empty());
    assert_eq!(e.stats().open.unmatched, 1);
}

//! OTLP end to end, as root: real failures through the real daemon to a
//! receiver that decodes OTLP/HTTP with the official protobuf definitions
//! (PyPI's opentelemetry-proto, in the venv tests/otlp-venv makes). The
//! receiver itself (tests/otlp-receiver.py) is a stand-in: no
//! OpenTelemetry collector is packaged for Debian.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const ECONNREFUSED: i32 = 111;

/// The receiver: a child Python printing each decoded request as a line.
struct Receiver {
    child: Child,
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = Command::new(root.join("tests/otlp-venv"))
            .output()
            .expect("running tests/otlp-venv");
        assert!(
            venv.status.success(),
            "tests/otlp-venv: {}",
            String::from_utf8_lossy(&venv.stderr)
        );
        let python = String::from_utf8_lossy(&venv.stdout).trim().to_string();
        let mut child = Command::new(python)
            .arg(root.join("tests/otlp-receiver.py"))
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let port = first["port"].as_u64().expect("the receiver's port") as u16;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                s.lock().unwrap().push(serde_json::from_str(&l).unwrap());
            }
        });
        Receiver { child, port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self, path: &str) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        for r in seen.iter() {
            assert!(r.get("error").is_none(), "the receiver refused: {r}");
        }
        seen.iter()
            .filter(|r| r["path"] == path)
            .map(|r| r["body"].clone())
            .collect()
    }

    /// Every log record so far, each with its resource's attributes
    /// under "resource".
    fn records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for body in self.requests("/v1/logs") {
            for rl in body["resourceLogs"].as_array().unwrap() {
                for sl in rl["scopeLogs"].as_array().unwrap() {
                    for r in sl["logRecords"].as_array().unwrap() {
                        let mut r = r.clone();
                        r["resource"] = attrs(&rl["resource"]);
                        out.push(r);
                    }
                }
            }
        }
        out
    }

    /// The last export's data points of metric `name`.
    fn metric(&self, name: &str) -> Option<Value> {
        let last = self.requests("/v1/metrics").pop()?;
        let rm = &last["resourceMetrics"][0];
        rm["scopeMetrics"][0]["metrics"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OTLP/JSON attributes as a map of key to value (ints are strings there).
fn attrs(v: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for kv in v["attributes"].as_array().into_iter().flatten() {
        let val = &kv["value"];
        let plain = val
            .get("stringValue")
            .or_else(|| val.get("intValue"))
            .cloned()
            .unwrap_or(Value::Null);
        m.insert(kv["key"].as_str().unwrap().to_string(), plain);
    }
    Value::Object(m)
}

/// The data point of a metric whose attributes include `want`.
fn point<'a>(m: &'a Value, kind: &str, want: &[(&str, &str)]) -> Option<&'a Value> {
    m[kind]["dataPoints"].as_array()?.iter().find(|p| {
        let a = attrs(p);
        want.iter().all(|(k, v)| a[*k] == *v)
    })
}

/// `GET /metrics` from the daemon, the body.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn series(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn each_failure_is_a_log_record_and_the_counters_are_metrics() {
    if !require_root("each_failure_is_a_log_record_and_the_counters_are_metrics") {
        return;
    }
    let net = Net::new(100);
    let rx = Receiver::start(0);
    let d = net.json_daemon(&["--otlp-endpoint", &rx.url(), "--otlp-interval", "1s"]);
    let to = sock(net.server_v4(), 9);
    assert_eq!(
        net.in_client("t33-otlp", move || connect_err(to)),
        ECONNREFUSED
    );
    let rec = wait("the failure's log record", Duration::from_secs(10), || {
        rx.records().into_iter().next()
    });
    let m = wait(
        "metrics counting the failure",
        Duration::from_secs(10),
        || {
            let m = rx.metric("tcpstate_connect_failures")?;
            let dest = to.to_string();
            point(&m, "sum", &[("reason", "refused"), ("destination", &dest)]).cloned()
        },
    );
    let attempts = rx.metric("tcpstate_connect_attempts").unwrap();
    let out = d.stop();
    eprintln!(
        "one decoded record:\n{}",
        serde_json::to_string_pretty(&rec).unwrap()
    );

    let line = out.one("connect_failed", to);
    let a = attrs(&rec);
    assert_eq!(rec["eventName"], "tcpstate.connect_failed", "{rec}");
    assert_eq!(rec["severityText"], "WARN");
    assert!(rec["body"]["stringValue"]
        .as_str()
        .unwrap()
        .starts_with(&format!("TCP failure detected: {to} reason=refused")));
    for (k, v) in [
        ("server.address", "198.18.100.2"),
        ("server.port", "9"),
        ("network.peer.address", "198.18.100.2"),
        ("network.peer.port", "9"),
        ("network.transport", "tcp"),
        ("network.type", "ipv4"),
        ("network.local.address", "198.18.100.1"),
        ("error.type", "refused"),
        ("process.owner", "root"),
        ("tcpstate.comm", "t33-otlp"),
        ("tcpstate.stage", "handshake"),
        ("tcpstate.seen", "live"),
        ("tcpstate.event", "connect_failed"),
    ] {
        assert_eq!(a[k], v, "{k} in {a}");
    }
    assert_eq!(a["process.pid"], std::process::id().to_string(), "{a}");
    assert_eq!(a["process.executable.name"], line["process"], "{a}");
    assert_eq!(a["network.local.port"], line["sport"].to_string(), "{a}");
    assert_eq!(a["tcpstate.cgroup"], line["cgroup"], "{a}");
    let r = &rec["resource"];
    assert_eq!(r["service.name"], "tcpstate");
    assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"));
    assert!(r["host.name"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(m["asInt"], "1", "{m}");
    assert_eq!(attempts["sum"]["isMonotonic"], true);
    assert_eq!(
        attempts["sum"]["aggregationTemporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert_eq!(out.stat("otlp_records"), 1, "{}", out.stderr);
    assert_eq!(out.stat("otlp_lost"), 0, "{}", out.stderr);
    assert_eq!(out.stat("otlp_queue_drops"), 0, "{}", out.stderr);
    assert!(out.stat("otlp_metric_posts") >= 1, "{}", out.stderr);
}

#[test]
fn a_collector_down_for_a_while_loses_only_what_is_counted() {
    if !require_root("a_collector_down_for_a_while_loses_only_what_is_counted") {
        return;
    }
    let net = Net::new(101);
    // Nobody listens yet: every POST is refused.
    let port = free_port();
    let mport = free_port();
    let d = net.json_daemon(&[
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--otlp-interval",
        "1s",
        "--metrics-addr",
        &format!("127.0.0.1:{mport}"),
    ]);
    // More than the channel and the queue hold (1024 + 1000).
    const BURST: u64 = 4000;
    let to = sock(net.server_v4(), 9);
    net.in_client("t33-burst", move || {
        for _ in 0..BURST {
            assert_eq!(connect_err(to), ECONNREFUSED);
        }
    });
    let otlp = r#"tcpstate_alert_retries_total{sink="otlp"}"#;
    // Down for a while: two retries (1.5 s at least) and a metrics export.
    wait("OTLP retrying twice", Duration::from_secs(10), || {
        (series(&scrape(mport), otlp) >= 2).then_some(())
    });
    let dropped = r#"tcpstate_alerts_dropped_total{sink="otlp"}"#;
    // Detection went on meanwhile: every failure counted, once its
    // verdict is known (within --recovery-window).
    let failures = "tcpstate_connect_failures_total{reason=\"refused\",outcome=\"failed\",destination=\"198.18.101.2:9\",unit=\"\"}";
    let body = wait("every failure counted", Duration::from_secs(5), || {
        let body = scrape(mport);
        (series(&body, failures) == BURST).then_some(body)
    });
    assert!(series(&body, dropped) > 0, "{body}");

    let rx = Receiver::start(port);
    // The burst all delivered or counted lost: the queue has room again.
    let delivered = r#"tcpstate_alerts_delivered_total{sink="otlp"}"#;
    wait("the queue to drain", Duration::from_secs(40), || {
        let body = scrape(mport);
        (series(&body, delivered) + series(&body, dropped) == BURST).then_some(())
    });
    let marker = sock(net.server_v4(), 10);
    assert_eq!(
        net.in_client("t33-marker", move || connect_err(marker)),
        ECONNREFUSED
    );
    let back = poll(
        "the record made after the collector came back",
        Duration::from_secs(10),
        || {
            rx.records()
                .into_iter()
                .find(|r| attrs(r)["network.peer.port"] == "10")
        },
    );
    let out = d.stop();
    assert!(
        back.is_some(),
        "{} records arrived; the daemon said: {}",
        rx.records().len(),
        out.stderr
    );
    let failures = out.stat("failures");
    assert_eq!(failures, BURST + 1, "{}", out.stderr);
    assert_eq!(
        out.failures().len() as u64 + out.stat("stdout_dropped"),
        failures
    );
    let (sent, lost, drops) = (
        out.stat("otlp_records"),
        out.stat("otlp_lost"),
        out.stat("otlp_queue_drops"),
    );
    eprintln!("otlp: sent {sent}, lost {lost}, queue drops {drops} of {failures}");
    assert_eq!(sent + lost + drops, failures, "{}", out.stderr);
    assert_eq!(rx.records().len() as u64, sent);
    assert!(drops > 0 && out.stat("otlp_retries") > 0, "{}", out.stderr);
    assert!(out.stat("otlp_metric_posts") > 0, "{}", out.stderr);
    let said = format!("OTLP collector http://127.0.0.1:{port}/***: ");
    assert!(out.stderr.contains(&said), "{}", out.stderr);
}

#[test]
fn a_bad_endpoint_is_one_line_and_exit_2() {
    let out = Command::new(bin())
        .args(["--otlp-endpoint", "ftp://collector/S3CRET", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--otlp-endpoint") && !err.contains("S3CRET"),
        "{err}"
    );
}

//! End to end, as root, with the real servers: two tcpstate instances,
//! each with its own host name (a UTS namespace), scraped by a real
//! Prometheus and pushing to a real Alertmanager whose webhook receiver
//! is a test HTTP server. Prometheus and Alertmanager (Debian's
//! `prometheus` and `prometheus-alertmanager`) are started here on
//! loopback ports with their own temporary directories, and stopped.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ECONNREFUSED: i32 = 111;
const ETIMEDOUT: i32 = 110;

/// The metric lines of a scrape whose name is `name` (with labels).
fn samples(body: &str, name: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// tcpstate watching `net` with /metrics on a free loopback port (and
/// per-failure lines in `format`), and that port.
fn metrics_daemon(net: &Net, format: &str) -> (Daemon, u16) {
    let mport = free_port();
    let d = Daemon::builder([
        "--format",
        format,
        "--no-syslog",
        "--metrics-addr",
        &format!("127.0.0.1:{mport}"),
    ])
    .args(net.watch_args())
    .start();
    (d, mport)
}

/// The first scrape whose failure series sum to `n`, within `within`.
fn scrape_counting(port: u16, n: f64, within: Duration) -> String {
    wait("a scrape counting every failure", within, || {
        let body = scrape(port)?;
        let sum: f64 = samples(&body, "tcpstate_connect_failures_total")
            .iter()
            .map(|s| s.1)
            .sum();
        (sum == n).then_some(body)
    })
}

fn scrape(port: u16) -> Option<String> {
    match http_get(port, "/metrics") {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Every panel of packaging/examples/grafana-dashboard.json, its Grafana
/// variables given values, returns data from this Prometheus, but the
/// degradation, broken-connection and DNS panels (nothing hangs, recovers,
/// breaks or fails to resolve in this test; the tests that do have no
/// Prometheus): those are checked to be queries Prometheus accepts.
fn dashboard_queries_return_data(prom: &Server) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/examples/grafana-dashboard.json"
    );
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        let expr = p["targets"][0]["expr"].as_str().unwrap();
        let q = expr
            .replace("$instance", ".*")
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m");
        if ["Degradation", "Broken", "DNS failures"]
            .iter()
            .any(|t| title.starts_with(t))
        {
            assert!(
                q.contains("tcpstate_connect_slow_total")
                    || q.contains("outcome=\"recovered\"")
                    || q.contains("tcpstate_connections_broken_total")
                    || q.contains("tcpstate_resolve_failures_total"),
                "{q}"
            );
            assert_eq!(prom.query_status(&q), "success", "{title}: {q}");
            continue;
        }
        let r = wait(title, Duration::from_secs(15), || {
            let r = prom.query(&q);
            (!r.is_empty()).then_some(r)
        });
        eprintln!("panel {title:?}: {q} -> {} series, first {}", r.len(), r[0]);
    }
}

#[test]
fn two_hosts_are_scraped_by_prometheus_and_alerted_once_by_alertmanager() {
    if !require_root("two_hosts_are_scraped_by_prometheus_and_alerted_once_by_alertmanager") {
        return;
    }
    let net = Net::new(60);
    let hook = FakeSlack::start();
    let am = Server::alertmanager(&format!("http://127.0.0.1:{}/hook", hook.port));
    let (m1, m2) = (free_port(), free_port());
    let prom = Server::prometheus(&[m1, m2]);
    let syslog = FakeSyslog::start();
    let slack = FakeSlack::start();
    // Credentials in the URL: Alertmanager ignores them here, and they
    // must never be shown.
    let am_url = format!("http://tcpstate:SECRETPW@127.0.0.1:{}", am.port);
    let daemon = |host: &str, mport: u16, extra: &[&str]| {
        Daemon::builder([
            "--format",
            "json",
            "--alert-window",
            "2s",
            "--resolve-after",
            "60s",
            "--metrics-addr",
            &format!("127.0.0.1:{mport}"),
            "--alertmanager-url",
            &am_url,
        ])
        .args(net.watch_args())
        .args(extra)
        .hostname(host)
        .start()
    };
    let d1 = daemon(
        "fleet-h1",
        m1,
        &[
            "--syslog-socket",
            syslog.path.to_str().unwrap(),
            "--slack-url",
            &slack.url(),
        ],
    );
    let d2 = daemon("fleet-h2", m2, &["--no-syslog"]);

    const N: usize = 5;
    let to = sock(net.server_v4(), 9);
    net.in_client("t-fleet", move || {
        for _ in 0..N {
            assert_eq!(connect_err(to), ECONNREFUSED);
        }
    });

    // (a) Prometheus: N for each instance.
    let q = format!("tcpstate_connect_failures_total{{destination=\"{to}\",reason=\"refused\"}}");
    let want = N.to_string();
    let result = wait(
        "Prometheus giving N for both instances",
        Duration::from_secs(30),
        || {
            let r = prom.query(&q);
            let done = r.len() == 2 && r.iter().all(|s| s["value"][1] == want.as_str());
            done.then_some(r)
        },
    );
    let instances: BTreeSet<String> = result
        .iter()
        .map(|s| s["metric"]["instance"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from([format!("127.0.0.1:{m1}"), format!("127.0.0.1:{m2}")])
    );
    eprintln!(
        "PromQL {q}:\n{}",
        serde_json::to_string_pretty(&result).unwrap()
    );
    dashboard_queries_return_data(&prom);
    eprintln!(
        "scrape excerpt (fleet-h1):\n{}",
        scrape(m1)
            .unwrap()
            .lines()
            .filter(|l| l.contains("connect_failures")
                || l.contains("attempts_total")
                || l.contains("build_info")
                || l.contains("ringbuf")
                || (l.contains("duration_seconds")
                    && l.contains("refused")
                    && !l.contains("le=\"1")))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // (b) Alertmanager: one firing notification naming both instances.
    let firing = wait("a firing notification", Duration::from_secs(20), || {
        let r = hook.requests();
        (!r.is_empty()).then(|| r[0].1.clone())
    });
    assert_eq!(firing["status"], "firing", "{firing:#}");
    assert_eq!(firing["groupLabels"]["destination"], to.to_string());
    let names: BTreeSet<&str> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["fleet-h1", "fleet-h2"]),
        "{firing:#}"
    );
    for a in firing["alerts"].as_array().unwrap() {
        assert_eq!(a["labels"]["alertname"], "TCPConnectFailures");
        assert_eq!(a["labels"]["reason"], "refused");
        assert_eq!(a["labels"]["severity"], "warning");
        let summary = a["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains(&format!("{N} failures")), "{summary}");
        assert!(a["annotations"]["processes"]
            .as_str()
            .unwrap()
            .contains("t-fleet["));
    }
    // Re-posts (every 2 s) are no news to Alertmanager: still one.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        hook.requests().len(),
        1,
        "one firing notification: {:#?}",
        hook.requests()
    );

    // A successful connection to it resolves it on both hosts.
    let listener = net.server_listener(to);
    net.in_client("t-fleet-ok", move || {
        TcpStream::connect(to).expect("connect to the listener");
    });
    let resolved = wait("a resolved notification", Duration::from_secs(20), || {
        let r = hook.requests();
        r.iter()
            .map(|x| x.1.clone())
            .find(|n| n["status"] == "resolved")
    });
    let names: BTreeSet<&str> = resolved["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["fleet-h1", "fleet-h2"]),
        "{resolved:#}"
    );
    // Two group intervals later: still exactly one of each.
    std::thread::sleep(Duration::from_secs(5));
    let all = hook.requests();
    let statuses: Vec<&str> = all
        .iter()
        .map(|r| r.1["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{all:#?}");
    eprintln!(
        "Alertmanager notification 1:\n{}",
        serde_json::to_string_pretty(&all[0].1).unwrap()
    );
    eprintln!(
        "Alertmanager notification 2:\n{}",
        serde_json::to_string_pretty(&all[1].1).unwrap()
    );
    listener.stop();

    // Syslog got a notice (<29>: daemon.notice) that it recovered.
    let notices = syslog.wait_for("recovered", 1, Duration::from_secs(5));
    assert_eq!(notices.len(), 1, "{:?}", syslog.lines());
    assert!(notices[0].starts_with("<29>"), "{}", notices[0]);
    assert!(
        notices[0].contains(&format!("TCP recovered: {to} ({N} failures over")),
        "{}",
        notices[0]
    );

    // Slack (h1 only) got one short "recovered" message.
    let recovered = wait("Slack's recovered message", Duration::from_secs(10), || {
        let r: Vec<String> = slack
            .requests()
            .iter()
            .map(|r| r.1["text"].as_str().unwrap_or("").to_string())
            .filter(|t| t.contains("recovered"))
            .collect();
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(
        recovered[0].starts_with(&format!("TCP recovered: {to} ({N} failures over ")),
        "{}",
        recovered[0]
    );
    assert!(
        recovered[0].ends_with("a connection succeeded) on fleet-h1"),
        "{}",
        recovered[0]
    );
    eprintln!("Slack: {}", recovered[0]);

    for d in [d1, d2] {
        let out = d.stop();
        assert_eq!(out.stat("failures"), N as u64, "{}", out.stderr);
        assert_eq!(out.stat("fired"), 1, "{}", out.stderr);
        assert_eq!(out.stat("resolved"), 1, "{}", out.stderr);
        assert!(out.stat("am_alerts") >= 2, "{}", out.stderr);
        assert_eq!(out.stat("am_lost_alerts"), 0, "{}", out.stderr);
        assert!(!out.stderr.contains("SECRETPW"), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("alertmanager http://127.0.0.1:{}", am.port)),
            "{}",
            out.stderr
        );
    }
    assert!(!format!("{:?}", syslog.lines()).contains("SECRETPW"));
}

#[test]
fn a_hanging_destination_alerts_alertmanager_and_resolves_on_success() {
    if !require_root("a_hanging_destination_alerts_alertmanager_and_resolves_on_success") {
        return;
    }
    let net = Net::new(30);
    // The server drops SYNs to port 81: attempts hang, then time out (3 s).
    net.server_nft(
        "table inet tsdoc_hang {\n  chain c {\n    type filter hook input priority 0; policy accept;\n    tcp dport 81 drop\n  }\n}\n",
    );
    let hook = FakeSlack::start();
    let am = Server::alertmanager(&format!("http://127.0.0.1:{}/hook", hook.port));
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--slow-after",
        "1s",
        "--alert-window",
        "2s",
        "--resolve-after",
        "60s",
        "--alertmanager-url",
        &format!("http://127.0.0.1:{}", am.port),
    ])
    .args(net.watch_args())
    .hostname("fleet-hang")
    .start();
    let to = sock(net.server_v4(), 81);
    assert_eq!(net.in_client("t-hang", move || connect_err(to)), ETIMEDOUT);

    let firing = wait("TCPConnectHanging firing", Duration::from_secs(20), || {
        notifications(&hook, "TCPConnectHanging").into_iter().next()
    });
    assert_eq!(firing.0, "firing", "{firing:?}");
    assert_eq!(firing.1.len(), 1, "{firing:?}");
    let a = &firing.1[0];
    assert_eq!(a["labels"]["alertname"], "TCPConnectHanging");
    assert_eq!(a["labels"]["destination"], to.to_string());
    assert_eq!(a["labels"]["instance"], "fleet-hang");
    assert_eq!(a["labels"]["severity"], "warning");
    assert!(a["labels"].get("reason").is_none(), "{a}");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        format!("TCP connections from fleet-hang to {to} hang: 1 attempt hanging"),
        "{a}"
    );
    assert_eq!(a["annotations"]["attempts"], "1", "{a}");
    assert!(
        a["annotations"]["processes"]
            .as_str()
            .unwrap()
            .starts_with("t-hang["),
        "{a}"
    );
    // The timeout that ended the attempt is the failures' alert.
    let failures = wait("TCPConnectFailures firing", Duration::from_secs(20), || {
        notifications(&hook, "TCPConnectFailures")
            .into_iter()
            .next()
    });
    assert_eq!(failures.1[0]["labels"]["reason"], "timeout", "{failures:?}");

    // The destination recovers: a connection to it succeeds.
    net.server_nft("delete table inet tsdoc_hang\n");
    let listener = net.server_listener(to);
    net.in_client("t-hang-ok", move || {
        TcpStream::connect(to).expect("connect to the listener");
    });
    let resolved = wait(
        "TCPConnectHanging resolved",
        Duration::from_secs(20),
        || {
            notifications(&hook, "TCPConnectHanging")
                .into_iter()
                .find(|n| n.0 == "resolved")
        },
    );
    let summary = resolved.1[0]["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.ends_with("recovered: 1 attempt hanging; a connection succeeded"),
        "{summary}"
    );
    eprintln!(
        "TCPConnectHanging firing: {}\nresolved: {}",
        firing.1[0], resolved.1[0]
    );
    // Two group intervals later: one of each, for each alert.
    std::thread::sleep(Duration::from_secs(5));
    for name in ["TCPConnectHanging", "TCPConnectFailures"] {
        let statuses: Vec<String> = notifications(&hook, name)
            .into_iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(statuses, ["firing", "resolved"], "{name}");
    }
    listener.stop();
    let out = d.stop();
    assert_eq!(out.stat("slow"), 1, "{}", out.stderr);
    assert_eq!(out.stat("fired"), 2, "{}", out.stderr);
    assert_eq!(out.stat("resolved"), 2, "{}", out.stderr);
    assert_eq!(out.stat("am_lost_alerts"), 0, "{}", out.stderr);
}

#[test]
fn a_degraded_path_alerts_alertmanager_at_info_and_resolves_when_it_works() {
    if !require_root("a_degraded_path_alerts_alertmanager_at_info_and_resolves_when_it_works") {
        return;
    }
    let net = Net::new(31);
    // The IPv6 path to port 82 drops SYNs; the IPv4 one works.
    net.server_nft(&format!(
        "table inet tsdoc_degr {{\n  chain c {{\n    type filter hook input priority 0; policy accept;\n    ip6 daddr {} tcp dport 82 drop\n  }}\n}}\n",
        net.server_v6()
    ));
    let (broken, working) = (sock(net.server_v6(), 82), sock(net.server_v4(), 82));
    let v4 = net.server_listener(working);
    let hook = FakeSlack::start();
    let am = Server::alertmanager(&format!("http://127.0.0.1:{}/hook", hook.port));
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--alert-window",
        "2s",
        "--resolve-after",
        "60s",
        "--alertmanager-url",
        &format!("http://127.0.0.1:{}", am.port),
    ])
    .args(net.watch_args())
    .hostname("fleet-degr")
    .start();
    // As a client walking a name's AAAA then A: the IPv6 attempt given up
    // after 300 ms, then IPv4 from the same thread, which connects.
    net.in_client("t-degr", move || {
        assert!(TcpStream::connect_timeout(&broken, Duration::from_millis(300)).is_err());
        TcpStream::connect(working).expect("the IPv4 path works");
    });
    let firing = wait("TCPPathDegraded firing", Duration::from_secs(20), || {
        notifications(&hook, "TCPPathDegraded").into_iter().next()
    });
    assert_eq!(firing.0, "firing", "{firing:?}");
    let a = &firing.1[0];
    assert_eq!(a["labels"]["destination"], broken.to_string(), "{a}");
    assert_eq!(a["labels"]["severity"], "info", "{a}");
    assert_eq!(a["labels"]["instance"], "fleet-degr", "{a}");
    assert_eq!(a["annotations"]["recovered_failures"], "1", "{a}");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains(
            "fail, but the applications fell back to another path: 1 failure recovered from"
        ),
        "{summary}"
    );
    // The path works again: a connection over it succeeds.
    net.server_nft("delete table inet tsdoc_degr\n");
    let v6 = net.server_listener(broken);
    net.in_client("t-degr-ok", move || {
        TcpStream::connect(broken).expect("the IPv6 path works again");
    });
    let resolved = wait("TCPPathDegraded resolved", Duration::from_secs(20), || {
        notifications(&hook, "TCPPathDegraded")
            .into_iter()
            .find(|n| n.0 == "resolved")
    });
    eprintln!(
        "TCPPathDegraded firing: {}\nresolved: {}",
        firing.1[0], resolved.1[0]
    );
    // Nothing paged: the request never failed.
    assert!(
        notifications(&hook, "TCPConnectFailures").is_empty(),
        "{:?}",
        hook.requests()
    );
    v4.stop();
    v6.stop();
    let out = d.stop();
    assert_eq!(out.stat("recovered"), 1, "{}", out.stderr);
    assert_eq!(out.stat("am_lost_alerts"), 0, "{}", out.stderr);
}

#[test]
fn thousands_of_destinations_stay_within_the_series_bound() {
    if !require_root("thousands_of_destinations_stay_within_the_series_bound") {
        return;
    }
    let net = Net::new(61);
    let (d, mport) = metrics_daemon(&net, "none");
    const DESTS: u16 = 3000;
    let server = net.server_v4();
    net.in_client("t-many", move || {
        for port in 1..=DESTS {
            assert_eq!(connect_err(sock(server, port)), ECONNREFUSED);
        }
    });
    let body = scrape_counting(mport, f64::from(DESTS), Duration::from_secs(20));
    let series = samples(&body, "tcpstate_connect_failures_total");
    let dests: BTreeSet<String> = series
        .iter()
        .map(|(k, _)| {
            let at = k.find("destination=\"").unwrap() + "destination=\"".len();
            k[at..].split('"').next().unwrap().to_string()
        })
        .collect();
    let other: f64 = series
        .iter()
        .filter(|(k, _)| k.contains("destination=\"other\""))
        .map(|s| s.1)
        .sum();
    eprintln!(
        "{DESTS} destinations: {} series, {} destination values, other={other}",
        series.len(),
        dests.len()
    );
    assert!(series.len() <= 1001, "{} series", series.len());
    assert_eq!(dests.len(), 1001, "1000 destinations and other");
    assert_eq!(other, f64::from(DESTS - 1000));
    assert_eq!(
        samples(&body, "tcpstate_metrics_max_destinations")[0].1,
        1000.0
    );
    let t = Instant::now();
    let again = scrape(mport).unwrap();
    eprintln!(
        "a scrape of {} bytes took {:?} (including the wait for the loop's next drain)",
        again.len(),
        t.elapsed()
    );
    let out = d.stop();
    assert_eq!(out.stat("failures"), u64::from(DESTS));
}

/// Cgroups `<root>/t30-<pid>.slice/u<i>.scope`, removed on drop.
struct Units(Vec<std::path::PathBuf>);

impl Drop for Units {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

#[test]
fn units_times_destinations_stay_within_the_series_cap() {
    if !require_root("units_times_destinations_stay_within_the_series_cap") {
        return;
    }
    const UNITS: usize = 300;
    const DESTS: usize = 300;
    let net = Net::new(110);
    let (d, mport) = metrics_daemon(&net, "none");
    let slice = cgroup_v2_root().join(format!("t30-{}.slice", std::process::id()));
    let mut units = Units(vec![slice.clone()]);
    std::fs::create_dir(&slice).unwrap();
    // Each unit's process fails to the same DESTS destinations (ports on
    // the server namespace, where nothing listens): a real python client,
    // placed in its cgroup before it enters the namespace.
    let connect = format!(
        "import socket\nfor p in range(1, {}):\n s = socket.socket()\n assert s.connect_ex(('{}', p)) == 111\n s.close()",
        DESTS + 1,
        net.server_v4()
    );
    // A few at a time: `ip netns exec` and python's start dominate.
    let mut running = Vec::new();
    for i in 0..UNITS {
        let cg = slice.join(format!("u{i}.scope"));
        std::fs::create_dir(&cg).unwrap();
        units.0.push(cg.clone());
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {} python3 -I -S -c \"$0\"",
            cg.display(),
            net.client
        );
        running.push(
            Command::new("sh")
                .args(["-c", &script, &connect])
                .spawn()
                .unwrap(),
        );
        if running.len() == 16 || i == UNITS - 1 {
            for mut c in running.drain(..) {
                assert!(c.wait().unwrap().success(), "a unit's client failed");
            }
        }
    }
    let n = (UNITS * DESTS) as f64;
    let body = scrape_counting(mport, n, Duration::from_secs(30));
    let series = samples(&body, "tcpstate_connect_failures_total").len();
    let folded = samples(&body, "tcpstate_metrics_series_folded_total")[0].1;
    eprintln!(
        "{UNITS} units × {DESTS} destinations: {series} series, {folded} folded, a scrape of {} bytes",
        body.len()
    );
    assert!(series <= 10_000, "{series} series");
    assert!(body.len() < 2 << 20, "a scrape of {} bytes", body.len());
    assert_eq!(
        series as f64 + folded - 1.0,
        n,
        "each series folded counted once"
    );
    let out = d.stop();
    assert_eq!(out.stat("failures"), (UNITS * DESTS) as u64);
}

#[test]
fn a_scraper_that_never_reads_does_not_stop_detection() {
    if !require_root("a_scraper_that_never_reads_does_not_stop_detection") {
        return;
    }
    let net = Net::new(62);
    let (d, mport) = metrics_daemon(&net, "json");
    let addr = SocketAddr::from(([127, 0, 0, 1], mport));
    // More silent connections than the server takes at once, and one that
    // asks and never reads its answer.
    let silent: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut asker = TcpStream::connect(addr).unwrap();
    asker
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    const N: usize = 50;
    let to = sock(net.server_v4(), 9);
    net.in_client("t-stall", move || {
        for _ in 0..N {
            assert_eq!(connect_err(to), ECONNREFUSED);
        }
    });
    let seen = wait(
        "every failure on stdout while scrapers stall",
        Duration::from_secs(5),
        || {
            let n = d
                .lines()
                .iter()
                .filter(|l| l.contains("connect_failed"))
                .count();
            (n == N).then_some(t0.elapsed())
        },
    );
    eprintln!("{N} failures reported {seen:?} after the stalled scrapers connected");
    // The server drops the silent ones by its header deadline...
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(12)))
        .unwrap();
    let mut buf = [0u8; 64];
    let closed_after = Instant::now();
    let n = first.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes a connection that sends nothing");
    eprintln!(
        "silent scraper closed after {:?}",
        closed_after.elapsed() + seen
    );
    // ... and then answers a real scraper, with every failure counted.
    let body = wait("a scrape after the stall", Duration::from_secs(15), || {
        let b = scrape(mport)?;
        let sum: f64 = samples(&b, "tcpstate_connect_failures_total")
            .iter()
            .map(|s| s.1)
            .sum();
        (sum == N as f64).then_some(b)
    });
    assert!(body.contains("tcpstate_build_info{version=\""));
    drop(silent);
    drop(asker);
    let out = d.stop();
    assert_eq!(out.failures().len(), N);
}

/// Slow connections to `addr`, as a slowloris tool makes them: each sends
/// a request line, then one header byte every 2 s, and is made again when
/// the server closes it; until `stop`.
fn slow_flood(
    addr: SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let open = || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\n").ok()?;
            Some(s)
        };
        let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| open()).collect();
        let mut made = n as u64;
        while !stop.load(Ordering::Relaxed) {
            for c in conns.iter_mut() {
                if c.as_mut().is_none_or(|s| s.write_all(b"x").is_err()) {
                    *c = open();
                    made += 1;
                }
            }
            for _ in 0..20 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        made
    })
}

#[test]
fn scrapes_are_answered_under_a_slow_connection_flood() {
    if !require_root("scrapes_are_answered_under_a_slow_connection_flood") {
        return;
    }
    let net = Net::new(111);
    let (d, mport) = metrics_daemon(&net, "json");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = slow_flood(SocketAddr::from(([127, 0, 0, 1], mport)), 400, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let to = sock(net.server_v4(), 9);
    let mut answered = 0;
    let t0 = Instant::now();
    for _ in 0..20 {
        net.in_client("t-flood", move || {
            assert_eq!(connect_err(to), ECONNREFUSED);
        });
        // A real scraper's client: curl sends its request in one write.
        let t = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "-f", "--max-time", "5", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{mport}/metrics"))
            .output()
            .unwrap();
        match out.status.success() {
            true => answered += 1,
            false => eprintln!(
                "a scrape failed after {:?}: {}",
                t.elapsed(),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = flood.join().unwrap();
    eprintln!(
        "{answered} of 20 scrapes answered in {took:?} under 400 slow connections ({made} made)"
    );
    assert_eq!(answered, 20);
    let out = d.stop();
    assert_eq!(out.failures().len(), 20, "detection went on");
}

#[test]
fn a_bad_alertmanager_url_exits_2_without_showing_it() {
    let out = Command::new(bin())
        .args([
            "--alertmanager-url",
            "ftp://tcpstate:SECRETPW@am.example:9093",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid Alertmanager URL #1"), "{err}");
    assert!(!err.contains("SECRETPW"), "{err}");
}

#[test]
fn a_busy_metrics_port_exits_2() {
    if !require_root("a_busy_metrics_port_exits_2") {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(bin())
        .args(["--no-syslog", "--format", "none", "--metrics-addr", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot serve metrics on --metrics-addr/$TCPSTATE_METRICS_ADDR {addr}"
        )),
        "{err}"
    );
}

/// The shipped example's Slack template (`key`: title or text) of
/// `receiver`, as YAML folds its `>-` block: lines joined by spaces.
fn example_template(receiver: &str, key: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/examples/alertmanager.yml"
    );
    let yml = std::fs::read_to_string(path).unwrap();
    let from = yml.find(&format!("- name: {receiver}\n")).unwrap();
    let rest = &yml[from..];
    let at = rest.find(&format!("{key}: >-\n")).unwrap();
    let mut lines = rest[at..].lines().skip(1);
    let first = lines.next().unwrap();
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines.take_while(|l| l.len() - l.trim_start().len() >= indent))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `template` rendered by amtool over a notification as Alertmanager's
/// webhook sent it (the same data its Slack receiver renders).
fn amtool_render(template: &str, data: &Value) -> String {
    let dir = TempDir::new("t29-amtool");
    std::fs::write(dir.path().join("empty.tmpl"), "").unwrap();
    std::fs::write(dir.path().join("data.json"), data.to_string()).unwrap();
    let out = Command::new("amtool")
        .args(["template", "render"])
        .arg(format!("--template.glob={}/*.tmpl", dir.path().display()))
        .arg(format!("--template.text={template}"))
        .arg(format!(
            "--template.data={}/data.json",
            dir.path().display()
        ))
        .output()
        .expect("amtool (prometheus-alertmanager) installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Issue 29, finding 6: a DNS name and a process name with Slack markup
/// (`<!channel>`, `<http://x|y>`, `&`) reach the real Alertmanager as
/// text, and the shipped example template renders them as text.
#[test]
fn slack_markup_reaches_alertmanager_and_its_template_as_text() {
    if !require_root("slack_markup_reaches_alertmanager_and_its_template_as_text") {
        return;
    }
    let net = Net::new(31);
    let hook = FakeSlack::start();
    let am = Server::alertmanager(&format!("http://127.0.0.1:{}/hook", hook.port));
    // A DNS server that answers any name with its own address.
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dns-hostile/hostile.py");
    let server = net.server_v4().to_string();
    let mut dns = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.server,
            "/usr/bin/python3",
            py,
            "serve",
        ])
        .args([&server, "swap", "x=0.0.0.0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    dns.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--dns-names",
        "on",
        "--alertmanager-url",
        &format!("http://127.0.0.1:{}", am.port),
    ])
    .args(net.watch_args())
    .hostname("fleet-markup")
    .start();
    let name = "<!channel>&<http://evil.example|click>.echo.t";
    let asked = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.client,
            "/usr/bin/python3",
            py,
            "ask",
            &server,
            name,
            "1",
        ])
        .status()
        .unwrap();
    assert!(asked.success());
    let to = sock(net.server_v4(), 9);
    assert_eq!(
        net.in_client("<!here>&", move || connect_err(to)),
        ECONNREFUSED
    );
    let firing = wait("TCPConnectFailures firing", Duration::from_secs(20), || {
        hook.requests()
            .into_iter()
            .find(|r| r.1["groupLabels"]["alertname"] == "TCPConnectFailures")
    });
    let _ = dns.kill();
    let _ = dns.wait();
    let out = d.stop();
    let posted = firing.1.to_string();
    eprintln!("as Alertmanager sent it: {posted}");
    let a = &firing.1["alerts"][0]["annotations"];
    assert_eq!(
        a["dname"], r"\x3c!channel\x3e\x26\x3chttp://evil.example|click\x3e.echo.t",
        "{a}"
    );
    assert!(
        a["processes"]
            .as_str()
            .unwrap()
            .starts_with(r"\x3c!here\x3e\x26["),
        "{a}"
    );
    assert!(!posted.contains(['<', '>', '&']), "{posted}");
    for key in ["title", "text"] {
        let t = example_template("tcpstate-slack", key);
        let shown = amtool_render(&t, &firing.1);
        eprintln!("{key}: {shown}");
        assert!(
            key == "title" || shown.contains(r"\x3c!channel\x3e"),
            "{shown}"
        );
        assert!(!shown.contains("<!") && !shown.contains("<http"), "{shown}");
    }
    // The rules' receiver escapes label values Prometheus passes on raw.
    let mut rule = firing.1.clone();
    rule["alerts"][0]["annotations"]["description"] = "<!channel> & <http://x|y>".into();
    let shown = amtool_render(&example_template("tcpstate-rules-slack", "text"), &rule);
    assert!(
        shown.contains("&lt;!channel&gt; &amp; &lt;http://x|y&gt;"),
        "{shown}"
    );
    assert_eq!(out.stat("am_lost_alerts"), 0, "{}", out.stderr);
}

//! End to end, as root: real failures through the real daemon to a real
//! HTTP server standing in for Slack and a real datagram socket standing
//! in for /dev/log.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ECONNREFUSED: i32 = 111;

fn daemon(net: &Net, syslog: &FakeSyslog, slack_url: &str, window: &str) -> Daemon {
    Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        slack_url,
        "--alert-window",
        window,
    ])
    .args(net.watch_args())
    .start()
}

fn text(v: &Value) -> String {
    v.to_string()
}

#[test]
fn one_failure_gives_one_slack_message_and_one_syslog_line() {
    if !require_root("one_failure_gives_one_slack_message_and_one_syslog_line") {
        return;
    }
    let net = Net::new(20);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = daemon(&net, &syslog, &slack.url(), "3s");
    let to = sock(net.server_v4(), 9);
    let t0 = Instant::now();
    assert_eq!(
        net.in_client("t-alert", move || connect_err(to)),
        ECONNREFUSED
    );
    let reqs = slack.wait_requests(1, Duration::from_secs(5));
    assert_eq!(reqs.len(), 1, "one Slack message");
    eprintln!("slack latency: {:?}", reqs[0].0 - t0);
    // Past the window: a lone failure has nothing to summarise.
    std::thread::sleep(Duration::from_millis(3500));
    let dpid = d.pid();
    let out = d.stop();
    assert_eq!(slack.requests().len(), 1, "still one message");

    let body = &reqs[0].1;
    let t = body["text"].as_str().unwrap();
    assert!(t.starts_with("TCP failure detected on "), "{t}");
    assert!(
        t.contains(&format!(
            "{to} refused at handshake (t-alert (pid {}, process ",
            std::process::id()
        )),
        "{t}"
    );
    let blocks = text(&body["blocks"]);
    for want in [
        "*Destination*\\n198.18.20.2:9",
        "*Reason*\\nrefused",
        "*Process*\\nt-alert (pid",
        "*Time to failure*",
    ] {
        assert!(blocks.contains(want), "{want} not in {blocks}");
    }

    let alerts = syslog.matching("TCP failure");
    assert_eq!(alerts.len(), 1, "{:?}", syslog.lines());
    let line = &alerts[0];
    // <28>: facility daemon (3 * 8) + warning (4).
    assert!(line.starts_with("<28>"), "{line}");
    assert!(line.contains(&format!(" tcpstate[{}]: ", dpid)), "{line}");
    assert!(
        line.contains(&format!(
            "TCP failure detected: 198.18.20.2:9 reason=refused stage=handshake pid={} comm=t-alert process=",
            std::process::id()
        )),
        "{line}"
    );
    // Start and stop at info (<30>), with what is watched and the stats.
    let info: Vec<String> = syslog.matching("<30>");
    assert!(
        info.iter()
            .any(|l| l.contains("started") && l.contains("198.18.20.0/24")),
        "{info:?}"
    );
    assert!(
        info.iter()
            .any(|l| l.contains("stopped:") && l.contains("failures=1")),
        "{info:?}"
    );
    assert_eq!(out.stat("slack_messages"), 1, "{}", out.stderr);
    assert_eq!(out.stat("slack_lost_alerts"), 0);
    // The secret never shows.
    let everything = format!("{}{}{:?}", out.stderr, out.stdout.join(""), syslog.lines());
    assert!(!everything.contains("SECRETTOKEN"), "{everything}");
    assert!(everything.contains("http://127.0.0.1:"), "{everything}");
    assert!(everything.contains("/***"), "{everything}");
}

#[test]
fn a_storm_gives_a_handful_of_messages_with_the_count() {
    if !require_root("a_storm_gives_a_handful_of_messages_with_the_count") {
        return;
    }
    let net = Net::new(21);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = daemon(&net, &syslog, &slack.url(), "3s");
    const N: usize = 2000;
    let to = sock(net.server_v4(), 9);
    let t0 = Instant::now();
    net.in_client("t-storm", move || {
        for _ in 0..N {
            assert_eq!(connect_err(to), ECONNREFUSED);
        }
    });
    let storm = t0.elapsed();
    // The summary comes when the 3 s window ends.
    let summaries = syslog.wait_for("TCP failures repeated", 1, Duration::from_secs(8));
    let out = d.stop();
    let failures = out.failures().len();
    let reqs = slack.requests();
    let alert_lines = syslog.matching("TCP failure");
    eprintln!(
        "storm: {N} failures in {storm:?}; stdout lines {failures}; Slack messages {}; syslog alert lines {}",
        reqs.len(),
        alert_lines.len()
    );
    assert_eq!(failures, N, "stdout stays unaggregated");
    assert!(reqs.len() <= 3, "{} Slack messages", reqs.len());
    assert!(alert_lines.len() <= 3, "{alert_lines:?}");
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(
        summaries[0].contains(&format!(
            "TCP failures repeated: 198.18.21.2:9 count={} window=3s reasons=refused×{}",
            N - 1,
            N - 1
        )),
        "{}",
        summaries[0]
    );
    assert!(summaries[0].contains("t-storm["), "{}", summaries[0]);
    let all = reqs.iter().map(|r| text(&r.1)).collect::<String>();
    assert!(
        all.contains(&format!("{} more TCP failures", N - 1)),
        "{all}"
    );
    assert_eq!(out.stat("alerts"), 1);
    assert_eq!(out.stat("summaries"), 1);
    assert_eq!(out.stat("alert_queue_drops"), 0);
}

#[test]
fn many_destinations_at_once_are_grouped() {
    if !require_root("many_destinations_at_once_are_grouped") {
        return;
    }
    let net = Net::new(22);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = daemon(&net, &syslog, &slack.url(), "60s");
    const DESTS: u16 = 30;
    let server = net.server_v4();
    net.in_client("t-group", move || {
        for port in 1000..1000 + DESTS {
            assert_eq!(connect_err(sock(server, port)), ECONNREFUSED);
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let out = d.stop();
    let reqs = slack.requests();
    // Every destination is in some message, in fewer messages than destinations.
    let all = reqs.iter().map(|r| text(&r.1)).collect::<String>();
    for port in 1000..1000 + DESTS {
        assert!(
            all.contains(&format!("198.18.22.2:{port}")),
            "port {port} missing"
        );
    }
    eprintln!("{DESTS} destinations: {} Slack messages", reqs.len());
    assert!(
        reqs.len() <= 6,
        "{} messages for {DESTS} destinations",
        reqs.len()
    );
    assert!(
        all.contains("TCP failure alerts"),
        "some message is a group: {all}"
    );
    assert_eq!(
        syslog.matching("TCP failure detected").len(),
        DESTS as usize
    );
    assert_eq!(out.stat("slack_alerts"), DESTS as u64);
}

#[test]
fn rate_limited_alerts_wait_for_retry_after_and_arrive() {
    if !require_root("rate_limited_alerts_wait_for_retry_after_and_arrive") {
        return;
    }
    let net = Net::new(23);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    slack.then_answer(&["429 Too Many Requests"]); // with Retry-After: 2
    let d = daemon(&net, &syslog, &slack.url(), "60s");
    let to = sock(net.server_v4(), 9);
    net.in_client("t-429", move || connect_err(to));
    let reqs = slack.wait_requests(2, Duration::from_secs(8));
    let out = d.stop();
    assert_eq!(reqs.len(), 2, "the 429 and the retry");
    let gap = reqs[1].0 - reqs[0].0;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    assert_eq!(reqs[0].1, reqs[1].1, "the same message again");
    assert_eq!(out.stat("slack_rate_limited"), 1, "{}", out.stderr);
    assert_eq!(out.stat("slack_messages"), 1);
    assert_eq!(out.stat("slack_lost_alerts"), 0);
}

#[test]
fn with_slack_down_detection_and_syslog_go_on_and_losses_are_counted() {
    if !require_root("with_slack_down_detection_and_syslog_go_on_and_losses_are_counted") {
        return;
    }
    let net = Net::new(24);
    let syslog = FakeSyslog::start();
    // A port nobody listens on: every request is refused.
    let url = format!("http://127.0.0.1:{}/services/T/B/SECRETTOKEN", free_port());
    let d = daemon(&net, &syslog, &url, "60s");
    let server = net.server_v4();
    net.in_client("t-down", move || {
        for port in [9, 10, 11] {
            assert_eq!(connect_err(sock(server, port)), ECONNREFUSED);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = d.stop();
    let took = t.elapsed();
    assert_eq!(out.failures().len(), 3, "detection went on");
    assert_eq!(
        syslog.matching("TCP failure detected").len(),
        3,
        "syslog went on"
    );
    assert!(
        took < Duration::from_secs(8),
        "shutdown flush is bounded: {took:?}"
    );
    assert_eq!(out.stat("slack_lost_alerts"), 3, "{}", out.stderr);
    assert_eq!(out.stat("slack_messages"), 0);
    // Said on stderr and syslog, without the secret.
    assert!(
        out.stderr.contains("not sent before exit; lost"),
        "{}",
        out.stderr
    );
    assert!(
        syslog
            .lines()
            .iter()
            .any(|l| l.starts_with("<27>") && l.contains("Slack webhook")),
        "an error line on syslog: {:?}",
        syslog.lines()
    );
    assert!(!out.stderr.contains("SECRETTOKEN"));
    assert!(!format!("{:?}", syslog.lines()).contains("SECRETTOKEN"));
}

#[test]
fn a_hostile_process_name_is_escaped_everywhere() {
    if !require_root("a_hostile_process_name_is_escaped_everywhere") {
        return;
    }
    let net = Net::new(25);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    // The URL from a file, as the packaged service would have it.
    let dir = TempDir::new("url");
    let file = dir.path().join("slack-url");
    std::fs::write(&file, format!("{}\n", slack.url())).unwrap();
    let d = Daemon::builder([
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url-file",
        file.to_str().unwrap(),
    ])
    .args(net.watch_args())
    .start();
    let to = sock(net.server_v4(), 9);
    net.in_client("<!here>&x\nTCP", move || connect_err(to));
    let reqs = slack.wait_requests(1, Duration::from_secs(5));
    let lines = syslog.wait_for("TCP failure detected", 1, Duration::from_secs(2));
    let out = d.stop();
    assert_eq!(reqs.len(), 1);
    let body = text(&reqs[0].1);
    assert!(!body.contains("<!here>"), "{body}");
    assert!(body.contains("&lt;!here&gt;&amp;x\\\\x0aTCP"), "{body}");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(r"comm=<!here>&x\x0aTCP process="),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains('\n'), "one line: {:?}", lines[0]);
    // Text output on stdout is escaped the same way.
    assert!(
        out.stdout
            .iter()
            .any(|l| l.contains(r"comm=<!here>&x\x0aTCP ")),
        "{:?}",
        out.stdout
    );
}

#[test]
fn a_missing_syslog_socket_is_said_once_and_detection_goes_on() {
    if !require_root("a_missing_syslog_socket_is_said_once_and_detection_goes_on") {
        return;
    }
    let net = Net::new(26);
    let d = Daemon::builder(["--format", "json", "--syslog-socket", "/nonexistent/log"])
        .args(net.watch_args())
        .start();
    let server = net.server_v4();
    net.in_client("t-nolog", move || {
        for port in [9, 10] {
            connect_err(sock(server, port));
        }
    });
    let out = d.stop();
    assert_eq!(out.code, Some(0));
    assert_eq!(out.failures().len(), 2);
    assert_eq!(
        out.stderr.matches("syslog socket /nonexistent/log").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stat("syslog_lost") >= 2, "{}", out.stderr);
}

#[test]
fn a_redirect_from_slack_is_a_failed_delivery() {
    if !require_root("a_redirect_from_slack_is_a_failed_delivery") {
        return;
    }
    let net = Net::new(27);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    slack.then_answer(&["302 Found"]);
    let d = daemon(&net, &syslog, &slack.url(), "60s");
    let to = sock(net.server_v4(), 9);
    net.in_client("t-302", move || connect_err(to));
    let reqs = slack.wait_requests(1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let out = d.stop();
    assert_eq!(reqs.len(), 1, "a redirect is not retried");
    assert_eq!(out.stat("slack_messages"), 0, "{}", out.stderr);
    assert_eq!(out.stat("slack_lost_alerts"), 1, "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 302"), "{}", out.stderr);
    assert!(!out.stderr.contains("SECRETTOKEN"));
}

#[test]
fn a_stalled_stdout_never_stops_detection_or_alerts() {
    if !require_root("a_stalled_stdout_never_stops_detection_or_alerts") {
        return;
    }
    let net = Net::new(28);
    let syslog = FakeSyslog::start();
    let d = Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--alert-window",
        "60s",
    ])
    .args(net.watch_args())
    .stalled()
    .start();
    // About 600 KB of JSON lines in 50 drains: far more than a pipe
    // (64 KiB) and the stdout queue hold.
    let server = net.server_v4();
    net.in_client("t-stall", move || {
        for _ in 0..50 {
            for _ in 0..50 {
                assert_eq!(connect_err(sock(server, 9)), ECONNREFUSED);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // With stdout stuck, a new destination still reaches syslog at once.
    let to = sock(server, 10);
    net.in_client("t-stall", move || connect_err(to));
    let lines = syslog.wait_for("198.18.28.2:10 reason=refused", 1, Duration::from_secs(3));
    let t = Instant::now();
    let out = d.stop();
    let took = t.elapsed();
    assert_eq!(lines.len(), 1, "{:?}", syslog.lines());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert_eq!(out.stat("failures"), 2501, "{}", out.stderr);
    assert!(out.stat("stdout_dropped") > 0, "{}", out.stderr);
    // Said while running, not only in the stop line.
    assert!(
        syslog
            .lines()
            .iter()
            .any(|l| l.contains("output lines dropped: stdout is not read fast enough")),
        "{:?}",
        syslog.lines()
    );
}

#[test]
fn sigterm_ends_the_daemon_within_5s_with_slack_hanging() {
    if !require_root("sigterm_ends_the_daemon_within_5s_with_slack_hanging") {
        return;
    }
    let net = Net::new(29);
    let syslog = FakeSyslog::start();
    let d = daemon(&net, &syslog, &FakeSlack::hanging(), "60s");
    let server = net.server_v4();
    net.in_client("t-hang", move || {
        for port in [9, 10] {
            assert_eq!(connect_err(sock(server, port)), ECONNREFUSED);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let out = d.stop();
    let took = t.elapsed();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert_eq!(out.stat("slack_lost_alerts"), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("not sent before exit; lost"),
        "{}",
        out.stderr
    );
}

/// Issue 29, finding 7: Slack refuses a message as invalid (HTTP 400, as
/// for `invalid_blocks`). The lone alert is sent again without blocks; a
/// message of several is sent again alert by alert. None is lost.
#[test]
fn a_message_slack_refuses_is_sent_again_and_no_alert_is_lost() {
    if !require_root("a_message_slack_refuses_is_sent_again_and_no_alert_is_lost") {
        return;
    }
    let net = Net::new(87);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    // 429 holds the first alert back (Retry-After 2 s) while the others
    // queue; its retry is refused, then the batch of the others too.
    slack.then_answer(&[
        "429 Too Many Requests",
        "400 Bad Request",
        "200 OK",
        "400 Bad Request",
    ]);
    let d = daemon(&net, &syslog, &slack.url(), "60s");
    for port in [9, 10, 11, 12] {
        let to = sock(net.server_v4(), port);
        assert_eq!(
            net.in_client("t-refused", move || connect_err(to)),
            ECONNREFUSED
        );
        if port == 9 {
            slack.wait_requests(1, Duration::from_secs(5));
        }
    }
    let reqs = slack.wait_requests(7, Duration::from_secs(15));
    let out = d.stop();
    let bodies: Vec<&Value> = reqs.iter().map(|r| &r.1).collect();
    assert_eq!(bodies.len(), 7, "{bodies:#?}");
    // The lone alert, refused, went as plain text.
    assert!(bodies[2].get("blocks").is_none(), "{}", bodies[2]);
    assert!(text(bodies[2]).contains(":9 refused"), "{}", bodies[2]);
    // The batch of three, refused, went one by one.
    assert!(
        text(bodies[3]).contains("3 TCP failure alerts"),
        "{}",
        bodies[3]
    );
    for (b, port) in bodies[4..].iter().zip([10, 11, 12]) {
        let t = b["text"].as_str().unwrap();
        assert!(t.starts_with("TCP failure detected on "), "{t}");
        assert!(t.contains(&format!(":{port} refused")), "{t}");
    }
    assert_eq!(out.stat("slack_alerts"), 4, "{}", out.stderr);
    assert_eq!(out.stat("slack_lost_alerts"), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("sending its 3 alerts again one by one"),
        "{}",
        out.stderr
    );
}

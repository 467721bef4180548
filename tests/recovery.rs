//! End to end, as root: a failed attempt the application recovered from
//! (another address or family of the name, a race, a retry) is a
//! degradation notice, never a page; an outage still pages, within 2 s of
//! the client giving up. A real dnsmasq gives the names both families (or
//! several addresses); nftables in the server namespace breaks one path;
//! the clients are the real ones: curl and Node.js race, wget, nc and
//! Python walk the addresses, a Python client retries. Slack (a stand-in:
//! it cannot run here) and a syslog socket take the alerts.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A tiny HTTP server in the server namespace, on each port, both
/// families (a dual-stack socket): answers `ok` and closes.
fn http_server(net: &Net, ports: &[u16]) -> std::process::Child {
    let ports = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        r#"
import socket, threading, sys
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(2); c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except Exception:
            pass
        c.close()
for p in [{ports}]:
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.server, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 installed");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Runs a client in the client namespace; fails the test unless it
/// succeeds. Returns when it exited.
fn succeeds(net: &Net, argv: &[&str]) -> Instant {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.client])
        .args(argv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Instant::now()
}

/// Runs a client that must fail; returns when it exited.
fn fails(net: &Net, argv: &[&str]) -> Instant {
    let st = Command::new("ip")
        .args(["netns", "exec", &net.client])
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "{argv:?} succeeded; the outage is not one");
    Instant::now()
}

fn node_racer(url_host: &str, port: u16) -> Vec<String> {
    vec![
        "node".into(),
        "-e".into(),
        format!(
            "const s=require('net').connect({{host:'{url_host}',port:{port},autoSelectFamily:true,autoSelectFamilyAttemptTimeout:250}},()=>{{s.end();process.exit(0)}});s.on('error',e=>{{console.error(e.message);process.exit(1)}})"
        ),
    ]
}

fn python_walker(host: &str, port: u16) -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        format!("import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"),
    ]
}

/// The verdict line of the failure to `daddr:port`.
fn verdicts(out: &Stopped, daddr: &str, port: u16) -> Vec<Value> {
    out.json()
        .into_iter()
        .filter(|v| v["event"] == "verdict" && v["daddr"] == daddr && v["dport"] == port)
        .collect()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn recovered_requests_never_page_and_outages_page_within_2s() {
    if !require_root("recovered_requests_never_page_and_outages_page_within_2s") {
        return;
    }
    let net = Net::new(100);
    let n = net.n;
    let (v4, v6) = (net.server_v4().to_string(), net.server_v6().to_string());
    let hosts = format!("{v4} ready.tsdns.test\n{v4} svc.tsrec.test\n{v6} svc.tsrec.test\n");
    let _dns = Dns::start(&net, &hosts, &[]);
    // The IPv6 path is broken: SYNs dropped (8080-8084), reset (8086);
    // 8091 drops both families; nothing listens on 8090.
    net.server_nft(&format!(
        "table inet tsrec {{\n  chain c {{\n    type filter hook input priority 0; policy accept;\n    \
         ip6 daddr {v6} tcp dport 8080-8084 drop\n    \
         ip6 daddr {v6} tcp dport 8086 reject with tcp reset\n    \
         tcp dport 8091 drop\n  }}\n}}\n"
    ));
    let mut server = http_server(&net, &[8080, 8081, 8082, 8083, 8084, 8086]);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    // The default: no DNS hook on this machine, so no names; the
    // unambiguous patterns decide.
    let d = Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        &slack.url(),
    ])
    .args(net.watch_args())
    .start();

    let url = |port: u16| format!("http://svc.tsrec.test:{port}/");
    let clients: Vec<(&str, u16, Vec<String>, &str)> = vec![
        (
            "curl",
            8080,
            ["curl", "-sS", "-o", "/dev/null", "-m", "10", &url(8080)]
                .map(String::from)
                .to_vec(),
            "race",
        ),
        (
            "node",
            8081,
            node_racer("svc.tsrec.test", 8081),
            "family switch",
        ),
        (
            "wget",
            8082,
            [
                "wget",
                "-q",
                "-O",
                "/dev/null",
                "--tries=1",
                "--connect-timeout=1",
                &url(8082),
            ]
            .map(String::from)
            .to_vec(),
            "family switch",
        ),
        (
            "nc",
            8083,
            ["nc", "-z", "-w", "1", "svc.tsrec.test", "8083"]
                .map(String::from)
                .to_vec(),
            "family switch",
        ),
        (
            "python",
            8084,
            python_walker("svc.tsrec.test", 8084),
            "family switch",
        ),
        (
            "curl (reset)",
            8086,
            ["curl", "-sS", "-o", "/dev/null", "-m", "10", &url(8086)]
                .map(String::from)
                .to_vec(),
            "family switch",
        ),
    ];
    for (_, _, argv, _) in &clients {
        succeeds(&net, &as_strs(argv));
    }
    // A client that retries one address after refusals: nothing listens
    // on 8085 for its first tries.
    let retry_to = &v4;
    let retry = Command::new("ip")
        .args(["netns", "exec", &net.client, "python3", "-c"])
        .arg(format!(
            "import socket, time\nfor i in range(100):\n    try:\n        socket.create_connection(('{retry_to}', 8085), timeout=1).close(); break\n    except ConnectionRefusedError:\n        time.sleep(0.05)\nelse:\n    raise SystemExit(1)\n"
        ))
        .spawn()
        .unwrap();
    // Its first try refused (seen by the daemon), then the server comes.
    assert!(d.wait_line("\"dport\":8085,", Duration::from_secs(10)));
    let listener = net.server_listener(sock(net.server_v4(), 8085));
    let st = retry.wait_with_output().unwrap().status;
    assert!(st.success(), "the retrying client did not connect");

    // Every notice is said (recovered failures are held at most 1 s).
    let degraded = syslog.wait_for(
        "TCP path degraded",
        clients.len() + 1,
        Duration::from_secs(5),
    );
    assert_eq!(
        slack.requests().len(),
        0,
        "recovered requests paged on Slack: {:?}",
        slack.requests()
    );
    assert!(
        syslog.matching("TCP failure detected").is_empty(),
        "recovered requests paged on syslog: {:?}",
        syslog.matching("TCP failure detected")
    );

    // Outages: every address refused (curl), every SYN dropped (wget).
    let refused_exit = fails(
        &net,
        &["curl", "-sS", "-o", "/dev/null", "-m", "10", &url(8090)],
    );
    let paged = wait("the refusals paged", Duration::from_secs(5), || {
        (syslog.matching(":8090 reason=refused").len() == 2).then(Instant::now)
    });
    let refused_page = paged.duration_since(refused_exit);
    let dropped_exit = fails(
        &net,
        &[
            "wget",
            "-q",
            "-O",
            "/dev/null",
            "--tries=1",
            "--connect-timeout=1",
            &url(8091),
        ],
    );
    let paged = wait("the timeouts paged", Duration::from_secs(5), || {
        (syslog
            .matching(":8091 reason=timeout timeout_by=application")
            .len()
            == 2)
            .then(Instant::now)
    });
    let dropped_page = paged.duration_since(dropped_exit);
    let pages = slack.wait_requests(1, Duration::from_secs(5));
    listener.stop();
    let out = d.stop();
    let _ = server.kill();
    let _ = server.wait();

    // Each recovered client: its failure to the broken IPv6 address is
    // `recovered` by the expected rule, and its notice names that address.
    for (name, port, _, rule) in &clients {
        let v = verdicts(&out, &v6, *port);
        assert!(!v.is_empty(), "{name}: no verdict for [{v6}]:{port}");
        for v in &v {
            assert_eq!(v["outcome"], "recovered", "{name}: {v}");
            assert_eq!(v["rule"], *rule, "{name}: {v}");
            assert_eq!(v["fallback"]["daddr"], v4.as_str(), "{name}: {v}");
        }
        let line = degraded
            .iter()
            .find(|l| l.contains(&format!("[{v6}]:{port} ")))
            .unwrap_or_else(|| panic!("{name}: no degradation notice in {degraded:?}"));
        // daemon facility (3), notice (5): <29>.
        assert!(line.starts_with("<29>"), "{name}: not a notice: {line}");
        eprintln!("{name}: {} -> {line}", v[0]["reason"]);
    }
    let retried = verdicts(&out, &v4, 8085);
    assert!(!retried.is_empty(), "no verdict for the retried refusals");
    assert!(
        retried
            .iter()
            .all(|v| v["outcome"] == "recovered" && v["rule"] == "retry"),
        "{retried:?}"
    );
    // Client timeouts read timeout, by the application; the racer's loser
    // stays canceled (abandoned before anything could be said).
    let wget = out.one("connect_failed", sock(net.server_v6(), 8082));
    assert_eq!(
        (wget["reason"].as_str(), wget["timeout_by"].as_str()),
        (Some("timeout"), Some("application")),
        "{wget}"
    );
    let curl = out.one("connect_failed", sock(net.server_v6(), 8080));
    assert_eq!(curl["reason"], "canceled", "{curl}");

    // The outages: failed verdicts, paged within 2 s of the client's exit.
    for (port, reason) in [(8090, "refused"), (8091, "timeout")] {
        for daddr in [&v4, &v6] {
            let v = verdicts(&out, daddr, port);
            assert_eq!(v.len(), 1, "{daddr}:{port}: {v:?}");
            assert_eq!(v[0]["outcome"], "failed", "{v:?}");
            assert_eq!(v[0]["reason"], reason, "{v:?}");
        }
    }
    eprintln!("refused: paged {refused_page:?} after curl exited; dropped: {dropped_page:?} after wget exited");
    assert!(refused_page < Duration::from_secs(2), "{refused_page:?}");
    assert!(dropped_page < Duration::from_secs(2), "{dropped_page:?}");
    let slack_text: String = pages.iter().map(|(_, b)| b.to_string()).collect();
    assert!(slack_text.contains(":8090"), "{slack_text}");
    assert!(!slack_text.contains("degraded"), "{slack_text}");
    assert!(
        out.stat("recovered") > clients.len() as u64,
        "{}",
        out.stderr
    );
    assert_eq!(out.stat("verdicts_early"), 0, "{}", out.stderr);
    assert_eq!(out.stat("verdicts_pending"), 0, "{}", out.stderr);
    let _ = n;
}

#[test]
fn a_success_to_one_service_never_hides_another_on_the_same_port() {
    if !require_root("a_success_to_one_service_never_hides_another_on_the_same_port") {
        return;
    }
    let net = Net::new(101);
    let n = net.n;
    let (up, down, dropped) = (
        net.server_v4().to_string(),
        net.server_v4_extra(3).to_string(),
        net.server_v4_extra(4).to_string(),
    );
    let hosts = format!(
        "{up} ready.tsdns.test\n{up} db1.tsrec.test\n{down} db2.tsrec.test\n{dropped} multi.tsrec.test\n{up} multi.tsrec.test\n{down} dead.tsrec.test\n{dropped} dead.tsrec.test\n"
    );
    let _dns = Dns::start(&net, &hosts, &[]);
    net.server_nft(&format!(
        "table inet tsrec {{\n  chain c {{\n    type filter hook input priority 0; policy accept;\n    ip daddr {dropped} drop\n  }}\n}}\n"
    ));
    let db1 = net.server_listener(sock(net.server_v4(), 5432));
    let web = net.server_listener(sock(net.server_v4(), 8080));
    let syslog = FakeSyslog::start();
    // Names on (the fallback DNS hook here): the by-name rule decides.
    let d = Daemon::builder([
        "--format",
        "json",
        "--dns-names",
        "on",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
    ])
    .args(net.watch_args())
    .start();
    // One process, two databases on 5432, one down; and the same with
    // addresses only (no name to tell them apart: still paged).
    let two = "import socket\nfor h in ['db2.tsrec.test', 'db1.tsrec.test', '{down}', '{up}'] * 2:\n    try:\n        socket.create_connection((h, 5432), timeout=1).close()\n    except OSError:\n        pass\n"
        .replace("{down}", &down)
        .replace("{up}", &up);
    succeeds(&net, &["python3", "-c", &two]);
    // A walker over two addresses of one name, the first dropped.
    let walk = format!(
        "import socket\nais = sorted(socket.getaddrinfo('multi.tsrec.test', 8080, socket.AF_INET, socket.SOCK_STREAM), key=lambda a: a[4][0] != '{dropped}')\nfor ai in ais:\n    try:\n        socket.create_connection(ai[4][:2], timeout=1).close(); break\n    except OSError:\n        pass\nelse:\n    raise SystemExit(1)\n"
    );
    succeeds(&net, &["python3", "-c", &walk]);
    // Every address of a name failing: nothing left to wait for, paged
    // at once, not after the recovery window.
    let dead = "import socket\nfor ai in socket.getaddrinfo('dead.tsrec.test', 8080, socket.AF_INET, socket.SOCK_STREAM):\n    try:\n        socket.create_connection(ai[4][:2], timeout=1).close(); raise SystemExit(0)\n    except OSError:\n        pass\nraise SystemExit(1)\n";
    let exited = {
        let st = Command::new("ip")
            .args(["netns", "exec", &net.client, "python3", "-c", dead])
            .status()
            .unwrap();
        assert!(!st.success(), "dead.tsrec.test answered");
        Instant::now()
    };
    let dead_paged = poll("the dead name paged", Duration::from_secs(5), || {
        (syslog.matching(":8080 dname=dead.tsrec.test").len() == 2).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("not paged: {:?}", syslog.lines()))
    .duration_since(exited);
    let paged = syslog.wait_for(
        &format!("TCP failure detected: {down}:5432"),
        1,
        Duration::from_secs(5),
    );
    let degraded = syslog.wait_for("TCP path degraded", 1, Duration::from_secs(5));
    db1.stop();
    web.stop();
    let out = d.stop();
    assert!(
        !paged.is_empty(),
        "the down database was not paged: {:?}",
        syslog.lines()
    );
    let v = verdicts(&out, &down, 5432);
    assert_eq!(v.len(), 4, "{v:?}");
    assert!(v.iter().all(|v| v["outcome"] == "failed"), "{v:?}");
    let named = |daddr: &str, name: &str| -> Vec<Value> {
        verdicts(&out, daddr, 8080)
            .into_iter()
            .filter(|v| v["dname"] == name)
            .collect()
    };
    let walked = named(&dropped, "multi.tsrec.test");
    assert_eq!(walked.len(), 1, "{walked:?}");
    assert_eq!(walked[0]["outcome"], "recovered", "{walked:?}");
    assert_eq!(walked[0]["rule"], "by name", "{walked:?}");
    assert_eq!(walked[0]["dname"], "multi.tsrec.test", "{walked:?}");
    assert!(
        degraded
            .iter()
            .any(|l| l.contains(&format!("multi.tsrec.test:8080 [{dropped}] timeout"))),
        "{degraded:?}"
    );
    eprintln!(
        "two services: {}\nwalker: {}\nevery address of a name failed: paged {dead_paged:?} after the client exited",
        paged[0], degraded[0]
    );
    assert!(dead_paged < Duration::from_millis(500), "{dead_paged:?}");
    for daddr in [&down, &dropped] {
        let v = named(daddr, "dead.tsrec.test");
        assert_eq!(v.len(), 1, "{daddr}: {v:?}");
        assert_eq!(v[0]["outcome"], "failed", "{v:?}");
    }
    let _ = n;
}

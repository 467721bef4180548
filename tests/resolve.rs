//! End to end, as root: `resolve_failed` (issue 32), one per lookup,
//! named by the name the application asked. A real dnsmasq in the server
//! namespace, never forwarding out: `--address=/nx.t32.test/` (and the
//! search domains) answer NXDOMAIN; `good.t32.test` has an A record only
//! (`--local`: its AAAA is NODATA); names it has no record or server for
//! are REFUSED; `sf.t32.test` is forwarded to an upstream stand-in on the
//! server namespace's own address that answers SERVFAIL, which dnsmasq
//! relays; a second address of the server, 198.18.N.3, has its UDP port 53
//! dropped by nftables, for timeouts. The client namespace's resolv.conf
//! (`/etc/netns/NAME/resolv.conf`, which `ip netns exec` mounts) has a
//! search list and ndots:5, so glibc walks the list. Real clients: getent,
//! Python's getaddrinfo, curl, Node's dns.lookup (getaddrinfo) and
//! dns.resolve4 (c-ares, its own sockets). No query leaves the test's
//! namespaces. Here the kernel refuses trampolines: the daemon takes the
//! syscall fallback, `--dns-names on`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Every daemon sees every lookup on the host, and a source's failures
/// fold past its first few a minute: one test at a time.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The upstream dnsmasq forwards `sf.t32.test` to: a failing server,
/// answering every query SERVFAIL (dnsmasq relays it).
const SERVFAIL_UPSTREAM: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5353))
while True:
    q, a = s.recvfrom(512)
    r = bytearray(q)
    r[2] = 0x80 | (q[2] & 1)
    r[3] = 0x80 | 2
    s.sendto(bytes(r), a)
"#;

/// The test's resolver: dnsmasq on 198.18.N.2 and .3 (whose UDP 53 is
/// dropped), the SERVFAIL upstream on .4:5353; gone on drop. The client's
/// resolv.conf reads `resolv_conf` once dnsmasq answers.
fn resolver(net: &Net, resolv_conf: &str) -> Dns {
    let n = net.n;
    let sf = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.server,
            "python3",
            "-c",
            SERVFAIL_UPSTREAM,
        ])
        .arg(format!("198.18.{n}.4"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dns = Dns::builder(net, &format!("198.18.{n}.2 good.t32.test\n"))
        .child(sf)
        .ready("good.t32.test")
        .listen(&format!("198.18.{n}.3"))
        .args([
            "--address=/nx.t32.test/".to_string(),
            // Answered from the hosts file alone: its AAAA is NODATA.
            "--local=/good.t32.test/".into(),
            "--address=/ns.t32.test/".into(),
            "--address=/svc.t32.test/".into(),
            format!("--server=/sf.t32.test/198.18.{n}.4#5353"),
        ])
        .resolv_conf(resolv_conf)
        .start();
    net.server_nft(&format!(
        "table inet t32 {{\n chain input {{\n  type filter hook input priority 0;\n  \
         ip daddr 198.18.{n}.3 udp dport 53 drop\n }}\n}}\n"
    ));
    dns
}

fn daemon(net: &Net) -> Daemon {
    Daemon::builder(["--format", "json", "--no-syslog", "--dns-names", "on"])
        .args(net.watch_args())
        .start()
}

/// A lookup in Python that stays a moment after it: its /proc entry (and
/// so its resolv.conf) is there when tcpstate reads its queries.
fn python_lookup(net: &Net, name: &str) -> bool {
    let script = format!(
        "import socket, time\n\
         try:\n    socket.getaddrinfo('{name}', 80); ok = True\n\
         except OSError:\n    ok = False\n\
         time.sleep(0.3)\n\
         raise SystemExit(0 if ok else 1)\n"
    );
    client(net, "python3", &["-c", &script]).0
}

fn node_installed() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The lookups that failed against this test's own servers (198.18.N.*):
/// the daemon sees every lookup on the host, another test's too.
fn resolve_failed(out: &Stopped, net: &Net) -> Vec<serde_json::Value> {
    let ours = format!("198.18.{}.", net.n);
    out.json()
        .into_iter()
        .filter(|v| v["event"] == "resolve_failed")
        .filter(|v| v["server"].as_str().is_some_and(|s| s.starts_with(&ours)))
        .collect()
}

fn search_conf(net: &Net) -> String {
    format!(
        "nameserver 198.18.{}.2\nsearch ns.t32.test svc.t32.test\noptions ndots:5 timeout:1 attempts:1\n",
        net.n
    )
}

/// A name that does not exist, looked up through a search list by five
/// clients: each lookup (several NXDOMAINs: every candidate, A and AAAA)
/// is one `resolve_failed`, named as asked.
#[test]
fn a_search_list_walk_that_fails_is_one_failure_named_as_asked() {
    if !require_root("a_search_list_walk_that_fails_is_one_failure_named_as_asked") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(140);
    let _r = resolver(&net, &search_conf(&net));
    let d = daemon(&net);
    assert!(python_lookup(&net, "good.t32.test"));
    assert!(!python_lookup(&net, "py.nx.t32.test"));
    assert!(!client(&net, "getent", &["hosts", "getent.nx.t32.test"]).0);
    client(&net, "curl", &["-s", "-m", "3", "http://curl.nx.t32.test/"]);
    let node = node_installed();
    if node {
        client(
            &net,
            "node",
            &[
                "-e",
                "const dns = require('dns');\
                 dns.lookup('lookup.nx.t32.test', () => \
                   dns.resolve4('resolve.nx.t32.test', () => setTimeout(() => {}, 300)));",
            ],
        );
    } else {
        eprintln!("node is not installed: its clients are skipped");
    }
    for name in ["py", "getent", "curl"] {
        let _ = d.wait_line(&format!("\"{name}.nx.t32.test\""), Duration::from_secs(15));
    }
    std::thread::sleep(Duration::from_secs(2));
    let out = d.stop();
    let failed = resolve_failed(&out, &net);
    for v in &failed {
        eprintln!("{v}");
    }
    let mut expect = vec![
        ("py.nx.t32.test", "python3"),
        ("getent.nx.t32.test", "getent"),
        ("curl.nx.t32.test", "curl"),
    ];
    if node {
        expect.push(("lookup.nx.t32.test", ""));
        expect.push(("resolve.nx.t32.test", ""));
    }
    for (name, comm) in expect {
        let of: Vec<_> = failed.iter().filter(|v| v["name"] == name).collect();
        assert_eq!(of.len(), 1, "one failure for {name}: {failed:?}");
        let v = of[0];
        assert_eq!(v["reason"], "nxdomain", "{v}");
        assert_eq!(v["rcode"], 3, "{v}");
        assert_eq!(v["server"], format!("198.18.{}.2:53", net.n), "{v}");
        assert_eq!(v["lookup"], "search", "{v}");
        if !comm.is_empty() {
            assert_eq!(v["comm"], comm, "{v}");
        }
    }
    // Never a candidate of the walk, never the good name.
    assert!(
        !failed.iter().any(|v| {
            let n = v["name"].as_str().unwrap_or("");
            n.ends_with(".ns.t32.test") || n.ends_with(".svc.t32.test") || n == "good.t32.test"
        }),
        "{failed:?}"
    );
}

/// The first server never answers (its UDP 53 dropped); the second does:
/// recovered, no failure. Then NODATA on AAAA beside a good A: none either.
#[test]
fn a_lookup_answered_by_the_second_server_or_with_nodata_beside_an_address_is_no_failure() {
    if !require_root(
        "a_lookup_answered_by_the_second_server_or_with_nodata_beside_an_address_is_no_failure",
    ) {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(141);
    let n = net.n;
    let _r = resolver(
        &net,
        &format!(
            "nameserver 198.18.{n}.3\nnameserver 198.18.{n}.2\noptions ndots:1 timeout:1 attempts:1\n"
        ),
    );
    let d = daemon(&net);
    assert!(python_lookup(&net, "good.t32.test"));
    assert!(client(&net, "getent", &["ahosts", "good.t32.test"]).0);
    std::thread::sleep(Duration::from_secs(4));
    let out = d.stop();
    let failed = resolve_failed(&out, &net);
    assert!(failed.is_empty(), "{failed:?}\n{}", out.stderr);
    assert!(
        out.stderr.contains("dns_lookups_recovered="),
        "{}",
        out.stderr
    );
    assert!(out.stat("dns_lookups_recovered") >= 1, "{}", out.stderr);
}

/// A server that never answers: `timeout`, once the resolver gave up
/// (timeout × attempts), naming the server asked. SERVFAIL and REFUSED
/// from dnsmasq, NODATA (IPv6 alone asked of an IPv4-only name) and
/// NXDOMAIN, each its own reason, in the JSON stream, the real journal
/// (systemd-journald, native protocol: the `TCPSTATE_*` fields) and Slack.
#[test]
fn every_reason_is_one_failure_in_the_stream_the_journal_and_slack() {
    if !require_root("every_reason_is_one_failure_in_the_stream_the_journal_and_slack") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(142);
    let n = net.n;
    let _r = resolver(
        &net,
        &format!("nameserver 198.18.{n}.2\noptions ndots:1 timeout:1 attempts:2\n"),
    );
    let (journal, slack) = (Journal::start(), FakeSlack::start());
    let d = Daemon::builder(["--format", "json", "--dns-names", "on"])
        .alerts_to_journal(&journal, &slack)
        .args(net.watch_args())
        .start();
    assert!(!python_lookup(&net, "y.nx.t32.test"));
    assert!(!python_lookup(&net, "y.sf.t32.test"));
    assert!(!python_lookup(&net, "unknown.t32.test"));
    // The name has an A record only: asked for IPv6 alone, NODATA.
    let v6only = "import socket, time\n\
                  try: socket.getaddrinfo('good.t32.test', 80, socket.AF_INET6)\n\
                  except OSError: pass\n\
                  time.sleep(0.3)\n";
    client(&net, "python3", &["-c", v6only]);
    // The dropped server, in a resolv.conf of its own: a private mount
    // namespace inside the client's network namespace.
    let dir = TempDir::new("t32conf");
    let conf = dir.path().join("resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver 198.18.{n}.3\noptions timeout:1 attempts:2\n"),
    )
    .unwrap();
    let script = format!(
        "mount --bind '{}' /etc/resolv.conf && python3 -c \"\
import socket, time\n\
try: socket.getaddrinfo('slow.t32.test', 80)\n\
except OSError: pass\n\
time.sleep(0.3)\"",
        conf.display()
    );
    let t0 = std::time::Instant::now();
    client(&net, "unshare", &["-m", "sh", "-c", &script]);
    eprintln!("the timed-out lookup took {:?}", t0.elapsed());
    // Judged once the resolver gave up (2 s after its last try) and a
    // second of quiet: on a loaded machine, a while.
    assert!(
        d.wait_line("\"slow.t32.test\"", Duration::from_secs(20)),
        "no verdict for slow.t32.test"
    );
    let out = d.stop();
    let failed = resolve_failed(&out, &net);
    for v in out.json().iter().filter(|v| v["event"] != "connect_failed") {
        eprintln!("{v}");
    }
    eprintln!("{}", out.stderr.lines().last().unwrap_or(""));
    let one = |name: &str| {
        let of: Vec<_> = failed.iter().filter(|v| v["name"] == name).collect();
        assert_eq!(of.len(), 1, "one failure for {name}: {failed:?}");
        of[0].clone()
    };
    let sf = one("y.sf.t32.test");
    assert_eq!(
        (&sf["reason"], &sf["rcode"]),
        (&"servfail".into(), &2.into()),
        "{sf}"
    );
    let refused = one("unknown.t32.test");
    assert_eq!(
        (&refused["reason"], &refused["rcode"]),
        (&"refused".into(), &5.into()),
        "{refused}"
    );
    let nodata = one("good.t32.test");
    assert_eq!(
        (&nodata["reason"], &nodata["rcode"], &nodata["qtype"]),
        (&"nodata".into(), &0.into(), &"AAAA".into()),
        "{nodata}"
    );
    let slow = one("slow.t32.test");
    assert_eq!(slow["reason"], "timeout", "{slow}");
    assert!(slow["rcode"].is_null(), "{slow}");
    assert_eq!(slow["server"], format!("198.18.{n}.3:53"), "{slow}");
    assert_eq!(slow["comm"], "python3", "{slow}");
    let nx = one("y.nx.t32.test");
    assert_eq!(
        (&nx["reason"], &nx["rcode"]),
        (&"nxdomain".into(), &3.into()),
        "{nx}"
    );

    // The journal: one entry per failure, its fields as the stream's.
    let entries = journal.wait_for(
        "TCPSTATE_EVENT",
        "resolve_failed",
        5,
        Duration::from_secs(10),
    );
    for (v, server) in [(&nx, 2), (&sf, 2), (&refused, 2), (&nodata, 2), (&slow, 3)] {
        let name = v["name"].as_str().unwrap();
        let e: Vec<_> = entries
            .iter()
            .filter(|e| e["TCPSTATE_NAME"] == name)
            .collect();
        assert_eq!(e.len(), 1, "one journal entry for {name}: {entries:?}");
        let e = e[0];
        eprintln!("journal ({}): {e}", v["reason"]);
        assert_eq!(e["TCPSTATE_REASON"], v["reason"], "{e}");
        assert_eq!(e["TCPSTATE_QTYPE"], v["qtype"], "{e}");
        assert_eq!(
            e["TCPSTATE_SERVER"],
            format!("198.18.{n}.{server}:53"),
            "{e}"
        );
        assert_eq!(e["TCPSTATE_LOOKUP"], "search", "{e}");
        assert_eq!(e["TCPSTATE_COMM"], "python3", "{e}");
        assert_eq!(e["PRIORITY"], "4", "{e}");
        match v["rcode"].as_u64() {
            Some(rcode) => assert_eq!(e["TCPSTATE_RCODE"], rcode.to_string(), "{e}"),
            None => assert!(e["TCPSTATE_RCODE"].is_null(), "{e}"),
        }
        let msg = e["MESSAGE"].as_str().unwrap_or("");
        assert!(
            msg.starts_with(&format!("DNS failure detected: name={name} reason=")),
            "{e}"
        );
    }

    // Slack: each name, with what its server said (a source's later
    // failures may come in its window's digest).
    let said = [
        ("y.nx.t32.test", format!("NXDOMAIN from 198.18.{n}.2")),
        ("y.sf.t32.test", format!("SERVFAIL from 198.18.{n}.2")),
        ("unknown.t32.test", format!("REFUSED from 198.18.{n}.2")),
        (
            "good.t32.test",
            format!("no AAAA record (NODATA) from 198.18.{n}.2"),
        ),
        (
            "slow.t32.test",
            format!("no answer from 198.18.{n}.3 (timeout)"),
        ),
    ];
    let found = poll("every failure on Slack", Duration::from_secs(10), || {
        let texts: Vec<String> = slack.requests().iter().map(|r| r.1.to_string()).collect();
        said.iter()
            .all(|(name, what)| {
                texts
                    .iter()
                    .any(|t| t.contains(name) && t.contains(what.as_str()))
            })
            .then_some(texts)
    });
    let texts: Vec<String> = slack.requests().iter().map(|r| r.1.to_string()).collect();
    for t in &texts {
        eprintln!("slack: {t}");
    }
    assert!(
        found.is_some(),
        "Slack lacks a name or what was said: {said:?} in {texts:?}"
    );
}

/// A flood of unique NXDOMAIN names from one source (another uid) beside
/// a victim's single failure: the victim's comes out in full, the flood's
/// first few too, the rest counted into its source's summary.
#[test]
fn a_flood_of_nxdomains_folds_and_cannot_hide_a_victims_failure() {
    if !require_root("a_flood_of_nxdomains_folds_and_cannot_hide_a_victims_failure") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(143);
    let n = net.n;
    let _r = resolver(
        &net,
        &format!("nameserver 198.18.{n}.2\noptions ndots:1 timeout:1 attempts:1\n"),
    );
    let d = daemon(&net);
    let flood = "import socket, time\n\
                 for i in range(2000):\n\
                 \x20   try: socket.getaddrinfo('f%d.nx.t32.test' % i, 80, socket.AF_INET)\n\
                 \x20   except OSError: pass\n\
                 time.sleep(0.3)\n";
    let mut scanner = Command::new("ip")
        .args(["netns", "exec", &net.client])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        // The system's python: a pyenv shim under /root is not theirs.
        .args(["/usr/bin/python3", "-c", flood])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!python_lookup(&net, "victim.nx.t32.test"));
    assert!(scanner.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(3));
    let out = d.stop();
    let json = out.json();
    let failed = resolve_failed(&out, &net);
    let victim: Vec<_> = failed
        .iter()
        .filter(|v| v["name"] == "victim.nx.t32.test")
        .collect();
    assert_eq!(victim.len(), 1, "{failed:?}");
    assert_eq!(victim[0]["uid"], 0);
    let flood_full = failed.iter().filter(|v| v["uid"] == 65534).count();
    assert!(flood_full <= 10, "the flood's firsts only: {flood_full}");
    let summaries: Vec<_> = json
        .iter()
        .filter(|v| v["event"] == "resolve_failed_summary" && v["uid"] == 65534)
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let count = summaries[0]["count"].as_u64().unwrap();
    eprintln!("{}", summaries[0]);
    assert!(
        count as usize + flood_full >= 1500,
        "the flood counted: {count} + {flood_full}\n{}",
        out.stderr
    );
}

/// One failure to every sink a test can stand in for: the syslog line,
/// the Slack message (`DNS failure: … cannot resolve …: NXDOMAIN from …`),
/// the text stream, and /metrics by reason.
#[test]
fn a_failed_lookup_reaches_syslog_slack_text_and_metrics() {
    if !require_root("a_failed_lookup_reaches_syslog_slack_text_and_metrics") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(144);
    let n = net.n;
    let _r = resolver(&net, &search_conf(&net));
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let mport = free_port();
    let d = Daemon::builder([
        "--format",
        "text",
        "--dns-names",
        "on",
        "--metrics-addr",
        &format!("127.0.0.1:{mport}"),
    ])
    .alerts_to(&syslog, &slack)
    .args(net.watch_args())
    .start();
    assert!(!python_lookup(&net, "api.nx.t32.test"));
    let lines = syslog.wait_for("DNS failure detected", 1, Duration::from_secs(10));
    eprintln!("syslog: {}", lines[0]);
    assert!(
        lines[0].contains("name=api.nx.t32.test reason=nxdomain"),
        "{lines:?}"
    );
    let reqs = slack.wait_requests(1, Duration::from_secs(10));
    let text = reqs[0].1["text"].as_str().unwrap().to_string();
    eprintln!("slack: {text}");
    assert_eq!(
        text,
        format!("DNS failure: python3 (pid {}) cannot resolve api.nx.t32.test: NXDOMAIN from 198.18.{n}.2", {
            let pid = lines[0]
                .split(" pid=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap();
            pid.to_string()
        })
    );
    let (status, body) = http_get(mport, "/metrics").unwrap();
    assert_eq!(status, 200);
    let nx = body
        .lines()
        .find(|l| l.starts_with("tcpstate_resolve_failures_total{reason=\"nxdomain\"}"))
        .unwrap_or_else(|| panic!("{body}"));
    eprintln!("metrics: {nx}");
    assert!(nx.ends_with(" 1"), "{nx}");
    let out = d.stop();
    // As root here, every process's resolv.conf is read, and it says so.
    assert!(
        out.stderr
            .contains("DNS lookups judged by each process's resolv.conf (search list, ndots)"),
        "{}",
        out.stderr
    );
    let text_line = out
        .stdout
        .iter()
        .find(|l| l.starts_with("DNS failure detected: name=api.nx.t32.test"))
        .unwrap_or_else(|| panic!("{:?}", out.stdout));
    eprintln!("text: {text_line}");
    assert!(
        text_line.contains(&format!("server=198.18.{n}.2:53")),
        "{text_line}"
    );
}

/// Issue 32: a name that does not resolve is an Alertmanager alert of its
/// own, `DNSResolutionFailing`, labelled by the name; it resolves when a
/// lookup of that name is answered. Real Alertmanager, its webhook to a
/// stand-in receiver.
#[test]
fn a_name_that_does_not_resolve_alerts_alertmanager_until_it_is_answered() {
    if !require_root("a_name_that_does_not_resolve_alerts_alertmanager_until_it_is_answered") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(145);
    let n = net.n;
    // No search list: the name asked is the name answered.
    let r = resolver(
        &net,
        &format!("nameserver 198.18.{n}.2\noptions timeout:1 attempts:1\n"),
    );
    let hook = FakeSlack::start();
    let am = Server::alertmanager(&format!("http://127.0.0.1:{}/hook", hook.port));
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--dns-names",
        "on",
        "--alert-window",
        "2s",
        "--resolve-after",
        "60s",
        "--alertmanager-url",
        &format!("http://127.0.0.1:{}", am.port),
    ])
    .args(net.watch_args())
    .hostname("dns-fleet")
    .start();
    // dnsmasq has no record and no upstream for it: REFUSED.
    assert!(!python_lookup(&net, "late.t32.test"));
    let firing = poll(
        "DNSResolutionFailing firing",
        Duration::from_secs(20),
        || {
            notifications(&hook, "DNSResolutionFailing")
                .into_iter()
                .next()
        },
    )
    .unwrap_or_else(|| panic!("no notification: {:?}", hook.requests()));
    eprintln!("firing: {firing:?}");
    assert_eq!(firing.0, "firing", "{firing:?}");
    let a = &firing.1[0];
    assert_eq!(a["labels"]["name"], "late.t32.test", "{a}");
    assert_eq!(a["labels"]["reason"], "refused", "{a}");
    assert_eq!(a["labels"]["instance"], "dns-fleet", "{a}");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("DNS lookups on dns-fleet of late.t32.test fail: ")
            && summary.ends_with(&format!("REFUSED from 198.18.{n}.2")),
        "{summary}"
    );
    assert!(
        a["annotations"]["sources"]
            .as_str()
            .unwrap()
            .starts_with("python3 (pid "),
        "{a}"
    );
    assert_eq!(a["annotations"]["lookup"], "search", "{a}");

    // The name now has an address: its next lookup is answered.
    r.add_host(&format!("198.18.{}.2 late.t32.test", net.n));
    let answered = poll("late.t32.test answered", Duration::from_secs(10), || {
        python_lookup(&net, "late.t32.test").then_some(())
    });
    assert!(answered.is_some(), "dnsmasq never answered late.t32.test");
    let resolved = poll(
        "DNSResolutionFailing resolved",
        Duration::from_secs(20),
        || {
            notifications(&hook, "DNSResolutionFailing")
                .into_iter()
                .find(|n| n.0 == "resolved")
        },
    )
    .unwrap_or_else(|| panic!("not resolved: {:?}", hook.requests()));
    eprintln!("resolved: {resolved:?}");
    let summary = resolved.1[0]["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("late.t32.test resolve again: ")
            && summary.ends_with("; a lookup of it was answered"),
        "{summary}"
    );
    let out = d.stop();
    assert_eq!(out.stat("fired"), 1, "{}", out.stderr);
    assert_eq!(out.stat("resolved"), 1, "{}", out.stderr);
    assert_eq!(out.stat("am_lost_alerts"), 0, "{}", out.stderr);
}

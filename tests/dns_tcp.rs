//! End to end, as root: DNS over TCP (issue 32). A real dnsmasq in the
//! server namespace has names with 40 A records, whose answer does not fit
//! glibc's 512-byte UDP answer (no EDNS0): dnsmasq sets TC, glibc asks
//! again over TCP (`writev` of the length and the query, then a read of
//! the length and one of the answer). tcpstate learns names from the TCP
//! answer, judges the lookup by it, and says `truncated_unanswered` when
//! the TCP retry gets no answer (nftables drops TCP port 53). With
//! `options use-vc`, glibc asks over TCP alone. Real clients: getent and
//! Python's getaddrinfo. No query leaves the test's namespaces (the
//! client namespace's resolv.conf points at the server namespace's
//! dnsmasq). Here the kernel refuses trampolines: `--dns-names on` takes
//! the syscall fallback, the path that reads DNS over TCP.

mod common;

use std::time::Duration;

use common::*;

/// Every daemon sees every lookup on the host: one test at a time.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Loopback addresses in the client namespace: a connect there is
/// refused at once.
const BIG_NET: &str = "127.77.0";

/// dnsmasq on 198.18.N.2: `big1`/`big2.t32t.test` with 40 A records each
/// (127.77.0.1-40, 127.77.1.1-40), NXDOMAIN below `nx.t32t.test`; gone on
/// drop, with the client namespace's resolv.conf.
fn resolver(net: &Net, resolv_conf: &str) -> Dns {
    let n = net.n;
    let mut hosts = format!("198.18.{n}.2 good.t32t.test\n");
    // Apart, so neither name's answer relabels the other's addresses.
    for (name, net) in [("big1.t32t.test", BIG_NET), ("big2.t32t.test", "127.77.1")] {
        for i in 1..=40 {
            hosts.push_str(&format!("{net}.{i} {name}\n"));
        }
    }
    Dns::builder(net, &hosts)
        .ready("good.t32t.test")
        .args(["--address=/nx.t32t.test/"])
        .resolv_conf(resolv_conf)
        .start()
}

fn daemon(net: &Net) -> Daemon {
    Daemon::builder(["--format", "json", "--no-syslog", "--dns-names", "on"])
        .args(net.watch_args())
        .args(["-d", &format!("{BIG_NET}.0/24")])
        .start()
}

fn conf(net: &Net, options: &str) -> String {
    format!(
        "nameserver 198.18.{}.2\noptions ndots:1 timeout:1 attempts:1 {options}\n",
        net.n
    )
}

/// Python resolves `name` (IPv4), then connects to `connect` of its
/// addresses on port 9 (refused), and stays a moment: its /proc entry is
/// there when tcpstate reads its queries. Whether the lookup succeeded.
fn python(net: &Net, name: &str, connect: usize) -> bool {
    let script = format!(
        "import socket, time\n\
         try:\n    ai = socket.getaddrinfo('{name}', 9, socket.AF_INET, socket.SOCK_STREAM); ok = True\n\
         except OSError:\n    ai = []; ok = False\n\
         for a in ai[:{connect}]:\n\
         \x20   s = socket.socket()\n\
         \x20   try: s.connect(a[4])\n\
         \x20   except OSError: pass\n\
         \x20   s.close()\n\
         time.sleep(0.3)\n\
         raise SystemExit(0 if ok else 1)\n"
    );
    client(net, "python3", &["-c", &script]).0
}

/// The lookups that failed against this test's own servers (198.18.N.*):
/// the daemon sees every lookup on the host, another test's too.
fn resolve_failed(out: &Stopped, net: &Net) -> Vec<serde_json::Value> {
    let ours = format!("198.18.{}.", net.n);
    for l in out
        .stdout
        .iter()
        .filter(|l| l.contains("\"resolve_failed\""))
    {
        eprintln!("{l}");
    }
    out.json()
        .into_iter()
        .filter(|v| v["event"] == "resolve_failed")
        .filter(|v| v["server"].as_str().is_some_and(|s| s.starts_with(&ours)))
        .collect()
}

/// Case 1: the UDP answer is truncated; glibc's retry over TCP gets the 40
/// addresses. A truncated answer teaches no names (its client ignores
/// it): the names the failed connects carry came from the TCP answer.
#[test]
fn names_are_learned_from_the_tcp_retry_of_a_truncated_answer() {
    if !require_root("names_are_learned_from_the_tcp_retry_of_a_truncated_answer") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(160);
    let _r = resolver(&net, &conf(&net, ""));
    let d = daemon(&net);
    assert!(python(&net, "big1.t32t.test", 40), "the lookup over TCP");
    // getent too: its answer over TCP, no failure.
    assert!(client(&net, "getent", &["ahostsv4", "big2.t32t.test"]).0);
    assert!(d.wait_line("\"connect_failed\"", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(3));
    let out = d.stop();
    eprintln!("{}", out.stderr.lines().last().unwrap_or(""));
    let big: Vec<_> = out
        .failures()
        .into_iter()
        .filter(|v| {
            v["daddr"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("{BIG_NET}.")))
        })
        .collect();
    assert_eq!(big.len(), 40, "every connect refused: {big:?}");
    let named: Vec<_> = big.iter().filter(|v| !v["dname"].is_null()).collect();
    if let Some(l) = out
        .stdout
        .iter()
        .find(|l| l.contains("\"dname\":\"big1.t32t.test\""))
    {
        eprintln!("{l}");
    }
    // An answer keeps its first 16 addresses (docs/dns.md).
    assert!(named.len() >= 10, "{} named: {big:?}", named.len());
    assert!(
        named.iter().all(|v| v["dname"] == "big1.t32t.test"),
        "{named:?}"
    );
    assert!(out.stat("dns_truncated") >= 2, "{}", out.stderr);
    assert!(out.stat("dns_tcp_messages") >= 4, "{}", out.stderr);
    assert!(resolve_failed(&out, &net).is_empty());
}

/// Case 2: `options use-vc`: glibc asks over TCP alone (A and AAAA written at
/// once); a name that does not exist is one `nxdomain`, named as asked.
#[test]
fn an_nxdomain_over_tcp_is_one_failure() {
    if !require_root("an_nxdomain_over_tcp_is_one_failure") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(161);
    let n = net.n;
    let _r = resolver(&net, &conf(&net, "use-vc"));
    let d = daemon(&net);
    assert!(!client(&net, "getent", &["hosts", "getent.nx.t32t.test"]).0);
    assert!(!python(&net, "py.nx.t32t.test", 0));
    for name in ["getent", "py"] {
        assert!(
            d.wait_line(&format!("\"{name}.nx.t32t.test\""), Duration::from_secs(15)),
            "no verdict for {name}"
        );
    }
    let out = d.stop();
    eprintln!("{}", out.stderr.lines().last().unwrap_or(""));
    let failed = resolve_failed(&out, &net);
    for (name, comm) in [
        ("getent.nx.t32t.test", "getent"),
        ("py.nx.t32t.test", "python3"),
    ] {
        let of: Vec<_> = failed.iter().filter(|v| v["name"] == name).collect();
        assert_eq!(of.len(), 1, "one failure for {name}: {failed:?}");
        let v = of[0];
        assert_eq!(
            (&v["reason"], &v["rcode"]),
            (&"nxdomain".into(), &3.into()),
            "{v}"
        );
        assert_eq!(v["server"], format!("198.18.{n}.2:53"), "{v}");
        assert_eq!(v["comm"], comm, "{v}");
    }
    assert!(out.stat("dns_tcp_messages") >= 4, "{}", out.stderr);
}

/// Case 3: the UDP answer is truncated and nftables drops TCP port 53 at the
/// server: the retry's SYN never gets through, no answer comes:
/// `truncated_unanswered`, once the resolver's timeout has passed. In the
/// JSON stream, the real journal (systemd-journald) and Slack.
#[test]
fn a_truncated_answer_whose_tcp_retry_is_dropped_is_truncated_unanswered() {
    if !require_root("a_truncated_answer_whose_tcp_retry_is_dropped_is_truncated_unanswered") {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(162);
    let n = net.n;
    let _r = resolver(&net, &conf(&net, ""));
    net.server_nft(
        "table inet t32t {\n chain input {\n  type filter hook input priority 0;\n  \
         tcp dport 53 drop\n }\n}\n",
    );
    let (journal, slack) = (Journal::start(), FakeSlack::start());
    let d = Daemon::builder(["--format", "json", "--dns-names", "on"])
        .alerts_to_journal(&journal, &slack)
        .args(net.watch_args())
        .start();
    assert!(!python(&net, "big1.t32t.test", 0));
    assert!(!client(&net, "getent", &["ahostsv4", "big2.t32t.test"]).0);
    for name in ["big1", "big2"] {
        assert!(
            d.wait_line(&format!("\"{name}.t32t.test\""), Duration::from_secs(15)),
            "no verdict for {name}"
        );
    }
    let out = d.stop();
    eprintln!("{}", out.stderr.lines().last().unwrap_or(""));
    let failed = resolve_failed(&out, &net);
    for (name, comm) in [("big1.t32t.test", "python3"), ("big2.t32t.test", "getent")] {
        let of: Vec<_> = failed.iter().filter(|v| v["name"] == name).collect();
        assert_eq!(of.len(), 1, "one failure for {name}: {failed:?}");
        let v = of[0];
        assert_eq!(v["reason"], "truncated_unanswered", "{v}");
        assert!(v["rcode"].is_null(), "{v}");
        assert_eq!(v["qtype"], "A", "{v}");
        assert_eq!(v["server"], format!("198.18.{n}.2:53"), "{v}");
        assert_eq!(v["comm"], comm, "{v}");
    }
    let entries = journal.wait_for(
        "TCPSTATE_REASON",
        "truncated_unanswered",
        2,
        Duration::from_secs(10),
    );
    for name in ["big1.t32t.test", "big2.t32t.test"] {
        let e: Vec<_> = entries
            .iter()
            .filter(|e| e["TCPSTATE_NAME"] == name)
            .collect();
        assert_eq!(e.len(), 1, "one journal entry for {name}: {entries:?}");
        eprintln!("journal: {}", e[0]);
        assert_eq!(e[0]["TCPSTATE_EVENT"], "resolve_failed", "{}", e[0]);
        assert_eq!(
            e[0]["TCPSTATE_SERVER"],
            format!("198.18.{n}.2:53"),
            "{}",
            e[0]
        );
        assert!(e[0]["TCPSTATE_RCODE"].is_null(), "{}", e[0]);
    }
    let what = format!("truncated answer from 198.18.{n}.2, no answer over TCP");
    let texts: Vec<String> = slack.requests().iter().map(|r| r.1.to_string()).collect();
    for t in &texts {
        eprintln!("slack: {t}");
    }
    for name in ["big1.t32t.test", "big2.t32t.test"] {
        assert!(
            texts.iter().any(|t| t.contains(name) && t.contains(&what)),
            "Slack lacks {name}: {what}: {texts:?}"
        );
    }
}

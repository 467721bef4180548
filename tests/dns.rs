//! End to end, as root: destinations by the DNS name the application
//! resolved. A real dnsmasq in the server namespace (never forwarding)
//! answers for test names; real clients (curl, getent) in the client
//! namespace resolve through it: `ip netns exec` mounts
//! /etc/netns/<client>/resolv.conf over /etc/resolv.conf. No query ever
//! goes to this machine's own resolver: a daemon that resolves runs in
//! the client namespace too.

mod common;

use std::time::Duration;

use common::*;

/// tcpstate watching `--dest NAME` (with the DNS hook on), inside the
/// client namespace: it resolves through the test's dnsmasq too.
fn watching(net: &Net, name: &str) -> Daemon {
    Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--dns-names",
        "on",
        "-d",
        name,
    ])
    .via(["ip", "netns", "exec", &net.client])
    .start()
}

#[test]
fn failures_carry_the_name_the_application_resolved() {
    if !require_root("failures_carry_the_name_the_application_resolved") {
        return;
    }
    let net = Net::new(80);
    let n = net.n;
    let hosts = format!(
        "198.18.{n}.2 ready.tsdns.test\n198.18.{n}.3 api.tsdns.test\n2001:db8:{n}::2 v6.tsdns.test\n"
    );
    let _dns = Dns::start(&net, &hosts, &["www.tsdns.test,api.tsdns.test"]);
    // on: where the kernel refuses trampolines (this machine), auto would
    // attach no DNS hook; on takes the fallback. Alerts to a real HTTP
    // server standing in for Slack and a real syslog datagram socket.
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = Daemon::builder([
        "--format",
        "json",
        "--dns-names",
        "on",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        &slack.url(),
    ])
    .args(net.watch_args())
    .start();
    // Nothing listens on port 8080: each is refused. A CNAME keeps the
    // name asked for; IPv6; then an address nobody resolved.
    for url in [
        "http://www.tsdns.test:8080/".to_string(),
        "http://v6.tsdns.test:8080/".to_string(),
        format!("http://198.18.{n}.4:8080/"),
    ] {
        client(&net, "curl", &["-s", "-m", "2", &url]);
    }
    let lines = syslog.wait_for("TCP failure detected", 3, Duration::from_secs(5));
    let reqs = slack.wait_requests(1, Duration::from_secs(5));
    let out = d.stop();
    let www_line = lines
        .iter()
        .find(|l| l.contains(&format!("198.18.{n}.3:8080 ")))
        .unwrap_or_else(|| panic!("no syslog line for www: {lines:?}"));
    eprintln!("syslog: {www_line}");
    assert!(www_line.contains(" dname=www.tsdns.test"), "{www_line}");
    let slack_text: String = reqs.iter().map(|(_, b)| b.to_string()).collect();
    eprintln!("slack: {}", reqs[0].1["text"]);
    assert!(
        slack_text.contains(&format!("www.tsdns.test (198.18.{n}.3):8080")),
        "{slack_text}"
    );
    let www = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert_eq!(www["dname"], "www.tsdns.test", "{www}");
    assert_eq!(www["comm"], "curl");
    let v6 = out.one("connect_failed", sock(net.server_v6(), 8080));
    assert_eq!(v6["dname"], "v6.tsdns.test", "{v6}");
    let bare = out.one("connect_failed", sock(net.server_v4_extra(4), 8080));
    assert!(bare["dname"].is_null(), "never a guess: {bare}");
    assert!(out.stat("dns_answers") >= 3, "{}", out.stderr);
    assert_eq!(out.stat("dns_evicted"), 0);
}

#[test]
fn a_watched_name_is_resolved_in_its_namespace_and_only_it_is_watched() {
    if !require_root("a_watched_name_is_resolved_in_its_namespace_and_only_it_is_watched") {
        return;
    }
    let net = Net::new(81);
    let n = net.n;
    let hosts = format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.3 api.tsdns.test\n");
    let _dns = Dns::start(&net, &hosts, &[]);
    // The daemon resolves through the test's dnsmasq: it runs in the
    // client namespace, whose resolv.conf points there.
    let d = watching(&net, "api.tsdns.test");
    client(
        &net,
        "curl",
        &["-s", "-m", "2", "http://api.tsdns.test:8080/"],
    );
    client(
        &net,
        "curl",
        &["-s", "-m", "2", &format!("http://198.18.{n}.2:8080/")],
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = d.stop();
    assert!(
        out.stderr
            .contains(&format!("names api.tsdns.test=198.18.{n}.3")),
        "{}",
        out.stderr
    );
    let v = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert_eq!(v["dname"], "api.tsdns.test");
    assert_eq!(
        out.failures().len(),
        1,
        "198.18.{n}.2 is not watched: {:?}",
        out.stdout
    );
}

/// A record that moves while it is watched (TTL 1 s): the watch follows
/// the answers applications receive, so the failure at the new address is
/// reported, named, though only the name was given.
#[test]
fn a_watched_name_that_moves_is_followed() {
    if !require_root("a_watched_name_that_moves_is_followed") {
        return;
    }
    let net = Net::new(82);
    let n = net.n;
    let at =
        |host: u8| format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.{host} moving.tsdns.test\n");
    let dns = Dns::start_ttl(&net, &at(3), &[], 1);
    let d = watching(&net, "moving.tsdns.test");
    let url = "http://moving.tsdns.test:8080/";
    client(&net, "curl", &["-s", "-m", "2", url]);
    dns.rewrite(&at(4));
    // Past the old answer's TTL; an application looks the name up (the
    // answer reaches tcpstate), then connects.
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, moved) = client(&net, "getent", &["hosts", "moving.tsdns.test"]);
    assert!(ok && moved.contains(&format!("198.18.{n}.4")), "{moved}");
    std::thread::sleep(Duration::from_millis(300));
    client(&net, "curl", &["-s", "-m", "2", url]);
    // Nobody resolved .2 to a watched name: not watched.
    client(
        &net,
        "curl",
        &["-s", "-m", "2", &format!("http://198.18.{n}.2:8080/")],
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = d.stop();
    assert!(
        out.stderr
            .contains(&format!("names moving.tsdns.test=198.18.{n}.3")),
        "{}",
        out.stderr
    );
    let before = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert_eq!(before["dname"], "moving.tsdns.test", "{before}");
    let after = out.one("connect_failed", sock(net.server_v4_extra(4), 8080));
    assert_eq!(after["dname"], "moving.tsdns.test", "{after}");
    assert_eq!(
        out.failures().len(),
        2,
        "198.18.{n}.2 is not watched: {:?}",
        out.stdout
    );
}

/// A --dest name whose resolver never answers (its queries dropped in the
/// server namespace): warned about at the first timeout, and named again
/// before the stop line; not only "(resolving)" on the start line.
#[test]
fn a_dest_name_whose_resolver_never_answers_is_warned_about() {
    if !require_root("a_dest_name_whose_resolver_never_answers_is_warned_about") {
        return;
    }
    let net = Net::new(112);
    net.server_nft(
        "table inet t30 {\n chain in {\n  type filter hook input priority 0;\n  udp dport 53 drop\n  tcp dport 53 drop\n }\n}\n",
    );
    let etc = std::path::PathBuf::from(format!("/etc/netns/{}", net.client));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("resolv.conf"),
        format!("nameserver {}\n", net.server_v4()),
    )
    .unwrap();
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _etc = Gone(etc);
    let syslog = FakeSyslog::start();
    let d = Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "-d",
        "silent.tsdns.test",
    ])
    .via(["ip", "netns", "exec", &net.client])
    .start();
    let warned = syslog.wait_for(
        "--dest silent.tsdns.test does not resolve (no answer within 5s",
        1,
        Duration::from_secs(15),
    );
    assert_eq!(warned.len(), 1, "{:?}", syslog.lines());
    let out = d.stop();
    assert!(
        out.stderr.contains("silent.tsdns.test=(resolving)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("--dest silent.tsdns.test did not resolve: it was not watched"),
        "{}",
        out.stderr
    );
}

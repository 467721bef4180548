//! End to end, as root: destinations by the DNS name the application
//! resolved. A real dnsmasq in the server namespace (never forwarding)
//! answers for test names; real clients (curl, getent) in the client
//! namespace resolve through it: `ip netns exec` mounts
//! /etc/netns/<client>/resolv.conf over /etc/resolv.conf. No query ever
//! goes to this machine's own resolver: a daemon that resolves runs in
//! the client namespace too.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Every daemon sees every DNS answer on the host: the flood test runs
/// alone, the others together.
static QUIET: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// curl to `url` in the client namespace (it fails: nothing listens).
fn curl(net: &Net, url: &str) {
    client(net, "curl", &["-s", "-m", "2", url]);
}

/// tcpstate with the DNS hook on, watching the test's namespaces.
fn named(net: &Net) -> Daemon {
    Daemon::builder(["--format", "json", "--no-syslog", "--dns-names", "on"])
        .args(net.watch_args())
        .start()
}

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
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
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
    let d = Daemon::builder(["--format", "json", "--dns-names", "on"])
        .alerts_to(&syslog, &slack)
        .args(net.watch_args())
        .start();
    // Nothing listens on port 8080: each is refused. A CNAME keeps the
    // name asked for; IPv6; then an address nobody resolved.
    for url in [
        "http://www.tsdns.test:8080/".to_string(),
        "http://v6.tsdns.test:8080/".to_string(),
        format!("http://198.18.{n}.4:8080/"),
    ] {
        curl(&net, &url);
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
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(81);
    let n = net.n;
    let hosts = format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.3 api.tsdns.test\n");
    let _dns = Dns::start(&net, &hosts, &[]);
    // The daemon resolves through the test's dnsmasq: it runs in the
    // client namespace, whose resolv.conf points there.
    let d = watching(&net, "api.tsdns.test");
    curl(&net, "http://api.tsdns.test:8080/");
    curl(&net, &format!("http://198.18.{n}.2:8080/"));
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
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(82);
    let n = net.n;
    let at =
        |host: u8| format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.{host} moving.tsdns.test\n");
    let dns = Dns::start_ttl(&net, &at(3), &[], 1);
    let d = watching(&net, "moving.tsdns.test");
    let url = "http://moving.tsdns.test:8080/";
    curl(&net, url);
    dns.rewrite(&at(4));
    // Past the old answer's TTL; an application looks the name up (the
    // answer reaches tcpstate), then connects.
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, moved) = client(&net, "getent", &["hosts", "moving.tsdns.test"]);
    assert!(ok && moved.contains(&format!("198.18.{n}.4")), "{moved}");
    std::thread::sleep(Duration::from_millis(300));
    curl(&net, url);
    // Nobody resolved .2 to a watched name: not watched.
    curl(&net, &format!("http://198.18.{n}.2:8080/"));
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

/// tests/dns-hostile/hostile.py: a hostile DNS peer and client (Python,
/// standard library), readable by nobody.
fn hostile_py() -> String {
    format!(
        "{}/tests/dns-hostile/hostile.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A hostile DNS server on `addr`:53 in the server namespace; gone on drop.
struct Hostile(Child);

impl Hostile {
    fn start(net: &Net, addr: std::net::Ipv4Addr, mode: &[&str]) -> Hostile {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.server,
                "/usr/bin/python3",
                &hostile_py(),
                "serve",
            ])
            .arg(addr.to_string())
            .args(mode)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "hostile server");
        Hostile(child)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A cgroup of its own under the cgroup v2 root (prefix t29), removed on
/// drop.
struct OwnCgroup(std::path::PathBuf);

impl OwnCgroup {
    fn new(tag: &str) -> OwnCgroup {
        let p = cgroup_v2_root().join(format!("t29-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        OwnCgroup(p)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs hostile.py with `args` in the client namespace as nobody, in
/// `cg` if given: a local user with no privilege.
fn as_nobody(net: &Net, cg: Option<&OwnCgroup>, args: &[&str]) -> bool {
    let mut script = String::new();
    if let Some(cg) = cg {
        // Into the cgroup first: `ip netns exec` remounts /sys.
        script += &format!("echo $$ > {}/cgroup.procs && ", cg.0.display());
    }
    script += &format!(
        "exec ip netns exec {} setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 {}",
        net.client,
        hostile_py()
    );
    for a in args {
        script += &format!(" '{a}'");
    }
    Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success()
}

/// Issue 29, finding 2: a user fills a watched name with bogus addresses
/// (TTL 2^31-1) from a server of its own; then the name really moves. The
/// watch follows only tcpstate's own lookups and the host's resolver, so
/// the failure at the new address is reported.
#[test]
fn a_user_cannot_blind_a_watched_name() {
    if !require_root("a_user_cannot_blind_a_watched_name") {
        return;
    }
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(83);
    let n = net.n;
    let at =
        |host: u8| format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.{host} real.tsdns.test\n");
    let dns = Dns::start_ttl(&net, &at(3), &[], 1);
    let d = watching(&net, "real.tsdns.test");
    let _bogus = Hostile::start(&net, net.server_v4_extra(4), &["bogus"]);
    let asked = as_nobody(
        &net,
        None,
        &[
            "ask",
            &net.server_v4_extra(4).to_string(),
            "real.tsdns.test",
            "4",
        ],
    );
    assert!(asked, "the forged answers were received");
    dns.rewrite(&at(4));
    let url = "http://real.tsdns.test:8080/";
    let moved = poll(
        "the failure at the new address",
        Duration::from_secs(15),
        || {
            curl(&net, url);
            let needle = format!("\"daddr\":\"198.18.{n}.4\"");
            d.lines().iter().any(|l| l.contains(&needle)).then_some(())
        },
    );
    let out = d.stop();
    assert!(moved.is_some(), "not reported: {}", out.stderr);
    let moved: Vec<_> = out
        .failures()
        .into_iter()
        .filter(|v| v["daddr"] == format!("198.18.{n}.4"))
        .collect();
    assert!(
        moved.iter().all(|v| v["dname"] == "real.tsdns.test"),
        "{moved:?}"
    );
    assert!(out.stat("dns_untrusted") >= 4, "{}", out.stderr);
    assert!(
        !out.stdout.iter().any(|l| l.contains("10.99.")),
        "a bogus address was watched"
    );
}

/// Issue 29, finding 4: a server answers `shop` with a response whose
/// question is another name. The answer answers no query: no name.
#[test]
fn an_answer_to_another_question_names_nothing() {
    if !require_root("an_answer_to_another_question_names_nothing") {
        return;
    }
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(84);
    let n = net.n;
    let bank = format!("bank.tsdns.test=198.18.{n}.3");
    let _swap = Hostile::start(&net, net.server_v4(), &["swap", &bank]);
    let etc = std::path::PathBuf::from(format!("/etc/netns/{}", net.client));
    std::fs::create_dir_all(&etc).unwrap();
    let conf = format!(
        "nameserver {}\noptions attempts:1 timeout:1\n",
        net.server_v4()
    );
    std::fs::write(etc.join("resolv.conf"), conf).unwrap();
    let d = named(&net);
    // An honest answer first: its name is shown (the test can fail).
    let (ok, good) = client(&net, "getent", &["hosts", "good.tsdns.test"]);
    assert!(ok, "{good}");
    curl(&net, "http://good.tsdns.test:8080/");
    // glibc refuses the swapped answer; the address is then tried bare.
    let (ok, _) = client(&net, "getent", &["hosts", "shop.tsdns.test"]);
    assert!(!ok, "glibc took an answer to another question");
    let _ = std::fs::remove_dir_all(&etc);
    let _swap2 = Hostile::start(&net, net.server_v4_extra(4), &["swap", &bank]);
    curl(&net, &format!("http://198.18.{n}.3:8080/"));
    std::thread::sleep(Duration::from_millis(300));
    let out = d.stop();
    let good = out.one("connect_failed", sock(net.server_v4(), 8080));
    assert_eq!(good["dname"], "good.tsdns.test", "{good}");
    let shop = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert!(shop["dname"].is_null(), "{shop}");
    assert!(out.stat("dns_unmatched") >= 1, "{}", out.stderr);
}

/// Issue 29, finding 3: on the fallback, a process sends itself an
/// "answer" and reads it with recvfrom(addrlen=0) over a sockaddr that
/// says port 53. It sent no query: no name.
#[test]
fn a_datagram_read_over_a_forged_source_names_nothing() {
    if !require_root("a_datagram_read_over_a_forged_source_names_nothing") {
        return;
    }
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(85);
    let n = net.n;
    let hosts = format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.3 real.tsdns.test\n");
    let _dns = Dns::start(&net, &hosts, &[]);
    let d = named(&net);
    let forged = format!("198.18.{n}.4");
    let (ok, _) = client(
        &net,
        "/usr/bin/python3",
        &[&hostile_py(), "trick", "forged.tsdns.test", &forged],
    );
    assert!(ok, "the trick ran");
    curl(&net, "http://real.tsdns.test:8080/");
    curl(&net, &format!("http://{forged}:8080/"));
    std::thread::sleep(Duration::from_millis(300));
    let out = d.stop();
    let real = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert_eq!(real["dname"], "real.tsdns.test", "{real}");
    let v = out.one("connect_failed", sock(net.server_v4_extra(4), 8080));
    assert!(v["dname"].is_null(), "{v}");
    assert!(out.stat("dns_unmatched") >= 1, "{}", out.stderr);
}

/// Issue 29, finding 5: nobody floods the name memory with unique names
/// from a cgroup of its own, past its bound; a service's name, learned
/// before, survives.
#[test]
fn a_flood_from_one_source_leaves_another_sources_name() {
    if !require_root("a_flood_from_one_source_leaves_another_sources_name") {
        return;
    }
    // Alone: every daemon sees the flood, and skips answers under it.
    let _alone = QUIET.write().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(86);
    let n = net.n;
    let hosts = format!("198.18.{n}.2 ready.tsdns.test\n198.18.{n}.3 svc.tsdns.test\n");
    let _dns = Dns::start_ttl(&net, &hosts, &[], 3600);
    let _flood = Hostile::start(&net, net.server_v4_extra(4), &["flood"]);
    let d = named(&net);
    let (ok, _) = client(&net, "getent", &["hosts", "svc.tsdns.test"]);
    assert!(ok);
    let cg = OwnCgroup::new("flood");
    let server = net.server_v4_extra(4).to_string();
    let rss_before = rss_kib(d.pid());
    // Past the memory's 65,536 names and its 16 MiB: long unique names
    // (about 150 bytes), each with its own address.
    let long = format!(
        "n{{i}}.{}.{}.flood.tsdns.test",
        "x".repeat(60),
        "y".repeat(60)
    );
    assert!(as_nobody(
        &net,
        Some(&cg),
        &["ask", &server, &long, "90000"]
    ));
    // docs/dns.md: the memory holds 16 MiB, counted as it really is, and
    // a flood of long unique names cannot take it past a quarter more.
    let grew = rss_kib(d.pid()).saturating_sub(rss_before);
    eprintln!("RSS grew {grew} KiB under the flood");
    assert!(grew <= 20 * 1024, "RSS grew {grew} KiB under the flood");
    curl(&net, &format!("http://198.18.{n}.3:8080/"));
    std::thread::sleep(Duration::from_millis(300));
    let out = d.stop();
    eprintln!("{}", out.stderr);
    assert!(
        out.stat("dns_evicted") > 0,
        "the flood did not fill the memory"
    );
    let v = out.one("connect_failed", sock(net.server_v4_extra(3), 8080));
    assert_eq!(v["dname"], "svc.tsdns.test", "{v}");
}

/// The daemon's resident memory (VmRSS), in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A --dest name whose resolver never answers (its queries dropped in the
/// server namespace): warned about at the first timeout, and named again
/// before the stop line; not only "(resolving)" on the start line.
#[test]
fn a_dest_name_whose_resolver_never_answers_is_warned_about() {
    if !require_root("a_dest_name_whose_resolver_never_answers_is_warned_about") {
        return;
    }
    let _quiet = QUIET.read().unwrap_or_else(|e| e.into_inner());
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

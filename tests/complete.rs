//! End to end, as root: failures at every stage (issue "every failed
//! connection"): connect() errors before any SYN, SYNs dropped by this
//! host, local ports exhausted, attempts in flight at start, the early
//! warning, and errors a non-blocking client reads away (real curl).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ETIMEDOUT: i32 = 110;
const ENETUNREACH: i32 = 101;
const EACCES: i32 = 13;
const EADDRNOTAVAIL: i32 = 99;
const ECONNREFUSED: i32 = 111;

/// A network no namespace of the tests routes (TEST-NET-3).
const NOWHERE: &str = "203.0.113.7";

fn start(net: &Net, extra: &[&str]) -> Daemon {
    let mut args = vec!["-d", "203.0.113.0/24"];
    args.extend(extra);
    net.json_daemon(&args)
}

fn assert_fields(v: &Value, reason: &str, stage: &str, errno: i32, comm: &str) {
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(v["stage"], stage, "{v}");
    assert_eq!(v["errno"], errno, "{v}");
    assert_eq!(v["comm"], comm, "{v}");
    assert_eq!(v["pid"], std::process::id(), "{v}");
}

/// An nftables table with one rule in a filter chain on `hook`.
fn rules(hook: &str, rule: &str) -> String {
    format!(
        "table inet tcpstate_test {{\n  chain c {{\n    type filter hook {hook} priority 0; policy accept;\n    {rule}\n  }}\n}}\n"
    )
}

fn ns_run(ns: &str, args: &[&str]) {
    let mut full = vec!["netns", "exec", ns];
    full.extend(args);
    run("ip", &full);
}

#[test]
fn errors_before_the_syn_are_connect_stage_failures() {
    if !require_root("errors_before_the_syn_are_connect_stage_failures") {
        return;
    }
    let net = Net::new(40);
    // A route that refuses: EACCES at connect().
    let prohibited = "198.18.40.200".to_string();
    ns_run(
        &net.client,
        &[
            "ip",
            "route",
            "add",
            "prohibit",
            &format!("{prohibited}/32"),
        ],
    );
    let d = start(&net, &[]);
    let nowhere = sock(NOWHERE.parse::<IpAddr>().unwrap(), 80);
    let denied = sock(prohibited.parse::<IpAddr>().unwrap(), 80);
    assert_eq!(
        net.in_client("t-noroute", move || connect_err(nowhere)),
        ENETUNREACH
    );
    assert_eq!(
        net.in_client("t-prohibit", move || connect_err(denied)),
        EACCES
    );
    // UDP is never reported, even to a network with no route.
    net.in_client("t-udp", move || {
        let u = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        assert!(u
            .connect(sock(NOWHERE.parse::<IpAddr>().unwrap(), 53))
            .is_err());
    });
    let out = d.stop();
    let v = out.one("connect_failed", nowhere);
    assert_fields(&v, "net_unreachable", "connect", ENETUNREACH, "t-noroute");
    let v = out.one("connect_failed", denied);
    assert_fields(&v, "denied", "connect", EACCES, "t-prohibit");
    assert_eq!(
        out.failures().len(),
        2,
        "nothing else, UDP included:\n{}",
        out.stdout.join("\n")
    );
}

#[test]
fn the_start_line_names_how_connect_errors_are_seen() {
    if !require_root("the_start_line_names_how_connect_errors_are_seen") {
        return;
    }
    let net = Net::new(90);
    let nowhere = sock(NOWHERE.parse::<IpAddr>().unwrap(), 80);
    // auto: trampolines where the kernel loads them, else the fallback,
    // which says what it costs. Either way a no-route connect is seen.
    let d = start(&net, &[]);
    assert_eq!(
        net.in_client("t-auto", move || connect_err(nowhere)),
        ENETUNREACH
    );
    let out = d.stop();
    let started = out
        .stderr
        .lines()
        .find(|l| l.contains("tcpstate: started"))
        .unwrap_or_else(|| panic!("no start line:\n{}", out.stderr));
    assert!(
        started.contains("connect-errors via fexit")
            || started.contains(
                "connect-errors via raw_syscalls (every syscall on this host pays; no trampolines: "
            ),
        "{started}"
    );
    assert_fields(
        &out.one("connect_failed", nowhere),
        "net_unreachable",
        "connect",
        ENETUNREACH,
        "t-auto",
    );

    // off: neither hook is attached, so the same failure goes unseen, and
    // the start line says what is lost.
    let d = start(&net, &["--connect-errors", "off"]);
    assert_eq!(
        net.in_client("t-off", move || connect_err(nowhere)),
        ENETUNREACH
    );
    let out = d.stop();
    assert!(
        out.stderr.contains(
            "connect-errors off (--connect-errors off: errors before the SYN, and errors read away with SO_ERROR, are not seen)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.failures().is_empty(), "{}", out.stdout.join("\n"));
}

#[test]
fn a_syn_dropped_by_this_hosts_firewall_is_denied() {
    if !require_root("a_syn_dropped_by_this_hosts_firewall_is_denied") {
        return;
    }
    let net = Net::new(41);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.client, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        rules("output", "tcp dport 84 drop").as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let d = start(&net, &["--slow-after", "0"]);
    let to = sock(net.server_v4(), 84);
    let errno = net.in_client("t-fw", move || connect_err(to));
    let out = d.stop();
    let v = out.one("connect_failed", to);
    // The application saw ETIMEDOUT on this kernel (older ones: EPERM).
    assert_fields(&v, "denied", "handshake", errno, "t-fw");
    assert!(errno == ETIMEDOUT || errno == 1, "errno {errno}");
}

#[test]
fn no_free_local_port_is_port_exhausted_never_canceled() {
    if !require_root("no_free_local_port_is_port_exhausted_never_canceled") {
        return;
    }
    let net = Net::new(42);
    ns_run(
        &net.client,
        &["sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40003"],
    );
    let listener = net.server_listener(sock(net.server_v4(), 80));
    let d = start(&net, &[]);
    let to = sock(net.server_v4(), 80);
    let errno = net.in_client("t-ports", move || {
        let held: Vec<std::net::TcpStream> = (0..4)
            .map(|_| std::net::TcpStream::connect(to).expect("a port is still free"))
            .collect();
        let e = connect_err(to);
        drop(held);
        e
    });
    listener.stop();
    let out = d.stop();
    assert_eq!(errno, EADDRNOTAVAIL);
    let v = out.one("connect_failed", to);
    assert_fields(&v, "port_exhausted", "connect", EADDRNOTAVAIL, "t-ports");
    assert_eq!(out.stat("successes"), 4, "{}", out.stderr);
}

/// A loopback listener whose accept queue is full: further SYNs to it are
/// dropped, so a connect hangs in SYN_SENT. Returns it and what fills it.
fn full_listener() -> (std::net::TcpListener, std::net::TcpStream) {
    let l = loopback_listener(0);
    let filler = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (l, filler)
}

/// A blocking connect that gives up after one SYN retransmit (about 3 s).
fn connect_giving_up_soon(to: SocketAddr) -> i32 {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let one: nix::libc::c_int = 1;
    // SAFETY: setsockopt(2) with a pointer to a live int and its size.
    let r = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_SYNCNT,
            (&one as *const nix::libc::c_int).cast(),
            std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let SocketAddr::V4(v4) = to else {
        panic!("IPv4 only")
    };
    match connect(fd.as_raw_fd(), &SockaddrIn::from(v4)) {
        Ok(()) => panic!("connect to {to} succeeded"),
        Err(e) => e as i32,
    }
}

/// The iterator sees the sockets of tcpstate's own network namespace, so
/// this attempt is made in it, to a loopback listener that drops SYNs.
#[test]
fn an_attempt_in_flight_at_start_is_reported_with_its_process() {
    if !require_root("an_attempt_in_flight_at_start_is_reported_with_its_process") {
        return;
    }
    let (listener, _filler) = full_listener();
    let to = listener.local_addr().unwrap();
    // The connect starts (and hangs: about 3 s) before tcpstate does.
    let client = std::thread::Builder::new()
        .name("t-early".into())
        .spawn(move || connect_giving_up_soon(to))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let port = to.port().to_string();
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--slow-after",
        "0",
        "-d",
        "127.0.0.1",
        "-p",
        &port,
    ])
    .start();
    assert_eq!(client.join().unwrap(), ETIMEDOUT);
    let out = d.stop();
    let v = out.one("connect_failed", to);
    assert_eq!(v["reason"], "timeout", "{v}");
    assert_eq!(v["seen"], "at_start", "{v}");
    assert_eq!(v["pid"], std::process::id(), "{v}");
    assert_eq!(out.stat("at_start"), 1, "{}", out.stderr);
    drop(listener);
}

#[test]
fn a_hanging_attempt_warns_before_it_fails() {
    if !require_root("a_hanging_attempt_warns_before_it_fails") {
        return;
    }
    let net = Net::new(44);
    net.server_nft(&rules(
        "input",
        &format!("ip daddr {} tcp dport 81 drop", net.server_v4()),
    ));
    let syslog = FakeSyslog::start();
    let d = Daemon::builder(["--format", "json", "--slow-after", "1s", "--syslog-socket"])
        .args([syslog.path.to_str().unwrap()])
        .args(net.watch_args())
        .start();
    let to = sock(net.server_v4(), 81);
    let t0 = Instant::now();
    assert_eq!(net.in_client("t-hang", move || connect_err(to)), ETIMEDOUT);
    let warned = syslog.wait_for(
        "TCP connect slow: 198.18.44.2:81",
        1,
        Duration::from_secs(1),
    );
    let out = d.stop();
    let lines = out.json();
    let slow_at = lines.iter().position(|v| v["event"] == "connect_slow");
    let failed_at = lines.iter().position(|v| v["event"] == "connect_failed");
    let (Some(s), Some(f)) = (slow_at, failed_at) else {
        panic!(
            "want connect_slow then connect_failed:\n{}",
            out.stdout.join("\n")
        );
    };
    assert!(s < f, "connect_slow first:\n{}", out.stdout.join("\n"));
    let v = out.one("connect_slow", to);
    assert_eq!(v["comm"], "t-hang", "{v}");
    assert_eq!(v["pid"], std::process::id(), "{v}");
    let ms = v["elapsed_ms"].as_f64().unwrap();
    assert!((1000.0..2500.0).contains(&ms), "elapsed_ms {ms}");
    assert!(v["retransmits"].as_u64().is_some(), "{v}");
    assert_eq!(out.one("connect_failed", to)["reason"], "timeout");
    assert_eq!(warned.len(), 1, "a warning on syslog: {:?}", syslog.lines());
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_blocking_refused_connect_is_reported_once() {
    if !require_root("a_blocking_refused_connect_is_reported_once") {
        return;
    }
    let net = Net::new(45);
    let d = start(&net, &[]);
    let to = sock(net.server_v4(), 9);
    assert_eq!(
        net.in_client("t-once", move || connect_err(to)),
        ECONNREFUSED
    );
    let out = d.stop();
    let v = out.one("connect_failed", to);
    assert_fields(&v, "refused", "handshake", ECONNREFUSED, "t-once");
}

#[test]
fn curl_to_an_icmp_rejected_port_is_host_unreachable_not_canceled() {
    if !require_root("curl_to_an_icmp_rejected_port_is_host_unreachable_not_canceled") {
        return;
    }
    let net = Net::new(46);
    net.server_nft(&rules(
        "input",
        &format!(
            "ip daddr {} tcp dport 82 reject with icmp type host-unreachable",
            net.server_v4()
        ),
    ));
    let d = start(&net, &[]);
    let url = format!("http://{}:82/", net.server_v4());
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.client,
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ])
        .output()
        .expect("curl (is it installed?)");
    assert!(!out.status.success(), "curl should fail");
    let stopped = d.stop();
    let v = stopped.one("connect_failed", sock(net.server_v4(), 82));
    assert_eq!(v["reason"], "host_unreachable", "{v}");
    assert_eq!(v["comm"], "curl", "{v}");
    assert_eq!(v["stage"], "handshake", "{v}");
}

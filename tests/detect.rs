//! End to end, as root: the built daemon, the real kernel, real connections
//! failing in network namespaces made for each test.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ECONNREFUSED: i32 = 111;
const ETIMEDOUT: i32 = 110;
const EHOSTUNREACH: i32 = 113;
const ENETUNREACH: i32 = 101;

/// Server-side rules: port 81 dropped (timeout), 82 and 83 rejected with
/// ICMP host and net unreachable. Every other port is closed (refused).
fn reject_rules(net: &Net) -> String {
    let s = net.server_v4();
    format!(
        "table inet tcpstate_test {{
           chain input {{
             type filter hook input priority 0; policy accept;
             ip daddr {s} tcp dport 81 drop
             ip daddr {s} tcp dport 82 reject with icmp type host-unreachable
             ip daddr {s} tcp dport 83 reject with icmp type net-unreachable
           }}
         }}"
    )
}

/// Asserts exactly one connect_failed line for `to`, with these fields.
fn assert_one(out: &Stopped, to: SocketAddr, reason: &str, errno: i32, comm: &str) -> Value {
    let v = out.one("connect_failed", to);
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(v["errno"], errno, "{v}");
    assert_eq!(v["pid"], std::process::id(), "{v}");
    assert_eq!(v["comm"], comm, "{v}");
    assert!(v["duration_ms"].as_f64().is_some(), "{v}");
    assert!(
        v["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
        "ts is RFC 3339 UTC: {v}"
    );
    v
}

fn start(net: &Net) -> Daemon {
    // Detection only: alerts have tests/alerts.rs.
    net.json_daemon(&[])
}

#[test]
fn refused_is_reported_once_with_process_and_addresses() {
    if !require_root("refused_is_reported_once_with_process_and_addresses") {
        return;
    }
    let net = Net::new(10);
    let d = start(&net);
    let to = sock(net.server_v4(), 9);
    assert_eq!(
        net.in_client("t-refused", move || connect_err(to)),
        ECONNREFUSED
    );
    let out = d.stop();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = assert_one(&out, to, "refused", ECONNREFUSED, "t-refused");
    assert_eq!(v["family"], "ipv4");
    assert_eq!(v["saddr"], net.client_v4().to_string());
    assert_eq!(v["event"], "connect_failed");
    assert_eq!(out.stat("failures"), 1, "{}", out.stderr);
    assert_eq!(out.stat("ringbuf_drops"), 0);
}

/// The loop's wake-ups so far: its thread is the process's main thread
/// (tokio's current-thread runtime).
fn wakeups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches in /proc status")
}

/// With nothing failing, the loop does not poll the ring on its 10 ms
/// drain timer (about 200 wake-ups in 2 s): only the 250 ms slow check and
/// the 1 s housekeeping wake it. The next failure is still reported: the
/// program wakes the idle loop with its record.
#[test]
fn an_idle_daemon_sleeps_until_the_next_failure() {
    if !require_root("an_idle_daemon_sleeps_until_the_next_failure") {
        return;
    }
    let net = Net::new(17);
    let d = start(&net);
    let to = sock(net.server_v4(), 9);
    // A first failure, so the loop has been busy and gone idle again.
    assert_eq!(
        net.in_client("t-idle", move || connect_err(to)),
        ECONNREFUSED
    );
    assert!(d.wait_line("\"dport\":9,", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    let before = wakeups(d.pid());
    std::thread::sleep(Duration::from_secs(2));
    let woke = wakeups(d.pid()) - before;
    assert!(woke < 40, "{woke} wake-ups in 2 s of nothing failing");
    let to = sock(net.server_v4(), 10);
    assert_eq!(
        net.in_client("t-idle", move || connect_err(to)),
        ECONNREFUSED
    );
    assert!(
        d.wait_line("\"dport\":10,", Duration::from_secs(5)),
        "{:?}",
        d.lines()
    );
    let out = d.stop();
    assert_one(&out, to, "refused", ECONNREFUSED, "t-idle");
}

#[test]
fn timeout_is_reported_after_the_syn_retries() {
    if !require_root("timeout_is_reported_after_the_syn_retries") {
        return;
    }
    let net = Net::new(11);
    net.server_nft(&reject_rules(&net));
    let d = start(&net);
    let to = sock(net.server_v4(), 81);
    assert_eq!(
        net.in_client("t-timeout", move || connect_err(to)),
        ETIMEDOUT
    );
    let out = d.stop();
    let v = assert_one(&out, to, "timeout", ETIMEDOUT, "t-timeout");
    // tcp_syn_retries=1: SYN at 0 s, retry at 1 s, give up at 3 s.
    let ms = v["duration_ms"].as_f64().unwrap();
    assert!((2500.0..6000.0).contains(&ms), "duration_ms {ms}");
}

#[test]
fn icmp_unreachables_are_reported_with_their_reasons() {
    if !require_root("icmp_unreachables_are_reported_with_their_reasons") {
        return;
    }
    let net = Net::new(12);
    net.server_nft(&reject_rules(&net));
    let d = start(&net);
    let host = sock(net.server_v4(), 82);
    let netu = sock(net.server_v4(), 83);
    assert_eq!(
        net.in_client("t-hostunr", move || connect_err(host)),
        EHOSTUNREACH
    );
    assert_eq!(
        net.in_client("t-netunr", move || connect_err(netu)),
        ENETUNREACH
    );
    let out = d.stop();
    assert_one(&out, host, "host_unreachable", EHOSTUNREACH, "t-hostunr");
    assert_one(&out, netu, "net_unreachable", ENETUNREACH, "t-netunr");
    assert_eq!(out.failures().len(), 2);
}

#[test]
fn abandoned_connect_is_reported_as_canceled() {
    if !require_root("abandoned_connect_is_reported_as_canceled") {
        return;
    }
    let net = Net::new(13);
    net.server_nft(&reject_rules(&net));
    let d = start(&net);
    let to = sock(net.server_v4(), 81); // dropped: stays in SYN_SENT
    net.in_client("t-cancel", move || connect_and_abandon(to));
    let out = d.stop();
    let v = assert_one(&out, to, "canceled", 0, "t-cancel");
    assert!(v["duration_ms"].as_f64().unwrap() < 500.0, "{v}");
}

#[test]
fn ipv6_and_v4_mapped_refusals_are_reported() {
    if !require_root("ipv6_and_v4_mapped_refusals_are_reported") {
        return;
    }
    let net = Net::new(14);
    let d = start(&net);
    let v6 = sock(net.server_v6(), 9);
    let mapped = sock(net.server_v4().to_ipv6_mapped(), 10);
    assert_eq!(net.in_client("t-v6", move || connect_err(v6)), ECONNREFUSED);
    assert_eq!(
        net.in_client("t-mapped", move || connect_err(mapped)),
        ECONNREFUSED
    );
    let out = d.stop();
    let v = assert_one(&out, v6, "refused", ECONNREFUSED, "t-v6");
    assert_eq!(v["family"], "ipv6");
    assert_eq!(v["daddr"], net.server_v6().to_string());
    // An AF_INET6 socket to ::ffff:a.b.c.d is shown, and filtered, as IPv4.
    let v = assert_one(&out, mapped, "refused", ECONNREFUSED, "t-mapped");
    assert_eq!(v["daddr"], net.server_v4().to_string());
    assert_eq!(v["saddr"], net.client_v4().to_string());
}

#[test]
fn successes_and_unwatched_destinations_are_never_reported() {
    if !require_root("successes_and_unwatched_destinations_are_never_reported") {
        return;
    }
    let net = Net::new(15);
    let listener = net.server_listener(sock(net.server_v4(), 80));
    // Watch one address and one port; fail to its neighbours.
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "-d",
        &format!("{}/32", net.server_v4()),
        "-p",
        "80",
        "-p",
        "9",
    ])
    .start();
    const N: usize = 300;
    let watched = sock(net.server_v4(), 9);
    let other_addr = sock(net.server_v4_extra(3), 9);
    let other_port = sock(net.server_v4(), 10);
    net.in_client("t-filter", move || {
        for _ in 0..N {
            std::net::TcpStream::connect_timeout(&sock(watched.ip(), 80), Duration::from_secs(5))
                .expect("connect to the listener");
        }
        for to in [other_addr, other_port, watched] {
            assert_eq!(connect_err(to), ECONNREFUSED);
        }
    });
    let accepted = listener.stop();
    let out = d.stop();
    assert_eq!(accepted, N as u64);
    assert_one(&out, watched, "refused", ECONNREFUSED, "t-filter");
    assert_eq!(
        out.failures().len(),
        1,
        "only the watched destination may be reported:\n{}",
        out.stdout.join("\n")
    );
    assert_eq!(out.stat("successes"), N as u64, "{}", out.stderr);
    assert_eq!(out.stat("failures"), 1);
    // The other destinations never left the kernel.
    assert_eq!(out.stat("attempts"), N as u64 + 1);
}

#[test]
fn text_format_and_verbose_state_changes() {
    if !require_root("text_format_and_verbose_state_changes") {
        return;
    }
    let net = Net::new(16);
    let d = Daemon::builder(["--verbose", "--no-syslog"])
        .args(net.watch_args())
        .start();
    let to = sock(net.server_v6(), 9);
    net.in_client("t-text", move || connect_err(to));
    let out = d.stop();
    let want = format!(
        "TCP failure detected: [{}]:9 reason=refused",
        net.server_v6()
    );
    let lines: Vec<&String> = out.stdout.iter().filter(|l| l.starts_with(&want)).collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout.join("\n"));
    let line = lines[0];
    assert!(
        line.contains(&format!("pid={}", std::process::id())),
        "{line}"
    );
    assert!(line.contains("comm=t-text"), "{line}");
    assert!(line.contains("after="), "{line}");
    assert!(!line.contains("sport=0"), "{line}");
    // --verbose: the state changes themselves, SYN_SENT included.
    assert!(
        out.stdout.iter().any(|l| l.contains("SYN_SENT")),
        "{}",
        out.stdout.join("\n")
    );
}

/// The daemon's start line: which hooks it has here.
fn start_line(out: &Stopped) -> &str {
    out.stderr
        .lines()
        .find(|l| l.contains("tcpstate: started"))
        .unwrap_or_else(|| panic!("no start line in {}", out.stderr))
}

/// A router between client and server rejects with ICMP, as a firewall on
/// the path does: admin-prohibited, host- and net-unreachable for IPv4,
/// admin-prohibited, no-route and address-unreachable for IPv6. Each
/// failure is reported with the errno the router's ICMP error made; who
/// sent it (`icmp_from`, the router, not the destination) is reported
/// where the kernel attaches trampolines, and where it does not (this
/// machine) the start line says the sender is not seen and the fields are
/// null. tests/kernels/checks proves the sender on the matrix's kernels.
#[test]
fn a_router_rejecting_with_icmp_is_named_where_trampolines_attach() {
    if !require_root("a_router_rejecting_with_icmp_is_named_where_trampolines_attach") {
        return;
    }
    const EACCES: i32 = 13;
    let net = Routed::new(120);
    let (s4, s6) = (net.server_v4(), net.server_v6());
    net.router_nft(&format!(
        "table inet tcpstate_test {{
           chain forward {{
             type filter hook forward priority 0; policy accept;
             ip daddr {s4} tcp dport 91 reject with icmp type admin-prohibited
             ip daddr {s4} tcp dport 92 reject with icmp type host-unreachable
             ip daddr {s4} tcp dport 93 reject with icmp type net-unreachable
             ip6 daddr {s6} tcp dport 91 reject with icmpv6 type admin-prohibited
             ip6 daddr {s6} tcp dport 92 reject with icmpv6 type addr-unreachable
             ip6 daddr {s6} tcp dport 93 reject with icmpv6 type no-route
           }}
         }}"
    ));
    let d = net.json_daemon(&[]);
    // (destination, errno, reason, ICMP type, code)
    let cases = [
        (sock(s4, 91), EACCES, "host_unreachable", 3, 13),
        (sock(s4, 92), EHOSTUNREACH, "host_unreachable", 3, 1),
        (sock(s4, 93), ENETUNREACH, "net_unreachable", 3, 0),
        (sock(s6, 91), EACCES, "denied", 1, 1),
        (sock(s6, 92), EHOSTUNREACH, "host_unreachable", 1, 3),
        (sock(s6, 93), ENETUNREACH, "net_unreachable", 1, 0),
    ];
    for (to, errno, ..) in &cases {
        let (to, errno) = (*to, *errno);
        // ICMP admin-prohibited is EHOSTUNREACH for IPv4 (icmp_err_convert).
        let want = if to.is_ipv4() && errno == EACCES {
            EHOSTUNREACH
        } else {
            errno
        };
        assert_eq!(
            net.in_client("t-routed", move || connect_err(to)),
            want,
            "{to}"
        );
    }
    let out = d.stop();
    let started = start_line(&out);
    let seen = started.contains("icmp-sender via fentry");
    if !seen {
        assert!(
            started.contains("icmp-sender off (") && started.contains("do not say who sent it"),
            "the start line must say the sender is not seen: {started}"
        );
    }
    for (to, errno, reason, icmp_type, icmp_code) in cases {
        let errno = if to.is_ipv4() && errno == EACCES {
            EHOSTUNREACH
        } else {
            errno
        };
        let v = assert_one(&out, to, reason, errno, "t-routed");
        let router = if to.is_ipv4() {
            net.router_v4().to_string()
        } else {
            net.router_v6().to_string()
        };
        if seen {
            assert_eq!(v["icmp_from"], router.as_str(), "{v}");
            assert_eq!(
                (v["icmp_type"].clone(), v["icmp_code"].clone()),
                (icmp_type.into(), icmp_code.into()),
                "{v}"
            );
        } else {
            for k in ["icmp_from", "icmp_type", "icmp_code"] {
                assert!(v[k].is_null(), "{k} must be null where not seen: {v}");
            }
        }
    }
}

/// An address on the client's own link that nobody owns: the kernel asks
/// ARP (NDP for IPv6), nobody answers, and it drops the queued SYN
/// (SKB_DROP_REASON_NEIGH_FAILED) before the attempt fails with
/// host_unreachable. The report names the neighbour that never answered
/// and the device.
#[test]
fn a_neighbour_that_never_answers_is_named() {
    if !require_root("a_neighbour_that_never_answers_is_named") {
        return;
    }
    let net = Net::new(121);
    // The kernel's SYN retries outlast ARP's 3 s (Net cuts them to 3 s).
    run(
        "ip",
        &[
            "netns",
            "exec",
            &net.client,
            "sysctl",
            "-qw",
            "net.ipv4.tcp_syn_retries=3",
        ],
    );
    let d = start(&net);
    let v4 = sock(net.server_v4_extra(77), 80);
    let v6 = sock(
        format!("2001:db8:{}::77", net.n)
            .parse::<std::net::Ipv6Addr>()
            .unwrap(),
        80,
    );
    let (r4, r6) = std::thread::scope(|s| {
        let a = s.spawn(|| net.in_client("t-neigh", move || connect_err(v4)));
        let b = s.spawn(|| net.in_client("t-neigh", move || connect_err(v6)));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((r4, r6), (EHOSTUNREACH, EHOSTUNREACH));
    let out = d.stop();
    let started = start_line(&out);
    // Drop reasons need Linux 5.17's kfree_skb reason.
    let drops = started.contains("netfilter-drops on");
    // IPv6's neighbour discovery frees the SYN without naming a reason
    // (ndisc_error_report: kfree_skb), where ARP's says NEIGH_FAILED.
    for (to, hop, why) in [
        (v4, v4.ip(), "neigh_failed"),
        (v6, v6.ip(), "not_specified"),
    ] {
        let v = assert_one(&out, to, "host_unreachable", EHOSTUNREACH, "t-neigh");
        if drops {
            assert_eq!(v["drop_reason"], why, "{v}");
            assert_eq!(v["drop_next_hop"], hop.to_string(), "{v}");
            assert_eq!(v["drop_dev"], "eth0", "{v}");
        } else {
            assert!(v["drop_reason"].is_null(), "{v}");
        }
    }
}

/// Outside systemd (no $NOTIFY_SOCKET, a foreground run) nothing is kept
/// for a next process: once the daemon has stopped, none of its BPF
/// programs is loaded any more.
#[test]
fn a_foreground_run_leaves_no_program_loaded() {
    if !require_root("a_foreground_run_leaves_no_program_loaded") {
        return;
    }
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(bin())
        .args(["--format", "json", "--no-syslog"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut start = String::new();
    while !start.contains("started") {
        start.clear();
        assert!(
            stderr.read_line(&mut start).unwrap() > 0,
            "tcpstate exited before its start line"
        );
    }
    assert!(!start.contains("kept"), "{start}");
    // The programs its fds hold (links and programs both show prog_id).
    let ids: std::collections::BTreeSet<u32> =
        std::fs::read_dir(format!("/proc/{}/fdinfo", child.id()))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .flat_map(|info| {
                info.lines()
                    .filter_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
    assert!(ids.len() >= 2, "programs held by tcpstate: {ids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("stopped"), "{rest}");
    // The kernel frees a program after an RCU grace period: looked for
    // until gone, for up to 5 s.
    let loaded = |id: &u32| {
        std::process::Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let gone = poll("the programs to be freed", Duration::from_secs(5), || {
        (!ids.iter().any(loaded)).then_some(())
    });
    let left: Vec<u32> = ids.iter().copied().filter(|id| loaded(id)).collect();
    assert!(gone.is_some() || left.is_empty(), "{left:?}");
    assert!(
        left.is_empty(),
        "programs still loaded after the stop: {left:?}"
    );
}

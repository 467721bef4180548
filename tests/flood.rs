//! End to end, as root: a noisy neighbour never hides a failure, and
//! tcpstate never reports itself. The flooder is a real process running
//! as nobody in a cgroup of its own (this test binary, re-run as the
//! ignored `flooder` test); the victim is this process, in another.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ECONNREFUSED: i32 = 111;

/// The flooder, run by `spawn_flooder` through this very binary; does
/// nothing when run as a test (it is ignored unless asked for).
#[test]
#[ignore = "the flooder process of the flood tests, not a test of its own"]
fn flooder() {
    let Ok(mode) = std::env::var("TCPSTATE_FLOOD") else {
        return;
    };
    match mode.as_str() {
        // Refused connects to 60,000 distinct loopback destinations.
        "destinations" => {
            for i in 0..60_000u32 {
                let ip = Ipv4Addr::new(
                    127,
                    100 + (i / 60_000) as u8,
                    (i / 250 % 240) as u8 + 1,
                    (i % 250) as u8 + 1,
                );
                let _ = std::net::TcpStream::connect(SocketAddr::new(ip.into(), 9));
            }
        }
        // Connects left in SYN_SENT (the listener's queue is full).
        "pending" => {
            use nix::sys::socket::{
                connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
            };
            use std::os::fd::AsRawFd;
            let port: u16 = std::env::var("TCPSTATE_FLOOD_PORT")
                .unwrap()
                .parse()
                .unwrap();
            let mut held = Vec::new();
            for _ in 0..1500 {
                let fd = socket(
                    AddressFamily::Inet,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK,
                    None,
                )
                .unwrap();
                let _ = connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port));
                held.push(fd);
            }
            println!("holding");
            std::thread::sleep(Duration::from_secs(30));
        }
        m => panic!("unknown flood {m}"),
    }
}

/// Runs the flooder as nobody in a cgroup of its own; the cgroup goes when
/// the returned guard drops.
struct Flooder {
    child: Child,
    cgroup: PathBuf,
}

impl Flooder {
    fn spawn(mode: &str, port: u16) -> Flooder {
        let cgroup = cgroup_v2_root().join(format!("tcpstate-flood-{}-{mode}", std::process::id()));
        std::fs::create_dir_all(&cgroup).unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "echo $$ > {}/cgroup.procs && ulimit -n 4096 && exec setpriv --reuid=65534 --regid=65534 --clear-groups {} --ignored --exact flooder --nocapture",
            cgroup.display(),
            exe.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .env("TCPSTATE_FLOOD", mode)
            .env("TCPSTATE_FLOOD_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Flooder { child, cgroup }
    }

    /// Waits until the flooder prints `word` on stdout.
    fn wait_for(&mut self, word: &str) {
        use std::io::BufRead;
        let out = self.child.stdout.take().unwrap();
        for line in std::io::BufReader::new(out).lines() {
            if line.unwrap().contains(word) {
                return;
            }
        }
        panic!("the flooder ended without saying {word}");
    }

    fn finish(mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

fn daemon(syslog: &FakeSyslog, slack: &str, extra: &[&str]) -> Daemon {
    Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        slack,
        "--alert-window",
        "5s",
        "-d",
        "127.0.0.0/8",
    ])
    .args(extra)
    .start()
}

fn victim(port: u16) {
    let to = sock(Ipv4Addr::LOCALHOST, port);
    for _ in 0..5 {
        assert_eq!(connect_err(to), ECONNREFUSED);
    }
}

#[test]
fn a_flood_to_60000_destinations_never_hides_the_victims_failure() {
    if !require_root("a_flood_to_60000_destinations_never_hides_the_victims_failure") {
        return;
    }
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = daemon(&syslog, &slack.url(), &[]);
    let t0 = Instant::now();
    let flood = Flooder::spawn("destinations", 0);
    std::thread::sleep(Duration::from_millis(300));
    let db = free_port();
    victim(db);
    let named = format!("127.0.0.1:{db} reason=refused");
    let lines = syslog.wait_for(&named, 1, Duration::from_secs(20));
    let to_syslog = t0.elapsed();
    let in_slack = poll(
        "the victim's destination in a Slack post",
        Duration::from_secs(20),
        || {
            let all: String = slack.requests().iter().map(|r| r.1.to_string()).collect();
            all.contains(&format!("127.0.0.1:{db}")).then_some(())
        },
    )
    .is_some();
    flood.finish();
    let folds = syslog.wait_for("TCP failures folded", 1, Duration::from_secs(10));
    let out = d.stop();
    eprintln!(
        "flood: victim on syslog after {to_syslog:?}; Slack messages {}; syslog alert lines {}; folds {}",
        slack.requests().len(),
        syslog.matching("TCP failure").len(),
        folds.len()
    );
    assert_eq!(
        lines.len(),
        1,
        "the victim's destination, named once on syslog"
    );
    assert!(in_slack, "the victim's destination in a Slack post");
    assert!(!folds.is_empty(), "the flooder's failures as summaries");
    assert!(folds[0].contains("uid 65534"), "{}", folds[0]);
    assert!(
        slack.requests().len() <= 20,
        "{} Slack messages",
        slack.requests().len()
    );
    assert!(out.stat("folded") > 50_000, "{}", out.stderr);
}

#[test]
fn a_full_pending_table_makes_room_from_the_flooder_and_says_so() {
    if !require_root("a_full_pending_table_makes_room_from_the_flooder_and_says_so") {
        return;
    }
    let listener = loopback_listener(0);
    let port = listener.local_addr().unwrap().port();
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = daemon(
        &syslog,
        &slack.url(),
        &["--max-pending", "1024", "--slow-after", "0"],
    );
    let mut flood = Flooder::spawn("pending", port);
    flood.wait_for("holding");
    let db = free_port();
    victim(db);
    let warned = syslog.wait_for("connection attempts forgotten", 1, Duration::from_secs(5));
    let out = d.stop();
    drop(flood);
    let mine: Vec<serde_json::Value> = out
        .failures()
        .into_iter()
        .filter(|v| v["dport"] == db)
        .collect();
    assert_eq!(mine.len(), 5, "{mine:?}");
    for v in &mine {
        assert_eq!(v["pid"], std::process::id(), "{v}");
        assert_eq!(v["seen"], "live", "{v}");
    }
    assert!(out.stat("evicted") >= 476, "{}", out.stderr);
    assert_eq!(
        warned.len(),
        1,
        "a warning while running: {:?}",
        syslog.lines()
    );
}

#[test]
fn tcpstate_never_reports_its_own_connections() {
    if !require_root("tcpstate_never_reports_its_own_connections") {
        return;
    }
    let syslog = FakeSyslog::start();
    // The webhook refuses: every post is a failed connect of tcpstate's.
    let url = format!("http://127.0.0.1:{}/services/T/B/SECRETTOKEN", free_port());
    let d = daemon(&syslog, &url, &[]);
    let dpid = d.pid();
    victim(free_port());
    let said = syslog.wait_for("Slack webhook", 1, Duration::from_secs(5));
    let out = d.stop();
    let own: Vec<serde_json::Value> = out
        .failures()
        .into_iter()
        .filter(|v| v["pid"] == dpid)
        .collect();
    assert!(own.is_empty(), "tcpstate reported itself: {own:?}");
    assert_eq!(out.failures().len(), 5, "{}", out.stdout.join("\n"));
    assert!(
        !said.is_empty(),
        "a line says Slack is failing: {:?}",
        syslog.lines()
    );
    assert!(!format!("{:?}{}", syslog.lines(), out.stderr).contains("SECRETTOKEN"));
}

/// In a pid namespace of its own (a container, a pod without hostPID),
/// tcpstate's pid is not the kernel's. Another process whose host pid
/// equals it was silently not reported (as tcpstate itself) until
/// from_self() asked the namespace; tcpstate's own connects must still be
/// left out there.
#[test]
fn in_a_pid_namespace_a_process_with_tcpstates_pid_is_still_reported() {
    if !require_root("in_a_pid_namespace_a_process_with_tcpstates_pid_is_still_reported") {
        return;
    }
    let port = free_port();
    let mut victim = Command::new("python3")
        .args([
            "-c",
            "import socket, sys, time\n\
             port = int(sys.argv[1])\n\
             sys.stdin.readline()\n\
             for _ in range(5):\n\
             \x20   s = socket.socket(socket.AF_INET6)\n\
             \x20   try: s.connect(('::1', port))\n\
             \x20   except OSError: pass\n\
             \x20   s.close()\n\
             \x20   time.sleep(0.05)\n\
             print('done', flush=True)\n\
             sys.stdin.readline()\n",
            &port.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let host_pid = victim.id();
    let syslog = FakeSyslog::start();
    // Every Slack post is a refused connect of tcpstate's own. All of it
    // on ::1, which the other tests here (127.0.0.0/8) do not watch.
    let slack_port = free_port();
    let url = format!("http://[::1]:{slack_port}/services/T/B/X");
    // sh is the namespace's pid 1; the daemon, forked next, gets the pid
    // after ns_last_pid: the victim's host pid.
    let d = Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        &url,
        "-d",
        "::1/128",
    ])
    .via([
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--",
        "sh",
        "-c",
        r#"echo "$0" > /proc/sys/kernel/ns_last_pid; "$@" & c=$!; trap 'kill -TERM $c' TERM; wait $c; wait $c"#,
        &(host_pid - 1).to_string(),
    ])
    .start();
    // The premise: the daemon's pid in its namespace is the victim's.
    let found: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            if !status.lines().any(|l| l == "Name:\ttcpstate") {
                return None;
            }
            let ids: Vec<u32> = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))?
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            (ids.len() == 2).then(|| (pid, ids[1]))
        })
        .collect();
    assert_eq!(found.len(), 1, "one namespaced tcpstate: {found:?}");
    let (daemon_host_pid, nspid) = found[0];
    assert_eq!(nspid, host_pid, "the daemon's pid in its namespace");
    use std::io::{BufRead, BufReader, Write};
    let mut stdin = victim.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    let mut line = String::new();
    BufReader::new(victim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "done");
    let said = syslog.wait_for("Slack webhook", 1, Duration::from_secs(5));
    // unshare does not pass SIGTERM on: the daemon gets it directly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon_host_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = d.stop();
    drop(stdin);
    let _ = victim.wait();
    let theirs = out
        .failures()
        .into_iter()
        .filter(|v| v["dport"] == port && v["pid"] == host_pid)
        .count();
    assert_eq!(theirs, 5, "{}\n{}", out.stdout.join("\n"), out.stderr);
    let own: Vec<_> = out
        .failures()
        .into_iter()
        .filter(|v| v["dport"] == slack_port)
        .collect();
    assert!(own.is_empty(), "tcpstate reported itself: {own:?}");
    assert!(
        !said.is_empty(),
        "Slack was posted to: {:?}",
        syslog.lines()
    );
}

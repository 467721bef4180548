//! End to end, as root: connects made through io_uring (IORING_OP_CONNECT)
//! by a small liburing client (tests/io_uring/connect.c), never through the
//! connect() syscall. A refused one is seen by the core tracepoint, with
//! its process. One with no route fails before any SYN: only the
//! connect() hook sees it, and only as a trampoline (fexit on
//! __sys_connect_file, which io_uring calls too); the raw_syscalls fallback
//! sees syscalls only, so there it is not reported (docs/reasons.md,
//! "Limits"), and this test says which it checked.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const ECONNREFUSED: i32 = 111;
const ENETUNREACH: i32 = 101;

/// The client, built from its C source with liburing.
fn client() -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("t31-uring-connect");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/io_uring/connect.c");
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .args([src, "-luring"])
        .status()
        .expect("cc");
    assert!(status.success(), "building {src} (liburing-dev installed?)");
    out
}

/// Runs the client in `ns` against `addr:port`: its pid and the result it
/// printed (0 or a negative errno).
fn uring_connect(bin: &PathBuf, ns: &str, addr: &str, port: u16) -> (u32, i32) {
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin)
        .args([addr, &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the io_uring client");
    // `ip netns exec` execs the client: the pid is the client's.
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "io_uring client failed");
    let res = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (pid, res)
}

#[test]
fn io_uring_connects_are_reported_with_their_process() {
    if !require_root("io_uring_connects_are_reported_with_their_process") {
        return;
    }
    let bin = client();
    let net = Net::new(134);
    // A network nothing in the client namespace routes (TEST-NET-3).
    let d = net.json_daemon(&["-d", "203.0.113.0/24"]);
    let server = net.server_v4().to_string();
    let (pid, res) = uring_connect(&bin, &net.client, &server, 9);
    assert_eq!(res, -ECONNREFUSED);
    let (nr_pid, res) = uring_connect(&bin, &net.client, "203.0.113.7", 80);
    assert_eq!(res, -ENETUNREACH);
    std::thread::sleep(Duration::from_millis(200));
    let out = d.stop();

    let v = out.one("connect_failed", sock(net.server_v4(), 9));
    assert_eq!(v["reason"], "refused", "{v}");
    assert_eq!(v["stage"], "handshake", "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert_eq!(v["process"], "t31-uring-conne", "{v}");

    let started = out
        .stderr
        .lines()
        .find(|l| l.contains("tcpstate: started"))
        .unwrap_or_else(|| panic!("no start line:\n{}", out.stderr));
    let no_route: Vec<_> = out
        .failures()
        .into_iter()
        .filter(|v| v["daddr"] == "203.0.113.7")
        .collect();
    if started.contains("connect-errors via fexit") {
        assert_eq!(no_route.len(), 1, "{}", out.stdout.join("\n"));
        let v = &no_route[0];
        assert_eq!(v["reason"], "net_unreachable", "{v}");
        assert_eq!(v["stage"], "connect", "{v}");
        assert_eq!(v["pid"], nr_pid, "{v}");
        assert_eq!(v["process"], "t31-uring-conne", "{v}");
    } else {
        // The fallback: io_uring's connect-stage errors are not seen (no
        // syscall returns them), and nothing else can pretend to.
        assert!(no_route.is_empty(), "{no_route:?}");
        println!("no route through io_uring: not seen here ({started})");
    }
}

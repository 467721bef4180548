//! Network namespaces joined by veth, nftables in them, listeners, and
//! connects that fail.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{run, Daemon};

/// Two network namespaces, client and server, joined by a veth pair.
/// Test `n` (unique per concurrently running test) gets
/// client 198.18.n.1 / 2001:db8:n::1 and server 198.18.n.2 / 2001:db8:n::2
/// (benchmarking and documentation ranges, never routed), plus the extra
/// server addresses 198.18.n.3 and 198.18.n.4. The namespaces are removed
/// on drop, whatever the test did.
pub struct Net {
    pub n: u8,
    pub client: String,
    pub server: String,
}

impl Net {
    pub fn new(n: u8) -> Net {
        let pid = std::process::id();
        let net = Net {
            n,
            client: format!("tcpst-{pid}-{n}-c"),
            server: format!("tcpst-{pid}-{n}-s"),
        };
        run("ip", &["netns", "add", &net.client]);
        run("ip", &["netns", "add", &net.server]);
        let (c, s) = (net.client.as_str(), net.server.as_str());
        run(
            "ip",
            &[
                "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s,
            ],
        );
        for (ns, host) in [(c, 1), (s, 2)] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
            let v4 = format!("198.18.{n}.{host}/24");
            let v6 = format!("2001:db8:{n}::{host}/64");
            // nodad: the address is usable at once, not after DAD.
            for (addr, extra) in [(v4.as_str(), None), (v6.as_str(), Some("nodad"))] {
                let mut args = vec!["-n", ns, "addr", "add", addr, "dev", "eth0"];
                args.extend(extra);
                run("ip", &args);
            }
        }
        for extra in [3, 4] {
            run(
                "ip",
                &[
                    "-n",
                    s,
                    "addr",
                    "add",
                    &format!("198.18.{n}.{extra}/24"),
                    "dev",
                    "eth0",
                ],
            );
        }
        // A timeout then takes about 3 s (1 s + 2 s) instead of 127 s.
        run(
            "ip",
            &[
                "netns",
                "exec",
                c,
                "sysctl",
                "-qw",
                "net.ipv4.tcp_syn_retries=1",
            ],
        );
        net
    }

    pub fn server_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, 2)
    }
    pub fn server_v4_extra(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, host)
    }
    pub fn client_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, 1)
    }
    pub fn server_v6(&self) -> Ipv6Addr {
        format!("2001:db8:{}::2", self.n).parse().unwrap()
    }
    /// The prefixes a daemon for this test should watch.
    pub fn watch_args(&self) -> Vec<String> {
        vec![
            "-d".into(),
            format!("198.18.{}.0/24", self.n),
            "-d".into(),
            format!("2001:db8:{}::/64", self.n),
        ]
    }

    /// tcpstate for detection only: JSON lines, no syslog, watching this
    /// net's prefixes, and `extra`.
    pub fn json_daemon(&self, extra: &[&str]) -> Daemon {
        Daemon::builder(["--format", "json", "--no-syslog"])
            .args(self.watch_args())
            .args(extra)
            .start()
    }

    /// Loads an nftables ruleset (text) into the server namespace.
    pub fn server_nft(&self, ruleset: &str) {
        nft(&self.server, ruleset);
    }

    /// Runs `f` on a new thread named `comm` inside namespace `ns`; the
    /// kernel sees this process's pid and `comm` for what `f` does.
    pub fn in_ns<T: Send + 'static>(
        ns: &str,
        comm: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::Builder::new()
            .name(comm.to_string())
            .spawn(move || {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // setns on a thread changes only that thread's namespace.
                nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .unwrap()
    }

    pub fn in_client<T: Send + 'static>(
        &self,
        comm: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        in_ns_done(&self.client, comm, f)
    }

    /// A listener in the server namespace that accepts and closes until
    /// dropped.
    pub fn server_listener(&self, addr: SocketAddr) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let thread = Net::in_ns(&self.server, "test-server", move || {
            let l = TcpListener::bind(addr).expect("bind in server namespace");
            l.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let mut accepted = 0u64;
            loop {
                match l.accept() {
                    Ok(_) => accepted += 1,
                    // Stop only once the backlog is empty.
                    Err(_) if s.load(Ordering::Relaxed) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            accepted
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server listener ready");
        Listener {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Three network namespaces, client / router / server, over two veth
/// pairs: what a client behind a router or firewall sees. Test `n` gets
/// client 198.18.n.1 / 2001:db8:n::1, router 198.18.n.254 / 2001:db8:n::fe
/// on the client's side and 198.19.n.254 / 2001:db8:n:1::fe on the
/// server's, server 198.19.n.2 / 2001:db8:n:1::2. The router forwards, its
/// ICMP rate limits are off (each rejection is answered), and it can
/// reject with nftables (`router_nft`). Removed on drop.
pub struct Routed {
    pub n: u8,
    pub client: String,
    pub router: String,
    pub server: String,
}

impl Routed {
    pub fn new(n: u8) -> Routed {
        let pid = std::process::id();
        let name = |role: &str| format!("tcpst-{pid}-{n}-{role}");
        let net = Routed {
            n,
            client: name("c"),
            router: name("r"),
            server: name("s"),
        };
        let (c, r, s) = (&net.client, &net.router, &net.server);
        for ns in [c, r, s] {
            run("ip", &["netns", "add", ns]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        let veth = |a: &str, dev_a: &str, b: &str| {
            run(
                "ip",
                &[
                    "-n", a, "link", "add", dev_a, "type", "veth", "peer", "name", "eth0", "netns",
                    b,
                ],
            );
        };
        veth(r, "eth0", c);
        veth(r, "eth1", s);
        let addrs = [
            (
                c.as_str(),
                "eth0",
                format!("198.18.{n}.1/24"),
                format!("2001:db8:{n}::1/64"),
            ),
            (
                r,
                "eth0",
                format!("198.18.{n}.254/24"),
                format!("2001:db8:{n}::fe/64"),
            ),
            (
                r,
                "eth1",
                format!("198.19.{n}.254/24"),
                format!("2001:db8:{n}:1::fe/64"),
            ),
            (
                s,
                "eth0",
                format!("198.19.{n}.2/24"),
                format!("2001:db8:{n}:1::2/64"),
            ),
        ];
        for (ns, dev, v4, v6) in &addrs {
            run("ip", &["-n", ns, "addr", "add", v4, "dev", dev]);
            // nodad: the address is usable at once, not after DAD.
            run("ip", &["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        // Routes only to the other side of the router: nothing else exists.
        for (ns, v4, v6, gw4, gw6) in [
            (
                c,
                format!("198.19.{n}.0/24"),
                format!("2001:db8:{n}:1::/64"),
                format!("198.18.{n}.254"),
                format!("2001:db8:{n}::fe"),
            ),
            (
                s,
                format!("198.18.{n}.0/24"),
                format!("2001:db8:{n}::/64"),
                format!("198.19.{n}.254"),
                format!("2001:db8:{n}:1::fe"),
            ),
        ] {
            run("ip", &["-n", ns, "route", "add", &v4, "via", &gw4]);
            run("ip", &["-n", ns, "-6", "route", "add", &v6, "via", &gw6]);
        }
        for (ns, sysctl) in [
            (r, "net.ipv4.ip_forward=1"),
            (r, "net.ipv6.conf.all.forwarding=1"),
            (r, "net.ipv4.icmp_ratelimit=0"),
            (r, "net.ipv6.icmp.ratelimit=0"),
            // A timeout then takes about 3 s (1 s + 2 s) instead of 127 s.
            (c, "net.ipv4.tcp_syn_retries=1"),
        ] {
            run("ip", &["netns", "exec", ns, "sysctl", "-qw", sysctl]);
        }
        net
    }

    pub fn router_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, 254)
    }
    pub fn router_v6(&self) -> Ipv6Addr {
        format!("2001:db8:{}::fe", self.n).parse().unwrap()
    }
    pub fn server_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.n, 2)
    }
    pub fn server_v6(&self) -> Ipv6Addr {
        format!("2001:db8:{}:1::2", self.n).parse().unwrap()
    }

    /// tcpstate watching the server's side, JSON lines, no syslog.
    pub fn json_daemon(&self, extra: &[&str]) -> Daemon {
        let n = self.n;
        Daemon::builder(["--format", "json", "--no-syslog"])
            .args(["-d", &format!("198.19.{n}.0/24")])
            .args(["-d", &format!("2001:db8:{n}:1::/64")])
            .args(extra)
            .start()
    }

    /// Loads an nftables ruleset (text) into the router namespace.
    pub fn router_nft(&self, ruleset: &str) {
        nft(&self.router, ruleset);
    }

    pub fn in_client<T: Send + 'static>(
        &self,
        comm: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        in_ns_done(&self.client, comm, f)
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        for ns in [&self.client, &self.router, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Listener {
    /// Stops accepting; returns how many connections were accepted.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` as `Net::in_ns` does and waits for its result.
fn in_ns_done<T: Send + 'static>(
    ns: &str,
    comm: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    Net::in_ns(ns, comm, f).join().expect("client thread")
}

/// Loads an nftables ruleset (text) into namespace `ns`.
fn nft(ns: &str, ruleset: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nft (is nftables installed?)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), ruleset.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A blocking connect that must fail; returns the error's raw errno.
///
/// Blocking on purpose: an ICMP error that arrives while connect() still
/// holds the socket lock (a reject over a local veth is that fast) lands
/// in sk_err_soft, and a non-blocking caller that reads SO_ERROR consumes
/// it before closing, so no tracer can see the reason any more. A blocking
/// connect keeps the socket until the kernel itself gives up with sk_err
/// set, as it does for any remote network.
pub fn connect_err(to: SocketAddr) -> i32 {
    match std::net::TcpStream::connect(to) {
        Ok(_) => panic!("connect to {to} succeeded; it should have failed"),
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// A non-blocking connect abandoned while in SYN_SENT.
pub fn connect_and_abandon(to: SocketAddr) {
    use nix::sys::socket::{
        connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    };
    use std::os::fd::AsRawFd;
    let family = if to.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
    let r = match to {
        SocketAddr::V4(a) => connect(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => connect(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    match r {
        Err(nix::errno::Errno::EINPROGRESS) => {}
        other => panic!("non-blocking connect to {to}: {other:?}, expected EINPROGRESS"),
    }
    drop(fd); // close while the SYN is unanswered
}

/// A loopback port nobody listens on: the kernel's pick, bound and let
/// go. A connect to it is refused; a server can take it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sock(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// A listener on 127.0.0.1 with this accept backlog. std's is 128, and 0
/// (a queue that one connection fills, so the next SYNs are dropped) is
/// what the hanging-attempt tests need.
pub fn loopback_listener(backlog: i32) -> TcpListener {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    // SAFETY: listen(2) on a socket we own; no memory is passed.
    assert_eq!(unsafe { nix::libc::listen(fd.as_raw_fd(), backlog) }, 0);
    TcpListener::from(fd)
}

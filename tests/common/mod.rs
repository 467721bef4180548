//! Shared pieces of the end-to-end tests: root checks, a client/server pair
//! of network namespaces joined by veth, and the real daemon run as a child
//! with a real NOTIFY_SOCKET.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True when the test can run. Outside CI a non-root run skips, loudly;
/// in CI (CI set) it fails, so a misconfigured runner never passes empty.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: these end-to-end tests load BPF and create network namespaces; run them as root (CI is set, so not skipping)");
    }
    eprintln!("\n*** SKIPPED {test}: needs root (BPF, network namespaces). Run `sudo -E cargo test` or the README's test command. ***\n");
    false
}

pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    #[allow(dead_code)] // not every test file detects through JSON
    pub fn json_daemon(&self, extra: &[&str]) -> Daemon {
        let mut args: Vec<String> = ["--format", "json", "--no-syslog"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(self.watch_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::start(&args, &[])
    }

    /// Loads an nftables ruleset (text) into the server namespace.
    pub fn server_nft(&self, ruleset: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.server, "nft", "-f", "-"])
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
        Net::in_ns(&self.client, comm, f)
            .join()
            .expect("client thread")
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

/// Where the daemon's output goes and how it is seen.
pub struct Daemon {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_thread: Option<std::thread::JoinHandle<()>>,
    /// With `start_stalled`: stdout's pipe, kept open and never read.
    _stalled: Option<std::process::ChildStdout>,
    _dir: TempDir,
}

/// The daemon's result after SIGTERM.
pub struct Stopped {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Stopped {
    /// The stop line's counter `name=value`.
    pub fn stat(&self, name: &str) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("tcpstate: stopped:"))
            .unwrap_or_else(|| panic!("no stats line in stderr:\n{}", self.stderr));
        let key = format!(" {name}=");
        let at = line
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            + key.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line {l:?}: {e}")))
            .collect()
    }

    pub fn failures(&self) -> Vec<serde_json::Value> {
        self.json()
            .into_iter()
            .filter(|v| v["event"] == "connect_failed")
            .collect()
    }

    /// The one JSON line of `event` for `to`; fails unless there is
    /// exactly one, showing all the daemon said.
    #[allow(dead_code)] // not every test file reads JSON lines
    pub fn one(&self, event: &str, to: SocketAddr) -> serde_json::Value {
        let daddr = match to.ip() {
            IpAddr::V6(a) => a.to_canonical().to_string(),
            a => a.to_string(),
        };
        let hits: Vec<serde_json::Value> = self
            .json()
            .into_iter()
            .filter(|v| {
                v["event"] == event && v["daddr"] == daddr.as_str() && v["dport"] == to.port()
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected exactly one {event} for {to}, got {hits:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr
        );
        hits.into_iter().next().unwrap()
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tcpstate-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpstate")
}

impl Daemon {
    /// Starts the daemon and waits for READY=1 on a real NOTIFY_SOCKET.
    /// Panics with the daemon's own words if it exits or never gets ready.
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_inner(args, env, true)
    }

    /// As `start`, but nobody ever reads stdout (a pipe whose reader hangs).
    pub fn start_stalled(args: &[String], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_inner(args, env, false)
    }

    /// As `start`, in a UTS namespace of its own named `host` (`unshare
    /// -u`): what it reports as its host name. The shell execs the daemon,
    /// so its pid and NOTIFY_SOCKET are the daemon's.
    pub fn start_with_hostname(host: &str, args: &[String], env: &[(&str, &str)]) -> Daemon {
        let mut full: Vec<String> = [
            "-u",
            "--",
            "sh",
            "-c",
            r#"hostname "$0" && exec "$@""#,
            host,
            bin(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        full.extend(args.iter().cloned());
        Daemon::start_program("unshare", &full, env, true)
    }

    /// As `start`, through a program that execs the daemon (like `ip
    /// netns exec NS tcpstate ...`), so its pid is the daemon's.
    pub fn start_via(program: &str, args: &[String]) -> Daemon {
        Daemon::start_program(program, args, &[], true)
    }

    fn start_inner(args: &[String], env: &[(&str, &str)], read_stdout: bool) -> Daemon {
        Daemon::start_program(bin(), args, env, read_stdout)
    }

    fn start_program(
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
        read_stdout: bool,
    ) -> Daemon {
        let dir = TempDir::new("daemon");
        let sock_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpstate");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 256];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                    break;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!(
                    "tcpstate exited ({status}) before READY=1; the BPF program could not be loaded \
                     or attached on this machine:\n{err}"
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tcpstate did not send READY=1 within 20 s");
            }
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let out = child.stdout.take().unwrap();
        if !read_stdout {
            return Daemon {
                child,
                stdout,
                stdout_thread: None,
                _stalled: Some(out),
                _dir: dir,
            };
        }
        let stdout_thread = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => lines.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Daemon {
            child,
            stdout,
            stdout_thread: Some(stdout_thread),
            _stalled: None,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines seen on stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until a stdout line contains `needle`; false on timeout.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lines().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// SIGTERM, then everything it printed. The daemon drains its ring
    /// buffer before exiting, so every event already made is in here.
    pub fn stop(mut self) -> Stopped {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tcpstate did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(t) = self.stdout_thread.take() {
            t.join().unwrap();
        }
        let mut stderr = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr);
        Stopped {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sock(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// A stand-in for Slack's incoming webhook: a real HTTP/1.1 server on
/// loopback that records every request and answers from a script
/// (default 200 "ok"), keep-alive included, as ureq pools connections.
pub struct FakeSlack {
    pub port: u16,
    requests: Arc<Mutex<Vec<(Instant, serde_json::Value)>>>,
    script: Arc<Mutex<std::collections::VecDeque<String>>>,
}

impl FakeSlack {
    pub fn start() -> FakeSlack {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<(Instant, serde_json::Value)>>> = Arc::default();
        let script: Arc<Mutex<std::collections::VecDeque<String>>> = Arc::default();
        let (r, s) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || FakeSlack::serve(conn, &r, &s));
            }
        });
        FakeSlack {
            port,
            requests,
            script,
        }
    }

    fn serve(
        conn: std::net::TcpStream,
        requests: &Mutex<Vec<(Instant, serde_json::Value)>>,
        script: &Mutex<std::collections::VecDeque<String>>,
    ) {
        use std::io::Write;
        let mut w = conn.try_clone().unwrap();
        let mut rd = BufReader::new(conn);
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; len];
            rd.read_exact(&mut body).unwrap();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            requests.lock().unwrap().push((Instant::now(), json));
            let status = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| "200 OK".into());
            let extra = if status.starts_with("429") {
                "Retry-After: 2\r\n"
            } else {
                ""
            };
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
            );
        }
    }

    /// A webhook that accepts connections and never answers (Slack hanging).
    /// Returns its URL; it lives as long as the test process.
    pub fn hanging() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming().flatten() {
                held.push(conn);
            }
        });
        format!("http://127.0.0.1:{port}/services/T000/B000/SECRETTOKEN")
    }

    /// Answers the next requests with these status lines, e.g. "429 Too Many Requests".
    pub fn then_answer(&self, statuses: &[&str]) {
        let mut s = self.script.lock().unwrap();
        s.extend(statuses.iter().map(|x| x.to_string()));
    }

    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/services/T000/B000/SECRETTOKEN",
            self.port
        )
    }

    pub fn requests(&self) -> Vec<(Instant, serde_json::Value)> {
        self.requests.lock().unwrap().clone()
    }

    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<(Instant, serde_json::Value)> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.requests().len() < n {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.requests()
    }
}

/// A stand-in for /dev/log: a real Unix datagram socket, every datagram kept.
pub struct FakeSyslog {
    pub path: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl FakeSyslog {
    pub fn start() -> FakeSyslog {
        let dir = TempDir::new("syslog");
        let path = dir.path().join("log");
        let sock = UnixDatagram::bind(&path).unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                l.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        FakeSyslog {
            path,
            lines,
            _dir: dir,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Datagrams containing `needle`.
    pub fn matching(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.matching(needle).len() < n {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.matching(needle)
    }
}

/// Where cgroup v2 is mounted (pure v2, or the hybrid's unified tree).
#[allow(dead_code)] // not every test file makes cgroups
pub fn cgroup_v2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount (pure v2 or hybrid)")
}

/// A listener on 127.0.0.1 with this accept backlog. std's is 128, and 0
/// (a queue that one connection fills, so the next SYNs are dropped) is
/// what the hanging-attempt tests need.
#[allow(dead_code)] // not every test file needs one
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

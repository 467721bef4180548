//! Load generator for bench/run: connect storms on loopback.
//!
//!   connstorm refused  THREADS SECONDS   blocking connects to a closed port
//!                                        (each one SYN_SENT -> CLOSE)
//!   connstorm accepted THREADS SECONDS   full connect, accept, close
//!   connstorm syscalls THREADS SECONDS   getppid() in a loop: a process that
//!                                        makes no connection (the bystander)
//!   connstorm udpflood THREADS SECONDS   UDP datagrams to a closed loopback
//!                                        port: each one dropped by the
//!                                        kernel (skb:kfree_skb, NO_SOCKET)
//!   connstorm dns THREADS SECONDS SERVER
//!                                        DNS lookups (A, each of a new name
//!                                        below bench.test) to SERVER:53, one
//!                                        in flight per thread: a DNS-heavy
//!                                        client, for the cost of the DNS hook
//!   connstorm dnstcp THREADS SECONDS SERVER
//!                                        the same over TCP, as glibc asks
//!                                        with `options use-vc` or after a
//!                                        truncated answer: a connection per
//!                                        lookup, writev() of the length and
//!                                        the query, the answer's length and
//!                                        body read apart
//!   connstorm sinks    DIR               a syslog socket DIR/log and a Slack
//!                                        stand-in (prints its port) for the
//!                                        service configuration
//!   connstorm latency  TCPSTATE SAMPLES  time from a failed connect to its
//!                                        line on tcpstate's stdout and to
//!                                        its Slack message (a loopback
//!                                        stand-in)
//!
//! Storms print one JSON line: {"mode":…,"connections":N,"failures":N,"seconds":S,"rate":R}.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// std's listen backlog (128) overflows under a storm, and every overflow
/// costs a client a 1 s SYN retransmit: the storm would time that.
fn listener_with_backlog(n: i32) -> TcpListener {
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
    // nix's Backlog caps at libc's SOMAXCONN (128); the kernel's cap is
    // net.core.somaxconn (4096 by default).
    // SAFETY: listen(2) on a socket we own; no memory is passed.
    let r = unsafe { nix::libc::listen(fd.as_raw_fd(), n) };
    assert_eq!(r, 0, "listen: {}", std::io::Error::last_os_error());
    TcpListener::from(fd)
}

fn storm(mode: &str, threads: usize, seconds: f64) {
    let (target, listener) = match mode {
        "refused" => (closed_port(), None),
        "accepted" => {
            let l = listener_with_backlog(4096);
            (l.local_addr().unwrap(), Some(l))
        }
        _ => usage(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Two acceptors, so the accept queue never overflows into SYN
    // retransmits that would time the storm instead of the tracer.
    let acceptors = if listener.is_some() { 2 } else { 0 };
    if let Some(l) = listener {
        for _ in 0..acceptors {
            let (s, l) = (stop.clone(), l.try_clone().unwrap());
            // Left running: the process exits after the report, and a
            // connect to wake them would be one more event to account for.
            std::thread::spawn(move || {
                for c in l.incoming() {
                    drop(c);
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                }
            });
        }
    }
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (s, ok, failed, other) = (stop.clone(), ok.clone(), failed.clone(), other.clone());
            std::thread::spawn(move || {
                let (mut n_ok, mut n_failed) = (0u64, 0u64);
                while !s.load(Ordering::Relaxed) {
                    match TcpStream::connect(target) {
                        Ok(c) => {
                            // Close with a RST: no TIME_WAIT, so a long storm
                            // does not run out of ephemeral ports.
                            let _ = nix::sys::socket::setsockopt(
                                &c,
                                nix::sys::socket::sockopt::Linger,
                                &nix::libc::linger {
                                    l_onoff: 1,
                                    l_linger: 0,
                                },
                            );
                            drop(c);
                            n_ok += 1;
                        }
                        Err(e) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => {
                            n_failed += 1
                        }
                        // Failed before sending a SYN (no port, no memory):
                        // nothing for a tracer to see, so not a failure here.
                        Err(e) => {
                            if other.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("connstorm: {e}");
                            }
                        }
                    }
                }
                ok.fetch_add(n_ok, Ordering::Relaxed);
                failed.fetch_add(n_failed, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "{{\"mode\":\"{mode}\",\"port\":{},\"connections\":{},\"failures\":{failed},\"other_errors\":{},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        target.port(),
        ok + failed,
        other.load(Ordering::Relaxed),
        (ok + failed) as f64 / secs
    );
}

/// A minimal webhook stand-in: records when each POST arrived.
fn fake_slack() -> (u16, mpsc::Receiver<Instant>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut len = 0;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let _ = tx.send(Instant::now());
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            });
        }
    });
    (port, rx)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn latency(tcpstate: &str, samples: usize) {
    let (slack_port, slack_rx) = fake_slack();
    let dir = std::env::temp_dir().join(format!("connstorm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut child = Command::new(tcpstate)
        .args(["--format", "json", "--no-syslog", "-d", "127.0.0.1"])
        .arg("--slack-url")
        .arg(format!("http://127.0.0.1:{slack_port}/services/bench"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tcpstate");
    let mut buf = [0u8; 64];
    notify.recv(&mut buf).unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send((Instant::now(), l));
        }
    });
    let (mut to_stdout, mut to_slack) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        // A new destination each time, so each failure alerts at once;
        // spaced beyond Slack's pacing, so the pacer does not add to it.
        let target = closed_port();
        let t0 = Instant::now();
        assert!(TcpStream::connect(target).is_err());
        let needle = format!("\"dport\":{}", target.port());
        loop {
            let (t, l) = line_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("no stdout line");
            if l.contains(&needle) {
                to_stdout.push((t - t0).as_secs_f64() * 1e3);
                break;
            }
        }
        let t = slack_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("no Slack message");
        to_slack.push((t - t0).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{{\"mode\":\"latency\",\"samples\":{samples},\"stdout_ms_median\":{:.2},\"stdout_ms_max\":{:.2},\"slack_ms_median\":{:.2},\"slack_ms_max\":{:.2}}}",
        median(to_stdout.clone()),
        to_stdout.iter().cloned().fold(0.0, f64::max),
        median(to_slack.clone()),
        to_slack.iter().cloned().fold(0.0, f64::max)
    );
}

/// The service configuration's peers: a syslog datagram socket at
/// DIR/log that reads and discards, and a Slack stand-in that answers 200.
/// Prints the Slack port, then serves until killed.
fn sinks(dir: &str) {
    let path = std::path::Path::new(dir).join("log");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("binding the syslog socket");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while sock.recv(&mut buf).is_ok() {}
    });
    let (port, rx) = fake_slack();
    println!("{port}");
    std::io::stdout().flush().unwrap();
    // Messages are only counted by their arrival; keep the channel drained.
    while rx.recv().is_ok() {}
}

/// Runs `work(thread, stop)` on THREADS threads for SECONDS; each loops
/// until `stop` and returns its two counts. The counts summed, and the
/// seconds it took.
fn on_threads(
    threads: usize,
    seconds: f64,
    work: impl Fn(usize, &AtomicBool) -> (u64, u64) + Send + Sync + 'static,
) -> (u64, u64, f64) {
    let (stop, work) = (Arc::new(AtomicBool::new(false)), Arc::new(work));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, work) = (stop.clone(), work.clone());
            std::thread::spawn(move || work(t, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (a, b) = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    (a, b, t0.elapsed().as_secs_f64())
}

/// THREADS threads calling getppid() for SECONDS: a process that makes no
/// connection, for what host-wide hooks cost it.
fn syscalls(threads: usize, seconds: f64) {
    let (n, _, secs) = on_threads(threads, seconds, |_, stop| {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..256 {
                std::hint::black_box(nix::unistd::getppid());
            }
            n += 256;
        }
        (n, 0)
    });
    println!(
        "{{\"mode\":\"syscalls\",\"calls\":{n},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}

/// THREADS threads sending 64-byte UDP datagrams to a closed loopback port
/// for SECONDS: a drop flood, for the cost of the skb:kfree_skb hook. The
/// drop happens in the sender's own softirq, so its rate carries the cost.
fn udpflood(threads: usize, seconds: f64) {
    let target = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let (n, _, secs) = on_threads(threads, seconds, move |_, stop| {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let buf = [0u8; 64];
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // ECONNREFUSED from an earlier ICMP is expected here.
            if sock.send_to(&buf, target).is_ok() {
                n += 1;
            }
        }
        (n, 0)
    });
    println!(
        "{{\"mode\":\"udpflood\",\"datagrams\":{n},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}

/// One A query for `name`, id `id`, recursion desired.
fn dns_query(id: u16, name: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
}

/// THREADS threads, each asking SERVER:53 for a new name under
/// bench.test and waiting for its answer, for SECONDS: lookups per second.
/// Unique names are the worst case for tcpstate's address->name memory.
fn dns(threads: usize, seconds: f64, server: &str) {
    let server: std::net::IpAddr = server.parse().unwrap_or_else(|_| usage());
    let (n, miss, secs) = on_threads(threads, seconds, move |t, stop| {
        let any = if server.is_ipv4() { "0.0.0.0" } else { "::" };
        let sock = std::net::UdpSocket::bind((any, 0)).unwrap();
        sock.connect((server, 53)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let (mut q, mut buf) = (Vec::with_capacity(64), [0u8; 512]);
        let (mut n, mut miss, mut i) = (0u64, 0u64, 0u32);
        while !stop.load(Ordering::Relaxed) {
            i = i.wrapping_add(1);
            dns_query(i as u16, &format!("q{i}-{t}.bench.test"), &mut q);
            sock.send(&q).unwrap();
            match sock.recv(&mut buf) {
                Ok(len) if len >= 2 && buf[..2] == q[..2] => n += 1,
                _ => miss += 1,
            }
        }
        (n, miss)
    });
    println!(
        "{{\"mode\":\"dns\",\"lookups\":{n},\"unanswered\":{miss},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}

/// As [`dns`], over TCP: each lookup connects, writes its length and
/// query in one writev(), reads the answer's length, then its body, and
/// closes, as glibc does. Counts the fallback's TCP DNS path: the connect
/// record, the writev and the two reads.
fn dns_tcp(threads: usize, seconds: f64, server: &str) {
    let server: std::net::IpAddr = server.parse().unwrap_or_else(|_| usage());
    let (n, miss, secs) = on_threads(threads, seconds, move |t, stop| {
        let mut q = Vec::with_capacity(64);
        let (mut n, mut miss, mut i) = (0u64, 0u64, 0u32);
        while !stop.load(Ordering::Relaxed) {
            i = i.wrapping_add(1);
            dns_query(i as u16, &format!("t{i}-{t}.bench.test"), &mut q);
            let ok = (|| -> std::io::Result<bool> {
                let mut s = TcpStream::connect((server, 53))?;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                let len = (q.len() as u16).to_be_bytes();
                let bufs = [std::io::IoSlice::new(&len), std::io::IoSlice::new(&q)];
                if s.write_vectored(&bufs)? != q.len() + 2 {
                    return Ok(false);
                }
                let mut l = [0u8; 2];
                s.read_exact(&mut l)?;
                let mut a = vec![0u8; u16::from_be_bytes(l) as usize];
                s.read_exact(&mut a)?;
                Ok(a.len() >= 2 && a[..2] == q[..2])
            })();
            match ok {
                Ok(true) => n += 1,
                _ => miss += 1,
            }
        }
        (n, miss)
    });
    println!(
        "{{\"mode\":\"dnstcp\",\"lookups\":{n},\"unanswered\":{miss},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: connstorm refused|accepted|syscalls|udpflood THREADS SECONDS | connstorm dns|dnstcp THREADS SECONDS SERVER | connstorm latency TCPSTATE SAMPLES | connstorm sinks DIR"
    );
    std::process::exit(2)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("sinks") if a.len() == 3 => sinks(&a[2]),
        Some("latency") if a.len() == 4 => latency(&a[2], a[3].parse().unwrap_or_else(|_| usage())),
        Some("udpflood") if a.len() == 4 => udpflood(
            a[2].parse().unwrap_or_else(|_| usage()),
            a[3].parse().unwrap_or_else(|_| usage()),
        ),
        Some("dns") if a.len() == 5 => dns(
            a[2].parse().unwrap_or_else(|_| usage()),
            a[3].parse().unwrap_or_else(|_| usage()),
            &a[4],
        ),
        Some("dnstcp") if a.len() == 5 => dns_tcp(
            a[2].parse().unwrap_or_else(|_| usage()),
            a[3].parse().unwrap_or_else(|_| usage()),
            &a[4],
        ),
        Some("syscalls") if a.len() == 4 => syscalls(
            a[2].parse().unwrap_or_else(|_| usage()),
            a[3].parse().unwrap_or_else(|_| usage()),
        ),
        Some(m @ ("refused" | "accepted")) if a.len() == 4 => storm(
            m,
            a[2].parse().unwrap_or_else(|_| usage()),
            a[3].parse().unwrap_or_else(|_| usage()),
        ),
        _ => usage(),
    }
}

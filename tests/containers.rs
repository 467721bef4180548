//! Containers by name, with real podman: Debian's podman with runc (crun
//! refuses this machine's hybrid cgroups), on a debootstrapped rootfs
//! (tests/containers-rootfs: podman's own copy) mounted read-only, on an
//! `--internal` network
//! so nothing can leave the host. The clients are python3's sockets inside
//! the container, connecting to the container's own loopback. Podman here
//! uses the cgroupfs manager: its containers are in
//! /libpod_parent/libpod-<id>, and their names in containers/storage's
//! containers.json.
//!
//! Real docker too (Debian's docker.io): the test starts its own dockerd
//! (no bridge, no iptables; the default data root, where tcpstate reads
//! names) unless one answers on /var/run/docker.sock, imports the same
//! debootstrap as an image (from its pristine tarball, never from the
//! directory podman writes into), and runs the client with `--network
//! none`. Docker
//! here uses the cgroupfs driver: /docker/<id>.
//!
//! containerd's and CRI-O's on-disk formats, and docker's under
//! Kubernetes (no kubelet can run here), are tested on files in unit tests
//! (src/containers.rs, src/runtime_names.rs), as each runtime documents
//! and writes them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{poll, require_root, Daemon, FakeSlack, FakeSyslog};
use serde_json::Value;

const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;

/// The client: waits for /x/go, connects without blocking to
/// 127.0.0.1:PORT with TCP_SYNCNT SYNCNT, writes the source port
/// getsockname() gives to /x/sport, then how the attempt ended (SO_ERROR)
/// to /x/err.
const CLIENT: &str = r#"
import os, select, socket, sys, time
port, syncnt = int(sys.argv[1]), int(sys.argv[2])
while not os.path.exists('/x/go'):
    time.sleep(0.02)
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, syncnt)
s.setblocking(False)
err = None
try:
    s.connect(('127.0.0.1', port))
except BlockingIOError:
    pass
except OSError as e:
    err = e.errno
with open('/x/sport.tmp', 'w') as f:
    f.write(str(s.getsockname()[1]))
os.rename('/x/sport.tmp', '/x/sport')
if err is None:
    select.select([], [s], [], 60)
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
with open('/x/err', 'w') as f:
    f.write(str(err))
"#;

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running podman: {e} (is it installed? .ci/deps installs it)"));
    assert!(
        out.status.success(),
        "podman {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The client's root file system, made once and shared by the test
/// threads and binaries: `"podman"`, podman's own copy (a directory), or
/// `"tarball"`, the debootstrap as it came out, for `docker import`.
fn rootfs(kind: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containers-rootfs");
    let out = Command::new(&script)
        .arg(kind)
        .output()
        .expect("running containers-rootfs");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One podman container running the client, on a network of its own;
/// both removed on drop.
struct Container {
    name: String,
    net: String,
    id: String,
    dir: PathBuf,
}

impl Container {
    fn start(tag: &str, port: u16, syncnt: u32) -> Container {
        let rootfs = rootfs("podman");
        let pid = std::process::id();
        let name = format!("tsname-{tag}-{pid}");
        let net = format!("tsname-net-{tag}-{pid}");
        let dir = std::env::temp_dir().join(format!("tsname-{tag}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("client.py"), CLIENT).unwrap();
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &name])
            .output();
        let _ = Command::new("podman")
            .args(["network", "rm", "-f", &net])
            .output();
        podman(&["network", "create", "--internal", &net]);
        let mut c = Container {
            name,
            net,
            id: String::new(),
            dir,
        };
        let volume = format!("{}:/x", c.dir.display());
        let (port, syncnt) = (port.to_string(), syncnt.to_string());
        c.id = podman(&[
            "--runtime",
            "runc",
            "run",
            "-d",
            "--name",
            &c.name,
            "--network",
            &c.net,
            // This machine cannot raise limits beyond these.
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=1000:1000",
            "--read-only",
            "-v",
            &volume,
            "--rootfs",
            &rootfs,
            "python3",
            "/x/client.py",
            &port,
            &syncnt,
        ]);
        assert_eq!(c.id.len(), 64, "a container id: {}", c.id);
        c
    }

    /// The client's pid on the host (PID 1 in the container).
    fn pid(&self) -> u32 {
        podman(&["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .unwrap()
    }

    /// Drops SYNs to `port` in the container's own network namespace.
    fn drop_syns(&self, port: u16) {
        let pid = self.pid().to_string();
        let rules = format!(
            "table inet tsname {{\n  chain out {{\n    type filter hook output priority 0;\n    \
             tcp dport {port} drop\n  }}\n}}\n"
        );
        let mut child = Command::new("nsenter")
            .args(["-t", &pid, "-n", "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running nft (is nftables installed?)");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft in the container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn go(&self) {
        std::fs::write(self.dir.join("go"), "").unwrap();
    }

    fn wait_file(&self, file: &str, timeout: Duration) -> String {
        wait_file(&self.dir, file, timeout, || podman(&["logs", &self.name]))
    }

    /// The source port getsockname() gave.
    fn sport(&self) -> u16 {
        self.wait_file("sport", Duration::from_secs(20))
            .parse()
            .unwrap()
    }

    /// How the attempt ended (its errno).
    fn err(&self, timeout: Duration) -> i32 {
        self.wait_file("err", timeout).parse().unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        let _ = Command::new("podman")
            .args(["network", "rm", "-f", &self.net])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the client wrote to /x/FILE (`dir` on the host), once it has;
/// `logs` says what the container printed if it never does.
fn wait_file(dir: &Path, file: &str, timeout: Duration, logs: impl Fn() -> String) -> String {
    let what = format!("the client's /x/{file}");
    poll(&what, timeout, || {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| panic!("the client wrote no /x/{file}: {}", logs()))
}

#[test]
fn a_failure_in_a_podman_container_names_it_on_every_sink() {
    if !require_root("a_failure_in_a_podman_container_names_it_on_every_sink") {
        return;
    }
    const PORT: u16 = 47_071;
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = Daemon::builder([
        "--format",
        "json",
        "--syslog-socket",
        syslog.path.to_str().unwrap(),
        "--slack-url",
        &slack.url(),
        "-d",
        "127.0.0.1",
        "-p",
        &PORT.to_string(),
    ])
    .start();
    let c = Container::start("live", PORT, 2);
    let pid = c.pid();
    c.go();
    let sport = c.sport();
    assert_eq!(c.err(Duration::from_secs(20)), ECONNREFUSED);
    assert!(
        d.wait_line("\"connect_failed\"", Duration::from_secs(5)),
        "no failure reported: {:?}",
        d.lines()
    );
    let reqs = slack.wait_requests(1, Duration::from_secs(5));
    let lines = syslog.wait_for("TCP failure detected", 1, Duration::from_secs(5));
    let out = d.stop();

    let v = out.failure_to(PORT);
    eprintln!(
        "json: {}",
        out.stdout
            .iter()
            .find(|l| l.contains("connect_failed"))
            .unwrap()
    );
    assert_eq!(v["reason"], "refused", "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert_eq!(v["comm"], "python3", "{v}");
    assert_eq!(v["container"], c.id.as_str(), "{v}");
    assert_eq!(v["container_name"], c.name.as_str(), "{v}");
    assert_eq!(v["pod_name"], Value::Null, "{v}");
    assert_eq!(
        v["cgroup"],
        format!("/libpod_parent/libpod-{}", c.id),
        "podman's cgroupfs layout: {v}"
    );
    assert_eq!(v["sport"], sport, "the port getsockname() gave: {v}");
    assert!(v["duration_ms"].is_number(), "{v}");

    assert_eq!(lines.len(), 1, "{lines:?}");
    eprintln!("syslog: {}", lines[0]);
    assert!(
        lines[0].contains(&format!(" sport={sport} after="))
            && lines[0].contains(&format!(" container={} container_name={}", c.id, c.name)),
        "{}",
        lines[0]
    );

    assert_eq!(reqs.len(), 1, "one Slack message");
    let body = &reqs[0].1;
    eprintln!("slack text: {}", body["text"]);
    let t = body["text"].as_str().unwrap();
    assert!(
        t.contains(&format!("(python3 (pid {pid}), in {})", c.name)),
        "{t}"
    );
    let blocks = body["blocks"].to_string();
    assert!(
        blocks.contains(&format!("{} ({})", c.name, &c.id[..12])),
        "{blocks}"
    );
    assert_eq!(out.stat("names_refused"), 0, "{}", out.stderr);
}

#[test]
fn a_text_line_names_the_container() {
    if !require_root("a_text_line_names_the_container") {
        return;
    }
    const PORT: u16 = 47_072;
    let d = Daemon::builder([
        "--format",
        "text",
        "--no-syslog",
        "-d",
        "127.0.0.1",
        "-p",
        &PORT.to_string(),
    ])
    .start();
    let c = Container::start("text", PORT, 2);
    c.go();
    let sport = c.sport();
    assert_eq!(c.err(Duration::from_secs(20)), ECONNREFUSED);
    assert!(d.wait_line("TCP failure detected", Duration::from_secs(5)));
    let out = d.stop();
    let line = out
        .stdout
        .iter()
        .find(|l| l.contains(&format!("127.0.0.1:{PORT} ")))
        .expect("the failure's line");
    eprintln!("text: {line}");
    assert!(
        line.contains(&format!(" sport={sport} "))
            && line.contains(&format!(" container={} container_name={} ", c.id, c.name)),
        "{line}"
    );
}

/// Begun in the container before tcpstate starts, in the container's own
/// network namespace, and still in SYN_SENT (its SYNs dropped there):
/// found at start by the task-file walk, with the process holding it.
#[test]
fn an_attempt_in_flight_in_a_container_at_start_names_its_process_and_container() {
    if !require_root("an_attempt_in_flight_in_a_container_at_start_names_its_process_and_container")
    {
        return;
    }
    const PORT: u16 = 47_073;
    // TCP_SYNCNT 2: SYNs at 0, 1 and 3 s, ETIMEDOUT at about 7 s.
    let c = Container::start("early", PORT, 2);
    let pid = c.pid();
    c.drop_syns(PORT);
    c.go();
    let sport = c.sport();
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "--slow-after",
        "0",
        "-d",
        "127.0.0.1",
        "-p",
        &PORT.to_string(),
    ])
    .start();
    assert_eq!(c.err(Duration::from_secs(30)), ETIMEDOUT);
    assert!(
        d.wait_line("\"connect_failed\"", Duration::from_secs(10)),
        "no failure reported: {:?}",
        d.lines()
    );
    let out = d.stop();
    let v = out.failure_to(PORT);
    eprintln!("json: {v}");
    assert_eq!(v["seen"], "at_start", "{v}");
    // The SYNs were dropped by this host's netfilter (the container's
    // namespace is on this host): denied, though the client saw ETIMEDOUT.
    assert_eq!(v["reason"], "denied", "{v}");
    assert_eq!(v["errno"], ETIMEDOUT, "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert_eq!(v["comm"], "python3", "{v}");
    assert_eq!(v["container"], c.id.as_str(), "{v}");
    assert_eq!(v["container_name"], c.name.as_str(), "{v}");
    assert_eq!(v["sport"], sport, "{v}");
    assert!(out.stat("at_start") >= 1, "{}", out.stderr);
}

/// A dockerd to run containers with: the host's if one answers, else one
/// this test starts (and stops on drop).
struct Dockerd {
    host: String,
    own: Option<std::process::Child>,
    dir: PathBuf,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = std::env::temp_dir().join(format!("tsdock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Dockerd {
            host: "unix:///var/run/docker.sock".into(),
            own: None,
            dir,
        };
        if d.try_docker(&["info"]).is_ok() {
            return d;
        }
        d.host = format!("unix://{}/sock", d.dir.display());
        let log = std::fs::File::create(d.dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["-H", &d.host])
            .arg("--exec-root")
            .arg(d.dir.join("exec"))
            .arg("--pidfile")
            .arg(d.dir.join("pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--ip-masq=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("running dockerd: {e} (.ci/deps installs docker.io)"));
        d.own = Some(child);
        let up = poll("dockerd to answer", Duration::from_secs(30), || {
            d.try_docker(&["info"]).ok()
        });
        assert!(
            up.is_some(),
            "dockerd did not answer in 30 s: {}",
            std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
        );
        d
    }

    fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .output()
            .map_err(|e| format!("running docker: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
    }

    /// The rootfs as an image, imported once (kept for the next run) from
    /// the tarball: a file made whole before anyone could see it, which
    /// no container writes into. (Taring podman's directory instead
    /// raced the podman tests on a first run: "tar: .: file changed as we
    /// read it".) The image gets its name only once imported, so another
    /// run that finds it finds it whole; two first runs both import it.
    fn image(&self) -> &'static str {
        const IMAGE: &str = "tcpstate-test-python:1";
        if self.try_docker(&["image", "inspect", IMAGE]).is_err() {
            self.docker(&["import", &rootfs("tarball"), IMAGE]);
        }
        IMAGE
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.own.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            poll("dockerd to exit", Duration::from_secs(15), || {
                c.try_wait().ok().flatten()
            });
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_failure_in_a_docker_container_names_it() {
    if !require_root("a_failure_in_a_docker_container_names_it") {
        return;
    }
    const PORT: u16 = 47_074;
    let dockerd = Dockerd::start();
    let image = dockerd.image();
    let name = format!("tsdock-web-{}", std::process::id());
    let x = dockerd.dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    std::fs::write(x.join("client.py"), CLIENT).unwrap();
    let _ = dockerd.try_docker(&["rm", "-f", &name]);
    let d = Daemon::builder([
        "--format",
        "json",
        "--no-syslog",
        "-d",
        "127.0.0.1",
        "-p",
        &PORT.to_string(),
    ])
    .start();
    let volume = format!("{}:/x", x.display());
    let id = dockerd.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        // Its own network namespace with only a loopback: nothing leaves.
        "--network",
        "none",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1000:1000",
        "-v",
        &volume,
        image,
        "python3",
        "/x/client.py",
        &PORT.to_string(),
        "2",
    ]);
    // Removed whatever the asserts say.
    struct Rm<'a>(&'a Dockerd, &'a str);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = self.0.try_docker(&["rm", "-f", self.1]);
        }
    }
    let _rm = Rm(&dockerd, &name);
    assert_eq!(id.len(), 64, "a container id: {id}");
    let pid: u32 = dockerd
        .docker(&["inspect", "-f", "{{.State.Pid}}", &name])
        .parse()
        .unwrap();
    let wait = |file: &str| {
        wait_file(&x, file, Duration::from_secs(20), || {
            dockerd.try_docker(&["logs", &name]).unwrap_or_default()
        })
    };
    std::fs::write(x.join("go"), "").unwrap();
    let sport: u16 = wait("sport").parse().unwrap();
    assert_eq!(wait("err").parse::<i32>().unwrap(), ECONNREFUSED);
    assert!(
        d.wait_line("\"connect_failed\"", Duration::from_secs(5)),
        "no failure reported: {:?}",
        d.lines()
    );
    let out = d.stop();
    let v = out.failure_to(PORT);
    eprintln!("json: {v}");
    assert_eq!(v["reason"], "refused", "{v}");
    assert_eq!(v["comm"], "python3", "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert_eq!(v["container"], id.as_str(), "{v}");
    assert_eq!(v["container_name"], name.as_str(), "{v}");
    assert_eq!(
        v["cgroup"],
        format!("/docker/{id}"),
        "docker's cgroupfs layout: {v}"
    );
    assert_eq!(v["sport"], sport, "the port getsockname() gave: {v}");
    assert_eq!(out.stat("names_refused"), 0, "{}", out.stderr);
}

//! The real daemon, run as a child with a real NOTIFY_SOCKET, and what it
//! said once stopped.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{bin, poll, TempDir};

/// Where the daemon's output goes and how it is seen.
pub struct Daemon {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_thread: Option<std::thread::JoinHandle<()>>,
    /// With `stalled`: stdout's pipe, kept open and never read.
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
    pub fn one(&self, event: &str, to: SocketAddr) -> serde_json::Value {
        let daddr = match to.ip() {
            IpAddr::V6(a) => a.to_canonical().to_string(),
            a => a.to_string(),
        };
        self.exactly_one(&format!("{event} for {to}"), |v| {
            v["event"] == event && v["daddr"] == daddr.as_str() && v["dport"] == to.port()
        })
    }

    /// The one failure to port `port`, whatever the address; fails unless
    /// there is exactly one, showing all the daemon said.
    pub fn failure_to(&self, port: u16) -> serde_json::Value {
        self.exactly_one(&format!("connect_failed to port {port}"), |v| {
            v["event"] == "connect_failed" && v["dport"] == port
        })
    }

    fn exactly_one(
        &self,
        what: &str,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let hits: Vec<serde_json::Value> = self.json().into_iter().filter(|v| keep(v)).collect();
        assert_eq!(
            hits.len(),
            1,
            "expected exactly one {what}, got {hits:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr
        );
        hits.into_iter().next().unwrap()
    }
}

/// How a daemon is to be started: `Daemon::builder(args)`, then what differs
/// (`.args`, `.env`, `.via`, `.hostname`, `.stalled`), then `.start()`.
#[must_use = "nothing runs until .start()"]
pub struct DaemonBuilder {
    /// Programs that exec what follows them, outermost first.
    prefix: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    read_stdout: bool,
}

impl DaemonBuilder {
    /// More arguments, after those given so far.
    pub fn args<S: AsRef<str>>(mut self, more: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(more.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// Alerts to the syslog and Slack stand-ins.
    pub fn alerts_to(self, syslog: &super::FakeSyslog, slack: &super::FakeSlack) -> Self {
        let socket = syslog.path.to_str().unwrap().to_string();
        self.args(["--syslog-socket", &socket, "--slack-url", &slack.url()])
    }

    /// Alerts to a real journald (the daemon runs in its mount namespace,
    /// where journald's socket is) and the Slack stand-in.
    pub fn alerts_to_journal(self, journal: &super::Journal, slack: &super::FakeSlack) -> Self {
        self.args(["--slack-url", &slack.url()]).via(journal.via())
    }

    /// An environment variable of its own.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Through a command that execs the daemon, which it is given last
    /// (like `ip netns exec NS`), so its pid and NOTIFY_SOCKET are the
    /// daemon's. Commands given by `via` and `hostname` nest in the
    /// order given, the first outermost.
    pub fn via<S: AsRef<str>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.prefix
            .extend(command.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// In a UTS namespace of its own named `host` (`unshare -u`): what it
    /// reports as its host name. The shell execs the daemon.
    pub fn hostname(self, host: &str) -> Self {
        self.via([
            "unshare",
            "-u",
            "--",
            "sh",
            "-c",
            r#"hostname "$0" && exec "$@""#,
            host,
        ])
    }

    /// Nobody ever reads its stdout (a pipe whose reader hangs).
    pub fn stalled(mut self) -> Self {
        self.read_stdout = false;
        self
    }

    /// Starts the daemon and waits for READY=1 on a real NOTIFY_SOCKET.
    /// Panics with the daemon's own words if it exits or never gets ready.
    pub fn start(self) -> Daemon {
        let dir = TempDir::new("daemon");
        let sock_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify.set_nonblocking(true).unwrap();
        let mut command = match self.prefix.split_first() {
            None => Command::new(bin()),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
        };
        let mut child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpstate");
        let mut buf = [0u8; 256];
        let ready = poll("READY=1 from tcpstate", Duration::from_secs(20), || {
            while let Ok(n) = notify.recv(&mut buf) {
                if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                    return Some(());
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
            None
        });
        if ready.is_none() {
            let _ = child.kill();
            panic!("tcpstate did not send READY=1 within 20 s");
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let out = child.stdout.take().unwrap();
        if !self.read_stdout {
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
}

impl Daemon {
    /// A daemon with these arguments, to be started with `.start()`.
    pub fn builder<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> DaemonBuilder {
        DaemonBuilder {
            prefix: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            read_stdout: true,
        }
        .args(args)
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
        let what = format!("a stdout line containing {needle}");
        poll(&what, timeout, || {
            self.lines()
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        })
        .is_some()
    }

    /// SIGTERM, then everything it printed. The daemon drains its ring
    /// buffer before exiting, so every event already made is in here.
    pub fn stop(mut self) -> Stopped {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let exited = poll("tcpstate to exit", Duration::from_secs(20), || {
            self.child.try_wait().unwrap()
        });
        let Some(status) = exited else {
            let _ = self.child.kill();
            panic!("tcpstate did not exit within 20 s of SIGTERM");
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

//! Stand-ins for what cannot run here: Slack's incoming webhook and
//! /dev/log.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{poll, TempDir};

/// A stand-in for Slack's incoming webhook: a real HTTP/1.1 server on
/// loopback that records every request and answers from a script
/// (default 200 "ok"), keep-alive included, as ureq pools connections.
/// Like Slack, it refuses blocks past their documented limits with 400
/// `invalid_blocks` (see [`invalid_blocks`]).
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
            let invalid = invalid_blocks(&json);
            requests.lock().unwrap().push((Instant::now(), json));
            let status = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| "200 OK".into());
            let (status, body) = match invalid {
                true => ("400 Bad Request".to_string(), "invalid_blocks"),
                false => (status, "ok"),
            };
            let extra = if status.starts_with("429") {
                "Retry-After: 2\r\n"
            } else {
                ""
            };
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
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

    /// Waits until it has had `n` requests; all it had, whether or not.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<(Instant, serde_json::Value)> {
        let what = format!("{n} requests to the Slack stand-in");
        poll(&what, timeout, || {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| self.requests())
    }
}

/// Whether Slack would refuse these blocks (Block Kit reference): more
/// than 50 blocks, a section's text over 3000 characters, more than 10
/// fields or one over 2000, a context of more than 10 elements.
fn invalid_blocks(msg: &serde_json::Value) -> bool {
    let len = |v: &serde_json::Value| v["text"].as_str().map_or(0, |t| t.chars().count());
    let Some(blocks) = msg["blocks"].as_array() else {
        return false;
    };
    blocks.len() > 50
        || blocks.iter().any(|b| {
            let fields = b["fields"].as_array().map_or(&[][..], Vec::as_slice);
            let elements = b["elements"].as_array().map_or(&[][..], Vec::as_slice);
            len(&b["text"]) > 3000
                || fields.len() > 10
                || fields.iter().any(|f| len(f) > 2000)
                || elements.len() > 10
                || elements.iter().any(|e| len(e) > 3000)
        })
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

    /// Waits until `n` datagrams contain `needle`; those there are,
    /// whether or not.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        let what = format!("{n} syslog lines containing {needle}");
        poll(&what, timeout, || {
            let m = self.matching(needle);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.matching(needle))
    }
}

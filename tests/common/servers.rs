//! Real servers from Debian's packages for the fleet tests: Prometheus
//! and Alertmanager on loopback ports, and a plain HTTP GET to talk to
//! them (and to tcpstate's /metrics).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, poll, FakeSlack, TempDir};

/// One HTTP/1.1 GET on loopback: status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked answers (Prometheus' API) are de-chunked crudely: enough
    // for JSON, which has no bare CRLF-hex lines.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(b: &str) -> String {
    let mut out = String::new();
    let mut rest = b;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A real server from Debian's packages, on a loopback port, in a
/// temporary directory; killed on drop.
pub struct Server {
    name: &'static str,
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Server {
    pub fn start(
        name: &'static str,
        program: &str,
        config: &str,
        args: &[String],
        port: u16,
        dir: TempDir,
    ) -> Server {
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {program}: {e}; install it: apt-get install prometheus prometheus-alertmanager")
            });
        let mut s = Server {
            name,
            child,
            port,
            _dir: dir,
        };
        let ready = poll(&format!("{name} ready"), Duration::from_secs(30), || {
            if let Ok((200, _)) = http_get(port, "/-/ready") {
                return Some(());
            }
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("{name} exited ({st}) before it was ready:\n{}", s.log());
            }
            None
        });
        if ready.is_none() {
            panic!("{name} not ready within 30 s:\n{}", s.log());
        }
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    pub fn prometheus(targets: &[u16]) -> Server {
        let port = free_port();
        let dir = TempDir::new("prometheus");
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tcpstate\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let args = vec![
            format!("--config.file={}", dir.path().join("config.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        Server::start("prometheus", "prometheus", &config, &args, port, dir)
    }

    pub fn alertmanager(webhook: &str) -> Server {
        let port = free_port();
        let dir = TempDir::new("alertmanager");
        // Short waits, so the test takes seconds: the first notification
        // waits 3 s for the other host's alert; changes go out every 2 s.
        let config = format!(
            "route:\n  receiver: hook\n  group_by: [alertname, destination]\n  group_wait: 3s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
        );
        let args = vec![
            format!("--config.file={}", dir.path().join("config.yml").display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // No cluster: no gossip port, no settling wait.
            "--cluster.listen-address=".to_string(),
        ];
        Server::start(
            "alertmanager",
            "prometheus-alertmanager",
            &config,
            &args,
            port,
            dir,
        )
    }

    /// An instant PromQL query's status: `success`, or `error` for one
    /// Prometheus does not accept.
    pub fn query_status(&self, q: &str) -> String {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        match http_get(self.port, &format!("/api/v1/query?query={enc}")) {
            Ok((_, body)) => serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["status"]
                .as_str()
                .unwrap_or("no status")
                .to_string(),
            Err(e) => format!("{e}"),
        }
    }

    /// An instant PromQL query: the result vector.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let Ok((200, body)) = http_get(self.port, &format!("/api/v1/query?query={enc}")) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let what = format!("{} to exit", self.name);
        if poll(&what, Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten()
        })
        .is_some()
        {
            return;
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alertmanager's alerts named `alertname`, as the receiver got them:
/// (status, the alerts' labels and annotations).
pub fn notifications(hook: &FakeSlack, alertname: &str) -> Vec<(String, Vec<Value>)> {
    hook.requests()
        .iter()
        .filter(|r| r.1["groupLabels"]["alertname"] == alertname)
        .map(|r| {
            let alerts = r.1["alerts"].as_array().cloned().unwrap_or_default();
            (r.1["status"].as_str().unwrap_or("").to_string(), alerts)
        })
        .collect()
}

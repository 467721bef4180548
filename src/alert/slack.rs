//! Slack incoming-webhook sink: a bounded queue and a sender thread that
//! paces, groups, retries and counts, so a slow or broken Slack never
//! reaches the event path.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::policy::{Alert, Summary};
use super::text::{dest_or_overflow, procs, reasons, window};
use crate::output::{Endpoint, Millis};

/// The webhook URL: a secret. Only [`WebhookUrl::redacted`] is ever shown.
#[derive(Clone)]
pub struct WebhookUrl {
    url: url::Url,
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl WebhookUrl {
    /// Checks an `http(s)://host/...` URL. Errors never repeat the URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s.trim()).map_err(|e| {
            format!("not a valid URL ({e}); expected https://hooks.slack.com/services/…")
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!(
                "unsupported scheme '{}'; expected https://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not supported".into());
        }
        Ok(WebhookUrl { url })
    }

    /// `https://hooks.slack.com/services/***`: scheme, host and the first
    /// path segment; the token part never leaves this module.
    pub fn redacted(&self) -> String {
        let mut s = format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        );
        if let Some(p) = self.url.port() {
            let _ = write!(s, ":{p}");
        }
        let first = self.url.path_segments().and_then(|mut p| p.next());
        match first {
            Some(seg) if !seg.is_empty() => {
                let _ = write!(s, "/{seg}/***");
            }
            _ => s.push_str("/***"),
        }
        s
    }

    /// Plain http is fine to a relay on this host, a risk anywhere else.
    pub fn insecure_warning(&self) -> Option<String> {
        if self.url.scheme() != "http" {
            return None;
        }
        let loopback = match self.url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        };
        (!loopback).then(|| {
            format!(
                "the Slack URL {} is plain http to another host: the webhook secret and alerts cross the network unencrypted",
                self.redacted()
            )
        })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

/// Slack's own escaping for text it formats: `&`, `<`, `>`; so no
/// process name can mention `<!channel>` or forge a link.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn field(title: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{title}*\n{value}")})
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn first_fields(f: &crate::event::Failure) -> Value {
    let reason = if f.reason == crate::event::Reason::Error {
        format!("{} (errno {})", f.reason, f.errno)
    } else {
        f.reason.to_string()
    };
    json!({"type": "section", "fields": [
        field("Destination", &Endpoint(f.daddr, Some(f.dport)).to_string()),
        field("Reason", &reason),
        field("Process", &escape(&format!("{} (pid {})", f.comm, f.pid))),
        field("Time to failure", &Millis(f.duration_ns).to_string()),
        field("Source", &f.saddr.to_string()),
    ]})
}

fn summary_fields(s: &Summary) -> Value {
    json!({"type": "section", "fields": [
        field("Destination", &dest_or_overflow(s)),
        field("Failures", &format!("{} in {}", s.count, window(s.window_ns))),
        field("Reasons", &reasons(s)),
        field("Processes", &escape(&procs(s))),
    ]})
}

/// One line per alert, for grouped messages and the `text` fallback.
fn one_line(a: &Alert) -> String {
    match a {
        Alert::First(f) => escape(&format!(
            "{} {} ({} pid {}) after {}",
            Endpoint(f.daddr, Some(f.dport)),
            f.reason,
            f.comm,
            f.pid,
            Millis(f.duration_ns)
        )),
        Alert::Summary(s) => format!(
            "{}: {} more failures in {} ({}; {})",
            dest_or_overflow(s),
            s.count,
            window(s.window_ns),
            reasons(s),
            escape(&procs(s))
        ),
    }
}

/// Alerts that did not fit in the queue, folded into a count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    pub alerts: u64,
    pub failures: u64,
}

/// The webhook payload for a batch of alerts: one alert in full, several
/// grouped into one message, plus a note of any folded away.
pub fn render(host: &str, alerts: &[Alert], folded: Folded) -> Value {
    let host = escape(host);
    let mut blocks = Vec::new();
    let text;
    match alerts {
        [Alert::First(f)] if folded.alerts == 0 => {
            text = format!("TCP failure detected on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":rotating_light: *TCP connection failed* on `{host}`"
            )));
            blocks.push(first_fields(f));
        }
        [Alert::Summary(s)] if folded.alerts == 0 => {
            text = format!("TCP failures continue on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":repeat: *{} more TCP failures* to {} on `{host}` in the last {}",
                s.count,
                dest_or_overflow(s),
                window(s.window_ns)
            )));
            blocks.push(summary_fields(s));
        }
        _ => {
            let failures: u64 = alerts.iter().map(Alert::failures).sum::<u64>() + folded.failures;
            let n = alerts.len() as u64 + folded.alerts;
            text = format!("TCP failures on {host}: {n} alerts, {failures} failures");
            blocks.push(section(format!(
                ":rotating_light: *{n} TCP failure alerts* on `{host}` ({failures} failures)"
            )));
            for a in alerts {
                let mark = match a {
                    Alert::First(_) => ":x:",
                    Alert::Summary(_) => ":repeat:",
                };
                blocks.push(section(format!("{mark} {}", one_line(a))));
            }
        }
    }
    if folded.alerts > 0 {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "…and {} more alerts ({} failures) not shown: alerts came faster than Slack accepts them",
            folded.alerts, folded.failures
        )}]}));
    }
    json!({"text": text, "blocks": blocks})
}

/// Slack's limit for incoming webhooks is about one message per second,
/// with short bursts allowed: a token bucket.
#[derive(Debug)]
pub struct Pacer {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
    hold_until: Instant,
}

impl Pacer {
    pub fn new(now: Instant, burst: u32, per_sec: f64) -> Self {
        Pacer {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_sec,
            last: now,
            hold_until: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        self.last = now;
    }

    /// How long until a message may go.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let hold = self.hold_until.saturating_duration_since(now);
        let token = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        };
        hold.max(token)
    }

    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Slack said 429: nothing goes before `Retry-After`.
    pub fn hold(&mut self, until: Instant) {
        self.hold_until = self.hold_until.max(until);
        self.tokens = 0.0;
    }
}

/// Exponential back-off with jitter: attempt 0 waits 0.5–1 s, doubling up
/// to 30 s. `jitter` is in [0, 1).
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_millis(1000).saturating_mul(1 << attempt.min(5));
    base.min(Duration::from_secs(30))
        .mul_f64(0.5 + 0.5 * jitter)
}

/// A cheap jitter source; it need not be unpredictable, only spread out.
fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n.wrapping_mul(2_654_435_761) >> 8) / f64::from(1u32 << 24)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SlackStats {
    pub messages: u64,
    pub alerts: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// Alerts folded into a count because the queue was full.
    pub folded: u64,
    /// Alerts given up (Slack down, rejected, or not flushed at exit).
    pub lost_alerts: u64,
    pub lost_failures: u64,
}

pub struct Config {
    pub url: WebhookUrl,
    pub host: String,
    /// Most alerts waiting; beyond this they are folded into a count.
    pub queue: usize,
    /// Most alerts in one message (Slack allows 50 blocks).
    pub per_message: usize,
    pub max_attempts: u32,
    pub timeout: Duration,
}

impl Config {
    pub fn new(url: WebhookUrl, host: String) -> Self {
        Config {
            url,
            host,
            queue: 256,
            per_message: 20,
            max_attempts: 6,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Queue {
    alerts: VecDeque<Alert>,
    folded: Folded,
    /// Set at shutdown: send what is queued until then, then give up.
    deadline: Option<Instant>,
    stats: SlackStats,
}

type Shared = Arc<(Mutex<Queue>, Condvar)>;

/// The sink's handle; the sender runs on its own thread.
pub struct Slack {
    shared: Shared,
    thread: JoinHandle<()>,
    cap: usize,
}

/// What the sender has to say (the alert thread logs it).
pub type Say = Box<dyn Fn(&str) + Send>;

impl Slack {
    pub fn spawn(cfg: Config, say: Say) -> std::io::Result<Self> {
        let shared: Shared = Arc::default();
        let cap = cfg.queue;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tcpstate-slack".into())
            .spawn(move || Sender::new(cfg, s, say).run())?;
        Ok(Slack {
            shared,
            thread,
            cap,
        })
    }

    /// Queues an alert; never blocks on the network.
    pub fn push(&self, alert: Alert) {
        let (lock, cv) = &*self.shared;
        let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
        if q.alerts.len() >= self.cap {
            q.folded.alerts += 1;
            q.folded.failures += alert.failures();
            q.stats.folded += 1;
        } else {
            q.alerts.push_back(alert);
        }
        cv.notify_one();
    }

    /// Sends what is queued for at most `within`, then stops the sender.
    pub fn close(self, within: Duration) -> SlackStats {
        let (lock, cv) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).deadline = Some(Instant::now() + within);
        cv.notify_one();
        let _ = self.thread.join();
        let q = lock.lock().unwrap_or_else(|p| p.into_inner());
        q.stats
    }
}

struct Sender {
    cfg: Config,
    shared: Shared,
    agent: ureq::Agent,
    pacer: Pacer,
    say: Say,
}

enum Sent {
    Ok,
    /// Worth another try, after a back-off.
    Retry(String),
    RateLimited(Duration),
    /// Not worth retrying (a 4xx: bad URL, revoked webhook, bad payload).
    Fatal(String),
}

impl Sender {
    fn new(cfg: Config, shared: Shared, say: Say) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(cfg.timeout)
            .redirects(0)
            .user_agent(concat!("tcpstate/", env!("CARGO_PKG_VERSION")))
            .build();
        Sender {
            cfg,
            shared,
            agent,
            pacer: Pacer::new(Instant::now(), 3, 1.0),
            say,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `d` has passed or the shutdown deadline; false when the
    /// deadline came first.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut q = self.lock();
        loop {
            let now = Instant::now();
            if let Some(dl) = q.deadline {
                if dl <= until {
                    drop(q);
                    std::thread::sleep(dl.saturating_duration_since(now));
                    return false;
                }
            }
            if now >= until {
                return true;
            }
            q = self
                .shared
                .1
                .wait_timeout(q, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn run(mut self) {
        loop {
            // Wait for work (or shutdown).
            {
                let mut q = self.lock();
                while q.alerts.is_empty() && q.folded.alerts == 0 && q.deadline.is_none() {
                    q = self.shared.1.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.alerts.is_empty() && q.folded.alerts == 0 {
                    return; // shutdown, nothing left
                }
            }
            let wait = self.pacer.wait(Instant::now());
            if !wait.is_zero() && !self.sleep(wait) {
                return self.give_up_rest("not sent before exit");
            }
            // Take a batch: everything waiting, up to a message's worth.
            let (batch, folded) = {
                let mut q = self.lock();
                let n = q.alerts.len().min(self.cfg.per_message);
                let batch: Vec<Alert> = q.alerts.drain(..n).collect();
                let folded = if q.alerts.is_empty() {
                    std::mem::take(&mut q.folded)
                } else {
                    Folded::default()
                };
                (batch, folded)
            };
            let body = render(&self.cfg.host, &batch, folded);
            let failures = batch.iter().map(Alert::failures).sum::<u64>() + folded.failures;
            let alerts = batch.len() as u64 + folded.alerts;
            if !self.deliver(&body, alerts, failures) {
                let q = self.lock();
                if q.deadline.is_some_and(|d| Instant::now() >= d) {
                    drop(q);
                    return self.give_up_rest("not sent before exit");
                }
            }
        }
    }

    /// Sends one message, retrying; true when delivered.
    fn deliver(&mut self, body: &Value, alerts: u64, failures: u64) -> bool {
        let mut attempt = 0;
        loop {
            self.pacer.take(Instant::now());
            let why = match self.post(body) {
                Sent::Ok => {
                    let mut q = self.lock();
                    q.stats.messages += 1;
                    q.stats.alerts += alerts;
                    return true;
                }
                Sent::Fatal(why) => return self.lost(alerts, failures, &why),
                _ if attempt + 1 >= self.cfg.max_attempts => {
                    let why = format!("gave up after {} attempts", attempt + 1);
                    return self.lost(alerts, failures, &why);
                }
                Sent::RateLimited(d) => {
                    self.lock().stats.rate_limited += 1;
                    self.pacer.hold(Instant::now() + d);
                    format!("rate limited (HTTP 429), retrying after {}s", d.as_secs())
                }
                Sent::Retry(why) => {
                    let d = backoff(attempt, jitter());
                    self.pacer.hold(Instant::now() + d);
                    format!("{why}, retrying in {:.1}s", d.as_secs_f64())
                }
            };
            attempt += 1;
            self.lock().stats.retries += 1;
            if attempt == 1 {
                (self.say)(&format!("Slack webhook {}: {why}", self.cfg.url.redacted()));
            }
            let wait = self.pacer.wait(Instant::now());
            if !self.sleep(wait) {
                return self.lost(alerts, failures, "not sent before exit");
            }
        }
    }

    fn lost(&mut self, alerts: u64, failures: u64, why: &str) -> bool {
        {
            let mut q = self.lock();
            q.stats.lost_alerts += alerts;
            q.stats.lost_failures += failures;
        }
        (self.say)(&format!(
            "Slack webhook {}: {why}; lost {alerts} alerts ({failures} failures)",
            self.cfg.url.redacted()
        ));
        false
    }

    fn give_up_rest(&mut self, why: &str) {
        let (alerts, failures) = {
            let mut q = self.lock();
            let folded = std::mem::take(&mut q.folded);
            let a: Vec<Alert> = q.alerts.drain(..).collect();
            (
                a.len() as u64 + folded.alerts,
                a.iter().map(Alert::failures).sum::<u64>() + folded.failures,
            )
        };
        if alerts > 0 {
            self.lost(alerts, failures, why);
        }
    }

    fn post(&self, body: &Value) -> Sent {
        match self.agent.post(self.cfg.url.as_str()).send_json(body) {
            Ok(_) => Sent::Ok,
            Err(ureq::Error::Status(429, r)) => {
                let secs = r
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 300);
                Sent::RateLimited(Duration::from_secs(secs))
            }
            Err(ureq::Error::Status(code, r)) if code >= 500 => {
                let _ = r.into_string();
                Sent::Retry(format!("HTTP {code}"))
            }
            Err(ureq::Error::Status(code, r)) => {
                // Slack explains 4xx in the body (invalid_payload, no_service…).
                let body = r.into_string().unwrap_or_default();
                let body: String = body.chars().take(100).filter(|c| !c.is_control()).collect();
                Sent::Fatal(format!("HTTP {code} {body}"))
            }
            // Not the transport error's Display: it would print the URL.
            Err(ureq::Error::Transport(t)) => {
                let detail = std::error::Error::source(&t)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                Sent::Retry(format!("{}{detail}", t.kind()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::{Dest, Proc};
    use crate::event::{Comm, Failure, Family, Reason};

    fn failure(comm: &[u8]) -> Failure {
        Failure {
            pid: 77,
            comm: Comm::new(comm),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            sport: None,
            daddr: "198.51.100.7".parse().unwrap(),
            dport: 443,
            reason: Reason::Refused,
            errno: 111,
            ts_ns: 0,
            duration_ns: 1_500_000,
        }
    }

    fn all_text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        let u = WebhookUrl::parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET").unwrap();
        assert_eq!(u.redacted(), "https://hooks.slack.com/services/***");
        assert!(!format!("{u:?}").contains("SECRET"));
        assert_eq!(u.insecure_warning(), None);
        let local = WebhookUrl::parse("http://127.0.0.1:8080/hook/abc").unwrap();
        assert_eq!(local.redacted(), "http://127.0.0.1:8080/hook/***");
        assert_eq!(local.insecure_warning(), None);
        let remote = WebhookUrl::parse("http://relay.example/x").unwrap();
        assert!(remote.insecure_warning().unwrap().contains("unencrypted"));
        for bad in [
            "hooks.slack.com/x",
            "ftp://a/b",
            "https://",
            "https://u:p@h/x",
        ] {
            let e = WebhookUrl::parse(bad).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
        }
        let e = WebhookUrl::parse("not a url SECRET").unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn escaping_defuses_mentions_and_links() {
        assert_eq!(escape("<!here>&x"), "&lt;!here&gt;&amp;x");
        let v = render(
            "web-1",
            &[Alert::First(failure(b"<!here>&x"))],
            Folded::default(),
        );
        let s = all_text(&v);
        assert!(!s.contains("<!here>"), "{s}");
        assert!(s.contains("&lt;!here&gt;&amp;x (pid 77)"), "{s}");
        let v = render(
            "<!channel>",
            &[Alert::First(failure(b"a"))],
            Folded::default(),
        );
        assert!(!all_text(&v).contains("<!channel>"));
    }

    #[test]
    fn first_alert_has_text_and_fields() {
        let v = render(
            "web-1",
            &[Alert::First(failure(b"curl"))],
            Folded::default(),
        );
        assert_eq!(
            v["text"],
            "TCP failure detected on web-1: 198.51.100.7:443 refused (curl pid 77) after 1.5ms"
        );
        let s = all_text(&v["blocks"]);
        for want in [
            "web-1",
            "198.51.100.7:443",
            "refused",
            "curl (pid 77)",
            "1.5ms",
            "192.0.2.1",
        ] {
            assert!(s.contains(want), "{want} not in {s}");
        }
    }

    #[test]
    fn summaries_and_groups() {
        let sum = Summary {
            dest: Some(Dest {
                addr: "198.51.100.7".parse().unwrap(),
                port: 443,
            }),
            count: 1999,
            window_ns: 60_000_000_000,
            reasons: vec![(Reason::Refused, 1999)],
            procs: vec![Proc {
                comm: Comm::new(b"curl"),
                pid: 77,
                count: 1999,
            }],
            other_procs: 0,
        };
        let v = render("h", &[Alert::Summary(sum.clone())], Folded::default());
        let t = v["text"].as_str().unwrap();
        assert!(t.contains("1999 more failures in 1m"), "{t}");
        assert!(
            t.contains("refused×1999") || t.contains("refused ×1999"),
            "{t}"
        );
        let g = render(
            "h",
            &[Alert::First(failure(b"a")), Alert::Summary(sum)],
            Folded {
                alerts: 5,
                failures: 9,
            },
        );
        assert_eq!(g["text"], "TCP failures on h: 7 alerts, 2009 failures");
        assert_eq!(g["blocks"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn pacer_allows_a_burst_then_one_per_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 3, 1.0);
        for _ in 0..3 {
            assert_eq!(p.wait(t0), Duration::ZERO);
            p.take(t0);
        }
        let w = p.wait(t0);
        assert!(
            w > Duration::from_millis(990) && w <= Duration::from_secs(1),
            "{w:?}"
        );
        assert_eq!(p.wait(t0 + Duration::from_secs(1)), Duration::ZERO);
        p.take(t0 + Duration::from_secs(1));
        p.hold(t0 + Duration::from_secs(30));
        let w = p.wait(t0 + Duration::from_secs(2));
        assert_eq!(w, Duration::from_secs(28));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(0, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(10, 0.0), Duration::from_secs(15));
        assert!((0.0..1.0).contains(&jitter()));
    }
}

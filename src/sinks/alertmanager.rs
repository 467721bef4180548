//! The Alertmanager sink: one task per URL (an HA pair gets two, so one
//! that is down never delays the other), fed by a bounded channel. It
//! POSTs what waits as one JSON array to `URL/api/v2/alerts`, retrying
//! with back-off on 5xx and network errors. Waiting alerts are coalesced
//! per destination (a newer post of an alert replaces the older one), so
//! the queue holds at most one entry per destination. The blocking POST
//! runs on tokio's blocking pool; nothing here touches the event loop.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{self, Sent};
use super::inbox::{Inbox, Queue};
use super::pacer::{backoff, jitter};
use crate::alert::dns_fleet::DnsFleetAlert;
use crate::alert::resolve::{FleetAlert, FleetState, ResolvedBy, Trouble};
use crate::alert::wording::{count_over, counts, proc_counts, resolved_by};
use crate::log::Log;
use crate::metrics::stats::Stats;
use crate::output::clock::{Clock, Stamps};
use crate::output::text::{Endpoint, NamedEndpoint};

pub const ALERTNAME: &str = "TCPConnectFailures";
/// Attempts to a destination hang in SYN_SENT (`connect_slow`).
pub const ALERTNAME_HANGING: &str = "TCPConnectHanging";
/// Failures the applications recovered from (another address or family
/// worked): below the configured severity, always `info`.
pub const ALERTNAME_DEGRADED: &str = "TCPPathDegraded";
pub const SEVERITY_DEGRADED: &str = "info";
/// Connections that were established broke (`connection_broken`).
pub const ALERTNAME_BROKEN: &str = "TCPConnectionBroken";
/// Lookups of a name fail (`resolve_failed`): keyed by the name.
pub const ALERTNAME_DNS: &str = "DNSResolutionFailing";

/// What the sink posts: a destination's alert, or a name's.
#[derive(Debug, Clone)]
pub enum Post {
    /// Boxed: a destination's alert is three times a name's.
    Dest(Box<FleetAlert>),
    Name(DnsFleetAlert),
}

impl Post {
    /// Whether `other` is a newer post of the same alert.
    fn same_alert(&self, other: &Post) -> bool {
        match (self, other) {
            (Post::Dest(a), Post::Dest(b)) => a.dest == b.dest && a.trouble == b.trouble,
            (Post::Name(a), Post::Name(b)) => a.name.eq_ignore_ascii_case(&b.name),
            _ => false,
        }
    }
}

/// An Alertmanager base URL, e.g. `http://user:pass@am.example:9093`.
/// It may carry basic-auth credentials (ureq sends them), so only
/// [`AmUrl::redacted`] is ever shown.
#[derive(Clone, PartialEq, Eq)]
pub struct AmUrl {
    url: url::Url,
}

impl std::fmt::Debug for AmUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl AmUrl {
    /// Checks an `http(s)://[user:pass@]host[:port][/prefix]` URL. Errors
    /// never repeat it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s.trim())
            .map_err(|e| format!("not a valid URL ({e}); expected http://host:9093"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("unsupported scheme; expected http:// or https://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the URL must not have a query or fragment".into());
        }
        Ok(AmUrl { url })
    }

    /// `scheme://host:port`: never the credentials, nor the path.
    pub fn redacted(&self) -> String {
        let mut s = format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        );
        if let Some(p) = self.url.port_or_known_default() {
            let _ = write!(s, ":{p}");
        }
        s
    }

    /// `URL/api/v2/alerts`, keeping a path prefix (a reverse proxy's).
    pub fn endpoint(&self) -> String {
        let mut u = self.url.clone();
        let path = format!("{}/api/v2/alerts", u.path().trim_end_matches('/'));
        u.set_path(&path);
        u.to_string()
    }
}

pub struct Config {
    pub url: AmUrl,
    /// The `instance` label: this host's name.
    pub host: String,
    pub severity: String,
    /// Most alerts waiting (one per destination); beyond that, dropped and counted.
    pub queue: usize,
    /// Most alerts in one POST.
    pub per_post: usize,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// How long waiting alerts may take to go out once the daemon stops.
    pub flush: Duration,
}

impl Config {
    pub fn new(url: AmUrl, host: String) -> Self {
        Config {
            url,
            host,
            severity: "warning".into(),
            queue: 4096,
            per_post: 256,
            max_attempts: 5,
            timeout: Duration::from_secs(10),
            flush: Duration::from_secs(3),
        }
    }
}

/// Starts one URL's task; dropping the sender asks it to flush and stop.
pub fn spawn(cfg: Config, log: Log, stats: Arc<Stats>) -> (mpsc::Sender<Post>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let queue = AmQueue {
        alerts: VecDeque::new(),
        cap: cfg.queue,
        stats: stats.clone(),
    };
    let s = AmSender {
        agent: http::agent(cfg.timeout),
        endpoint: cfg.url.endpoint(),
        inbox: Inbox::new(rx, cfg.flush, queue),
        cfg,
        log,
        stats,
    };
    (tx, tokio::spawn(s.run()))
}

/// Alerts waiting for one Alertmanager.
struct AmQueue {
    alerts: VecDeque<Post>,
    cap: usize,
    stats: Arc<Stats>,
}

impl Queue<Post> for AmQueue {
    /// A newer post of the same alert replaces the one waiting.
    fn push(&mut self, a: Post) {
        if let Some(w) = self.alerts.iter_mut().find(|w| w.same_alert(&a)) {
            *w = a;
        } else if self.alerts.len() >= self.cap {
            self.stats.am_queue_drops.inc();
        } else {
            self.alerts.push_back(a);
        }
    }
}

struct AmSender {
    cfg: Config,
    agent: ureq::Agent,
    endpoint: String,
    inbox: Inbox<Post, AmQueue>,
    log: Log,
    stats: Arc<Stats>,
}

impl AmSender {
    async fn run(mut self) {
        loop {
            if self.inbox.queue.alerts.is_empty() {
                if self.inbox.closing() {
                    return;
                }
                self.inbox.recv().await;
                continue;
            }
            // Whatever else is already waiting goes in the same POST.
            self.inbox.take_waiting();
            let n = self.inbox.queue.alerts.len().min(self.cfg.per_post);
            let batch: Vec<Post> = self.inbox.queue.alerts.drain(..n).collect();
            if !self.deliver(&batch).await && self.inbox.past_deadline() {
                let rest = self.inbox.queue.alerts.len() as u64;
                self.inbox.queue.alerts.clear();
                if rest > 0 {
                    self.lost(rest, "not sent before exit");
                }
                return;
            }
        }
    }

    async fn deliver(&mut self, batch: &[Post]) -> bool {
        let body = Arc::new(render(&self.cfg.host, &self.cfg.severity, batch));
        let n = batch.len() as u64;
        let mut attempt = 0;
        loop {
            let Some(sent) = self.inbox.post(&self.agent, &self.endpoint, &body).await else {
                return self.lost(n, "not sent before exit");
            };
            let (why, wait) = match sent {
                Sent::Ok => {
                    self.stats.am_posts.inc();
                    self.stats.am_alerts.add(n);
                    return true;
                }
                Sent::Fatal(why) => return self.lost(n, &why),
                _ if attempt + 1 >= self.cfg.max_attempts => {
                    return self.lost(n, &format!("gave up after {} attempts", attempt + 1));
                }
                Sent::RateLimited(d) => (format!("HTTP 429, retrying after {}s", d.as_secs()), d),
                Sent::Retry(why) => {
                    let d = backoff(attempt, jitter());
                    (format!("{why}, retrying in {:.1}s", d.as_secs_f64()), d)
                }
            };
            attempt += 1;
            self.stats.am_retries.inc();
            if attempt == 1 {
                self.log.error(format_args!(
                    "Alertmanager {}: {why}",
                    self.cfg.url.redacted()
                ));
            }
            if !self.inbox.idle(Instant::now() + wait).await {
                return self.lost(n, "not sent before exit");
            }
        }
    }

    fn lost(&self, n: u64, why: &str) -> bool {
        self.stats.am_lost_alerts.add(n);
        self.log.error(format_args!(
            "Alertmanager {}: {why}; lost {n} alert posts",
            self.cfg.url.redacted()
        ));
        false
    }
}

/// The `/api/v2/alerts` body for a batch. Times are turned from the
/// monotonic clock into wall-clock time now.
pub fn render<P: Render>(host: &str, severity: &str, batch: &[P]) -> Value {
    let clock = Clock::system().unwrap_or(Clock::new(0));
    let stamps = Stamps::new(clock);
    Value::Array(
        batch
            .iter()
            .map(|a| one(host, severity, &stamps, a))
            .collect(),
    )
}

/// One alert, every string in it defused.
fn one<P: Render>(host: &str, severity: &str, stamps: &Stamps, a: &P) -> Value {
    let mut v = a.render(host, severity, stamps);
    defuse(&mut v);
    v
}

/// One alert as Alertmanager takes it: deciding only (the clock is in
/// `stamps`); `deliver` does the posting.
pub trait Render {
    fn render(&self, host: &str, severity: &str, stamps: &Stamps) -> Value;
}

impl Render for Post {
    fn render(&self, host: &str, severity: &str, stamps: &Stamps) -> Value {
        match self {
            Post::Dest(a) => a.render(host, severity, stamps),
            Post::Name(a) => a.render(host, severity, stamps),
        }
    }
}

impl Render for FleetAlert {
    fn render(&self, host: &str, severity: &str, stamps: &Stamps) -> Value {
        json!({
            "labels": labels(host, severity, self),
            "annotations": annotations(host, stamps, self),
            "startsAt": stamps.at(self.starts_ns).to_string(),
            "endsAt": stamps.at(self.ends_ns).to_string(),
        })
    }
}

/// A name's alert: labelled by the name (escaped), as people search for
/// it; the sources, the server and what it said as annotations.
impl Render for DnsFleetAlert {
    fn render(&self, host: &str, severity: &str, stamps: &Stamps) -> Value {
        use crate::output::dns::{qtype_name, Shown};
        let name = Shown(&self.name).to_string();
        let mut sources = counts(self.sources.iter().map(|(s, n)| (s, *n)));
        if self.other_sources > 0 {
            let _ = write!(sources, ",others×{}", self.other_sources);
        }
        let count = count_over(
            self.count,
            ("failed lookup", "failed lookups"),
            self.last_ns.saturating_sub(self.starts_ns),
        );
        let reasons = counts(self.reasons.iter().map(|(r, n)| (r.as_str(), *n)));
        let what = match self.state {
            FleetState::Firing => format!("fail: {count} ({reasons}); last: {}", self.said),
            FleetState::Resolved(by) => {
                let how = match by {
                    ResolvedBy::Success => "a lookup of it was answered".to_string(),
                    ResolvedBy::Quiet => resolved_by(by, "failed lookups"),
                };
                format!("resolve again: {count} ({reasons}); {how}")
            }
        };
        json!({
            "labels": {
                "alertname": ALERTNAME_DNS,
                "name": name,
                "reason": self.reason.as_str(),
                "instance": host,
                "severity": severity,
            },
            "annotations": {
                "summary": format!("DNS lookups on {host} of {name} {what}"),
                "failures": self.count.to_string(),
                "reasons": reasons,
                "sources": sources,
                "said": self.said,
                "query_type": qtype_name(self.qtype),
                // per_query: the process's resolv.conf was unread, so the
                // name is its query's own (maybe a search expansion).
                "lookup": if self.per_query { "per_query" } else { "search" },
                "last_failure": stamps.at(self.last_ns).to_string(),
            },
            "startsAt": stamps.at(self.starts_ns).to_string(),
            "endsAt": stamps.at(self.ends_ns).to_string(),
        })
    }
}

/// Alertmanager's receivers put these strings into Slack (`<!channel>`,
/// `<http://x|y>` and `&` are its markup), HTML mail and chat alike, and
/// the templates (the shipped one too) do not escape them. So every
/// string posted has `<`, `>` and `&` as `\x3c`, `\x3e` and `\x26`: the
/// escape every other untrusted byte already has (a backslash is doubled
/// by it, so this reads one way), text wherever it is rendered.
fn defuse(v: &mut Value) {
    match v {
        Value::String(s) if s.contains(['<', '>', '&']) => {
            *s = s
                .replace('<', "\\x3c")
                .replace('>', "\\x3e")
                .replace('&', "\\x26");
        }
        Value::Object(m) => m.values_mut().for_each(defuse),
        Value::Array(a) => a.iter_mut().for_each(defuse),
        _ => {}
    }
}

/// The alert's identity, fixed for its life: the destination is the
/// address, never the name (a name may change).
fn labels(host: &str, severity: &str, a: &FleetAlert) -> Value {
    let dest = Endpoint(a.dest.addr, Some(a.dest.port)).to_string();
    match a.trouble {
        Trouble::Failing => json!({
            "alertname": ALERTNAME,
            "destination": dest,
            "reason": a.reason.map_or("error", |r| r.name()),
            "instance": host,
            "severity": severity,
        }),
        // No reason: the attempts have not ended.
        Trouble::Hanging => json!({
            "alertname": ALERTNAME_HANGING,
            "destination": dest,
            "instance": host,
            "severity": severity,
        }),
        Trouble::Broken => json!({
            "alertname": ALERTNAME_BROKEN,
            "destination": dest,
            "reason": a.reason.map_or("error", |r| r.name()),
            "instance": host,
            "severity": severity,
        }),
        Trouble::Degraded => json!({
            "alertname": ALERTNAME_DEGRADED,
            "destination": dest,
            "reason": a.reason.map_or("error", |r| r.name()),
            "instance": host,
            "severity": SEVERITY_DEGRADED,
        }),
    }
}

/// What people read: the summary, and the counts behind it.
fn annotations(host: &str, stamps: &Stamps, a: &FleetAlert) -> Value {
    let summary = summary(host, a);
    let procs = proc_counts(&a.procs, a.other_procs);
    let last = stamps.at(a.last_ns).to_string();
    let dname = a.dname.map(|n| n.to_string());
    let mut annotations = match a.trouble {
        Trouble::Failing => json!({
            "summary": summary,
            "failures": a.count.to_string(),
            "reasons": counts(a.reasons.iter().copied()),
            "processes": procs,
            "last_failure": last,
            "dname": dname,
        }),
        Trouble::Hanging => json!({
            "summary": summary,
            "attempts": a.count.to_string(),
            "processes": procs,
            "last_hanging": last,
            "dname": dname,
        }),
        Trouble::Broken => json!({
            "summary": summary,
            "broken": a.count.to_string(),
            "reasons": counts(a.reasons.iter().copied()),
            "processes": procs,
            "last_broken": last,
            "dname": dname,
        }),
        Trouble::Degraded => json!({
            "summary": summary,
            "recovered_failures": a.count.to_string(),
            "reasons": counts(a.reasons.iter().copied()),
            "processes": procs,
            "last_failure": last,
            "dname": dname,
        }),
    };
    // Only where a runtime named them: no empty annotation otherwise.
    if !a.containers.is_empty() {
        let containers = counts(a.containers.iter().map(|(c, n)| (c, *n)));
        annotations["containers"] = Value::String(containers);
    }
    // Who rejected it, where an ICMP error said: a router or firewall on
    // the path is another team than the destination's.
    if let Some(i) = a.icmp {
        annotations["rejected_by"] = Value::String(i.wording(a.dest.addr));
    }
    // A packet this host dropped: `no ARP answer for 10.68.0.77 on eth0`.
    if let Some(d) = a.dropped {
        annotations["dropped_here"] = Value::String(d.wording());
    }
    // The latest RST's hop distance: a hint of a box on the path that
    // forged it, where it differs from the server's own packets'.
    if let Some(t) = a.rst_ttl {
        annotations["rst_ttl"] = Value::String(t.to_string());
    }
    annotations
}

/// `TCP connections from web-1 to [2001:db8::7]:5432 fail: 12 failures
/// over 2s (refused×10,timeout×2)`, and how it hangs or recovered.
fn summary(host: &str, a: &FleetAlert) -> String {
    // People read the name; the label stays the address.
    let dest = NamedEndpoint(a.dname.as_ref(), a.dest.addr, a.dest.port).to_string();
    let (one, many) = match a.trouble {
        Trouble::Failing => ("failure", "failures"),
        Trouble::Hanging => ("attempt hanging", "attempts hanging"),
        Trouble::Degraded => ("failure recovered from", "failures recovered from"),
        Trouble::Broken => ("connection broken", "connections broken"),
    };
    let count = count_over(a.count, (one, many), a.last_ns.saturating_sub(a.starts_ns));
    let reasons = counts(a.reasons.iter().copied());
    let what = match (a.trouble, a.state) {
        (Trouble::Failing, FleetState::Firing) => format!("fail: {count} ({reasons})"),
        (Trouble::Hanging, FleetState::Firing) => format!("hang: {count}"),
        (Trouble::Failing, FleetState::Resolved(by)) => {
            format!("recovered: {count} ({reasons}); {}", resolved_by(by, many))
        }
        (Trouble::Hanging, FleetState::Resolved(by)) => {
            format!("recovered: {count}; {}", resolved_by(by, many))
        }
        (Trouble::Broken, FleetState::Firing) => format!("break: {count} ({reasons})"),
        (Trouble::Broken, FleetState::Resolved(by)) => {
            format!(
                "stable again: {count} ({reasons}); {}",
                resolved_by(by, many)
            )
        }
        (Trouble::Degraded, FleetState::Firing) => {
            format!("fail, but the applications fell back to another path: {count} ({reasons})")
        }
        (Trouble::Degraded, FleetState::Resolved(by)) => {
            format!(
                "path works again: {count} ({reasons}); {}",
                resolved_by(by, "failures")
            )
        }
    };
    format!("TCP connections from {host} to {dest} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::{Dest, Proc};
    use crate::alert::resolve::ResolvedBy;
    use crate::event::{Comm, Reason};
    const GOLDEN: [&str; 8] = [
        r#"{"annotations":{"containers":"api×11","dname":"db.example.com","failures":"12","last_failure":"2023-11-14T22:13:23.000000Z","processes":"ps\\x20ql[42]×9,?×2,others×1","reasons":"refused×10,timeout×2","summary":"TCP connections from web-1 to db.example.com (2001:db8::7):5432 fail: 12 failures over 2s (refused×10,timeout×2)"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectFailures","destination":"[2001:db8::7]:5432","instance":"web-1","reason":"refused","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"containers":"api×11","dname":"db.example.com","failures":"1","last_failure":"2023-11-14T22:13:21.000000Z","processes":"ps\\x20ql[42]×9,?×2,others×1","reasons":"refused×10,timeout×2","summary":"TCP connections from web-1 to db.example.com (2001:db8::7):5432 fail: 1 failure (refused×10,timeout×2)"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectFailures","destination":"[2001:db8::7]:5432","instance":"web-1","reason":"refused","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"containers":"api×11","dname":"db.example.com","failures":"12","last_failure":"2023-11-14T22:13:23.000000Z","processes":"ps\\x20ql[42]×9,?×2,others×1","reasons":"refused×10,timeout×2","summary":"TCP connections from web-1 to db.example.com (2001:db8::7):5432 recovered: 12 failures over 2s (refused×10,timeout×2); a connection succeeded"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectFailures","destination":"[2001:db8::7]:5432","instance":"web-1","reason":"refused","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"containers":"api×11","dname":"db.example.com","failures":"12","last_failure":"2023-11-14T22:13:23.000000Z","processes":"ps\\x20ql[42]×9,?×2,others×1","reasons":"refused×10,timeout×2","summary":"TCP connections from web-1 to db.example.com (2001:db8::7):5432 recovered: 12 failures over 2s (refused×10,timeout×2); no failures since"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectFailures","destination":"[2001:db8::7]:5432","instance":"web-1","reason":"error","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"attempts":"12","dname":null,"last_hanging":"2023-11-14T22:13:23.000000Z","processes":"","summary":"TCP connections from web-1 to [2001:db8::7]:5432 hang: 12 attempts hanging over 2s"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectHanging","destination":"[2001:db8::7]:5432","instance":"web-1","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"attempts":"1","dname":null,"last_hanging":"2023-11-14T22:13:23.000000Z","processes":"","summary":"TCP connections from web-1 to [2001:db8::7]:5432 hang: 1 attempt hanging"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectHanging","destination":"[2001:db8::7]:5432","instance":"web-1","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"attempts":"12","dname":null,"last_hanging":"2023-11-14T22:13:23.000000Z","processes":"","summary":"TCP connections from web-1 to [2001:db8::7]:5432 recovered: 12 attempts hanging over 2s; a connection succeeded"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectHanging","destination":"[2001:db8::7]:5432","instance":"web-1","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
        r#"{"annotations":{"attempts":"12","dname":null,"last_hanging":"2023-11-14T22:13:23.000000Z","processes":"","summary":"TCP connections from web-1 to [2001:db8::7]:5432 recovered: 12 attempts hanging over 2s; no attempts hanging since"},"endsAt":"2023-11-14T22:17:21.000000Z","labels":{"alertname":"TCPConnectHanging","destination":"[2001:db8::7]:5432","instance":"web-1","severity":"page"},"startsAt":"2023-11-14T22:13:21.000000Z"}"#,
    ];

    /// Issue 29, finding 6: a DNS name, processes and containers with
    /// Slack markup reach Alertmanager as text.
    #[test]
    fn slack_markup_reaches_alertmanager_as_text() {
        let mut a = failing();
        a.dname = crate::dns::Dname::new(b"<!channel>.echo.t");
        a.containers = vec![("<http://evil.example|click>&".into(), 3)];
        a.procs[0].comm = Some(Comm::new(b"<!here>"));
        let body = render("web-1", "page", &[a]).to_string();
        for raw in ["<", ">", "&"] {
            assert!(!body.contains(raw), "{raw} in {body}");
        }
        assert!(
            body.contains(r"to \\x3c!channel\\x3e.echo.t (2001:db8::7):5432"),
            "{body}"
        );
        assert!(
            body.contains(r"\\x3chttp://evil.example|click\\x3e\\x26×3"),
            "{body}"
        );
        assert!(body.contains(r"\\x3c!here\\x3e"), "{body}");
    }

    #[test]
    fn urls_keep_credentials_but_never_show_them() {
        let u = AmUrl::parse("http://admin:S3CRET@am.example:9093/prefix/").unwrap();
        assert_eq!(u.redacted(), "http://am.example:9093");
        assert_eq!(
            u.endpoint(),
            "http://admin:S3CRET@am.example:9093/prefix/api/v2/alerts"
        );
        assert!(!format!("{u:?}").contains("S3CRET"));
        let plain = AmUrl::parse("https://am.example").unwrap();
        assert_eq!(plain.redacted(), "https://am.example:443");
        assert_eq!(plain.endpoint(), "https://am.example/api/v2/alerts");
        for bad in [
            "am.example:9093",
            "ftp://u:S3CRET@h/",
            "http://u:S3CRET@h/?x=1",
            "not a url S3CRET",
        ] {
            let e = AmUrl::parse(bad).unwrap_err();
            assert!(!e.contains("S3CRET"), "{e}");
        }
    }

    /// 12 failures to `[2001:db8::7]:5432` over 2s, all from psql[42].
    fn failing() -> FleetAlert {
        FleetAlert {
            dest: Dest {
                addr: "2001:db8::7".parse().unwrap(),
                port: 5432,
            },
            trouble: Trouble::Failing,
            reason: Some(Reason::Refused),
            state: FleetState::Firing,
            starts_ns: 1_000_000_000,
            ends_ns: 241_000_000_000,
            last_ns: 3_000_000_000,
            count: 12,
            reasons: vec![(Reason::Refused, 10), (Reason::Timeout, 2)],
            procs: vec![Proc {
                comm: Some(Comm::new(b"psql")),
                pid: Some(42),
                count: 12,
            }],
            other_procs: 0,
            dname: None,
            containers: Vec::new(),
            icmp: None,
            dropped: None,
            rst_ttl: None,
        }
    }

    #[test]
    fn the_latest_rsts_ttl_is_an_annotation() {
        let mut a = failing();
        let v = render("web-1", "page", std::slice::from_ref(&a));
        assert!(v[0]["annotations"].get("rst_ttl").is_none());
        a.rst_ttl = Some(63);
        let v = render("web-1", "page", std::slice::from_ref(&a));
        assert_eq!(v[0]["annotations"]["rst_ttl"], "63");
    }

    #[test]
    fn an_icmp_rejection_names_who_rejected() {
        let mut a = failing();
        assert!(
            render("web-1", "page", std::slice::from_ref(&a))[0]["annotations"]
                .get("rejected_by")
                .is_none()
        );
        a.icmp = Some(crate::event::Icmp {
            from: "2001:db8::1".parse().unwrap(),
            v6: true,
            kind: 1,
            code: 1,
            errno: 13,
        });
        let v = render("web-1", "page", std::slice::from_ref(&a));
        assert_eq!(
            v[0]["annotations"]["rejected_by"],
            "rejected by 2001:db8::1 (ICMPv6 admin-prohibited), not by the destination"
        );
    }

    #[test]
    fn alerts_have_stable_labels_and_human_annotations() {
        let a = failing();
        let v = render("web-1", "warning", std::slice::from_ref(&a));
        let one = &v[0];
        assert_eq!(
            one["labels"],
            json!({"alertname": "TCPConnectFailures", "destination": "[2001:db8::7]:5432",
                   "reason": "refused", "instance": "web-1", "severity": "warning"})
        );
        let summary = one["annotations"]["summary"].as_str().unwrap();
        assert_eq!(
            summary,
            "TCP connections from web-1 to [2001:db8::7]:5432 fail: 12 failures over 2s (refused×10,timeout×2)"
        );
        assert_eq!(one["annotations"]["processes"], "psql[42]×12");
        assert!(one["annotations"].get("containers").is_none(), "{one}");
        let named = FleetAlert {
            containers: vec![
                ("payments/api-7f9c\\x20(api)".into(), 10),
                ("web-1".into(), 2),
            ],
            ..a.clone()
        };
        let v = render("web-1", "warning", &[named]);
        assert_eq!(
            v[0]["annotations"]["containers"],
            "payments/api-7f9c\\x20(api)×10,web-1×2"
        );
        let (s, e) = (
            one["startsAt"].as_str().unwrap(),
            one["endsAt"].as_str().unwrap(),
        );
        assert!(s.ends_with('Z') && e.ends_with('Z') && s < e, "{s} {e}");
        let r = FleetAlert {
            state: FleetState::Resolved(ResolvedBy::Success),
            ends_ns: 5_000_000_000,
            ..a.clone()
        };
        let v = render("web-1", "warning", std::slice::from_ref(&r));
        assert_eq!(v[0]["labels"]["reason"], "refused");
        assert!(v[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("recovered"));
        // A name the application resolved: in the summary and its own
        // annotation, escaped; the label stays the address.
        let n = FleetAlert {
            dname: crate::event::Dname::new(b"db.example.com\n"),
            state: FleetState::Firing,
            ..r.clone()
        };
        let v = render("web-1", "warning", &[n]);
        assert_eq!(v[0]["labels"]["destination"], "[2001:db8::7]:5432");
        assert_eq!(v[0]["annotations"]["dname"], "db.example.com\\x0a");
        assert!(v[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains(" to db.example.com\\x0a (2001:db8::7):5432 fail"));
        // Hanging: its own alertname, no reason label.
        let h = FleetAlert {
            trouble: Trouble::Hanging,
            reason: None,
            state: FleetState::Firing,
            count: 3,
            reasons: Vec::new(),
            ..r
        };
        let v = render("web-1", "warning", std::slice::from_ref(&h));
        assert_eq!(
            v[0]["labels"],
            json!({"alertname": "TCPConnectHanging", "destination": "[2001:db8::7]:5432",
                   "instance": "web-1", "severity": "warning"})
        );
        assert_eq!(
            v[0]["annotations"]["summary"],
            "TCP connections from web-1 to [2001:db8::7]:5432 hang: 3 attempts hanging over 2s"
        );
        assert_eq!(v[0]["annotations"]["attempts"], "3");
        assert_eq!(v[0]["annotations"]["processes"], "psql[42]×12");
        let v = render(
            "web-1",
            "warning",
            &[FleetAlert {
                state: FleetState::Resolved(ResolvedBy::Quiet),
                ..h
            }],
        );
        assert_eq!(
            v[0]["annotations"]["summary"],
            "TCP connections from web-1 to [2001:db8::7]:5432 recovered: 3 attempts hanging over 2s; no attempts hanging since"
        );
    }

    /// Every shape of alert, to the byte, with a fixed clock: the body
    /// Alertmanager gets must not change when the wording code does.
    #[test]
    fn every_alert_shape_renders_byte_for_byte() {
        let stamps = Stamps::new(Clock::new(1_700_000_000_000_000_000));
        let a = FleetAlert {
            procs: vec![
                Proc {
                    comm: Some(Comm::new(b"ps ql")),
                    pid: Some(42),
                    count: 9,
                },
                Proc {
                    comm: None,
                    pid: Some(7),
                    count: 2,
                },
            ],
            other_procs: 1,
            dname: crate::event::Dname::new(b"db.example.com"),
            containers: vec![("api".into(), 11)],
            ..failing()
        };
        let h = FleetAlert {
            trouble: Trouble::Hanging,
            reason: None,
            reasons: Vec::new(),
            procs: Vec::new(),
            other_procs: 0,
            dname: None,
            containers: Vec::new(),
            ..a.clone()
        };
        let cases = [
            a.clone(),
            FleetAlert {
                count: 1,
                last_ns: 1_000_000_000,
                ..a.clone()
            },
            FleetAlert {
                state: FleetState::Resolved(ResolvedBy::Success),
                ..a.clone()
            },
            FleetAlert {
                state: FleetState::Resolved(ResolvedBy::Quiet),
                reason: None,
                ..a
            },
            h.clone(),
            FleetAlert {
                count: 1,
                ..h.clone()
            },
            FleetAlert {
                state: FleetState::Resolved(ResolvedBy::Success),
                ..h.clone()
            },
            FleetAlert {
                state: FleetState::Resolved(ResolvedBy::Quiet),
                ..h
            },
        ];
        let got: Vec<String> = cases
            .iter()
            .map(|a| one("web-1", "page", &stamps, a).to_string())
            .collect();
        assert_eq!(got.len(), GOLDEN.len());
        for (g, w) in got.iter().zip(GOLDEN) {
            assert_eq!(g, w);
        }
    }

    #[test]
    fn a_hanging_post_does_not_replace_a_waiting_failure_post() {
        let stats = Arc::new(Stats::default());
        let mut q = AmQueue {
            alerts: VecDeque::new(),
            cap: 8,
            stats,
        };
        let a = FleetAlert {
            dest: Dest {
                addr: "192.0.2.7".parse().unwrap(),
                port: 80,
            },
            trouble: Trouble::Failing,
            reason: Some(Reason::Timeout),
            state: FleetState::Firing,
            starts_ns: 0,
            ends_ns: 1,
            last_ns: 0,
            count: 1,
            reasons: vec![(Reason::Timeout, 1)],
            procs: Vec::new(),
            other_procs: 0,
            dname: None,
            containers: Vec::new(),
            icmp: None,
            dropped: None,
            rst_ttl: None,
        };
        q.push(Post::Dest(Box::new(a.clone())));
        q.push(Post::Dest(Box::new(FleetAlert {
            trouble: Trouble::Hanging,
            reason: None,
            ..a.clone()
        })));
        q.push(Post::Dest(Box::new(FleetAlert { count: 2, ..a })));
        // A name's alert is its own, and a newer post of it replaces it.
        let n = dns_alert(FleetState::Firing);
        q.push(Post::Name(n.clone()));
        q.push(Post::Name(DnsFleetAlert {
            name: b"API.example.com".to_vec(),
            count: 5,
            ..n
        }));
        let got: Vec<_> = q
            .alerts
            .iter()
            .map(|a| match a {
                Post::Dest(a) => (format!("{:?}", a.trouble), a.count),
                Post::Name(a) => (String::from_utf8_lossy(&a.name).into_owned(), a.count),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Failing".to_string(), 2),
                ("Hanging".to_string(), 1),
                ("API.example.com".to_string(), 5)
            ]
        );
    }

    fn dns_alert(state: FleetState) -> DnsFleetAlert {
        use crate::dns::outcome::Reason as Dns;
        DnsFleetAlert {
            name: b"api.example.com".to_vec(),
            reason: Dns::NxDomain,
            state,
            starts_ns: 0,
            ends_ns: 240_000_000_000,
            last_ns: 2_000_000_000,
            count: 3,
            reasons: vec![(Dns::NxDomain, 2), (Dns::Timeout, 1)],
            sources: vec![
                ("checkout.service".into(), 2),
                ("java\\x20x (pid 7)".into(), 1),
            ],
            other_sources: 1,
            server: None,
            qtype: 1,
            said: "NXDOMAIN from 10.0.0.2".into(),
            per_query: false,
        }
    }

    /// Issue 32: a name's alert, by the name; firing and both ways of
    /// resolving, byte for byte; a hostile name is text.
    #[test]
    fn a_names_alert_is_labelled_by_the_name() {
        let stamps = Stamps::new(Clock::new(1_700_000_000_000_000_000));
        let got: Vec<String> = [
            FleetState::Firing,
            FleetState::Resolved(ResolvedBy::Success),
            FleetState::Resolved(ResolvedBy::Quiet),
        ]
        .into_iter()
        .map(|st| one("web-1", "page", &stamps, &Post::Name(dns_alert(st))).to_string())
        .collect();
        let want = [
            r#"{"annotations":{"failures":"3","last_failure":"2023-11-14T22:13:22.000000Z","lookup":"search","query_type":"A","reasons":"nxdomain×2,timeout×1","said":"NXDOMAIN from 10.0.0.2","sources":"checkout.service×2,java\\x20x (pid 7)×1,others×1","summary":"DNS lookups on web-1 of api.example.com fail: 3 failed lookups over 2s (nxdomain×2,timeout×1); last: NXDOMAIN from 10.0.0.2"},"endsAt":"2023-11-14T22:17:20.000000Z","labels":{"alertname":"DNSResolutionFailing","instance":"web-1","name":"api.example.com","reason":"nxdomain","severity":"page"},"startsAt":"2023-11-14T22:13:20.000000Z"}"#,
            "resolve again: 3 failed lookups over 2s (nxdomain×2,timeout×1); a lookup of it was answered",
            "resolve again: 3 failed lookups over 2s (nxdomain×2,timeout×1); no failed lookups since",
        ];
        assert_eq!(got[0], want[0]);
        for (g, w) in got[1..].iter().zip(&want[1..]) {
            assert!(g.contains(w), "{g}");
        }
        let hostile = DnsFleetAlert {
            name: b"<!channel>\n.x".to_vec(),
            ..dns_alert(FleetState::Firing)
        };
        let v = one("web-1", "page", &stamps, &Post::Name(hostile)).to_string();
        assert!(
            !v.contains('<') && v.contains(r#""name":"\\x3c!channel\\x3e\\x0a.x""#),
            "{v}"
        );
    }
}

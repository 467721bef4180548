//! One POST of a JSON body to a webhook (or of a protobuf body to an OTLP
//! collector), classified for the retry logic of the sinks. Blocking
//! (ureq): the sinks run it on tokio's blocking pool.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Ok,
    /// Worth another try, after a back-off.
    Retry(String),
    RateLimited(Duration),
    /// Not worth retrying: a 3xx or 4xx (moved, bad URL, revoked webhook,
    /// bad payload).
    Fatal(String),
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(timeout)
        // A redirect would carry the secret URL's body elsewhere; a webhook
        // that moved is a configuration error to fix, and is said so.
        .redirects(0)
        .user_agent(concat!("tcpstate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A short, printable excerpt of an answer's body (Slack explains a 4xx
/// there: invalid_payload, no_service…).
fn excerpt(r: ureq::Response) -> String {
    let body = r.into_string().unwrap_or_default();
    let body: String = body.chars().take(100).filter(|c| !c.is_control()).collect();
    if body.is_empty() {
        body
    } else {
        format!(" {body}")
    }
}

pub fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> Sent {
    classify(agent.post(url).send_json(body))
}

/// POSTs `body` as `content_type` (OTLP: application/x-protobuf).
pub fn post_bytes(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> Sent {
    classify(
        agent
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body),
    )
}

fn classify(r: Result<ureq::Response, ureq::Error>) -> Sent {
    match r {
        Ok(r) if (200..300).contains(&r.status()) => Sent::Ok,
        // With redirects off, ureq answers Ok for a 3xx: it was not delivered.
        Ok(r) => Sent::Fatal(format!(
            "HTTP {}: a redirect, not followed (check the URL)",
            r.status()
        )),
        Err(ureq::Error::Status(429, r)) => {
            let secs = r
                .header("Retry-After")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 300);
            Sent::RateLimited(Duration::from_secs(secs))
        }
        Err(ureq::Error::Status(code, r)) if code >= 500 => {
            Sent::Retry(format!("HTTP {code}{}", excerpt(r)))
        }
        Err(ureq::Error::Status(code, r)) => Sent::Fatal(format!("HTTP {code}{}", excerpt(r))),
        // Not the transport error's Display: it would print the URL.
        Err(ureq::Error::Transport(t)) => {
            let detail = std::error::Error::source(&t)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            Sent::Retry(format!("{}{detail}", t.kind()))
        }
    }
}

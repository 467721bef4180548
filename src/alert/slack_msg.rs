//! The Slack message for a batch of alerts: Block Kit JSON with a plain
//! `text` fallback. Pure. Everything dynamic is escaped as Slack requires.

use serde_json::{json, Value};

use super::policy::{Alert, Summary};
use super::wording::{dest_or_overflow, procs, reasons, recovered, window};
use crate::text::{Endpoint, Millis};

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
        Alert::Resolved(r) => recovered(r),
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
        [Alert::Resolved(r)] if folded.alerts == 0 => {
            text = format!("TCP {} on {host}", recovered(r));
            blocks.push(section(format!(
                ":white_check_mark: *{}* on `{host}`",
                recovered(r)
            )));
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
                    Alert::Resolved(_) => ":white_check_mark:",
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
}

//! The Slack message for a batch of alerts: Block Kit JSON with a plain
//! `text` fallback. Pure. Everything dynamic is escaped as Slack requires.
//!
//! Untrusted text (process names; units, containers, cgroup paths) must
//! reach Slack as text, never as a mention or a link. Slack's documented
//! rules, and what is done for each:
//! - "Slack uses &, <, and > as control characters for special parsing in
//!   text objects, so they must be converted to HTML entities" (Formatting
//!   text for app surfaces): [`escape`], so `<!everyone>` is text.
//! - A mrkdwn text object's `verbatim`: "When set to false (as is default)
//!   URLs will be auto-converted into links, conversation names will be
//!   link-ified, and certain mentions will be automatically parsed. When
//!   set to true, Slack will continue to process all markdown formatting
//!   and manual parsing strings, but it won't modify any plain-text
//!   content" (Block Kit text object reference): every mrkdwn object here
//!   is `verbatim: true`.
//! - The top-level `text` has no `verbatim` (with blocks it is the
//!   notification fallback; "URL detection is performed by the server"):
//!   [`escape`] also puts an invisible WORD JOINER (U+2060) after an `@` or
//!   `#` that starts a word and after the `:` of `://`, so `@channel`,
//!   `@here`, `#general` and `https://…` match no mention, channel or URL
//!   pattern, in the blocks too, while looking the same. An `@` inside a
//!   word (`getty@tty1.service`, `a@b`) is left alone: it is no mention,
//!   and unit names must stay copyable.
//! - Unfurling: "If you'd like to stop this from happening, set both
//!   unfurl_links and unfurl_media to false when posting the message"
//!   (Unfurling): both are false, so Slack never fetches a URL a process
//!   name holds. `link_names` ("Find and link user groups") is sent as
//!   false, its default.
//!
//! mrkdwn emphasis (`*`, `_`, `~`, backticks) in a process name can still
//! change how it looks; it cannot notify anyone or link anywhere.
//!
//! Slack refuses a message whose blocks pass its limits ("text: maximum
//! length for this field is 3000 characters" for a section, 2000 for
//! each of its fields; Block Kit reference), with 400 `invalid_blocks`,
//! and every alert in it would be lost: each text object is cut to its
//! limit with an ellipsis ([`cut`]), and [`plain`] is the message without
//! blocks that the sink sends if Slack refuses one anyway.

use serde_json::{json, Value};

use crate::alert::policy::{Alert, Summary, What};
use crate::alert::wording::{procs, reasons, recovered, subject, top_dests, units, window};
use crate::event::{Attribution, Caller, Failure, Reason, Slow};
use crate::output::text::{Endpoint, Escaped, Millis, NamedEndpoint};

/// WORD JOINER: invisible, and not a word break.
const WJ: char = '\u{2060}';

/// Dynamic text for Slack, taken literally. Slack's own escaping for text
/// it formats (`&`, `<`, `>`), so no process name can mention
/// `<!channel>` or forge a link; and a WORD JOINER after an `@` or `#`
/// that starts a word and after the `:` of `://`, so Slack's automatic
/// parsing finds no `@here`/`@channel`/`@everyone`/`@user` mention, no
/// `#channel` and no `scheme://` URL in it. Visible text is unchanged.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        let word_start = prev.is_none_or(|p| !(p.is_alphanumeric() || "._-@#".contains(p)));
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' | '#' if word_start => {
                out.push(c);
                out.push(WJ);
            }
            ':' if it.peek() == Some(&'/') => {
                out.push(c);
                out.push(WJ);
            }
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// Slack's limits on a section's text, and on each of its fields.
pub const SECTION_MAX: usize = 3000;
pub const FIELD_MAX: usize = 2000;

/// `text` cut to `max` characters, the last an ellipsis, never inside an
/// entity that [`escape`] wrote (`&amp;`), so the cut shows as text.
pub fn cut(mut text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let end = text
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    text.truncate(end);
    if let Some(amp) = text.rfind('&').filter(|&i| !text[i..].contains(';')) {
        text.truncate(amp);
    }
    text.push('…');
    text
}

/// A mrkdwn text object Slack leaves as it is: no automatic links,
/// channel names or mentions; cut to `max` characters.
fn mrkdwn(text: String, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, max), "verbatim": true})
}

fn field(title: &str, value: &str) -> Value {
    mrkdwn(format!("*{title}*\n{value}"), FIELD_MAX)
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": mrkdwn(text, SECTION_MAX)})
}

/// `curl (pid 77)`, with the process if the thread is named otherwise.
fn who(c: &Option<Caller>) -> String {
    match c {
        Some(c) if c.process != c.comm => {
            format!("{} (pid {}, process {})", c.comm, c.pid, c.process)
        }
        Some(c) => format!("{} (pid {})", c.comm, c.pid),
        None => "unknown (its start was not seen)".to_string(),
    }
}

/// The container (its name, with its short id) or else the unit, and the
/// pod as `namespace/pod`, as fields, where the cgroup and the runtime
/// name them.
fn attribution_fields(attr: Option<&Attribution>) -> Vec<Value> {
    let Some(a) = attr else {
        return Vec::new();
    };
    let esc = |v: &str| escape(&Escaped(v).to_string());
    let mut out = Vec::new();
    match (&a.container_name, &a.container, &a.unit) {
        (Some(n), Some(id), _) => {
            let short = id.get(..12).unwrap_or(id);
            out.push(field("Container", &format!("{} ({})", esc(n), esc(short))));
        }
        (Some(n), None, _) => out.push(field("Container", &esc(n))),
        (None, Some(id), _) => out.push(field("Container", &esc(id))),
        (None, None, Some(u)) => out.push(field("Unit", &esc(u))),
        (None, None, None) => {}
    }
    // A user's own unit, below its manager (`user@1000.service`).
    if let Some(u) = &a.user_unit {
        out.push(field("User unit", &esc(u)));
    }
    if a.pod_name.is_some() || a.pod_namespace.is_some() {
        out.push(field(
            "Pod",
            &escape(&crate::output::text::PodRef(a).to_string()),
        ));
    }
    out
}

/// Where it failed, where tcpstate saw it: a packet this host dropped
/// (no ARP answer: the kernel then also sends itself an ICMP error, which
/// names this host), else the ICMP error and who sent it.
fn why(f: &Failure) -> Option<String> {
    match (f.dropped.filter(|d| d.next_hop.is_some()), f.icmp) {
        (Some(d), _) => Some(d.wording()),
        (None, Some(i)) => Some(i.wording(f.daddr)),
        (None, None) => None,
    }
}

fn first_fields(f: &Failure, attr: Option<&Attribution>) -> Value {
    let reason = if matches!(f.reason, Reason::Error | Reason::Denied) {
        format!("{} (errno {})", f.reason, f.errno)
    } else {
        f.reason.to_string()
    };
    // `host_unreachable: rejected by 10.1.0.1 (ICMP admin-prohibited), not
    // by the destination`: the router is another team than the destination.
    let reason = match why(f) {
        Some(why) => format!("{reason}: {why}"),
        None => reason,
    };
    let mut fields = vec![
        field(
            "Destination",
            &escape(&NamedEndpoint(f.dname.as_ref(), f.daddr, f.dport).to_string()),
        ),
        field("Reason", &format!("{reason}, at {}", f.stage.name())),
        field("Process", &escape(&who(&f.caller))),
        field(
            "Time to failure",
            &f.duration().map_or_else(
                || "unknown (its start was not seen)".to_string(),
                |ns| Millis(ns).to_string(),
            ),
        ),
        field("Source", &f.saddr.to_string()),
    ];
    // The RST's hop distance: a hint, not a verdict (docs/reasons.md).
    if let Some(t) = f.rst_ttl {
        fields.push(field(
            "RST TTL",
            &format!(
                "{t} as it arrived (another value than the server's own packets' \
                 hints at a box on the path that forged it)"
            ),
        ));
    }
    fields.extend(attribution_fields(attr));
    json!({"type": "section", "fields": fields})
}

fn slow_fields(e: &Slow, attr: Option<&Attribution>) -> Value {
    let mut fields = vec![
        field(
            "Destination",
            &escape(&NamedEndpoint(e.dname.as_ref(), e.daddr, e.dport).to_string()),
        ),
        field(
            "Hanging for",
            &format!(
                "{} ({} SYN retransmits)",
                Millis(e.elapsed_ns),
                e.retransmits
            ),
        ),
        field("Process", &escape(&who(&e.caller))),
    ];
    fields.extend(attribution_fields(attr));
    json!({"type": "section", "fields": fields})
}

fn summary_fields(s: &Summary) -> Value {
    let mut fields = vec![
        field("Destination", &escape(&subject(s))),
        field("Count", &format!("{} in {}", s.count, window(s.window_ns))),
        field("Processes", &escape(&procs(s))),
    ];
    if !s.reasons.is_empty() {
        fields.push(field("Reasons", &reasons(s)));
    }
    if !s.top_dests.is_empty() {
        fields.push(field("Top destinations", &top_dests(s)));
    }
    if !s.units.is_empty() {
        fields.push(field("Units", &escape(&units(s))));
    }
    json!({"type": "section", "fields": fields})
}

/// `, in web-1, pod payments/api-7f9c`, or `, unit cron.service, user
/// unit app.service`: the source as far as it is known; escaped as
/// process names are (Slack's escaping comes on top).
fn source(attr: Option<&Attribution>) -> String {
    let Some(a) = attr else {
        return String::new();
    };
    let mut s = String::new();
    // A grouped line has no fields: it names the source itself, so a
    // digest still tells a user's unit from the system's.
    match (&a.container_name, &a.container, &a.unit) {
        (Some(n), _, _) => s.push_str(&format!(", in {}", Escaped(n))),
        (None, Some(id), _) => s.push_str(&format!(
            ", in container {}",
            Escaped(id.get(..12).unwrap_or(id))
        )),
        (None, None, Some(u)) => s.push_str(&format!(", unit {}", Escaped(u))),
        (None, None, None) => {}
    }
    if let Some(u) = &a.user_unit {
        s.push_str(&format!(", user unit {}", Escaped(u)));
    }
    if a.pod_name.is_some() || a.pod_namespace.is_some() {
        s.push_str(&format!(", pod {}", crate::output::text::PodRef(a)));
    }
    s
}

/// One line per alert, for grouped messages and the `text` fallback.
fn one_line(a: &Alert) -> String {
    match a {
        Alert::First(f, a) => {
            let after = match f.duration() {
                Some(ns) => format!(" after {}", Millis(ns)),
                None => String::new(),
            };
            let rejected = why(f).map_or(String::new(), |w| format!(": {w}"));
            let ttl = f
                .rst_ttl
                .map_or(String::new(), |t| format!(" (RST TTL {t})"));
            escape(&format!(
                "{} {}{rejected}{ttl} at {} ({}{}){after}",
                NamedEndpoint(f.dname.as_ref(), f.daddr, f.dport),
                f.reason,
                f.stage.name(),
                who(&f.caller),
                source(a.as_ref()),
            ))
        }
        Alert::Slow(e, a) => escape(&format!(
            "{} hanging for {} ({}{})",
            NamedEndpoint(e.dname.as_ref(), e.daddr, e.dport),
            Millis(e.elapsed_ns),
            who(&e.caller),
            source(a.as_ref()),
        )),
        Alert::Degraded(f, fb, a) => escape(&format!(
            "{} {} ({}{}), recovered: fell back to {} ({})",
            NamedEndpoint(f.dname.as_ref(), f.daddr, f.dport),
            f.reason,
            who(&f.caller),
            source(a.as_ref()),
            Endpoint(fb.daddr, Some(fb.dport)),
            fb.rule.name(),
        )),
        Alert::Summary(s) => {
            let one = s.count == 1;
            let what = match s.what {
                What::Failures if one => "more failure",
                What::Failures => "more failures",
                What::Hanging if one => "more hanging connect",
                What::Hanging => "more hanging connects",
                What::Degraded if one => "more failure recovered from",
                What::Degraded => "more failures recovered from",
                What::Broken if one => "more connection broken",
                What::Broken => "more connections broken",
            };
            escape(&format!(
                "{}: {} {what} in {} ({}; {})",
                subject(s),
                s.count,
                window(s.window_ns),
                reasons(s),
                procs(s)
            ))
        }
        Alert::Resolved(r) => escape(&recovered(r)),
        Alert::ResolveFailed(f, a) => escape(&crate::alert::dns::slack_line(f, a.as_ref())),
        Alert::ResolveFolded(s, a) => escape(&crate::alert::dns::slack_folded(s, a.as_ref())),
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
        [Alert::First(f, _)] if folded.alerts == 0 && f.stage.broken().is_some() => {
            text = format!("TCP connection broken on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":boom: *TCP connection broken* on `{host}`: {}",
                one_line(&alerts[0])
            )));
        }
        [Alert::First(f, attr)] if folded.alerts == 0 => {
            text = format!("TCP failure detected on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":rotating_light: *TCP connection failed* on `{host}`"
            )));
            blocks.push(first_fields(f, attr.as_ref()));
        }
        [Alert::Slow(e, attr)] if folded.alerts == 0 => {
            text = format!("TCP connects hanging on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":hourglass: *Connections to {} are hanging* on `{host}`",
                escape(&NamedEndpoint(e.dname.as_ref(), e.daddr, e.dport).to_string())
            )));
            blocks.push(slow_fields(e, attr.as_ref()));
        }
        [Alert::Summary(s)] if folded.alerts == 0 => {
            text = format!("TCP failures continue on {host}: {}", one_line(&alerts[0]));
            let one = s.count == 1;
            let what = match (s.what, s.dest) {
                (What::Hanging, _) if one => "more hanging TCP connect",
                (What::Hanging, _) => "more hanging TCP connects",
                (What::Degraded, _) if one => "more TCP failure recovered from",
                (What::Degraded, _) => "more TCP failures recovered from",
                (What::Broken, _) if one => "more TCP connection broken",
                (What::Broken, _) => "more TCP connections broken",
                (What::Failures, Some(_)) if one => "more TCP failure",
                (What::Failures, Some(_)) => "more TCP failures",
                (What::Failures, None) => "TCP failures folded",
            };
            blocks.push(section(format!(
                ":repeat: *{} {what}* to {} on `{host}` in the last {}",
                s.count,
                escape(&subject(s)),
                window(s.window_ns)
            )));
            blocks.push(summary_fields(s));
        }
        [Alert::Degraded(..)] if folded.alerts == 0 => {
            text = format!("TCP path degraded on {host}: {}", one_line(&alerts[0]));
            blocks.push(section(format!(
                ":warning: *TCP path degraded* on `{host}`: {}",
                one_line(&alerts[0])
            )));
        }
        [Alert::ResolveFailed(..) | Alert::ResolveFolded(..)] if folded.alerts == 0 => {
            text = one_line(&alerts[0]);
            blocks.push(section(format!(":mag: *{text}* (on `{host}`)")));
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
                    Alert::First(..) => ":x:",
                    Alert::Slow(..) => ":hourglass:",
                    Alert::Summary(_) => ":repeat:",
                    Alert::Resolved(_) => ":white_check_mark:",
                    Alert::Degraded(..) => ":warning:",
                    Alert::ResolveFailed(..) | Alert::ResolveFolded(..) => ":mag:",
                };
                blocks.push(section(format!("{mark} {}", one_line(a))));
            }
        }
    }
    if folded.alerts > 0 {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(format!(
            "…and {} more alerts ({} failures) not shown: alerts came faster than Slack accepts them",
            folded.alerts, folded.failures
        ), SECTION_MAX)]}));
    }
    json!({
        "text": text,
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
        "link_names": false,
    })
}

/// The message without blocks, its text cut: what is sent when Slack
/// refuses a message with blocks as invalid, so the alert still arrives.
pub fn plain(host: &str, a: &Alert) -> Value {
    let text = format!("TCP alert on {}: {}", escape(host), one_line(a));
    json!({
        "text": cut(text, SECTION_MAX),
        "unfurl_links": false,
        "unfurl_media": false,
        "link_names": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::policy::{Dest, Proc};
    use crate::event::Comm;

    fn failure(comm: &[u8]) -> Failure {
        Failure {
            caller: Some(Caller::sample(77, comm)),
            errno: 111,
            duration_ns: 1_500_000,
            ..Failure::sample("198.51.100.7", 443, Reason::Refused)
        }
    }

    fn all_text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn a_resolved_name_leads_the_destination_escaped() {
        let mut f = failure(b"curl");
        f.dname = crate::event::Dname::new(b"api.example.com");
        let v = render("h", &[Alert::First(f, None)], Folded::default());
        assert!(
            all_text(&v).contains("api.example.com (198.51.100.7):443"),
            "{v}"
        );
        // Whatever a DNS server says cannot mention anyone or break a line.
        f.dname = crate::event::Dname::new(b"<!here>\n.example.com");
        let v = render("h", &[Alert::First(f, None)], Folded::default());
        let t = all_text(&v);
        assert!(
            !t.contains("<!here>") && t.contains("&lt;!here&gt;\\\\x0a.example.com"),
            "{t}"
        );
    }

    #[test]
    fn escaping_defuses_mentions_and_links() {
        assert_eq!(escape("<!here>&x"), "&lt;!here&gt;&amp;x");
        let v = render(
            "web-1",
            &[Alert::First(failure(b"<!here>&x"), None)],
            Folded::default(),
        );
        let s = all_text(&v);
        assert!(!s.contains("<!here>"), "{s}");
        assert!(s.contains("&lt;!here&gt;&amp;x (pid 77)"), "{s}");
        let v = render(
            "<!channel>",
            &[Alert::First(failure(b"a"), None)],
            Folded::default(),
        );
        assert!(!all_text(&v).contains("<!channel>"));
    }

    /// Every mrkdwn text object in a payload.
    fn mrkdwn_objects(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if m.get("type") == Some(&json!("mrkdwn")) {
                    out.push(v.clone());
                }
                m.values().for_each(|x| mrkdwn_objects(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| mrkdwn_objects(x, out)),
            _ => {}
        }
    }

    #[test]
    fn escape_breaks_mentions_channels_and_urls_invisibly() {
        let wj = |s: &str| s.replace('~', "\u{2060}");
        for (s, want) in [
            ("curl", "curl"),
            ("@channel", "@~channel"),
            ("@here", "@~here"),
            ("x @everyone", "x @~everyone"),
            ("(@here)", "(@~here)"),
            ("#general", "#~general"),
            ("<!everyone>", "&lt;!everyone&gt;"),
            ("<@U123>", "&lt;@~U123&gt;"),
            ("http://x.io/a", "http:~//x.io/a"),
            ("a://b://c", "a:~//b:~//c"),
            // Inside a word an @ is no mention, and names stay copyable.
            ("getty@tty1.service", "getty@tty1.service"),
            ("user@1000.service", "user@1000.service"),
            ("a@b", "a@b"),
            ("10.1.2.3:5432", "10.1.2.3:5432"),
            ("[2001:db8::2]:443", "[2001:db8::2]:443"),
            ("a: b", "a: b"),
            ("", ""),
        ] {
            assert_eq!(escape(s), wj(want), "{s}");
            assert_eq!(escape(s).replace('\u{2060}', ""), escape_entities(s));
        }
    }

    /// `&<>` only: what a reader sees once the joiners are gone.
    fn escape_entities(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    #[test]
    fn hostile_process_names_reach_slack_as_text() {
        let names: [&[u8]; 6] = [
            b"@channel",
            b"@here",
            b"<!everyone>",
            b"http://e.vil/x",
            b"#general",
            b"<@U0123>",
        ];
        for name in names {
            let sum = Summary {
                what: What::Failures,
                dest: None,
                source: Some("flood.service uid 0".into()),
                count: 3,
                window_ns: 60_000_000_000,
                reasons: vec![(Reason::Refused, 3)],
                procs: vec![Proc {
                    comm: Some(Comm::new(name)),
                    pid: Some(9),
                    count: 3,
                }],
                other_procs: 0,
                units: Vec::new(),
                top_dests: Vec::new(),
                dests: 3,
            };
            for v in [
                render("h", &[Alert::First(failure(name), None)], Folded::default()),
                render("h", &[Alert::Summary(sum.clone())], Folded::default()),
                render(
                    "h",
                    &[Alert::First(failure(name), None), Alert::Summary(sum)],
                    Folded {
                        alerts: 1,
                        failures: 1,
                    },
                ),
            ] {
                let s = all_text(&v);
                for bad in ["@channel", "@here", "<!", "<@", "://", "#general"] {
                    assert!(!s.contains(bad), "{bad} in {s}");
                }
                // Still readable: the name is there once the joiners go.
                let shown = escape_entities(&Comm::new(name).to_string());
                assert!(
                    s.replace('\u{2060}', "").contains(&shown),
                    "{shown} not in {s}"
                );
                assert_eq!(v["unfurl_links"], false);
                assert_eq!(v["unfurl_media"], false);
                assert_eq!(v["link_names"], false);
                let mut objs = Vec::new();
                mrkdwn_objects(&v["blocks"], &mut objs);
                assert!(!objs.is_empty());
                for o in objs {
                    assert_eq!(o["verbatim"], true, "{o}");
                }
            }
        }
    }

    #[test]
    fn first_alert_has_text_and_fields() {
        let v = render(
            "web-1",
            &[Alert::First(failure(b"curl"), None)],
            Folded::default(),
        );
        assert_eq!(
            v["text"],
            "TCP failure detected on web-1: 198.51.100.7:443 refused at handshake (curl (pid 77)) after 1.5ms"
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
    fn an_icmp_rejection_says_who_rejected() {
        let mut f = failure(b"curl");
        f.reason = Reason::HostUnreachable;
        f.icmp = Some(crate::event::Icmp {
            from: "10.1.0.1".parse().unwrap(),
            v6: false,
            kind: 3,
            code: 13,
            errno: 113,
        });
        let v = render("web-1", &[Alert::First(f, None)], Folded::default());
        let want = "host_unreachable: rejected by 10.1.0.1 (ICMP admin-prohibited), not by the destination";
        assert!(v["text"].as_str().unwrap().contains(want), "{}", v["text"]);
        assert!(all_text(&v["blocks"]).contains(want), "{v}");
    }

    #[test]
    fn a_refusal_gives_its_rsts_ttl_as_a_field() {
        let mut f = failure(b"curl");
        let v = render("web-1", &[Alert::First(f, None)], Folded::default());
        assert!(!all_text(&v["blocks"]).contains("RST TTL"), "{v}");
        f.rst_ttl = Some(63);
        let v = render("web-1", &[Alert::First(f, None)], Folded::default());
        assert!(
            all_text(&v["blocks"]).contains("*RST TTL*\\n63 as it arrived"),
            "{v}"
        );
    }

    #[test]
    fn containers_and_pods_by_name_and_hostile_names_as_text() {
        let attr = Attribution {
            container: Some(
                "56aaf316b98dc6a25b199617246b6c470761d200aa2a61992d1aaac89f14594c".into(),
            ),
            container_name: Some("<!channel> web".into()),
            pod_name: Some("api-7f9c".into()),
            pod_namespace: Some("payments".into()),
            ..Default::default()
        };
        let v = render(
            "h",
            &[Alert::First(failure(b"curl"), Some(attr))],
            Folded::default(),
        );
        let t = v["text"].as_str().unwrap();
        assert!(
            t.contains("(curl (pid 77), in &lt;!channel&gt;\\x20web, pod payments/api-7f9c)"),
            "{t}"
        );
        let s = all_text(&v["blocks"]);
        assert!(
            s.contains("&lt;!channel&gt;\\\\x20web (56aaf316b98d)"),
            "{s}"
        );
        assert!(
            s.contains("*Pod*") && s.contains("payments/api-7f9c"),
            "{s}"
        );
        assert!(!s.contains("<!"), "{s}");
        // An unmatched failure has no time to failure to give.
        let f = Failure {
            seen: crate::event::Seen::Unmatched,
            caller: None,
            ..failure(b"curl")
        };
        let v = render("h", &[Alert::First(f, None)], Folded::default());
        assert!(!v["text"].as_str().unwrap().contains(" after "), "{v}");
        assert!(all_text(&v["blocks"]).contains("unknown (its start was not seen)"));
    }

    /// A digest has no fields: each line names its source, so a user's
    /// `postgresql.service` never reads as the system's.
    #[test]
    fn digest_lines_name_the_unit_and_the_users_own_unit() {
        let system = Attribution {
            unit: Some("postgresql.service".into()),
            ..Default::default()
        };
        let user = Attribution {
            unit: Some("user@1000.service".into()),
            user_unit: Some("postgresql.service".into()),
            ..Default::default()
        };
        let bare = Attribution {
            container: Some("ecb6e71de1606867ecb6e71de16042dc".into()),
            ..Default::default()
        };
        let v = render(
            "h",
            &[
                Alert::First(failure(b"curl"), Some(system)),
                Alert::First(failure(b"curl"), Some(user)),
                Alert::First(failure(b"curl"), Some(bare)),
            ],
            Folded::default(),
        );
        let lines: Vec<String> = v["blocks"].as_array().unwrap()[1..]
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap().to_string())
            .collect();
        assert!(
            lines[0].contains("(curl (pid 77), unit postgresql.service)"),
            "{lines:?}"
        );
        assert!(
            lines[1]
                .contains("(curl (pid 77), unit user@1000.service, user unit postgresql.service)"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("(curl (pid 77), in container ecb6e71de160)"),
            "{lines:?}"
        );
    }

    /// Issue 29, finding 7: 256-byte pod, namespace and container names
    /// and a 253-byte DNS name, hostile and non-ASCII (each byte escaped
    /// to four): every text object within Slack's limits, cut visibly.
    #[test]
    fn long_names_are_cut_to_slacks_limits() {
        let long = |c: &str| c.repeat(256 / c.len());
        let attr = Attribution {
            container: Some(
                "56aaf316b98dc6a25b199617246b6c470761d200aa2a61992d1aaac89f14594c".into(),
            ),
            container_name: Some(long("é")),
            pod_name: Some(long("<&>")),
            pod_namespace: Some(long("ü")),
            unit: Some(long("&")),
            ..Default::default()
        };
        let label = "<!channel>&".repeat(5);
        let name = [&label[..55], &label[..55], &label[..55], &label[..55]].join(".");
        let mut f = failure(b"curl");
        f.dname = crate::dns::Dname::new(name.as_bytes());
        assert!(f.dname.is_some());
        let v = render(
            "h",
            &[Alert::First(f, Some(attr.clone()))],
            Folded::default(),
        );
        let mut objs = Vec::new();
        mrkdwn_objects(&v["blocks"], &mut objs);
        let longest = objs
            .iter()
            .map(|o| o["text"].as_str().unwrap().chars().count())
            .max();
        assert!(longest.unwrap() <= FIELD_MAX, "{longest:?}");
        assert!(all_text(&v["blocks"]).contains('…'));
        for b in v["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= SECTION_MAX);
            }
            assert!(b["fields"].as_array().map_or(0, Vec::len) <= 10);
        }
        // Grouped, each alert's line is a section of its own, cut too.
        let g = render(
            "h",
            &[
                Alert::First(f, Some(attr.clone())),
                Alert::First(f, Some(attr)),
            ],
            Folded::default(),
        );
        for b in g["blocks"].as_array().unwrap() {
            let t = b["text"]["text"].as_str().unwrap();
            assert!(t.chars().count() <= SECTION_MAX, "{}", t.len());
            assert!(!t.contains("<!"), "{t}");
        }
        let p = plain("h", &Alert::First(f, None));
        assert!(p["text"].as_str().unwrap().chars().count() <= SECTION_MAX);
        assert!(p.get("blocks").is_none());
    }

    #[test]
    fn a_cut_never_splits_an_entity() {
        assert_eq!(cut("abc".into(), 3), "abc");
        assert_eq!(cut("abcdef".into(), 4), "abc…");
        assert_eq!(cut("ab&amp;cd".into(), 5), "ab…");
        assert_eq!(cut("ab&amp;cd".into(), 8), "ab&amp;…");
        assert_eq!(cut("ééééé".into(), 3), "éé…");
    }

    #[test]
    fn summaries_and_groups() {
        let sum = Summary {
            what: What::Failures,
            source: None,
            units: Vec::new(),
            top_dests: Vec::new(),
            dests: 1,
            dest: Some(Dest {
                addr: "198.51.100.7".parse().unwrap(),
                port: 443,
            }),
            count: 1999,
            window_ns: 60_000_000_000,
            reasons: vec![(Reason::Refused, 1999)],
            procs: vec![Proc {
                comm: Some(Comm::new(b"curl")),
                pid: Some(77),
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
        let one = Summary {
            count: 1,
            ..sum.clone()
        };
        let v1 = render("h", &[Alert::Summary(one)], Folded::default());
        assert!(
            v1["text"]
                .as_str()
                .unwrap()
                .contains("1 more failure in 1m"),
            "{v1}"
        );
        assert!(v1.to_string().contains("*1 more TCP failure* to"), "{v1}");
        let g = render(
            "h",
            &[Alert::First(failure(b"a"), None), Alert::Summary(sum)],
            Folded {
                alerts: 5,
                failures: 9,
            },
        );
        assert_eq!(g["text"], "TCP failures on h: 7 alerts, 2009 failures");
        assert_eq!(g["blocks"].as_array().unwrap().len(), 4);
    }
}

//! A webhook URL (Slack's, or any endpoint tcpstate posts alerts to): a
//! secret. Only [`WebhookUrl::redacted`] is ever shown.

use std::fmt::Write as _;

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `https://host:port/***`: scheme, host and port only, for any URL that
/// may hold a secret in its path.
pub fn redacted(url: &url::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        let _ = write!(s, ":{p}");
    }
    s.push_str("/***");
    s
}

impl WebhookUrl {
    /// Checks an `http(s)://host/...` URL. Errors never repeat the URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s.trim()).map_err(|e| {
            format!("not a valid URL ({e}); expected https://hooks.slack.com/services/…")
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("unsupported scheme; expected https://".to_string());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not supported".into());
        }
        Ok(WebhookUrl { url })
    }

    /// `https://hooks.slack.com/***`: scheme, host and port only. Any part
    /// of the path may be the secret, whatever shape it has.
    pub fn redacted(&self) -> String {
        redacted(&self.url)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted_to_scheme_host_and_port() {
        let u = WebhookUrl::parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET").unwrap();
        assert_eq!(u.redacted(), "https://hooks.slack.com/***");
        assert!(!format!("{u:?}").contains("SECRET"));
        assert_eq!(u.insecure_warning(), None);
        let local = WebhookUrl::parse("http://127.0.0.1:8080/SECRETTOKEN/abc").unwrap();
        assert_eq!(local.redacted(), "http://127.0.0.1:8080/***");
        assert_eq!(local.insecure_warning(), None);
        let remote = WebhookUrl::parse("http://relay.example/x").unwrap();
        assert!(remote.insecure_warning().unwrap().contains("unencrypted"));
        for bad in [
            "hooks.slack.com/SECRET",
            "ftp://a/SECRET",
            "https://",
            "https://u:SECRET@h/x",
            "not a url SECRET",
            "https://h/a b SECRET",
        ] {
            if let Err(e) = WebhookUrl::parse(bad) {
                assert!(!e.contains("SECRET"), "{e}");
            }
        }
    }
}

//! Command line and environment. Every option also reads an environment
//! variable, so the original service's `DEST_IP`/`SLACK_URL` keep working.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::exit::{Fatal, Kind};
use crate::filter::{parse_port, Prefix};
use crate::format::Format;
use crate::webhook::WebhookUrl;

#[derive(Debug, Parser)]
#[command(
    name = "tcpstate",
    version,
    about = "Alerts on every outbound TCP connection that fails: refused, timed out, unreachable or abandoned.",
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 bad flag/env/config value, \
                  3 missing privileges (root or CAP_BPF+CAP_PERFMON), \
                  4 kernel unsupported (no BTF, no tracepoint, program rejected)."
)]
pub struct Cli {
    /// Watch only these destinations (IP or CIDR; repeatable or comma-separated). Default: all.
    #[arg(
        short = 'd',
        long = "dest",
        value_name = "IP|CIDR",
        env = "DEST_IP",
        value_delimiter = ','
    )]
    pub dest: Vec<Prefix>,

    /// Watch only these destination ports (repeatable or comma-separated). Default: all.
    #[arg(short = 'p', long = "port", value_name = "PORT", env = "DEST_PORT", value_delimiter = ',', value_parser = parse_port)]
    pub port: Vec<u16>,

    /// Output format of the per-failure stream on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text, env = "TCPSTATE_FORMAT")]
    pub format: Format,

    /// Also print every traced state change (pid, states, addresses, ports).
    #[arg(short, long, env = "TCPSTATE_VERBOSE")]
    pub verbose: bool,

    /// External BTF file for CO-RE, for kernels without /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "PATH", env = "TCPSTATE_BTF")]
    pub btf: Option<PathBuf>,

    /// Load and attach, report what was found, detach and exit 0.
    #[arg(long, env = "TCPSTATE_CHECK")]
    pub check: bool,

    /// Ring-buffer size in bytes (K/M suffixes; a power of two, at least 4K).
    #[arg(long, value_name = "BYTES", default_value = "1M", env = "TCPSTATE_RING_BUFFER_SIZE", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,

    /// Syslog socket for alerts (facility daemon, identifier tcpstate).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/dev/log",
        env = "TCPSTATE_SYSLOG_SOCKET"
    )]
    pub syslog_socket: PathBuf,

    /// Send nothing to syslog.
    #[arg(long, env = "TCPSTATE_NO_SYSLOG")]
    pub no_syslog: bool,

    /// Slack incoming-webhook URL. A secret: prefer --slack-url-file.
    #[arg(long, value_name = "URL", env = "SLACK_URL", hide_env_values = true)]
    pub slack_url: Option<String>,

    /// Read the Slack webhook URL from this file (first line).
    #[arg(long, value_name = "PATH", env = "TCPSTATE_SLACK_URL_FILE")]
    pub slack_url_file: Option<PathBuf>,

    /// After a destination's first alert, further failures are summarised once per window (like 3s, 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "TCPSTATE_ALERT_WINDOW", value_parser = parse_window)]
    pub alert_window: Duration,

    /// The webhook, from --slack-url or --slack-url-file, checked.
    #[arg(skip)]
    pub webhook: Option<WebhookUrl>,

    /// Print the man page (roff) and exit; used to build the package.
    #[arg(long, hide = true)]
    pub man: bool,

    /// Most connection attempts tracked at once; more are counted and not tracked.
    #[arg(long, value_name = "N", default_value_t = 65536, env = "TCPSTATE_MAX_PENDING", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending: u32,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics. Off by default.
    #[arg(long, value_name = "ADDR:PORT", env = "TCPSTATE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Most distinct destination label values in the metrics; failures to more are counted under destination="other".
    #[arg(long, value_name = "N", default_value_t = 1000, env = "TCPSTATE_METRICS_MAX_DESTINATIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub metrics_max_destinations: u32,

    /// Alertmanager to post alerts to (base URL, may hold user:password@; repeatable or comma-separated for an HA pair).
    #[arg(
        long = "alertmanager-url",
        value_name = "URL",
        env = "TCPSTATE_ALERTMANAGER_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub alertmanager_url: Vec<String>,

    /// The Alertmanager URLs, checked.
    #[arg(skip)]
    pub alertmanager: Vec<crate::alert::alertmanager::AmUrl>,

    /// A destination that has not failed for this long is resolved (like 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", env = "TCPSTATE_RESOLVE_AFTER", value_parser = parse_window)]
    pub resolve_after: Duration,
}

/// The Alertmanager URLs. They may carry credentials, so no message
/// repeats them.
fn alertmanager_urls(cli: &Cli) -> Result<Vec<crate::alert::alertmanager::AmUrl>, Fatal> {
    cli.alertmanager_url
        .iter()
        .filter(|u| !u.trim().is_empty())
        .enumerate()
        .map(|(i, u)| {
            crate::alert::alertmanager::AmUrl::parse(u).map_err(|e| {
                Fatal::new(
                    Kind::Usage,
                    format!(
                        "invalid Alertmanager URL #{} from --alertmanager-url/$TCPSTATE_ALERTMANAGER_URL: {e}",
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use values like 3s, 30s, 5m"))?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) {
        return Err(format!("'{s}' must be from 1s to 24h"));
    }
    Ok(d)
}

/// The webhook from the flag, its variable, or a file. The URL is a secret,
/// so no message here repeats it.
fn webhook(cli: &Cli) -> Result<Option<WebhookUrl>, Fatal> {
    let usage = |m: String| Fatal::new(Kind::Usage, m);
    let (raw, from) = match (&cli.slack_url, &cli.slack_url_file) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "give the Slack URL once: --slack-url/$SLACK_URL or --slack-url-file, not both"
                    .into(),
            ))
        }
        (None, None) => return Ok(None),
        (Some(u), None) if u.trim().is_empty() => return Ok(None),
        (Some(u), None) => (u.clone(), "--slack-url/$SLACK_URL".to_string()),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| usage(format!("cannot read --slack-url-file {}: {e}", p.display())))?;
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            let Some(first) = first else {
                return Err(usage(format!("--slack-url-file {} is empty", p.display())));
            };
            (
                first.to_string(),
                format!("--slack-url-file {}", p.display()),
            )
        }
    };
    WebhookUrl::parse(&raw)
        .map(Some)
        .map_err(|e| usage(format!("invalid Slack webhook URL from {from}: {e}")))
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mult) = match t.as_bytes().last() {
        Some(b'K' | b'k') => (&t[..t.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&t[..t.len() - 1], 1 << 20),
        _ => (t, 1),
    };
    let bad = || format!("'{t}' is not a power-of-two size from 4K to 1024M (like 1M, 4M, 65536)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let n = n.checked_mul(mult).ok_or_else(bad)?;
    if !n.is_power_of_two() || !(4096..=1 << 30).contains(&n) {
        return Err(bad());
    }
    Ok(n as u32)
}

/// Parses argv and the environment. Help and version print and exit 0;
/// anything else is one line naming the option (and its variable) and
/// exit code 2.
pub fn parse() -> Result<Cli, Fatal> {
    let mut cli = Cli::try_parse().map_err(|e| {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            std::process::exit(0);
        }
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or("invalid arguments");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        // Keep clap's "[possible values: …]" hint on the same line.
        let hint = rendered
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("[possible values"))
            .map(|h| format!(" {h}"))
            .unwrap_or_default();
        let first = format!("{first}{hint}");
        let first = first.as_str();
        // Name the environment variable too: the value may have come from it.
        let env = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => Cli::command()
                .get_arguments()
                .find(|a| {
                    a.get_long()
                        .is_some_and(|l| arg.starts_with(&format!("--{l}")))
                })
                .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned())),
            _ => None,
        };
        let msg = match env {
            Some(var) => format!("{first} (from the flag or ${var})"),
            None => first.to_string(),
        };
        Fatal::new(Kind::Usage, msg)
    })?;
    if cli.man {
        let page = clap_mangen::Man::new(Cli::command()).section("8");
        let mut out = std::io::stdout().lock();
        let r = page.render(&mut out);
        std::process::exit(if r.is_ok() { 0 } else { 1 });
    }
    cli.webhook = webhook(&cli)?;
    cli.alertmanager = alertmanager_urls(&cli)?;
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn alertmanager_urls_are_checked_without_showing_credentials() {
        let c = Cli::try_parse_from([
            "tcpstate",
            "--alertmanager-url",
            "http://am-1:9093,http://u:S3CRET@am-2:9093",
            "--resolve-after",
            "30s",
        ])
        .unwrap();
        let urls = alertmanager_urls(&c).unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[1].redacted(), "http://am-2:9093");
        assert_eq!(c.resolve_after, Duration::from_secs(30));
        assert_eq!(c.metrics_max_destinations, 1000);
        let bad =
            Cli::try_parse_from(["tcpstate", "--alertmanager-url", "ftp://u:S3CRET@h"]).unwrap();
        let e = alertmanager_urls(&bad).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(!e.msg.contains("S3CRET"), "{}", e.msg);
        assert!(Cli::try_parse_from(["tcpstate", "--metrics-addr", "9100"]).is_err());
        assert!(Cli::try_parse_from(["tcpstate", "--metrics-max-destinations", "0"]).is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_size("1M"), Ok(1 << 20));
        assert_eq!(parse_ring_size("64k"), Ok(1 << 16));
        assert_eq!(parse_ring_size("8192"), Ok(8192));
        for bad in ["3M", "1K", "0", "x", "2048M", "99999999999999999999M"] {
            assert!(parse_ring_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_and_comma_separated() {
        let c = Cli::try_parse_from([
            "tcpstate",
            "-d",
            "192.0.2.0/24,2001:db8::1",
            "-d",
            "198.51.100.7",
            "-p",
            "80,443",
        ])
        .unwrap();
        assert_eq!(c.dest.len(), 3);
        assert_eq!(c.port, vec![80, 443]);
        assert!(Cli::try_parse_from(["tcpstate", "-d", "nope"]).is_err());
        assert!(Cli::try_parse_from(["tcpstate", "-p", "0"]).is_err());
    }
}

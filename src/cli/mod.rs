//! Command line and environment. Every option also reads an environment
//! variable, so the original service's `DEST_IP`/`SLACK_URL` keep working.

mod btf;
mod secret;
mod usage;
mod values;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::exit::{Fatal, Kind};
use crate::output::Format;
use crate::sinks::webhook::WebhookUrl;
use crate::tracer::filter::{parse_port, Dest};
use crate::tracer::{ConnectErrors, DnsNames};
use btf::check_btf;
use secret::webhook;
pub use secret::{CMDLINE_URL_WARNING, CREDENTIAL, URL_PLACES};
pub use usage::hide_urls;
use usage::usage_error;
use values::{parse_recovery_window, parse_ring_size, parse_slow_after, parse_window};

#[derive(Debug, Parser)]
#[command(
    name = "tcpstate",
    version,
    about = "Alerts on every outbound TCP connection that fails: refused, timed out, unreachable or abandoned.",
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 bad flag/env/config value, \
                  3 missing privileges (root or CAP_BPF+CAP_PERFMON), \
                  4 kernel unsupported (no BTF, no tracepoint, program rejected).\n\
                  The manual: /usr/share/doc/tcpstate/docs/ (with the package).",
    after_long_help = "Reasons: refused, timeout, host_unreachable, net_unreachable, reset, \
port_exhausted (EADDRNOTAVAIL: no free local port), denied (EPERM/EACCES from connect(), \
or a SYN dropped by this host's netfilter), canceled (closed while connecting, no error), \
error (any other errno).\n\n\
JSON lines (--format json), by event: connect_failed, connection_broken, connect_slow, \
verdict (a failure's outcome: failed, or recovered and how), resolve_failed (a DNS lookup: \
nxdomain, nodata, servfail, refused, timeout, truncated_unanswered), resolve_failed_summary, \
state_change (--verbose). Their keys: ts, reason, errno, stage (connect: connect() failed \
before any SYN; handshake: after it), seen (live, at_start, unmatched), timeout_by, who said \
no (icmp_from/icmp_type/icmp_code, drop_reason/drop_next_hop/drop_dev, rst_ttl), pid, tid, \
comm (the thread), process, uid, unit (systemd unit; in a user's delegated subtree its \
manager, user@UID.service), user_unit, container, container_name, pod, pod_name, \
pod_namespace, cgroup, family, saddr, sport, daddr, dport, dname (the name the process \
resolved), duration_ms, retransmits; a DNS failure: name, lookup, qtype, rcode, server, \
queries. Unknown values are null; untrusted text is escaped (\\xNN). All in output.md.\n\n\
Journal fields (where journald runs): TCPSTATE_EVENT (as the JSON event, or \
path_degraded), TCPSTATE_REASON, TCPSTATE_DEST, TCPSTATE_DADDR, TCPSTATE_DPORT, \
TCPSTATE_DNAME, TCPSTATE_SADDR, TCPSTATE_PID, TCPSTATE_COMM, TCPSTATE_PROCESS, \
TCPSTATE_UID, TCPSTATE_UNIT, TCPSTATE_USER_UNIT, TCPSTATE_CONTAINER, \
TCPSTATE_CONTAINER_NAME, TCPSTATE_POD, TCPSTATE_POD_NAME, TCPSTATE_POD_NAMESPACE, \
TCPSTATE_DURATION_MS, TCPSTATE_TIMEOUT_BY, TCPSTATE_ICMP_FROM, TCPSTATE_ICMP_TYPE, \
TCPSTATE_ICMP_CODE, TCPSTATE_DROP_REASON, TCPSTATE_DROP_NEXT_HOP, TCPSTATE_DROP_DEV, \
TCPSTATE_RST_TTL, TCPSTATE_FALLBACK, TCPSTATE_RULE; a DNS failure: TCPSTATE_NAME, \
TCPSTATE_QTYPE, TCPSTATE_SERVER, TCPSTATE_RCODE, TCPSTATE_LOOKUP, TCPSTATE_COUNT; e.g. \
journalctl -u tcpstate TCPSTATE_UNIT=nginx.service.\n\n\
Exit codes: 0 ok, 1 runtime error, 2 bad flag/env/config value, \
3 missing privileges (root or CAP_BPF+CAP_PERFMON), \
4 kernel unsupported (no BTF, no tracepoint, program rejected).\n\n\
The manual, installed with the package: /usr/share/doc/tcpstate/README.md and \
/usr/share/doc/tcpstate/docs/: reasons.md (what counts as a failure), output.md \
(stdout, counters, losses), verdicts.md (recovered attempts), dns.md (names and failed \
lookups), options.md, alerts.md (journal, syslog, Slack), fleet.md (Prometheus metrics and \
rules, Alertmanager: TCPConnectFailures, TCPConnectHanging, TCPPathDegraded, \
TCPConnectionBroken, DNSResolutionFailing), containers.md, kubernetes.md (the DaemonSet, \
OpenTelemetry, Grafana), trust.md, install.md (the package and the unit), kernels.md, performance.md, \
architecture.md, testing.md. Prometheus rules and an Alertmanager route: \
/usr/share/doc/tcpstate/examples/."
)]
pub struct Cli {
    /// Watch only these destinations (IP, CIDR or DNS name; repeatable or comma-separated). A name is resolved at start and followed: re-resolved at its TTL, and answers the host's resolver receives for it add their addresses. Default: all.
    #[arg(
        short = 'd',
        long = "dest",
        value_name = "IP|CIDR|NAME",
        env = "DEST_IP",
        value_delimiter = ','
    )]
    pub dest: Vec<Dest>,

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

    /// How connect()'s own errors (no route, denied, no local port: no SYN
    /// left) and errors read away with getsockopt(SO_ERROR) are watched:
    /// auto uses BPF trampolines, which only connect() and getsockopt()
    /// calls pay for, and falls back to the raw_syscalls tracepoint, which
    /// every syscall on the host pays for, where the kernel refuses them;
    /// on is auto that exits (4) if neither attaches; off watches neither.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ConnectErrors::Auto, env = "TCPSTATE_CONNECT_ERRORS")]
    pub connect_errors: ConnectErrors,

    /// Whether failures are named by the DNS name the application resolved
    /// (and --dest names follow the answers the host's resolver receives):
    /// auto uses BPF trampolines on skb_consume_udp and udp_send_skb, which
    /// only UDP receives and sends pay for,
    /// where the kernel attaches them, and nothing elsewhere; on also takes
    /// the raw_syscalls tracepoint, which every syscall on the host pays
    /// for, where the kernel refuses trampolines; off attaches neither.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = DnsNames::Auto, env = "TCPSTATE_DNS_NAMES")]
    pub dns_names: DnsNames,

    /// Load and attach, report what was found, detach and exit 0.
    #[arg(long, env = "TCPSTATE_CHECK")]
    pub check: bool,

    /// Ring-buffer size in bytes (K/M suffixes; a power of two, at least 4K).
    #[arg(long, value_name = "BYTES", default_value = "1M", env = "TCPSTATE_RING_BUFFER_SIZE", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,

    /// Syslog socket for alerts (facility daemon, identifier tcpstate).
    /// Default: journald's native protocol where journald runs (structured
    /// TCPSTATE_* fields), else /dev/log. Given, it forces classic syslog.
    #[arg(long, value_name = "PATH", env = "TCPSTATE_SYSLOG_SOCKET")]
    pub syslog_socket: Option<PathBuf>,

    /// Send nothing to syslog.
    #[arg(long, env = "TCPSTATE_NO_SYSLOG")]
    pub no_syslog: bool,

    /// Slack incoming-webhook URL. A secret: prefer --slack-url-file.
    #[arg(long, value_name = "URL", env = "SLACK_URL", hide_env_values = true)]
    pub slack_url: Option<String>,

    /// Read the Slack webhook URL from this file (first line; a regular file of at most 4 KiB). With no URL given, $CREDENTIALS_DIRECTORY/slack-url (systemd LoadCredential=) is used.
    #[arg(long, value_name = "PATH", env = "TCPSTATE_SLACK_URL_FILE")]
    pub slack_url_file: Option<PathBuf>,

    /// After a destination's first alert, further failures are summarised once per window (like 3s, 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "TCPSTATE_ALERT_WINDOW", value_parser = parse_window)]
    pub alert_window: Duration,

    /// Warn once about an attempt still unanswered after this long (like 3s,
    /// 500ms; 0 turns it off); its outcome is reported as usual.
    #[arg(long, value_name = "DURATION", default_value = "3s", env = "TCPSTATE_SLOW_AFTER", value_parser = parse_slow_after)]
    pub slow_after: Duration,

    /// How long a failed attempt waits for the application to recover
    /// (another address or family of the same name, a retry) before it
    /// pages; recovered ones are degradation notices, not pages (like 1s,
    /// 500ms; at most 30s; 0: every failure pages at once).
    #[arg(long, value_name = "DURATION", default_value = "1s", env = "TCPSTATE_RECOVERY_WINDOW", value_parser = parse_recovery_window)]
    pub recovery_window: Duration,

    /// Send degradation notices (failures the applications recovered
    /// from) to Slack too; by default they go to syslog/the journal and
    /// Alertmanager only.
    #[arg(long, env = "TCPSTATE_SLACK_DEGRADED")]
    pub slack_degraded: bool,

    /// The webhook, from --slack-url or --slack-url-file, checked.
    #[arg(skip)]
    pub webhook: Option<WebhookUrl>,

    /// Warnings about the configuration, for the daemon to log at start.
    /// (The webhook above may also come from the systemd credential
    /// `slack-url`.)
    #[arg(skip)]
    pub warnings: Vec<String>,

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
    pub alertmanager: Vec<crate::sinks::alertmanager::AmUrl>,

    /// OpenTelemetry collector to send each failure to as a log record, and the counters as metrics (OTLP/HTTP with protobuf; its base URL, like http://collector:4318: records go to /v1/logs under it, metrics to /v1/metrics).
    #[arg(
        long = "otlp-endpoint",
        value_name = "URL",
        env = "TCPSTATE_OTLP_ENDPOINT",
        hide_env_values = true
    )]
    pub otlp_endpoint: Option<String>,

    /// How often the counters are sent to --otlp-endpoint as metrics (like 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", env = "TCPSTATE_OTLP_INTERVAL", value_parser = parse_window)]
    pub otlp_interval: Duration,

    /// The OTLP endpoint, checked.
    #[arg(skip)]
    pub otlp: Option<crate::sinks::otlp_msg::OtlpUrl>,

    /// A destination that has not failed for this long is resolved (like 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", env = "TCPSTATE_RESOLVE_AFTER", value_parser = parse_window)]
    pub resolve_after: Duration,
}

/// The Alertmanager URLs. They may carry credentials, so no message
/// repeats them.
fn alertmanager_urls(cli: &Cli) -> Result<Vec<crate::sinks::alertmanager::AmUrl>, Fatal> {
    cli.alertmanager_url
        .iter()
        .filter(|u| !u.trim().is_empty())
        .enumerate()
        .map(|(i, u)| {
            crate::sinks::alertmanager::AmUrl::parse(u).map_err(|e| {
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

/// Parses argv and the environment. Help and version print and exit 0;
/// anything else is one line naming the option (and its variable) and
/// exit code 2.
pub fn parse() -> Result<Cli, Fatal> {
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    parse_from(std::env::args_os().collect(), creds.as_deref())
}

/// [`parse`] for these arguments (the first is the program name) and
/// credentials directory.
pub fn parse_from(args: Vec<OsString>, creds: Option<&Path>) -> Result<Cli, Fatal> {
    let matches = Cli::command()
        .try_get_matches_from(args.iter())
        .map_err(|e| usage_error(e, &Cli::command(), &args))?;
    let mut cli =
        Cli::from_arg_matches(&matches).map_err(|e| usage_error(e, &Cli::command(), &args))?;
    if cli.man {
        let page = clap_mangen::Man::new(Cli::command()).section("8");
        let mut out = std::io::stdout().lock();
        let r = page.render(&mut out);
        std::process::exit(if r.is_ok() { 0 } else { 1 });
    }
    if let Some(p) = &cli.btf {
        check_btf(p).map_err(|m| {
            let from = match matches.value_source("btf") {
                Some(ValueSource::EnvVariable) => " (from $TCPSTATE_BTF)",
                _ => "",
            };
            Fatal::new(Kind::Usage, format!("{m}{from}"))
        })?;
    }
    cli.webhook = webhook(
        cli.slack_url.as_deref(),
        cli.slack_url_file.as_deref(),
        creds,
    )?;
    cli.alertmanager = alertmanager_urls(&cli)?;
    cli.otlp = match cli.otlp_endpoint.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => Some(crate::sinks::otlp_msg::OtlpUrl::parse(u).map_err(|e| {
            Fatal::new(
                Kind::Usage,
                format!("invalid OTLP endpoint from --otlp-endpoint/$TCPSTATE_OTLP_ENDPOINT: {e}"),
            )
        })?),
    };
    if cli.webhook.is_some() && matches.value_source("slack_url") == Some(ValueSource::CommandLine)
    {
        cli.warnings.push(CMDLINE_URL_WARNING.to_string());
    }
    Ok(cli)
}

#[cfg(test)]
pub(crate) mod tests {
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
        let c = parse_from(args(&["--otlp-endpoint", "http://127.0.0.1:4318"]), None).unwrap();
        assert_eq!(c.otlp.unwrap().logs(), "http://127.0.0.1:4318/v1/logs");
        assert_eq!(c.otlp_interval, Duration::from_secs(10));
        let e = err(&["--otlp-endpoint", "ftp://x/S3CRET"]);
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.msg.contains("--otlp-endpoint"), "{}", e.msg);
        assert!(!e.msg.contains("S3CRET"), "{}", e.msg);
        assert!(Cli::try_parse_from(["tcpstate", "--metrics-max-destinations", "0"]).is_err());
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
        assert!(Cli::try_parse_from(["tcpstate", "-d", "192.0.2.300"]).is_err());
        let c = Cli::try_parse_from(["tcpstate", "-d", "api.example.com,10.0.0.0/8"]).unwrap();
        assert_eq!(
            crate::tracer::filter::names(&c.dest),
            vec!["api.example.com".to_string()]
        );
        assert!(Cli::try_parse_from(["tcpstate", "-p", "0"]).is_err());
    }

    pub(crate) const SECRET: &str = "https://hooks.slack.com/services/T0/B0/SECRETPATH";

    pub(crate) fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("tcpstate")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    pub(crate) fn err(a: &[&str]) -> Fatal {
        match parse_from(args(a), None) {
            Ok(_) => panic!("{a:?} parsed"),
            Err(e) => e,
        }
    }

    /// A scratch directory, removed on drop.
    pub(crate) struct Tmp(pub(crate) PathBuf);
    impl Tmp {
        pub(crate) fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!("tcpstate-cli-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
        pub(crate) fn file(&self, name: &str, body: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, body).unwrap();
            p
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn argument_errors_never_echo_a_url_and_say_where_it_belongs() {
        for a in [
            vec!["--check", SECRET],
            vec![
                "--check",
                "https://hooks.slack.com/services/T0/B0/SECRET PATH",
            ],
            vec!["ftp://relay.example/SECRETPATH"],
            vec!["--format", "https://x/SECRETPATH"],
            vec!["--dest", "https://x/SECRETPATH"],
            vec!["--slack-url", "ftp://x/SECRETPATH"],
            vec!["--slack-url", "https://ho st/SECRETPATH"],
        ] {
            let e = err(&a);
            assert_eq!(e.kind, Kind::Usage, "{a:?}");
            assert!(!e.msg.contains("SECRET"), "{a:?}: {}", e.msg);
            assert!(!e.msg.contains('\n'), "{}", e.msg);
        }
        let e = err(&["--check", SECRET]);
        assert!(e.msg.contains("--slack-url-file"), "{}", e.msg);
        assert!(e.msg.contains("$SLACK_URL"), "{}", e.msg);
        assert!(e.msg.contains("LoadCredential=slack-url"), "{}", e.msg);
    }

    #[test]
    fn a_url_on_the_command_line_is_warned_about() {
        let c = parse_from(
            args(&["--slack-url", "http://127.0.0.1:9/SECRETPATH"]),
            None,
        )
        .unwrap();
        assert_eq!(c.warnings, vec![CMDLINE_URL_WARNING.to_string()]);
        assert!(!CMDLINE_URL_WARNING.contains("SECRET"));
        for place in [
            "/proc/PID/cmdline",
            "--slack-url-file",
            "$SLACK_URL",
            "LoadCredential",
        ] {
            assert!(CMDLINE_URL_WARNING.contains(place), "{place}");
        }
        let t = Tmp::new("warn");
        let f = t.file("url", b"http://127.0.0.1:9/SECRETPATH\n");
        let c = parse_from(args(&["--slack-url-file", f.to_str().unwrap()]), None).unwrap();
        assert!(c.warnings.is_empty());
        assert_eq!(c.webhook.unwrap().redacted(), "http://127.0.0.1:9/***");
    }

    #[test]
    fn the_systemd_credential_is_the_webhook_when_nothing_else_is() {
        let t = Tmp::new("creds");
        t.file(CREDENTIAL, b"http://127.0.0.1:9/services/SECRETPATH\n");
        let c = parse_from(args(&[]), Some(&t.0)).unwrap();
        assert_eq!(c.webhook.unwrap().redacted(), "http://127.0.0.1:9/***");
        assert!(c.warnings.is_empty());
        // Anything given explicitly wins.
        let c = parse_from(args(&["--slack-url", "http://127.0.0.2:9/x"]), Some(&t.0)).unwrap();
        assert_eq!(c.webhook.unwrap().redacted(), "http://127.0.0.2:9/***");
        // An empty --slack-url (SLACK_URL= in /etc/default) is nothing given.
        let c = parse_from(args(&["--slack-url", ""]), Some(&t.0)).unwrap();
        assert_eq!(c.webhook.unwrap().redacted(), "http://127.0.0.1:9/***");
        // No credential, no webhook.
        let none = Tmp::new("nocreds");
        assert!(parse_from(args(&[]), Some(&none.0))
            .unwrap()
            .webhook
            .is_none());
        // A bad one names the credential, never the URL.
        t.file(CREDENTIAL, b"ftp://x/SECRETPATH");
        let e = parse_from(args(&[]), Some(&t.0)).unwrap_err();
        assert!(e.msg.contains("systemd credential slack-url"), "{}", e.msg);
        assert!(!e.msg.contains("SECRET"), "{}", e.msg);
    }
}

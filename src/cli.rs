//! Command line and environment. Every option also reads an environment
//! variable, so the original service's `DEST_IP`/`SLACK_URL` keep working.

use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::bpf::ConnectErrors;
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
                  4 kernel unsupported (no BTF, no tracepoint, program rejected).",
    after_long_help = "Reasons: refused, timeout, host_unreachable, net_unreachable, reset, \
port_exhausted (EADDRNOTAVAIL: no free local port), denied (EPERM/EACCES from connect(), \
or a SYN dropped by this host's netfilter), canceled (closed while connecting, no error), \
error (any other errno).\n\n\
JSON keys (--format json): event (connect_failed, connect_slow, state_change), ts, reason, \
errno, stage (connect: connect() failed before any SYN; handshake: after it), seen (live, \
at_start: in flight when tcpstate started, unmatched: its start was not seen), pid, tid, \
comm (the thread), process (its process), uid, unit (systemd unit), container (id), \
container_name, pod (UID), pod_name, pod_namespace (names as the container runtime wrote \
them on the host), cgroup (path under the cgroup v2 mount), family, saddr, sport, daddr, \
dport, duration_ms (elapsed_ms for connect_slow), retransmits. Unknown values are null; \
untrusted text is escaped (\\xNN).\n\n\
Journal fields (where journald runs): TCPSTATE_EVENT, TCPSTATE_REASON, TCPSTATE_DEST, \
TCPSTATE_DADDR, TCPSTATE_DPORT, TCPSTATE_SADDR, TCPSTATE_PID, TCPSTATE_COMM, \
TCPSTATE_PROCESS, TCPSTATE_UID, TCPSTATE_UNIT, TCPSTATE_CONTAINER, \
TCPSTATE_CONTAINER_NAME, TCPSTATE_POD, TCPSTATE_POD_NAME, TCPSTATE_POD_NAMESPACE, \
TCPSTATE_DURATION_MS; e.g. journalctl -u tcpstate TCPSTATE_UNIT=nginx.service.\n\n\
Exit codes: 0 ok, 1 runtime error, 2 bad flag/env/config value, \
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

    /// How connect()'s own errors (no route, denied, no local port: no SYN
    /// left) and errors read away with getsockopt(SO_ERROR) are watched:
    /// auto uses BPF trampolines, which only connect() and getsockopt()
    /// calls pay for, and falls back to the raw_syscalls tracepoint, which
    /// every syscall on the host pays for, where the kernel refuses them;
    /// on is auto that exits (4) if neither attaches; off watches neither.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ConnectErrors::Auto, env = "TCPSTATE_CONNECT_ERRORS")]
    pub connect_errors: ConnectErrors,

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

/// A duration; zero (`0`) turns the early warning off.
fn parse_slow_after(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); use values like 3s, 500ms, or 0 for off")
    })?;
    if d > Duration::from_secs(3600) {
        return Err(format!("'{s}' must be at most 1h (or 0 for off)"));
    }
    Ok(d)
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use values like 3s, 30s, 5m"))?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) {
        return Err(format!("'{s}' must be from 1s to 24h"));
    }
    Ok(d)
}

/// Where a webhook URL belongs, for messages that must not repeat one.
pub const URL_PLACES: &str = "a webhook URL belongs in --slack-url-file PATH, $SLACK_URL \
     or the systemd credential slack-url (LoadCredential=slack-url:PATH)";

/// The most a URL file is read: a webhook URL is about 80 bytes.
const SECRET_FILE_MAX: u64 = 4096;

/// The systemd credential that holds the webhook (`LoadCredential=slack-url:…`).
pub const CREDENTIAL: &str = "slack-url";

/// Reads a small secret from a regular file without ever blocking: opened
/// with O_NONBLOCK (a FIFO without a writer would block a plain open or
/// read), refused unless it is a regular file, at most SECRET_FILE_MAX
/// bytes. `what` names the source in errors ("--slack-url-file /x").
fn read_secret_file(p: &Path, what: &str) -> Result<String, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| format!("{what}: cannot open: {}", io_reason(&e)))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "{what} is {kind}; it must be a regular file holding the URL"
        ));
    }
    if meta.len() > SECRET_FILE_MAX {
        return Err(format!(
            "{what} is larger than {SECRET_FILE_MAX} bytes; it must hold only the URL"
        ));
    }
    let mut buf = Vec::new();
    f.take(SECRET_FILE_MAX)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{what}: cannot read: {}", io_reason(&e)))?;
    String::from_utf8(buf).map_err(|_| format!("{what} is not UTF-8 text"))
}

/// An I/O error without Rust's "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The webhook from the flag, its variable, a file, or the systemd
/// credential `slack-url` in `creds` ($CREDENTIALS_DIRECTORY) when nothing
/// else names one. The URL is a secret, so no message here repeats it.
fn webhook(cli: &Cli, creds: Option<&Path>) -> Result<Option<WebhookUrl>, Fatal> {
    let usage = |m: String| Fatal::new(Kind::Usage, m);
    let from_file = |p: &Path, what: String| -> Result<(String, String), Fatal> {
        let text = read_secret_file(p, &what).map_err(usage)?;
        let Some(first) = first_line(&text) else {
            return Err(usage(format!("{what} is empty")));
        };
        Ok((first.to_string(), what))
    };
    let (raw, from) = match (&cli.slack_url, &cli.slack_url_file) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "give the Slack URL once: --slack-url/$SLACK_URL or --slack-url-file, not both"
                    .into(),
            ))
        }
        (Some(u), None) if !u.trim().is_empty() => {
            (u.clone(), "--slack-url/$SLACK_URL".to_string())
        }
        (None, Some(p)) => from_file(p, format!("--slack-url-file {}", p.display()))?,
        // Nothing given (or SLACK_URL set empty, as the packaged
        // /etc/default file may): the credential, if there is one.
        _ => match creds.map(|d| d.join(CREDENTIAL)) {
            Some(c) if c.exists() => from_file(&c, format!("systemd credential {CREDENTIAL}"))?,
            _ => return Ok(None),
        },
    };
    WebhookUrl::parse(&raw)
        .map(Some)
        .map_err(|e| usage(format!("invalid Slack webhook URL from {from}: {e}")))
}

/// `--btf PATH` must be BTF: raw BTF (magic 0xEB9F at offset 0, either
/// byte order) or an ELF file with a `.BTF` section (a vmlinux). Checked
/// here, at parse time, so a wrong file is a usage error (exit 2), not a
/// kernel error from libbpf.
fn check_btf(p: &Path) -> Result<(), String> {
    let what = format!("--btf {}", p.display());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{what}: no such file"),
            _ => format!("{what}: cannot open: {}", io_reason(&e)),
        })?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    if meta.is_dir() {
        return Err(format!("{what}: is a directory"));
    }
    if !meta.is_file() {
        return Err(format!("{what}: not a regular file"));
    }
    let at = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).ok().map(|()| b)
    };
    match at(0, 4).as_deref() {
        Some([0x9f, 0xeb, ..] | [0xeb, 0x9f, ..]) => Ok(()),
        Some([0x7f, b'E', b'L', b'F']) if elf_has_section(&at, b".BTF") => Ok(()),
        Some([0x7f, b'E', b'L', b'F']) => Err(format!(
            "{what}: not a BTF file (an ELF file without a .BTF section)"
        )),
        _ => Err(format!("{what}: not a BTF file")),
    }
}

/// Whether an ELF file (read through `at(offset, len)`) has a section
/// named `want`. ELF32/ELF64, either byte order; any inconsistency is "no".
fn elf_has_section(at: &dyn Fn(u64, usize) -> Option<Vec<u8>>, want: &[u8]) -> bool {
    let Some(h) = at(0, 64) else { return false };
    let is64 = match h[4] {
        1 => false,
        2 => true,
        _ => return false,
    };
    let le = match h[5] {
        1 => true,
        2 => false,
        _ => return false,
    };
    let u = |b: &[u8]| -> u64 {
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate() {
            let shift = if le { i } else { b.len() - 1 - i };
            v |= u64::from(x) << (8 * shift);
        }
        v
    };
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (
            u(&h[0x28..0x30]),
            u(&h[0x3a..0x3c]),
            u(&h[0x3c..0x3e]),
            u(&h[0x3e..0x40]),
        )
    } else {
        (
            u(&h[0x20..0x24]),
            u(&h[0x2e..0x30]),
            u(&h[0x30..0x32]),
            u(&h[0x32..0x34]),
        )
    };
    let min_ent = if is64 { 0x40 } else { 0x28 };
    if shentsize < min_ent || shnum == 0 || shnum > 65_535 || shstrndx >= shnum {
        return false;
    }
    // A section header's name offset, file offset and size.
    let section = |i: u64| -> Option<(u64, u64, u64)> {
        let sh = at(
            shoff.checked_add(i.checked_mul(shentsize)?)?,
            shentsize as usize,
        )?;
        Some(if is64 {
            (u(&sh[0..4]), u(&sh[0x18..0x20]), u(&sh[0x20..0x28]))
        } else {
            (u(&sh[0..4]), u(&sh[0x10..0x14]), u(&sh[0x14..0x18]))
        })
    };
    let Some((_, str_off, str_size)) = section(shstrndx) else {
        return false;
    };
    if str_size > 1 << 20 {
        return false;
    }
    let Some(strtab) = at(str_off, str_size as usize) else {
        return false;
    };
    (0..shnum).any(|i| {
        section(i).is_some_and(|(name, _, _)| {
            let Some(rest) = strtab.get(name as usize..) else {
                return false;
            };
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            &rest[..end] == want
        })
    })
}

/// Replaces anything in an argument-parser message that looks like a
/// webhook URL (a quoted value holding `://` or `hooks.slack`, or a bare
/// `scheme://…` token) with `<URL hidden>`. Says whether it did.
pub fn hide_urls(msg: &str) -> (String, bool) {
    let looks_like_url = |t: &str| t.contains("://") || t.contains("hooks.slack");
    let mut out = String::with_capacity(msg.len());
    let mut hidden = false;
    // Quoted values first: clap quotes what it echoes, spaces included.
    let mut rest = msg;
    while let Some(open) = rest.find('\'') {
        let Some(len) = rest[open + 1..].find('\'') else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        if looks_like_url(inner) {
            out.push_str("'<URL hidden>'");
            hidden = true;
        } else {
            out.push('\'');
            out.push_str(inner);
            out.push('\'');
        }
        rest = &rest[open + 1 + len + 1..];
    }
    out.push_str(rest);
    // Then bare tokens, up to whitespace.
    let mut bare = String::with_capacity(out.len());
    for (i, tok) in out.split(' ').enumerate() {
        if i > 0 {
            bare.push(' ');
        }
        if let Some(at) = tok.find("://") {
            let scheme_start = tok[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                .map_or(0, |j| j + 1);
            bare.push_str(&tok[..scheme_start]);
            bare.push_str("<URL hidden>");
            hidden = true;
        } else if tok.contains("hooks.slack") {
            bare.push_str("<URL hidden>");
            hidden = true;
        } else {
            bare.push_str(tok);
        }
    }
    (bare, hidden)
}

/// Flags whose values are paths and may be any bytes.
const OS_STRING_ARGS: &[&str] = &["btf", "syslog_socket", "slack_url_file"];

/// Which flag or variable holds invalid UTF-8, for clap's anonymous
/// "invalid UTF-8" error.
fn non_utf8_culprit(cmd: &clap::Command, args: &[OsString]) -> Option<String> {
    let text_args = || {
        cmd.get_arguments()
            .filter(|a| !OS_STRING_ARGS.contains(&a.get_id().as_str()))
    };
    // A path flag's value may be any bytes: not the culprit.
    let takes_path = |flag: &str| {
        cmd.get_arguments().any(|a| {
            OS_STRING_ARGS.contains(&a.get_id().as_str())
                && (a.get_long().is_some_and(|l| flag == format!("--{l}"))
                    || a.get_short().is_some_and(|s| flag == format!("-{s}")))
        })
    };
    for (i, a) in args.iter().enumerate().skip(1) {
        if a.to_str().is_some() {
            continue;
        }
        let bytes = a.as_encoded_bytes();
        // --flag=value
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            if let Ok(flag) = std::str::from_utf8(&bytes[..eq]) {
                if flag.starts_with('-') {
                    if takes_path(flag) {
                        continue;
                    }
                    return Some(format!("the value of {flag} is not valid UTF-8"));
                }
            }
        }
        match args[i - 1].to_str() {
            Some(prev) if prev.starts_with('-') && i > 1 => {
                if takes_path(prev) {
                    continue;
                }
                return Some(format!("the value of {prev} is not valid UTF-8"));
            }
            _ => return Some(format!("command-line argument {i} is not valid UTF-8")),
        }
    }
    for a in text_args() {
        if let Some(var) = a.get_env() {
            if std::env::var_os(var).is_some_and(|v| v.to_str().is_none()) {
                let flag = a
                    .get_long()
                    .map(|l| format!(" (for --{l})"))
                    .unwrap_or_default();
                return Some(format!(
                    "${} is not valid UTF-8{flag}",
                    var.to_string_lossy()
                ));
            }
        }
    }
    None
}

/// The warning for a webhook URL on the command line.
pub const CMDLINE_URL_WARNING: &str =
    "the Slack webhook URL was given with --slack-url on the command line, \
     where every local user can read it (/proc/PID/cmdline); put it in a root-only file \
     (--slack-url-file PATH), in $SLACK_URL (e.g. /etc/default/tcpstate, mode 0600) \
     or in a systemd credential (LoadCredential=slack-url:PATH)";

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
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    parse_from(std::env::args_os().collect(), creds.as_deref())
}

/// [`parse`] for these arguments (the first is the program name) and
/// credentials directory.
pub fn parse_from(args: Vec<OsString>, creds: Option<&Path>) -> Result<Cli, Fatal> {
    let matches = Cli::command()
        .try_get_matches_from(args.iter())
        .map_err(|e| usage_error(e, &args))?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| usage_error(e, &args))?;
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
    cli.webhook = webhook(&cli, creds)?;
    cli.alertmanager = alertmanager_urls(&cli)?;
    if cli.webhook.is_some() && matches.value_source("slack_url") == Some(ValueSource::CommandLine)
    {
        cli.warnings.push(CMDLINE_URL_WARNING.to_string());
    }
    Ok(cli)
}

/// clap's error as one line naming the option and its variable, with no
/// URL in it.
fn usage_error(e: clap::Error, args: &[OsString]) -> Fatal {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        std::process::exit(0);
    }
    if e.kind() == ErrorKind::InvalidUtf8 {
        if let Some(m) = non_utf8_culprit(&Cli::command(), args) {
            return Fatal::new(Kind::Usage, m);
        }
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
        None => first,
    };
    // Never echo a webhook URL (a stray argument, a typo in TCPSTATE_OPTS).
    let (msg, hidden) = hide_urls(&msg);
    let msg = if hidden {
        format!("{msg}; {URL_PLACES}")
    } else {
        msg
    };
    Fatal::new(Kind::Usage, msg)
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

    const SECRET: &str = "https://hooks.slack.com/services/T0/B0/SECRETPATH";

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("tcpstate")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn err(a: &[&str]) -> Fatal {
        match parse_from(args(a), None) {
            Ok(_) => panic!("{a:?} parsed"),
            Err(e) => e,
        }
    }

    /// A scratch directory, removed on drop.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!("tcpstate-cli-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
        fn file(&self, name: &str, body: &[u8]) -> PathBuf {
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
    fn urls_in_messages_are_hidden() {
        for (msg, want) in [
            (
                format!("unexpected argument '{SECRET}' found"),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                "unexpected argument 'https://h/a b SECRETPATH' found".to_string(),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                "invalid value 'ftp://x/SECRETPATH' for '--format <FORMAT>'".to_string(),
                "invalid value '<URL hidden>' for '--format <FORMAT>'",
            ),
            (
                "unexpected argument 'hooks.slack.com/services/SECRETPATH' found".to_string(),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                format!("bare {SECRET} and x:{SECRET},y"),
                "bare <URL hidden> and x:<URL hidden>",
            ),
        ] {
            let (got, hidden) = hide_urls(&msg);
            assert_eq!(got, want);
            assert!(hidden);
            assert!(!got.contains("SECRETPATH"));
        }
        let plain = "invalid value 'xml' for '--format <FORMAT>'";
        assert_eq!(hide_urls(plain), (plain.to_string(), false));
        // An unbalanced quote still hides the bare URL.
        let (got, _) = hide_urls(&format!("it's {SECRET}"));
        assert!(!got.contains("SECRETPATH"), "{got}");
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
    fn url_files_must_be_small_regular_files() {
        let t = Tmp::new("files");
        let ok = t.file(
            "ok",
            b"\n  https://hooks.slack.com/services/T/B/X \nsecond\n",
        );
        assert_eq!(
            read_secret_file(&ok, "f").map(|s| first_line(&s).map(str::to_string)),
            Ok(Some("https://hooks.slack.com/services/T/B/X".to_string()))
        );
        let big = t.file("big", &vec![b'x'; 5000]);
        assert!(read_secret_file(&big, "f")
            .unwrap_err()
            .contains("larger than 4096"));
        let fifo = t.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(
            read_secret_file(&fifo, "--slack-url-file F").unwrap_err(),
            "--slack-url-file F is a FIFO; it must be a regular file holding the URL"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(read_secret_file(Path::new("/dev/zero"), "f")
            .unwrap_err()
            .contains("a device"));
        assert!(read_secret_file(&t.0, "f")
            .unwrap_err()
            .contains("a directory"));
        assert!(read_secret_file(&t.0.join("none"), "f")
            .unwrap_err()
            .contains("No such file"));
        let e = parse_from(args(&["--slack-url-file", "/dev/zero"]), None).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        let empty = t.file("empty", b"\n \n");
        let e = parse_from(args(&["--slack-url-file", empty.to_str().unwrap()]), None).unwrap_err();
        assert!(e.msg.ends_with("is empty"), "{}", e.msg);
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

    /// A minimal ELF64 (either byte order) with the named sections.
    fn elf(sections: &[&str], le: bool) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for s in sections.iter().chain([&".shstrtab"]) {
            names.push(strtab.len() as u64);
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        let put = |b: &mut Vec<u8>, at: usize, v: u64, n: usize| {
            for i in 0..n {
                let byte = (v >> (8 * i)) as u8;
                let pos = if le { at + i } else { at + n - 1 - i };
                b[pos] = byte;
            }
        };
        let shoff = (64 + strtab.len()).next_multiple_of(8);
        let shnum = sections.len() + 2;
        let mut b = vec![0u8; shoff + 64 * shnum];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = if le { 1 } else { 2 };
        b[64..64 + strtab.len()].copy_from_slice(&strtab);
        put(&mut b, 0x28, shoff as u64, 8);
        put(&mut b, 0x3a, 64, 2);
        put(&mut b, 0x3c, shnum as u64, 2);
        put(&mut b, 0x3e, (shnum - 1) as u64, 2);
        for (i, name) in names.iter().enumerate() {
            let sh = shoff + 64 * (i + 1);
            put(&mut b, sh, *name, 4);
            if i == names.len() - 1 {
                put(&mut b, sh + 0x18, 64, 8);
                put(&mut b, sh + 0x20, strtab.len() as u64, 8);
            }
        }
        b
    }

    #[test]
    fn btf_files_are_checked() {
        let t = Tmp::new("btf");
        let raw_le = t.file("raw", &[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]);
        let raw_be = t.file("rawbe", &[0xeb, 0x9f, 1, 0]);
        let elf_le = t.file("elf", &elf(&[".text", ".BTF", ".BTF.ext"], true));
        let elf_be = t.file("elfbe", &elf(&[".BTF"], false));
        for ok in [&raw_le, &raw_be, &elf_le, &elf_be] {
            assert_eq!(check_btf(ok), Ok(()), "{}", ok.display());
        }
        let no_btf = t.file("nobtf", &elf(&[".text", ".BTF.ext", ".BTFx"], true));
        assert!(check_btf(&no_btf).unwrap_err().contains("not a BTF file"));
        let short = t.file("short", b"\x9f");
        let text = t.file("text", b"root:x:0:0:root:/root:/bin/bash\n");
        let truncated = t.file("trunc", &elf(&[".BTF"], true)[..70]);
        for bad in [&short, &text, &truncated] {
            let e = check_btf(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("--btf {}: not a BTF file", bad.display())),
                "{e}"
            );
        }
        assert_eq!(
            check_btf(&t.0).unwrap_err(),
            format!("--btf {}: is a directory", t.0.display())
        );
        assert!(check_btf(&t.0.join("none"))
            .unwrap_err()
            .ends_with(": no such file"));
        assert!(check_btf(Path::new("/dev/null"))
            .unwrap_err()
            .ends_with(": not a regular file"));
        let e = err(&["--btf", "/etc/passwd"]);
        assert_eq!(
            (e.kind, e.msg.as_str()),
            (Kind::Usage, "--btf /etc/passwd: not a BTF file")
        );
        if Path::new("/sys/kernel/btf/vmlinux").exists() {
            assert_eq!(check_btf(Path::new("/sys/kernel/btf/vmlinux")), Ok(()));
        }
    }

    #[test]
    fn invalid_utf8_names_the_flag() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"10.0.0.\xff".to_vec());
        let cmd = Cli::command();
        let a = vec![
            OsString::from("tcpstate"),
            OsString::from("--dest"),
            bad.clone(),
        ];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --dest is not valid UTF-8")
        );
        let mut eq = b"--port=".to_vec();
        eq.push(0xff);
        let a = vec![OsString::from("tcpstate"), OsString::from_vec(eq)];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --port is not valid UTF-8")
        );
        // A path may be any bytes: the culprit is the next one.
        let a = vec![
            OsString::from("tcpstate"),
            OsString::from("--btf"),
            bad.clone(),
            OsString::from("--format"),
            bad.clone(),
        ];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --format is not valid UTF-8")
        );
        let e = parse_from(
            vec![OsString::from("tcpstate"), OsString::from("-d"), bad],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.msg.contains("-d"), "{}", e.msg);
    }
}

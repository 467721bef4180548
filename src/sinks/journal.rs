//! journald's native protocol (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>):
//! one entry per datagram to `/run/systemd/journal/socket`, as `KEY=value\n`
//! lines, or `KEY\n` + the value's length (little-endian u64) + the value +
//! `\n` for a value holding a newline. An entry too large for a datagram
//! (`EMSGSIZE`) goes in a sealed memfd passed with `SCM_RIGHTS` and an
//! empty payload.
//!
//! Written here rather than taken from a crate: `libsystemd`'s
//! `journal_send` blocks, always sends to the fixed path (so no test can
//! point it at a socket of its own) and silently drops invalid field names;
//! `systemd-journal-logger` keeps its encoder and client private behind the
//! `log` facade. Neither is a non-blocking sender.
//!
//! Field names are `&'static str`, checked: never built from untrusted
//! input. Values may hold anything; the caller escapes untrusted ones as
//! it does for the syslog line (`event::Comm`, `cgroup::Escaped`).

use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::net::UnixDatagram;

pub const SOCKET: &str = "/run/systemd/journal/socket";

/// A field name journald accepts from a client: 1 to 64 characters of
/// `A`–`Z`, `0`–`9` and `_`, not starting with `_` (journald's trusted
/// fields) nor with a digit.
pub fn valid_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && b[0] != b'_'
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// A field name that is not one (a bug: names are constants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField(pub &'static str);

impl std::fmt::Display for InvalidField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid journal field name {:?}", self.0)
    }
}

impl std::error::Error for InvalidField {}

/// One journal entry, encoded as it goes.
#[derive(Debug, Default, Clone)]
pub struct Entry {
    buf: Vec<u8>,
}

impl Entry {
    pub fn new() -> Self {
        Entry::default()
    }

    /// Appends `NAME=value`, in the binary form when the value holds a
    /// newline.
    pub fn field(&mut self, name: &'static str, value: &[u8]) -> Result<&mut Self, InvalidField> {
        if !valid_field_name(name) {
            return Err(InvalidField(name));
        }
        self.buf.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') {
            self.buf.push(b'\n');
            self.buf
                .extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            self.buf.push(b'=');
        }
        self.buf.extend_from_slice(value);
        self.buf.push(b'\n');
        Ok(self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Parses an entry as journald does (for tests and tools): the fields in
/// order, or `None` if the bytes are not a well-formed entry.
pub fn decode(mut b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let nl = b.iter().position(|&c| c == b'\n')?;
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.push((
                String::from_utf8(line[..eq].to_vec()).ok()?,
                line[eq + 1..].to_vec(),
            ));
            b = &b[nl + 1..];
        } else {
            let name = String::from_utf8(line.to_vec()).ok()?;
            let rest = &b[nl + 1..];
            let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let len = usize::try_from(len).ok()?;
            let value = rest.get(8..8usize.checked_add(len)?)?;
            if rest.get(8 + len) != Some(&b'\n') {
                return None;
            }
            out.push((name, value.to_vec()));
            b = &rest[8 + len + 1..];
        }
    }
    Some(out)
}

/// A non-blocking sender to journald's socket (or another, for tests).
pub struct Journal {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// An unbound datagram socket that sends to `path`. Needs a tokio
    /// runtime.
    pub fn new(path: impl Into<PathBuf>) -> io::Result<Self> {
        Ok(Journal {
            sock: UnixDatagram::unbound()?,
            path: path.into(),
        })
    }

    /// To [`SOCKET`].
    pub fn system() -> io::Result<Self> {
        Journal::new(SOCKET)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one entry: as a datagram, or through a sealed memfd when it is
    /// too large for one. Waits while the socket is full; callers bound the
    /// wait (`tokio::time::timeout`) as the syslog sink does.
    pub async fn send(&self, entry: &[u8]) -> io::Result<()> {
        match self.sock.send_to(entry, &self.path).await {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) => self.send_memfd(entry).await,
            Err(e) => Err(e),
        }
    }

    async fn send_memfd(&self, entry: &[u8]) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, SealFlag};
        use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

        let fd = memfd_create(
            c"tcpstate-journal",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(entry)?;
        fcntl(
            file.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        let addr = UnixAddr::new(&self.path)?;
        let fds = [file.as_raw_fd()];
        self.sock
            .async_io(Interest::WRITABLE, || {
                sendmsg(
                    self.sock.as_raw_fd(),
                    &[],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                    Some(&addr),
                )
                .map_err(io::Error::from)
            })
            .await
            .map(|_| ())
    }
}

/// journald is there: its native socket exists, or stderr is the journal
/// (`$JOURNAL_STREAM` names stderr's device and inode; see `log.rs`).
pub fn journald_present() -> bool {
    Path::new(SOCKET).exists() || crate::log::stderr_is_journal()
}

/// The journal PRIORITY of a syslog severity (RFC 5424 numbers).
pub fn priority(sev: super::syslog_msg::Severity) -> u8 {
    use super::syslog_msg::Severity;
    match sev {
        Severity::Err => 3,
        Severity::Warning => 4,
        Severity::Notice => 5,
        Severity::Info => 6,
    }
}

/// syslog's facility `daemon`, as journald records it.
pub const SYSLOG_FACILITY_DAEMON: u8 = 3;

/// What an alert's journal entry says beyond its MESSAGE and priority.
/// Every value as it is to be shown: untrusted ones (comm, process,
/// unit, container, pod) already escaped like on the syslog line.
/// `None` leaves the field out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertFields {
    /// `connect_failed` or `connect_slow`.
    pub event: Option<String>,
    pub reason: Option<String>,
    /// `ip:port`, IPv6 `[ip]:port`.
    pub dest: Option<String>,
    pub daddr: Option<String>,
    pub dport: Option<String>,
    /// The DNS name the caller resolved for daddr, escaped.
    pub dname: Option<String>,
    pub saddr: Option<String>,
    pub pid: Option<String>,
    pub comm: Option<String>,
    pub process: Option<String>,
    pub uid: Option<String>,
    pub unit: Option<String>,
    pub user_unit: Option<String>,
    pub container: Option<String>,
    pub container_name: Option<String>,
    pub pod: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub duration_ms: Option<String>,
    /// `kernel` or `application`, for a timeout.
    pub timeout_by: Option<String>,
    /// The ICMP error that made the errno: its sender, type and code.
    pub icmp_from: Option<String>,
    pub icmp_type: Option<String>,
    pub icmp_code: Option<String>,
    /// A packet this host dropped: the kernel's reason, the next hop, the
    /// device (escaped).
    pub drop_reason: Option<String>,
    pub drop_next_hop: Option<String>,
    pub drop_dev: Option<String>,
    /// The TTL (hop limit) the RST that refused or reset it arrived with.
    pub rst_ttl: Option<String>,
    /// A degradation: what the application fell back to (`ip:port`) and
    /// by which rule it was found (`by name`, `retry`, `race`, `family switch`).
    pub fallback: Option<String>,
    pub rule: Option<String>,
    /// A DNS failure (issue 32): the name asked (escaped), the query type,
    /// the server, the rcode, `search` or `per_query`.
    pub name: Option<String>,
    pub qtype: Option<String>,
    pub server: Option<String>,
    pub rcode: Option<String>,
    pub lookup: Option<String>,
    pub count: Option<String>,
}

impl AlertFields {
    /// The TCPSTATE_* fields that are set, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("TCPSTATE_EVENT", &self.event),
            ("TCPSTATE_REASON", &self.reason),
            ("TCPSTATE_DEST", &self.dest),
            ("TCPSTATE_DADDR", &self.daddr),
            ("TCPSTATE_DPORT", &self.dport),
            ("TCPSTATE_DNAME", &self.dname),
            ("TCPSTATE_SADDR", &self.saddr),
            ("TCPSTATE_PID", &self.pid),
            ("TCPSTATE_COMM", &self.comm),
            ("TCPSTATE_PROCESS", &self.process),
            ("TCPSTATE_UID", &self.uid),
            ("TCPSTATE_UNIT", &self.unit),
            ("TCPSTATE_USER_UNIT", &self.user_unit),
            ("TCPSTATE_CONTAINER", &self.container),
            ("TCPSTATE_CONTAINER_NAME", &self.container_name),
            ("TCPSTATE_POD", &self.pod),
            ("TCPSTATE_POD_NAME", &self.pod_name),
            ("TCPSTATE_POD_NAMESPACE", &self.pod_namespace),
            ("TCPSTATE_DURATION_MS", &self.duration_ms),
            ("TCPSTATE_TIMEOUT_BY", &self.timeout_by),
            ("TCPSTATE_ICMP_FROM", &self.icmp_from),
            ("TCPSTATE_ICMP_TYPE", &self.icmp_type),
            ("TCPSTATE_ICMP_CODE", &self.icmp_code),
            ("TCPSTATE_DROP_REASON", &self.drop_reason),
            ("TCPSTATE_DROP_NEXT_HOP", &self.drop_next_hop),
            ("TCPSTATE_DROP_DEV", &self.drop_dev),
            ("TCPSTATE_RST_TTL", &self.rst_ttl),
            ("TCPSTATE_FALLBACK", &self.fallback),
            ("TCPSTATE_RULE", &self.rule),
            ("TCPSTATE_NAME", &self.name),
            ("TCPSTATE_QTYPE", &self.qtype),
            ("TCPSTATE_SERVER", &self.server),
            ("TCPSTATE_RCODE", &self.rcode),
            ("TCPSTATE_LOOKUP", &self.lookup),
            ("TCPSTATE_COUNT", &self.count),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// The TCPSTATE_* fields of an alert: a failure's or a hanging attempt's
/// own; a summary's destination, top reason and first unit.
pub fn fields_of(a: &crate::alert::policy::Alert) -> AlertFields {
    use crate::alert::policy::{Alert, What};
    use crate::output::text::{Endpoint, Escaped};
    let dest = |addr: std::net::IpAddr, port: u16| AlertFields {
        dest: Some(Endpoint(addr, Some(port)).to_string()),
        daddr: Some(addr.to_string()),
        dport: Some(port.to_string()),
        ..Default::default()
    };
    let who = |f: &mut AlertFields,
               c: &Option<crate::event::Caller>,
               attr: &Option<crate::event::Attribution>| {
        if let Some(c) = c {
            f.pid = Some(c.pid.to_string());
            f.comm = Some(c.comm.to_string());
            f.process = Some(c.process.to_string());
            f.uid = Some(c.uid.to_string());
        }
        if let Some(a) = attr {
            f.unit = a.unit.as_deref().map(|u| Escaped(u).to_string());
            f.user_unit = a.user_unit.as_deref().map(|u| Escaped(u).to_string());
            f.container = a.container.as_deref().map(|u| Escaped(u).to_string());
            f.pod = a.pod.as_deref().map(|u| Escaped(u).to_string());
            let esc = |v: &Option<String>| v.as_deref().map(|u| Escaped(u).to_string());
            f.container_name = esc(&a.container_name);
            f.pod_name = esc(&a.pod_name);
            f.pod_namespace = esc(&a.pod_namespace);
        }
    };
    let ms = |ns: u64| format!("{}.{:03}", ns / 1_000_000, ns / 1000 % 1000);
    let icmp = |f: &mut AlertFields, i: Option<crate::event::Icmp>| {
        if let Some(i) = i {
            f.icmp_from = Some(i.from.to_string());
            f.icmp_type = Some(i.kind.to_string());
            f.icmp_code = Some(i.code.to_string());
        }
    };
    let dropped = |f: &mut AlertFields, d: Option<crate::event::Dropped>| {
        if let Some(d) = d {
            f.drop_reason = Some(d.name.unwrap_or("unknown").into());
            f.drop_next_hop = d.next_hop.map(|h| h.to_string());
            f.drop_dev = (!d.dev.as_bytes().is_empty()).then(|| d.dev.to_string());
        }
    };
    match a {
        Alert::First(e, attr) => {
            let mut f = dest(e.daddr, e.dport);
            f.dname = e.dname.map(|n| n.to_string());
            f.event = Some(
                if e.stage.broken().is_some() {
                    "connection_broken"
                } else {
                    "connect_failed"
                }
                .into(),
            );
            f.reason = Some(e.reason.name().into());
            f.timeout_by = e.timeout_by.map(|b| b.name().into());
            icmp(&mut f, e.icmp);
            dropped(&mut f, e.dropped);
            f.rst_ttl = e.rst_ttl.map(|t| t.to_string());
            f.saddr = Some(e.saddr.to_string());
            // Left out where the start is unknown (unmatched).
            f.duration_ms = e.duration().map(ms);
            who(&mut f, &e.caller, attr);
            f
        }
        Alert::Slow(e, attr) => {
            let mut f = dest(e.daddr, e.dport);
            f.dname = e.dname.map(|n| n.to_string());
            f.event = Some("connect_slow".into());
            f.saddr = Some(e.saddr.to_string());
            f.duration_ms = Some(ms(e.elapsed_ns));
            who(&mut f, &e.caller, attr);
            f
        }
        Alert::Degraded(e, fb, attr) => {
            let mut f = dest(e.daddr, e.dport);
            f.dname = e.dname.map(|n| n.to_string());
            f.event = Some("path_degraded".into());
            f.reason = Some(e.reason.name().into());
            f.timeout_by = e.timeout_by.map(|b| b.name().into());
            icmp(&mut f, e.icmp);
            dropped(&mut f, e.dropped);
            f.rst_ttl = e.rst_ttl.map(|t| t.to_string());
            f.saddr = Some(e.saddr.to_string());
            f.duration_ms = e.duration().map(ms);
            f.fallback = Some(Endpoint(fb.daddr, Some(fb.dport)).to_string());
            f.rule = Some(fb.rule.name().into());
            who(&mut f, &e.caller, attr);
            f
        }
        Alert::Resolved(r) => {
            let mut f = dest(r.dest.addr, r.dest.port);
            f.event = Some("connect_recovered".into());
            f
        }
        Alert::ResolveFailed(e, attr) => {
            let mut f = AlertFields {
                event: Some("resolve_failed".into()),
                reason: Some(e.reason.as_str().into()),
                name: Some(crate::output::dns::Shown(&e.name).to_string()),
                qtype: Some(crate::output::dns::qtype_name(e.qtype).into_owned()),
                server: e.server.map(|s| s.to_string()),
                rcode: e.rcode.map(|r| r.to_string()),
                lookup: Some(crate::output::dns::lookup_kind(e).into()),
                ..Default::default()
            };
            who(&mut f, &Some(crate::output::dns::caller(&e.who)), attr);
            f
        }
        Alert::ResolveFolded(s, attr) => {
            let mut f = AlertFields {
                event: Some("resolve_failed".into()),
                reason: s.reasons.first().map(|r| r.0.as_str().to_string()),
                count: Some(s.count.to_string()),
                ..Default::default()
            };
            who(&mut f, &Some(crate::output::dns::caller(&s.who)), attr);
            f
        }
        Alert::Summary(s) => {
            let mut f = match s.dest {
                Some(d) => dest(d.addr, d.port),
                None => AlertFields::default(),
            };
            f.event = Some(
                match s.what {
                    What::Failures => "connect_failed",
                    What::Hanging => "connect_slow",
                    What::Degraded => "path_degraded",
                    What::Broken => "connection_broken",
                }
                .into(),
            );
            f.reason = s.reasons.first().map(|r| r.0.name().to_string());
            f.unit = s.units.first().map(|u| Escaped(&u.0).to_string());
            f
        }
    }
}

/// The whole entry for an alert: MESSAGE (the syslog line's text),
/// PRIORITY (syslog severity, 0–7: 4 warning, 6 info, 3 err),
/// SYSLOG_IDENTIFIER=tcpstate, SYSLOG_FACILITY=3 (daemon), then the
/// TCPSTATE_* fields that are set.
pub fn alert_entry(message: &str, priority: u8, f: &AlertFields) -> Entry {
    let mut e = Entry::new();
    let prio = [b'0' + priority.min(7)];
    let fac = SYSLOG_FACILITY_DAEMON.to_string();
    // The names are constants, checked by the tests: cannot fail.
    let _ = e.field("MESSAGE", message.as_bytes());
    let _ = e.field("PRIORITY", &prio);
    let _ = e.field("SYSLOG_IDENTIFIER", b"tcpstate");
    let _ = e.field("SYSLOG_FACILITY", fac.as_bytes());
    for (k, v) in f.fields() {
        let _ = e.field(k, v.as_bytes());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram as StdDatagram;

    fn fields(e: &Entry) -> Vec<(String, Vec<u8>)> {
        decode(e.as_bytes()).expect("well-formed")
    }

    #[test]
    fn field_names_are_checked() {
        for ok in [
            "MESSAGE",
            "PRIORITY",
            "TCPSTATE_DEST",
            "A",
            "X_1",
            "CODE_LINE",
        ] {
            assert!(valid_field_name(ok), "{ok}");
        }
        let long: &'static str = Box::leak("A".repeat(65).into_boxed_str());
        for bad in [
            "",
            "_PID",
            "message",
            "TCPSTATE-DEST",
            "1ABC",
            "A=B",
            "A\nB",
            "Ä",
            "A B",
            long,
        ] {
            assert!(!valid_field_name(bad), "{bad:?}");
            assert_eq!(
                Entry::new().field(bad, b"x").unwrap_err(),
                InvalidField(bad)
            );
        }
        assert!(valid_field_name(&"A".repeat(64)));
    }

    #[test]
    fn plain_values_are_key_equals_value_lines() {
        let mut e = Entry::new();
        e.field("MESSAGE", b"hello world").unwrap();
        e.field("PRIORITY", b"4").unwrap();
        e.field("EMPTY", b"").unwrap();
        e.field("EQ", b"a=b").unwrap();
        assert_eq!(
            e.as_bytes(),
            b"MESSAGE=hello world\nPRIORITY=4\nEMPTY=\nEQ=a=b\n"
        );
    }

    #[test]
    fn values_with_newlines_are_length_prefixed_and_round_trip() {
        let mut e = Entry::new();
        e.field("MESSAGE", b"two\nlines").unwrap();
        e.field("NEXT", b"x").unwrap();
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\nNEXT=x\n");
        assert_eq!(e.as_bytes(), want.as_slice());
        let values: Vec<&[u8]> = vec![
            b"",
            b"\n",
            b"a\n",
            b"\nTCPSTATE_DEST=forged",
            b"bin\0ary\xff\n=",
            b"=\n=",
        ];
        let mut e = Entry::new();
        for v in &values {
            e.field("V", v).unwrap();
        }
        let got = fields(&e);
        assert_eq!(got.len(), values.len());
        for (g, v) in got.iter().zip(&values) {
            assert_eq!(g.0, "V");
            assert_eq!(g.1, *v);
        }
        // A forged field inside a value stays inside it.
        assert!(!got.iter().any(|(k, _)| k == "TCPSTATE_DEST"));
    }

    #[test]
    fn priorities_are_syslogs() {
        use crate::sinks::syslog_msg::Severity;
        assert_eq!(priority(Severity::Err), 3);
        assert_eq!(priority(Severity::Warning), 4);
        assert_eq!(priority(Severity::Info), 6);
    }

    #[test]
    fn decode_rejects_truncated_entries() {
        let mut e = Entry::new();
        e.field("M", b"a\nb").unwrap();
        let b = e.as_bytes();
        for cut in 1..b.len() {
            assert!(decode(&b[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(decode(b""), Some(vec![]));
    }

    #[test]
    fn a_failure_with_a_name_carries_tcpstate_dname_escaped() {
        use crate::event::{Dname, Failure, Reason};
        let mut e = Failure::sample("203.0.113.7", 443, Reason::Refused);
        let f = fields_of(&crate::alert::policy::Alert::First(e, None));
        assert!(
            !f.fields().iter().any(|(k, _)| *k == "TCPSTATE_DNAME"),
            "null: left out"
        );
        e.dname = Dname::new(b"api.example.com\x1b");
        let f = fields_of(&crate::alert::policy::Alert::First(e, None));
        assert!(f
            .fields()
            .contains(&("TCPSTATE_DNAME", "api.example.com\\x1b")));
    }

    #[test]
    fn alert_entries_carry_the_syslog_fields_and_the_set_tcpstate_fields() {
        let f = AlertFields {
            event: Some("connect_failed".into()),
            reason: Some("refused".into()),
            dest: Some("[2001:db8::2]:443".into()),
            daddr: Some("2001:db8::2".into()),
            dport: Some("443".into()),
            dname: None,
            saddr: Some("2001:db8::1".into()),
            pid: Some("4242".into()),
            comm: Some("curl".into()),
            process: Some("curl".into()),
            uid: Some("1000".into()),
            unit: Some("nginx.service".into()),
            container: None,
            pod: None,
            duration_ms: Some("0.4".into()),
            ..Default::default()
        };
        let line = "TCP failure detected: [2001:db8::2]:443 reason=refused pid=4242 comm=curl";
        let e = alert_entry(line, 4, &f);
        let got: Vec<(String, String)> = fields(&e)
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        let want: Vec<(String, String)> = [
            ("MESSAGE", line),
            ("PRIORITY", "4"),
            ("SYSLOG_IDENTIFIER", "tcpstate"),
            ("SYSLOG_FACILITY", "3"),
            ("TCPSTATE_EVENT", "connect_failed"),
            ("TCPSTATE_REASON", "refused"),
            ("TCPSTATE_DEST", "[2001:db8::2]:443"),
            ("TCPSTATE_DADDR", "2001:db8::2"),
            ("TCPSTATE_DPORT", "443"),
            ("TCPSTATE_SADDR", "2001:db8::1"),
            ("TCPSTATE_PID", "4242"),
            ("TCPSTATE_COMM", "curl"),
            ("TCPSTATE_PROCESS", "curl"),
            ("TCPSTATE_UID", "1000"),
            ("TCPSTATE_UNIT", "nginx.service"),
            ("TCPSTATE_DURATION_MS", "0.4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        // Every name used is valid, set or not.
        let all = AlertFields {
            container: Some("c".into()),
            container_name: Some("web-1".into()),
            pod: Some("p".into()),
            pod_name: Some("api-7f9c".into()),
            pod_namespace: Some("payments".into()),
            ..f
        };
        for (k, _) in all.fields() {
            assert!(valid_field_name(k), "{k}");
        }
        assert_eq!(all.fields().len(), 17);
        assert!(AlertFields::default().fields().is_empty());
        assert_eq!(
            fields(&alert_entry("m", 99, &AlertFields::default()))[1].1,
            b"7"
        );
    }

    #[test]
    fn a_failed_lookup_s_fields_name_it_escaped() {
        use crate::alert::policy::Alert;
        use crate::dns::lookup::Failed;
        let f = Failed::sample(b"api.example.com\nTCPSTATE_X=1", 9, 1000, b"java");
        let fields = fields_of(&Alert::ResolveFailed(Box::new(f), None));
        let got = fields.fields();
        for want in [
            ("TCPSTATE_EVENT", "resolve_failed"),
            ("TCPSTATE_REASON", "nxdomain"),
            ("TCPSTATE_NAME", "api.example.com\\x0aTCPSTATE_X=1"),
            ("TCPSTATE_QTYPE", "A"),
            ("TCPSTATE_SERVER", "10.0.0.2:53"),
            ("TCPSTATE_RCODE", "3"),
            ("TCPSTATE_LOOKUP", "search"),
            ("TCPSTATE_PID", "9"),
            ("TCPSTATE_COMM", "java"),
            ("TCPSTATE_UID", "1000"),
        ] {
            assert!(got.contains(&want), "{want:?} in {got:?}");
        }
    }

    #[test]
    fn a_failures_fields_carry_its_container_and_pod_names_escaped() {
        use crate::alert::policy::Alert;
        use crate::event::{Attribution, Failure, Reason, Seen};
        let attr = Attribution {
            container: Some("0123".into()),
            container_name: Some("web 1".into()),
            pod_name: Some("api-7f9c".into()),
            pod_namespace: Some("payments\n".into()),
            ..Default::default()
        };
        let f = fields_of(&Alert::First(
            Failure {
                duration_ns: 1_500_000,
                ..Failure::sample("192.0.2.7", 443, Reason::Refused)
            },
            Some(attr.clone()),
        ));
        assert_eq!(f.container_name.as_deref(), Some("web\\x201"));
        assert_eq!(f.pod_name.as_deref(), Some("api-7f9c"));
        assert_eq!(f.pod_namespace.as_deref(), Some("payments\\x0a"));
        assert_eq!(f.duration_ms.as_deref(), Some("1.500"));
        // Unmatched: the start is unknown, so no duration at all.
        let f = fields_of(&Alert::First(
            Failure {
                seen: Seen::Unmatched,
                caller: None,
                ..Failure::sample("192.0.2.7", 443, Reason::Refused)
            },
            None,
        ));
        assert_eq!(f.duration_ms, None);
    }

    struct Sock {
        dir: PathBuf,
        path: PathBuf,
        rx: StdDatagram,
    }

    impl Sock {
        fn new(tag: &str) -> Sock {
            let dir =
                std::env::temp_dir().join(format!("tcpstate-journal-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("socket");
            let rx = StdDatagram::bind(&path).unwrap();
            rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            Sock { dir, path, rx }
        }

        /// One datagram: its payload, or the contents of the memfd it
        /// carried (and whether it was one).
        fn recv(&self) -> (Vec<u8>, bool) {
            use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
            use std::io::{IoSliceMut, Read, Seek};
            let mut buf = vec![0u8; 1 << 20];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let (n, fd) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<()>(
                    self.rx.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )
                .unwrap();
                let fd = msg.cmsgs().unwrap().find_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                    _ => None,
                });
                (msg.bytes, fd)
            };
            match fd {
                None => (buf[..n].to_vec(), false),
                Some(fd) => {
                    assert_eq!(n, 0, "a memfd comes with an empty payload");
                    use std::os::fd::FromRawFd;
                    // SAFETY: the fd was just received and is owned by nobody else.
                    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
                    let seals = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS)
                        .unwrap();
                    let sealed = nix::fcntl::SealFlag::from_bits_truncate(seals);
                    assert!(sealed.contains(
                        nix::fcntl::SealFlag::F_SEAL_WRITE
                            | nix::fcntl::SealFlag::F_SEAL_SHRINK
                            | nix::fcntl::SealFlag::F_SEAL_GROW
                            | nix::fcntl::SealFlag::F_SEAL_SEAL
                    ));
                    f.rewind().unwrap();
                    let mut v = Vec::new();
                    f.read_to_end(&mut v).unwrap();
                    (v, true)
                }
            }
        }
    }

    impl Drop for Sock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn sends_a_datagram_to_a_real_socket() {
        let s = Sock::new("small");
        let f = AlertFields {
            dest: Some("192.0.2.7:5432".into()),
            comm: Some("a\\x0ab".into()),
            ..Default::default()
        };
        let e = alert_entry("TCP failure detected: 192.0.2.7:5432", 4, &f);
        rt().block_on(async {
            let j = Journal::new(&s.path).unwrap();
            assert_eq!(j.path(), s.path.as_path());
            j.send(e.as_bytes()).await.unwrap();
        });
        let (got, memfd) = s.recv();
        assert!(!memfd);
        let got = decode(&got).unwrap();
        assert_eq!(
            got[0],
            (
                "MESSAGE".into(),
                b"TCP failure detected: 192.0.2.7:5432".to_vec()
            )
        );
        assert!(got.contains(&("TCPSTATE_DEST".into(), b"192.0.2.7:5432".to_vec())));
        assert!(got.contains(&("TCPSTATE_COMM".into(), b"a\\x0ab".to_vec())));
    }

    #[test]
    fn a_large_entry_goes_in_a_sealed_memfd() {
        let s = Sock::new("large");
        // Larger than any datagram the default socket buffers allow.
        let big = "x".repeat(4 << 20);
        let mut e = Entry::new();
        e.field("MESSAGE", big.as_bytes()).unwrap();
        e.field("MULTI", b"a\nb").unwrap();
        rt().block_on(async {
            Journal::new(&s.path)
                .unwrap()
                .send(e.as_bytes())
                .await
                .unwrap();
        });
        let (got, memfd) = s.recv();
        assert!(memfd, "expected the memfd fallback");
        let got = decode(&got).unwrap();
        assert_eq!(got[0].1.len(), big.len());
        assert_eq!(got[1], ("MULTI".into(), b"a\nb".to_vec()));
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_hang() {
        let r = rt().block_on(async {
            Journal::new("/nonexistent/tcpstate/journal.sock")
                .unwrap()
                .send(b"MESSAGE=x\n")
                .await
        });
        assert!(r.is_err());
    }
}

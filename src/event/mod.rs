//! Safe, owned event types built from the raw ring-buffer record.
//!
//! Everything here is `Copy` and allocation-free: the hot path turns each
//! event record into a [`Record`] on the stack. The other record kinds
//! (seeds, cgroup names, DNS answers) are decoded where they are used:
//! `tracer` reads them off the ring, `dns::answer` parses the answers.

pub mod escape;
pub mod hash;
pub mod notice;
pub mod skel;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::dns::Dname;
use crate::event::skel::RawEvent;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// TCP states, numbered as in the kernel's include/net/tcp_states.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    BoundInactive,
    Unknown(u8),
}

impl TcpState {
    pub fn from_raw(v: u8) -> Self {
        use TcpState::*;
        match v {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            13 => BoundInactive,
            other => Unknown(other),
        }
    }

    pub fn name(self) -> &'static str {
        use TcpState::*;
        match self {
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait1 => "FIN_WAIT1",
            FinWait2 => "FIN_WAIT2",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            Closing => "CLOSING",
            NewSynRecv => "NEW_SYN_RECV",
            BoundInactive => "BOUND_INACTIVE",
            Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpState::Unknown(v) => write!(f, "UNKNOWN({v})"),
            s => f.write_str(s.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// A process name as the kernel gave it: up to 15 bytes, any byte values.
/// It is untrusted (any process can pick its own), so it is only ever shown
/// through its `Display`, which escapes it.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub fn new(raw: &[u8]) -> Self {
        let len = raw
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw.len())
            .min(16);
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&raw[..len]);
        Comm {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Escaped: see `escape`.
impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::event::escape::write(f, self.as_bytes())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Comm({self})")
    }
}

/// What a record says; see enum tcpstate_kind in src/bpf/tcpstate.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Into or out of SYN_SENT (or, with --verbose, any state change).
    State,
    /// connect() failed before the handshake (no SYN left).
    ConnectErr,
    /// An error reported on a socket still in SYN_SENT.
    SkError,
    /// This host's netfilter dropped a SYN of a socket in SYN_SENT.
    Drop,
    /// A SYN was retransmitted.
    Retrans,
    /// An ICMP error reached a socket in SYN_SENT: `saddr` is its sender.
    Icmp,
    /// This host dropped a packet of a socket in SYN_SENT for a reason
    /// other than netfilter: `saddr` is the next hop, `caller.comm` the
    /// device.
    SkbDrop,
    /// A connection broke after it was established (an error moved it into
    /// CLOSE): `oldstate` is where it broke, `sk_err` why.
    Broken,
}

/// Who made an attempt, as the kernel saw it at the attempt (the failure
/// usually happens in a softirq or timer, with nobody's identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// cgroup v2 id (the kernfs id of its directory).
    pub cgroup_id: u64,
    /// The connecting thread's name.
    pub comm: Comm,
    /// Its process's name (the thread-group leader's).
    pub process: Comm,
}

#[cfg(test)]
impl Caller {
    /// For tests: a single-threaded process named `comm`.
    pub fn sample(pid: u32, comm: &[u8]) -> Caller {
        Caller {
            pid,
            tid: pid,
            uid: 0,
            cgroup_id: 1,
            comm: Comm::new(comm),
            process: Comm::new(comm),
        }
    }
}

#[cfg(test)]
impl Failure {
    /// For tests: a handshake failure of pid 1 ("x") from 192.0.2.1 to
    /// `daddr:port`, to adjust with `..Failure::sample(..)`.
    pub fn sample(daddr: &str, port: u16, reason: Reason) -> Failure {
        Failure {
            caller: Some(Caller::sample(1, b"x")),
            family: Family::Ipv4,
            saddr: "192.0.2.1".parse().unwrap(),
            sport: None,
            daddr: daddr.parse().unwrap(),
            dport: port,
            reason,
            errno: 0,
            stage: Stage::Handshake,
            seen: Seen::Live,
            ts_ns: 0,
            duration_ns: 0,
            retransmits: 0,
            timeout_by: None,
            icmp: None,
            dropped: None,
            rst_ttl: None,
            dname: None,
        }
    }
}

/// Who an alert table and the pending table share among: the cgroup (the
/// systemd unit or container) and the uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Source {
    pub cgroup_id: u64,
    pub uid: u32,
}

impl Caller {
    pub fn source(&self) -> Source {
        Source {
            cgroup_id: self.cgroup_id,
            uid: self.uid,
        }
    }
}

/// What a caller's cgroup says of it (see `cgroup`): untrusted text, shown
/// only escaped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    /// The cgroup v2 id (its directory's inode).
    pub id: u64,
    /// The path under the cgroup v2 mount, with a leading `/`.
    pub path: String,
    /// The innermost systemd unit (`*.service`, `*.scope`); in a user's
    /// delegated subtree, the unit that delegated it (`user@1000.service`),
    /// as journald's `_SYSTEMD_UNIT`.
    pub unit: Option<String>,
    /// In a user's delegated subtree, the innermost unit the user named
    /// below it, as journald's `_SYSTEMD_USER_UNIT`: the user chose it.
    pub user_unit: Option<String>,
    /// The uid whose delegated subtree this cgroup is in: `user@UID.service`
    /// or a directory that uid owns (see `cgroup_path::delegation`).
    pub owner: Option<u32>,
    /// A container's full id.
    pub container: Option<String>,
    /// A Kubernetes pod's UID.
    pub pod: Option<String>,
    /// The container's name, as its runtime wrote it on the host (docker,
    /// podman, containerd, CRI-O: see `containers`); in a pod, its name
    /// there.
    pub container_name: Option<String>,
    /// The Kubernetes pod's name and namespace, from its runtime's files.
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

impl Attribution {
    /// `namespace/pod`, or whichever of the two is known.
    pub fn pod_ref(&self) -> Option<String> {
        match (&self.pod_namespace, &self.pod_name) {
            (Some(ns), Some(p)) => Some(format!("{ns}/{p}")),
            (None, Some(p)) => Some(p.clone()),
            (Some(ns), None) => Some(format!("{ns}/?")),
            (None, None) => None,
        }
    }
}

/// One record from the kernel, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub skaddr: u64,
    pub ts_ns: u64,
    /// Meaningful on entry to SYN_SENT and for ConnectErr.
    pub caller: Caller,
    pub family: Family,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// None when the socket had no source port yet (entering SYN_SENT
    /// before a port is picked, or a connect() that failed before).
    pub sport: Option<u16>,
    pub dport: u16,
    pub oldstate: TcpState,
    pub newstate: TcpState,
    /// sk_err at a state change; connect()'s error for ConnectErr; the
    /// errno the ICMP error makes for Icmp.
    pub sk_err: u32,
    /// For Icmp: the ICMP type and code.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// For Drop and SkbDrop: the kernel's enum skb_drop_reason value.
    pub drop_reason: u32,
    /// For Broken: tcp_sock's bytes_acked and bytes_received.
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// For a State record into CLOSE refused and a Broken one reset: the
    /// TTL (hop limit) the RST arrived with, where fentry/tcp_reset saw it.
    pub rst_ttl: Option<u8>,
}

fn addr(family: Family, raw: &[u8; 16]) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        // A v4-mapped peer (::ffff:a.b.c.d) is an IPv4 host: show it so.
        Family::Ipv6 => Ipv6Addr::from(*raw).to_canonical(),
    }
}

/// The `i`th native-endian u64 of a record's 16 bytes (a Broken record's
/// `comm` carries its byte counts: see TCPSTATE_EV_BROKEN).
fn word(b: &[u8; 16], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_ne_bytes(w)
}

impl Record {
    /// None for a family or kind the BPF side should never have sent.
    pub fn from_raw(e: &RawEvent) -> Option<Self> {
        let family = match e.family {
            AF_INET => Family::Ipv4,
            AF_INET6 => Family::Ipv6,
            _ => return None,
        };
        let kind = match e.kind {
            0 => Kind::State,
            1 => Kind::ConnectErr,
            2 => Kind::SkError,
            3 => Kind::Drop,
            4 => Kind::Retrans,
            5 => Kind::Icmp,
            6 => Kind::SkbDrop,
            7 => Kind::Broken,
            _ => return None,
        };
        Some(Record {
            kind,
            skaddr: e.skaddr,
            ts_ns: e.ts_ns,
            caller: Caller {
                pid: e.pid,
                tid: e.tid,
                uid: e.uid,
                cgroup_id: e.cgroup_id,
                // A Broken record's `comm` holds its byte counts.
                comm: if kind == Kind::Broken {
                    Comm::default()
                } else {
                    Comm::new(&e.comm)
                },
                process: Comm::new(&e.pcomm),
            },
            family,
            saddr: addr(family, &e.saddr),
            daddr: addr(family, &e.daddr),
            sport: (e.sport != 0).then_some(e.sport),
            dport: e.dport,
            oldstate: TcpState::from_raw(e.oldstate),
            newstate: TcpState::from_raw(e.newstate),
            sk_err: e.sk_err,
            icmp_type: e.icmp_type,
            icmp_code: e.icmp_code,
            drop_reason: e.drop_reason,
            bytes_acked: if kind == Kind::Broken {
                word(&e.comm, 0)
            } else {
                0
            },
            bytes_received: if kind == Kind::Broken {
                word(&e.comm, 1)
            } else {
                0
            },
            rst_ttl: (e.rst_ttl != 0).then_some(e.rst_ttl),
        })
    }
}

/// Why an attempt failed: the errno the kernel recorded, and what
/// tcpstate saw on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Refused,
    Timeout,
    HostUnreachable,
    NetUnreachable,
    Reset,
    /// EADDRNOTAVAIL: no free local port for this destination.
    PortExhausted,
    /// EPERM/EACCES from connect(), or a SYN this host's netfilter dropped.
    Denied,
    /// No error: the application closed the socket, or exited, while connecting.
    Canceled,
    /// Any other errno.
    Error,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Refused,
        Reason::Timeout,
        Reason::HostUnreachable,
        Reason::NetUnreachable,
        Reason::Reset,
        Reason::PortExhausted,
        Reason::Denied,
        Reason::Canceled,
        Reason::Error,
    ];

    pub fn from_errno(errno: u32) -> Self {
        match errno as i32 {
            0 => Reason::Canceled,
            libc_errno::ECONNREFUSED => Reason::Refused,
            libc_errno::ETIMEDOUT => Reason::Timeout,
            libc_errno::EHOSTUNREACH => Reason::HostUnreachable,
            libc_errno::ENETUNREACH => Reason::NetUnreachable,
            // EPIPE: tcp_reset()'s errno for an RST in CLOSE_WAIT.
            libc_errno::ECONNRESET | libc_errno::EPIPE => Reason::Reset,
            libc_errno::EADDRNOTAVAIL => Reason::PortExhausted,
            libc_errno::EPERM | libc_errno::EACCES => Reason::Denied,
            _ => Reason::Error,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::HostUnreachable => "host_unreachable",
            Reason::NetUnreachable => "net_unreachable",
            Reason::Reset => "reset",
            Reason::PortExhausted => "port_exhausted",
            Reason::Denied => "denied",
            Reason::Canceled => "canceled",
            Reason::Error => "error",
        }
    }

    /// Position in [`Reason::ALL`], for per-reason tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod libc_errno {
    use nix::errno::Errno;
    pub const EPERM: i32 = Errno::EPERM as i32;
    pub const EACCES: i32 = Errno::EACCES as i32;
    pub const ECONNREFUSED: i32 = Errno::ECONNREFUSED as i32;
    pub const ETIMEDOUT: i32 = Errno::ETIMEDOUT as i32;
    pub const EHOSTUNREACH: i32 = Errno::EHOSTUNREACH as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
    pub const ECONNRESET: i32 = Errno::ECONNRESET as i32;
    pub const EPIPE: i32 = Errno::EPIPE as i32;
    pub const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
}

/// Where an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// connect() failed before any SYN was sent.
    Connect,
    /// After the SYN: no answer, a reset, an ICMP error, or given up.
    Handshake,
    /// After it was established: the connection broke
    /// (`connection_broken`); the failure's `duration_ns` runs from
    /// ESTABLISHED.
    Established(Broken),
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::Established(_) => "established",
        }
    }

    /// What a connection that broke had done, for `connection_broken`.
    pub fn broken(self) -> Option<Broken> {
        match self {
            Stage::Established(b) => Some(b),
            _ => None,
        }
    }
}

/// A connection that broke after it was established: the state it broke
/// in, and what it had moved (tcp_sock's counters at the break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Broken {
    pub state: TcpState,
    /// Bytes of ours the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
}

/// How tcpstate knows of the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Seen {
    /// From its start: the times and the caller are exact.
    Live,
    /// Already in SYN_SENT when tcpstate started: the start time is when
    /// tcpstate found it, the caller is who owned the socket then (if found).
    AtStart,
    /// Its start was not on record (forgotten, or a ring-buffer loss): the
    /// reason is the socket's, the caller unknown.
    Unmatched,
}

impl Seen {
    pub fn name(self) -> &'static str {
        match self {
            Seen::Live => "live",
            Seen::AtStart => "at_start",
            Seen::Unmatched => "unmatched",
        }
    }
}

/// A connection attempt that ended without being established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// None when the attempt's start is unknown (`Seen::Unmatched`), or an
    /// attempt found at start whose owner could not be found.
    pub caller: Option<Caller>,
    pub family: Family,
    pub saddr: IpAddr,
    pub sport: Option<u16>,
    pub daddr: IpAddr,
    pub dport: u16,
    pub reason: Reason,
    /// The errno the application saw (0 for canceled).
    pub errno: u32,
    pub stage: Stage,
    pub seen: Seen,
    /// Monotonic nanoseconds of the failure.
    pub ts_ns: u64,
    /// From the attempt's start to the failure (0 when unmatched: see
    /// [`Failure::duration`]).
    pub duration_ns: u64,
    /// SYNs retransmitted before the end.
    pub retransmits: u32,
    /// For a timeout: who gave up waiting for the SYN's answer.
    pub timeout_by: Option<TimeoutBy>,
    /// The ICMP error that made the errno, where it was seen (see `Icmp`).
    pub icmp: Option<Icmp>,
    /// A packet of the attempt this host dropped, and why (see `Dropped`).
    pub dropped: Option<Dropped>,
    /// The IP TTL (IPv6 hop limit) of the RST that refused the attempt or
    /// reset the connection, as it arrived; None where not seen (no
    /// tcp_reset trampoline, or no RST made the errno). A hint of the
    /// sender's distance, not proof of who sent it: docs/reasons.md.
    pub rst_ttl: Option<u8>,
    /// The name the caller's DNS answer gave this address (see `dns`);
    /// None when no answer on record did: never a guess.
    pub dname: Option<Dname>,
}

/// How a failed attempt was found recovered (see `pipeline::verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    ByName,
    Retry,
    Race,
    FamilySwitch,
}

impl Rule {
    pub const ALL: [Rule; 4] = [Rule::ByName, Rule::Retry, Rule::Race, Rule::FamilySwitch];

    pub fn name(self) -> &'static str {
        match self {
            Rule::ByName => "by name",
            Rule::Retry => "retry",
            Rule::Race => "race",
            Rule::FamilySwitch => "family switch",
        }
    }
}

/// What the application fell back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    pub family: Family,
    pub daddr: IpAddr,
    pub dport: u16,
    pub rule: Rule,
}

/// A failure's verdict (see `pipeline::verdict`).
// Each carries a Failure by value, as correlate's Outcome does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Failed(Failure),
    Recovered(Failure, Fallback),
}

impl Decided {
    pub fn failure(&self) -> &Failure {
        match self {
            Decided::Failed(f) | Decided::Recovered(f, _) => f,
        }
    }
}

/// Who gave up on an unanswered SYN: the kernel (ETIMEDOUT, after its
/// retransmissions or `TCP_USER_TIMEOUT`) or the application (its own
/// connect timeout: it closed the socket while the SYN was unanswered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutBy {
    Kernel,
    Application,
}

impl TimeoutBy {
    pub fn name(self) -> &'static str {
        match self {
            TimeoutBy::Kernel => "kernel",
            TimeoutBy::Application => "application",
        }
    }
}

/// An ICMP error that ended an attempt: who sent it (a router or firewall
/// on the path, or the destination itself), its type and code, and the
/// errno the kernel made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    pub from: IpAddr,
    /// ICMPv6 (else ICMP for IPv4).
    pub v6: bool,
    pub kind: u8,
    pub code: u8,
    pub errno: u32,
}

impl Icmp {
    /// From an Icmp record; None for another kind.
    pub fn from_record(r: &Record) -> Option<Icmp> {
        (r.kind == Kind::Icmp).then(|| Icmp {
            from: r.saddr,
            v6: r.family == Family::Ipv6,
            kind: r.icmp_type,
            code: r.icmp_code,
            errno: r.sk_err,
        })
    }

    /// The type and code as operators and `iptables -j REJECT
    /// --reject-with` name them: `admin-prohibited`, `host-unreachable`.
    /// None for one without a usual name (shown as numbers).
    pub fn name(&self) -> Option<&'static str> {
        Some(match (self.v6, self.kind, self.code) {
            // RFC 792, RFC 1812: destination unreachable.
            (false, 3, 0) | (false, 3, 6) => "net-unreachable",
            (false, 3, 1) | (false, 3, 7) => "host-unreachable",
            (false, 3, 2) => "protocol-unreachable",
            (false, 3, 3) => "port-unreachable",
            (false, 3, 4) => "fragmentation-needed",
            (false, 3, 9) => "net-prohibited",
            (false, 3, 10) => "host-prohibited",
            (false, 3, 13) => "admin-prohibited",
            (false, 11, _) => "time-exceeded",
            (false, 12, _) => "parameter-problem",
            // RFC 4443: destination unreachable.
            (true, 1, 0) => "no-route",
            (true, 1, 1) => "admin-prohibited",
            (true, 1, 2) => "beyond-scope",
            (true, 1, 3) => "address-unreachable",
            (true, 1, 4) => "port-unreachable",
            (true, 1, 5) => "failed-policy",
            (true, 1, 6) => "reject-route",
            (true, 3, _) => "time-exceeded",
            (true, 4, _) => "parameter-problem",
            _ => return None,
        })
    }

    /// `ICMP admin-prohibited`, `ICMPv6 no-route`, or with numbers
    /// `ICMP type 5 code 1`.
    pub fn describe(&self) -> String {
        let proto = if self.v6 { "ICMPv6" } else { "ICMP" };
        match self.name() {
            Some(n) => format!("{proto} {n}"),
            None => format!("{proto} type {} code {}", self.kind, self.code),
        }
    }

    /// The words after a failure's reason: `rejected by 10.1.0.1 (ICMP
    /// admin-prohibited), not by the destination`; the destination's own
    /// ICMP error (`daddr`) says so instead.
    pub fn wording(&self, daddr: IpAddr) -> String {
        if self.from == daddr {
            format!("rejected by the destination itself ({})", self.describe())
        } else {
            format!(
                "rejected by {} ({}), not by the destination",
                self.from,
                self.describe()
            )
        }
    }
}

/// A packet of an attempt that this host dropped, with the kernel's reason
/// (skb:kfree_skb, 5.17+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The kernel's enum skb_drop_reason value: its names differ between
    /// kernels, so `name` is read from this kernel's BTF.
    pub reason: u32,
    /// `neigh_failed`, `netfilter_drop`: SKB_DROP_REASON_* in lower case
    /// without the prefix; None where the kernel's BTF did not name it.
    pub name: Option<&'static str>,
    /// The next hop the packet was for (the gateway, else the destination);
    /// None for a netfilter drop.
    pub next_hop: Option<IpAddr>,
    /// The device it was to leave by (any bytes: escaped when shown).
    pub dev: Comm,
}

impl Dropped {
    /// From a Drop or SkbDrop record, unnamed; None for another kind.
    pub fn from_record(r: &Record) -> Option<Dropped> {
        match r.kind {
            Kind::Drop => Some(Dropped {
                reason: r.drop_reason,
                name: None,
                next_hop: None,
                dev: Comm::default(),
            }),
            Kind::SkbDrop => Some(Dropped {
                reason: r.drop_reason,
                name: None,
                next_hop: Some(r.saddr),
                dev: r.caller.comm,
            }),
            _ => None,
        }
    }

    /// What operators call it: `no ARP answer for 10.68.0.77 on eth0` (NDP
    /// for IPv6); else `dropped here: qdisc_drop (next hop 10.0.0.1 on
    /// eth0)`.
    pub fn wording(&self) -> String {
        let name = self.name.unwrap_or("unknown");
        let on = if self.dev.as_bytes().is_empty() {
            String::new()
        } else {
            format!(" on {}", self.dev)
        };
        match (name, self.next_hop) {
            ("neigh_failed", Some(hop)) => {
                let proto = if hop.is_ipv4() { "ARP" } else { "NDP" };
                format!("no {proto} answer for {hop}{on}")
            }
            (_, Some(hop)) => format!("dropped here: {name} (next hop {hop}{on})"),
            (_, None) => format!("dropped here: {name}"),
        }
    }
}

impl Failure {
    /// From the attempt's start to the failure; None where the start is
    /// unknown (an unmatched attempt), which reports say as unknown, not 0.
    pub fn duration(&self) -> Option<u64> {
        (self.seen != Seen::Unmatched).then_some(self.duration_ns)
    }
}

/// An attempt still in SYN_SENT after `--slow-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slow {
    pub caller: Option<Caller>,
    pub family: Family,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub dport: u16,
    pub seen: Seen,
    /// Monotonic nanoseconds when it was found slow.
    pub ts_ns: u64,
    pub elapsed_ns: u64,
    pub retransmits: u32,
    /// As `Failure::dname`.
    pub dname: Option<Dname>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_errno() {
        assert_eq!(Reason::from_errno(111), Reason::Refused);
        assert_eq!(Reason::from_errno(110), Reason::Timeout);
        assert_eq!(Reason::from_errno(113), Reason::HostUnreachable);
        assert_eq!(Reason::from_errno(101), Reason::NetUnreachable);
        assert_eq!(Reason::from_errno(104), Reason::Reset);
        assert_eq!(Reason::from_errno(0), Reason::Canceled);
        assert_eq!(Reason::from_errno(99), Reason::PortExhausted);
        assert_eq!(Reason::from_errno(1), Reason::Denied);
        assert_eq!(Reason::from_errno(13), Reason::Denied);
        assert_eq!(Reason::from_errno(22), Reason::Error);
        assert_eq!(Reason::from_errno(22).name(), "error");
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(Reason::HostUnreachable.to_string(), "host_unreachable");
    }

    #[test]
    fn comm_is_escaped() {
        assert_eq!(Comm::new(b"curl\0\0\0").to_string(), "curl");
        assert_eq!(
            Comm::new(b"a b\nc\\d\x1b").to_string(),
            "a\\x20b\\x0ac\\\\d\\x1b"
        );
        assert_eq!(Comm::new("né".as_bytes()).to_string(), "n\\xc3\\xa9");
        assert_eq!(Comm::new(b"<!here>&x").to_string(), "<!here>&x");
        // Never longer than the kernel's 16 bytes, even without a NUL.
        assert_eq!(Comm::new(&[b'a'; 20]).as_bytes().len(), 16);
    }

    #[test]
    fn icmp_errors_and_drops_are_worded_as_operators_say_them() {
        let i = Icmp {
            from: "10.1.0.1".parse().unwrap(),
            v6: false,
            kind: 3,
            code: 13,
            errno: 113,
        };
        let dest: IpAddr = "10.2.0.9".parse().unwrap();
        assert_eq!(
            i.wording(dest),
            "rejected by 10.1.0.1 (ICMP admin-prohibited), not by the destination"
        );
        let own = Icmp {
            from: dest,
            code: 3,
            ..i
        };
        assert_eq!(
            own.wording(dest),
            "rejected by the destination itself (ICMP port-unreachable)"
        );
        let odd = Icmp {
            kind: 5,
            code: 1,
            ..i
        };
        assert_eq!(odd.describe(), "ICMP type 5 code 1");
        let v6 = Icmp {
            v6: true,
            kind: 1,
            code: 0,
            ..i
        };
        assert_eq!(v6.describe(), "ICMPv6 no-route");

        let mut d = Dropped {
            reason: 52,
            name: Some("neigh_failed"),
            next_hop: Some("2001:db8::77".parse().unwrap()),
            dev: Comm::new(b"eth 0"),
        };
        assert_eq!(d.wording(), "no NDP answer for 2001:db8::77 on eth\\x200");
        d.name = Some("qdisc_drop");
        d.dev = Comm::default();
        assert_eq!(
            d.wording(),
            "dropped here: qdisc_drop (next hop 2001:db8::77)"
        );
        d.next_hop = None;
        d.name = None;
        assert_eq!(d.wording(), "dropped here: unknown");
    }

    #[test]
    fn states_have_kernel_names() {
        assert_eq!(TcpState::from_raw(2), TcpState::SynSent);
        assert_eq!(TcpState::from_raw(7).to_string(), "CLOSE");
        assert_eq!(TcpState::from_raw(99).to_string(), "UNKNOWN(99)");
    }

    fn raw(family: u16, daddr: [u8; 16]) -> RawEvent {
        RawEvent {
            skaddr: 1,
            ts_ns: 2,
            pid: 3,
            tid: 4,
            uid: 65534,
            cgroup_id: 77,
            sk_err: 111,
            family,
            sport: 0,
            dport: 80,
            oldstate: 2,
            newstate: 7,
            saddr: [0; 16],
            daddr,
            comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
            pcomm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        }
    }

    #[test]
    fn decodes_addresses_and_zero_port() {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&[192, 0, 2, 7]);
        let e = Record::from_raw(&raw(2, d)).unwrap();
        assert_eq!(e.daddr.to_string(), "192.0.2.7");
        assert_eq!(e.sport, None);
        assert_eq!(e.kind, Kind::State);
        assert_eq!(e.caller.comm.to_string(), "worker");
        assert_eq!(e.caller.process.to_string(), "curl");
        assert_eq!((e.caller.pid, e.caller.tid, e.caller.uid), (3, 4, 65534));
        assert_eq!(e.caller.cgroup_id, 77);

        let mapped: Ipv6Addr = "::ffff:192.0.2.9".parse().unwrap();
        let e = Record::from_raw(&raw(10, mapped.octets())).unwrap();
        assert_eq!(e.family, Family::Ipv6);
        assert_eq!(e.daddr.to_string(), "192.0.2.9");

        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let e = Record::from_raw(&raw(10, v6.octets())).unwrap();
        assert_eq!(e.daddr, IpAddr::V6(v6));

        assert!(Record::from_raw(&raw(1, d)).is_none());
        let mut k = raw(2, d);
        k.kind = 9;
        assert!(Record::from_raw(&k).is_none());
    }
}

//! Safe, owned event types built from the raw ring-buffer record.
//!
//! Everything here is `Copy` and allocation-free: the hot path turns each
//! record into a [`StateChange`] on the stack.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::skel::RawEvent;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// TCP states, numbered as in the kernel's include/net/tcp_states.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Printable ASCII other than space and backslash passes through; a
/// backslash doubles; every other byte (control characters, newlines,
/// space, non-ASCII) becomes `\xNN`. The result is one token that no
/// reader can mistake for a line break, a field separator or markup-free
/// text it is not. Slack's `&<>` escaping is applied on top by its sink.
impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs of safe bytes go out in one write: this is on the hot path.
        let bytes = self.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(b, 0x21..=0x7e) && b != b'\\' {
                continue;
            }
            // The run is printable ASCII, so always valid UTF-8.
            f.write_str(std::str::from_utf8(&bytes[start..i]).unwrap_or_default())?;
            match b {
                b'\\' => f.write_str("\\\\")?,
                _ => write!(f, "\\x{b:02x}")?,
            }
            start = i + 1;
        }
        f.write_str(std::str::from_utf8(&bytes[start..]).unwrap_or_default())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Comm({self})")
    }
}

/// One traced state change, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub skaddr: u64,
    pub ts_ns: u64,
    pub pid: u32,
    pub comm: Comm,
    pub family: Family,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// None when the kernel had not bound a source port yet (it reads 0
    /// for every failed attempt on the kernels we checked).
    pub sport: Option<u16>,
    pub dport: u16,
    pub oldstate: TcpState,
    pub newstate: TcpState,
    pub sk_err: u32,
}

fn addr(family: Family, raw: &[u8; 16]) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        // A v4-mapped peer (::ffff:a.b.c.d) is an IPv4 host: show it so.
        Family::Ipv6 => Ipv6Addr::from(*raw).to_canonical(),
    }
}

impl StateChange {
    /// None for an address family the BPF side should never have sent.
    pub fn from_raw(e: &RawEvent) -> Option<Self> {
        let family = match e.family {
            AF_INET => Family::Ipv4,
            AF_INET6 => Family::Ipv6,
            _ => return None,
        };
        Some(StateChange {
            skaddr: e.skaddr,
            ts_ns: e.ts_ns,
            pid: e.pid,
            comm: Comm::new(&e.comm),
            family,
            saddr: addr(family, &e.saddr),
            daddr: addr(family, &e.daddr),
            sport: (e.sport != 0).then_some(e.sport),
            dport: e.dport,
            oldstate: TcpState::from_raw(e.oldstate),
            newstate: TcpState::from_raw(e.newstate),
            sk_err: e.sk_err,
        })
    }
}

/// Why an attempt failed, from `sk_err` at SYN_SENT -> CLOSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Refused,
    Timeout,
    HostUnreachable,
    NetUnreachable,
    Reset,
    /// sk_err 0: the application closed the socket, or exited, while connecting.
    Canceled,
    /// Any other errno.
    Error,
}

impl Reason {
    pub fn from_errno(errno: u32) -> Self {
        match errno as i32 {
            0 => Reason::Canceled,
            libc_errno::ECONNREFUSED => Reason::Refused,
            libc_errno::ETIMEDOUT => Reason::Timeout,
            libc_errno::EHOSTUNREACH => Reason::HostUnreachable,
            libc_errno::ENETUNREACH => Reason::NetUnreachable,
            libc_errno::ECONNRESET => Reason::Reset,
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
            Reason::Canceled => "canceled",
            Reason::Error => "error",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod libc_errno {
    use nix::errno::Errno;
    pub const ECONNREFUSED: i32 = Errno::ECONNREFUSED as i32;
    pub const ETIMEDOUT: i32 = Errno::ETIMEDOUT as i32;
    pub const EHOSTUNREACH: i32 = Errno::EHOSTUNREACH as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
    pub const ECONNRESET: i32 = Errno::ECONNRESET as i32;
}

/// A connection attempt that ended without being established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub pid: u32,
    pub comm: Comm,
    pub family: Family,
    pub saddr: IpAddr,
    pub sport: Option<u16>,
    pub daddr: IpAddr,
    pub dport: u16,
    pub reason: Reason,
    pub errno: u32,
    /// Monotonic nanoseconds of the SYN_SENT -> CLOSE transition.
    pub ts_ns: u64,
    /// SYN_SENT to CLOSE.
    pub duration_ns: u64,
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
        assert_eq!(Reason::from_errno(13), Reason::Error);
        assert_eq!(Reason::from_errno(13).name(), "error");
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
            sk_err: 111,
            family,
            sport: 0,
            dport: 80,
            oldstate: 2,
            newstate: 7,
            saddr: [0; 16],
            daddr,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    #[test]
    fn decodes_addresses_and_zero_port() {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&[192, 0, 2, 7]);
        let e = StateChange::from_raw(&raw(2, d)).unwrap();
        assert_eq!(e.daddr.to_string(), "192.0.2.7");
        assert_eq!(e.sport, None);
        assert_eq!(e.comm.to_string(), "curl");

        let mapped: Ipv6Addr = "::ffff:192.0.2.9".parse().unwrap();
        let e = StateChange::from_raw(&raw(10, mapped.octets())).unwrap();
        assert_eq!(e.family, Family::Ipv6);
        assert_eq!(e.daddr.to_string(), "192.0.2.9");

        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let e = StateChange::from_raw(&raw(10, v6.octets())).unwrap();
        assert_eq!(e.daddr, IpAddr::V6(v6));

        assert!(StateChange::from_raw(&raw(1, d)).is_none());
    }
}

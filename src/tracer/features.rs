//! Which hooks this kernel can have beside the core tracepoint, read from
//! its BTF before load, and how each was taken: the words the start line
//! and `--check` use.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use super::libbpf_log::{load_errno, LIBBPF_LOG};
use crate::event::skel::TcpstateSkelBuilder;

/// `--connect-errors`: whether connect()'s own errors (before any SYN) and
/// errors read away with getsockopt(SO_ERROR) are watched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectErrors {
    /// BPF trampolines where the kernel attaches them, else the
    /// raw_syscalls fallback (which every syscall on the host pays for).
    #[default]
    Auto,
    /// As auto, but exit (code 4) if neither can be attached.
    On,
    /// Neither: nothing on the host pays, and these failures are not seen.
    Off,
}

/// `--dns-names`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsNames {
    /// The trampoline where the kernel attaches it, else none: the
    /// fallback taxes every syscall, so it is not taken unasked.
    #[default]
    Auto,
    /// The trampoline, else the raw_syscalls fallback.
    On,
    /// No DNS hook: failures carry no names.
    Off,
}

/// How connect()'s and getsockopt(SO_ERROR)'s results are seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum ConnectHook {
    /// BPF trampolines on the functions that produce them: only connect()
    /// and getsockopt() calls pay.
    Trampolines,
    /// raw_syscalls sys_exit, because the trampolines could not attach
    /// (why): every syscall of every process on the host pays.
    RawSyscalls(String),
    /// Not attached (why).
    Off(String),
    /// Not probed yet.
    #[default]
    Unknown,
}

impl ConnectHook {
    pub fn on(&self) -> bool {
        matches!(self, ConnectHook::Trampolines | ConnectHook::RawSyscalls(_))
    }

    /// For the start line and `--check`.
    pub fn describe(&self) -> String {
        match self {
            ConnectHook::Trampolines => "connect-errors via fexit".into(),
            ConnectHook::RawSyscalls(why) => format!(
                "connect-errors via raw_syscalls (every syscall on this host pays; \
                 no trampolines: {why}; --connect-errors off turns it off)"
            ),
            ConnectHook::Off(why) => format!(
                "connect-errors off ({why}: errors before the SYN, and errors read away \
                 with SO_ERROR, are not seen)"
            ),
            ConnectHook::Unknown => "connect-errors unknown".into(),
        }
    }
}

/// The hooks beside the core tracepoint, each on where the kernel has it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Features {
    /// connect() errors before any SYN, and errors read away with
    /// getsockopt(SO_ERROR): trampolines or raw_syscalls sys_exit.
    pub connect_errors: ConnectHook,
    /// skb:kfree_skb with drop reasons (5.17+): SYNs this host dropped.
    pub netfilter_drops: bool,
    /// tcp:tcp_retransmit_skb: SYN retransmits.
    pub retransmits: bool,
    /// Who sent the ICMP error that ended an attempt.
    pub icmp_sender: IcmpHook,
    /// The TTL of the RST that refused an attempt or reset a connection.
    pub rst_ttl: RstHook,
    /// iter/task_file (5.8+) and iter/tcp (5.9+): attempts already in
    /// flight at start, with their holders.
    pub in_flight_at_start: bool,
    /// iter/task_file: in every network namespace, with the holding
    /// process (else iter/tcp alone: tcpstate's namespace, no holder).
    pub in_flight_holders: bool,
    /// iter/tcp: also those no file holds, in tcpstate's own namespace.
    pub in_flight_unheld: bool,
    /// How DNS answers to applications are seen (destinations by name).
    pub dns: DnsHook,
    /// DNS over TCP beside the DNS trampolines (the syscall fallback reads
    /// it itself).
    pub dns_tcp: DnsTcpHook,
    /// What --dns-names allowed.
    pub dns_wanted: DnsNames,
}

/// How the sender of an ICMP error is seen: only through trampolines on
/// the functions that hand it to a connecting socket. There is no
/// tracepoint there, and a hook on every received packet would tax the
/// whole host for a rare event, so where trampolines do not attach it is
/// not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcmpHook {
    /// fentry/ip_icmp_error, and fentry/ipv6_icmp_error where BTF has it.
    Fentry { v6: bool },
    /// Not seen (why).
    Off(String),
}

impl Default for IcmpHook {
    fn default() -> Self {
        IcmpHook::Off("not probed".into())
    }
}

impl IcmpHook {
    pub fn describe(&self) -> String {
        match self {
            IcmpHook::Fentry { v6: true } => {
                "icmp-sender via fentry/ip_icmp_error,ipv6_icmp_error".into()
            }
            IcmpHook::Fentry { v6: false } => {
                "icmp-sender via fentry/ip_icmp_error (IPv4 only: no ipv6_icmp_error in BTF)".into()
            }
            IcmpHook::Off(why) => format!(
                "icmp-sender off ({why}: failures an ICMP error ended do not say who sent it)"
            ),
        }
    }
}

/// How the TTL (hop limit) of an RST that refuses an attempt or resets a
/// connection is seen: only through a trampoline on tcp_reset(), where the
/// kernel hands it the skb (5.13+: 049fe386d353). No tracepoint has the
/// packet, and a hook on every received packet would tax the whole host,
/// so elsewhere it is not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RstHook {
    /// fentry/tcp_reset.
    Fentry,
    /// Not seen (why).
    Off(String),
}

impl Default for RstHook {
    fn default() -> Self {
        RstHook::Off("not probed".into())
    }
}

impl RstHook {
    pub fn describe(&self) -> String {
        match self {
            RstHook::Fentry => "rst-ttl via fentry/tcp_reset".into(),
            RstHook::Off(why) => {
                format!("rst-ttl off ({why}: refused attempts and resets do not say the RST's TTL)")
            }
        }
    }
}

/// How DNS over TCP is seen where the DNS trampolines run (issue 32):
/// trampolines on the TCP send and receive calls, filtered by the
/// socket's peer port 53, so every TCP send and receive pays a trampoline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsTcpHook {
    /// fentry/tcp_sendmsg, fentry and fexit/tcp_recvmsg. `nonblock`: the
    /// fexit for tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len),
    /// before 5.19 (ec095263a965 dropped `nonblock`): in fexit the return
    /// value follows every argument.
    Fentry { nonblock: bool },
    /// Not read (why).
    Off(String),
}

impl Default for DnsTcpHook {
    fn default() -> Self {
        DnsTcpHook::Off("not probed".into())
    }
}

/// The hook that sees DNS answers, the cheapest the kernel allows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum DnsHook {
    /// None: failures carry no names, and --dest names follow no answers.
    #[default]
    Off,
    /// fentry/skb_consume_udp, udp_send_skb and udp_v6_send_skb: UDP
    /// receives and sends only.
    Trampoline,
    /// tp_btf/sys_exit: reads and receives from UDP sockets of port 53,
    /// writes and sends to them; the same on TCP sockets connected to
    /// port 53 (and writev), with the core hook's TCP connects to port 53.
    Tracepoint,
}

impl Features {
    /// Whether DNS over TCP is read: by the syscall fallback, or by the
    /// TCP trampolines beside the DNS ones.
    pub fn reads_dns_tcp(&self) -> bool {
        match self.dns {
            DnsHook::Tracepoint => true,
            DnsHook::Trampoline => matches!(self.dns_tcp, DnsTcpHook::Fentry { .. }),
            DnsHook::Off => false,
        }
    }

    /// `name on|off(why)` for each, for the start line and `--check`.
    pub fn describe(&self) -> String {
        let f = |on: bool, name: &str, off: &str| {
            if on {
                format!("{name} on")
            } else {
                format!("{name} off ({off})")
            }
        };
        [
            self.connect_errors.describe(),
            f(
                self.netfilter_drops,
                "netfilter-drops",
                "needs Linux 5.17 drop reasons: SYNs dropped here read as timeout",
            ),
            f(self.retransmits, "retransmits", "no tcp:tcp_retransmit_skb"),
            self.icmp_sender.describe(),
            self.rst_ttl.describe(),
            f(
                self.in_flight_at_start,
                "in-flight-at-start",
                "needs Linux 5.8 iter/task_file",
            ),
            match (self.dns, &self.dns_tcp) {
                (DnsHook::Trampoline, DnsTcpHook::Fentry { .. }) => {
                    "dns-names via fentry/skb_consume_udp+udp_send_skb+tcp_sendmsg+tcp_recvmsg"
                        .to_string()
                }
                (DnsHook::Trampoline, DnsTcpHook::Off(why)) => format!(
                    "dns-names via fentry/skb_consume_udp+udp_send_skb (UDP only: {why}: DNS \
                     over TCP is not read)"
                ),
                (DnsHook::Tracepoint, _) => {
                    "dns-names via raw_syscalls (reads, receives and sends \
                                        of UDP, and of TCP to port 53, writev too; every \
                                        syscall on this host pays; --dns-names off turns it \
                                        off)"
                        .to_string()
                }
                (DnsHook::Off, _) if self.dns_wanted == DnsNames::Off => {
                    "dns-names off (--dns-names off: failures carry no DNS names)".to_string()
                }
                (DnsHook::Off, _) if self.dns_wanted == DnsNames::Auto => {
                    "dns-names off (no trampolines here; --dns-names on takes the \
                     raw_syscalls fallback, which every syscall on this host pays for)"
                        .to_string()
                }
                (DnsHook::Off, _) => "dns-names off (neither skb_consume_udp nor \
                                 sys_exit in BTF, or neither attached: \
                                 failures carry no DNS names)"
                    .to_string(),
            },
        ]
        .join(", ")
    }
}

/// The trampoline targets this kernel's BTF has: connect's, and the
/// SOL_SOCKET getsockopt (sock_getsockopt up to 6.7, sk_getsockopt after).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Trampolines {
    pub(super) connect: bool,
    pub(super) sock_getsockopt: bool,
    pub(super) sk_getsockopt: bool,
    /// Where ICMP errors reach a connecting socket (see [`IcmpHook`]).
    pub(super) ip_icmp_error: bool,
    pub(super) ipv6_icmp_error: bool,
    /// tcp_reset(sk, skb): with the skb from 5.13 (049fe386d353); 5.10
    /// has tcp_reset(sk) alone (see [`RstHook`]).
    pub(super) tcp_reset_skb: bool,
    /// tcp_sendmsg(sk, msg, size), and tcp_recvmsg's number of
    /// parameters (6 before 5.19, 5 after): see [`DnsTcpHook`].
    pub(super) tcp_sendmsg: bool,
    pub(super) tcp_recvmsg_params: Option<usize>,
}

impl Trampolines {
    pub(super) fn complete(&self) -> bool {
        self.connect && (self.sock_getsockopt || self.sk_getsockopt)
    }
}

/// Whether this kernel loads these programs: some refuse trampolines
/// with EPERM at load, and a verifier may refuse a program, either of
/// which would fail the whole object. A throwaway copy of the object with
/// only `progs` (and a small ring) is loaded and dropped; what libbpf said
/// about it is not kept, but the errno it gave is returned.
pub(super) fn programs_load(btf: &Option<PathBuf>, progs: &[&str]) -> Result<(), String> {
    let logged = LIBBPF_LOG.lock().map(|l| l.len()).unwrap_or(0);
    let mut obj = MaybeUninit::uninit();
    let mut builder = TcpstateSkelBuilder::default();
    if let Some(p) = btf {
        builder
            .object_builder_mut()
            .btf_custom_path(p)
            .map_err(|e| e.to_string())?;
    }
    let r = match builder.open(&mut obj) {
        Ok(mut open) => {
            for mut p in open.open_object_mut().progs_mut() {
                let keep = progs.iter().any(|n| p.name() == *n);
                p.set_autoload(keep);
            }
            match open.maps.events.set_max_entries(4096) {
                Ok(()) => open.load().map(drop).map_err(|_| load_errno()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    if let Ok(mut l) = LIBBPF_LOG.lock() {
        l.truncate(logged);
    }
    r
}

/// The kernel's drop reasons (enum skb_drop_reason, 5.17+), by value:
/// `SKB_DROP_REASON_NEIGH_FAILED` as `neigh_failed`. Their values differ
/// between kernels; empty where the BTF has none.
pub(super) fn drop_reasons(btf_path: &Path) -> Vec<(u32, String)> {
    use libbpf_rs::btf::types::Enum;
    use libbpf_rs::btf::Btf;
    let Ok(btf) = Btf::from_path(btf_path) else {
        return Vec::new();
    };
    let Some(e) = btf.type_by_name::<Enum<'_>>("skb_drop_reason") else {
        return Vec::new();
    };
    e.iter()
        .filter_map(|m| {
            let name = m.name?.to_str()?;
            let short = name.strip_prefix("SKB_DROP_REASON_")?;
            Some((m.value as u32, short.to_ascii_lowercase()))
        })
        .collect()
}

/// Which hooks this kernel has, from its BTF.
pub(super) fn probe_features(btf_path: &Path) -> (Features, Trampolines, bool) {
    use libbpf_rs::btf::types::{Enum, Func, FuncProto};
    use libbpf_rs::btf::{Btf, BtfType, ReferencesType};
    let Ok(btf) = Btf::from_path(btf_path) else {
        return Default::default();
    };
    let has = |name: &str| btf.type_by_name::<BtfType<'_>>(name).is_some();
    let netfilter_drop = btf
        .type_by_name::<Enum<'_>>("skb_drop_reason")
        .is_some_and(|e| {
            e.iter().any(|m| {
                m.name
                    .is_some_and(|n| n == "SKB_DROP_REASON_NETFILTER_DROP")
            })
        });
    let features = Features {
        connect_errors: ConnectHook::Unknown,
        netfilter_drops: netfilter_drop && has("btf_trace_kfree_skb"),
        retransmits: has("btf_trace_tcp_retransmit_skb"),
        icmp_sender: IcmpHook::default(),
        rst_ttl: RstHook::default(),
        dns_tcp: DnsTcpHook::default(),
        in_flight_at_start: has("bpf_iter__task_file") || has("bpf_iter__tcp"),
        in_flight_holders: has("bpf_iter__task_file"),
        in_flight_unheld: has("bpf_iter__tcp"),
        dns: dns_hook(&btf),
        dns_wanted: DnsNames::Auto,
    };
    let func = |name: &str| btf.type_by_name::<Func<'_>>(name).is_some();
    let params = |name: &str| {
        let f = btf.type_by_name::<Func<'_>>(name)?;
        FuncProto::try_from(f.referenced_type())
            .ok()
            .map(|p| p.len())
    };
    let trampolines = Trampolines {
        connect: func("__sys_connect_file"),
        sock_getsockopt: func("sock_getsockopt"),
        sk_getsockopt: func("sk_getsockopt"),
        ip_icmp_error: func("ip_icmp_error"),
        ipv6_icmp_error: func("ipv6_icmp_error"),
        tcp_reset_skb: params("tcp_reset") == Some(2),
        tcp_sendmsg: params("tcp_sendmsg") == Some(3),
        tcp_recvmsg_params: params("tcp_recvmsg"),
    };
    (features, trampolines, has("btf_trace_sys_exit"))
}

/// The trampolines where the kernel's BTF has the functions, else the
/// tracepoint; which one really attaches is settled at attach.
fn dns_hook(btf: &libbpf_rs::btf::Btf<'_>) -> DnsHook {
    use libbpf_rs::btf::types::Func;
    use libbpf_rs::btf::BtfType;
    let func = |name: &str| btf.type_by_name::<Func<'_>>(name).is_some();
    // Answers, and the queries they must answer (v4 and v6).
    if ["skb_consume_udp", "udp_send_skb", "udp_v6_send_skb"]
        .iter()
        .all(|f| func(f))
    {
        DnsHook::Trampoline
    } else if btf
        .type_by_name::<BtfType<'_>>("btf_trace_sys_exit")
        .is_some()
    {
        DnsHook::Tracepoint
    } else {
        DnsHook::Off
    }
}

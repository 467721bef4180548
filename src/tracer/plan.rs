//! Which programs to load and attach, decided from what the kernel has and
//! what the command line asks: no I/O, so each kernel's choice is a unit
//! test. `Tracer::load` probes, plans, then applies the plan; the kernel
//! can still refuse at load or attach, and the plan says what then.

use super::features::{
    ConnectErrors, ConnectHook, DnsHook, DnsNames, DnsTcpHook, Features, IcmpHook, RstHook,
    Trampolines,
};
use crate::exit::{Fatal, Kind};

/// What the kernel offers, probed before load.
#[derive(Debug, Clone, Default)]
pub(super) struct Kernel {
    /// The extras its BTF has (`dns`: the cheapest DNS hook it has).
    pub(super) features: Features,
    /// The trampoline targets its BTF has.
    pub(super) tramp: Trampolines,
    /// Whether its BTF has the raw_syscalls sys_exit tracepoint.
    pub(super) sys_exit: bool,
    /// The errno, like `-EPERM`, if it refused to load the trampoline
    /// [`probe_target`] named; None where it loaded or none was tried.
    pub(super) tramp_refused: Option<String>,
    /// The errno if it refused to load the DNS-over-TCP programs
    /// [`dns_tcp_probe`] named (a verifier of its own, say): they alone
    /// are left out, not the other trampolines.
    pub(super) dns_tcp_refused: Option<String>,
}

/// The command line's say.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Modes {
    pub(super) connect_errors: ConnectErrors,
    pub(super) dns_names: DnsNames,
}

/// How connect()'s and getsockopt(SO_ERROR)'s results are to be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Connect {
    /// fexit/__sys_connect_file and fentry on sock_getsockopt (else
    /// sk_getsockopt); `fallback`: raw_syscalls sys_exit is loaded beside,
    /// attached only if they will not.
    Trampolines {
        sock_getsockopt: bool,
        fallback: bool,
    },
    /// raw_syscalls sys_exit, because no trampolines (why).
    RawSyscalls(String),
    /// Nothing (why).
    Off(String),
}

impl Connect {
    /// The hook this is if every attach succeeds.
    pub(super) fn planned(&self) -> ConnectHook {
        match self {
            Connect::Trampolines { .. } => ConnectHook::Trampolines,
            Connect::RawSyscalls(why) => ConnectHook::RawSyscalls(why.clone()),
            Connect::Off(why) => ConnectHook::Off(why.clone()),
        }
    }
}

/// What one load takes and attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) connect: Connect,
    /// The DNS hook to attach first.
    pub(super) dns: DnsHook,
    /// The extras as the kernel's BTF has them, with `dns` and
    /// `dns_wanted` as planned; `connect_errors` is set at attach.
    pub(super) features: Features,
}

/// The programs a load takes: set_autoload for each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Progs {
    pub(super) exit_connect_file: bool,
    pub(super) enter_sock_getsockopt: bool,
    pub(super) enter_sk_getsockopt: bool,
    pub(super) handle_sys_exit: bool,
    pub(super) handle_drop: bool,
    pub(super) handle_retransmit: bool,
    pub(super) seed_pending: bool,
    pub(super) seed_tasks: bool,
    pub(super) handle_dns_fentry: bool,
    pub(super) handle_dns_sys_exit: bool,
    pub(super) enter_ip_icmp_error: bool,
    pub(super) enter_ipv6_icmp_error: bool,
    pub(super) enter_tcp_reset: bool,
    pub(super) handle_dns_tcp_send: bool,
    pub(super) enter_dns_tcp_recv: bool,
    /// The fexit for tcp_recvmsg's signature: 5 parameters, or 6 before 5.19.
    pub(super) exit_dns_tcp_recv: bool,
    pub(super) exit_dns_tcp_recv_nonblock: bool,
}

/// The DNS hook the modes allow before any trampoline is tried: the
/// fallback only when asked for (--dns-names on).
fn dns_allowed(k: &Kernel, m: Modes) -> DnsHook {
    match k.features.dns {
        _ if m.dns_names == DnsNames::Off => DnsHook::Off,
        DnsHook::Tracepoint if m.dns_names != DnsNames::On => DnsHook::Off,
        hook => hook,
    }
}

/// The one trampoline program to try alone before the whole object: a
/// kernel that refuses trampolines may say so at load, which would fail
/// the whole object. None: no trampoline is wanted.
pub(super) fn probe_target(k: &Kernel, m: Modes) -> Option<&'static str> {
    if dns_allowed(k, m) == DnsHook::Trampoline {
        Some("handle_dns_fentry")
    } else if m.connect_errors != ConnectErrors::Off && k.tramp.complete() {
        Some("exit_connect_file")
    } else if k.tramp.ip_icmp_error {
        Some("enter_ip_icmp_error")
    } else {
        k.tramp.tcp_reset_skb.then_some("enter_tcp_reset")
    }
}

/// The RST's TTL: a trampoline on tcp_reset(sk, skb) only (see [`RstHook`]).
fn rst_plan(k: &Kernel, refused: Option<&str>) -> RstHook {
    match refused {
        Some(why) => RstHook::Off(format!("no trampolines: {why}")),
        None if k.tramp.tcp_reset_skb => RstHook::Fentry,
        None => {
            RstHook::Off("tcp_reset has no skb argument in the kernel's BTF (Linux 5.13+)".into())
        }
    }
}

/// The ICMP sender's hook: trampolines only (see [`IcmpHook`]).
fn icmp_plan(k: &Kernel, refused: Option<&str>) -> IcmpHook {
    match refused {
        Some(why) => IcmpHook::Off(format!("no trampolines: {why}")),
        None if k.tramp.ip_icmp_error => IcmpHook::Fentry {
            v6: k.tramp.ipv6_icmp_error,
        },
        None => IcmpHook::Off("no ip_icmp_error in the kernel's BTF".into()),
    }
}

/// DNS over TCP beside the DNS trampolines: where the kernel's BTF has
/// tcp_sendmsg(sk, msg, size) and tcp_recvmsg with the parameters one of
/// the two fexit variants takes, and the kernel loaded them.
/// (The syscall fallback reads DNS over TCP itself.)
fn dns_tcp_plan(k: &Kernel, dns: DnsHook) -> DnsTcpHook {
    if dns != DnsHook::Trampoline {
        return DnsTcpHook::Off("no DNS trampolines".into());
    }
    if let Some(errno) = &k.dns_tcp_refused {
        return DnsTcpHook::Off(format!(
            "the kernel refused to load tcp_sendmsg's and tcp_recvmsg's ({errno})"
        ));
    }
    if !k.tramp.tcp_sendmsg {
        return DnsTcpHook::Off("no tcp_sendmsg(sk, msg, size) in the kernel's BTF".into());
    }
    match k.tramp.tcp_recvmsg_params {
        Some(5) => DnsTcpHook::Fentry { nonblock: false },
        Some(6) => DnsTcpHook::Fentry { nonblock: true },
        Some(n) => DnsTcpHook::Off(format!(
            "tcp_recvmsg has {n} parameters in the kernel's BTF, not 5 or 6"
        )),
        None => DnsTcpHook::Off("no tcp_recvmsg in the kernel's BTF".into()),
    }
}

/// The programs of a DNS-over-TCP hook.
pub(super) fn dns_tcp_progs(hook: &DnsTcpHook) -> Option<[&'static str; 3]> {
    match hook {
        DnsTcpHook::Fentry { nonblock } => Some([
            "handle_dns_tcp_send",
            "enter_dns_tcp_recv",
            if *nonblock {
                "exit_dns_tcp_recv_nonblock"
            } else {
                "exit_dns_tcp_recv"
            },
        ]),
        DnsTcpHook::Off(_) => None,
    }
}

/// The DNS-over-TCP programs to load alone before the whole object, once
/// the trampoline probe said trampolines load: a verifier that refuses
/// them then costs only them. None: not wanted here.
pub(super) fn dns_tcp_probe(k: &Kernel, m: Modes) -> Option<[&'static str; 3]> {
    let untried = Kernel {
        dns_tcp_refused: None,
        ..k.clone()
    };
    dns_tcp_progs(&plan(&untried, m).features.dns_tcp)
}

/// Why no trampolines, from the errno the kernel gave at load.
fn refused_at_load(errno: &str) -> String {
    format!("the kernel refused to load them ({errno})")
}

/// raw_syscalls where it is loaded (or the kernel has it), because of
/// `why`; else off.
pub(super) fn fallback(why: String, sys_exit: bool) -> Connect {
    if sys_exit {
        Connect::RawSyscalls(why)
    } else {
        Connect::Off(format!("{why}, and no raw_syscalls tracepoint"))
    }
}

fn connect_plan(k: &Kernel, m: Modes, refused: Option<String>) -> Connect {
    if m.connect_errors == ConnectErrors::Off {
        return Connect::Off("--connect-errors off".into());
    }
    let why = match refused {
        Some(why) => why,
        None if k.tramp.complete() => {
            return Connect::Trampolines {
                sock_getsockopt: k.tramp.sock_getsockopt,
                fallback: k.sys_exit,
            }
        }
        None if !k.tramp.connect => "no __sys_connect_file in the kernel's BTF".into(),
        None => "no sock_getsockopt or sk_getsockopt in the kernel's BTF".into(),
    };
    fallback(why, k.sys_exit)
}

/// The plan for this kernel and these modes.
pub(super) fn plan(k: &Kernel, m: Modes) -> Plan {
    let refused = k.tramp_refused.as_deref().map(refused_at_load);
    let dns = match dns_allowed(k, m) {
        DnsHook::Trampoline if refused.is_some() => {
            if k.sys_exit && m.dns_names == DnsNames::On {
                DnsHook::Tracepoint
            } else {
                DnsHook::Off
            }
        }
        hook => hook,
    };
    Plan {
        features: Features {
            connect_errors: ConnectHook::Unknown,
            icmp_sender: icmp_plan(k, refused.as_deref()),
            rst_ttl: rst_plan(k, refused.as_deref()),
            dns_tcp: dns_tcp_plan(k, dns),
            dns,
            dns_wanted: m.dns_names,
            ..k.features.clone()
        },
        connect: connect_plan(k, m, refused),
        dns,
    }
}

impl Plan {
    /// The programs to load.
    pub(super) fn progs(&self) -> Progs {
        let (tramp, sock, sys_exit) = match self.connect {
            Connect::Trampolines {
                sock_getsockopt,
                fallback,
            } => (true, sock_getsockopt, fallback),
            Connect::RawSyscalls(_) => (false, false, true),
            Connect::Off(_) => (false, false, false),
        };
        let f = &self.features;
        let tcp = dns_tcp_progs(&f.dns_tcp).is_some();
        let nonblock = f.dns_tcp == DnsTcpHook::Fentry { nonblock: true };
        Progs {
            exit_connect_file: tramp,
            // One SOL_SOCKET getsockopt: sock_getsockopt where it is (it
            // calls sk_getsockopt where both are).
            enter_sock_getsockopt: tramp && sock,
            enter_sk_getsockopt: tramp && !sock,
            handle_sys_exit: sys_exit,
            handle_drop: f.netfilter_drops,
            handle_retransmit: f.retransmits,
            seed_pending: f.in_flight_unheld,
            seed_tasks: f.in_flight_holders,
            handle_dns_fentry: self.dns == DnsHook::Trampoline,
            // Loaded beside the trampoline, attached only if it will not.
            handle_dns_sys_exit: self.dns != DnsHook::Off && f.dns_wanted == DnsNames::On,
            enter_ip_icmp_error: matches!(f.icmp_sender, IcmpHook::Fentry { .. }),
            enter_ipv6_icmp_error: f.icmp_sender == IcmpHook::Fentry { v6: true },
            enter_tcp_reset: f.rst_ttl == RstHook::Fentry,
            handle_dns_tcp_send: tcp,
            enter_dns_tcp_recv: tcp,
            exit_dns_tcp_recv: tcp && !nonblock,
            exit_dns_tcp_recv_nonblock: tcp && nonblock,
        }
    }

    /// Whether the connect, ICMP, RST or DNS-over-TCP trampolines are in
    /// this load: if the kernel refuses the object,
    /// [`Plan::without_trampolines`] is tried.
    pub(super) fn has_trampolines(&self) -> bool {
        matches!(self.connect, Connect::Trampolines { .. })
            || matches!(self.features.icmp_sender, IcmpHook::Fentry { .. })
            || self.features.rst_ttl == RstHook::Fentry
            || dns_tcp_progs(&self.features.dns_tcp).is_some()
    }

    /// The plan once the kernel refused to load the trampolines (errno):
    /// the connect fallback in their place, the ICMP sender, the RST's
    /// TTL and DNS over TCP off, the rest as it was.
    pub(super) fn without_trampolines(&self, errno: &str) -> Plan {
        let mut plan = self.clone();
        if let Connect::Trampolines {
            fallback: sys_exit, ..
        } = self.connect
        {
            plan.connect = fallback(refused_at_load(errno), sys_exit);
        }
        if matches!(self.features.icmp_sender, IcmpHook::Fentry { .. }) {
            plan.features.icmp_sender =
                IcmpHook::Off(format!("no trampolines: {}", refused_at_load(errno)));
        }
        if self.features.rst_ttl == RstHook::Fentry {
            plan.features.rst_ttl =
                RstHook::Off(format!("no trampolines: {}", refused_at_load(errno)));
        }
        if dns_tcp_progs(&self.features.dns_tcp).is_some() {
            plan.features.dns_tcp =
                DnsTcpHook::Off(format!("no trampolines: {}", refused_at_load(errno)));
        }
        plan
    }

    /// The features if every attach succeeds: the start line's words
    /// (the apply step sets them from what did attach).
    #[cfg(test)]
    fn expected(&self) -> Features {
        Features {
            connect_errors: self.connect.planned(),
            ..self.features.clone()
        }
    }
}

/// Why the connect trampolines are not used when the kernel refused to
/// attach them (error).
pub(super) fn refused_at_attach(e: &dyn std::fmt::Display) -> String {
    format!("the kernel refused to attach them: {e}")
}

/// `--connect-errors on` with nothing attached is fatal (exit 4).
pub(super) fn require(m: Modes, attached: &ConnectHook) -> Result<(), Fatal> {
    if m.connect_errors == ConnectErrors::On && !attached.on() {
        return Err(Fatal::new(
            Kind::Kernel,
            format!("--connect-errors on: {}", attached.describe()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEXIT: &str = "connect-errors via fexit";
    const EPERM_LOAD: &str = "connect-errors via raw_syscalls (every syscall on this host pays; \
        no trampolines: the kernel refused to load them (-EPERM); --connect-errors off turns it off)";
    const CONNECT_OFF: &str = "connect-errors off (--connect-errors off: errors before the SYN, \
        and errors read away with SO_ERROR, are not seen)";
    const ICMP_EPERM: &str = "icmp-sender off (no trampolines: the kernel refused to load \
        them (-EPERM): failures an ICMP error ended do not say who sent it)";
    const RST_EPERM: &str = "rst-ttl off (no trampolines: the kernel refused to load \
        them (-EPERM): refused attempts and resets do not say the RST's TTL)";
    const RST_5_10: &str = "rst-ttl off (tcp_reset has no skb argument in the kernel's BTF \
        (Linux 5.13+): refused attempts and resets do not say the RST's TTL)";
    const DNS_FENTRY: &str =
        "dns-names via fentry/skb_consume_udp+udp_send_skb+tcp_sendmsg+tcp_recvmsg";
    const DNS_RAW: &str = "dns-names via raw_syscalls (reads, receives and sends of UDP, and of \
        TCP to port 53, writev too; every syscall on this host pays; --dns-names off turns it off)";
    const DNS_OFF: &str = "dns-names off (--dns-names off: failures carry no DNS names)";
    const DNS_AUTO_OFF: &str = "dns-names off (no trampolines here; --dns-names on takes the \
        raw_syscalls fallback, which every syscall on this host pays for)";

    /// A kernel as its BTF reads: `sock`/`sk`: which getsockopt it has;
    /// `drops`: 5.17+ drop reasons; `refuses`: the errno it gives any
    /// trampoline at load.
    fn kernel(sock: bool, sk: bool, drops: bool, refuses: Option<&str>) -> Kernel {
        Kernel {
            features: Features {
                netfilter_drops: drops,
                retransmits: true,
                in_flight_at_start: true,
                in_flight_holders: true,
                in_flight_unheld: true,
                dns: DnsHook::Trampoline,
                ..Features::default()
            },
            tramp: Trampolines {
                connect: true,
                sock_getsockopt: sock,
                sk_getsockopt: sk,
                ip_icmp_error: true,
                ipv6_icmp_error: true,
                tcp_reset_skb: true,
                tcp_sendmsg: true,
                tcp_recvmsg_params: Some(5),
            },
            sys_exit: true,
            tramp_refused: refuses.map(String::from),
            dns_tcp_refused: None,
        }
    }

    /// 5.10: sock_getsockopt only, no drop reasons, tcp_reset(sk) alone,
    /// tcp_recvmsg with `nonblock`.
    fn linux_5_10() -> Kernel {
        let mut k = kernel(true, false, false, None);
        k.tramp.tcp_reset_skb = false;
        k.tramp.tcp_recvmsg_params = Some(6);
        k
    }
    /// 6.1: sock_getsockopt calling sk_getsockopt.
    fn linux_6_1() -> Kernel {
        kernel(true, true, true, None)
    }
    /// 6.12: sk_getsockopt only.
    fn linux_6_12() -> Kernel {
        kernel(false, true, true, None)
    }
    /// This machine: 6.18, which refuses trampolines at load with EPERM.
    fn no_trampolines() -> Kernel {
        kernel(false, true, true, Some("-EPERM"))
    }

    fn modes(connect_errors: ConnectErrors, dns_names: DnsNames) -> Modes {
        Modes {
            connect_errors,
            dns_names,
        }
    }

    /// As `Tracer::load` does: the kernel is asked to load a trampoline
    /// only where the plan would try one, and the DNS-over-TCP programs
    /// only where the plan then wants them.
    fn planned(mut k: Kernel, m: Modes) -> Plan {
        if probe_target(&k, m).is_none() {
            k.tramp_refused = None;
        }
        if dns_tcp_probe(&k, m).is_none() {
            k.dns_tcp_refused = None;
        }
        plan(&k, m)
    }

    /// The start line's words for the connect and DNS hooks.
    fn words(p: &Plan) -> (String, String) {
        let line = p.expected().describe();
        let (connect, _) = line.split_once(", netfilter-drops").unwrap();
        let dns = line.find("dns-names").unwrap();
        (connect.to_string(), line[dns..].to_string())
    }

    const MODES: [ConnectErrors; 3] = [ConnectErrors::Auto, ConnectErrors::On, ConnectErrors::Off];

    #[test]
    fn trampoline_kernels_take_fexit_and_the_getsockopt_they_have() {
        for (k, sock) in [
            (linux_5_10(), true),
            (linux_6_1(), true),
            (linux_6_12(), false),
        ] {
            for c in [ConnectErrors::Auto, ConnectErrors::On] {
                let m = modes(c, DnsNames::Auto);
                assert_eq!(probe_target(&k, m), Some("handle_dns_fentry"));
                let p = planned(k.clone(), m);
                assert_eq!(
                    p.connect,
                    Connect::Trampolines {
                        sock_getsockopt: sock,
                        fallback: true
                    }
                );
                let progs = p.progs();
                assert!(progs.exit_connect_file && progs.handle_sys_exit);
                assert_eq!(progs.enter_sock_getsockopt, sock);
                assert_eq!(progs.enter_sk_getsockopt, !sock);
                assert!(progs.handle_dns_fentry && !progs.handle_dns_sys_exit);
                assert_eq!(words(&p), (FEXIT.into(), DNS_FENTRY.into()));
                assert!(require(m, &p.expected().connect_errors).is_ok());
            }
        }
    }

    #[test]
    fn connect_errors_off_loads_no_connect_hook_on_any_kernel() {
        for k in [linux_5_10(), linux_6_1(), linux_6_12(), no_trampolines()] {
            let p = planned(k, modes(ConnectErrors::Off, DnsNames::Off));
            assert_eq!(p.connect, Connect::Off("--connect-errors off".into()));
            let progs = p.progs();
            assert!(!progs.exit_connect_file && !progs.handle_sys_exit);
            assert!(!progs.enter_sock_getsockopt && !progs.enter_sk_getsockopt);
            assert!(!progs.handle_dns_fentry && !progs.handle_dns_sys_exit);
            assert_eq!(words(&p), (CONNECT_OFF.into(), DNS_OFF.into()));
        }
    }

    #[test]
    fn nothing_is_probed_when_nothing_wants_a_trampoline() {
        let m = modes(ConnectErrors::Off, DnsNames::Off);
        let mut k = no_trampolines();
        k.tramp.ip_icmp_error = false;
        k.tramp.tcp_reset_skb = false;
        assert_eq!(probe_target(&k, m), None);
        let m = modes(ConnectErrors::Auto, DnsNames::Off);
        assert_eq!(probe_target(&linux_6_12(), m), Some("exit_connect_file"));
    }

    #[test]
    fn dns_modes_on_trampoline_kernels() {
        for k in [linux_5_10(), linux_6_1(), linux_6_12()] {
            let p = planned(k.clone(), modes(ConnectErrors::Auto, DnsNames::On));
            // The fallback is loaded beside, for a trampoline that will not attach.
            assert!(p.progs().handle_dns_fentry && p.progs().handle_dns_sys_exit);
            assert_eq!(words(&p).1, DNS_FENTRY);
            let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Off));
            assert!(!p.progs().handle_dns_fentry && !p.progs().handle_dns_sys_exit);
            assert_eq!(words(&p), (FEXIT.into(), DNS_OFF.into()));
        }
    }

    #[test]
    fn this_machine_auto_takes_raw_syscalls_and_no_dns() {
        for d in [DnsNames::Auto, DnsNames::Off] {
            let p = planned(no_trampolines(), modes(ConnectErrors::Auto, d));
            assert_eq!(
                p.connect,
                Connect::RawSyscalls("the kernel refused to load them (-EPERM)".into())
            );
            let progs = p.progs();
            assert!(progs.handle_sys_exit && !progs.exit_connect_file);
            assert!(!progs.enter_sock_getsockopt && !progs.enter_sk_getsockopt);
            assert!(!progs.handle_dns_fentry && !progs.handle_dns_sys_exit);
            assert!(progs.handle_drop && progs.handle_retransmit);
            assert!(progs.seed_pending && progs.seed_tasks);
        }
        let p = planned(no_trampolines(), modes(ConnectErrors::Auto, DnsNames::Auto));
        assert_eq!(
            p.expected().describe(),
            format!(
                "{EPERM_LOAD}, netfilter-drops on, retransmits on, {ICMP_EPERM}, \
                 {RST_EPERM}, in-flight-at-start on, {DNS_AUTO_OFF}"
            )
        );
    }

    #[test]
    fn this_machine_in_every_mode() {
        for c in MODES {
            for (d, dns_words, dns_raw) in [
                (DnsNames::Auto, DNS_AUTO_OFF, false),
                (DnsNames::On, DNS_RAW, true),
                (DnsNames::Off, DNS_OFF, false),
            ] {
                let m = modes(c, d);
                let p = planned(no_trampolines(), m);
                let connect = if c == ConnectErrors::Off {
                    CONNECT_OFF
                } else {
                    EPERM_LOAD
                };
                assert_eq!(words(&p), (connect.into(), dns_words.into()), "{m:?}");
                assert_eq!(p.progs().handle_dns_sys_exit, dns_raw);
                assert!(!p.progs().handle_dns_fentry);
                assert_eq!(p.progs().handle_sys_exit, c != ConnectErrors::Off);
                assert!(require(m, &p.expected().connect_errors).is_ok());
            }
        }
    }

    #[test]
    fn connect_errors_on_with_nothing_to_attach_is_fatal() {
        // Unreadable BTF: nothing known.
        for c in MODES {
            let m = modes(c, DnsNames::Auto);
            let p = planned(Kernel::default(), m);
            assert_eq!(probe_target(&Kernel::default(), m), None);
            let hook = p.expected().connect_errors;
            let r = require(m, &hook);
            if c != ConnectErrors::On {
                assert!(r.is_ok());
                continue;
            }
            let e = r.unwrap_err();
            assert_eq!(e.kind, Kind::Kernel);
            assert_eq!(
                e.msg,
                "--connect-errors on: connect-errors off (no __sys_connect_file in the \
                 kernel's BTF, and no raw_syscalls tracepoint: errors before the SYN, and \
                 errors read away with SO_ERROR, are not seen)"
            );
        }
        // Refused trampolines and no raw_syscalls.
        let k = Kernel {
            sys_exit: false,
            ..no_trampolines()
        };
        let m = modes(ConnectErrors::On, DnsNames::Auto);
        let p = planned(k, m);
        let e = require(m, &p.expected().connect_errors).unwrap_err();
        assert!(e.msg.starts_with(
            "--connect-errors on: connect-errors off (the kernel refused to load them \
             (-EPERM), and no raw_syscalls tracepoint"
        ));
    }

    #[test]
    fn the_icmp_sender_is_seen_only_through_trampolines() {
        for k in [linux_5_10(), linux_6_1(), linux_6_12()] {
            for c in MODES {
                for d in [DnsNames::Auto, DnsNames::Off] {
                    let p = planned(k.clone(), modes(c, d));
                    assert_eq!(p.features.icmp_sender, IcmpHook::Fentry { v6: true });
                    assert!(p.progs().enter_ip_icmp_error && p.progs().enter_ipv6_icmp_error);
                    assert!(p.has_trampolines());
                }
            }
        }
        // With nothing else wanting one, the ICMP trampoline is the probe.
        let m = modes(ConnectErrors::Off, DnsNames::Off);
        assert_eq!(
            probe_target(&no_trampolines(), m),
            Some("enter_ip_icmp_error")
        );
        for c in MODES {
            let p = planned(no_trampolines(), modes(c, DnsNames::Auto));
            assert_eq!(p.features.icmp_sender.describe(), ICMP_EPERM);
            assert!(!p.progs().enter_ip_icmp_error && !p.progs().enter_ipv6_icmp_error);
        }
        // Refused only at the full load: off with the errno.
        let p = planned(linux_6_12(), modes(ConnectErrors::Off, DnsNames::Off));
        let q = p.without_trampolines("-EPERM");
        assert_eq!(q.features.icmp_sender.describe(), ICMP_EPERM);
        assert!(!q.has_trampolines());
        // A kernel without ipv6_icmp_error: IPv4 only, said.
        let mut k = linux_6_12();
        k.tramp.ipv6_icmp_error = false;
        let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Auto));
        assert!(p.progs().enter_ip_icmp_error && !p.progs().enter_ipv6_icmp_error);
        assert!(p.features.icmp_sender.describe().contains("IPv4 only"));
    }

    #[test]
    fn the_rsts_ttl_is_seen_where_tcp_reset_has_the_skb() {
        // 6.1 and 6.12: tcp_reset(sk, skb), and trampolines load.
        for k in [linux_6_1(), linux_6_12()] {
            for c in MODES {
                for d in [DnsNames::Auto, DnsNames::Off] {
                    let p = planned(k.clone(), modes(c, d));
                    assert_eq!(p.features.rst_ttl, RstHook::Fentry);
                    assert_eq!(
                        p.features.rst_ttl.describe(),
                        "rst-ttl via fentry/tcp_reset"
                    );
                    assert!(p.progs().enter_tcp_reset && p.has_trampolines());
                }
            }
        }
        // 5.10: tcp_reset(sk) only: not loaded (its verifier would refuse
        // the skb argument), said.
        for c in MODES {
            let p = planned(linux_5_10(), modes(c, DnsNames::Auto));
            assert_eq!(p.features.rst_ttl.describe(), RST_5_10);
            assert!(!p.progs().enter_tcp_reset);
        }
        // This machine: refused with the other trampolines, said so on the
        // start line.
        for c in MODES {
            let p = planned(no_trampolines(), modes(c, DnsNames::Auto));
            assert_eq!(p.features.rst_ttl.describe(), RST_EPERM);
            assert!(!p.progs().enter_tcp_reset);
            assert!(p.expected().describe().contains(RST_EPERM));
        }
        // Refused only at the full load: off with the errno.
        let p = planned(linux_6_1(), modes(ConnectErrors::Off, DnsNames::Off));
        let q = p.without_trampolines("-EPERM");
        assert_eq!(q.features.rst_ttl.describe(), RST_EPERM);
        assert!(!q.progs().enter_tcp_reset && !q.has_trampolines());
        // The one trampoline wanted: it is the probe.
        let mut k = no_trampolines();
        k.tramp.ip_icmp_error = false;
        let m = modes(ConnectErrors::Off, DnsNames::Off);
        assert_eq!(probe_target(&k, m), Some("enter_tcp_reset"));
        let p = planned(k, m);
        assert_eq!(p.features.rst_ttl.describe(), RST_EPERM);
    }

    #[test]
    fn a_getsockopt_missing_is_said() {
        let k = kernel(false, false, true, None);
        let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Off));
        assert_eq!(
            p.connect,
            Connect::RawSyscalls("no sock_getsockopt or sk_getsockopt in the kernel's BTF".into())
        );
    }

    #[test]
    fn refused_at_full_load_falls_back_and_keeps_dns() {
        let p = planned(linux_6_12(), modes(ConnectErrors::Auto, DnsNames::Auto));
        assert!(p.has_trampolines());
        let q = p.without_trampolines("-EPERM");
        assert!(!q.has_trampolines());
        assert_eq!(q.dns, DnsHook::Trampoline);
        assert!(q.progs().handle_sys_exit && !q.progs().exit_connect_file);
        assert!(!q.progs().enter_sk_getsockopt);
        assert_eq!(
            words(&q),
            (
                EPERM_LOAD.into(),
                "dns-names via fentry/skb_consume_udp+udp_send_skb (UDP only: no trampolines: \
                 the kernel refused to load them (-EPERM): DNS over TCP is not read)"
                    .into()
            )
        );
    }

    #[test]
    fn dns_over_tcp_takes_the_recvmsg_fexit_the_kernel_fits() {
        for (k, nonblock) in [
            (linux_5_10(), true),
            (linux_6_1(), false),
            (linux_6_12(), false),
        ] {
            for c in MODES {
                for d in [DnsNames::Auto, DnsNames::On] {
                    let m = modes(c, d);
                    let want = [
                        "handle_dns_tcp_send",
                        "enter_dns_tcp_recv",
                        if nonblock {
                            "exit_dns_tcp_recv_nonblock"
                        } else {
                            "exit_dns_tcp_recv"
                        },
                    ];
                    assert_eq!(dns_tcp_probe(&k, m), Some(want));
                    let p = planned(k.clone(), m);
                    assert_eq!(p.features.dns_tcp, DnsTcpHook::Fentry { nonblock });
                    let progs = p.progs();
                    assert!(progs.handle_dns_tcp_send && progs.enter_dns_tcp_recv);
                    assert_eq!(progs.exit_dns_tcp_recv_nonblock, nonblock);
                    assert_eq!(progs.exit_dns_tcp_recv, !nonblock);
                    assert!(p.expected().reads_dns_tcp());
                    assert_eq!(words(&p).1, DNS_FENTRY);
                }
            }
            // --dns-names off: nothing of it.
            let m = modes(ConnectErrors::Auto, DnsNames::Off);
            assert_eq!(dns_tcp_probe(&k, m), None);
            let progs = planned(k.clone(), m).progs();
            assert!(!progs.handle_dns_tcp_send && !progs.enter_dns_tcp_recv);
            assert!(!progs.exit_dns_tcp_recv && !progs.exit_dns_tcp_recv_nonblock);
        }
    }

    #[test]
    fn this_machine_reads_dns_over_tcp_from_the_fallback_only() {
        for c in MODES {
            for d in [DnsNames::Auto, DnsNames::On, DnsNames::Off] {
                let m = modes(c, d);
                assert_eq!(dns_tcp_probe(&no_trampolines(), m), None);
                let p = planned(no_trampolines(), m);
                let progs = p.progs();
                assert!(!progs.handle_dns_tcp_send && !progs.enter_dns_tcp_recv);
                assert!(!progs.exit_dns_tcp_recv && !progs.exit_dns_tcp_recv_nonblock);
                // The fallback reads it (--dns-names on), else nothing does.
                assert_eq!(p.expected().reads_dns_tcp(), d == DnsNames::On);
            }
        }
    }

    #[test]
    fn dns_over_tcp_refused_loses_only_itself() {
        for k in [linux_5_10(), linux_6_1(), linux_6_12()] {
            let mut k = k;
            k.dns_tcp_refused = Some("-EINVAL".into());
            let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Auto));
            assert_eq!(
                words(&p),
                (
                    FEXIT.into(),
                    "dns-names via fentry/skb_consume_udp+udp_send_skb (UDP only: the kernel \
                     refused to load tcp_sendmsg's and tcp_recvmsg's (-EINVAL): DNS over TCP \
                     is not read)"
                        .into()
                )
            );
            let progs = p.progs();
            assert!(progs.handle_dns_fentry && progs.exit_connect_file);
            assert!(progs.enter_ip_icmp_error);
            assert!(!progs.handle_dns_tcp_send && !progs.enter_dns_tcp_recv);
            assert!(!progs.exit_dns_tcp_recv && !progs.exit_dns_tcp_recv_nonblock);
            assert!(!p.expected().reads_dns_tcp());
        }
        // Refused with the whole object: off with the others.
        let p = planned(linux_6_12(), modes(ConnectErrors::Off, DnsNames::Auto));
        assert!(p.has_trampolines());
        let q = p.without_trampolines("-EPERM");
        assert_eq!(
            q.features.dns_tcp,
            DnsTcpHook::Off("no trampolines: the kernel refused to load them (-EPERM)".into())
        );
        assert!(!q.progs().handle_dns_tcp_send && !q.progs().exit_dns_tcp_recv);
    }

    #[test]
    fn dns_over_tcp_needs_the_signatures_it_reads() {
        let mut k = linux_6_12();
        k.tramp.tcp_recvmsg_params = Some(4);
        let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Auto));
        assert!(words(&p).1.ends_with(
            "(UDP only: tcp_recvmsg has 4 parameters in the kernel's BTF, not 5 or 6: DNS \
             over TCP is not read)"
        ));
        assert!(!p.progs().enter_dns_tcp_recv && p.progs().handle_dns_fentry);
        let mut k = linux_6_1();
        k.tramp.tcp_sendmsg = false;
        let p = planned(k, modes(ConnectErrors::Auto, DnsNames::Auto));
        assert_eq!(
            p.features.dns_tcp,
            DnsTcpHook::Off("no tcp_sendmsg(sk, msg, size) in the kernel's BTF".into())
        );
    }

    #[test]
    fn refused_at_attach_is_said() {
        let c = fallback(
            refused_at_attach(&"Operation not permitted (os error 1)"),
            true,
        );
        assert_eq!(
            c.planned().describe(),
            "connect-errors via raw_syscalls (every syscall on this host pays; no \
             trampolines: the kernel refused to attach them: Operation not permitted (os \
             error 1); --connect-errors off turns it off)"
        );
    }
}

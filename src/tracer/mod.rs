//! The BPF side from user space: open the skeleton, set filters, load,
//! attach, and consume the ring buffer.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, MapCore, MapFlags, OpenObject, PrintLevel, RingBuffer, RingBufferBuilder,
};

use crate::exit::{Fatal, Kind};
use crate::tracer::filter::Prefix;

use crate::event::skel::{
    LpmKey, RawCgroupNames, RawDns, RawEvent, TcpstateSkel, TcpstateSkelBuilder,
};

mod features;
pub mod filter;
pub mod kept;
mod libbpf_log;
pub mod owner;
mod plan;
mod privileges;

pub use features::{
    ConnectErrors, ConnectHook, DnsHook, DnsNames, DnsTcpHook, Features, IcmpHook, RstHook,
};
pub use libbpf_log::libbpf_log;
pub use privileges::check_privileges;

use kept::{Handover, Kept};

use features::{drop_reasons, probe_features, programs_load};
use libbpf_log::{capture_libbpf, libbpf_reason, load_errno};
use plan::{Connect, Kernel, Modes, Plan, Progs};

/// What the ring buffer holds.
pub enum Record<'a> {
    Event(&'a RawEvent),
    CgroupNames(&'a RawCgroupNames),
    /// A DNS answer an application received.
    Dns(&'a RawDns),
    /// A record of neither size: cannot happen while both come from
    /// tcpstate.h, but counted if it does.
    Malformed,
}

const BTF_SYSFS: &str = "/sys/kernel/btf/vmlinux";
const TRACEPOINT: &str = "sock:inet_sock_set_state";

pub struct Config {
    pub dests: Vec<Prefix>,
    pub connect_errors: ConnectErrors,
    /// `--dns-names`: which DNS hooks may be attached.
    pub dns_names: DnsNames,
    /// `--dest` has names: the trie filters even while it holds nothing
    /// yet, and their addresses come and go (`add_dest`, `remove_dest`).
    pub follow_names: bool,
    pub ports: Vec<u16>,
    pub trace_all: bool,
    pub btf: Option<PathBuf>,
    pub ring_bytes: u32,
    /// While the loop is busy, wake it as the unread bytes cross each
    /// multiple of this; 0: never (its timer drains). See `submit` in the
    /// program.
    pub wakeup_bytes: u64,
}

/// What was loaded, for the start-up line and `--check`.
pub struct Loaded {
    pub btf_source: String,
    pub kernel: String,
    pub features: Features,
    /// The kernel's drop reasons by value, named (see `drop_reasons`).
    pub drop_reasons: Vec<(u32, String)>,
    /// Whether a previous process's kernel side was kept.
    pub handover: Handover,
}

pub struct Tracer<'obj> {
    skel: TcpstateSkel<'obj>,
    /// Keeps the programs attached.
    _links: Vec<libbpf_rs::Link>,
    /// `consumer_waiting` in the program's mmapped .bss.
    waiting: *const AtomicU32,
    pub info: Loaded,
}

/// One SYN_SENT socket found at start, with its holder if one was found
/// (see struct tcpstate_seed).
pub type Seed = crate::event::skel::RawSeed;

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl<'obj> Tracer<'obj> {
    /// Probes the kernel, plans which programs to take, then opens,
    /// configures, loads and attaches them. Errors are [`Fatal`] with the
    /// exit code that fits, or plain errors for the unexpected. `spare`
    /// holds a second open of the object, used only where the kernel
    /// refuses to load the trampolines (some refuse them at load, others
    /// at attach): it loads again without them. With `kept` (a previous
    /// process's, see [`kept`]) this load shares its ring buffer, counters
    /// and gate, and takes over from its programs without a gap.
    pub fn load(
        cfg: &Config,
        kept: Option<Kept>,
        handover: Handover,
        obj: &'obj mut MaybeUninit<OpenObject>,
        spare: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        libbpf_rs::set_print(Some((PrintLevel::Info, capture_libbpf)));
        check_privileges()?;
        let btf_source = btf_source(cfg)?;
        let modes = Modes {
            connect_errors: cfg.connect_errors,
            dns_names: cfg.dns_names,
        };
        let plan = plan::plan(&probe(cfg, modes), modes);
        // Unique to this load: the previous one's programs record until
        // the gate holds it.
        let generation = crate::output::clock::mono_now_ns() | 1;
        let (skel, plan) = load_planned(cfg, kept.as_ref(), generation, obj, spare, plan)?;
        fill_filters(&skel, cfg)?;
        let open_gate = || {
            skel.maps
                .gate
                .update(
                    &0u32.to_ne_bytes(),
                    &generation.to_ne_bytes(),
                    MapFlags::ANY,
                )
                .context("opening the gate")
        };
        // Alone, this load records from its first attach; taking over, only
        // once all of its programs are attached, in one write that silences
        // the previous ones (whose links then close).
        if kept.is_none() {
            open_gate()?;
        }
        let (links, features) = attach(&skel, &plan, modes)?;
        if features.reads_dns_tcp() {
            // TCP streams to port 53 are read (the fallback, or the TCP
            // trampolines): the core hook then records TCP connections
            // to port 53 too.
            let tcp = skel
                .maps
                .bss_data
                .as_deref()
                .map(|b| std::ptr::addr_of!(b.dns_tcp).cast::<AtomicU32>())
                .context("the BPF object's .bss is not mmapped")?;
            // SAFETY: as in `wake_on_next_record`: an aligned u32 of the
            // .bss map's mmapped memory, alive with `skel`.
            unsafe { &*tcp }.store(1, Ordering::Relaxed);
        }
        if kept.is_some() {
            open_gate()?;
        }
        drop(kept);

        let waiting = skel
            .maps
            .bss_data
            .as_deref()
            .map(|b| std::ptr::addr_of!(b.consumer_waiting).cast::<AtomicU32>())
            .context("the BPF object's .bss is not mmapped")?;
        Ok(Tracer {
            skel,
            _links: links,
            waiting,
            info: Loaded {
                btf_source,
                kernel: kernel_release(),
                features,
                drop_reasons: drop_reasons(Path::new(
                    cfg.btf.as_deref().unwrap_or(Path::new(BTF_SYSFS)),
                )),
                handover,
            },
        })
    }

    /// What a restart keeps (see [`kept`]), by name: the ring buffer,
    /// counters and gate, and the links that keep the programs recording.
    pub fn keep(&self) -> Vec<(&'static str, BorrowedFd<'_>)> {
        let m = &self.skel.maps;
        let mut fds = vec![
            ("events", m.events.as_fd()),
            ("counters", m.counters.as_fd()),
            ("gate", m.gate.as_fd()),
        ];
        fds.extend(self._links.iter().map(|l| ("link", l.as_fd())));
        fds
    }

    /// The TCP sockets in SYN_SENT right now, for watched destinations,
    /// each once: those a task holds (every network namespace) with their
    /// holder, then those only iter/tcp sees (tcpstate's own namespace,
    /// held by no file) without one. Empty where the kernel has neither.
    pub fn in_flight(&self) -> Result<Vec<Seed>> {
        let mut seeds = Vec::new();
        if self.info.features.in_flight_holders {
            seeds = run_iter(&self.skel.progs.seed_tasks, "iter/task_file")?;
        }
        if self.info.features.in_flight_unheld {
            seeds.extend(run_iter(&self.skel.progs.seed_pending, "iter/tcp")?);
        }
        // The first of each socket: a holder's before iter/tcp's, and of a
        // socket inherited over fork, the first process found holding it.
        let mut seen = std::collections::HashSet::with_capacity(seeds.len());
        seeds.retain(|s| seen.insert(s.skaddr));
        Ok(seeds)
    }

    /// Whether the next record should wake the consumer: set when the loop
    /// stops its drain timer, cleared by the program as it wakes it.
    pub fn wake_on_next_record(&self, on: bool) {
        // SAFETY: `waiting` points into the .bss map's mmapped memory,
        // which lives as long as the loaded object in `self.skel`; a u32 of
        // it, aligned, shared with BPF programs, so accessed atomically.
        let w = unsafe { &*self.waiting };
        // SeqCst: the loop's next look at the ring must not come before
        // the program can see the flag (else a record in between would
        // wait for the loop's slower timers).
        w.store(u32::from(on), Ordering::SeqCst);
    }

    /// Watches one more address (a followed name's).
    pub fn add_dest(&self, p: Prefix) -> Result<()> {
        let key = lpm_key(p);
        self.skel
            .maps
            .dests
            .update(key_bytes(&key), &[1], MapFlags::ANY)
            .with_context(|| format!("adding destination {p} to the filter"))
    }

    /// Stops watching an address a followed name no longer has.
    pub fn remove_dest(&self, p: Prefix) -> Result<()> {
        let key = lpm_key(p);
        self.skel
            .maps
            .dests
            .delete(key_bytes(&key))
            .with_context(|| format!("removing destination {p} from the filter"))
    }

    /// Ring-buffer reservations that failed (events lost in the kernel).
    pub fn ring_drops(&self) -> Result<u64> {
        self.counter(0)
    }

    /// DNS answers the program did not send because the ring was half full.
    pub fn dns_skipped(&self) -> Result<u64> {
        self.counter(1)
    }

    /// DNS over TCP the trampolines could not read (see
    /// TCPSTATE_CNT_DNS_TCP_UNREAD).
    pub fn dns_tcp_unread(&self) -> Result<u64> {
        self.counter(2)
    }

    /// A per-CPU counter of tcpstate.h's enum tcpstate_counter, summed.
    fn counter(&self, idx: u32) -> Result<u64> {
        let key = idx.to_ne_bytes();
        let per_cpu = self
            .skel
            .maps
            .counters
            .lookup_percpu(&key, MapFlags::ANY)
            .context("reading the BPF counters")?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .filter_map(|v| v.get(..8))
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
            .sum())
    }

    /// A consumer of the ring buffer that hands each record to `on_event`.
    /// Drain it with `consume_raw_n`; its `epoll_fd` turns readable when the
    /// program forces a wake-up.
    pub fn ring_buffer<'a>(
        &'a self,
        mut on_event: impl FnMut(Record<'_>) + 'a,
    ) -> Result<RingBuffer<'a>> {
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.skel.maps.events, move |data: &[u8]| {
                // Three record types share the ring; their sizes tell them apart.
                if data.len() == std::mem::size_of::<RawDns>() {
                    if let Ok(d) = plain::from_bytes::<RawDns>(data) {
                        on_event(Record::Dns(d));
                    }
                    return 0;
                }
                if data.len() == std::mem::size_of::<RawCgroupNames>() {
                    if let Ok(n) = plain::from_bytes::<RawCgroupNames>(data) {
                        on_event(Record::CgroupNames(n));
                    }
                    return 0;
                }
                match plain::from_bytes::<RawEvent>(data) {
                    Ok(e) => on_event(Record::Event(e)),
                    Err(_) => on_event(Record::Malformed),
                }
                0
            })
            .context("adding the ring buffer")?;
        builder.build().context("creating the ring-buffer consumer")
    }

    /// The synthetic-load program (bench only: built with the `synthetic`
    /// feature, which the package does not enable).
    #[cfg(feature = "synthetic")]
    pub fn synthetic_program(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.skel.progs.synth.as_fd()
    }
}

/// Where the BTF comes from: --btf, else the kernel's own.
fn btf_source(cfg: &Config) -> Result<String> {
    match &cfg.btf {
        Some(p) if !p.is_file() => {
            Err(Fatal::new(Kind::Usage, format!("--btf {}: no such file", p.display())).into())
        }
        Some(p) => Ok(p.display().to_string()),
        None if Path::new(BTF_SYSFS).exists() => Ok(BTF_SYSFS.to_string()),
        None => Err(Fatal::new(
            Kind::Kernel,
            format!(
                "kernel {} has no BTF at {BTF_SYSFS} (needs CONFIG_DEBUG_INFO_BTF, Linux 5.10+); \
                 pass --btf PATH with a BTF file for this kernel",
                kernel_release()
            ),
        )
        .into()),
    }
}

/// What this kernel has, from its BTF (hooks it lacks are not loaded: a
/// program whose attach point is missing would fail the whole object),
/// and whether it loads the one trampoline the plan would try first.
fn probe(cfg: &Config, modes: Modes) -> Kernel {
    let (features, tramp, sys_exit) = probe_features(Path::new(
        cfg.btf.as_deref().unwrap_or(Path::new(BTF_SYSFS)),
    ));
    let mut kernel = Kernel {
        features,
        tramp,
        sys_exit,
        tramp_refused: None,
        dns_tcp_refused: None,
    };
    let target = plan::probe_target(&kernel, modes);
    match (target, plan::dns_tcp_probe(&kernel, modes)) {
        // The DNS trampoline is the probe, and the DNS-over-TCP programs go
        // with it: one throwaway object (each is a full set of maps to make
        // and free), a second only if it fails, to tell whether trampolines
        // or only these were refused (then they alone are left out).
        (Some(t), Some([a, b, c])) => {
            if let Err(e) = programs_load(&cfg.btf, &[t, a, b, c]) {
                kernel.tramp_refused = programs_load(&cfg.btf, &[t]).err();
                if kernel.tramp_refused.is_none() {
                    kernel.dns_tcp_refused = Some(e);
                }
            }
        }
        _ => kernel.tramp_refused = target.and_then(|p| programs_load(&cfg.btf, &[p]).err()),
    }
    kernel
}

/// Loads the plan's programs into `obj`. A kernel may still refuse the
/// connect trampolines that the probe did not load: then once more
/// without them, into `spare`, and the plan that loaded.
fn load_planned<'obj>(
    cfg: &Config,
    kept: Option<&Kept>,
    generation: u64,
    obj: &'obj mut MaybeUninit<OpenObject>,
    spare: &'obj mut MaybeUninit<OpenObject>,
    plan: Plan,
) -> Result<(TcpstateSkel<'obj>, Plan)> {
    let load = Load { kept, generation };
    match open_and_load(cfg, &load, obj, &plan.progs()) {
        Ok(skel) => Ok((skel, plan)),
        Err(_) if plan.has_trampolines() => {
            let plan = plan.without_trampolines(&load_errno());
            Ok((open_and_load(cfg, &load, spare, &plan.progs())?, plan))
        }
        Err(e) => Err(e),
    }
}

/// The skeleton before load.
type OpenTcpstateSkel<'obj> = <TcpstateSkelBuilder as SkelBuilder<'obj>>::Output;

/// What one load shares with a previous process's, and its generation.
struct Load<'a> {
    kept: Option<&'a Kept>,
    generation: u64,
}

/// Opens the object into `obj`, sets its filters and sizes, picks the
/// programs `progs` names, and loads it.
fn open_and_load<'obj>(
    cfg: &Config,
    load: &Load<'_>,
    obj: &'obj mut MaybeUninit<OpenObject>,
    progs: &Progs,
) -> Result<TcpstateSkel<'obj>> {
    let mut builder = TcpstateSkelBuilder::default();
    if let Some(p) = &cfg.btf {
        builder
            .object_builder_mut()
            .btf_custom_path(p)
            .context("setting the BTF path")?;
    }
    let mut open = builder.open(obj).map_err(|e| {
        Fatal::new(
            Kind::Kernel,
            format!("opening the BPF object failed: {e}{}", libbpf_reason()),
        )
    })?;

    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("the BPF object has no rodata")?;
    rodata.filter_addrs = !cfg.dests.is_empty() || cfg.follow_names;
    rodata.filter_ports = !cfg.ports.is_empty();
    rodata.trace_all = cfg.trace_all;
    rodata.wakeup_bytes = cfg.wakeup_bytes;
    rodata.self_tgid = std::process::id();
    if let Some((dev, ino)) = own_pid_namespace() {
        rodata.self_pidns_dev = dev;
        rodata.self_pidns_ino = ino;
    }
    rodata.connect_errors = progs.exit_connect_file || progs.handle_sys_exit;
    rodata.rst_ttl_on = progs.enter_tcp_reset;
    rodata.dns_ring_limit = u64::from(cfg.ring_bytes / 2);
    rodata.generation = load.generation;
    set_autoload(&mut open, progs);
    open.maps
        .events
        .set_max_entries(cfg.ring_bytes)
        .context("sizing the ring buffer")?;
    if let Some(k) = load.kept {
        let m = &mut open.maps;
        m.events
            .reuse_fd(k.events.as_fd())
            .and_then(|()| m.counters.reuse_fd(k.counters.as_fd()))
            .and_then(|()| m.gate.reuse_fd(k.gate.as_fd()))
            .context("reusing the kept ring buffer, counters and gate")?;
    }

    open.load().map_err(|e| load_error(&e).into())
}

/// Takes the programs `progs` names, and only those beside the core.
fn set_autoload(open: &mut OpenTcpstateSkel<'_>, progs: &Progs) {
    let p = &mut open.progs;
    p.exit_connect_file.set_autoload(progs.exit_connect_file);
    p.enter_sock_getsockopt
        .set_autoload(progs.enter_sock_getsockopt);
    p.enter_sk_getsockopt
        .set_autoload(progs.enter_sk_getsockopt);
    p.handle_sys_exit.set_autoload(progs.handle_sys_exit);
    p.handle_drop.set_autoload(progs.handle_drop);
    p.handle_retransmit.set_autoload(progs.handle_retransmit);
    p.seed_pending.set_autoload(progs.seed_pending);
    p.seed_tasks.set_autoload(progs.seed_tasks);
    p.handle_dns_fentry.set_autoload(progs.handle_dns_fentry);
    p.handle_dns_query4.set_autoload(progs.handle_dns_fentry);
    p.handle_dns_query6.set_autoload(progs.handle_dns_fentry);
    p.handle_dns_sys_exit
        .set_autoload(progs.handle_dns_sys_exit);
    p.enter_ip_icmp_error
        .set_autoload(progs.enter_ip_icmp_error);
    p.enter_ipv6_icmp_error
        .set_autoload(progs.enter_ipv6_icmp_error);
    p.enter_tcp_reset.set_autoload(progs.enter_tcp_reset);
    p.handle_dns_tcp_send
        .set_autoload(progs.handle_dns_tcp_send);
    p.enter_dns_tcp_recv.set_autoload(progs.enter_dns_tcp_recv);
    p.exit_dns_tcp_recv.set_autoload(progs.exit_dns_tcp_recv);
    p.exit_dns_tcp_recv_nonblock
        .set_autoload(progs.exit_dns_tcp_recv_nonblock);
}

/// The error for an object the kernel would not load.
fn load_error(e: &libbpf_rs::Error) -> Fatal {
    let why = libbpf_reason();
    match e.kind() {
        ErrorKind::PermissionDenied => Fatal::new(
            Kind::Privilege,
            format!(
                "the kernel refused to load the BPF program: permission denied \
                 (missing CAP_BPF/CAP_PERFMON, or kernel lockdown){why}"
            ),
        ),
        _ => Fatal::new(
            Kind::Kernel,
            format!(
                "the kernel rejected the BPF program: {e}{why}; \
                 tcpstate needs Linux 5.10+ with BTF and the {TRACEPOINT} tracepoint"
            ),
        ),
    }
}

/// Attaches the core tracepoint (fatal if it will not), then what the plan
/// says: the other hooks are extras, and one that will not attach is off.
/// Returns the links and what attached.
fn attach(
    skel: &TcpstateSkel<'_>,
    plan: &Plan,
    modes: Modes,
) -> Result<(Vec<libbpf_rs::Link>, Features)> {
    let core = skel.progs.handle_set_state.attach().map_err(|e| {
        Fatal::new(
            Kind::Kernel,
            format!(
                "attaching to tracepoint {TRACEPOINT} failed: {e}{}",
                libbpf_reason()
            ),
        )
    })?;
    let mut links = vec![core];
    let mut features = plan.features.clone();
    let mut extra = |on: &mut bool, prog: &libbpf_rs::ProgramMut<'_>| {
        if *on {
            match prog.attach() {
                Ok(l) => links.push(l),
                Err(_) => *on = false,
            }
        }
    };
    extra(&mut features.netfilter_drops, &skel.progs.handle_drop);
    extra(&mut features.retransmits, &skel.progs.handle_retransmit);
    features.connect_errors = attach_connect(skel, &plan.connect, &mut links);
    plan::require(modes, &features.connect_errors)?;
    (features.dns, features.dns_tcp) = attach_dns(plan, skel, &mut links);
    features.icmp_sender = attach_icmp(&plan.features.icmp_sender, skel, &mut links);
    features.rst_ttl = attach_rst(&plan.features.rst_ttl, skel, &mut links);
    Ok((links, features))
}

/// The RST's TTL trampoline, as planned; off, with the kernel's word, if it
/// will not attach. Loaded but unattached, it only leaves the state hook
/// an empty slot to look at: nothing wrong is said.
fn attach_rst(
    planned: &RstHook,
    skel: &TcpstateSkel<'_>,
    links: &mut Vec<libbpf_rs::Link>,
) -> RstHook {
    if *planned != RstHook::Fentry {
        return planned.clone();
    }
    match skel.progs.enter_tcp_reset.attach() {
        Ok(l) => {
            links.push(l);
            RstHook::Fentry
        }
        Err(e) => RstHook::Off(format!("no trampolines: {}", plan::refused_at_attach(&e))),
    }
}

/// The ICMP sender's trampolines, as planned: IPv4's, and IPv6's where the
/// kernel has it; off, with the kernel's word, if one will not attach.
fn attach_icmp(
    planned: &IcmpHook,
    skel: &TcpstateSkel<'_>,
    links: &mut Vec<libbpf_rs::Link>,
) -> IcmpHook {
    let IcmpHook::Fentry { v6 } = *planned else {
        return planned.clone();
    };
    let p = &skel.progs;
    let attached = p.enter_ip_icmp_error.attach().and_then(|l4| {
        let l6 = if v6 {
            Some(p.enter_ipv6_icmp_error.attach()?)
        } else {
            None
        };
        Ok((l4, l6))
    });
    match attached {
        Ok((l4, l6)) => {
            links.push(l4);
            links.extend(l6);
            IcmpHook::Fentry { v6 }
        }
        Err(e) => IcmpHook::Off(format!("no trampolines: {}", plan::refused_at_attach(&e))),
    }
}

/// The connect()/getsockopt() hook the plan names: trampolines where they
/// attach, else the raw_syscalls fallback, else off; says which, and why.
fn attach_connect(
    skel: &TcpstateSkel<'_>,
    connect: &Connect,
    links: &mut Vec<libbpf_rs::Link>,
) -> ConnectHook {
    let Connect::Trampolines {
        sock_getsockopt,
        fallback,
    } = *connect
    else {
        return attach_fallback(skel, connect, links);
    };
    let getsockopt = if sock_getsockopt {
        &skel.progs.enter_sock_getsockopt
    } else {
        &skel.progs.enter_sk_getsockopt
    };
    // Both or neither: one alone would still need the fallback, which
    // costs the host the same.
    match skel
        .progs
        .exit_connect_file
        .attach()
        .and_then(|c| getsockopt.attach().map(|g| [c, g]))
    {
        Ok(pair) => {
            links.extend(pair);
            ConnectHook::Trampolines
        }
        Err(e) => {
            let next = plan::fallback(plan::refused_at_attach(&e), fallback);
            attach_fallback(skel, &next, links)
        }
    }
}

/// raw_syscalls sys_exit, because the trampolines are not there (why), or
/// off as planned.
fn attach_fallback(
    skel: &TcpstateSkel<'_>,
    connect: &Connect,
    links: &mut Vec<libbpf_rs::Link>,
) -> ConnectHook {
    let Connect::RawSyscalls(why) = connect else {
        return connect.planned();
    };
    match skel.progs.handle_sys_exit.attach() {
        Ok(l) => {
            links.push(l);
            ConnectHook::RawSyscalls(why.clone())
        }
        Err(e) => ConnectHook::Off(format!("{why}; raw_syscalls refused too: {e}")),
    }
}

/// The DNS trampolines, else the tracepoint where it is loaded (this
/// kernel may refuse trampolines at attach: EPERM under some lockdown and
/// hardening), else off; with the trampolines, DNS over TCP's as planned.
fn attach_dns(
    plan: &Plan,
    skel: &TcpstateSkel<'_>,
    links: &mut Vec<libbpf_rs::Link>,
) -> (DnsHook, DnsTcpHook) {
    let tcp_off = || DnsTcpHook::Off("no DNS trampolines".into());
    if plan.dns == DnsHook::Trampoline {
        // All three or none: answers count only with their queries.
        let p = &skel.progs;
        let tramps = [
            &p.handle_dns_fentry,
            &p.handle_dns_query4,
            &p.handle_dns_query6,
        ];
        if let Ok(ls) = tramps
            .iter()
            .map(|p| p.attach())
            .collect::<Result<Vec<_>, _>>()
        {
            links.extend(ls);
            return (DnsHook::Trampoline, attach_dns_tcp(plan, skel, links));
        }
    }
    if plan.progs().handle_dns_sys_exit {
        if let Ok(l) = skel.progs.handle_dns_sys_exit.attach() {
            links.push(l);
            return (DnsHook::Tracepoint, tcp_off());
        }
    }
    (DnsHook::Off, tcp_off())
}

/// DNS over TCP's trampolines, as planned: all three or none (a receive's
/// fexit needs its fentry; queries without answers teach nothing); off,
/// with the kernel's word, if one will not attach.
fn attach_dns_tcp(
    plan: &Plan,
    skel: &TcpstateSkel<'_>,
    links: &mut Vec<libbpf_rs::Link>,
) -> DnsTcpHook {
    let DnsTcpHook::Fentry { nonblock } = plan.features.dns_tcp else {
        return plan.features.dns_tcp.clone();
    };
    let p = &skel.progs;
    let exit = if nonblock {
        &p.exit_dns_tcp_recv_nonblock
    } else {
        &p.exit_dns_tcp_recv
    };
    match [&p.handle_dns_tcp_send, &p.enter_dns_tcp_recv, exit]
        .iter()
        .map(|p| p.attach())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(ls) => {
            links.extend(ls);
            DnsTcpHook::Fentry { nonblock }
        }
        Err(e) => DnsTcpHook::Off(format!("no trampolines: {}", plan::refused_at_attach(&e))),
    }
}

/// Runs an iterator program once and reads its records.
fn run_iter(prog: &libbpf_rs::ProgramMut<'_>, what: &str) -> Result<Vec<Seed>> {
    use std::io::Read;
    let link = prog
        .attach()
        .with_context(|| format!("attaching the {what} program"))?;
    let mut bytes = Vec::new();
    libbpf_rs::Iter::new(&link)
        .with_context(|| format!("creating the {what} iterator"))?
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the {what} iterator"))?;
    Ok(bytes
        .chunks_exact(std::mem::size_of::<Seed>())
        .filter_map(|c| plain::from_bytes::<Seed>(c).ok().copied())
        .collect())
}

fn fill_filters(skel: &TcpstateSkel<'_>, cfg: &Config) -> Result<()> {
    for p in &cfg.dests {
        skel.maps
            .dests
            .update(key_bytes(&lpm_key(*p)), &[1], MapFlags::ANY)
            .with_context(|| format!("adding destination {p} to the filter"))?;
    }
    for port in &cfg.ports {
        skel.maps
            .ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding port {port} to the filter"))?;
    }
    Ok(())
}

/// TCPSTATE_SYNTH_MAX_PAIRS in tcpstate.h (a #define does not reach the
/// skeleton): the most pairs one run emits.
#[cfg(feature = "synthetic")]
pub const SYNTH_MAX_PAIRS: u32 = 4096;

/// Runs the synthetic-load program once: `pairs` SYN_SENT/CLOSE pairs for
/// socket addresses from `base`. Callable from any thread.
#[cfg(feature = "synthetic")]
pub fn run_synthetic(prog: std::os::fd::BorrowedFd<'_>, base: u64, pairs: u32) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut args = crate::event::skel::SynthArgs {
        base,
        pairs: pairs.min(SYNTH_MAX_PAIRS),
        ..Default::default()
    };
    // SAFETY: SynthArgs is Plain (above).
    let ctx = unsafe { plain::as_mut_bytes(&mut args) };
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        ctx_in: ctx.as_ptr().cast(),
        ctx_size_in: ctx.len() as u32,
        ..Default::default()
    };
    // SAFETY: opts points at a live buffer of the size given; the fd is a
    // loaded BPF program kept open by the borrow.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if rc != 0 {
        anyhow::bail!(
            "running the synthetic program: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
    }
    Ok(())
}

// The ring's records are told apart by size (see `ring_buffer`).
const _: () = assert!(
    std::mem::size_of::<RawDns>() != std::mem::size_of::<RawEvent>()
        && std::mem::size_of::<RawDns>() != std::mem::size_of::<RawCgroupNames>()
        && std::mem::size_of::<RawEvent>() != std::mem::size_of::<RawCgroupNames>()
);

/// The destination trie's key for a prefix.
fn lpm_key(p: Prefix) -> LpmKey {
    let (prefixlen, addr) = p.lpm_key();
    LpmKey { prefixlen, addr }
}

fn key_bytes(key: &LpmKey) -> &[u8] {
    // SAFETY: LpmKey is Plain (fixed-width fields, no padding the kernel
    // reads); viewing it as bytes is sound.
    unsafe { plain::as_bytes(key) }
}

/// This process's pid namespace (st_dev, st_ino of /proc/self/ns/pid)
/// when it is not the initial one, whose tgids are not the kernel's. None
/// in the initial namespace, or where it cannot be read (then tcpstate's
/// own connects are known by the tgid alone, as in the initial one).
fn own_pid_namespace() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    /// PROC_PID_INIT_INO (include/linux/proc_ns.h).
    const INITIAL: u64 = 0xEFFF_FFFC;
    let m = std::fs::metadata("/proc/self/ns/pid").ok()?;
    (m.ino() != INITIAL).then_some((m.dev(), m.ino()))
}

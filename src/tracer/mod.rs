//! The BPF side from user space: open the skeleton, set filters, load,
//! attach, and consume the ring buffer.

use std::mem::MaybeUninit;
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
mod libbpf_log;
pub mod owner;
mod privileges;

pub use features::{ConnectErrors, ConnectHook, DnsHook, DnsNames, Features};
pub use libbpf_log::libbpf_log;
pub use privileges::check_privileges;

use features::{probe_features, trampoline_loads, Trampolines};
use libbpf_log::{capture_libbpf, libbpf_reason, load_errno};

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

/// The trampoline, else the tracepoint (this kernel may refuse
/// trampolines at attach: EPERM under some lockdown and hardening).
fn attach_dns(
    hook: DnsHook,
    mode: DnsNames,
    skel: &TcpstateSkel<'_>,
    links: &mut Vec<libbpf_rs::Link>,
) -> DnsHook {
    if hook == DnsHook::Trampoline {
        if let Ok(l) = skel.progs.handle_dns_fentry.attach() {
            links.push(l);
            return DnsHook::Trampoline;
        }
    }
    if hook != DnsHook::Off && mode == DnsNames::On && skel.progs.handle_dns_sys_exit.autoload() {
        if let Ok(l) = skel.progs.handle_dns_sys_exit.attach() {
            links.push(l);
            return DnsHook::Tracepoint;
        }
    }
    DnsHook::Off
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl<'obj> Tracer<'obj> {
    /// Opens, configures, loads and attaches. Errors are [`Fatal`] with the
    /// exit code that fits, or plain errors for the unexpected.
    /// Opens, configures, loads and attaches. Errors are [`Fatal`] with the
    /// exit code that fits, or plain errors for the unexpected. `spare`
    /// holds a second open of the object, used only where the kernel
    /// refuses to load the trampolines (some refuse them at load, others
    /// at attach): it loads again without them.
    pub fn load(
        cfg: &Config,
        obj: &'obj mut MaybeUninit<OpenObject>,
        spare: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        libbpf_rs::set_print(Some((PrintLevel::Info, capture_libbpf)));
        check_privileges()?;

        let btf_source = match &cfg.btf {
            Some(p) if !p.is_file() => {
                return Err(Fatal::new(
                    Kind::Usage,
                    format!("--btf {}: no such file", p.display()),
                )
                .into())
            }
            Some(p) => p.display().to_string(),
            None if Path::new(BTF_SYSFS).exists() => BTF_SYSFS.to_string(),
            None => {
                return Err(Fatal::new(
                    Kind::Kernel,
                    format!(
                        "kernel {} has no BTF at {BTF_SYSFS} (needs CONFIG_DEBUG_INFO_BTF, Linux 5.8+); \
                         pass --btf PATH with a BTF file for this kernel",
                        kernel_release()
                    ),
                )
                .into())
            }
        };

        // Hooks the kernel lacks are not loaded: a program whose attach
        // point is missing would fail the whole object.
        let (mut features, tramp, sys_exit) = probe_features(Path::new(
            cfg.btf.as_deref().unwrap_or(Path::new(BTF_SYSFS)),
        ));
        features.dns_wanted = cfg.dns_names;
        // The fallback only when asked for (--dns-names on).
        if cfg.dns_names == DnsNames::Off
            || (features.dns == DnsHook::Tracepoint && cfg.dns_names != DnsNames::On)
        {
            features.dns = DnsHook::Off;
        }
        // A kernel that refuses trampolines may say so at load, which
        // would fail the whole object: one is tried alone first.
        let want = cfg.connect_errors != ConnectErrors::Off;
        let probe = if features.dns == DnsHook::Trampoline {
            Some("handle_dns_fentry")
        } else {
            (want && tramp.complete()).then_some("exit_connect_file")
        };
        let mut refused = probe
            .and_then(|p| trampoline_loads(&cfg.btf, p).err())
            .map(|errno| format!("the kernel refused to load them ({errno})"));
        if refused.is_some() && features.dns == DnsHook::Trampoline {
            features.dns = if sys_exit && cfg.dns_names == DnsNames::On {
                DnsHook::Tracepoint
            } else {
                DnsHook::Off
            };
        }
        let hooks = Hooks {
            tramp: want && tramp.complete() && refused.is_none(),
            sock_getsockopt: tramp.sock_getsockopt,
            sys_exit: want && sys_exit,
            features: &features,
        };
        // A kernel may still refuse the connect trampolines that the probe
        // did not load: then once more without them, into `spare`.
        let skel = match open_and_load(cfg, obj, &hooks) {
            Ok(skel) => skel,
            Err(_) if hooks.tramp => {
                refused = Some(format!(
                    "the kernel refused to load them ({})",
                    load_errno()
                ));
                let hooks = Hooks {
                    tramp: false,
                    ..hooks
                };
                open_and_load(cfg, spare, &hooks)?
            }
            Err(e) => return Err(e),
        };

        fill_filters(&skel, cfg)?;

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
        // The other hooks are extras: one that will not attach is off.
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
        features.connect_errors = match refused {
            _ if !want => ConnectHook::Off("--connect-errors off".into()),
            Some(why) => attach_fallback(&skel, why, sys_exit, &mut links),
            None => attach_connect_hook(&skel, tramp, sys_exit, &mut links),
        };
        if cfg.connect_errors == ConnectErrors::On && !features.connect_errors.on() {
            return Err(Fatal::new(
                Kind::Kernel,
                format!(
                    "--connect-errors on: {}",
                    features.connect_errors.describe()
                ),
            )
            .into());
        }
        features.dns = attach_dns(features.dns, cfg.dns_names, &skel, &mut links);

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
            },
        })
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
        let (prefixlen, addr) = p.lpm_key();
        let key = LpmKey { prefixlen, addr };
        // SAFETY: LpmKey is Plain; viewing it as bytes is sound.
        let bytes = unsafe { plain::as_bytes(&key) };
        self.skel
            .maps
            .dests
            .update(bytes, &[1], MapFlags::ANY)
            .with_context(|| format!("adding destination {p} to the filter"))
    }

    /// Stops watching an address a followed name no longer has.
    pub fn remove_dest(&self, p: Prefix) -> Result<()> {
        let (prefixlen, addr) = p.lpm_key();
        let key = LpmKey { prefixlen, addr };
        // SAFETY: as in add_dest.
        let bytes = unsafe { plain::as_bytes(&key) };
        self.skel
            .maps
            .dests
            .delete(bytes)
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

/// Which programs one load takes.
struct Hooks<'a> {
    tramp: bool,
    sock_getsockopt: bool,
    sys_exit: bool,
    features: &'a Features,
}

/// Opens the object into `obj`, sets its filters and sizes, picks the
/// programs `hooks` names, and loads it.
fn open_and_load<'obj>(
    cfg: &Config,
    obj: &'obj mut MaybeUninit<OpenObject>,
    hooks: &Hooks<'_>,
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
    rodata.connect_errors = hooks.tramp || hooks.sys_exit;
    open.progs.exit_connect_file.set_autoload(hooks.tramp);
    // One SOL_SOCKET getsockopt: sock_getsockopt where it is (it calls
    // sk_getsockopt where both are).
    open.progs
        .enter_sock_getsockopt
        .set_autoload(hooks.tramp && hooks.sock_getsockopt);
    open.progs
        .enter_sk_getsockopt
        .set_autoload(hooks.tramp && !hooks.sock_getsockopt);
    // Loaded beside the trampolines, attached only if they will not.
    open.progs.handle_sys_exit.set_autoload(hooks.sys_exit);
    let features = hooks.features;
    open.progs
        .handle_drop
        .set_autoload(features.netfilter_drops);
    open.progs
        .handle_retransmit
        .set_autoload(features.retransmits);
    open.progs
        .seed_pending
        .set_autoload(features.in_flight_unheld);
    open.progs
        .seed_tasks
        .set_autoload(features.in_flight_holders);
    rodata.dns_ring_limit = u64::from(cfg.ring_bytes / 2);
    open.progs
        .handle_dns_fentry
        .set_autoload(features.dns == DnsHook::Trampoline);
    open.progs
        .handle_dns_sys_exit
        .set_autoload(features.dns != DnsHook::Off && cfg.dns_names == DnsNames::On);
    open.maps
        .events
        .set_max_entries(cfg.ring_bytes)
        .context("sizing the ring buffer")?;

    open.load()
        .map_err(|e| {
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
                         tcpstate needs Linux 5.8+ with BTF and the {TRACEPOINT} tracepoint"
                    ),
                ),
            }
        })
        .map_err(Into::into)
}

/// The connect()/getsockopt() hook: trampolines where they attach, else
/// the raw_syscalls fallback, else off; says which, and why.
fn attach_connect_hook(
    skel: &TcpstateSkel<'_>,
    tramp: Trampolines,
    sys_exit: bool,
    links: &mut Vec<libbpf_rs::Link>,
) -> ConnectHook {
    let why = if tramp.complete() {
        let getsockopt = if tramp.sock_getsockopt {
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
                return ConnectHook::Trampolines;
            }
            Err(e) => format!("the kernel refused to attach them: {e}"),
        }
    } else if !tramp.connect {
        "no __sys_connect_file in the kernel's BTF".to_string()
    } else {
        "no sock_getsockopt or sk_getsockopt in the kernel's BTF".to_string()
    };
    attach_fallback(skel, why, sys_exit, links)
}

/// raw_syscalls sys_exit, because the trampolines are not there (why).
fn attach_fallback(
    skel: &TcpstateSkel<'_>,
    why: String,
    sys_exit: bool,
    links: &mut Vec<libbpf_rs::Link>,
) -> ConnectHook {
    if !sys_exit {
        return ConnectHook::Off(format!("{why}, and no raw_syscalls tracepoint"));
    }
    match skel.progs.handle_sys_exit.attach() {
        Ok(l) => {
            links.push(l);
            ConnectHook::RawSyscalls(why)
        }
        Err(e) => ConnectHook::Off(format!("{why}; raw_syscalls refused too: {e}")),
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
        let (prefixlen, addr) = p.lpm_key();
        let key = LpmKey { prefixlen, addr };
        // SAFETY: LpmKey is Plain (above); viewing it as bytes is sound.
        let bytes = unsafe { plain::as_bytes(&key) };
        skel.maps
            .dests
            .update(bytes, &[1], MapFlags::ANY)
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

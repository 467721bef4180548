//! Wiring: one tokio event loop on one thread. It loads the BPF program,
//! starts the sinks, then waits for whichever comes first: a signal, the
//! ring buffer's wake-up, the 10 ms drain timer (only while records come)
//! or the 1 s housekeeping timer. Every drain runs the whole per-event path (`Engine`) on the
//! records in the ring and ships the result: lines to the stdout thread,
//! alerts to the sink tasks. Nothing on this path waits for a sink.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::RingBuffer;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{interval, Instant, MissedTickBehavior};

use crate::alert::dns_fleet::DnsFleet;
use crate::alert::resolve::Resolver;
use crate::cli::Cli;
use crate::daemon::notify::{listen_fds, notify, notify_with_fds, stash, unstash};
use crate::daemon::signals::Signals;
use crate::dns::watch::Watch;
use crate::event::Family;
use crate::log::Log;
use crate::metrics::stats::Stats;
use crate::metrics::{self, Metrics, Shared};
use crate::output::clock::{mono_now_ns, Clock};
use crate::output::stdout::{Lines, StdoutSink};
use crate::output::{Format, Printer};
use crate::pipeline::correlate::Found;
use crate::pipeline::engine::{self, Engine, NoAttribution, Out};
use crate::sinks::Sinks;
use crate::tracer::kept::Handover;
use crate::tracer::{self, Tracer};

mod config;
mod housekeeping;
mod lines;
pub mod losses;
mod names;
pub mod notify;
pub mod signals;

use config::{bpf_config, dns_config, resolve_config, sinks_config, MAX_ALERT_DESTS};
use housekeeping::Housekeeping;
use lines::{check_line, started_line, stop_line};
use names::Names;

/// Attempts pending longer than this are evicted. A kernel gives up on a
/// SYN after about 127 s with the default tcp_syn_retries=6.
const MAX_PENDING_AGE: Duration = Duration::from_secs(300);
/// How often the busy loop drains by itself: the program skips wake-ups
/// (see `tracer::Config::wakeup_bytes`), so this bounds the latency under load.
const POLL: Duration = Duration::from_millis(10);
/// Records per ring-buffer call within a drain.
const BATCH: usize = 4096;
/// Open alert windows one source (cgroup and uid) may hold before its
/// further destinations fold into one summary: a fair share of the table.
const ALERT_SHARE: usize = 64;
/// How often attempts are checked against --slow-after.
const SLOW_CHECK: Duration = Duration::from_millis(250);
/// From SIGTERM to exit, whatever the sinks do (the unit allows 15 s).
const STOP_WITHIN: Duration = Duration::from_millis(4500);

pub fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let r = rt.block_on(run_async(cli));
    // The sinks had their time: a POST still blocked in ureq on the
    // blocking pool must not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    r
}

/// The ring buffer's epoll fd, for tokio's reactor: readable when the
/// program forces a wake-up.
fn ring_buffer_fd(rb: &RingBuffer<'_>) -> Result<AsyncFd<OwnedFd>> {
    // SAFETY: libbpf keeps the epoll fd open while `rb` lives; it is only
    // borrowed here, to be duplicated into a descriptor of our own.
    let borrowed = unsafe { BorrowedFd::borrow_raw(rb.epoll_fd()) };
    let own = borrowed
        .try_clone_to_owned()
        .context("duplicating the ring buffer's epoll fd")?;
    // SAFETY: `own` is an open descriptor that the AsyncFd owns: it stays
    // open, and the same, for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(own, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("registering the ring buffer's epoll fd")
}

async fn run_async(cli: Cli) -> Result<()> {
    let mut signals = Signals::install().context("installing the signal handlers")?;
    // Before anything starts: without privileges nothing else matters.
    tracer::check_privileges()?;
    let (mut obj, mut spare) = (MaybeUninit::uninit(), MaybeUninit::uninit());
    let (tracer, replace) = load(&cli, &mut obj, &mut spare)?;
    if cli.check {
        println!("{}", check_line(&cli, &tracer));
        return Ok(());
    }
    let (daemon, pass, attribution, mut names) = start_up(&cli, &tracer).await?;
    let pass = RefCell::new(pass);

    // The engine takes each record where the ring holds it: no copy. The
    // callback runs inside `drain`, which holds no borrow of `pass` then.
    let rb = tracer.ring_buffer(|rec| {
        let p = &mut *pass.borrow_mut();
        match rec {
            tracer::Record::Event(raw) => p.engine.event(raw, p.now, &mut p.out),
            tracer::Record::CgroupNames(n) => p.engine.cgroup_names(n),
            tracer::Record::Dns(d) => p.engine.dns_answer(d, &mut p.out),
            tracer::Record::Malformed => p.engine.malformed(),
        }
    })?;
    let rb_fd = ring_buffer_fd(&rb)?;

    // The attempts already under way: after the tracepoint is attached, so
    // none falls between the two (one seen by both is the same attempt).
    let seeded = seed_in_flight(&tracer, &mut pass.borrow_mut().engine, &daemon.log);
    keep(&tracer, replace, cli.ring_buffer_size, &daemon.log);
    announce(
        &cli,
        &tracer,
        seeded,
        &attribution,
        &names.watch,
        &daemon.log,
    );

    let ring = Ring {
        tracer: &tracer,
        rb: &rb,
        fd: &rb_fd,
        pass: &pass,
    };
    let (ended, ring_drops) = event_loop(&cli, &mut signals, &ring, &daemon, &mut names).await;
    for n in names.unresolved() {
        daemon.log.warn(format_args!(
            "--dest {n} did not resolve: it was not watched"
        ));
    }
    stop(rb, &pass, &tracer, ended, ring_drops, daemon).await
}

/// The fd store's name for the kernel side (see `keep`).
const STORED: &str = "tcpstate-kernel";

/// Loads and attaches the BPF program, taking over from the kernel side a
/// previous process left in systemd's fd store where it can; libbpf's log
/// on failure with -v. Also whether the store holds one from before.
fn load<'obj>(
    cli: &Cli,
    obj: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
    spare: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<(Tracer<'obj>, bool)> {
    // A --check leaves a running daemon's kernel side alone.
    let stored = if cli.check {
        None
    } else {
        listen_fds().into_iter().find(|(n, _)| n == STORED)
    };
    let (fds, unreadable) = match stored.as_ref().map(|(_, fd)| unstash(fd)) {
        None => (Vec::new(), None),
        Some(Ok(fds)) => (fds, None),
        Some(Err(e)) => (Vec::new(), Some(e)),
    };
    let (kept, handover) = match unreadable {
        Some(e) => (
            None,
            Handover::Rebuilt(format!("kernel side could not be read ({e})")),
        ),
        None => tracer::kept::sort(fds, cli.ring_buffer_size),
    };
    let t = Tracer::load(&bpf_config(cli), kept, handover, obj, spare).inspect_err(|_| {
        if cli.verbose {
            for line in tracer::libbpf_log() {
                eprintln!("libbpf: {line}");
            }
        }
    })?;
    Ok((t, stored.is_some()))
}

/// Under systemd, hands the kernel side to its fd store (in place of what
/// the previous process stored), so that a restart keeps it recording and
/// the next process reads on (see `tracer::kept`). Nothing outside systemd.
fn keep(tracer: &Tracer<'_>, replace: bool, ring_bytes: u32, log: &Log) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let prefix = tracer::kept::store_prefix(ring_bytes);
    let (names, fds): (Vec<_>, Vec<_>) = tracer
        .keep()
        .into_iter()
        .map(|(n, fd)| (format!("{prefix}{n}"), fd))
        .unzip();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let r = stash(&names, &fds).and_then(|rx| {
        if replace {
            notify(&format!("FDSTOREREMOVE=1\nFDNAME={STORED}"))?;
        }
        notify_with_fds(&format!("FDSTORE=1\nFDNAME={STORED}"), &[rx.as_fd()])
    });
    if let Err(e) = r {
        log.warn(format_args!(
            "the kernel side will not outlive a restart (systemd's fd store refused it: {e})"
        ));
    }
}

/// What the loop feeds: the sinks, the stdout thread, /metrics, and the
/// lifecycle log.
struct Daemon {
    stats: Arc<Stats>,
    sinks: Sinks,
    log: Log,
    stdout: Option<StdoutSink>,
    metrics: Option<Arc<Shared>>,
}

/// Starts the sinks, the stdout thread and /metrics, and builds the engine
/// that feeds them; also says where units come from.
async fn start_up(cli: &Cli, tracer: &Tracer<'_>) -> Result<(Daemon, Pass, String, Names)> {
    let stats = Arc::new(Stats::default());
    // The loop's copy of the counts, for /metrics and OTLP's metrics.
    let shared = (cli.metrics_addr.is_some() || cli.otlp.is_some()).then(Shared::new);
    let (sinks, log) = Sinks::start(sinks_config(cli, shared.as_ref()), stats.clone());
    let stdout = match cli.format {
        Format::None => None,
        _ => Some(StdoutSink::spawn(stats.clone()).context("starting the stdout thread")?),
    };
    let (attributor, mut attribution) = attributor();
    let mut engine = Engine::new(
        engine::Config {
            printer: Printer::new(cli.format, Clock::system().context("reading the clocks")?),
            verbose: cli.verbose,
            max_pending: cli.max_pending as usize,
            max_pending_age_ns: MAX_PENDING_AGE.as_nanos() as u64,
            alert_window_ns: sinks.any().then_some(cli.alert_window.as_nanos() as u64),
            max_alert_dests: MAX_ALERT_DESTS,
            alert_share: ALERT_SHARE,
            slow_after_ns: (!cli.slow_after.is_zero()).then_some(cli.slow_after.as_nanos() as u64),
            recovery_window_ns: cli.recovery_window.as_nanos() as u64,
        },
        attributor,
    );
    // Fleet: /metrics, and firing/resolved per destination for
    // Alertmanager, Slack and syslog (see `metrics`, `alert::resolve`).
    let metrics = start_metrics(cli, shared, &mut engine, &stats).await?;
    if sinks.otlp() {
        engine.set_notices();
    }
    if sinks.any() || sinks.fleet() {
        engine.set_resolver(Resolver::new(resolve_config(cli, sinks.fleet())));
    }
    engine.set_drop_reasons(tracer.info.drop_reasons.clone());
    if tracer.info.features.dns != tracer::DnsHook::Off {
        // The syscall fallback reads DNS over TCP, and the trampolines
        // where the TCP ones attached too.
        let tcp = tracer.info.features.reads_dns_tcp();
        engine.set_dns(dns_config(tcp));
        engine.set_dns_failures(
            Box::new(crate::attribution::resolv_conf::ProcResolvConfs::new()),
            tcp,
        );
        // Where search lists come from, or that they do not (issue 32).
        attribution.push_str("; ");
        attribution.push_str(crate::attribution::resolv_conf::describe(
            crate::attribution::resolv_conf::others_readable(),
        ));
        if sinks.fleet() {
            engine.set_dns_fleet(DnsFleet::new(resolve_config(cli, true)));
        }
    }
    let names = Names::start(&cli.dest, tracer, &log).await;
    // Answers applications receive for these names add their addresses.
    engine.watch_names(&crate::tracer::filter::names(&cli.dest));
    let pass = Pass {
        engine,
        out: Out::default(),
        now: 0,
    };
    let daemon = Daemon {
        stats,
        sinks,
        log,
        stdout,
        metrics,
    };
    Ok((daemon, pass, attribution, names))
}

/// Tells systemd and the log that tracing runs, with the flags' warnings.
fn announce(
    cli: &Cli,
    tracer: &Tracer<'_>,
    seeded: usize,
    attribution: &str,
    watch: &Watch,
    log: &Log,
) {
    if let Err(e) = notify("READY=1") {
        log.error(format_args!("could not notify systemd of readiness: {e}"));
    }
    let named = if watch.is_empty() {
        String::new()
    } else {
        format!("; names {}", watch.describe())
    };
    log.info(format_args!(
        "{}{named}; {attribution}",
        started_line(cli, tracer, seeded)
    ));
    if let Some(w) = cli.webhook.as_ref().and_then(|u| u.insecure_warning()) {
        log.warn(w);
    }
    for w in &cli.warnings {
        log.warn(w);
    }
}

/// The program, its ring buffer (and the fd tokio waits on), and the
/// engine its callback feeds.
struct Ring<'a, 'r> {
    tracer: &'a Tracer<'a>,
    rb: &'a RingBuffer<'r>,
    fd: &'a AsyncFd<OwnedFd>,
    pass: &'a RefCell<Pass>,
}

/// Runs until a signal or an error: what ended it, and the ring drops last
/// read.
async fn event_loop(
    cli: &Cli,
    signals: &mut Signals,
    ring: &Ring<'_, '_>,
    d: &Daemon,
    names: &mut Names,
) -> (Result<&'static str>, u64) {
    let Ring {
        tracer,
        rb,
        fd: rb_fd,
        pass,
    } = *ring;
    let mut drain_timer = interval(POLL);
    drain_timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut second = interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut slow_timer = interval(SLOW_CHECK);
    slow_timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut house = Housekeeping::new(&d.log);
    // Idle: the last tick found the ring empty, so the drain timer is off
    // and the program wakes the loop with the next record (sub-millisecond
    // latency, no wake-ups while nothing fails). Busy: records come, the
    // timer drains every POLL, and the program wakes the loop only when a
    // burst crosses half the ring.
    let mut idle = false;
    // Whatever ends the loop, a signal or an error, the stop runs after.
    let ended: Result<&str> = loop {
        // While failures wait for their verdict, wake when the first
        // window ends: an outage pages on time; idle otherwise.
        let verdict_at = pass
            .borrow()
            .engine
            .next_verdict_ns()
            .map(|ns| Instant::now() + Duration::from_nanos(ns.saturating_sub(mono_now_ns())));
        tokio::select! {
            s = signals.recv() => break Ok(s),
            r = rb_fd.readable() => match r {
                Ok(mut g) => g.clear_ready(),
                Err(e) => break Err(e).context("waiting on the ring buffer"),
            },
            _ = drain_timer.tick(), if !idle => {}
            _ = second.tick() => {
                house.run(tracer, &mut pass.borrow_mut().engine, &d.stats, &d.log);
                names.tick(tracer, &d.log);
            }
            Some((name, r)) = names.res_rx.recv() => names.resolved(&name, r, tracer, &d.log),
            // The drain below runs the engine's verdict tick.
            _ = tokio::time::sleep_until(verdict_at.unwrap_or_else(Instant::now)), if verdict_at.is_some() => {}
            _ = slow_timer.tick(), if !cli.slow_after.is_zero() => {
                let p = &mut *pass.borrow_mut();
                p.engine.check_slow(mono_now_ns(), &mut p.out);
            }
        }
        match drain(rb, pass).and_then(|n| pace(n, &mut idle, ring)) {
            Ok(true) => drain_timer.reset(),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
        let p = &mut *pass.borrow_mut();
        names.follow(p.out.followed.drain(..), tracer, &d.log);
        ship(&mut p.out, d.stdout.as_ref(), &d.sinks);
        publish(
            d.metrics.as_deref(),
            &p.engine,
            house.ring_drops,
            house.kernel_dns,
        );
    };
    (ended, house.ring_drops)
}

/// Stopping: the last records, the engine's last alerts, the sinks given
/// their time and the stop line; everything bounded by STOP_WITHIN.
async fn stop(
    rb: RingBuffer<'_>,
    pass: &RefCell<Pass>,
    tracer: &Tracer<'_>,
    ended: Result<&str>,
    ring_drops_seen: u64,
    d: Daemon,
) -> Result<()> {
    let deadline = Instant::now() + STOP_WITHIN;
    let _ = notify("STOPPING=1");
    let drained = drain(&rb, pass).map(|_| ());
    drop(rb);
    {
        let p = &mut *pass.borrow_mut();
        p.engine.finish(mono_now_ns(), &mut p.out);
        ship(&mut p.out, d.stdout.as_ref(), &d.sinks);
    }
    let ring_drops = tracer.ring_drops().unwrap_or(ring_drops_seen);
    // Warnings since the last housekeeping, said before the stop line.
    for w in pass.borrow_mut().engine.take_warnings() {
        d.log.warn(w);
    }
    let Daemon {
        stats,
        mut sinks,
        log,
        stdout,
        metrics: _metrics,
    } = d;
    sinks.settle(deadline).await;
    if let Some(s) = stdout {
        s.finish(deadline.saturating_duration_since(Instant::now()) / 2);
    }
    let why = match &ended {
        Ok(signal) => format!("signal={signal}"),
        Err(e) => format!("error=\"{e:#}\""),
    };
    let (engine_stats, dns) = {
        let e = &pass.borrow().engine;
        let dns = e.dns_stats().map(|d| (d, kernel_dns(tracer)));
        (e.stats(), dns)
    };
    log.info(stop_line(&why, &engine_stats, ring_drops, &stats, dns));
    sinks.close(deadline).await;
    ended.and(drained)
}

/// Names callers by their cgroup v2 path where there is one; says where.
fn attributor() -> (Box<dyn engine::Attributor>, String) {
    match crate::attribution::cgroup::Cgroups::open() {
        Ok(c) => {
            let said = format!("units from {}", c.root().display());
            (Box::new(c), said)
        }
        Err(e) => (Box::new(NoAttribution), format!("no units ({e})")),
    }
}

/// Seeds the correlation with the attempts already in SYN_SENT; how many.
fn seed_in_flight(tracer: &Tracer<'_>, engine: &mut Engine, log: &Log) -> usize {
    let seeds = match tracer.in_flight() {
        Ok(s) => s,
        Err(e) => {
            log.warn(format_args!(
                "attempts in flight at start not looked for: {e:#}"
            ));
            return 0;
        }
    };
    let now = mono_now_ns();
    for s in &seeds {
        let family = if s.family == 2 {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        let addr = |raw: &[u8; 16]| match family {
            Family::Ipv4 => std::net::IpAddr::from([raw[0], raw[1], raw[2], raw[3]]),
            Family::Ipv6 => std::net::Ipv6Addr::from(*raw).to_canonical(),
        };
        let found = Found {
            skaddr: s.skaddr,
            family,
            saddr: addr(&s.saddr),
            daddr: addr(&s.daddr),
            dport: s.dport,
            uid: s.uid,
        };
        engine.seed(&found, crate::tracer::owner::owner(s), now);
    }
    seeds.len()
}

/// The engine and what it produced since the last ship, shared by the
/// loop and the ring-buffer callback (never at the same time).
struct Pass {
    engine: Engine,
    out: Out,
    /// The drain's monotonic time.
    now: u64,
}

/// After a drain of `n` records: goes idle when the ring is empty (the
/// program then wakes the loop with the next record) and busy when records
/// come again. True when the loop just went busy and its drain timer must
/// restart.
fn pace(n: usize, idle: &mut bool, ring: &Ring<'_, '_>) -> Result<bool> {
    if n > 0 && *idle {
        *idle = false;
        ring.tracer.wake_on_next_record(false);
        return Ok(true);
    }
    if n == 0 && !*idle {
        ring.tracer.wake_on_next_record(true);
        // A record the program committed before it could see the flag
        // would not wake the loop: look once more.
        match drain(ring.rb, ring.pass)? {
            0 => *idle = true,
            _ => ring.tracer.wake_on_next_record(false),
        }
    }
    Ok(false)
}

/// Takes everything the ring holds through the engine; how many records.
fn drain(rb: &RingBuffer<'_>, pass: &RefCell<Pass>) -> Result<usize> {
    pass.borrow_mut().now = mono_now_ns();
    let mut total = 0;
    // In bounded steps: ring_buffer__consume() alone would go on for as
    // long as records keep coming.
    loop {
        let n = rb.consume_raw_n(BATCH);
        if n < 0 {
            return Err(std::io::Error::from_raw_os_error(-n)).context("draining the ring buffer");
        }
        total += n as usize;
        if (n as usize) < BATCH {
            break;
        }
    }
    let p = &mut *pass.borrow_mut();
    p.engine.after_batch(p.now, &mut p.out);
    Ok(total)
}

/// Hands a drain's lines and alerts on; never waits.
fn ship(out: &mut Out, stdout: Option<&StdoutSink>, sinks: &Sinks) {
    if out.line_count > 0 {
        if let Some(s) = stdout {
            s.push(Lines {
                buf: std::mem::replace(&mut out.lines, s.buffer()),
                count: out.line_count,
            });
        }
        out.lines.clear();
        out.line_count = 0;
    }
    for a in out.alerts.drain(..) {
        sinks.send(&a);
    }
    for a in out.fleet.drain(..) {
        sinks.send_fleet(&a);
    }
    for a in out.fleet_dns.drain(..) {
        sinks.send_fleet_dns(&a);
    }
    for n in out.notices.drain(..) {
        sinks.send_notice(n);
    }
}

/// Binds --metrics-addr and starts serving; the engine counts from now on
/// (also for OTLP alone: `shared` is there for either).
async fn start_metrics(
    cli: &Cli,
    shared: Option<Arc<Shared>>,
    engine: &mut Engine,
    stats: &Arc<Stats>,
) -> Result<Option<Arc<Shared>>> {
    let Some(shared) = shared else {
        return Ok(None);
    };
    engine.set_metrics(Metrics::new(cli.metrics_max_destinations as usize));
    let Some(addr) = cli.metrics_addr else {
        return Ok(Some(shared));
    };
    let listener = metrics::server::bind(addr).await.map_err(|e| {
        crate::exit::Fatal::new(
            crate::exit::Kind::Usage,
            format!("cannot serve metrics on --metrics-addr/$TCPSTATE_METRICS_ADDR {addr}: {e}"),
        )
    })?;
    metrics::server::spawn(listener, shared.clone(), stats.clone());
    Ok(Some(shared))
}

/// The kernel side's DNS counters, as they are now.
fn kernel_dns(tracer: &Tracer<'_>) -> lines::KernelDns {
    lines::KernelDns {
        skipped: tracer.dns_skipped().unwrap_or(0),
        tcp_unread: tracer.dns_tcp_unread().unwrap_or(0),
    }
}

/// A scrape is waiting: hand it a copy of the counts (else an atomic load).
fn publish(shared: Option<&Shared>, engine: &Engine, ring_drops: u64, kernel: lines::KernelDns) {
    let (Some(shared), Some(m)) = (shared, engine.metrics()) else {
        return;
    };
    shared.publish_if_wanted(m, || -> metrics::Totals {
        lines::totals(&engine.stats(), ring_drops, engine.dns_stats(), kernel)
    });
}

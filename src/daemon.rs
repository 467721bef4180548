//! Wiring: a thread owns the BPF skeleton and the hot path (decode,
//! correlate, print); the tokio runtime waits for signals and, later,
//! drives the alert sinks. The two meet through channels only, so a slow
//! sink can never stall the ring buffer.

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::bpf::{self, Loaded, Tracer};
use crate::cli::Cli;
use crate::correlate::{Correlator, Counters, Outcome};
use crate::event::StateChange;
use crate::notify::notify;
use crate::output::{Clock, Printer};

/// Attempts pending longer than this are evicted. A kernel gives up on a
/// SYN after about 127 s with the default tcp_syn_retries=6.
const MAX_PENDING_AGE: Duration = Duration::from_secs(300);
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often the consumer wakes by itself, bounding latency when the
/// kernel skips wake-ups.
const POLL: Duration = Duration::from_millis(10);
/// How often kernel-side drops are checked and reported while running.
const DROP_CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub events: u64,
    pub correlate: Counters,
    pub ring_drops: u64,
    pub output_errors: u64,
    /// Attempts still pending at exit.
    pub pending: usize,
}

enum FromTracer {
    Ready(Loaded),
    Done(Result<Summary>),
}

pub fn run(cli: Cli) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run_async(cli))
}

fn watching(cli: &Cli) -> String {
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "all".to_string()
        } else {
            v.join(",")
        }
    };
    format!(
        "destinations {} ports {}",
        list(cli.dest.iter().map(|p| p.to_string()).collect()),
        list(cli.port.iter().map(|p| p.to_string()).collect()),
    )
}

async fn run_async(cli: Cli) -> Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = bpf::Config {
        dests: cli.dest.clone(),
        ports: cli.port.clone(),
        trace_all: cli.verbose,
        btf: cli.btf.clone(),
        ring_bytes: cli.ring_buffer_size,
        wakeup_bytes: 0,
    };
    let hot = HotPath {
        printer: Printer::new(cli.format, Clock::system().context("reading the clocks")?),
        verbose: cli.verbose,
        correlator: Correlator::new(cli.max_pending as usize, MAX_PENDING_AGE.as_nanos() as u64),
    };
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("tcpstate-bpf".into())
        .spawn(move || {
            let r = tracer_thread(&cfg, hot, &thread_stop, &tx);
            let _ = tx.send(FromTracer::Done(r));
        })
        .context("starting the tracer thread")?;

    let loaded = match rx.recv().await {
        Some(FromTracer::Ready(l)) => l,
        Some(FromTracer::Done(Err(e))) => {
            let _ = thread.join();
            if cli.verbose {
                for line in bpf::libbpf_log() {
                    eprintln!("libbpf: {line}");
                }
            }
            return Err(e);
        }
        _ => anyhow::bail!("the tracer thread ended before attaching"),
    };

    if cli.check {
        stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
        println!(
            "tcpstate {}: ok: kernel {}, BTF from {}, tp_btf/inet_sock_set_state loaded and attached, \
             ring buffer {} KiB, {}; detached",
            env!("CARGO_PKG_VERSION"),
            loaded.kernel,
            loaded.btf_source,
            cli.ring_buffer_size / 1024,
            watching(&cli)
        );
        return Ok(());
    }

    if let Err(e) = notify("READY=1") {
        eprintln!("tcpstate: could not notify systemd of readiness: {e}");
    }
    eprintln!(
        "tcpstate {}: attached to sock:inet_sock_set_state on kernel {} (BTF {}); watching {}",
        env!("CARGO_PKG_VERSION"),
        loaded.kernel,
        loaded.btf_source,
        watching(&cli)
    );

    let early = tokio::select! {
        _ = sigterm.recv() => None,
        _ = sigint.recv() => None,
        msg = rx.recv() => Some(msg),
    };
    let _ = notify("STOPPING=1");
    stop.store(true, Ordering::Relaxed);
    let unexpected = early.is_some();
    let done = match early {
        Some(msg) => msg,
        None => rx.recv().await,
    };
    let _ = thread.join();
    let summary = match done {
        Some(FromTracer::Done(r)) => r?,
        _ => anyhow::bail!("the tracer thread ended without a summary"),
    };
    let c = summary.correlate;
    eprintln!(
        "tcpstate: stopped: events={} attempts={} successes={} failures={} evicted={} \
         (age {} full {}) replaced={} unmatched={} pending={} ringbuf_drops={} output_errors={}",
        summary.events,
        c.attempts,
        c.successes,
        c.failures,
        c.evicted_age + c.evicted_full,
        c.evicted_age,
        c.evicted_full,
        c.replaced,
        c.unmatched,
        summary.pending,
        summary.ring_drops,
        summary.output_errors
    );
    if unexpected {
        anyhow::bail!("the tracer stopped unexpectedly");
    }
    Ok(())
}

/// State of the per-event path, owned by the tracer thread.
struct HotPath {
    printer: Printer,
    verbose: bool,
    correlator: Correlator,
}

fn mono_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn tracer_thread(
    cfg: &bpf::Config,
    mut hot: HotPath,
    stop: &AtomicBool,
    tx: &mpsc::UnboundedSender<FromTracer>,
) -> Result<Summary> {
    let mut obj = MaybeUninit::uninit();
    let tracer = Tracer::load(cfg, &mut obj)?;
    let _ = tx.send(FromTracer::Ready(Loaded {
        btf_source: tracer.info.btf_source.clone(),
        kernel: tracer.info.kernel.clone(),
    }));

    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut summary = Summary::default();
    // Both callbacks need the per-event state; only one runs at a time.
    let state = RefCell::new((&mut hot, &mut out, &mut summary));
    let mut last_sweep = mono_now_ns();
    let mut last_drop_check = last_sweep;
    let mut reported_drops = 0u64;

    let on_event = |raw: &bpf::RawEvent| {
        let (hot, out, s) = &mut *state.borrow_mut();
        s.events += 1;
        let Some(ev) = StateChange::from_raw(raw) else {
            return;
        };
        let mut written = Ok(());
        if hot.verbose {
            written = hot.printer.state_change(out, &ev);
        }
        if let Outcome::Failed(f) = hot.correlator.observe(&ev) {
            written = written.and(hot.printer.failure(out, &f));
        }
        if written.is_err() {
            s.output_errors += 1;
        }
    };
    let after_batch = |t: &Tracer<'_>| {
        let (hot, out, s) = &mut *state.borrow_mut();
        if out.flush().is_err() {
            s.output_errors += 1;
        }
        let now = mono_now_ns();
        if now - last_sweep >= SWEEP_EVERY.as_nanos() as u64 {
            last_sweep = now;
            hot.correlator.sweep(now);
        }
        if now - last_drop_check >= DROP_CHECK_EVERY.as_nanos() as u64 {
            last_drop_check = now;
            if let Ok(d) = t.ring_drops() {
                if d > reported_drops {
                    eprintln!(
                        "tcpstate: lost {} events: ring buffer full (total {d}); raise --ring-buffer-size",
                        d - reported_drops
                    );
                    reported_drops = d;
                }
            }
        }
    };
    tracer.consume(stop, POLL, on_event, after_batch)?;
    summary.ring_drops = tracer.ring_drops().unwrap_or(reported_drops);
    summary.correlate = hot.correlator.counters();
    summary.pending = hot.correlator.pending();
    Ok(summary)
}

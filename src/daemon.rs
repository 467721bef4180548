//! Wiring: a thread owns the BPF skeleton and the hot path (decode,
//! correlate, print); the tokio runtime waits for signals and, later,
//! drives the alert sinks. The two meet through channels only, so a slow
//! sink can never stall the ring buffer.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::alert::{self, slack, AlertStats, Alerts, Log};
use crate::bpf::{self, Loaded, Tracer};
use crate::cli::Cli;
use crate::correlate::{Correlator, Counters, Outcome};
use crate::event::Failure;
use crate::event::StateChange;
use crate::notify::notify;
use crate::output::{mono_now_ns, Batch, Clock, Printer};

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
    /// Failed writes to stdout, each losing one drain's batch of lines.
    pub output_errors: u64,
    /// Failures not alerted because the alert queue was full.
    pub alert_drops: u64,
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

fn alerting(cli: &Cli) -> String {
    let mut sinks = Vec::new();
    if !cli.no_syslog {
        sinks.push(format!("syslog {}", cli.syslog_socket.display()));
    }
    if let Some(u) = &cli.webhook {
        sinks.push(format!("slack {}", u.redacted()));
    }
    if sinks.is_empty() {
        return "alerts off".into();
    }
    format!(
        "alerts to {} (window {})",
        sinks.join(", "),
        humantime::format_duration(cli.alert_window)
    )
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

async fn run_async(cli: Cli) -> Result<()> {
    let (sig_tx, mut signals) = mpsc::unbounded_channel();
    crate::signals::spawn_waiter(move |s| {
        let _ = sig_tx.send(s);
    })
    .context("starting the signal thread")?;

    // Before anything starts: without privileges nothing else matters.
    bpf::check_privileges()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let synthetic = cli.synthetic_rate.is_some();
    let cfg = bpf::Config {
        // Under synthetic load, keep real traffic out of the count: a
        // broadcast /32 is never a TCP destination.
        dests: if synthetic {
            vec!["255.255.255.255/32".parse().expect("a valid prefix")]
        } else {
            cli.dest.clone()
        },
        ports: cli.port.clone(),
        trace_all: cli.verbose,
        btf: cli.btf.clone(),
        ring_bytes: cli.ring_buffer_size,
        // Wake the consumer only once a quarter of the ring is unread; the
        // 10 ms poll drains the rest. A wake-up per event costs the
        // connecting process more than everything else tcpstate does.
        wakeup_bytes: u64::from(cli.ring_buffer_size / 4),
        synthetic,
    };
    // Alerts start before the tracer, so its first failure has somewhere to go.
    let alerts_on = !cli.check && !synthetic && (!cli.no_syslog || cli.webhook.is_some());
    let log = Arc::new(Log::new(
        (alerts_on && !cli.no_syslog).then(|| cli.syslog_socket.clone()),
    ));
    let (alert_tx, alerts) = if alerts_on {
        let cfg = alert::Config {
            window: cli.alert_window,
            slack: cli
                .webhook
                .clone()
                .map(|u| slack::Config::new(u, host_name())),
        };
        let (tx, a) = Alerts::spawn(cfg, log.clone())?;
        (Some(tx), Some(a))
    } else {
        (None, None)
    };
    let hot = HotPath {
        printer: Printer::new(cli.format, Clock::system().context("reading the clocks")?),
        verbose: cli.verbose,
        correlator: Correlator::new(cli.max_pending as usize, MAX_PENDING_AGE.as_nanos() as u64),
        alerts: alert_tx,
    };
    let thread_stop = stop.clone();
    let thread_log = log.clone();
    let thread = std::thread::Builder::new()
        .name("tcpstate-bpf".into())
        .spawn(move || {
            let r = tracer_thread(&cfg, hot, &thread_stop, &tx, &thread_log);
            let _ = tx.send(FromTracer::Done(r));
        })
        .context("starting the tracer thread")?;

    let mut loaded = match rx.recv().await {
        Some(FromTracer::Ready(l)) => l,
        Some(FromTracer::Done(Err(e))) => {
            let _ = thread.join();
            if let Some(a) = alerts {
                a.finish();
            }
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
        log.error(&format!("could not notify systemd of readiness: {e}"));
    }
    log.info(&format!(
        "started (version {}): attached to sock:inet_sock_set_state on kernel {} (BTF {}); watching {}; {}",
        env!("CARGO_PKG_VERSION"),
        loaded.kernel,
        loaded.btf_source,
        watching(&cli),
        alerting(&cli)
    ));
    if let Some(w) = cli.webhook.as_ref().and_then(|u| u.insecure_warning()) {
        log.line(alert::syslog::Severity::Warning, &w);
    }

    let mut load = match (cli.synthetic_rate, loaded.synth.take()) {
        (Some(rate), Some(fd)) => {
            let secs = cli.synthetic_seconds;
            Some(tokio::task::spawn_blocking(move || {
                synthetic_load(&fd, rate, secs)
            }))
        }
        _ => None,
    };
    let mut produced = None;
    let early = tokio::select! {
        _ = signals.recv() => None,
        r = async { load.as_mut().expect("guarded").await }, if load.is_some() => {
            produced = Some(r.context("the synthetic load thread")??);
            None
        }
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
    // The tracer is gone, and with it the alert queue's sender: the alert
    // thread summarises open windows and flushes Slack.
    let alert_stats = alerts.map(Alerts::finish).unwrap_or_default();
    let summary = match done {
        Some(FromTracer::Done(r)) => r?,
        _ => anyhow::bail!("the tracer thread ended without a summary"),
    };
    log.info(&stop_line(&summary, &alert_stats, &log));
    if let Some((events, secs)) = produced {
        println!(
            "synthetic: produced={events} seconds={secs:.3} rate={:.0} consumed={} ringbuf_drops={} failures={}",
            events as f64 / secs,
            summary.events,
            summary.ring_drops,
            summary.correlate.failures
        );
    }
    if unexpected {
        anyhow::bail!("the tracer stopped unexpectedly");
    }
    Ok(())
}

fn stop_line(s: &Summary, a: &AlertStats, log: &Log) -> String {
    let c = s.correlate;
    let mut line = format!(
        "stopped: events={} attempts={} successes={} failures={} evicted={} \
         (age {} full {}) replaced={} unmatched={} pending={} ringbuf_drops={} output_errors={} \
         alerts={} summaries={} alert_queue_drops={}",
        s.events,
        c.attempts,
        c.successes,
        c.failures,
        c.evicted_age + c.evicted_full,
        c.evicted_age,
        c.evicted_full,
        c.replaced,
        c.unmatched,
        s.pending,
        s.ring_drops,
        s.output_errors,
        a.policy.firsts,
        a.policy.summaries,
        s.alert_drops,
    );
    if let Some(sl) = log.syslog_stats() {
        line += &format!(" syslog_lines={} syslog_lost={}", sl.lines, sl.lost);
    }
    if let Some(k) = a.slack {
        line += &format!(
            " slack_messages={} slack_alerts={} slack_retries={} slack_rate_limited={} \
             slack_folded={} slack_lost_alerts={} slack_lost_failures={}",
            k.messages,
            k.alerts,
            k.retries,
            k.rate_limited,
            k.folded,
            k.lost_alerts,
            k.lost_failures
        );
    }
    line
}

/// State of the per-event path, owned by the tracer thread.
struct HotPath {
    printer: Printer,
    verbose: bool,
    correlator: Correlator,
    /// The alert thread's queue; None when alerts are off.
    alerts: Option<std::sync::mpsc::SyncSender<Failure>>,
}

fn tracer_thread(
    cfg: &bpf::Config,
    mut hot: HotPath,
    stop: &AtomicBool,
    tx: &mpsc::UnboundedSender<FromTracer>,
    log: &Log,
) -> Result<Summary> {
    let mut obj = MaybeUninit::uninit();
    let mut tracer = Tracer::load(cfg, &mut obj)?;
    let _ = tx.send(FromTracer::Ready(Loaded {
        btf_source: tracer.info.btf_source.clone(),
        kernel: tracer.info.kernel.clone(),
        synth: tracer.info.synth.take(),
    }));

    let stdout = std::io::stdout();
    // Large enough for a 10 ms drain of a storm in one write(2).
    let mut out = Batch::new(stdout.lock(), 256 * 1024);
    let mut summary = Summary::default();
    // Both callbacks need the per-event state; only one runs at a time.
    let state = RefCell::new((&mut hot, &mut out, &mut summary));
    let mut last_sweep = mono_now_ns();
    let mut last_drop_check = last_sweep;
    let mut reported_drops = 0u64;
    let mut reported_alert_drops = 0u64;

    let on_event = |raw: &bpf::RawEvent| {
        let (hot, out, s) = &mut *state.borrow_mut();
        s.events += 1;
        let Some(ev) = StateChange::from_raw(raw) else {
            return;
        };
        if hot.verbose {
            hot.printer.state_change(&mut out.buf, &ev);
        }
        if let Outcome::Failed(f) = hot.correlator.observe(&ev) {
            hot.printer.failure(&mut out.buf, &f);
            // Never wait for the alert thread: a full queue is a counted drop.
            if let Some(a) = &hot.alerts {
                if a.try_send(f).is_err() {
                    s.alert_drops += 1;
                }
            }
        }
        if out.full() && out.flush().is_err() {
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
                    log.error_nowait(&format!(
                        "lost {} events: ring buffer full (total {d}); raise --ring-buffer-size",
                        d - reported_drops
                    ));
                    reported_drops = d;
                }
            }
            if s.alert_drops > reported_alert_drops {
                log.error_nowait(&format!(
                    "{} failures not alerted: alert queue full (total {})",
                    s.alert_drops - reported_alert_drops,
                    s.alert_drops
                ));
                reported_alert_drops = s.alert_drops;
            }
        }
    };
    tracer.consume(stop, POLL, on_event, after_batch)?;
    summary.ring_drops = tracer.ring_drops().unwrap_or(reported_drops);
    summary.correlate = hot.correlator.counters();
    summary.pending = hot.correlator.pending();
    Ok(summary)
}

/// Runs the synthetic-load program at `rate` events per second for `secs`
/// seconds; returns the events produced and the time it took.
fn synthetic_load(prog: &std::os::fd::OwnedFd, rate: u64, secs: u64) -> Result<(u64, f64)> {
    use std::os::fd::AsFd;
    let per_run = u64::from(bpf::SYNTH_MAX_PAIRS) * 2;
    let total = rate * secs;
    let t0 = std::time::Instant::now();
    let (mut produced, mut base) = (0u64, 0xffff_8000_0000_0000u64);
    while produced < total {
        let due = (rate as f64 * t0.elapsed().as_secs_f64()) as u64;
        if produced + per_run > due {
            std::hint::spin_loop();
            continue;
        }
        bpf::run_synthetic(prog.as_fd(), base, bpf::SYNTH_MAX_PAIRS)?;
        produced += per_run;
        base = base.wrapping_add(u64::from(bpf::SYNTH_MAX_PAIRS) * 64);
    }
    Ok((produced, t0.elapsed().as_secs_f64()))
}

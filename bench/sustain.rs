//! Bench only (bench/sustain): can the BPF program's submit path and
//! tcpstate's per-event path keep up with RATE events per second?
//!
//!   sustain RATE SECONDS     (JSON lines to stdout, the report on stderr)
//!
//! Built with the `synthetic` feature, which compiles a BPF_PROG_TYPE_SYSCALL
//! program into tcpstate's object: run through BPF_PROG_TEST_RUN on one
//! core, it pushes SYN_SENT/CLOSE pairs through the same reserve/submit
//! code (and wake-up threshold) as the tracepoint, while this program
//! drains the ring on the other core through the library's own `Engine`,
//! as the daemon does, and writes one JSON line per pair. Linux 5.17+.

use std::cell::RefCell;
use std::io::Write;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpstate::output::clock::{mono_now_ns, Clock};
use tcpstate::output::{Format, Printer};
use tcpstate::pipeline::engine::{Config, Engine, NoAttribution, Out};
use tcpstate::tracer::{self, run_synthetic, Tracer, SYNTH_MAX_PAIRS};

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sustain RATE SECONDS"))
        .collect();
    let (rate, secs) = (
        args.first().copied().unwrap_or(2_000_000),
        args.get(1).copied().unwrap_or(3),
    );
    let ring_bytes = 1 << 20;
    let cfg = tracer::Config {
        connect_errors: tracer::ConnectErrors::Auto,
        dns_names: tracer::DnsNames::Off,
        // Keep real traffic out of the count: a broadcast /32 is never a
        // TCP destination.
        dests: vec!["255.255.255.255/32".parse().expect("a valid prefix")],
        follow_names: false,
        ports: Vec::new(),
        trace_all: false,
        btf: None,
        ring_bytes,
        wakeup_bytes: u64::from(ring_bytes / 4),
    };
    let mut obj = MaybeUninit::uninit();
    let mut spare = MaybeUninit::uninit();
    let tracer = Tracer::load(
        &cfg,
        None,
        tracer::kept::Handover::Fresh,
        &mut obj,
        &mut spare,
    )?;
    let prog = tracer.synthetic_program().try_clone_to_owned()?;

    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let producer = std::thread::spawn(move || -> anyhow::Result<(u64, f64)> {
        let per_run = u64::from(SYNTH_MAX_PAIRS) * 2;
        let total = rate * secs;
        let t0 = Instant::now();
        let (mut produced, mut base) = (0u64, 0xffff_8000_0000_0000u64);
        while produced < total {
            let due = (rate as f64 * t0.elapsed().as_secs_f64()) as u64;
            if produced + per_run > due {
                std::hint::spin_loop();
                continue;
            }
            run_synthetic(prog.as_fd(), base, SYNTH_MAX_PAIRS)?;
            produced += per_run;
            base = base.wrapping_add(u64::from(SYNTH_MAX_PAIRS) * 64);
        }
        d.store(true, Ordering::Release);
        Ok((produced, t0.elapsed().as_secs_f64()))
    });

    let mut engine = Engine::new(
        Config {
            printer: Printer::new(Format::Json, Clock::system()?),
            verbose: false,
            max_pending: 65536,
            max_pending_age_ns: 300_000_000_000,
            alert_window_ns: None,
            max_alert_dests: 0,
            alert_share: 0,
            slow_after_ns: None,
            // The product's default: failures wait for their verdict.
            recovery_window_ns: 1_000_000_000,
        },
        Box::new(NoAttribution),
    );
    let batch = RefCell::new(Vec::with_capacity(4096));
    let rb = tracer.ring_buffer(|rec| {
        if let tracer::Record::Event(raw) = rec {
            batch.borrow_mut().push(*raw);
        }
    })?;
    let mut stdout = std::io::stdout().lock();
    let mut out = Out::default();
    loop {
        let finished = done.load(Ordering::Acquire);
        // As the daemon: woken by the program's forced wake-ups, or by the
        // 10 ms timer.
        let _ = rb.poll_raw(Duration::from_millis(10));
        loop {
            let n = rb.consume_raw_n(4096);
            let now = mono_now_ns();
            for raw in batch.borrow_mut().drain(..) {
                engine.event(&raw, now, &mut out);
            }
            if n < 4096 {
                break;
            }
        }
        stdout.write_all(&out.lines)?;
        out.lines.clear();
        if finished {
            break;
        }
    }
    let (produced, secs) = producer.join().expect("the producer thread")?;
    let s = engine.stats();
    eprintln!(
        "synthetic: produced={produced} seconds={secs:.3} rate={:.0} consumed={} ringbuf_drops={} failures={}",
        produced as f64 / secs,
        s.events,
        tracer.ring_drops()?,
        s.correlate.failures
    );
    Ok(())
}

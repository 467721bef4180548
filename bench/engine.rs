//! The per-event path alone, without the kernel: how long `Engine` takes
//! per connection attempt (a SYN_SENT record and its refused CLOSE), in
//! the service configuration (--format none, alerts and resolution on)
//! and the JSON one. A development aid beside bench/run, which measures
//! the whole tracer against a real storm; this one is quiet and
//! repeatable enough to compare two builds of the user-space path.
//!
//!   cargo run --release --example engine [ATTEMPTS]
use std::time::Instant;

use tcpstate::alert::resolve::{self, Resolver};
use tcpstate::event::skel::RawEvent;
use tcpstate::output::clock::Clock;
use tcpstate::output::{Format, Printer};
use tcpstate::pipeline::engine::{Config, Engine, NoAttribution, Out};

fn record(skaddr: u64, ts_ns: u64, old: u8, new: u8, err: u32) -> RawEvent {
    let mut e = RawEvent {
        skaddr,
        ts_ns,
        cgroup_id: 4242,
        pid: 1000,
        tid: 1001,
        uid: 0,
        sk_err: err,
        family: 2,
        sport: 0,
        dport: 9,
        oldstate: old,
        newstate: new,
        kind: 0,
        ..Default::default()
    };
    e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    e.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    e.comm[..9].copy_from_slice(b"connstorm");
    e.pcomm[..9].copy_from_slice(b"connstorm");
    e
}

fn run(format: Format, alerts: bool, attempts: u64) -> f64 {
    let mut engine = Engine::new(
        Config {
            printer: Printer::new(format, Clock::new(0)),
            verbose: false,
            max_pending: 8192,
            max_pending_age_ns: 300_000_000_000,
            alert_window_ns: alerts.then_some(60_000_000_000),
            max_alert_dests: 4096,
            alert_share: 64,
            slow_after_ns: Some(3_000_000_000),
            recovery_window_ns: 1_000_000_000,
        },
        Box::new(NoAttribution),
    );
    if alerts {
        engine.set_resolver(Resolver::new(resolve::Config {
            window_ns: 60_000_000_000,
            resolve_after_ns: 300_000_000_000,
            max_dests: 4096,
            fleet: false,
        }));
    }
    let mut out = Out::default();
    // Records in batches, as the daemon drains them.
    let batch: Vec<RawEvent> = (0..2048u64)
        .flat_map(|i| {
            let sk = 0xffff_8880_0000_0000 + i * 2304;
            [
                record(sk, 1_000 + i, 7, 2, 0),
                record(sk, 2_000 + i, 2, 7, 111),
            ]
        })
        .collect();
    let t = Instant::now();
    let mut done = 0;
    let mut now = 1_000_000;
    while done < attempts {
        for raw in &batch {
            engine.event(raw, now, &mut out);
        }
        engine.after_batch(now, &mut out);
        out.lines.clear();
        out.alerts.clear();
        out.fleet.clear();
        done += batch.len() as u64 / 2;
        now += 1_000_000;
    }
    t.elapsed().as_nanos() as f64 / done as f64
}

fn main() {
    let attempts: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ATTEMPTS: a number"))
        .unwrap_or(2_000_000);
    // The fastest of several runs: a shared VM's noise only adds time.
    let (mut service, mut json) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        service = service.min(run(Format::None, true, attempts));
        json = json.min(run(Format::Json, false, attempts));
    }
    println!("ns per attempt (fastest of 5): service {service:.1}, json {json:.1}");
}

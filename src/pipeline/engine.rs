//! The per-event path, pure: decode each raw record, correlate it, format
//! its line and run the alert policy. The daemon feeds it each drained
//! batch and ships what came out: lines to stdout, alerts to the sinks.
//! No I/O and no clock of its own, so tests drive it with made-up records.

use crate::alert::dns_fleet::{DnsFleet, DnsFleetAlert};
use crate::alert::policy::{Alert, Policy, PolicyStats};
use crate::alert::resolve::{FleetAlert, ResolveStats, Resolver, Trouble};
use crate::dns::pending::Pending;
use crate::dns::{answer, memory, Dname, Memory, MemoryStats, Scope};
use crate::event::notice::{Notice, What};
use crate::event::skel::{RawDns, RawEvent};
use crate::event::{Attribution, Caller, Record, Slow};
use crate::metrics::{Metrics, UnitId};
use crate::output::clock::Clock;
use crate::output::Printer;
use crate::pipeline::correlate::{Connected, Correlator, Counters, Found, Outcome};
use crate::pipeline::dns_failures::{DnsFailures, ResolvConfs};
use crate::pipeline::established::{Established, OpenCounters};
use crate::pipeline::verdict::{self, Decided, VerdictStats, Verdicts};

/// Names a caller's cgroup (see `cgroup`): `touch` at an attempt's start,
/// while the cgroup surely exists; `get` when it is shown.
pub trait Attributor {
    fn touch(&mut self, cgroup_id: u64);
    /// Borrowed: the per-failure path never clones it (alerts do).
    fn get(&self, cgroup_id: u64) -> Option<&Attribution>;
    /// The kernel's names for a cgroup, as it was when first seen; used
    /// when the tree no longer has it.
    fn learn(&mut self, _cgroup_id: u64, _path: &str) {}
    /// Problems to say (files refused while naming containers).
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Runtime files refused while naming containers, so far.
    fn names_refused(&self) -> u64 {
        0
    }
}

/// For tests and hosts without cgroup v2: names nothing.
pub struct NoAttribution;

impl Attributor for NoAttribution {
    fn touch(&mut self, _: u64) {}
    fn get(&self, _: u64) -> Option<&Attribution> {
        None
    }
}

pub struct Config {
    pub printer: Printer,
    pub verbose: bool,
    pub max_pending: usize,
    pub max_pending_age_ns: u64,
    /// The alert policy's window; None when no sink takes alerts.
    pub alert_window_ns: Option<u64>,
    pub max_alert_dests: usize,
    /// Open alert windows one source may hold before it folds.
    pub alert_share: usize,
    /// `--slow-after`; None: off.
    pub slow_after_ns: Option<u64>,
    /// `--recovery-window`: how long a failure waits for a recovery before
    /// it pages; 0: no verdicts, every failure pages at once.
    pub recovery_window_ns: u64,
}

/// What a batch produced.
#[derive(Default)]
pub struct Out {
    pub lines: Vec<u8>,
    pub line_count: u64,
    pub alerts: Vec<Alert>,
    /// Posts for Alertmanager (firing, re-posts, resolved).
    pub fleet: Vec<FleetAlert>,
    /// Posts for Alertmanager of names that do not resolve.
    pub fleet_dns: Vec<DnsFleetAlert>,
    /// Answers for names `--dest` watches (see `Engine::watch_names`):
    /// their addresses join the watch.
    pub followed: Vec<answer::Answer>,
    /// Failures and slow attempts for the OTLP sink (see
    /// `Engine::set_notices`).
    pub notices: Vec<Notice>,
}

/// Established connections remembered for their breaks (see
/// `established`): about 100 bytes each, so at most ~4 MiB.
const MAX_OPEN: usize = 32_768;

/// Destinations by name (see `dns`).
#[derive(Debug, Clone, Copy)]
pub struct DnsConfig {
    pub memory: memory::Config,
    /// The host's network namespace (its inode), for `Scope::of`.
    pub host_netns: Option<u32>,
    /// tcpstate's own process id: its own lookups' answers are trusted.
    pub own_pid: u32,
    /// DNS over TCP is read (the syscall fallback): a truncated UDP
    /// answer teaches no names, its retry over TCP does.
    pub tcp: bool,
}

/// What the DNS answers came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DnsStats {
    /// DNS records read from the ring.
    pub answers: u64,
    /// Not address answers (queries, NXDOMAIN, other types): nothing to learn.
    pub ignored: u64,
    /// Could not be parsed.
    pub malformed: u64,
    /// A question name that cannot be shown as one (a dot in a label, too long).
    pub bad_names: u64,
    /// Cut (at the bytes the kernel copies) or malformed in the answer
    /// section: the records before the cut were kept.
    pub partial: u64,
    /// Addresses past the most one answer keeps.
    pub addrs_dropped: u64,
    /// Answers for a watched name that the watch did not follow: neither
    /// the host's resolver's nor tcpstate's own.
    pub untrusted: u64,
    /// Answers to no query the receiving socket had outstanding (another
    /// id or question), or from a source that is not port 53: not learned.
    pub unmatched: u64,
    /// DNS messages read from TCP streams (queries and answers), and
    /// those cut: the kernel's copy or the stream's split ended inside
    /// one, or a buffer held more than is framed (`dns::tcp`).
    pub tcp_messages: u64,
    pub tcp_cut: u64,
    /// Truncated (TC) answers not learned from: their TCP retry is read.
    pub truncated: u64,
    pub memory: MemoryStats,
    /// Lookups judged (issue 32) and resolv.conf files unreadable.
    pub lookups: crate::dns::lookup::Stats,
    pub resolv_conf_unreadable: u64,
}

struct Dns {
    memory: Memory,
    /// Queries sent, for the answers to be paired with.
    pending: Pending,
    host_netns: Option<u32>,
    own_pid: u32,
    tcp: bool,
    stats: DnsStats,
    /// Names `--dest` watches, lowercased, no trailing dot.
    watched: Vec<Vec<u8>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct EngineStats {
    /// Records read from the ring buffer.
    pub events: u64,
    /// Records that could not be decoded (a size, family or kind the
    /// program never sends), dropped.
    pub bad_records: u64,
    pub correlate: Counters,
    pub policy: PolicyStats,
    /// Attempts still pending.
    pub pending: usize,
    /// Attempts said to be slow.
    pub slow: u64,
    /// Runtime files refused while naming containers.
    pub names_refused: u64,
    pub resolve: ResolveStats,
    pub verdicts: VerdictStats,
    /// Failures waiting for their verdict.
    pub held: usize,
    /// Established connections and the ones that broke.
    pub open: OpenCounters,
}

pub struct Engine {
    printer: Printer,
    verbose: bool,
    correlator: Correlator,
    policy: Option<Policy>,
    /// Degradations' windows: a policy of their own (see `on_recovered`).
    degraded: Option<Policy>,
    /// Broken connections' windows: a policy of their own (see `on_broken`).
    broken: Option<Policy>,
    /// Connections this host opened, for their breaks.
    open: Established,
    verdicts: Verdicts,
    decided: Vec<Decided>,
    slow_after_ns: Option<u64>,
    slow: Vec<(u64, Slow)>,
    attributor: Box<dyn Attributor>,
    events: u64,
    bad_records: u64,
    slow_seen: u64,
    /// Per-failure counts for /metrics (set by `set_metrics`).
    metrics: Option<Metrics>,
    /// Firing/resolved per destination (set by `set_resolver`).
    resolver: Option<Resolver>,
    /// Firing/resolved per name that does not resolve (Alertmanager).
    dns_fleet: Option<DnsFleet>,
    /// Address→name memory (set by `set_dns`).
    dns: Option<Dns>,
    /// Whether failures and slow attempts also go to `Out::notices`.
    notices: bool,
    /// The kernel's drop reasons by value (set by `set_drop_reasons`).
    drop_names: std::collections::HashMap<u32, &'static str>,
    /// Lookups that failed (set by `set_dns_failures`, issue 32).
    dns_failures: Option<DnsFailures>,
    dns_verdicts: Vec<crate::dns::lookup::Verdict>,
}

impl Engine {
    pub fn new(cfg: Config, attributor: Box<dyn Attributor>) -> Self {
        Engine {
            printer: cfg.printer,
            verbose: cfg.verbose,
            correlator: Correlator::new(cfg.max_pending, cfg.max_pending_age_ns),
            policy: cfg
                .alert_window_ns
                .map(|w| Policy::new(w, cfg.max_alert_dests, cfg.alert_share)),
            degraded: cfg
                .alert_window_ns
                .map(|w| Policy::new(w, cfg.max_alert_dests, cfg.alert_share)),
            broken: cfg
                .alert_window_ns
                .map(|w| Policy::new(w, cfg.max_alert_dests, cfg.alert_share)),
            open: Established::new(MAX_OPEN),
            verdicts: Verdicts::new(verdict::Config::with_window(cfg.recovery_window_ns)),
            decided: Vec::new(),
            slow_after_ns: cfg.slow_after_ns,
            slow: Vec::new(),
            attributor,
            events: 0,
            bad_records: 0,
            slow_seen: 0,
            metrics: None,
            resolver: None,
            dns_fleet: None,
            dns: None,
            drop_names: Default::default(),
            notices: false,
            dns_failures: None,
            dns_verdicts: Vec::new(),
        }
    }

    /// Judges lookups from the DNS records from now on: `resolve_failed`.
    /// `tcp_seen`: DNS over TCP is read (see `lookup::Config::tcp_seen`).
    pub fn set_dns_failures(&mut self, confs: Box<dyn ResolvConfs>, tcp_seen: bool) {
        self.dns_failures = Some(DnsFailures::new(
            crate::dns::lookup::Config {
                tcp_seen,
                ..Default::default()
            },
            confs,
        ));
    }

    /// What the lookups came to, and resolv.conf files unreadable; None
    /// when off.
    pub fn dns_failure_stats(&self) -> Option<(crate::dns::lookup::Stats, u64)> {
        self.dns_failures.as_ref().map(DnsFailures::stats)
    }

    /// The lookups judged: a line each, and pages.
    fn dns_verdicts(&mut self, now_ns: u64, finish: bool, out: &mut Out) {
        let Some(f) = &mut self.dns_failures else {
            return;
        };
        if finish {
            f.finish(&mut self.dns_verdicts);
        } else {
            f.tick(now_ns, &mut self.dns_verdicts);
        }
        let alerts = self.policy.is_some();
        for v in self.dns_verdicts.drain(..) {
            if let (Some(m), crate::dns::lookup::Verdict::Failed(f)) = (&mut self.metrics, &v) {
                m.resolve_failed(f.reason);
            }
            if let (Some(m), crate::dns::lookup::Verdict::Folded(s)) = (&mut self.metrics, &v) {
                for (r, n) in &s.reasons {
                    m.resolve_failed_n(*r, *n);
                }
            }
            let attr = self
                .attributor
                .get(crate::pipeline::dns_failures::cgroup_of(&v));
            if let (Some(d), crate::dns::lookup::Verdict::Failed(f)) = (&mut self.dns_fleet, &v) {
                let who = crate::alert::dns::subject(&f.who, attr);
                d.on_failed(f, who, now_ns, &mut out.fleet_dns);
            }
            crate::pipeline::dns_failures::emit(
                v,
                attr,
                &self.printer,
                now_ns,
                crate::pipeline::dns_failures::Sinks {
                    lines: &mut out.lines,
                    line_count: &mut out.line_count,
                    alerts: alerts.then_some(&mut out.alerts),
                    notices: self.notices.then_some(&mut out.notices),
                },
            );
        }
    }

    /// Hands each failure and slow attempt, with its attribution, to
    /// `Out::notices` from now on (for OTLP).
    pub fn set_notices(&mut self) {
        self.notices = true;
    }

    /// Names drop reasons from now on: the kernel's enum skb_drop_reason,
    /// values and names, as its BTF has them. Kept for the process's life
    /// (a failure is `Copy` and names them by `&'static str`).
    pub fn set_drop_reasons(&mut self, names: Vec<(u32, String)>) {
        self.drop_names = names
            .into_iter()
            .map(|(v, n)| (v, &*Box::leak(n.into_boxed_str())))
            .collect();
    }

    /// Learns names from DNS answers, and shows them on failures, from now on.
    pub fn set_dns(&mut self, cfg: DnsConfig) {
        self.dns = Some(Dns {
            memory: Memory::new(cfg.memory),
            pending: Pending::default(),
            host_netns: cfg.host_netns,
            own_pid: cfg.own_pid,
            tcp: cfg.tcp,
            stats: DnsStats::default(),
            watched: Vec::new(),
        });
    }

    /// Answers for these names (any case, a trailing dot or not) go to
    /// `Out::followed`.
    pub fn watch_names(&mut self, names: &[String]) {
        if let Some(d) = &mut self.dns {
            d.watched = names
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase().into_bytes())
                .collect();
        }
    }

    /// A DNS answer an application received, or a query it sent; over
    /// TCP, the messages of the buffer one syscall moved, or a
    /// connection opened to port 53 (`query` 2, no message).
    pub fn dns_answer(&mut self, raw: &RawDns, out: &mut Out) {
        let Some(d) = &mut self.dns else { return };
        if raw.query == 2 {
            if let Some(f) = &mut self.dns_failures {
                f.tcp_connect(raw);
            }
            return;
        }
        let payload = raw.payload();
        if raw.tcp == 0 {
            self.dns_message(raw, &payload, out);
            return;
        }
        let framed = crate::dns::tcp::frame(&payload, usize::from(raw.wire_len), raw.query != 0);
        d.stats.tcp_messages += framed.messages.len() as u64;
        d.stats.tcp_cut += framed.cut;
        for m in framed.messages {
            self.dns_message(raw, m, out);
        }
    }

    /// One DNS message of a record.
    fn dns_message(&mut self, raw: &RawDns, payload: &[u8], out: &mut Out) {
        let Some(d) = &mut self.dns else { return };
        if let Some(f) = &mut self.dns_failures {
            if raw.query != 0 {
                // Named while its cgroup surely exists.
                self.attributor.touch(raw.cgroup_id);
            }
            f.record(raw, payload);
        }
        if raw.query != 0 {
            if let Some(q) = answer::parse_query(payload) {
                d.pending.sent(raw.sk, q, raw.ts_ns);
            }
            return;
        }
        d.stats.answers += 1;
        let ans = match answer::parse(payload) {
            Ok(a) => a,
            Err(answer::Skip::NotAnAddressAnswer) => {
                d.stats.ignored += 1;
                return;
            }
            Err(answer::Skip::Malformed) => {
                d.stats.malformed += 1;
                return;
            }
            Err(answer::Skip::BadName) => {
                d.stats.bad_names += 1;
                return;
            }
        };
        // Only an answer to a query its socket sent: the same id and
        // question (issue 29).
        if !d.pending.answered(raw.sk, &ans, raw.ts_ns) {
            d.stats.unmatched += 1;
            return;
        }
        if ans.truncated && d.tcp {
            // Its client asks again over TCP, whose answer is read
            // (RFC 2181 section 9: a truncated answer is to be ignored).
            d.stats.truncated += 1;
            return;
        }
        d.stats.partial += u64::from(ans.partial);
        d.stats.addrs_dropped += ans.dropped as u64;
        let scope = Scope::of(raw.uid, raw.netns, d.host_netns, raw.cgroup_id);
        d.memory.learn(scope, &ans.name, &ans.addrs, raw.ts_ns);
        if let (Some(f), false) = (&mut self.dns_fleet, ans.addrs.is_empty()) {
            f.on_answered(&ans.name, raw.ts_ns, &mut out.fleet_dns);
        }
        // For verdicts: when the receiver has failed on every address.
        let addrs: Vec<std::net::IpAddr> = ans.addrs.iter().map(|a| a.0.to_canonical()).collect();
        let source = crate::event::Source {
            cgroup_id: raw.cgroup_id,
            uid: raw.uid,
        };
        let name = self.verdicts.name_key(&ans.name);
        self.verdicts.learn_answer(source, name, &addrs, raw.ts_ns);
        // A watch moves only on answers that cannot be forged by a user:
        // the host's resolver's, and tcpstate's own lookups. Any other
        // process can ask a server of its own for a watched name.
        let trusted = scope == Scope::Host || raw.pid == d.own_pid;
        if !ans.addrs.is_empty() && d.watched.contains(&ans.name) {
            if trusted {
                out.followed.push(ans);
            } else {
                d.stats.untrusted += 1;
            }
        }
    }

    /// The name the caller resolved for `addr` (host-wide answers only
    /// when the caller is unknown).
    fn dname(&self, caller: Option<Caller>, addr: std::net::IpAddr, ts_ns: u64) -> Option<Dname> {
        let d = self.dns.as_ref()?;
        d.memory
            .lookup(caller.map_or(0, |c| c.cgroup_id), addr, ts_ns)
    }

    /// Counts every failure for /metrics from now on.
    pub fn set_metrics(&mut self, m: Metrics) {
        self.metrics = Some(m);
    }

    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Tracks firing and resolved destinations from now on.
    pub fn set_resolver(&mut self, r: Resolver) {
        self.resolver = Some(r);
    }

    /// Tracks firing and resolved names for Alertmanager from now on
    /// (with `set_dns_failures`).
    pub fn set_dns_fleet(&mut self, d: DnsFleet) {
        self.dns_fleet = Some(d);
    }

    /// One record; `now_ns` is the batch's monotonic time.
    pub fn event(&mut self, raw: &RawEvent, now_ns: u64, out: &mut Out) {
        self.events += 1;
        let Some(ev) = Record::from_raw(raw) else {
            self.bad_records += 1;
            return;
        };
        // A break is a state change too: the kernel sends it instead.
        if self.verbose
            && matches!(
                ev.kind,
                crate::event::Kind::State | crate::event::Kind::Broken
            )
            && self.printer.state_change(&mut out.lines, &ev)
        {
            out.line_count += 1;
        }
        if ev.newstate == crate::event::TcpState::SynSent
            || ev.kind == crate::event::Kind::ConnectErr
        {
            // The records that carry the caller, while it surely exists:
            // its cgroup may be gone by the time the attempt fails.
            self.attributor.touch(ev.caller.cgroup_id);
        }
        if ev.kind == crate::event::Kind::Broken {
            if let Some(f) = self.open.broke(&ev) {
                self.broken(f, now_ns, out);
            }
            return;
        }
        let mut outcome = self.correlator.observe(&ev, now_ns);
        // The failure stays where observe() put it, and a name is copied
        // in only when there is one: with its inline Dname a Failure is
        // ~400 bytes, and moving it cost every failure two memcpys.
        match &mut outcome {
            Outcome::Failed(f) => {
                if let Some(n) = self.dname(f.caller, f.daddr, f.ts_ns) {
                    f.dname = Some(n);
                }
                if let Some(d) = &mut f.dropped {
                    d.name = self.drop_names.get(&d.reason).copied();
                }
                let f = &*f;
                let attr = f.caller.and_then(|c| self.attributor.get(c.cgroup_id));
                // The stream gets every attempt at once; pages wait for
                // the verdict.
                if self.printer.failure(&mut out.lines, f, attr) {
                    out.line_count += 1;
                }
                let name = f
                    .dname
                    .as_ref()
                    .map(|n| self.verdicts.name_key(n.as_bytes()));
                self.verdicts.on_failure(f, name, now_ns, &mut self.decided);
                self.conclude(now_ns, out);
            }
            Outcome::Established(c) => {
                self.open.connected(ev.skaddr, c, ev.sport);
                self.connected(c, now_ns, out);
            }
            Outcome::Nothing => {}
        }
    }

    /// A connection this host opened broke after it was established: its
    /// line, and at once (no verdict: nothing recovers a broken
    /// connection) its count, alert policy and notice.
    fn broken(&mut self, mut f: crate::event::Failure, now_ns: u64, out: &mut Out) {
        if let Some(n) = self.dname(f.caller, f.daddr, f.ts_ns) {
            f.dname = Some(n);
        }
        let attr = f.caller.and_then(|c| self.attributor.get(c.cgroup_id));
        if self.printer.failure(&mut out.lines, &f, attr) {
            out.line_count += 1;
        }
        if let Some(m) = &mut self.metrics {
            m.broken(&f);
        }
        if let Some(a) = self
            .broken
            .as_mut()
            .and_then(|p| p.on_broken(&f, attr, now_ns))
        {
            out.alerts.push(a);
        }
        if let Some(r) = &mut self.resolver {
            r.on_fleet_only(Trouble::Broken, &f, attr, now_ns, &mut out.fleet);
        }
        if self.notices {
            out.notices.push(Notice {
                what: What::Broken(f),
                attribution: attr.cloned(),
            });
        }
    }

    /// A connection was made: it resolves its destination's alerts and may
    /// recover failures held for their verdict.
    fn connected(&mut self, c: &Connected, now_ns: u64, out: &mut Out) {
        // Hook: a success resolves its destination (free when none fires).
        if let Some(r) = &mut self.resolver {
            r.on_established(c.daddr, c.dport, now_ns, &mut out.fleet, &mut out.alerts);
        }
        let name = self
            .dname(c.caller, c.daddr, c.end_ns)
            .map(|n| self.verdicts.name_key(n.as_bytes()));
        self.verdicts.on_success(c, name, &mut self.decided);
        self.conclude(now_ns, out);
    }

    /// The verdicts reached: a `verdict` line each; failed ones page
    /// (policy, resolver), recovered ones are degradation notices; both
    /// are counted by outcome.
    fn conclude(&mut self, now_ns: u64, out: &mut Out) {
        if self.decided.is_empty() {
            return;
        }
        // Taken and put back, so its buffer is reused.
        let mut decided = std::mem::take(&mut self.decided);
        // By reference: a Failure is ~500 bytes, and copying each out cost
        // the storm path a memcpy per failure.
        for d in &decided {
            let f = d.failure();
            let attr = f.caller.and_then(|c| self.attributor.get(c.cgroup_id));
            if self.verdicts.window_ns() > 0 && self.printer.verdict(&mut out.lines, d, attr) {
                out.line_count += 1;
            }
            if let Some(m) = &mut self.metrics {
                let unit = match attr {
                    // A user's unit never reads as the system's.
                    Some(a) if a.user_unit.is_some() => {
                        let u = format!(
                            "{}/{}",
                            a.unit.as_deref().unwrap_or("?"),
                            a.user_unit.as_deref().unwrap_or("")
                        );
                        m.unit(&u)
                    }
                    _ => attr
                        .and_then(|a| a.unit.as_deref().or(a.container.as_deref()))
                        .map_or_else(UnitId::default, |u| m.unit(u)),
                };
                m.failure(f, unit, matches!(d, Decided::Recovered(..)));
            }
            match &d {
                Decided::Failed(f) => {
                    if let Some(a) = self
                        .policy
                        .as_mut()
                        .and_then(|p| p.on_failure(f, attr, now_ns))
                    {
                        out.alerts.push(a);
                    }
                    if let Some(r) = &mut self.resolver {
                        r.on_failure_in(f, attr, now_ns, &mut out.fleet);
                    }
                    if self.notices {
                        out.notices.push(Notice {
                            what: What::Failed(*f),
                            attribution: attr.cloned(),
                        });
                    }
                }
                Decided::Recovered(f, fb) => {
                    if let Some(a) = self
                        .degraded
                        .as_mut()
                        .and_then(|p| p.on_recovered(f, fb, attr, now_ns))
                    {
                        out.alerts.push(a);
                    }
                    if let Some(r) = &mut self.resolver {
                        r.on_fleet_only(Trouble::Degraded, f, attr, now_ns, &mut out.fleet);
                    }
                    if self.notices {
                        out.notices.push(Notice {
                            what: What::Degraded(*f, *fb),
                            attribution: attr.cloned(),
                        });
                    }
                }
            }
        }
        decided.clear();
        self.decided = decided;
    }

    /// When the first held failure's window ends (monotonic ns), for the
    /// daemon's timer; None when none waits.
    pub fn next_verdict_ns(&self) -> Option<u64> {
        self.verdicts.next_deadline()
    }

    /// A cgroup's path as the kernel named it at an attempt.
    pub fn cgroup_names(&mut self, raw: &crate::event::skel::RawCgroupNames) {
        self.attributor.learn(raw.cgroup_id, &raw.path());
    }

    /// What the attributor has to say (refused files), once each.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.attributor.take_warnings()
    }

    /// A ring-buffer record of a size no record has.
    pub fn malformed(&mut self) {
        self.events += 1;
        self.bad_records += 1;
    }

    /// An attempt found in SYN_SENT at start, with its owner if known.
    pub fn seed(&mut self, found: &Found, owner: Option<Caller>, now_ns: u64) {
        if let Some(c) = owner {
            self.attributor.touch(c.cgroup_id);
        }
        self.correlator.seed(found, owner, now_ns);
    }

    /// After each batch: the alert windows that ended by `now_ns`.
    pub fn after_batch(&mut self, now_ns: u64, out: &mut Out) {
        self.dns_verdicts(now_ns, false, out);
        self.verdicts.tick(now_ns, &mut self.decided);
        self.conclude(now_ns, out);
        for p in [&mut self.policy, &mut self.degraded, &mut self.broken]
            .into_iter()
            .flatten()
        {
            p.tick(now_ns, &mut out.alerts);
        }
        if let Some(r) = &mut self.resolver {
            r.tick(now_ns, &mut out.fleet, &mut out.alerts);
            r.refresh(&mut out.fleet);
        }
        if let Some(d) = &mut self.dns_fleet {
            d.tick(now_ns, &mut out.fleet_dns);
            d.refresh(&mut out.fleet_dns);
        }
    }

    /// Attempts hanging past `--slow-after`: a `connect_slow` line each and
    /// alerts under the policy. A scan: the daemon calls it a few times a
    /// second.
    pub fn check_slow(&mut self, now_ns: u64, out: &mut Out) {
        let Some(after) = self.slow_after_ns else {
            return;
        };
        self.slow.clear();
        self.correlator.slow(now_ns, after, &mut self.slow);
        for (_, s) in &mut self.slow {
            s.dname = self.dns.as_ref().and_then(|d| {
                d.memory
                    .lookup(s.caller.map_or(0, |c| c.cgroup_id), s.daddr, now_ns)
            });
            self.slow_seen += 1;
            if let Some(m) = &mut self.metrics {
                m.slow(s.daddr, s.dport);
            }
            let attr = s.caller.and_then(|c| self.attributor.get(c.cgroup_id));
            if self.printer.slow(&mut out.lines, s, attr) {
                out.line_count += 1;
            }
            if let Some(a) = self
                .policy
                .as_mut()
                .and_then(|p| p.on_slow(s, attr, now_ns))
            {
                out.alerts.push(a);
            }
            // Hook: Alertmanager's TCPConnectHanging.
            if let Some(r) = &mut self.resolver {
                r.on_slow(s, now_ns, &mut out.fleet);
            }
            if self.notices {
                out.notices.push(Notice {
                    what: What::Slow(*s),
                    attribution: attr.cloned(),
                });
            }
        }
    }

    /// Forgets attempts pending too long (the daemon calls it now and then).
    pub fn sweep(&mut self, now_ns: u64) {
        self.correlator.sweep(now_ns);
        self.verdicts.sweep(now_ns);
        if let Some(d) = &mut self.dns {
            d.memory.sweep(now_ns);
            d.pending.sweep(now_ns);
        }
    }

    /// None when names are off.
    pub fn dns_stats(&self) -> Option<DnsStats> {
        let (lookups, resolv_conf_unreadable) = self.dns_failure_stats().unwrap_or_default();
        self.dns.as_ref().map(|d| DnsStats {
            memory: d.memory.stats(),
            lookups,
            resolv_conf_unreadable,
            ..d.stats
        })
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.printer.set_clock(clock);
    }

    /// At shutdown: the failures still held, decided failed (nothing can
    /// recover them now), then summaries of the windows still open.
    pub fn finish(&mut self, now_ns: u64, out: &mut Out) {
        self.dns_verdicts(now_ns, true, out);
        self.verdicts.flush(&mut self.decided);
        self.conclude(now_ns, out);
        for p in [&mut self.policy, &mut self.degraded, &mut self.broken]
            .into_iter()
            .flatten()
        {
            p.flush(&mut out.alerts);
        }
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            events: self.events,
            bad_records: self.bad_records,
            correlate: self.correlator.counters(),
            // Broken connections' alerts count with the failures' (the
            // stop line's alerts, summaries, folded).
            policy: [&self.policy, &self.broken]
                .into_iter()
                .flatten()
                .map(Policy::stats)
                .fold(PolicyStats::default(), |a, b| PolicyStats {
                    firsts: a.firsts + b.firsts,
                    summaries: a.summaries + b.summaries,
                    summarised: a.summarised + b.summarised,
                    folded: a.folded + b.folded,
                }),
            pending: self.correlator.pending(),
            slow: self.slow_seen,
            names_refused: self.attributor.names_refused(),
            resolve: {
                // A name's alerts count with the destinations'.
                let r = self
                    .resolver
                    .as_ref()
                    .map(Resolver::stats)
                    .unwrap_or_default();
                let d = self
                    .dns_fleet
                    .as_ref()
                    .map(DnsFleet::stats)
                    .unwrap_or_default();
                ResolveStats {
                    fired: r.fired + d.fired,
                    reposts: r.reposts + d.reposts,
                    resolved: r.resolved + d.resolved,
                    untracked: r.untracked + d.untracked,
                }
            },
            verdicts: self.verdicts.stats(),
            held: self.verdicts.held(),
            open: self.open.counters(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    fn raw(skaddr: u64, ts_ns: u64, old: u8, new: u8, err: u32, port: u16) -> RawEvent {
        RawEvent {
            skaddr,
            ts_ns,
            pid: 7,
            cgroup_id: 1,
            sk_err: err,
            family: 2,
            sport: 0,
            dport: port,
            oldstate: old,
            newstate: new,
            saddr: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [192, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        }
    }

    fn engine(format: Format, window: Option<u64>) -> Engine {
        Engine::new(
            Config {
                printer: Printer::new(format, Clock::new(0)),
                verbose: false,
                max_pending: 16,
                max_pending_age_ns: 1_000_000_000,
                alert_window_ns: window,
                max_alert_dests: 16,
                alert_share: 16,
                slow_after_ns: Some(500),
                recovery_window_ns: 0,
            },
            Box::new(NoAttribution),
        )
    }

    /// Records which cgroups were looked up.
    struct Touches(std::rc::Rc<std::cell::RefCell<Vec<u64>>>);

    impl Attributor for Touches {
        fn touch(&mut self, cgroup_id: u64) {
            self.0.borrow_mut().push(cgroup_id);
        }
        fn get(&self, _: u64) -> Option<&Attribution> {
            None
        }
    }

    #[test]
    fn every_record_that_names_a_caller_has_its_cgroup_looked_up() {
        let touched = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut e = engine(Format::None, None);
        e.attributor = Box::new(Touches(touched.clone()));
        let mut out = Out::default();
        // An attempt (SYN_SENT) and its end; then a connect() error.
        e.event(&raw(1, 1, 7, 2, 0, 9), 1, &mut out);
        e.event(&raw(1, 2, 2, 7, 111, 9), 2, &mut out);
        let connect_err = RawEvent {
            kind: 1,
            cgroup_id: 5,
            ..raw(2, 3, 0, 0, 101, 9)
        };
        e.event(&connect_err, 3, &mut out);
        assert_eq!(*touched.borrow(), vec![1, 5]);
    }

    #[test]
    fn records_that_cannot_be_decoded_are_counted_not_lost_silently() {
        let mut e = engine(Format::Json, None);
        let mut out = Out::default();
        let no_family = RawEvent {
            family: 0,
            ..raw(1, 1, 7, 2, 0, 9)
        };
        let no_kind = RawEvent {
            kind: 99,
            ..raw(2, 1, 7, 2, 0, 9)
        };
        e.event(&no_family, 1, &mut out);
        e.event(&no_kind, 1, &mut out);
        e.malformed();
        e.event(&raw(3, 1, 7, 2, 0, 9), 1, &mut out);
        let s = e.stats();
        assert_eq!((s.events, s.bad_records, s.correlate.attempts), (4, 3, 1));
    }

    #[test]
    fn a_storm_becomes_lines_and_one_alert_then_a_summary() {
        let mut e = engine(Format::Json, Some(1_000));
        let mut out = Out::default();
        for i in 0..100u64 {
            e.event(&raw(i, i * 2, 7, 2, 0, 9), i * 2, &mut out);
            e.event(&raw(i, i * 2 + 1, 2, 7, 111, 9), i * 2 + 1, &mut out);
        }
        e.after_batch(200, &mut out);
        assert_eq!(out.line_count, 100);
        assert_eq!(
            String::from_utf8_lossy(&out.lines).lines().count(),
            100,
            "one JSON line per failure"
        );
        assert_eq!(out.alerts.len(), 1, "the first failure only, so far");
        e.after_batch(1_000, &mut out);
        assert_eq!(out.alerts.len(), 1, "the window ends at 1 + 1000");
        e.after_batch(1_001, &mut out);
        assert_eq!(out.alerts.len(), 2);
        assert!(matches!(&out.alerts[1], Alert::Summary(s) if s.count == 99));
        let s = e.stats();
        assert_eq!((s.events, s.correlate.failures, s.pending), (200, 100, 0));
    }

    #[test]
    fn a_hanging_attempt_is_said_once_then_its_failure() {
        let mut e = engine(Format::Json, Some(10_000));
        let mut out = Out::default();
        e.event(&raw(1, 0, 7, 2, 0, 9), 0, &mut out);
        e.check_slow(400, &mut out);
        assert_eq!(out.line_count, 0);
        e.check_slow(600, &mut out);
        e.check_slow(700, &mut out);
        assert_eq!(out.line_count, 1);
        assert!(String::from_utf8_lossy(&out.lines).contains("\"event\":\"connect_slow\""));
        assert!(matches!(out.alerts[0], Alert::Slow(..)));
        e.event(&raw(1, 800, 2, 7, 110, 9), 800, &mut out);
        assert_eq!(out.line_count, 2);
        assert_eq!(e.stats().slow, 1);
    }

    #[test]
    fn hooks_count_failures_and_a_success_resolves() {
        use crate::alert::resolve::{self, FleetState};
        let mut e = engine(Format::None, None);
        e.set_metrics(Metrics::new(10));
        e.set_resolver(Resolver::new(resolve::Config {
            window_ns: 1_000,
            resolve_after_ns: 10_000,
            max_dests: 10,
            fleet: true,
        }));
        let mut out = Out::default();
        e.event(&raw(1, 1, 7, 2, 0, 9), 1, &mut out);
        e.event(&raw(1, 2, 2, 7, 111, 9), 2, &mut out);
        e.event(&raw(2, 3, 7, 2, 0, 9), 3, &mut out);
        e.event(&raw(2, 4, 2, 1, 0, 9), 4, &mut out);
        let states: Vec<_> = out.fleet.iter().map(|a| a.state).collect();
        assert_eq!(states.len(), 2);
        assert_eq!(states[0], FleetState::Firing);
        assert!(matches!(states[1], FleetState::Resolved(_)));
        assert!(matches!(&out.alerts[..], [Alert::Resolved(r)] if r.count == 1));
        let mut snap = crate::metrics::Snapshot::default();
        e.metrics().unwrap().copy_into(&mut snap);
        assert_eq!(snap.failures.iter().map(|f| f.1).sum::<u64>(), 1);
        assert_eq!(
            (e.stats().resolve.fired, e.stats().resolve.resolved),
            (1, 1)
        );
    }

    #[test]
    fn without_alerts_or_stream_nothing_comes_out() {
        let mut e = engine(Format::None, None);
        let mut out = Out::default();
        e.event(&raw(1, 1, 7, 2, 0, 9), 1, &mut out);
        e.event(&raw(1, 2, 2, 7, 111, 9), 2, &mut out);
        e.finish(3, &mut out);
        assert_eq!((out.line_count, out.alerts.len()), (0, 0));
        assert_eq!(e.stats().correlate.failures, 1);
    }

    /// A DNS record as the kernel sends it: `bytes` copied, `wire_len`
    /// the syscall's, on socket `sk`.
    fn dns_raw(sk: u64, query: u8, tcp: u8, bytes: &[u8], wire_len: u16) -> RawDns {
        let mut r = RawDns {
            ts_ns: 1_000,
            cgroup_id: 1,
            sk,
            pid: 7,
            len: bytes.len() as u16,
            wire_len,
            query,
            tcp,
            family: 2,
            port: 53,
            ..Default::default()
        };
        for (i, c) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            r.data[i] = u64::from_ne_bytes(w);
        }
        r
    }

    /// Issue 32, DNS over TCP: a truncated UDP answer teaches nothing;
    /// the TCP retry's answer does, framed behind its length; a second
    /// message that is no DNS message is counted, not parsed.
    #[test]
    fn names_come_from_the_tcp_retry_and_cut_messages_are_counted() {
        use crate::dns::answer::wire::*;
        let mut e = engine(Format::None, None);
        e.set_dns(DnsConfig {
            memory: crate::dns::memory::Config {
                max_entries: 64,
                max_bytes: 1 << 20,
                grace_ns: 0,
            },
            host_netns: None,
            own_pid: 1,
            tcp: true,
        });
        let mut out = Out::default();
        let q = query(&name("big.test"), 1);
        let mut tc = response(&name("big.test"), 1, &[rr(&QNAME, 1, 60, &[192, 0, 2, 1])]);
        tc[2] |= 0x02;
        e.dns_answer(&dns_raw(1, 1, 0, &q, q.len() as u16), &mut out);
        e.dns_answer(&dns_raw(1, 0, 0, &tc, tc.len() as u16), &mut out);
        let ip = |last| std::net::IpAddr::from([192, 0, 2, last]);
        let me = Some(Caller {
            cgroup_id: 1,
            ..Default::default()
        });
        assert!(
            e.dname(me, ip(1), 2_000).is_none(),
            "a TC answer teaches nothing"
        );
        // The retry: a connect, glibc's query alone, then the answer behind
        // its length, and garbage behind a second length.
        e.dns_answer(&dns_raw(2, 2, 1, &[], 0), &mut out);
        e.dns_answer(&dns_raw(2, 1, 1, &q, q.len() as u16), &mut out);
        let a = response(&name("big.test"), 1, &[rr(&QNAME, 1, 60, &[192, 0, 2, 2])]);
        let mut buf = (a.len() as u16).to_be_bytes().to_vec();
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&[0, 30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        e.dns_answer(&dns_raw(2, 0, 1, &buf, buf.len() as u16), &mut out);
        let d = e.dns_stats().unwrap();
        assert_eq!((d.truncated, d.tcp_messages, d.tcp_cut), (1, 2, 1));
        assert!(e.dname(me, ip(2), 2_000).is_some());
    }
}

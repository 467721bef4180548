//! The --dest names being followed: resolved off the loop (getaddrinfo
//! blocks), re-resolved when their time is due, and moved by the answers
//! applications receive; each change goes into the BPF destination trie.

use std::time::Duration;

use tokio::time::Instant;

use crate::dns::answer::Answer;
use crate::dns::watch::{Change, Watch, MAX_ADDRS};
use crate::log::Log;
use crate::output::clock::mono_now_ns;
use crate::tracer::filter::{Dest, Prefix};
use crate::tracer::Tracer;

use super::config::DNS_GRACE;

/// How long the start waits for --dest names to resolve.
const RESOLVE_AT_START: Duration = Duration::from_secs(2);
/// One resolution's bound (the system resolver's own timeouts may be longer).
const RESOLVE_WITHIN: Duration = Duration::from_secs(5);
/// After its first failure is warned about, a name that keeps failing is
/// warned about again at most this often.
const WARN_EVERY: Duration = Duration::from_secs(300);

type Lookup = std::result::Result<Vec<std::net::IpAddr>, String>;
type Resolved = (String, Lookup);

/// The --dest names being followed, and their lookups' answers.
pub(super) struct Names {
    pub(super) watch: Watch,
    /// Per name, the replacements already warned about.
    warned: Vec<(String, u64)>,
    res_tx: tokio::sync::mpsc::UnboundedSender<Resolved>,
    pub(super) res_rx: tokio::sync::mpsc::UnboundedReceiver<Resolved>,
    /// Per name failing now: lookups failed in a row, and the last warning.
    failing: std::collections::HashMap<String, (u32, Instant)>,
}

impl Names {
    /// --dest names: resolved off the loop, for at most RESOLVE_AT_START, then
    /// followed by the loop. A name that does not resolve yet is warned about
    /// and retried, never fatal.
    pub(super) async fn start(dests: &[Dest], tracer: &Tracer<'_>, log: &Log) -> Names {
        let names = crate::tracer::filter::names(dests);
        let mut watch = Watch::new(&names, DNS_GRACE.as_nanos() as u64);
        let (res_tx, mut res_rx) = tokio::sync::mpsc::unbounded_channel();
        resolve_due(&mut watch, &res_tx);
        if !watch.is_empty() {
            let until = Instant::now() + RESOLVE_AT_START;
            while let Ok(Some((name, r))) = tokio::time::timeout_at(until, res_rx.recv()).await {
                let ch = watch.resolved(&name, r, mono_now_ns());
                apply(tracer, &ch, log);
                if watch.errors().is_empty() && watch.describe().matches("(resolving)").count() == 0
                {
                    break;
                }
            }
            for (name, e) in watch.errors() {
                log.warn(format_args!(
                    "--dest {name} does not resolve ({e}): not watched until it does; retrying"
                ));
            }
        }
        // Those failed at start were just warned about.
        let failing = watch
            .errors()
            .into_iter()
            .map(|(n, _)| (n, (1, Instant::now())))
            .collect();
        Names {
            watch,
            warned: Vec::new(),
            res_tx,
            res_rx,
            failing,
        }
    }

    /// The once-a-second chores: lookups that are due, addresses expired.
    pub(super) fn tick(&mut self, tracer: &Tracer<'_>, log: &Log) {
        resolve_due(&mut self.watch, &self.res_tx);
        apply(tracer, &self.watch.expire(mono_now_ns()), log);
        self.warn_replaced(log);
    }

    /// A name at its most addresses replaced some: said when it starts,
    /// then when the count has doubled, so a flood is one line, not many.
    fn warn_replaced(&mut self, log: &Log) {
        for (name, n) in self.watch.replaced() {
            let said = match self.warned.iter_mut().find(|(w, _)| *w == name) {
                Some((_, said)) => said,
                None => {
                    self.warned.push((name.clone(), 0));
                    &mut self.warned.last_mut().expect("pushed").1
                }
            };
            if n >= 2 * (*said).max(1) || *said == 0 {
                *said = n;
                log.warn(format_args!(
                    "--dest {name} holds its {MAX_ADDRS} addresses: {n} replaced by newer \
                     ones so far (the oldest first)"
                ));
            }
        }
    }

    /// A lookup's answer. A failure is warned about at once, then at most
    /// every WARN_EVERY while it goes on; the recovery is said too.
    pub(super) fn resolved(&mut self, name: &str, r: Lookup, tracer: &Tracer<'_>, log: &Log) {
        match &r {
            Err(e) => {
                let now = Instant::now();
                let (tries, warned) = self
                    .failing
                    .entry(name.to_string())
                    .or_insert((0, now - WARN_EVERY));
                *tries += 1;
                if now.duration_since(*warned) >= WARN_EVERY {
                    *warned = now;
                    log.warn(format_args!(
                        "--dest {name} does not resolve ({e}; {tries} lookups failed in a row): \
                         not watched until it does; retrying"
                    ));
                }
            }
            Ok(_) => {
                if let Some((tries, _)) = self.failing.remove(name) {
                    log.info(format_args!(
                        "--dest {name} resolves again after {tries} failed lookups"
                    ));
                }
            }
        }
        let ch = self.watch.resolved(name, r, mono_now_ns());
        apply(tracer, &ch, log);
    }

    /// For the stop line: the --dest names failing now.
    pub(super) fn unresolved(&self) -> Vec<String> {
        let mut v: Vec<_> = self.failing.keys().cloned().collect();
        v.sort();
        v
    }

    /// Answers applications received for the watched names.
    pub(super) fn follow(
        &mut self,
        answers: impl Iterator<Item = Answer>,
        tracer: &Tracer<'_>,
        log: &Log,
    ) {
        for a in answers {
            let name = String::from_utf8_lossy(&a.name).into_owned();
            apply(
                tracer,
                &self.watch.answer(&name, &a.addrs, mono_now_ns()),
                log,
            );
        }
    }
}

/// Starts the resolutions that are due, each on the blocking pool
/// (getaddrinfo blocks), bounded; results come back on `tx`.
fn resolve_due(watch: &mut Watch, tx: &tokio::sync::mpsc::UnboundedSender<Resolved>) {
    for name in watch.due(mono_now_ns()) {
        let tx = tx.clone();
        tokio::spawn(async move {
            use std::net::ToSocketAddrs;
            let n = name.clone();
            let lookup = tokio::task::spawn_blocking(move || {
                (n.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>())
                    .map_err(|e| e.to_string())
            });
            let r = match tokio::time::timeout(RESOLVE_WITHIN, lookup).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", RESOLVE_WITHIN.as_secs())),
            };
            let _ = tx.send((name, r));
        });
    }
}

/// Puts a followed name's address changes into the BPF destination trie.
fn apply(tracer: &Tracer<'_>, changes: &[Change], log: &Log) {
    for c in changes {
        let r = match *c {
            Change::Add(a) => tracer.add_dest(Prefix::host(a)),
            Change::Remove(a) => tracer.remove_dest(Prefix::host(a)),
        };
        if let Err(e) = r {
            log.warn(format_args!("{e:#}"));
        }
    }
}

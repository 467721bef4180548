//! DNS failures (issue 32): each DNS record, query or answer, goes to the
//! lookups (`dns::lookup`) with who sent or received it, the server, and
//! the process's resolv.conf; the verdicts come out at each tick. Pure:
//! resolv.conf comes through [`ResolvConfs`], which the daemon backs with
//! a bounded reader of /proc.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dns::lookup::{self, Lookups, Server, Verdict, Who};
use crate::dns::resolvconf::Conf;
use crate::dns::{answer, outcome};
use crate::event::skel::RawDns;
use crate::event::Comm;

/// A process's resolv.conf, as its own mount namespace has it; None when
/// it cannot be read (the process is gone, or the file is not there).
/// `netns` is its network namespace's inode: see `ProcResolvConfs`.
pub trait ResolvConfs {
    fn conf(&mut self, pid: u32, netns: u32, now_ns: u64) -> Option<Arc<Conf>>;
    /// Reads refused or failed, so far.
    fn unreadable(&self) -> u64 {
        0
    }
}

/// For tests: every process has this one.
pub struct Fixed(pub Option<Arc<Conf>>);

impl ResolvConfs for Fixed {
    fn conf(&mut self, _: u32, _: u32, _: u64) -> Option<Arc<Conf>> {
        self.0.clone()
    }
}

pub struct DnsFailures {
    lookups: Lookups,
    confs: Box<dyn ResolvConfs>,
}

/// The server of a record (where its query went, whence its answer came).
fn server(raw: &RawDns) -> Option<Server> {
    let addr = match raw.family {
        2 => IpAddr::from(<[u8; 4]>::try_from(&raw.peer[..4]).ok()?),
        10 => IpAddr::from(raw.peer).to_canonical(),
        _ => return None,
    };
    Some(Server {
        addr,
        port: raw.port,
    })
}

impl DnsFailures {
    pub fn new(cfg: lookup::Config, confs: Box<dyn ResolvConfs>) -> Self {
        DnsFailures {
            lookups: Lookups::new(cfg),
            confs,
        }
    }

    /// A TCP connection to port 53 opened by `pid` (its record carries
    /// no message): a truncated answer's retry.
    pub fn tcp_connect(&mut self, raw: &RawDns) {
        self.lookups.tcp_connect(raw.pid, raw.ts_ns);
    }

    /// One DNS message of a record (a TCP record may hold several).
    pub fn record(&mut self, raw: &RawDns, payload: &[u8]) {
        if raw.query != 0 {
            let Some(q) = answer::parse_query(payload) else {
                return;
            };
            let who = Who {
                pid: raw.pid,
                uid: raw.uid,
                cgroup_id: raw.cgroup_id,
                comm: Comm::new(&raw.comm),
            };
            let conf = self.confs.conf(raw.pid, raw.netns, raw.ts_ns);
            self.lookups.query(
                who,
                conf.as_deref(),
                raw.sk,
                &q,
                server(raw),
                raw.tcp != 0,
                raw.ts_ns,
            );
        } else if let Some(r) = outcome::classify(payload) {
            // The query's own server is what a failure names: the answer's
            // source on an unconnected socket is only a hint.
            self.lookups.answer(raw.sk, &r, None, raw.ts_ns);
        }
    }

    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Verdict>) {
        self.lookups.tick(now_ns, out);
    }

    pub fn finish(&mut self, out: &mut Vec<Verdict>) {
        self.lookups.finish(out);
    }

    pub fn stats(&self) -> (lookup::Stats, u64) {
        (self.lookups.stats(), self.confs.unreadable())
    }
}

/// Where verdicts go: the engine's output, as parts (this module does not
/// know the engine).
pub struct Sinks<'a> {
    pub lines: &'a mut Vec<u8>,
    pub line_count: &'a mut u64,
    /// Alert sinks on: the verdict is already once per lookup and folded
    /// per source, so no window of its own.
    pub alerts: Option<&'a mut Vec<crate::alert::policy::Alert>>,
    pub notices: Option<&'a mut Vec<crate::event::notice::Notice>>,
}

/// Who a verdict is about: its process's cgroup id.
pub fn cgroup_of(v: &Verdict) -> u64 {
    match v {
        Verdict::Failed(f) => f.who.cgroup_id,
        Verdict::Folded(s) => s.who.cgroup_id,
    }
}

/// One verdict, with its process's attribution, to the stream and sinks.
pub fn emit(
    v: Verdict,
    attr: Option<&crate::event::Attribution>,
    printer: &crate::output::Printer,
    now_ns: u64,
    out: Sinks<'_>,
) {
    use crate::alert::policy::Alert;
    match v {
        Verdict::Failed(f) => {
            if printer.resolve_failed(out.lines, &f, attr) {
                *out.line_count += 1;
            }
            if let Some(n) = out.notices {
                n.push(crate::event::notice::Notice {
                    what: crate::event::notice::What::ResolveFailed(Box::new(f.clone())),
                    attribution: attr.cloned(),
                });
            }
            if let Some(a) = out.alerts {
                a.push(Alert::ResolveFailed(Box::new(f), attr.cloned()));
            }
        }
        Verdict::Folded(s) => {
            if printer.resolve_folded(out.lines, &s, attr, now_ns) {
                *out.line_count += 1;
            }
            if let Some(a) = out.alerts {
                a.push(Alert::ResolveFolded(Box::new(s), attr.cloned()));
            }
        }
    }
}

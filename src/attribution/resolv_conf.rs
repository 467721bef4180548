//! Each process's own /etc/resolv.conf (issue 32), for its lookups' search
//! list and timeouts: `/proc/PID/root/etc/resolv.conf`, so a container's
//! or an `ip netns exec`'s is read, not the host's. Read at most
//! [`MAX_BYTES`], cached per mount namespace (the inode of
//! `/proc/PID/ns/mnt`) for [`CONF_TTL_NS`], and the namespace per pid for
//! [`PID_TTL_NS`]: a query costs a hash lookup, a new process one stat.
//! Both caches are bounded; when full they are cleared (counted by the
//! reads that follow).
//!
//! A process that is gone before its query is read (a `getent` that got
//! its answer in a millisecond) has no /proc entry left: its network
//! namespace's last resolv.conf read stands in, for [`CONF_TTL_NS`]. The
//! processes of one network namespace share one in practice: a pod's
//! containers, `ip netns exec` (which mounts /etc/netns/NAME/resolv.conf),
//! the host's services. Else the lookup is per query, and says so.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dns::resolvconf::Conf;
use crate::pipeline::dns_failures::ResolvConfs;

pub const MAX_BYTES: u64 = 64 * 1024;
const CONF_TTL_NS: u64 = 30_000_000_000;
const PID_TTL_NS: u64 = 5_000_000_000;
const MAX_PIDS: usize = 8192;
const MAX_NAMESPACES: usize = 1024;

pub struct ProcResolvConfs {
    proc: PathBuf,
    /// pid → its mount namespace's inode, when looked at.
    pids: HashMap<u32, (Option<u64>, u64)>,
    /// Mount namespace → its resolv.conf (None: unreadable), when read.
    confs: HashMap<u64, (Option<Arc<Conf>>, u64)>,
    /// Network namespace → the last resolv.conf read in it, when.
    by_netns: HashMap<u32, (Arc<Conf>, u64)>,
    unreadable: u64,
}

impl ProcResolvConfs {
    pub fn new() -> Self {
        Self::at("/proc")
    }

    /// Under another /proc (tests).
    pub fn at(proc: impl Into<PathBuf>) -> Self {
        ProcResolvConfs {
            proc: proc.into(),
            pids: HashMap::new(),
            confs: HashMap::new(),
            by_netns: HashMap::new(),
            unreadable: 0,
        }
    }

    fn read(&self, pid: u32) -> Option<Conf> {
        let f = std::fs::File::open(self.proc.join(format!("{pid}/root/etc/resolv.conf"))).ok()?;
        let mut text = Vec::new();
        f.take(MAX_BYTES).read_to_end(&mut text).ok()?;
        Some(Conf::parse(&text))
    }
}

/// Whether other users' resolv.conf can be read here, through
/// `/proc/PID/root`: that takes ptrace rights over them, CAP_SYS_PTRACE
/// (without it, and under `ProtectProc=invisible`, their /proc entries
/// are not even seen). Read from `/proc/self/status`.
pub fn others_readable() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| has_sys_ptrace(&s))
}

/// CAP_SYS_PTRACE (bit 19) in a status file's `CapEff:`.
fn has_sys_ptrace(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// The start line's words for it.
pub fn describe(readable: bool) -> &'static str {
    if readable {
        "DNS lookups judged by each process's resolv.conf (search list, ndots)"
    } else {
        "DNS lookups judged query by query (lookup=per_query) where a process's resolv.conf \
         is unreadable: without CAP_SYS_PTRACE, other users' /proc/PID/root is"
    }
}

impl Default for ProcResolvConfs {
    fn default() -> Self {
        Self::new()
    }
}

impl ResolvConfs for ProcResolvConfs {
    fn conf(&mut self, pid: u32, netns: u32, now_ns: u64) -> Option<Arc<Conf>> {
        let c = self.own(pid, now_ns);
        match &c {
            Some(c) => {
                if self.by_netns.len() >= MAX_NAMESPACES && !self.by_netns.contains_key(&netns) {
                    self.by_netns.clear();
                }
                self.by_netns.insert(netns, (c.clone(), now_ns));
            }
            None => {
                if let Some((c, at)) = self.by_netns.get(&netns) {
                    if now_ns.saturating_sub(*at) < CONF_TTL_NS {
                        return Some(c.clone());
                    }
                }
                self.unreadable += 1;
            }
        }
        c
    }

    fn unreadable(&self) -> u64 {
        self.unreadable
    }
}

impl ProcResolvConfs {
    /// The process's own, through /proc.
    fn own(&mut self, pid: u32, now_ns: u64) -> Option<Arc<Conf>> {
        let ns = match self.pids.get(&pid) {
            Some(&(ns, at)) if now_ns.saturating_sub(at) < PID_TTL_NS => ns,
            _ => {
                let ns = std::fs::metadata(self.proc.join(format!("{pid}/ns/mnt")))
                    .ok()
                    .map(|m| m.ino());
                if self.pids.len() >= MAX_PIDS {
                    self.pids.clear();
                }
                self.pids.insert(pid, (ns, now_ns));
                ns
            }
        };
        // The process is gone (or /proc hides it): nothing to read.
        let ns = ns?;
        if let Some((c, at)) = self.confs.get(&ns) {
            if now_ns.saturating_sub(*at) < CONF_TTL_NS {
                return c.clone();
            }
        }
        let c = self.read(pid).map(Arc::new);
        if self.confs.len() >= MAX_NAMESPACES {
            self.confs.clear();
        }
        self.confs.insert(ns, (c.clone(), now_ns));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_sys_ptrace_is_read_from_capeff() {
        assert!(has_sys_ptrace("Name:\tx\nCapEff:\t000001ffffffffff\n"));
        assert!(!has_sys_ptrace("CapEff:\t00000000a80425fb\n"));
        assert!(has_sys_ptrace("CapEff:\t0000000000080000\n"));
        assert!(!has_sys_ptrace("CapPrm:\t000001ffffffffff\n"));
    }

    #[test]
    fn this_process_s_own_is_read_and_a_gone_pid_is_none() {
        let mut r = ProcResolvConfs::new();
        let me = std::process::id();
        let readable = std::fs::File::open("/etc/resolv.conf").is_ok();
        assert_eq!(r.conf(me, 7, 0).is_some(), readable);
        assert!(r.conf(u32::MAX - 1, 8, 0).is_none());
        assert!(r.unreadable() >= 1);
        // Gone, in a namespace where one was read: that one.
        assert_eq!(r.conf(u32::MAX - 1, 7, 1).is_some(), readable);
        assert!(r.conf(u32::MAX - 1, 7, CONF_TTL_NS).is_none());
    }
}

//! Who holds a socket found in SYN_SENT at start: the task the kernel's
//! task-file walk found holding it (`seed_tasks` in the BPF program), in
//! whatever network or PID namespace it runs. The ids are the kernel's
//! (the init namespace's tgid, the cgroup v2 id), as for live attempts.

use crate::event::{Caller, Comm};
use crate::tracer::Seed;

/// The holder of a seed; None for a socket no task holds (found by
/// iter/tcp only: the kernel's own clients).
pub fn owner(s: &Seed) -> Option<Caller> {
    if s.pid == 0 {
        return None;
    }
    Some(Caller {
        pid: s.pid,
        // The walk names the process, not the thread that connected.
        tid: s.pid,
        uid: s.uid,
        cgroup_id: s.cgroup_id,
        comm: Comm::new(&s.comm),
        process: Comm::new(&s.pcomm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_its_holder_or_nobody() {
        let mut s = Seed {
            pid: 4242,
            uid: 1000,
            cgroup_id: 77,
            ..Default::default()
        };
        s.comm[..6].copy_from_slice(b"worker");
        s.pcomm[..7].copy_from_slice(b"python3");
        let c = owner(&s).expect("held");
        assert_eq!((c.pid, c.tid, c.uid, c.cgroup_id), (4242, 4242, 1000, 77));
        assert_eq!(c.comm.to_string(), "worker");
        assert_eq!(c.process.to_string(), "python3");
        // From iter/tcp alone: a socket no file holds.
        assert_eq!(owner(&Seed::default()), None);
    }
}

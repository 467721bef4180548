//! Who owns a socket, from /proc: for the attempts already in SYN_SENT when
//! tcpstate starts, whose caller the kernel did not record. Best effort: a
//! hardened service sees only its own processes (ProtectProc=invisible), and
//! then the owner stays unknown.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::event::{Caller, Comm};

/// The process holding socket inode `ino` open, by a scan of /proc/*/fd.
pub fn owner(ino: u64) -> Option<Caller> {
    let want = format!("socket:[{ino}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if holds {
            return Some(describe(pid, &proc_entry.path()));
        }
    }
    None
}

fn describe(pid: u32, dir: &Path) -> Caller {
    let comm = std::fs::read(dir.join("comm")).unwrap_or_default();
    let comm = Comm::new(comm.strip_suffix(b"\n").unwrap_or(&comm));
    let uid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    Caller {
        pid,
        tid: pid,
        uid,
        cgroup_id: cgroup_id(dir).unwrap_or(0),
        comm,
        process: comm,
    }
}

/// The cgroup v2 id of a process: the inode of its cgroup's directory.
fn cgroup_id(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = crate::cgroup::v2_mount(&mounts)?;
    let path = format!("{}{}", mount.display(), rel.trim_end());
    std::fs::metadata(path).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_of_its_own_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ino = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&l)
        ))
        .unwrap()
        .ino();
        let c = owner(ino).expect("the test process owns it");
        assert_eq!(c.pid, std::process::id());
        assert_eq!(owner(u64::MAX), None);
    }
}

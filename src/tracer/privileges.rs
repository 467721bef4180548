//! Whether this process may load BPF at all, asked before the kernel
//! would only say EPERM.

use crate::exit::{Fatal, Kind};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Fails early, and clearly, where the kernel would only say EPERM.
pub fn check_privileges() -> Result<(), Fatal> {
    let Some(caps) = effective_caps() else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    Err(Fatal::new(
        Kind::Privilege,
        "insufficient privileges: run as root, or with CAP_BPF and CAP_PERFMON \
         (e.g. systemd AmbientCapabilities=CAP_BPF CAP_PERFMON)",
    ))
}

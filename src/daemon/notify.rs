//! systemd's readiness protocol (sd_notify): datagrams to $NOTIFY_SOCKET;
//! and its fd store: fds sent with FDSTORE=1 come back on the next start
//! as $LISTEN_FDS.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// The first fd systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// Sends `state` (e.g. "READY=1") when $NOTIFY_SOCKET is set; does nothing
/// otherwise. Abstract sockets are written `@name`.
pub fn notify(state: &str) -> io::Result<()> {
    notify_with_fds(state, &[])
}

/// As [`notify`], with `fds` attached (SCM_RIGHTS), as FDSTORE=1 needs.
pub fn notify_with_fds(state: &str, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let path = path.as_bytes();
    let to = match path.strip_prefix(b"@") {
        Some(name) => UnixAddr::new_abstract(name)?,
        None => UnixAddr::new(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    sendmsg(
        sock.as_raw_fd(),
        &[io::IoSlice::new(state.as_bytes())],
        cmsgs,
        MsgFlags::empty(),
        Some(&to),
    )?;
    Ok(())
}

/// The fds systemd passed this process, with their names ($LISTEN_FDS,
/// $LISTEN_FDNAMES): what the fd store kept from the previous process.
/// Empty outside systemd or when they were meant for another process.
pub fn listen_fds() -> Vec<(String, OwnedFd)> {
    let var = |k| std::env::var(k).ok();
    let for_us = var("LISTEN_PID").and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let n = var("LISTEN_FDS").and_then(|n| n.parse::<RawFd>().ok());
    let (true, Some(n)) = (for_us, n) else {
        return Vec::new();
    };
    let names = var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':');
    (LISTEN_FDS_START..LISTEN_FDS_START + n)
        .map(|fd| {
            // Ours alone: nothing else in the process knows these fds.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            // SAFETY: systemd passed fds LISTEN_FDS_START.. to this pid
            // (LISTEN_PID), open, and nothing else owns them.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            (names.next().unwrap_or("unknown").to_string(), owned)
        })
        .collect()
}

/// Most fds one stash carries (the kernel side has about ten).
const STASH_MAX_FDS: usize = 64;

/// Puts `fds`, with `names` (one per fd), in flight in a fresh socket
/// pair and returns the receiving end: one fd that carries them all. The
/// fd store takes it as it is; stored one by one, systemd would keep only
/// one BPF map and one link, where it cannot tell apart fds that share an
/// inode (without kcmp, all BPF maps and all links do).
pub fn stash(names: &[&str], fds: &[BorrowedFd<'_>]) -> io::Result<OwnedFd> {
    use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags};
    use nix::sys::socket::{SockFlag, SockType, UnixAddr};
    let (tx, rx) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    sendmsg::<UnixAddr>(
        tx.as_raw_fd(),
        &[io::IoSlice::new(names.join(":").as_bytes())],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(rx)
}

/// What [`stash`] put in flight: its fds, with their names.
pub fn unstash(rx: &OwnedFd) -> io::Result<Vec<(String, OwnedFd)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; STASH_MAX_FDS]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(
        rx.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(r) = c {
            // SAFETY: the kernel just installed these fds in this process
            // for this message; nothing else knows them.
            fds.extend(r.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let len = msg.bytes;
    let names = String::from_utf8_lossy(&buf[..len]).into_owned();
    Ok(names.split(':').map(str::to_string).zip(fds).collect())
}

//! The kernel side a restart keeps. Under systemd the loaded side's ring
//! buffer, counters, gate and links go to the service's fd store (in one
//! socket, see `daemon::notify::stash`); systemd
//! hands them to the next process on `systemctl restart` (and the package's
//! upgrade, which restarts), and closes them on `stop`, which detaches
//! everything. Between the two processes the old programs go on recording
//! into the kept ring, and the new process reads on where the old one
//! stopped: nothing falls between them.
//!
//! The new process always loads its own programs, with its configuration's
//! filters and hooks; it keeps only the ring buffer, the counters and the
//! gate, and only from the same build with the same ring size (else it
//! builds afresh, and says why).

use std::os::fd::OwnedFd;

/// The names the fds are stored under: this build and ring size, so a
/// process finds only what it can reuse.
pub fn store_prefix(ring_bytes: u32) -> String {
    format!("tcpstate-{}-{ring_bytes}-", env!("TCPSTATE_BPF_ID"))
}

/// What a previous process left in the fd store, for reuse.
pub struct Kept {
    pub events: OwnedFd,
    pub counters: OwnedFd,
    pub gate: OwnedFd,
    /// The previous load's links: closed once this load records.
    pub links: Vec<OwnedFd>,
}

/// How this start came by its kernel side, for the start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Nothing kept: loaded afresh.
    Fresh,
    /// The previous process's ring buffer, counters and gate, read on.
    Kept,
    /// Something was kept but cannot be reused (why): loaded afresh.
    Rebuilt(String),
}

impl Handover {
    /// For the start line; empty for a plain start.
    pub fn describe(&self) -> String {
        match self {
            Handover::Fresh => String::new(),
            Handover::Kept => "; kernel side kept from the previous process (its ring buffer \
                 read on, programs reloaded for this configuration)"
                .into(),
            Handover::Rebuilt(why) => format!(
                "; kernel side rebuilt: the previous process's {why}, its unread records dropped"
            ),
        }
    }
}

/// Sorts the fds systemd passed (name, fd) into what this process can
/// reuse. Fds it cannot use are dropped (closed) here; the caller removes
/// their names from the store.
pub fn sort(fds: Vec<(String, OwnedFd)>, ring_bytes: u32) -> (Option<Kept>, Handover) {
    let ours: Vec<_> = fds
        .into_iter()
        .filter(|(n, _)| n.starts_with("tcpstate-"))
        .collect();
    if ours.is_empty() {
        return (None, Handover::Fresh);
    }
    let prefix = store_prefix(ring_bytes);
    let (mut events, mut counters, mut gate, mut links) = (None, None, None, Vec::new());
    let mut foreign = None;
    for (name, fd) in ours {
        match name.strip_prefix(&prefix) {
            Some("events") => events = Some(fd),
            Some("counters") => counters = Some(fd),
            Some("gate") => gate = Some(fd),
            Some("link") => links.push(fd),
            _ => foreign = Some(name),
        }
    }
    if let Some(name) = foreign {
        let build = format!("tcpstate-{}-", env!("TCPSTATE_BPF_ID"));
        let why = if name.starts_with(&build) {
            "ring buffer had another size"
        } else {
            "kernel side was built by another build"
        };
        return (None, Handover::Rebuilt(why.into()));
    }
    match (events, counters, gate) {
        (Some(events), Some(counters), Some(gate)) => (
            Some(Kept {
                events,
                counters,
                gate,
                links,
            }),
            Handover::Kept,
        ),
        _ => (None, Handover::Rebuilt("kernel side was incomplete".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn named(ring: u32, what: &[&str]) -> Vec<(String, OwnedFd)> {
        what.iter()
            .map(|w| (format!("{}{w}", store_prefix(ring)), fd()))
            .collect()
    }

    #[test]
    fn the_same_build_and_ring_size_is_kept_with_its_links() {
        let (k, h) = sort(
            named(4096, &["events", "counters", "gate", "link", "link"]),
            4096,
        );
        assert_eq!(h, Handover::Kept);
        assert_eq!(k.unwrap().links.len(), 2);
    }

    #[test]
    fn another_ring_size_another_build_or_a_part_missing_is_rebuilt() {
        let (k, h) = sort(named(4096, &["events", "counters", "gate"]), 8192);
        assert!(k.is_none());
        assert_eq!(h, Handover::Rebuilt("ring buffer had another size".into()));
        let other = vec![("tcpstate-0000000000000000-4096-events".to_string(), fd())];
        let (k, h) = sort(other, 4096);
        assert!(k.is_none());
        assert!(h.describe().contains("another build"), "{h:?}");
        let (k, h) = sort(named(4096, &["events", "gate"]), 4096);
        assert!(k.is_none());
        assert_eq!(h, Handover::Rebuilt("kernel side was incomplete".into()));
    }

    #[test]
    fn fds_of_others_are_left_alone() {
        let (k, h) = sort(vec![("socket".into(), fd())], 4096);
        assert!(k.is_none());
        assert_eq!(h, Handover::Fresh);
        assert_eq!(h.describe(), "");
    }
}

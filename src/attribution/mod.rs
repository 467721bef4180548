//! Who connected: the cgroup id each record carries, resolved to its path
//! (`cgroup`, the only part that reads the filesystem, through bounded
//! caches); what the path says, the systemd unit, container and pod
//! (`cgroup_path`, pure); and the containers' and pods' names from the
//! files their runtimes write (`containers`, with their formats parsed in
//! `runtime_names`, pure).

pub mod bounded;
pub mod cgroup;
pub mod cgroup_path;
pub mod containers;
pub mod resolv_conf;
pub mod runtime_names;

/// A scratch directory that stands in for a mount in the tests (the cgroup
/// tree, a runtime's state), removed when dropped.
#[cfg(test)]
pub(crate) mod scratch {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(crate) struct Scratch(pub PathBuf);

    impl Scratch {
        pub(crate) fn new(tag: &str) -> Scratch {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "tcpstate-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

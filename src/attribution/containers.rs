//! Container names, read from what each runtime writes on the host (no
//! API server, no socket): see `runtime_names` for the formats. Each
//! container id is looked up once, when its first attempt is seen, and
//! kept in a bounded cache after the container is gone, so a failure
//! reported later still names it.
//!
//! A file that is too large, not a regular file, unreadable or not the
//! format expected is refused, counted and said once (see
//! [`Names::take_warnings`]), by its path and why, never its content; the
//! container then has no name. Files are opened without following a
//! symlink: no runtime writes these as one.
//!
//! A container id found in a user's delegated subtree (see
//! `cgroup_path::delegation`) is the user's: any user can name a cgroup
//! after a system container. It is looked up only in that user's own
//! rootless storage (podman's and docker's, below the user's home and
//! `/run/user/UID`), from files that user owns, and cached apart from the
//! system's; else it has no name.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::attribution::bounded::Bounded;
use crate::attribution::runtime_names::{self, ContainerNames, ContainerRef, Refused, Runtime};

/// Container ids remembered (about 300 bytes each).
pub const MAX_ENTRIES: usize = 4096;
/// An OCI bundle's config.json or docker's config.v2.json: tens of KiB.
const MAX_CONFIG: u64 = 1 << 20;
/// containers/storage's containers.json: about 400 bytes a container.
const MAX_STORAGE_LIST: u64 = 16 << 20;
/// Refusals said one by one; past this only counted.
const MAX_WARNINGS: u64 = 10;

/// Where containerd keeps its running tasks' bundles, one directory per
/// namespace (`k8s.io`, `default`, `moby`).
const CONTAINERD_TASKS: &str = "run/containerd/io.containerd.runtime.v2.task";
const DOCKER: &str = "var/lib/docker/containers";
/// containers/storage (podman, CRI-O, buildah): the graph root and the run
/// root.
const STORAGE: &str = "var/lib/containers/storage/overlay-containers";
const STORAGE_RUN: &str = "run/containers/storage/overlay-containers";
/// A user's own, below the home directory (rootless docker and podman).
const ROOTLESS_DOCKER: &str = ".local/share/docker/containers";
const ROOTLESS_STORAGE: &str = ".local/share/containers/storage/overlay-containers";

/// A user's home directory, from the password database.
fn home_of(uid: u32) -> Option<PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.dir)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NameStats {
    /// Container ids looked up (each once while cached).
    pub lookups: u64,
    /// Of those, the ones a runtime named.
    pub named: u64,
    /// Files refused (too large, not regular, unreadable, malformed).
    pub refused: u64,
}

/// The cache, over the runtimes' files below `root` (`/` but in tests).
pub struct Names {
    root: PathBuf,
    /// By owner (None: the system's runtimes) and id.
    map: Bounded<(Option<u32>, String), Arc<ContainerNames>>,
    stats: NameStats,
    warnings: Vec<String>,
}

impl Names {
    pub fn new(root: impl Into<PathBuf>, cap: usize) -> Self {
        Names {
            root: root.into(),
            map: Bounded::new(cap),
            stats: NameStats::default(),
            warnings: Vec::new(),
        }
    }

    pub fn stats(&self) -> NameStats {
        self.stats
    }

    /// Already looked up (named or not), for the system's runtimes.
    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(&(None, id.to_string()))
    }

    /// The names of container `c`: cached, or read once from its runtime's
    /// files (each runtime's in turn where the cgroup path does not say);
    /// a user's from that user's storage alone.
    pub fn lookup(&mut self, c: &ContainerRef) -> Arc<ContainerNames> {
        let key = (c.owner, c.id.clone());
        if let Some(n) = self.map.get(&key) {
            return n.clone();
        }
        self.stats.lookups += 1;
        if let Some(uid) = c.owner {
            let names = Arc::new(self.read_rootless(uid, c.runtime, &c.id));
            self.stats.named += u64::from(!names.is_empty());
            self.map.insert(key, names.clone());
            return names;
        }
        let order: &[Runtime] = match c.runtime {
            Some(Runtime::Docker) => &[Runtime::Docker],
            Some(Runtime::Podman) => &[Runtime::Podman],
            Some(Runtime::Containerd) => &[Runtime::Containerd],
            Some(Runtime::Crio) => &[Runtime::Crio],
            None => &[Runtime::Containerd, Runtime::Crio, Runtime::Docker],
        };
        let mut names = ContainerNames::default();
        for r in order {
            names = self.read_runtime(*r, &c.id);
            if !names.is_empty() {
                break;
            }
        }
        if !names.is_empty() {
            self.stats.named += 1;
        }
        let names = Arc::new(names);
        self.map.insert(key, names.clone());
        names
    }

    /// A user's container, from that user's rootless storage: podman's
    /// containers.json and bundles, docker's config.v2.json. Only files
    /// the user owns count.
    fn read_rootless(&mut self, uid: u32, runtime: Option<Runtime>, id: &str) -> ContainerNames {
        let Some(home) = home_of(uid) else {
            return ContainerNames::default();
        };
        let home = self.root.join(home.strip_prefix("/").unwrap_or(&home));
        let owner = Some(uid);
        if matches!(runtime, Some(Runtime::Docker) | None) {
            let p = home.join(ROOTLESS_DOCKER).join(id).join("config.v2.json");
            let n = self.parse(&p, MAX_CONFIG, owner, runtime_names::docker_config);
            if !n.is_empty() {
                return n;
            }
        }
        if matches!(runtime, Some(Runtime::Podman) | None) {
            let p = home.join(ROOTLESS_STORAGE).join("containers.json");
            let n = self.parse(&p, MAX_STORAGE_LIST, owner, |j| {
                runtime_names::storage_containers(j, id).map(Option::unwrap_or_default)
            });
            if !n.is_empty() {
                return n;
            }
            let run = self
                .root
                .join(format!("run/user/{uid}/containers/overlay-containers"));
            for base in [run, home.join(ROOTLESS_STORAGE)] {
                let p = base.join(id).join("userdata/config.json");
                let n = self.parse(&p, MAX_CONFIG, owner, runtime_names::oci_bundle);
                if !n.is_empty() {
                    return n;
                }
            }
        }
        ContainerNames::default()
    }

    /// The refusals to say since the last call, one line each.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn read_runtime(&mut self, r: Runtime, id: &str) -> ContainerNames {
        match r {
            Runtime::Docker => {
                let p = self.root.join(DOCKER).join(id).join("config.v2.json");
                self.parse(&p, MAX_CONFIG, None, runtime_names::docker_config)
            }
            Runtime::Podman => {
                let p = self.root.join(STORAGE).join("containers.json");
                let from_list = self.parse(&p, MAX_STORAGE_LIST, None, |j| {
                    runtime_names::storage_containers(j, id).map(Option::unwrap_or_default)
                });
                if !from_list.is_empty() {
                    return from_list;
                }
                self.bundles_of_storage(id)
            }
            Runtime::Crio => self.bundles_of_storage(id),
            Runtime::Containerd => {
                let tasks = self.root.join(CONTAINERD_TASKS);
                let Ok(namespaces) = std::fs::read_dir(&tasks) else {
                    return ContainerNames::default();
                };
                // A handful of namespaces; the id is in one of them.
                let candidates: Vec<PathBuf> = namespaces
                    .flatten()
                    .map(|ns| ns.path().join(id).join("config.json"))
                    .filter(|p| p.exists())
                    .collect();
                for p in candidates {
                    let n = self.parse(&p, MAX_CONFIG, None, runtime_names::oci_bundle);
                    if !n.is_empty() {
                        return n;
                    }
                }
                ContainerNames::default()
            }
        }
    }

    /// The OCI bundle in containers/storage: CRI-O's is in the run root,
    /// podman's in the graph root.
    fn bundles_of_storage(&mut self, id: &str) -> ContainerNames {
        for base in [STORAGE_RUN, STORAGE] {
            let p = self.root.join(base).join(id).join("userdata/config.json");
            let n = self.parse(&p, MAX_CONFIG, None, runtime_names::oci_bundle);
            if !n.is_empty() {
                return n;
            }
        }
        ContainerNames::default()
    }

    /// Reads and parses one file; nothing for a file that is not there,
    /// nothing and a count for one that is refused.
    fn parse(
        &mut self,
        path: &Path,
        limit: u64,
        owner: Option<u32>,
        f: impl FnOnce(&[u8]) -> Result<ContainerNames, Refused>,
    ) -> ContainerNames {
        let why = match read_bounded(path, limit, owner) {
            Ok(None) => return ContainerNames::default(),
            Ok(Some(bytes)) => match f(&bytes) {
                Ok(n) => return n,
                Err(e) => e.to_string(),
            },
            Err(why) => why,
        };
        self.stats.refused += 1;
        if self.stats.refused <= MAX_WARNINGS {
            let more = if self.stats.refused == MAX_WARNINGS {
                "; further refusals are only counted"
            } else {
                ""
            };
            self.warnings.push(format!(
                "container names: refused {}: {why} ({} refused so far{more})",
                crate::output::text::Escaped(&path.to_string_lossy()),
                self.stats.refused
            ));
        }
        ContainerNames::default()
    }
}

/// The file's bytes: None when it does not exist; an error (said) when it
/// is larger than `limit`, not a regular file (a FIFO would block the
/// loop), a symlink, unreadable, or (with `owner`) not that uid's.
fn read_bounded(path: &Path, limit: u64, owner: Option<u32>) -> Result<Option<Vec<u8>>, String> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        // Never blocks, even where a FIFO or device was put in its place;
        // never follows a symlink put there.
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // What the packaged unit meets: say the fix where it is read.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(format!(
                "cannot open it: {e}; the runtimes' files are root's: give tcpstate \
                 CAP_DAC_READ_SEARCH (the drop-in in \
                 /usr/share/doc/tcpstate/docs/containers.md#names-under-the-packaged-unit)"
            ))
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err("a symlink, not followed".into())
        }
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if let Some(uid) = owner.filter(|u| *u != meta.uid()) {
        return Err(format!(
            "owned by uid {}, not the container's user {uid}",
            meta.uid()
        ));
    }
    if meta.len() > limit {
        return Err(format!("{} bytes, over the {limit} allowed", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("grew over the {limit} bytes allowed"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    use crate::attribution::scratch::Scratch as Root;

    impl Root {
        fn write(&self, rel: &str, content: &[u8]) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        fn names(&self) -> Names {
            Names::new(&self.0, MAX_ENTRIES)
        }
    }

    fn c(id: &str, runtime: Option<Runtime>) -> ContainerRef {
        ContainerRef {
            id: id.to_string(),
            runtime,
            owner: None,
        }
    }

    /// Issue 29, finding 1: a user's cgroup named after a system
    /// container: never the system's name, cached or not; the user's own
    /// rootless storage names it, from a file the user owns, never
    /// through a symlink.
    #[test]
    fn a_users_container_is_named_only_from_its_own_storage() {
        let root = Root::new("names-owned");
        root.write(
            &format!("{DOCKER}/{ID}/config.v2.json"),
            br#"{"Name":"/payments-db"}"#,
        );
        let mut n = root.names();
        let system = c(ID, Some(Runtime::Docker));
        let mine = ContainerRef {
            owner: Some(u32::MAX - 7),
            ..system.clone()
        };
        assert_eq!(n.lookup(&system).container.as_deref(), Some("payments-db"));
        assert!(n.lookup(&mine).is_empty(), "no such user: no name");
        // This process's user, with rootless docker in its home.
        let uid = nix::unistd::Uid::current().as_raw();
        let home = home_of(uid).unwrap();
        let home = home
            .strip_prefix("/")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        root.write(
            &format!("{home}/{ROOTLESS_DOCKER}/{ID}/config.v2.json"),
            br#"{"Name":"/mine"}"#,
        );
        let mine = ContainerRef {
            owner: Some(uid),
            ..system.clone()
        };
        assert_eq!(n.lookup(&mine).container.as_deref(), Some("mine"));
        assert_eq!(n.lookup(&system).container.as_deref(), Some("payments-db"));
        // A symlink to the system's file is not followed.
        let id2_dir = root.0.join(&home).join(ROOTLESS_DOCKER).join(ID2);
        std::fs::create_dir_all(&id2_dir).unwrap();
        let target = root.0.join(DOCKER).join(ID).join("config.v2.json");
        std::os::unix::fs::symlink(target, id2_dir.join("config.v2.json")).unwrap();
        let linked = ContainerRef {
            id: ID2.into(),
            ..mine
        };
        assert!(n.lookup(&linked).is_empty());
        let w = n.take_warnings();
        assert!(
            w.iter().any(|w| w.contains("a symlink, not followed")),
            "{w:?}"
        );
    }

    /// docker's on-disk format, in a temp dir: dockerd does not run on
    /// this machine (tests/containers.rs runs podman for real).
    #[test]
    fn docker_names_from_its_config() {
        let r = Root::new("names");
        r.write(
            &format!("var/lib/docker/containers/{ID}/config.v2.json"),
            br#"{"ID":"x","Name":"/web-1","Config":{"Labels":{}}}"#,
        );
        let mut n = r.names();
        let got = n.lookup(&c(ID, Some(Runtime::Docker)));
        assert_eq!(got.container.as_deref(), Some("web-1"));
        assert_eq!(
            n.stats(),
            NameStats {
                lookups: 1,
                named: 1,
                refused: 0
            }
        );
    }

    #[test]
    fn podman_from_storage_then_its_bundle() {
        let r = Root::new("names");
        r.write(
            "var/lib/containers/storage/overlay-containers/containers.json",
            format!(r#"[{{"id":"{ID}","names":["tsname-web"]}}]"#).as_bytes(),
        );
        let mut n = r.names();
        assert_eq!(
            n.lookup(&c(ID, Some(Runtime::Podman))).container.as_deref(),
            Some("tsname-web")
        );
        // Not in the list: nothing, and no error.
        assert!(n.lookup(&c(ID2, Some(Runtime::Podman))).is_empty());
        assert_eq!(n.stats().refused, 0);
    }

    /// Kubernetes' runtimes as their CRI plugins write the bundles; no
    /// kubelet runs here, so these are the documented formats.
    #[test]
    fn containerd_and_crio_pods_from_their_bundles() {
        let r = Root::new("names");
        r.write(
            &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"),
            br#"{"annotations":{"io.kubernetes.cri.container-name":"api",
                "io.kubernetes.cri.sandbox-name":"api-7f9c",
                "io.kubernetes.cri.sandbox-namespace":"payments"}}"#,
        );
        r.write(
            "run/containerd/io.containerd.runtime.v2.task/default/.keep",
            b"",
        );
        r.write(
            &format!("run/containers/storage/overlay-containers/{ID2}/userdata/config.json"),
            br#"{"annotations":{"io.kubernetes.container.name":"db",
                "io.kubernetes.pod.name":"db-0","io.kubernetes.pod.namespace":"data"}}"#,
        );
        let mut n = r.names();
        let a = n.lookup(&c(ID, Some(Runtime::Containerd)));
        assert_eq!(
            (
                a.container.as_deref(),
                a.pod.as_deref(),
                a.namespace.as_deref()
            ),
            (Some("api"), Some("api-7f9c"), Some("payments"))
        );
        // A cgroupfs kubepods path does not say which runtime: all are tried.
        let b = n.lookup(&c(ID2, None));
        assert_eq!(
            (
                b.container.as_deref(),
                b.pod.as_deref(),
                b.namespace.as_deref()
            ),
            (Some("db"), Some("db-0"), Some("data"))
        );
        assert_eq!(n.stats().named, 2);
    }

    #[test]
    fn looked_up_once_and_kept_after_the_container_is_gone() {
        let r = Root::new("names");
        let p = format!("var/lib/docker/containers/{ID}/config.v2.json");
        r.write(&p, br#"{"Name":"/web-1"}"#);
        let mut n = r.names();
        assert!(n.lookup(&c(ID, Some(Runtime::Docker))).container.is_some());
        std::fs::remove_dir_all(r.0.join("var/lib/docker")).unwrap();
        let again = n.lookup(&c(ID, Some(Runtime::Docker)));
        assert_eq!(again.container.as_deref(), Some("web-1"));
        assert_eq!(n.stats().lookups, 1);
        // Unknown ids are cached too: no second read for them either.
        assert!(n.lookup(&c(ID2, None)).is_empty());
        assert!(n.lookup(&c(ID2, None)).is_empty());
        assert_eq!(n.stats().lookups, 2);
    }

    #[test]
    fn the_cache_is_bounded() {
        let r = Root::new("names");
        let mut n = Names::new(&r.0, 2);
        for i in 0..5 {
            n.lookup(&c(&format!("{i:064x}"), None));
        }
        assert_eq!(n.map.len(), 2);
        assert!(n.contains(&format!("{:064x}", 4)));
        assert!(!n.contains(&format!("{:064x}", 0)));
    }

    #[test]
    fn huge_unreadable_or_hostile_files_are_refused_and_counted() {
        let r = Root::new("names");
        // Too large (sparse: no disk used).
        let big = r.0.join(DOCKER).join(ID).join("config.v2.json");
        std::fs::create_dir_all(big.parent().unwrap()).unwrap();
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG + 1)
            .unwrap();
        // A FIFO in place of a file: must not block.
        let fifo = r.0.join(DOCKER).join(ID2).join("config.v2.json");
        std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Malformed, and a directory where a file should be.
        let id3 = format!("{:064x}", 3);
        r.write(
            &format!("var/lib/docker/containers/{id3}/config.v2.json"),
            b"{\"Name\":",
        );
        let id4 = format!("{:064x}", 4);
        std::fs::create_dir_all(r.0.join(DOCKER).join(&id4).join("config.v2.json")).unwrap();
        let mut n = r.names();
        for id in [ID, ID2, &id3, &id4] {
            assert!(n.lookup(&c(id, Some(Runtime::Docker))).is_empty(), "{id}");
        }
        assert_eq!(n.stats().refused, 4);
        let w = n.take_warnings();
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].contains("over the 1048576 allowed"), "{}", w[0]);
        assert!(w[1].contains("not a regular file"), "{}", w[1]);
        assert!(
            w[2].contains("not the expected JSON (cut short at line 1"),
            "{}",
            w[2]
        );
        assert!(n.take_warnings().is_empty());
    }

    /// Issue 29, finding 8: valid JSON of the wrong type is named and
    /// why, never echoed (serde's message quotes the value).
    #[test]
    fn a_refused_file_is_never_echoed() {
        let r = Root::new("names-echo");
        let secret = format!("\"TOPSECRET-{}\"", "x".repeat(300_000));
        r.write(&format!("{DOCKER}/{ID}/config.v2.json"), secret.as_bytes());
        r.write(
            &format!("{DOCKER}/{ID2}/config.v2.json"),
            br#"{"Name": ["TOPSECRET"]}"#,
        );
        let mut n = r.names();
        for id in [ID, ID2] {
            assert!(n.lookup(&c(id, Some(Runtime::Docker))).is_empty());
        }
        let w = n.take_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        for w in &w {
            assert!(!w.contains("TOPSECRET") && w.len() < 400, "{w}");
            assert!(w.contains("JSON of another shape at line 1 column"), "{w}");
        }
    }
}

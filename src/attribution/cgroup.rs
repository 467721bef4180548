//! Who made a connection, by cgroup: the cgroup v2 id the BPF program
//! records (`bpf_get_current_cgroup_id()`) resolved to its path under the
//! v2 mount, and what that path says: the systemd unit, the container, the
//! Kubernetes pod.
//!
//! The id is the cgroup's kernfs node id, which on 64-bit kernels is the
//! inode number of its directory under the v2 mount (checked on Linux 6.18:
//! `name_to_handle_at` on a cgroup directory returns an 8-byte
//! FILEID_KERNFS handle equal to `stat -c %i`; the root is 1). Kernfs ids
//! are 64-bit and never reused, so an id, once resolved, names the same
//! cgroup forever: entries are kept after the cgroup is removed (a process
//! that exited is still attributed) and only the oldest are evicted when
//! the cache is full.
//!
//! Lookups are hash hits; a miss walks the tree, at most once per
//! [`WALK_INTERVAL`]. A cgroup path is attacker-chosen inside a container
//! (or any delegated subtree): show it only through [`Escaped`].

use std::collections::HashSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attribution::bounded::Bounded;
pub use crate::attribution::cgroup_path::{container, container_ref, delegation, pod, unit, units};
use crate::attribution::containers::{self, NameStats, Names};
pub use crate::attribution::runtime_names::{ContainerRef, Runtime};
use crate::event::escape::text_of;
use crate::event::hash::FastHash;
use crate::event::Attribution;
use crate::pipeline::engine::Attributor;

/// At most this many cgroups are remembered (about 200 bytes each).
pub const MAX_ENTRIES: usize = 16 * 1024;
/// At most one walk of the tree per interval.
pub const WALK_INTERVAL: Duration = Duration::from_secs(1);
/// A walk never goes deeper than this (the kernel's default is unlimited).
const MAX_DEPTH: usize = 64;
/// Nor visits more directories than this.
const MAX_WALK: usize = 256 * 1024;

/// What a cgroup id resolved to (the pure type lives with the events).
pub type CgroupInfo = Attribution;

impl Attribution {
    pub fn new(id: u64, path: &str) -> Self {
        Attribution::owned(id, path, None)
    }

    /// `owned`: the first directory of the path a non-root uid owns (its
    /// component index, and the uid), as the walk found it.
    pub fn owned(id: u64, path: &str, owned: Option<(usize, u32)>) -> Self {
        let delegated = delegation(path, owned);
        let (unit, user_unit) = units(path, delegated);
        let container = container_ref(path);
        // A container below where the subtree starts is the user's own
        // (or a name it chose): only its own storage may name it.
        let owner = delegated.map(|(_, uid)| uid);
        Attribution {
            id,
            path: path.to_string(),
            unit: unit.map(str::to_string),
            user_unit: user_unit.map(str::to_string),
            owner,
            container: container.map(|c| c.id),
            pod: pod(path),
            container_name: None,
            pod_name: None,
            pod_namespace: None,
        }
    }
}

/// The cgroup v2 tree and a bounded cache of id → what it resolved to.
pub struct Cgroups {
    root: PathBuf,
    map: Bounded<u64, Arc<CgroupInfo>>,
    last_walk: Option<Instant>,
    walks: u64,
    /// The last id asked for and what it resolved to: a storm comes from
    /// one cgroup, and this spares it a clock read and a hash per event.
    last: Option<(u64, Arc<CgroupInfo>)>,
    /// Container names from the runtimes' files (None: not looked for).
    names: Option<Names>,
    /// Container cgroups whose names were looked for: once each.
    named: HashSet<u64, FastHash>,
}

impl Cgroups {
    /// Finds the cgroup v2 mount in /proc/mounts (`/sys/fs/cgroup` on
    /// pure-v2 hosts, `/sys/fs/cgroup/unified` on hybrid ones).
    pub fn open() -> io::Result<Self> {
        // /proc/self/mounts, not /proc/mounts: ProcSubset=pid hides the latter.
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let root = v2_mount(&mounts).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup2 file system in /proc/mounts",
            )
        })?;
        Ok(Cgroups::at(root, MAX_ENTRIES).with_names(Names::new("/", containers::MAX_ENTRIES)))
    }

    /// Names containers from the runtimes' files, as `names` reads them.
    pub fn with_names(mut self, names: Names) -> Self {
        self.names = Some(names);
        self
    }

    /// How the name lookups went.
    pub fn name_stats(&self) -> NameStats {
        self.names.as_ref().map(Names::stats).unwrap_or_default()
    }

    /// A cache over the tree mounted at `root`, of at most `cap` entries.
    pub fn at(root: PathBuf, cap: usize) -> Self {
        Cgroups {
            root,
            map: Bounded::new(cap),
            last_walk: None,
            walks: 0,
            last: None,
            names: None,
            named: HashSet::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cached entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Walks of the tree so far.
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// The cached entry, never touching the file system.
    pub fn get(&self, id: u64) -> Option<Arc<CgroupInfo>> {
        self.map.get(&id).cloned()
    }

    /// The entry for `id`: a hash hit, or on a miss one walk of the tree
    /// (unless one ran within [`WALK_INTERVAL`] of `now`). `None` for an
    /// id the tree does not hold (removed before it was ever seen) or
    /// while walks are rate-limited.
    pub fn lookup(&mut self, id: u64, now: Instant) -> Option<Arc<CgroupInfo>> {
        if let Some(i) = self.map.get(&id) {
            return Some(i.clone());
        }
        if self
            .last_walk
            .is_some_and(|t| now.saturating_duration_since(t) < WALK_INTERVAL)
        {
            return None;
        }
        self.refresh(now, Some(id));
        self.map.get(&id).cloned()
    }

    /// Walks the tree and caches every cgroup not cached yet; `want`, if
    /// found, is inserted last so that a full cache cannot evict it at once.
    pub fn refresh(&mut self, now: Instant, want: Option<u64>) {
        self.last_walk = Some(now);
        self.walks += 1;
        let mut found = Vec::new();
        walk(&self.root, &mut found);
        let mut wanted = None;
        for (id, path, owned) in found {
            if Some(id) == want {
                wanted = Some((path, owned));
            } else if !self.map.contains_key(&id) {
                self.insert(CgroupInfo::owned(id, &path, owned));
            }
        }
        if let (Some(id), Some((path, owned))) = (want, wanted) {
            if !self.map.contains_key(&id) {
                self.insert(CgroupInfo::owned(id, &path, owned));
            }
        }
    }

    /// Adds its container's names to a cached entry, the first time it is
    /// asked for (so a walk that caches a thousand containers reads no
    /// runtime file; their first attempts do, once each).
    fn name_container(&mut self, id: u64) {
        let Some(names) = self.names.as_mut() else {
            return;
        };
        let Some(info) = self.map.get(&id) else {
            return;
        };
        if info.container.is_none() || self.named.contains(&id) {
            return;
        }
        if self.named.len() >= self.map.cap().saturating_mul(2) {
            // Bounded: at worst a container's names are looked up again,
            // from the name cache.
            self.named.clear();
        }
        self.named.insert(id);
        let Some(mut c) = container_ref(&info.path) else {
            return;
        };
        c.owner = info.owner;
        let n = names.lookup(&c);
        if n.is_empty() {
            return;
        }
        let mut named = (**info).clone();
        named.container_name.clone_from(&n.container);
        named.pod_name.clone_from(&n.pod);
        named.pod_namespace.clone_from(&n.namespace);
        // Replaced in place: keeps its age.
        self.map.insert(id, Arc::new(named));
    }

    /// The name lookups' refusals to say, one line each.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.names
            .as_mut()
            .map(Names::take_warnings)
            .unwrap_or_default()
    }

    /// Caches an entry, evicting the oldest when full.
    pub fn insert(&mut self, info: CgroupInfo) {
        self.map.insert(info.id, Arc::new(info));
    }
}

/// A directory the walk found: inode, "/relative/path", and the first
/// directory on its way that a non-root uid owns (component index, uid).
type Found = (u64, String, Option<(usize, u32)>);

/// Every directory under `root`, the root itself as "/". Unreadable
/// directories (a cgroup removed meanwhile) are skipped. Names that are
/// not UTF-8 are escaped (`event::escape::text_of`). Each directory
/// outside a delegated subtree is stat'ed for its owner; inside one, its
/// children need not be.
fn walk(root: &Path, out: &mut Vec<Found>) {
    let Ok(meta) = std::fs::metadata(root) else {
        return;
    };
    out.push((meta.ino(), "/".to_string(), None));
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize, None)];
    while let Some((dir, rel, depth, owned)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if out.len() >= MAX_WALK {
                return;
            }
            // d_type from readdir: no stat per entry.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name();
            let child = format!("{rel}/{}", text_of(name.as_bytes()));
            let owned = owned.or_else(|| {
                let uid = e.metadata().ok()?.uid();
                (uid != 0).then_some((depth, uid))
            });
            out.push((e.ino(), child.clone(), owned));
            if depth + 1 < MAX_DEPTH {
                stack.push((e.path(), child, depth + 1, owned));
            }
        }
    }
}

/// The cgroup v2 mount point from the text of /proc/mounts: the standard
/// places first (`/sys/fs/cgroup` on a pure-v2 host, `/sys/fs/cgroup/unified`
/// on a hybrid one), else the first cgroup2 mount listed.
pub fn v2_mount(mounts: &str) -> Option<PathBuf> {
    let v2: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup2").then(|| unescape_mount(dir))
        })
        .collect();
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .find(|std| v2.iter().any(|m| m == *std))
        .map(|s| s.to_string())
        .or_else(|| v2.into_iter().next())
        .map(PathBuf::from)
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Untrusted text (a cgroup path, a unit or container name taken from it)
/// as one safe token: `text::Escaped`, the rules of `event::Comm`.
pub use crate::output::text::Escaped;

/// The engine's view: resolve at an attempt's start, read when shown.
impl Attributor for Cgroups {
    fn touch(&mut self, cgroup_id: u64) {
        if self.last.as_ref().is_some_and(|l| l.0 == cgroup_id) {
            return;
        }
        if self.lookup(cgroup_id, Instant::now()).is_some() {
            self.name_container(cgroup_id);
            self.last = self.map.get(&cgroup_id).map(|i| (cgroup_id, i.clone()));
        }
    }
    fn learn(&mut self, cgroup_id: u64, path: &str) {
        // The tree's own path wins (it is relative to this cgroup
        // namespace); the kernel's names stand in when the tree has none.
        if !self.map.contains_key(&cgroup_id) {
            self.lookup(cgroup_id, Instant::now());
        }
        if !self.map.contains_key(&cgroup_id) {
            self.insert(CgroupInfo::new(cgroup_id, path));
        }
        self.name_container(cgroup_id);
        if self.last.as_ref().is_some_and(|l| l.0 == cgroup_id) {
            self.last = self.map.get(&cgroup_id).map(|i| (cgroup_id, i.clone()));
        }
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Cgroups::take_warnings(self)
    }
    fn names_refused(&self) -> u64 {
        self.name_stats().refused
    }
    fn get(&self, cgroup_id: u64) -> Option<&Attribution> {
        if let Some((id, i)) = &self.last {
            if *id == cgroup_id {
                return Some(i);
            }
        }
        self.map.get(&cgroup_id).map(|a| &**a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn finds_the_v2_mount_on_hybrid_and_pure_hosts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
            cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert_eq!(
            v2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        assert_eq!(v2_mount(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        let v1 = "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(v2_mount(v1), None);
        assert_eq!(v2_mount(""), None);
        // A bind mount elsewhere, and an escaped space.
        let two = "cgroup2 /var/lib/x/cg cgroup2 rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        assert_eq!(v2_mount(two), Some(PathBuf::from("/sys/fs/cgroup")));
        let other = "cgroup2 /mnt/b cgroup2 rw 0 0\ncgroup2 /mnt/a cgroup2 rw 0 0\n";
        assert_eq!(v2_mount(other), Some(PathBuf::from("/mnt/b")));
        let esc = "cgroup2 /mnt/my\\040cg cgroup2 rw 0 0\n";
        assert_eq!(v2_mount(esc), Some(PathBuf::from("/mnt/my cg")));
        assert_eq!(unescape_mount("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mount("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn info_derives_everything_from_the_path() {
        let i = CgroupInfo::new(42, "/system.slice/nginx.service");
        assert_eq!(
            i,
            CgroupInfo {
                id: 42,
                path: "/system.slice/nginx.service".into(),
                unit: Some("nginx.service".into()),
                user_unit: None,
                owner: None,
                container: None,
                pod: None,
                container_name: None,
                pod_name: None,
                pod_namespace: None,
            }
        );
        // A user's: the manager is the unit, the user's own unit apart.
        let p =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope");
        let i = CgroupInfo::new(43, &p);
        assert_eq!(i.unit.as_deref(), Some("user@1000.service"));
        assert_eq!(i.user_unit, Some(format!("docker-{ID}.scope")));
        assert_eq!((i.owner, i.container.as_deref()), (Some(1000), Some(ID)));
    }

    /// Issue 29, finding 1: a directory a user owns starts its subtree,
    /// found by the walk of the real tree (a scratch one, chowned).
    #[test]
    fn the_walk_finds_who_owns_a_subtree() {
        let root = crate::attribution::scratch::Scratch::new("cg-owned");
        let deleg = root.0.join("system.slice/build.service");
        std::fs::create_dir_all(deleg.join("payload/postgresql.service")).unwrap();
        let uid = nix::unistd::Uid::current();
        let mut found = Vec::new();
        walk(&root.0, &mut found);
        let owner_of =
            |found: &[Found], rel: &str| found.iter().find(|f| f.1 == rel).map(|f| f.2).expect(rel);
        let pg = "/system.slice/build.service/payload/postgresql.service";
        if uid.is_root() {
            assert_eq!(owner_of(&found, pg), None, "root owns it all");
            nix::unistd::chown(&deleg, Some(1001.into()), None).unwrap();
            found.clear();
            walk(&root.0, &mut found);
            assert_eq!(owner_of(&found, pg), Some((1, 1001)));
            assert_eq!(owner_of(&found, "/system.slice"), None);
        } else {
            // Not root: the scratch tree is this user's from its top.
            assert_eq!(owner_of(&found, pg), Some((0, uid.as_raw())));
        }
        let i = CgroupInfo::owned(7, pg, owner_of(&found, pg));
        assert_eq!(i.user_unit.as_deref(), Some("postgresql.service"));
    }

    #[test]
    fn escaping_makes_one_safe_ascii_token() {
        let e = |s: &str| Escaped(s).to_string();
        assert_eq!(
            e("/system.slice/nginx.service"),
            "/system.slice/nginx.service"
        );
        assert_eq!(e("a b"), "a\\x20b");
        assert_eq!(e("a\\b"), "a\\\\b");
        assert_eq!(
            e("x\nTCP failure detected"),
            "x\\x0aTCP\\x20failure\\x20detected"
        );
        assert_eq!(e("é"), "\\xc3\\xa9");
        assert_eq!(e("\u{fffd}"), "\\xef\\xbf\\xbd");
        assert_eq!(e("\u{7f}\t"), "\\x7f\\x09");
        assert_eq!(e(""), "");
        assert_eq!(format!("\"{}\"", Escaped("a b")), "\"a\\x20b\"");
        for s in ["<!here>", "a\u{2028}b", "\"quoted\"", "\u{0}"] {
            let out = e(s);
            assert!(out.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{out}");
        }
        // JSON carries the token as it is, escaping only its backslashes.
        let hostile = "/system.slice/x\"\n\\.service";
        let json = serde_json::to_string(&e(hostile)).unwrap();
        assert_eq!(json, r#""/system.slice/x\"\\x0a\\\\.service""#);
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), e(hostile));
        // Same rules as a process name.
        let c = crate::event::Comm::new(b"a b\\\n\xc3\xa9");
        assert_eq!(c.to_string(), e("a b\\\né"));
    }

    fn tree() -> (Dir, Vec<PathBuf>) {
        let d = Dir::new("cgroup");
        let mut dirs = Vec::new();
        for rel in [
            "system.slice/nginx.service",
            "user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
            &format!("system.slice/docker-{ID}.scope"),
        ] {
            let p = d.0.join(rel);
            std::fs::create_dir_all(&p).unwrap();
            dirs.push(p);
        }
        (d, dirs)
    }

    use crate::attribution::scratch::Scratch as Dir;

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    /// A directory tree stands in for the cgroup mount: ids are inodes.
    #[test]
    fn resolves_ids_by_walking_and_caches_them() {
        let (d, dirs) = tree();
        let mut cg = Cgroups::at(d.0.clone(), MAX_ENTRIES);
        let t0 = Instant::now();
        let nginx = cg.lookup(ino(&dirs[0]), t0).expect("nginx");
        assert_eq!(nginx.path, "/system.slice/nginx.service");
        assert_eq!(nginx.unit.as_deref(), Some("nginx.service"));
        assert_eq!(cg.walks(), 1);
        // Everything else came with the same walk: hits, no new walk.
        let foo = cg.lookup(ino(&dirs[1]), t0).expect("foo");
        assert_eq!(foo.unit.as_deref(), Some("user@1000.service"));
        assert_eq!(foo.user_unit.as_deref(), Some("foo.service"));
        let dock = cg.lookup(ino(&dirs[2]), t0).expect("docker");
        assert_eq!(dock.container.as_deref(), Some(ID));
        let root = cg.lookup(ino(&d.0), t0).expect("root");
        assert_eq!(root.path, "/");
        assert_eq!(root.unit, None);
        assert_eq!(cg.walks(), 1);
        assert!(Arc::ptr_eq(&nginx, &cg.get(nginx.id).unwrap()));
    }

    #[test]
    fn misses_walk_at_most_once_a_second() {
        let (d, _) = tree();
        let mut cg = Cgroups::at(d.0.clone(), MAX_ENTRIES);
        let t0 = Instant::now();
        assert!(cg.lookup(u64::MAX, t0).is_none());
        assert_eq!(cg.walks(), 1);
        // A cgroup made just after the walk: not seen until a second later.
        let late = d.0.join("system.slice/late.service");
        std::fs::create_dir(&late).unwrap();
        assert!(cg
            .lookup(ino(&late), t0 + Duration::from_millis(500))
            .is_none());
        assert!(cg
            .lookup(u64::MAX, t0 + Duration::from_millis(999))
            .is_none());
        assert_eq!(cg.walks(), 1);
        let i = cg.lookup(ino(&late), t0 + WALK_INTERVAL).expect("late");
        assert_eq!(i.unit.as_deref(), Some("late.service"));
        assert_eq!(cg.walks(), 2);
    }

    #[test]
    fn removed_cgroups_stay_attributed() {
        let (d, dirs) = tree();
        let mut cg = Cgroups::at(d.0.clone(), MAX_ENTRIES);
        let t0 = Instant::now();
        let id = ino(&dirs[0]);
        assert!(cg.lookup(id, t0).is_some());
        std::fs::remove_dir(&dirs[0]).unwrap();
        cg.refresh(t0 + WALK_INTERVAL, None);
        let i = cg.lookup(id, t0 + WALK_INTERVAL * 3).expect("kept");
        assert_eq!(i.unit.as_deref(), Some("nginx.service"));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let mut cg = Cgroups::at(PathBuf::from("/nonexistent"), 3);
        for id in 1..=5 {
            cg.insert(CgroupInfo::new(id, &format!("/s/u{id}.service")));
        }
        assert_eq!(cg.len(), 3);
        assert!(cg.get(1).is_none() && cg.get(2).is_none());
        assert!(cg.get(3).is_some() && cg.get(5).is_some());
        // Replacing keeps the count.
        cg.insert(CgroupInfo::new(4, "/s/other.service"));
        assert_eq!(cg.len(), 3);
        assert_eq!(cg.get(4).unwrap().unit.as_deref(), Some("other.service"));
        // A tree larger than the cache: the wanted id still comes back.
        let (d, dirs) = tree();
        let mut small = Cgroups::at(d.0.clone(), 1);
        let want = ino(&dirs[0]);
        assert!(small.lookup(want, Instant::now()).is_some());
        assert_eq!(small.len(), 1);
        // A missing tree is a miss, not an error.
        assert!(cg.lookup(99, Instant::now()).is_none());
    }

    /// On this machine's real tree (when there is one): the root is id 1,
    /// and every id is its directory's inode.
    #[test]
    fn the_real_v2_root_resolves() {
        let Ok(mut cg) = Cgroups::open() else {
            eprintln!("no cgroup2 mount: skipped");
            return;
        };
        let root = ino(cg.root());
        let i = cg.lookup(root, Instant::now()).expect("root");
        assert_eq!(i.path, "/");
    }
}

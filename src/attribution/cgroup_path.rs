//! What a cgroup path says: the systemd unit, the container (and which
//! runtime made it), the Kubernetes pod, and whether it is in a user's
//! delegated subtree ([`delegation`]), where the names below are the
//! user's to choose. Pure: the path (and who owns which directory) is
//! given, nothing is read. Every runtime's layouts, by driver, are listed
//! at [`container_ref`].

use crate::attribution::runtime_names::{ContainerRef, Runtime};

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn is_unit(c: &str) -> bool {
    [".service", ".scope"]
        .iter()
        .any(|s| c.strip_suffix(s).is_some_and(|stem| !stem.is_empty()))
}

/// The innermost systemd unit: the last `*.service` or `*.scope` component.
///
/// A container's own scope (`docker-<id>.scope`, `cri-containerd-<id>.scope`)
/// is its unit: that is the name systemd knows it by (`systemctl status`,
/// `journalctl _SYSTEMD_UNIT=`), and it keeps containers apart when
/// failures are grouped by unit; the container id is given beside it. A
/// container that runs systemd itself (`docker-<id>.scope/system.slice/
/// nginx.service`) gets its inner service, by the same innermost rule.
pub fn unit(path: &str) -> Option<&str> {
    components(path).rev().find(|c| is_unit(c))
}

/// `user@UID.service`: systemd's manager of that user's units, whose
/// cgroup is delegated to the user (`Delegate=yes`).
fn user_manager(c: &str) -> Option<u32> {
    c.strip_prefix("user@")?
        .strip_suffix(".service")?
        .parse()
        .ok()
}

/// Where a user's delegated subtree starts: the component index and the
/// uid. The first of a `user@UID.service` component and `owned`, the
/// first directory a non-root uid owns (found by the walk of the tree).
/// Below it, the user may create any cgroup, named as anything: a system
/// service's name, a system container's id.
pub fn delegation(path: &str, owned: Option<(usize, u32)>) -> Option<(usize, u32)> {
    let by_name = components(path)
        .enumerate()
        .find_map(|(i, c)| user_manager(c).map(|uid| (i, uid)));
    match (by_name, owned) {
        (Some(n), Some(o)) => Some(if n.0 <= o.0 { n } else { o }),
        (n, o) => n.or(o),
    }
}

/// The unit and, in a delegated subtree, the user's unit, as journald's
/// `_SYSTEMD_UNIT` and `_SYSTEMD_USER_UNIT`: the innermost unit at or
/// above where the subtree starts (`user@1000.service`, or the service
/// that delegated it), and the innermost one below it.
pub fn units(path: &str, delegated: Option<(usize, u32)>) -> (Option<&str>, Option<&str>) {
    let Some((at, _)) = delegated else {
        return (unit(path), None);
    };
    let comps: Vec<&str> = components(path).collect();
    let (system, user) = comps.split_at((at + 1).min(comps.len()));
    (
        system.iter().rev().find(|c| is_unit(c)).copied(),
        user.iter().rev().find(|c| is_unit(c)).copied(),
    )
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The full 64-hex container id, from the innermost component shaped like
/// one; see [`container_ref`].
pub fn container(path: &str) -> Option<String> {
    container_ref(path).map(|c| c.id)
}

/// The container a cgroup path names, from the innermost component shaped
/// like one:
/// - systemd driver scopes: `docker-<id>.scope`, `libpod-<id>.scope`
///   (podman, which may put the processes one level down, in
///   `container`), `cri-containerd-<id>.scope`, `crio-<id>.scope`;
/// - containerd's names below its own unit under systemd:
///   `<slice>:cri-containerd:<id>` (also `:docker:` for cri-dockerd and
///   `:crio:`);
/// - cgroupfs driver paths: `/docker/<id>`, podman's
///   `/libpod_parent/libpod-<id>`, CRI-O's `crio-<id>` below its pod,
///   a bare `<id>` below `kubepods*` (`/kubepods/burstable/pod<uid>/<id>`,
///   by containerd or dockershim), and containerd's default
///   `/<namespace>/<id>` (`ctr`, nerdctl).
///
/// Conmon's cgroups (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`)
/// are not containers, nor is a bare id below a systemd slice or unit.
pub fn container_ref(path: &str) -> Option<ContainerRef> {
    let comps: Vec<&str> = components(path).collect();
    let found = |id: &str, runtime| {
        Some(ContainerRef {
            id: id.to_string(),
            runtime,
            owner: None,
        })
    };
    for (i, c) in comps.iter().enumerate().rev() {
        let stem = c.strip_suffix(".scope");
        for (prefix, runtime, bare) in [
            ("docker-", Runtime::Docker, false),
            ("libpod-", Runtime::Podman, true),
            ("cri-containerd-", Runtime::Containerd, false),
            ("crio-", Runtime::Crio, true),
        ] {
            // Bare (no .scope) only where the runtime's cgroupfs driver
            // names it so.
            let Some(name) = stem.or(bare.then_some(*c)) else {
                continue;
            };
            if let Some(id) = name.strip_prefix(prefix) {
                if is_hex64(id) {
                    return found(id, Some(runtime));
                }
            }
        }
        if let Some((head, id)) = c.rsplit_once(':') {
            let runtime = match head.rsplit(':').next().unwrap_or("") {
                "cri-containerd" => Some(Runtime::Containerd),
                "docker" => Some(Runtime::Docker),
                "crio" => Some(Runtime::Crio),
                _ => None,
            };
            if head.contains(':') && runtime.is_some() && is_hex64(id) {
                return found(id, runtime);
            }
        }
        if !is_hex64(c) {
            continue;
        }
        let above = &comps[..i];
        if above.contains(&"docker") {
            return found(c, Some(Runtime::Docker));
        }
        if above.iter().any(|a| a.starts_with("kubepods")) {
            return found(c, None);
        }
        // containerd's default cgroup, `/<namespace>/<id>`.
        if let [ns] = above {
            if !ns.contains('.') && !is_hex64(ns) {
                return found(c, Some(Runtime::Containerd));
            }
        }
    }
    None
}

fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The Kubernetes pod UID: from `kubepods-<qos>-pod<uid>.slice` or
/// `kubepods-pod<uid>.slice` (systemd driver, where the UID's dashes are
/// written as underscores; also as containerd's `<slice>:<runtime>:<id>`) or `pod<uid>` below a `kubepods` component
/// (cgroupfs driver).
pub fn pod(path: &str) -> Option<String> {
    let comps: Vec<&str> = components(path).collect();
    for (i, c) in comps.iter().enumerate().rev() {
        // containerd's own name below its unit: `<pod slice>:<runtime>:<id>`.
        let slice = c.split(':').next().unwrap_or(c);
        if let Some(stem) = slice.strip_suffix(".slice") {
            if stem.starts_with("kubepods-") {
                if let Some((_, uid)) = stem.rsplit_once("pod") {
                    let uid = uid.replace('_', "-");
                    if is_pod_uid(&uid) {
                        return Some(uid);
                    }
                }
            }
        }
        if let Some(uid) = c.strip_prefix("pod") {
            if is_pod_uid(uid) && comps[..i].iter().any(|a| a.starts_with("kubepods")) {
                return Some(uid.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "1c7b2f9e-3d4a-4b5c-8d6e-7f8091a2b3c4";

    fn uid_underscored() -> String {
        UID.replace('-', "_")
    }

    #[test]
    fn units_are_the_innermost_service_or_scope() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/", None),
            ("", None),
            ("/system.slice/nginx.service", Some("nginx.service")),
            ("/system.slice/nginx.service/workers", Some("nginx.service")),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
                Some("foo.service"),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/init.scope",
                Some("init.scope"),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service",
                Some("user@1000.service"),
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            ("/system.slice", None),
            ("/init.scope", Some("init.scope")),
            ("/docker/abc", None),
            ("/system.slice/.service", None),
            ("/system.slice/.scope", None),
            ("/system.slice/a.services", None),
            (
                "/system.slice/system-getty.slice/getty@tty1.service",
                Some("getty@tty1.service"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(unit(path), *want, "{path}");
        }
    }

    /// Issue 29, finding 1: below `user@UID.service`, or a directory a
    /// user owns, the unit is the delegating one and the user's own unit
    /// is apart.
    #[test]
    fn a_users_delegated_subtree_has_the_managers_unit_and_a_user_unit() {
        let p = "/user.slice/user-1000.slice/user@1000.service/app.slice/postgresql.service";
        let d = delegation(p, None);
        assert_eq!(d, Some((2, 1000)));
        assert_eq!(
            units(p, d),
            (Some("user@1000.service"), Some("postgresql.service"))
        );
        let p =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope");
        assert_eq!(
            units(&p, delegation(&p, None)),
            (
                Some("user@1000.service"),
                Some(format!("docker-{ID}.scope").as_str())
            )
        );
        // The manager itself: no user unit.
        let p = "/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(
            units(p, delegation(p, None)),
            (Some("user@1000.service"), None)
        );
        // A system service that delegates to its user (Delegate=yes,
        // User=): the directory's owner says so.
        let p = "/system.slice/build.service/payload/postgresql.service";
        let d = delegation(p, Some((1, 1001)));
        assert_eq!(d, Some((1, 1001)));
        assert_eq!(
            units(p, d),
            (Some("build.service"), Some("postgresql.service"))
        );
        // The first of the two; none: the innermost unit as ever.
        let p = "/user.slice/user-1000.slice/user@1000.service/a.service";
        assert_eq!(delegation(p, Some((3, 1000))), Some((2, 1000)));
        let p = "/system.slice/postgresql.service";
        assert_eq!(delegation(p, None), None);
        assert_eq!(units(p, None), (Some("postgresql.service"), None));
        for odd in ["user@x.service", "user@.service", "user@1000.scope"] {
            assert_eq!(
                delegation(&format!("/user.slice/{odd}/a.service"), None),
                None
            );
        }
    }

    #[test]
    fn a_containers_scope_is_its_unit_and_an_inner_service_wins() {
        let p = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(unit(&p), Some(format!("docker-{ID}.scope").as_str()));
        let p = format!("/system.slice/docker-{ID}.scope/system.slice/nginx.service");
        assert_eq!(unit(&p), Some("nginx.service"));
        assert_eq!(container(&p).as_deref(), Some(ID));
    }

    #[test]
    fn containers_from_systemd_driver_scopes() {
        for prefix in ["docker", "cri-containerd", "crio", "libpod"] {
            let p = format!("/system.slice/{prefix}-{ID}.scope");
            assert_eq!(container(&p).as_deref(), Some(ID), "{p}");
        }
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{ID}.scope",
            uid_underscored()
        );
        assert_eq!(container(&p).as_deref(), Some(ID));
        assert_eq!(pod(&p).as_deref(), Some(UID));
        assert_eq!(
            unit(&p),
            Some(format!("cri-containerd-{ID}.scope").as_str())
        );
        // podman puts the processes one level down.
        let p = format!("/machine.slice/libpod-{ID}.scope/container");
        assert_eq!(container(&p).as_deref(), Some(ID));
    }

    #[test]
    fn containers_from_cgroupfs_driver_paths() {
        assert_eq!(container(&format!("/docker/{ID}")).as_deref(), Some(ID));
        let p = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(container(&p).as_deref(), Some(ID));
        assert_eq!(pod(&p).as_deref(), Some(UID));
        // Guaranteed QoS has no QoS level.
        let p = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(container(&p).as_deref(), Some(ID));
        assert_eq!(pod(&p).as_deref(), Some(UID));
        // containerd's own naming below a systemd slice.
        let p = format!(
            "/system.slice/containerd.service/kubepods-burstable-pod{}.slice:cri-containerd:{ID}",
            uid_underscored()
        );
        assert_eq!(container(&p).as_deref(), Some(ID));
    }

    /// Each runtime's layouts, under both cgroup drivers, as each writes
    /// them (the podman cgroupfs one as podman 4.3 with runc makes it on
    /// this machine: tests/containers.rs).
    #[test]
    fn every_runtimes_layout_names_the_container_and_its_runtime() {
        use Runtime::*;
        let u = uid_underscored();
        let cases: Vec<(String, Option<Runtime>, Option<&str>)> = vec![
            // docker: systemd and cgroupfs drivers, rootless.
            (format!("/system.slice/docker-{ID}.scope"), Some(Docker), None),
            (format!("/docker/{ID}"), Some(Docker), None),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope"),
                Some(Docker),
                None,
            ),
            // podman: systemd (processes one level down) and cgroupfs.
            (format!("/machine.slice/libpod-{ID}.scope"), Some(Podman), None),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some(Podman), None),
            (format!("/libpod_parent/libpod-{ID}"), Some(Podman), None),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
                Some(Podman),
                None,
            ),
            // containerd: its systemd scope, its own names below its unit,
            // and its default `/<namespace>/<id>` (ctr, nerdctl).
            (format!("/system.slice/cri-containerd-{ID}.scope"), Some(Containerd), None),
            (
                format!("/system.slice/containerd.service/kubepods-burstable-pod{u}.slice:cri-containerd:{ID}"),
                Some(Containerd),
                Some(UID),
            ),
            (format!("/default/{ID}"), Some(Containerd), None),
            (format!("/k8s.io/{ID}"), None, None),
            // CRI-O: systemd scope; cgroupfs `crio-<id>` below its pod.
            (format!("/system.slice/crio-{ID}.scope"), Some(Crio), None),
            (format!("/kubepods/burstable/pod{UID}/crio-{ID}"), Some(Crio), Some(UID)),
            // Kubernetes, systemd driver: each QoS class, and guaranteed.
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"),
                Some(Containerd),
                Some(UID),
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{ID}.scope"),
                Some(Crio),
                Some(UID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{ID}.scope"),
                Some(Docker),
                Some(UID),
            ),
            // Kubernetes, cgroupfs driver: the runtime is not in the path.
            (format!("/kubepods/burstable/pod{UID}/{ID}"), None, Some(UID)),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), None, Some(UID)),
            (format!("/kubepods/pod{UID}/{ID}"), None, Some(UID)),
        ];
        for (path, runtime, pod_uid) in cases {
            if path.starts_with("/k8s.io/") {
                // A namespace name with a dot is not taken for one: a
                // bare id below anything dotted is just a directory.
                assert_eq!(container_ref(&path), None, "{path}");
                continue;
            }
            let c = container_ref(&path).unwrap_or_else(|| panic!("{path}: no container"));
            assert_eq!((c.id.as_str(), c.runtime), (ID, runtime), "{path}");
            assert_eq!(pod(&path).as_deref(), pod_uid, "{path}");
        }
    }

    #[test]
    fn lookalikes_are_not_containers_or_pods() {
        let short = &ID[..63];
        let upper = ID.to_uppercase();
        for p in [
            format!("/system.slice/docker-{short}.scope"),
            format!("/system.slice/docker-{ID}x.scope"),
            format!("/system.slice/docker-{upper}.scope"),
            format!("/system.slice/crio-conmon-{ID}.scope"),
            format!("/system.slice/libpod-conmon-{ID}.scope"),
            format!("/system.slice/docker-{ID}.service"),
            format!("/system.slice/other-{ID}.scope"),
            // A bare id outside docker/kubepods is just a directory name.
            format!("/system.slice/{ID}"),
            format!("/{ID}/docker"),
            format!("/{ID}"),
            format!("/a/b/{ID}"),
            format!("/libpod_parent/libpod-conmon-{ID}"),
            format!("/libpod_parent/conmon-{ID}"),
            format!("/system.slice/docker-{ID}"),
            format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"),
            "/".to_string(),
            "/docker".to_string(),
        ] {
            assert_eq!(container(&p), None, "{p}");
        }
        for p in [
            "/kubepods.slice/kubepods-besteffort.slice".to_string(),
            "/kubepods.slice/kubepods-besteffort-podxyz.slice".to_string(),
            format!("/system.slice/pod{UID}"),
            format!("/kubepods/burstable/pod{UID}x"),
            format!("/kubepods-besteffort-pod{}.scope", uid_underscored()),
        ] {
            assert_eq!(pod(&p), None, "{p}");
        }
    }

    #[test]
    fn pods_from_slices_and_cgroupfs() {
        for qos in ["besteffort", "burstable"] {
            let p = format!(
                "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice",
                uid_underscored()
            );
            assert_eq!(pod(&p).as_deref(), Some(UID), "{p}");
            assert_eq!(container(&p), None);
            assert_eq!(unit(&p), None);
        }
        let p = format!("/kubepods.slice/kubepods-pod{}.slice", uid_underscored());
        assert_eq!(pod(&p).as_deref(), Some(UID));
        // Static pods' UIDs are a 32-hex hash.
        let h = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            pod(&format!("/kubepods/besteffort/pod{h}")).as_deref(),
            Some(h)
        );
    }
}

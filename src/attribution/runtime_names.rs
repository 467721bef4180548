//! What container runtimes write on the host about a container, parsed:
//! its name, and for Kubernetes its pod's name and namespace and the
//! container's name in the pod. Pure: the bytes come from `containers`.
//!
//! The formats, as each runtime writes them:
//! - docker: `/var/lib/docker/containers/<id>/config.v2.json`, `"Name":
//!   "/web-1"`; under Kubernetes (dockershim, cri-dockerd) the labels
//!   `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace` and
//!   `io.kubernetes.container.name` in `Config.Labels`.
//! - podman (and anything on containers/storage): the `names` of the
//!   container's entry in `overlay-containers/containers.json`. Podman 4.3
//!   writes no name into the OCI bundle (checked with `--rootfs`).
//! - containerd and CRI-O: the OCI bundle's `config.json` `annotations`.
//!   containerd's CRI plugin writes `io.kubernetes.cri.sandbox-name`,
//!   `io.kubernetes.cri.sandbox-namespace` and
//!   `io.kubernetes.cri.container-name`; CRI-O writes
//!   `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace` and
//!   `io.kubernetes.container.name`; nerdctl writes `nerdctl/name`.
//!
//! The files are the runtime's, but the names in them are chosen by
//! whoever starts the container (or writes the pod spec): untrusted text,
//! shown only escaped. A name that is empty, longer than [`MAX_NAME`] or
//! holds a NUL is refused, and so is a file that is not the JSON expected.

use std::collections::HashMap;
use std::fmt;

/// Which runtime made a container, as far as its cgroup path tells: where
/// to look for its name (see `containers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    Crio,
}

/// A container named by its cgroup: its full id and, where the path
/// tells, its runtime (a bare id below `kubepods` could be any CRI's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub id: String,
    pub runtime: Option<Runtime>,
    /// In a user's delegated subtree: that uid, whose own (rootless)
    /// storage alone may name it.
    pub owner: Option<u32>,
}

/// The longest name kept (Kubernetes' own limit is 253).
pub const MAX_NAME: usize = 256;

/// What a runtime says of a container; None where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNames {
    /// The container's name: docker's, podman's, nerdctl's, or its name in
    /// its Kubernetes pod.
    pub container: Option<String>,
    pub pod: Option<String>,
    pub namespace: Option<String>,
}

impl ContainerNames {
    pub fn is_empty(&self) -> bool {
        self.container.is_none() && self.pod.is_none() && self.namespace.is_none()
    }
}

/// Why a file's content was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not the JSON this format is (or nested deeper than serde_json's 128).
    Format(String),
    /// A name that is empty, too long or holds a NUL.
    Name(&'static str),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Format(e) => write!(f, "not the expected JSON ({e})"),
            Refused::Name(key) => write!(
                f,
                "its {key} is empty, longer than {MAX_NAME} bytes or holds a NUL"
            ),
        }
    }
}

/// What is wrong, and where, never what the file holds: serde's message
/// quotes the value it did not expect (a secret, or 300 KB of it).
fn format_err(e: serde_json::Error) -> Refused {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not JSON",
        Category::Data => "JSON of another shape",
        Category::Eof => "cut short",
    };
    Refused::Format(format!("{what} at line {} column {}", e.line(), e.column()))
}

/// A name as kept: refused when empty, too long or with a NUL.
fn name(v: Option<&String>, key: &'static str) -> Result<Option<String>, Refused> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() || s.len() > MAX_NAME || s.contains('\0') => {
            Err(Refused::Name(key))
        }
        Some(s) => Ok(Some(s.clone())),
    }
}

/// Kubernetes' names from a key → value map (annotations or labels),
/// containerd's keys first, then CRI-O's (and dockershim's).
fn kubernetes(m: &HashMap<String, String>) -> Result<ContainerNames, Refused> {
    let pick = |keys: [&'static str; 2]| -> Result<Option<String>, Refused> {
        for k in keys {
            if let Some(v) = name(m.get(k), k)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    };
    Ok(ContainerNames {
        container: pick([
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ])?,
        pod: pick(["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"])?,
        namespace: pick([
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ])?,
    })
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Config")]
    config: Option<DockerInner>,
}

#[derive(serde::Deserialize)]
struct DockerInner {
    #[serde(rename = "Labels")]
    labels: Option<HashMap<String, String>>,
}

/// docker's `config.v2.json`.
pub fn docker_config(json: &[u8]) -> Result<ContainerNames, Refused> {
    let c: DockerConfig = serde_json::from_slice(json).map_err(format_err)?;
    let mut names = match c.config.and_then(|i| i.labels) {
        Some(l) => kubernetes(&l)?,
        None => ContainerNames::default(),
    };
    // docker keeps the name with a leading slash.
    let own = c
        .name
        .map(|n| n.strip_prefix('/').unwrap_or(&n).to_string());
    if names.container.is_none() {
        names.container = name(own.as_ref(), "Name")?;
    } else {
        name(own.as_ref(), "Name")?;
    }
    Ok(names)
}

#[derive(serde::Deserialize)]
struct OciBundle {
    annotations: Option<HashMap<String, String>>,
}

/// An OCI bundle's `config.json` (containerd, CRI-O).
pub fn oci_bundle(json: &[u8]) -> Result<ContainerNames, Refused> {
    let b: OciBundle = serde_json::from_slice(json).map_err(format_err)?;
    let Some(a) = b.annotations else {
        return Ok(ContainerNames::default());
    };
    let mut names = kubernetes(&a)?;
    if names.container.is_none() {
        names.container = name(a.get("nerdctl/name"), "nerdctl/name")?;
    }
    Ok(names)
}

#[derive(serde::Deserialize)]
struct StorageEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// containers/storage's `containers.json`: the first name of container
/// `id`'s entry; None when it has no entry.
pub fn storage_containers(json: &[u8], id: &str) -> Result<Option<ContainerNames>, Refused> {
    let all: Vec<StorageEntry> = serde_json::from_slice(json).map_err(format_err)?;
    let Some(e) = all.into_iter().find(|e| e.id == id) else {
        return Ok(None);
    };
    Ok(Some(ContainerNames {
        container: name(e.names.first(), "names")?,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "56aaf316b98dc6a25b199617246b6c470761d200aa2a61992d1aaac89f14594c";

    fn names(c: Option<&str>, pod: Option<&str>, ns: Option<&str>) -> ContainerNames {
        ContainerNames {
            container: c.map(String::from),
            pod: pod.map(String::from),
            namespace: ns.map(String::from),
        }
    }

    #[test]
    fn docker_names_and_its_kubernetes_labels() {
        // Trimmed from a docker 24 config.v2.json.
        let j = br#"{"StreamConfig":{},"State":{"Running":true,"Pid":4242},
            "ID":"56aa","Created":"2026-12-02T07:00:00Z","Path":"nginx",
            "Config":{"Hostname":"56aa","Labels":{"maintainer":"x"},"Image":"nginx"},
            "Name":"/web-1","Driver":"overlay2"}"#;
        assert_eq!(docker_config(j).unwrap(), names(Some("web-1"), None, None));
        // dockershim and cri-dockerd: the pod's names in the labels.
        let j = br#"{"Name":"/k8s_api_api-7f9c_payments_1c7b_0","Config":{"Labels":{
            "io.kubernetes.container.name":"api","io.kubernetes.pod.name":"api-7f9c",
            "io.kubernetes.pod.namespace":"payments"}}}"#;
        assert_eq!(
            docker_config(j).unwrap(),
            names(Some("api"), Some("api-7f9c"), Some("payments"))
        );
        assert_eq!(
            docker_config(br#"{"Config":{"Labels":null}}"#).unwrap(),
            ContainerNames::default()
        );
    }

    #[test]
    fn containerd_cri_annotations_name_the_pod() {
        // As containerd 1.7's CRI plugin writes a container's bundle.
        let j = br#"{"ociVersion":"1.1.0","process":{"args":["/api"]},
            "annotations":{"io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.container-name":"api",
            "io.kubernetes.cri.sandbox-id":"9f0e",
            "io.kubernetes.cri.sandbox-name":"api-7f9c",
            "io.kubernetes.cri.sandbox-namespace":"payments",
            "io.kubernetes.cri.sandbox-uid":"1c7b2f9e-3d4a-4b5c-8d6e-7f8091a2b3c4",
            "io.kubernetes.cri.image-name":"registry.example/api:1"}}"#;
        assert_eq!(
            oci_bundle(j).unwrap(),
            names(Some("api"), Some("api-7f9c"), Some("payments"))
        );
        // The pause container (sandbox) has no container name.
        let j = br#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox",
            "io.kubernetes.cri.sandbox-name":"api-7f9c",
            "io.kubernetes.cri.sandbox-namespace":"payments"}}"#;
        assert_eq!(
            oci_bundle(j).unwrap(),
            names(None, Some("api-7f9c"), Some("payments"))
        );
    }

    #[test]
    fn crio_annotations_name_the_pod() {
        // As CRI-O 1.28 writes a container's bundle (it writes many more).
        let j = br#"{"annotations":{"io.kubernetes.container.name":"api",
            "io.kubernetes.pod.name":"api-7f9c","io.kubernetes.pod.namespace":"payments",
            "io.kubernetes.pod.uid":"1c7b2f9e-3d4a-4b5c-8d6e-7f8091a2b3c4",
            "io.kubernetes.cri-o.ContainerType":"container",
            "io.kubernetes.cri-o.Name":"k8s_api_api-7f9c_payments_1c7b_0"}}"#;
        assert_eq!(
            oci_bundle(j).unwrap(),
            names(Some("api"), Some("api-7f9c"), Some("payments"))
        );
    }

    #[test]
    fn podman_and_nerdctl() {
        // Podman 4.3's bundle, as written on this machine: no name in it.
        let j = br#"{"annotations":{"io.container.manager":"libpod",
            "io.podman.annotations.autoremove":"FALSE",
            "org.opencontainers.image.stopSignal":"15"}}"#;
        assert_eq!(oci_bundle(j).unwrap(), ContainerNames::default());
        assert!(oci_bundle(j).unwrap().is_empty());
        assert_eq!(oci_bundle(b"{}").unwrap(), ContainerNames::default());
        // ...the name is in containers/storage's containers.json.
        let j = format!(
            r#"[{{"id":"0000","names":["other"]}},{{"id":"{ID}","names":["web-1","alias"],
            "image":"","layer":"","metadata":"{{}}","created":"2026-12-02T07:44:46Z"}}]"#
        );
        assert_eq!(
            storage_containers(j.as_bytes(), ID).unwrap(),
            Some(names(Some("web-1"), None, None))
        );
        assert_eq!(storage_containers(j.as_bytes(), "ffff").unwrap(), None);
        assert_eq!(
            storage_containers(format!(r#"[{{"id":"{ID}"}}]"#).as_bytes(), ID).unwrap(),
            Some(ContainerNames::default())
        );
        let j = br#"{"annotations":{"nerdctl/name":"cache"}}"#;
        assert_eq!(oci_bundle(j).unwrap(), names(Some("cache"), None, None));
    }

    #[test]
    fn hostile_content_is_refused_not_trusted() {
        let deep = "[".repeat(10_000);
        for bad in [
            b"".as_slice(),
            b"not json",
            b"[]",
            br#"{"annotations":{"io.kubernetes.pod.name":7}}"#,
            br#"{"annotations":[]}"#,
            deep.as_bytes(),
        ] {
            assert!(
                matches!(oci_bundle(bad), Err(Refused::Format(_))),
                "{}",
                String::from_utf8_lossy(&bad[..bad.len().min(40)])
            );
        }
        assert!(matches!(docker_config(b"[1]"), Err(Refused::Format(_))));
        assert!(matches!(
            storage_containers(b"{}", ID),
            Err(Refused::Format(_))
        ));
        let long = "a".repeat(MAX_NAME + 1);
        for v in [long.as_str(), "", "a\\u0000b"] {
            let j = format!(r#"{{"annotations":{{"io.kubernetes.pod.name":"{v}"}}}}"#);
            assert_eq!(
                oci_bundle(j.as_bytes()),
                Err(Refused::Name("io.kubernetes.pod.name"))
            );
        }
        let j = format!(r#"{{"Name":"/{long}"}}"#);
        assert_eq!(docker_config(j.as_bytes()), Err(Refused::Name("Name")));
        // Control characters and markup are kept, to be escaped by the
        // sinks like process names: refusing them would hide a container.
        let j = br#"{"annotations":{"nerdctl/name":"a\nb <!here>"}}"#;
        assert_eq!(
            oci_bundle(j).unwrap().container.as_deref(),
            Some("a\nb <!here>")
        );
        assert!(Refused::Name("Name").to_string().contains("256"));
    }
}

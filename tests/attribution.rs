//! End to end, as root: who made a failed connection. Real processes in
//! cgroups made by the test under the cgroup v2 root, shaped like a
//! systemd service, a user service, a docker container and a Kubernetes
//! pod's container; a thread with a name of its own; a client as nobody.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

const CONTAINER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD: &str = "1c7b2f9e-3d4a-4b5c-8d6e-7f8091a2b3c4";

/// A cgroup path made for the test, removed (deepest first) on drop.
struct Cgroup {
    made: Vec<PathBuf>,
    leaf: PathBuf,
}

impl Cgroup {
    fn new(rel: &str) -> Cgroup {
        let mut made = Vec::new();
        let mut p = cgroup_v2_root();
        for part in rel.split('/') {
            p.push(part);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                made.push(p.clone());
            }
        }
        Cgroup { made, leaf: p }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// Runs curl to `url` in the client namespace, as a process placed in
/// `cg` (optionally as another user); it must fail.
fn curl_in(net: &Net, cg: &Cgroup, url: &str, user: Option<&str>) {
    let procs = cg.leaf.join("cgroup.procs");
    // Into the cgroup first: `ip netns exec` remounts /sys, cgroupfs gone.
    let mut script = format!(
        "echo $$ > {} && exec ip netns exec {} ",
        procs.display(),
        net.client
    );
    if let Some(u) = user {
        script += &format!("setpriv --reuid={u} --regid={u} --clear-groups ");
    }
    script += &format!("curl -s --max-time 5 {url}");
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(!st.success(), "curl to {url} should fail");
}

#[test]
fn units_containers_and_pods_are_named_from_the_cgroup() {
    if !require_root("units_containers_and_pods_are_named_from_the_cgroup") {
        return;
    }
    let net = Net::new(50);
    let d = net.json_daemon(&[]);
    let server = net.server_v4();
    let pid = std::process::id();
    let service = Cgroup::new(&format!("tcpstate-test-{pid}.slice/api-{pid}.service"));
    let user = Cgroup::new(&format!(
        "tcpstate-test-{pid}-user.slice/user@1000.service/app.slice/sync-{pid}.service"
    ));
    let docker = Cgroup::new(&format!(
        "tcpstate-test-{pid}-d.slice/docker-{CONTAINER}.scope"
    ));
    let kube = Cgroup::new(&format!(
        "kubepods-{pid}.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{CONTAINER}.scope",
        POD.replace('-', "_")
    ));
    curl_in(&net, &service, &format!("http://{server}:1001/"), None);
    curl_in(&net, &user, &format!("http://{server}:1002/"), None);
    curl_in(&net, &docker, &format!("http://{server}:1003/"), None);
    curl_in(
        &net,
        &kube,
        &format!("http://{server}:1004/"),
        Some("65534"),
    );
    let out = d.stop();

    let v = out.failure_to(1001);
    assert_eq!(v["unit"], format!("api-{pid}.service"), "{v}");
    assert_eq!(v["container"], Value::Null, "{v}");
    assert_eq!(v["pod"], Value::Null, "{v}");
    assert_eq!(
        v["cgroup"],
        format!("/tcpstate-test-{pid}.slice/api-{pid}.service"),
        "{v}"
    );
    assert_eq!(
        (v["comm"].as_str(), v["process"].as_str()),
        (Some("curl"), Some("curl")),
        "{v}"
    );
    assert_eq!(v["uid"], 0, "{v}");

    let v = out.failure_to(1002);
    assert_eq!(v["unit"], format!("sync-{pid}.service"), "{v}");

    let v = out.failure_to(1003);
    assert_eq!(v["container"], CONTAINER, "{v}");
    assert_eq!(v["unit"], format!("docker-{CONTAINER}.scope"), "{v}");

    let v = out.failure_to(1004);
    eprintln!("a pod's container, as nobody: {v}");
    assert_eq!(v["container"], CONTAINER, "{v}");
    assert_eq!(v["pod"], POD, "{v}");
    assert_eq!(v["uid"], 65534, "{v}");
}

#[test]
fn a_thread_with_its_own_name_shows_both_names() {
    if !require_root("a_thread_with_its_own_name_shows_both_names") {
        return;
    }
    let net = Net::new(51);
    let d = net.json_daemon(&[]);
    let to = sock(net.server_v4(), 9);
    // The thread is named by PR_SET_NAME (std names threads with it).
    net.in_client("t-worker", move || connect_err(to));
    let out = d.stop();
    let v = out.failure_to(9);
    let process = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(v["comm"], "t-worker", "{v}");
    assert_eq!(v["process"], process.trim_end(), "{v}");
    assert_ne!(v["comm"], v["process"]);
    assert_eq!(v["pid"], std::process::id(), "{v}");
    assert_ne!(v["tid"], v["pid"], "{v}");
}

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

    // Below a user's manager: the manager is the unit, the user's own
    // unit apart (as journald's _SYSTEMD_UNIT and _SYSTEMD_USER_UNIT).
    let v = out.failure_to(1002);
    assert_eq!(v["unit"], "user@1000.service", "{v}");
    assert_eq!(v["user_unit"], format!("sync-{pid}.service"), "{v}");

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

/// A fake system docker container: its config.v2.json where dockerd keeps
/// it, named `name`; removed on drop. (dockerd need not run: tcpstate
/// reads the file.)
struct FakeDockerContainer(PathBuf);

impl FakeDockerContainer {
    fn new(id: &str, name: &str) -> FakeDockerContainer {
        let dir = PathBuf::from("/var/lib/docker/containers").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!("{{\"ID\":\"{id}\",\"Name\":\"/{name}\"}}");
        std::fs::write(dir.join("config.v2.json"), config).unwrap();
        FakeDockerContainer(dir)
    }
}

impl Drop for FakeDockerContainer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Issue 29, finding 1: a subtree delegated to uid 1000 as systemd builds
/// it (user@1000.service owned by the user), cgroups the user made below
/// it named after a system service and a system container. The user's
/// unit is apart from the system's, the system container's name is never
/// used for the user's cgroup (though cached), and a real system unit
/// still reads as itself, on JSON, syslog and Slack.
#[test]
fn a_users_delegated_cgroups_never_pass_as_the_systems() {
    if !require_root("a_users_delegated_cgroups_never_pass_as_the_systems") {
        return;
    }
    let net = Net::new(52);
    let (slack, syslog) = (FakeSlack::start(), FakeSyslog::start());
    let d = Daemon::builder(["--format", "json"])
        .alerts_to(&syslog, &slack)
        .args(net.watch_args())
        .start();
    let server = net.server_v4();
    let pid = std::process::id();
    // A random container id, so no real container is named.
    let id: String = (0..4)
        .map(|i| {
            format!(
                "{:016x}",
                u64::from(pid).wrapping_mul(0x9e37_79b9_7f4a_7c15 ^ i)
            )
        })
        .collect();
    let _fake = FakeDockerContainer::new(&id, "payments-db");
    let system_pg = Cgroup::new(&format!("t29-{pid}.slice/postgresql.service"));
    let system_db = Cgroup::new(&format!("t29-{pid}-d.slice/docker-{id}.scope"));
    let manager = Cgroup::new(&format!(
        "t29-{pid}-u.slice/user-1000.slice/user@1000.service"
    ));
    nix::unistd::chown(&manager.leaf, Some(1000.into()), Some(1000.into())).unwrap();
    // The user makes its own cgroups, as uid 1000.
    let mut user_made = Vec::new();
    for rel in [
        "app.slice/postgresql.service",
        &format!("user.slice/docker-{id}.scope"),
    ] {
        let p = manager.leaf.join(rel);
        let st = Command::new("setpriv")
            .args([
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "mkdir",
                "-p",
            ])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success(), "uid 1000 could not make {}", p.display());
        user_made.push(p.parent().unwrap().to_path_buf());
        user_made.push(p);
    }
    let user_pg = Cgroup {
        made: Vec::new(),
        leaf: user_made[1].clone(),
    };
    let user_db = Cgroup {
        made: Vec::new(),
        leaf: user_made[3].clone(),
    };
    curl_in(&net, &system_pg, &format!("http://{server}:1011/"), None);
    curl_in(&net, &system_db, &format!("http://{server}:1012/"), None);
    curl_in(
        &net,
        &user_pg,
        &format!("http://{server}:1013/"),
        Some("1000"),
    );
    curl_in(
        &net,
        &user_db,
        &format!("http://{server}:1014/"),
        Some("1000"),
    );
    let lines = syslog.wait_for("TCP failure detected", 4, std::time::Duration::from_secs(5));
    // Four alerts, alone or grouped in a digest, as Slack's pace allows.
    let slack_text = poll(
        "the four alerts at Slack",
        std::time::Duration::from_secs(10),
        || {
            let t: String = slack
                .requests()
                .iter()
                .map(|(_, b)| b.to_string())
                .collect();
            (1011..=1014)
                .all(|p| t.contains(&format!(":{p} ")))
                .then_some(t)
        },
    )
    .unwrap_or_else(|| format!("{:?}", slack.requests()));
    let out = d.stop();
    for p in user_made.iter().rev() {
        let _ = std::fs::remove_dir(p);
    }

    let v = out.failure_to(1011);
    assert_eq!(v["unit"], "postgresql.service", "{v}");
    assert_eq!(v["user_unit"], Value::Null, "{v}");
    let v = out.failure_to(1012);
    assert_eq!(v["container_name"], "payments-db", "{v}");
    let v = out.failure_to(1013);
    eprintln!("the user's postgresql: {v}");
    assert_eq!(v["unit"], "user@1000.service", "{v}");
    assert_eq!(v["user_unit"], "postgresql.service", "{v}");
    assert_eq!(v["uid"], 1000, "{v}");
    let v = out.failure_to(1014);
    eprintln!("the user's docker-<id>.scope: {v}");
    assert_eq!(v["container"], id, "{v}");
    assert_eq!(
        v["container_name"],
        Value::Null,
        "never the system's name: {v}"
    );
    assert_eq!(v["unit"], "user@1000.service", "{v}");
    assert_eq!(v["user_unit"], format!("docker-{id}.scope"), "{v}");
    let user_line = lines
        .iter()
        .find(|l| l.contains(":1013 "))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        user_line.contains(" unit=user@1000.service user_unit=postgresql.service"),
        "{user_line}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(":1014 ") && l.contains("payments-db")),
        "{lines:?}"
    );
    // Sent alone, the alert has a "User unit" field; grouped with the
    // next one in a digest, its line says "user unit".
    assert!(
        slack_text.contains("*User unit*\\npostgresql.service")
            || slack_text.contains(":1013 refused at handshake (curl (pid")
                && slack_text.contains(", unit user@1000.service, user unit postgresql.service)"),
        "{slack_text}"
    );
    // Whether alone (its fields block) or in a digest (its line), the
    // user's alert never carries the system container's name.
    for (_, req) in slack.requests() {
        for block in req["blocks"].as_array().into_iter().flatten() {
            let b = block.to_string();
            assert!(
                !(b.contains(":1014") && b.contains("payments-db")),
                "only the system's container is payments-db: {b}"
            );
        }
    }
}

/// Issue 29, finding 8: cgroup names that are not UTF-8 are escaped byte
/// by byte: two such cgroups never read the same.
#[test]
fn cgroups_named_in_bytes_that_are_not_utf8_read_apart() {
    use std::os::unix::ffi::OsStrExt;
    if !require_root("cgroups_named_in_bytes_that_are_not_utf8_read_apart") {
        return;
    }
    let net = Net::new(53);
    let d = net.json_daemon(&[]);
    let server = net.server_v4();
    let pid = std::process::id();
    let mut made = Vec::new();
    for (b, port) in [(0xfe_u8, 1021), (0xff, 1022)] {
        let mut name = format!("t29-{pid}-").into_bytes();
        name.extend_from_slice(&[b, b'.']);
        name.extend_from_slice(b"service");
        let dir = cgroup_v2_root().join(std::ffi::OsStr::from_bytes(&name));
        std::fs::create_dir(&dir).unwrap();
        // The path as bytes, through "$1": curl_in's text would not do.
        let script = format!(
            "echo $$ > \"$1/cgroup.procs\" && exec ip netns exec {} curl -s --max-time 5 http://{server}:{port}/",
            net.client
        );
        let st = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(&dir)
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(7), "curl, refused");
        made.push(Cgroup {
            made: vec![dir.clone()],
            leaf: dir,
        });
    }
    let out = d.stop();
    let (a, b) = (out.failure_to(1021), out.failure_to(1022));
    assert_eq!(a["unit"], format!(r"t29-{pid}-\\xfe.service"), "{a}");
    assert_eq!(b["unit"], format!(r"t29-{pid}-\\xff.service"), "{b}");
    assert_ne!(a["cgroup"], b["cgroup"]);
}

//! The image and the DaemonSet, as root, with real podman (runc): the image
//! built offline by packaging/container/build from the .deb (its base
//! imported from a cached debootstrap), then the DaemonSet's own pod
//! template from packaging/kubernetes/tcpstate.yaml, extracted and checked
//! by tests/kube-pod.py, played with `podman kube play` (podman 4.3 plays
//! Pods, not DaemonSets; it ignores hostPID, so the agent runs in the
//! pod's pid namespace here; and podman refuses an `optional` Secret that
//! does not exist, so the test makes one). A second podman container then
//! fails a connect, and the agent's log names it by its container name.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{poll, require_root, TempDir};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes what the test made, whatever happened.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("podman").args(c).output();
        }
    }
}

#[test]
fn the_daemonset_pod_names_a_failing_container() {
    if !require_root("the_daemonset_pod_names_a_failing_container") {
        return;
    }
    let pid = std::process::id();
    let t0 = std::time::Instant::now();
    let image =
        sh(Command::new(root().join("packaging/container/build")).args(["--base", "local"]));
    eprintln!("image {image} built in {:?}", t0.elapsed());
    let size =
        sh(Command::new("podman").args(["image", "inspect", &image, "--format", "{{.Size}}"]));
    eprintln!("image size: {size} bytes");
    assert!(size.parse::<u64>().unwrap() < 20_000_000, "{size}");

    let tmp = TempDir::new("kube");
    let dir = tmp.path();
    // kube play takes no --ulimit: runc here needs them set (see
    // tests/containers.rs), so through a containers.conf of the test's own.
    let conf = dir.join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=1000:1000\"]\n\
         [engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    let pod = format!("t33-agent-{pid}");
    let client = format!("t33-client-{pid}");
    let _cleanup = Cleanup(vec![
        vec!["pod".into(), "rm".into(), "-f".into(), pod.clone()],
        vec!["rm".into(), "-f".into(), client.clone()],
        vec!["secret".into(), "rm".into(), "tcpstate-slack".into()],
    ]);
    // podman 4.3 mounts no file from it (tests/cli.rs and the package
    // test cover the credential path); it only has to exist.
    let slack_url = "http://127.0.0.1:9/unused";
    let secret = dir.join("secret.yaml");
    let url = {
        use std::io::Write;
        let mut b64 = Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        b64.stdin
            .take()
            .unwrap()
            .write_all(slack_url.as_bytes())
            .unwrap();
        String::from_utf8(b64.wait_with_output().unwrap().stdout).unwrap()
    };
    std::fs::write(
        &secret,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tcpstate-slack\ndata:\n  slack-url: {url}\n"
        ),
    )
    .unwrap();
    let _ = Command::new("podman")
        .args(["secret", "rm", "tcpstate-slack"])
        .output();
    sh(Command::new("podman").args(["kube", "play"]).arg(&secret));
    let played = dir.join("pod.yaml");
    let yaml = sh(Command::new("/usr/bin/python3")
        .arg(root().join("tests/kube-pod.py"))
        .arg(root().join("packaging/kubernetes/tcpstate.yaml"))
        .arg(&pod));
    std::fs::write(&played, yaml).unwrap();
    sh(Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(["kube", "play"])
        .arg(&played));
    let agent = format!("{pod}-tcpstate");
    let logs = || {
        let out = Command::new("podman")
            .args(["logs", &agent])
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Its liveness probe's target answers.
    let started = poll("the agent's /metrics", Duration::from_secs(20), || {
        let out = Command::new("curl")
            .args(["-sf", "http://127.0.0.1:29110/metrics"])
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    assert!(started.is_some(), "the agent said: {:?}", logs());

    let rootfs = sh(Command::new(root().join("tests/containers-rootfs")).arg("podman"));
    let connect = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), 5)\nexcept ConnectionRefusedError:\n    print('refused')\n";
    let said = sh(Command::new("podman").args([
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1000:1000",
        "--network",
        "none",
        "--read-only",
        "--name",
        &client,
        "--rootfs",
        &rootfs,
        "python3",
        "-c",
        connect,
    ]));
    assert_eq!(said, "refused");
    let line = poll(
        "the failure in the agent's log",
        Duration::from_secs(10),
        || {
            logs().0.lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["event"] == "connect_failed" && v["container_name"] == client.as_str())
                    .then_some(v)
            })
        },
    );
    let Some(line) = line else {
        panic!("no failure named {client}; the agent said: {:?}", logs())
    };
    assert_eq!(line["reason"], "refused", "{line}");
    assert_eq!(line["dport"], 9, "{line}");
    assert!(
        line["container"].as_str().is_some_and(|c| c.len() == 64),
        "{line}"
    );
    eprintln!("the agent's line: {line}");
}

//! A real resolver for the end-to-end tests: dnsmasq in a test's server
//! namespace (never forwarding), and the client namespace's resolv.conf
//! pointing at it, so no query ever reaches this machine's resolver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{poll, Net, TempDir};

/// dnsmasq answering from a hosts file in the server namespace, and the
/// client namespace's resolv.conf pointing at it; both gone on drop.
pub struct Dns {
    child: Child,
    etc: std::path::PathBuf,
    hosts: std::path::PathBuf,
    _dir: TempDir,
}

impl Dns {
    pub fn start(net: &Net, hosts: &str, cnames: &[&str]) -> Dns {
        Dns::start_ttl(net, hosts, cnames, 60)
    }

    pub fn start_ttl(net: &Net, hosts: &str, cnames: &[&str], ttl: u32) -> Dns {
        let dir = TempDir::new("tsdns");
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).unwrap();
        let listen = net.server_v4().to_string();
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            net.server.clone(),
            "/usr/sbin/dnsmasq".into(),
            "--keep-in-foreground".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!("--addn-hosts={}", file.display()),
            format!("--local-ttl={ttl}"),
            "--port=53".into(),
            format!("--listen-address={listen}"),
            "--bind-interfaces".into(),
            "--user=root".into(),
            "--pid-file=".into(),
        ];
        args.extend(cnames.iter().map(|c| format!("--cname={c}")));
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (dnsmasq-base) installed");
        let etc = std::path::PathBuf::from(format!("/etc/netns/{}", net.client));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {listen}\n")).unwrap();
        let d = Dns {
            child,
            etc,
            hosts: file,
            _dir: dir,
        };
        // Ready when it answers.
        let ready = poll("dnsmasq to answer", Duration::from_secs(10), || {
            client(net, "getent", &["hosts", "ready.tsdns.test"])
                .0
                .then_some(())
        });
        assert!(ready.is_some(), "dnsmasq did not answer");
        d
    }
}

impl Dns {
    /// New records: dnsmasq rereads its hosts files on SIGHUP.
    pub fn rewrite(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

/// Runs `cmd` in the client namespace: (success, stdout).
pub fn client(net: &Net, cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.client, cmd])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

//! A real resolver for the end-to-end tests: dnsmasq in a test's server
//! namespace (never forwarding out of the test's namespaces), and the
//! client namespace's resolv.conf pointing at it, so no query ever reaches
//! this machine's resolver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{poll, Net, TempDir};

/// dnsmasq answering from a hosts file in the server namespace (and
/// whatever else the test started beside it), and the client namespace's
/// resolv.conf pointing at it; all gone on drop.
pub struct Dns {
    dnsmasq: Child,
    others: Vec<Child>,
    etc: std::path::PathBuf,
    hosts: std::path::PathBuf,
    _dir: TempDir,
}

/// What a test's dnsmasq serves beyond its hosts file.
pub struct DnsBuilder<'a> {
    net: &'a Net,
    hosts: String,
    ready: String,
    ttl: Option<u32>,
    listen: Vec<String>,
    args: Vec<String>,
    resolv_conf: Option<String>,
    others: Vec<Child>,
}

impl Dns {
    /// Hosts must name `ready.tsdns.test`: dnsmasq is ready when it answers.
    pub fn start(net: &Net, hosts: &str, cnames: &[&str]) -> Dns {
        Dns::start_ttl(net, hosts, cnames, 60)
    }

    pub fn start_ttl(net: &Net, hosts: &str, cnames: &[&str], ttl: u32) -> Dns {
        Dns::builder(net, hosts)
            .ttl(ttl)
            .args(cnames.iter().map(|c| format!("--cname={c}")))
            .start()
    }

    /// dnsmasq on the server's first IPv4 address, serving `hosts`.
    pub fn builder<'a>(net: &'a Net, hosts: &str) -> DnsBuilder<'a> {
        DnsBuilder {
            net,
            hosts: hosts.to_string(),
            ready: "ready.tsdns.test".into(),
            ttl: None,
            listen: vec![net.server_v4().to_string()],
            args: Vec::new(),
            resolv_conf: None,
            others: Vec::new(),
        }
    }
}

impl DnsBuilder<'_> {
    /// The name (in the hosts file) whose answer says dnsmasq is up.
    pub fn ready(mut self, name: &str) -> Self {
        self.ready = name.into();
        self
    }

    /// The TTL of its hosts' answers (dnsmasq's default: 0).
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Another address dnsmasq listens on (the client's resolv.conf names
    /// only the first unless `resolv_conf` says otherwise).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// More dnsmasq arguments (`--address=/nx.test/`, `--server=...`).
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The client's resolv.conf once dnsmasq answers (a plain
    /// `nameserver` line until then, and by default).
    pub fn resolv_conf(mut self, text: &str) -> Self {
        self.resolv_conf = Some(text.into());
        self
    }

    /// A process started for this resolver (an upstream stand-in), owned
    /// from now on: stopped with dnsmasq.
    pub fn child(mut self, child: Child) -> Self {
        self.others.push(child);
        self
    }

    pub fn start(mut self) -> Dns {
        let dir = TempDir::new("tsdns");
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, &self.hosts).unwrap();
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            self.net.server.clone(),
            "/usr/sbin/dnsmasq".into(),
            "--keep-in-foreground".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!("--addn-hosts={}", hosts.display()),
            "--port=53".into(),
            "--bind-interfaces".into(),
            "--user=root".into(),
            "--pid-file=".into(),
        ];
        args.extend(self.ttl.map(|t| format!("--local-ttl={t}")));
        args.extend(self.listen.iter().map(|a| format!("--listen-address={a}")));
        args.append(&mut self.args);
        let spawned = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let dnsmasq = match spawned {
            Ok(c) => c,
            Err(e) => {
                for c in &mut self.others {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("dnsmasq (dnsmasq-base) installed: {e}");
            }
        };
        let etc = std::path::PathBuf::from(format!("/etc/netns/{}", self.net.client));
        // Owned at once: a panic below still stops them.
        let d = Dns {
            dnsmasq,
            others: std::mem::take(&mut self.others),
            etc,
            hosts,
            _dir: dir,
        };
        std::fs::create_dir_all(&d.etc).unwrap();
        let plain = format!("nameserver {}\n", self.listen[0]);
        std::fs::write(d.etc.join("resolv.conf"), &plain).unwrap();
        let ready = poll("dnsmasq to answer", Duration::from_secs(10), || {
            client(self.net, "getent", &["hosts", &self.ready])
                .0
                .then_some(())
        });
        assert!(ready.is_some(), "dnsmasq did not answer {}", self.ready);
        if let Some(conf) = &self.resolv_conf {
            std::fs::write(d.etc.join("resolv.conf"), conf).unwrap();
        }
        d
    }
}

impl Dns {
    /// New records: dnsmasq rereads its hosts files on SIGHUP.
    pub fn rewrite(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.dnsmasq.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }

    /// One more record (`ADDRESS NAME`), as `rewrite`.
    pub fn add_host(&self, line: &str) {
        let mut h = std::fs::read_to_string(&self.hosts).unwrap();
        h.push_str(line);
        h.push('\n');
        self.rewrite(&h);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        for c in std::iter::once(&mut self.dnsmasq).chain(&mut self.others) {
            let _ = c.kill();
            let _ = c.wait();
        }
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

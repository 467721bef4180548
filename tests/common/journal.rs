//! A real systemd-journald for a test: run alone in a private mount
//! namespace whose /run is a tmpfs of its own, so its sockets
//! (`/run/systemd/journal/socket`) and its runtime journal are seen only
//! by what the test runs inside (the daemon, through `via`). Nothing of
//! the host's /run is touched, and it is all gone on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::poll;

pub struct Journal {
    child: Child,
}

impl Journal {
    pub fn start() -> Journal {
        let journald = [
            "/lib/systemd/systemd-journald",
            "/usr/lib/systemd/systemd-journald",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("systemd-journald (the systemd package) installed");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal /run/log/journal \
                 && exec \"$0\"",
            )
            .arg(journald)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        let j = Journal { child };
        let up = poll("journald's socket", Duration::from_secs(10), || {
            j.inside(&["test", "-S", "/run/systemd/journal/socket"])
                .status
                .success()
                .then_some(())
        });
        assert!(up.is_some(), "journald did not start");
        j
    }

    fn inside(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.child.id().to_string(), "-m", "--"])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// For `DaemonBuilder::via`: the daemon runs where this journal is.
    pub fn via(&self) -> Vec<String> {
        ["nsenter", "-t", &self.child.id().to_string(), "-m", "--"]
            .map(String::from)
            .to_vec()
    }

    /// Every entry so far, as `journalctl -o json` gives them.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        let out = self.inside(&[
            "journalctl",
            "-D",
            "/run/log/journal",
            "-o",
            "json",
            "--no-pager",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The entries whose `key` is `value`, waiting up to `timeout` for
    /// `n` of them.
    pub fn wait_for(
        &self,
        key: &str,
        value: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let found = poll("journal entries", timeout, || {
            let e: Vec<_> = self
                .entries()
                .into_iter()
                .filter(|e| e[key] == value)
                .collect();
            (e.len() >= n).then_some(e)
        });
        found.unwrap_or_else(|| {
            self.entries()
                .into_iter()
                .filter(|e| e[key] == value)
                .collect()
        })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The .deb as users get it: lintian, the unit's exposure score, and a
//! full install/alert/stop/purge cycle in a booted systemd (nspawn), with
//! a real HTTP server on the host's loopback standing in for Slack.
//!
//! The package is built by `packaging/build-deb`, which `.ci/test` runs
//! before the tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bin, free_port, require_root, FakeSlack};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The package for this version, and not older than the binary under test.
fn deb() -> PathBuf {
    let dir = root().join("target/debian");
    let prefix = format!("tcpstate_{}-", env!("CARGO_PKG_VERSION"));
    let found = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
    });
    let deb = found.unwrap_or_else(|| {
        panic!(
            "no {prefix}*.deb in {}: build it with packaging/build-deb (.ci/test does)",
            dir.display()
        )
    });
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).unwrap();
    assert!(
        mtime(&deb) >= mtime(Path::new(bin())),
        "{} is older than {}: rebuild it with packaging/build-deb",
        deb.display(),
        bin()
    );
    deb
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("running a packaging tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn lintian_finds_no_errors() {
    if !require_root("lintian_finds_no_errors") {
        return;
    }
    let (_, text) = run(Command::new("lintian").arg(deb()));
    eprintln!("lintian:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:?}");
    // The warnings kept on purpose (see docs/install.md); anything new fails.
    for w in text.lines().filter(|l| l.starts_with("W:")) {
        assert!(
            w.contains("non-standard-file-perm 0600 != 0644 [etc/default/tcpstate]")
                || w.contains("initial-upload-closes-no-bugs"),
            "new lintian warning: {w}"
        );
    }
}

/// The manual the README links to is installed beside it, with the
/// example rules, and the man page says where.
#[test]
fn the_package_holds_the_manual_and_the_man_page_points_to_it() {
    if !require_root("the_package_holds_the_manual_and_the_man_page_points_to_it") {
        return;
    }
    let deb = deb();
    let (ok, listing) = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    assert!(ok, "dpkg-deb --contents: {listing}");
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let mut want: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("./usr/share/doc/tcpstate/docs/{n}"))
        .collect();
    assert!(want.len() >= 10, "docs/ pages: {want:?}");
    want.push("./usr/share/doc/tcpstate/README.md".into());
    want.push("./usr/share/doc/tcpstate/examples/tcpstate.rules.yml".into());
    want.push("./usr/share/doc/tcpstate/examples/alertmanager.yml".into());
    for w in &want {
        assert!(
            files.contains(&w.as_str()),
            "{w} not in the package:\n{listing}"
        );
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/share/man/man8/tcpstate.8.gz | gzip -d",
        )
        .arg("sh")
        .arg(&deb)
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(man.contains("/usr/share/doc/tcpstate/docs/"), "{man}");
}

#[test]
fn the_unit_exposure_is_at_most_1_5() {
    if !require_root("the_unit_exposure_is_at_most_1_5") {
        return;
    }
    let unit = root().join("tcpstate.service");
    let (_, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line}"));
    eprintln!("{line}");
    assert!(score <= 1.5, "{line}");
}

#[test]
fn installs_alerts_stops_and_purges_in_a_booted_systemd() {
    if !require_root("installs_alerts_stops_and_purges_in_a_booted_systemd") {
        return;
    }
    let deb = deb();
    let slack = FakeSlack::start();
    // A port nobody listens on, on the loopback the container shares.
    let port = free_port();
    let (ok, text) = run(Command::new(root().join("packaging/test-in-nspawn"))
        .arg(&deb)
        .arg(slack.url())
        .arg(port.to_string()));
    eprintln!("{text}");
    assert!(ok, "the package cycle failed:\n{text}");
    // One alert with SLACK_URL in /etc/default/tcpstate, then one per
    // systemd-credential phase (LoadCredential=, LoadCredentialEncrypted=).
    let want: usize = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("slack-alerts="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no slack-alerts= line from test-in-nspawn:\n{text}"));
    assert!(want >= 2, "the credential phase did not run:\n{text}");
    let reqs = slack.wait_requests(want, Duration::from_secs(2));
    assert_eq!(reqs.len(), want, "one Slack alert per phase");
    for (_, r) in &reqs {
        let t = r["text"].as_str().unwrap_or_default().to_string();
        assert!(
            t.contains(&format!("127.0.0.1:{port} refused")),
            "Slack got: {t}"
        );
    }
}

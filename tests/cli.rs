//! The binary's contract with people and installers: one-line errors and
//! documented exit codes (2 usage, 3 privileges, 4 kernel), `--check`.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{bin, poll, require_root, Daemon, FakeSlack, TempDir};

fn tcpstate(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("DEST_IP")
        .env_remove("DEST_PORT")
        .envs(env.iter().copied())
        .output()
        .expect("running tcpstate")
}

/// Exit code `code` and exactly one stderr line containing every needle.
fn assert_one_line_error(out: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(err.starts_with("tcpstate: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_values_name_the_flag_and_variable_and_exit_2() {
    let out = tcpstate(&["-d", "300.1.1.1"], &[]);
    assert_one_line_error(&out, 2, &["'300.1.1.1'", "--dest", "$DEST_IP"]);
    let out = tcpstate(&[], &[("DEST_IP", "192.0.2.0/24,10.0.0.0/33")]);
    assert_one_line_error(&out, 2, &["10.0.0.0/33", "prefix length", "$DEST_IP"]);
    let out = tcpstate(&[], &[("DEST_PORT", "443,http")]);
    assert_one_line_error(&out, 2, &["'http'", "$DEST_PORT"]);
    let out = tcpstate(&["--format", "xml"], &[]);
    assert_one_line_error(&out, 2, &["'xml'", "text, json"]);
    let out = tcpstate(&["--ring-buffer-size", "1000"], &[]);
    assert_one_line_error(&out, 2, &["power-of-two", "$TCPSTATE_RING_BUFFER_SIZE"]);
    let out = tcpstate(&["--no-such-flag"], &[]);
    assert_one_line_error(&out, 2, &["--no-such-flag"]);
    let out = tcpstate(&[], &[("TCPSTATE_CONNECT_ERRORS", "sometimes")]);
    assert_one_line_error(&out, 2, &["'sometimes'", "auto, on, off"]);
}

#[test]
fn version_and_help_exit_0() {
    let out = tcpstate(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tcpstate {}", env!("CARGO_PKG_VERSION"))
    );
    let out = tcpstate(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--dest",
        "--port",
        "--format",
        "--verbose",
        "--btf",
        "--check",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn check_loads_attaches_and_detaches() {
    if !require_root("check_loads_attaches_and_detaches") {
        return;
    }
    let out = tcpstate(&["--check", "-d", "192.0.2.0/24", "-p", "443"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--check failed: the BPF program cannot be loaded on this machine:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok: "), "{stdout}");
    assert!(stdout.contains("attached"), "{stdout}");
    assert!(stdout.contains("192.0.2.0/24"), "{stdout}");
}

#[test]
fn btf_paths_are_checked_before_anything_else() {
    // Checked while parsing flags, so a usage error for everyone, root or not.
    let out = tcpstate(&["--btf", "/nonexistent/vmlinux.btf"], &[]);
    assert_one_line_error(&out, 2, &["--btf /nonexistent/vmlinux.btf: no such file"]);
    let out = tcpstate(&["--btf", "/etc/passwd"], &[]);
    assert_one_line_error(&out, 2, &["--btf /etc/passwd: not a BTF file"]);
    let out = tcpstate(&["--btf", "/tmp"], &[]);
    assert_one_line_error(&out, 2, &["--btf /tmp: is a directory"]);
    let out = tcpstate(&[], &[("TCPSTATE_BTF", "/tmp")]);
    assert_one_line_error(&out, 2, &["--btf /tmp: is a directory", "$TCPSTATE_BTF"]);
}

/// The webhook's path is the secret: no output may hold it.
const SECRET_URL: &str = "https://hooks.slack.com/services/T0000/B0000/SECRETTOKEN";

fn assert_no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let s = String::from_utf8_lossy(stream);
        for part in ["SECRETTOKEN", "T0000", "B0000"] {
            assert!(!s.contains(part), "{part} leaked: {s}");
        }
    }
}

#[test]
fn argument_errors_never_echo_the_webhook_url() {
    let spaced = "https://hooks.slack.com/services/T0000/B0000/SECRET TOKEN";
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        // A stray URL argument, e.g. a typo in TCPSTATE_OPTS.
        (vec!["--check", SECRET_URL], vec![]),
        (vec![SECRET_URL], vec![]),
        (vec!["--check", spaced], vec![]),
        // A non-http scheme, stray or as the flag's value.
        (
            vec!["ftp://hooks.slack.com/services/T0000/B0000/SECRETTOKEN"],
            vec![],
        ),
        (
            vec![
                "--slack-url",
                "ftp://hooks.slack.com/services/T0000/B0000/SECRETTOKEN",
            ],
            vec![],
        ),
        (
            vec![],
            vec![("SLACK_URL", "gopher://h/services/T0000/B0000/SECRETTOKEN")],
        ),
        (
            vec![
                "--slack-url",
                "https://ho st/services/T0000/B0000/SECRETTOKEN",
            ],
            vec![],
        ),
        // The URL where a value of another kind belongs.
        (vec!["--format", SECRET_URL], vec![]),
        (vec!["-d", SECRET_URL], vec![]),
    ];
    for (args, env) in cases {
        let out = tcpstate(&args, &env);
        assert_one_line_error(&out, 2, &[]);
        assert_no_secret(&out);
    }
    let out = tcpstate(&["--check", SECRET_URL], &[]);
    assert_one_line_error(
        &out,
        2,
        &[
            "<URL hidden>",
            "--slack-url-file",
            "$SLACK_URL",
            "LoadCredential=slack-url",
        ],
    );
}

/// Exit 2 with one line, within a second (a FIFO must never block start-up).
fn assert_refused_at_once(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let start = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("SLACK_URL")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = poll("tcpstate to exit", Duration::from_secs(5), || {
        child.try_wait().unwrap()
    });
    if exited.is_none() {
        let _ = child.kill();
        panic!("{args:?} still running after 5 s");
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_one_line_error(&out, 2, needles);
}

#[test]
fn url_files_that_are_not_regular_files_are_refused_at_once() {
    assert_refused_at_once(
        &["--slack-url-file", "/dev/zero"],
        &[],
        &["--slack-url-file /dev/zero is a device"],
    );
    let dir = TempDir::new("cli-fifo");
    let fifo = dir.path().join("url");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let fifo = fifo.to_str().unwrap();
    assert_refused_at_once(&["--slack-url-file", fifo], &[], &["is a FIFO"]);
    assert_refused_at_once(&[], &[("TCPSTATE_SLACK_URL_FILE", fifo)], &["is a FIFO"]);
    let d = dir.path().to_str().unwrap();
    assert_refused_at_once(&["--slack-url-file", d], &[], &["is a directory"]);
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 1 << 20]).unwrap();
    assert_refused_at_once(
        &["--slack-url-file", big.to_str().unwrap()],
        &[],
        &["larger than"],
    );
}

#[test]
fn a_non_utf8_value_names_its_variable_or_flag() {
    let bad = OsStr::from_bytes(b"10.0.0.\xff");
    let run = |args: &[&OsStr], env: &[(&str, &OsStr)]| {
        Command::new(bin())
            .args(args)
            .env_remove("DEST_IP")
            .env_remove("DEST_PORT")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[], &[("DEST_IP", bad)]);
    assert_one_line_error(&out, 2, &["$DEST_IP", "not valid UTF-8"]);
    let out = run(&[], &[("SLACK_URL", bad)]);
    assert_one_line_error(&out, 2, &["$SLACK_URL", "not valid UTF-8"]);
    let out = run(&[OsStr::new("--dest"), bad], &[]);
    assert_one_line_error(&out, 2, &["--dest", "not valid UTF-8"]);
    let mut eq = b"--port=".to_vec();
    eq.push(0xff);
    let out = run(&[OsStr::from_bytes(&eq)], &[]);
    assert_one_line_error(&out, 2, &["--port", "not valid UTF-8"]);
}

#[test]
fn a_bad_systemd_credential_is_named_not_echoed() {
    let dir = TempDir::new("cli-creds-bad");
    std::fs::write(
        dir.path().join("slack-url"),
        "ftp://hooks.slack.com/services/T0000/B0000/SECRETTOKEN\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .env_remove("SLACK_URL")
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, &["systemd credential slack-url"]);
    assert_no_secret(&out);
}

#[test]
fn the_systemd_credential_is_the_webhook() {
    if !require_root("the_systemd_credential_is_the_webhook") {
        return;
    }
    let slack = FakeSlack::start();
    let dir = TempDir::new("cli-creds");
    std::fs::write(dir.path().join("slack-url"), format!("{}\n", slack.url())).unwrap();
    let creds = dir.path().to_str().unwrap().to_string();
    let d = Daemon::builder(["--no-syslog", "--format", "none", "-d", "192.0.2.0/24"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("SLACK_URL", "")
        .start();
    let stopped = d.stop();
    let want = format!("slack http://127.0.0.1:{}/***", slack.port);
    assert!(
        stopped.stderr.contains(&want),
        "{want} not in {}",
        stopped.stderr
    );
    assert!(
        !stopped.stderr.contains("SECRETTOKEN"),
        "{}",
        stopped.stderr
    );
    assert!(
        !stopped.stderr.contains("command line"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn without_privileges_exit_3_with_advice() {
    if !require_root("without_privileges_exit_3_with_advice") {
        return;
    }
    // Drop to nobody with no capabilities at all.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            bin(),
        ])
        .output()
        .expect("setpriv (util-linux)");
    assert_one_line_error(&out, 3, &["CAP_BPF", "CAP_PERFMON", "root"]);
}

/// The man page in the package is committed (plain `cargo deb` packages it
/// as is); it must be what the flags say now.
#[test]
fn the_committed_man_page_is_current() {
    let out = tcpstate(&["--man"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/tcpstate.8"))
        .expect("packaging/tcpstate.8");
    assert!(
        out.stdout == committed,
        "packaging/tcpstate.8 is stale: regenerate it with \
         `target/release/tcpstate --man > packaging/tcpstate.8`"
    );
}

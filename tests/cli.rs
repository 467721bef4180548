//! The binary's contract with people and installers: one-line errors and
//! documented exit codes (2 usage, 3 privileges, 4 kernel), `--check`.

mod common;

use std::process::{Command, Output};

use common::{bin, require_root};

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
fn missing_btf_file_is_a_usage_error() {
    let out = tcpstate(&["--btf", "/nonexistent/vmlinux.btf"], &[]);
    // The privilege check comes first for non-root users.
    let code = if nix::unistd::geteuid().is_root() {
        2
    } else {
        3
    };
    assert_eq!(out.status.code(), Some(code), "{out:?}");
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

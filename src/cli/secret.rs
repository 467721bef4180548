//! The Slack webhook URL, a secret: from the flag, its variable, a file or
//! the systemd credential, read without blocking and never repeated in a
//! message.

use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::values::io_reason;
use crate::exit::{Fatal, Kind};
use crate::sinks::webhook::WebhookUrl;

/// Where a webhook URL belongs, for messages that must not repeat one.
pub const URL_PLACES: &str = "a webhook URL belongs in --slack-url-file PATH, $SLACK_URL \
     or the systemd credential slack-url (LoadCredential=slack-url:PATH)";

/// The most a URL file is read: a webhook URL is about 80 bytes.
const SECRET_FILE_MAX: u64 = 4096;

/// The systemd credential that holds the webhook (`LoadCredential=slack-url:…`).
pub const CREDENTIAL: &str = "slack-url";

/// Reads a small secret from a regular file without ever blocking: opened
/// with O_NONBLOCK (a FIFO without a writer would block a plain open or
/// read), refused unless it is a regular file, at most SECRET_FILE_MAX
/// bytes. `what` names the source in errors ("--slack-url-file /x").
fn read_secret_file(p: &Path, what: &str) -> Result<String, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| format!("{what}: cannot open: {}", io_reason(&e)))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "{what} is {kind}; it must be a regular file holding the URL"
        ));
    }
    if meta.len() > SECRET_FILE_MAX {
        return Err(format!(
            "{what} is larger than {SECRET_FILE_MAX} bytes; it must hold only the URL"
        ));
    }
    let mut buf = Vec::new();
    f.take(SECRET_FILE_MAX)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{what}: cannot read: {}", io_reason(&e)))?;
    String::from_utf8(buf).map_err(|_| format!("{what} is not UTF-8 text"))
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The webhook from the flag, its variable, a file, or the systemd
/// credential `slack-url` in `creds` ($CREDENTIALS_DIRECTORY) when nothing
/// else names one. The URL is a secret, so no message here repeats it.
pub(super) fn webhook(
    slack_url: Option<&str>,
    slack_url_file: Option<&Path>,
    creds: Option<&Path>,
) -> Result<Option<WebhookUrl>, Fatal> {
    let usage = |m: String| Fatal::new(Kind::Usage, m);
    let from_file = |p: &Path, what: String| -> Result<(String, String), Fatal> {
        let text = read_secret_file(p, &what).map_err(usage)?;
        let Some(first) = first_line(&text) else {
            return Err(usage(format!("{what} is empty")));
        };
        Ok((first.to_string(), what))
    };
    let (raw, from) = match (slack_url, slack_url_file) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "give the Slack URL once: --slack-url/$SLACK_URL or --slack-url-file, not both"
                    .into(),
            ))
        }
        (Some(u), None) if !u.trim().is_empty() => {
            (u.to_string(), "--slack-url/$SLACK_URL".to_string())
        }
        (None, Some(p)) => from_file(p, format!("--slack-url-file {}", p.display()))?,
        // Nothing given (or SLACK_URL set empty, as the packaged
        // /etc/default file may): the credential, if there is one.
        _ => match creds.map(|d| d.join(CREDENTIAL)) {
            Some(c) if c.exists() => from_file(&c, format!("systemd credential {CREDENTIAL}"))?,
            _ => return Ok(None),
        },
    };
    WebhookUrl::parse(&raw)
        .map(Some)
        .map_err(|e| usage(format!("invalid Slack webhook URL from {from}: {e}")))
}

/// The warning for a webhook URL on the command line.
pub const CMDLINE_URL_WARNING: &str =
    "the Slack webhook URL was given with --slack-url on the command line, \
     where every local user can read it (/proc/PID/cmdline); put it in a root-only file \
     (--slack-url-file PATH), in $SLACK_URL (e.g. /etc/default/tcpstate, mode 0600) \
     or in a systemd credential (LoadCredential=slack-url:PATH)";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::parse_from;
    use crate::cli::tests::{args, Tmp};

    #[test]
    fn url_files_must_be_small_regular_files() {
        let t = Tmp::new("files");
        let ok = t.file(
            "ok",
            b"\n  https://hooks.slack.com/services/T/B/X \nsecond\n",
        );
        assert_eq!(
            read_secret_file(&ok, "f").map(|s| first_line(&s).map(str::to_string)),
            Ok(Some("https://hooks.slack.com/services/T/B/X".to_string()))
        );
        let big = t.file("big", &vec![b'x'; 5000]);
        assert!(read_secret_file(&big, "f")
            .unwrap_err()
            .contains("larger than 4096"));
        let fifo = t.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(
            read_secret_file(&fifo, "--slack-url-file F").unwrap_err(),
            "--slack-url-file F is a FIFO; it must be a regular file holding the URL"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(read_secret_file(Path::new("/dev/zero"), "f")
            .unwrap_err()
            .contains("a device"));
        assert!(read_secret_file(&t.0, "f")
            .unwrap_err()
            .contains("a directory"));
        assert!(read_secret_file(&t.0.join("none"), "f")
            .unwrap_err()
            .contains("No such file"));
        let e = parse_from(args(&["--slack-url-file", "/dev/zero"]), None).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        let empty = t.file("empty", b"\n \n");
        let e = parse_from(args(&["--slack-url-file", empty.to_str().unwrap()]), None).unwrap_err();
        assert!(e.msg.ends_with("is empty"), "{}", e.msg);
    }
}

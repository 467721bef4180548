//! clap's errors as one line naming the option and its variable, with no
//! webhook URL in it.

use std::ffi::OsString;

use super::secret::URL_PLACES;
use crate::exit::{Fatal, Kind};

/// Replaces anything in an argument-parser message that looks like a
/// webhook URL (a quoted value holding `://` or `hooks.slack`, or a bare
/// `scheme://…` token) with `<URL hidden>`. Says whether it did.
pub fn hide_urls(msg: &str) -> (String, bool) {
    let looks_like_url = |t: &str| t.contains("://") || t.contains("hooks.slack");
    let mut out = String::with_capacity(msg.len());
    let mut hidden = false;
    // Quoted values first: clap quotes what it echoes, spaces included.
    let mut rest = msg;
    while let Some(open) = rest.find('\'') {
        let Some(len) = rest[open + 1..].find('\'') else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        if looks_like_url(inner) {
            out.push_str("'<URL hidden>'");
            hidden = true;
        } else {
            out.push('\'');
            out.push_str(inner);
            out.push('\'');
        }
        rest = &rest[open + 1 + len + 1..];
    }
    out.push_str(rest);
    // Then bare tokens, up to whitespace.
    let mut bare = String::with_capacity(out.len());
    for (i, tok) in out.split(' ').enumerate() {
        if i > 0 {
            bare.push(' ');
        }
        if let Some(at) = tok.find("://") {
            let scheme_start = tok[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                .map_or(0, |j| j + 1);
            bare.push_str(&tok[..scheme_start]);
            bare.push_str("<URL hidden>");
            hidden = true;
        } else if tok.contains("hooks.slack") {
            bare.push_str("<URL hidden>");
            hidden = true;
        } else {
            bare.push_str(tok);
        }
    }
    (bare, hidden)
}

/// Flags whose values are paths and may be any bytes.
const OS_STRING_ARGS: &[&str] = &["btf", "syslog_socket", "slack_url_file"];

/// Which flag or variable holds invalid UTF-8, for clap's anonymous
/// "invalid UTF-8" error.
fn non_utf8_culprit(cmd: &clap::Command, args: &[OsString]) -> Option<String> {
    let text_args = || {
        cmd.get_arguments()
            .filter(|a| !OS_STRING_ARGS.contains(&a.get_id().as_str()))
    };
    // A path flag's value may be any bytes: not the culprit.
    let takes_path = |flag: &str| {
        cmd.get_arguments().any(|a| {
            OS_STRING_ARGS.contains(&a.get_id().as_str())
                && (a.get_long().is_some_and(|l| flag == format!("--{l}"))
                    || a.get_short().is_some_and(|s| flag == format!("-{s}")))
        })
    };
    for (i, a) in args.iter().enumerate().skip(1) {
        if a.to_str().is_some() {
            continue;
        }
        let bytes = a.as_encoded_bytes();
        // --flag=value
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            if let Ok(flag) = std::str::from_utf8(&bytes[..eq]) {
                if flag.starts_with('-') {
                    if takes_path(flag) {
                        continue;
                    }
                    return Some(format!("the value of {flag} is not valid UTF-8"));
                }
            }
        }
        match args[i - 1].to_str() {
            Some(prev) if prev.starts_with('-') && i > 1 => {
                if takes_path(prev) {
                    continue;
                }
                return Some(format!("the value of {prev} is not valid UTF-8"));
            }
            _ => return Some(format!("command-line argument {i} is not valid UTF-8")),
        }
    }
    for a in text_args() {
        if let Some(var) = a.get_env() {
            if std::env::var_os(var).is_some_and(|v| v.to_str().is_none()) {
                let flag = a
                    .get_long()
                    .map(|l| format!(" (for --{l})"))
                    .unwrap_or_default();
                return Some(format!(
                    "${} is not valid UTF-8{flag}",
                    var.to_string_lossy()
                ));
            }
        }
    }
    None
}

/// clap's error as one line naming the option and its variable, with no
/// URL in it.
pub(super) fn usage_error(e: clap::Error, cmd: &clap::Command, args: &[OsString]) -> Fatal {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        std::process::exit(0);
    }
    if e.kind() == ErrorKind::InvalidUtf8 {
        if let Some(m) = non_utf8_culprit(cmd, args) {
            return Fatal::new(Kind::Usage, m);
        }
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Keep clap's "[possible values: …]" hint on the same line.
    let hint = rendered
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("[possible values"))
        .map(|h| format!(" {h}"))
        .unwrap_or_default();
    let first = format!("{first}{hint}");
    // Name the environment variable too: the value may have come from it.
    let env = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => cmd
            .get_arguments()
            .find(|a| {
                a.get_long()
                    .is_some_and(|l| arg.starts_with(&format!("--{l}")))
            })
            .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned())),
        _ => None,
    };
    let msg = match env {
        Some(var) => format!("{first} (from the flag or ${var})"),
        None => first,
    };
    // Never echo a webhook URL (a stray argument, a typo in TCPSTATE_OPTS).
    let (msg, hidden) = hide_urls(&msg);
    let msg = if hidden {
        format!("{msg}; {URL_PLACES}")
    } else {
        msg
    };
    Fatal::new(Kind::Usage, msg)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::tests::SECRET;
    use crate::cli::{parse_from, Cli};

    #[test]
    fn urls_in_messages_are_hidden() {
        for (msg, want) in [
            (
                format!("unexpected argument '{SECRET}' found"),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                "unexpected argument 'https://h/a b SECRETPATH' found".to_string(),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                "invalid value 'ftp://x/SECRETPATH' for '--format <FORMAT>'".to_string(),
                "invalid value '<URL hidden>' for '--format <FORMAT>'",
            ),
            (
                "unexpected argument 'hooks.slack.com/services/SECRETPATH' found".to_string(),
                "unexpected argument '<URL hidden>' found",
            ),
            (
                format!("bare {SECRET} and x:{SECRET},y"),
                "bare <URL hidden> and x:<URL hidden>",
            ),
        ] {
            let (got, hidden) = hide_urls(&msg);
            assert_eq!(got, want);
            assert!(hidden);
            assert!(!got.contains("SECRETPATH"));
        }
        let plain = "invalid value 'xml' for '--format <FORMAT>'";
        assert_eq!(hide_urls(plain), (plain.to_string(), false));
        // An unbalanced quote still hides the bare URL.
        let (got, _) = hide_urls(&format!("it's {SECRET}"));
        assert!(!got.contains("SECRETPATH"), "{got}");
    }
    #[test]
    fn invalid_utf8_names_the_flag() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"10.0.0.\xff".to_vec());
        let cmd = Cli::command();
        let a = vec![
            OsString::from("tcpstate"),
            OsString::from("--dest"),
            bad.clone(),
        ];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --dest is not valid UTF-8")
        );
        let mut eq = b"--port=".to_vec();
        eq.push(0xff);
        let a = vec![OsString::from("tcpstate"), OsString::from_vec(eq)];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --port is not valid UTF-8")
        );
        // A path may be any bytes: the culprit is the next one.
        let a = vec![
            OsString::from("tcpstate"),
            OsString::from("--btf"),
            bad.clone(),
            OsString::from("--format"),
            bad.clone(),
        ];
        assert_eq!(
            non_utf8_culprit(&cmd, &a).as_deref(),
            Some("the value of --format is not valid UTF-8")
        );
        let e = parse_from(
            vec![OsString::from("tcpstate"), OsString::from("-d"), bad],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.msg.contains("-d"), "{}", e.msg);
    }
}

//! The one rule every untrusted string (a process name, a cgroup path, a
//! container or DNS name) follows on its way to a sink: printable ASCII
//! other than space and backslash as it is, a backslash doubled, every
//! other byte (control characters, newlines, space, non-ASCII) `\xNN`. The
//! result is one token that no reader can mistake for a line break, a
//! field separator or markup. Slack's `&<>` escaping is applied on top by
//! its sink. Pure, and a leaf: everything that shows such a string uses it.

use std::fmt;

/// Writes `bytes` escaped. Runs of safe bytes go out in one write: this is
/// on the hot path.
pub fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, 0x21..=0x7e) && b != b'\\' {
            continue;
        }
        // The run is printable ASCII, so always valid UTF-8.
        f.write_str(std::str::from_utf8(&bytes[start..i]).unwrap_or_default())?;
        match b {
            b'\\' => f.write_str("\\\\")?,
            _ => write!(f, "\\x{b:02x}")?,
        }
        start = i + 1;
    }
    f.write_str(std::str::from_utf8(&bytes[start..]).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    struct E<'a>(&'a [u8]);
    impl std::fmt::Display for E<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            super::write(f, self.0)
        }
    }

    #[test]
    fn one_safe_token_whatever_the_bytes() {
        assert_eq!(E(b"curl").to_string(), "curl");
        assert_eq!(
            E(b"a b\\c\n\x00\xff").to_string(),
            "a\\x20b\\\\c\\x0a\\x00\\xff"
        );
        assert_eq!(E("é".as_bytes()).to_string(), "\\xc3\\xa9");
        assert_eq!(E(b"").to_string(), "");
        let all: Vec<u8> = (0..=255).collect();
        assert!(E(&all)
            .to_string()
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b)));
    }
}

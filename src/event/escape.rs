//! The one rule every untrusted string (a process name, a cgroup path, a
//! container or DNS name) follows on its way to a sink: printable ASCII
//! other than space and backslash as it is, a backslash doubled, every
//! other byte (control characters, newlines, space, non-ASCII) `\xNN`. The
//! result is one token that no reader can mistake for a line break, a
//! field separator or markup. Slack's `&<>` escaping is applied on top by
//! its sink. Pure, and a leaf: everything that shows such a string uses it.

use std::borrow::Cow;
use std::fmt;

/// Bytes that should be text (a cgroup's directory name) as a string: as
/// they are when UTF-8, else each byte that is not as `\xNN`, so names
/// that differ in such bytes read apart, as they would not with U+FFFD in
/// their place. (A UTF-8 name that spells `\xff` itself still reads as
/// the byte does: a string cannot hold both.) Shown through [`write`],
/// the escape is escaped once more: `\\xff`.
pub fn text_of(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

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
    fn non_utf8_names_are_escaped_not_replaced() {
        assert_eq!(super::text_of(b"nginx.service"), "nginx.service");
        assert_eq!(super::text_of(b"a\xff.service"), "a\\xff.service");
        assert_ne!(super::text_of(b"a\xfe"), super::text_of(b"a\xff"));
        assert_eq!(super::text_of(b"\xc3\xa9\xc3"), "é\\xc3");
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

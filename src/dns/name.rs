//! A DNS name as tcpstate keeps and shows it: the question an application
//! asked, lowercased, labels joined by dots. Untrusted (whoever answers a
//! query picks it), so it is only shown through its `Display`, which
//! escapes as process names are, or the sinks' own escaping of its bytes.

use std::fmt;

/// The longest name in text form (RFC 1035: 255 octets on the wire).
pub const MAX_LEN: usize = 253;

/// Inline and `Copy`, like `Comm`: failures carry it by value, so the
/// per-failure path neither allocates nor shares.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dname {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl Dname {
    /// None when empty or longer than [`MAX_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Dname> {
        if bytes.is_empty() || bytes.len() > MAX_LEN {
            return None;
        }
        let mut d = Dname {
            len: bytes.len() as u8,
            bytes: [0; MAX_LEN],
        };
        d.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(d)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Escaped, as every untrusted string: see `escape`.
impl fmt::Display for Dname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::event::escape::write(f, self.as_bytes())
    }
}

impl fmt::Debug for Dname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dname({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escaped_and_bounded() {
        assert_eq!(
            Dname::new(b"api.example.com").unwrap().to_string(),
            "api.example.com"
        );
        assert_eq!(
            Dname::new(b"a\nb\\c\x1b.\xc3\xa9").unwrap().to_string(),
            "a\\x0ab\\\\c\\x1b.\\xc3\\xa9"
        );
        assert!(Dname::new(b"").is_none());
        assert!(Dname::new(&[b'a'; MAX_LEN]).is_some());
        assert!(Dname::new(&[b'a'; MAX_LEN + 1]).is_none());
    }
}

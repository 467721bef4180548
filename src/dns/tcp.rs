//! DNS over TCP (issue 32): a record from a TCP stream to port 53 holds
//! the buffer one syscall moved, as far as the kernel copied it. glibc
//! writes each query behind its 2-byte length in an iovec of its own and
//! reads an answer's length, then the answer: such a buffer is one
//! message. Others (c-ares, Go) move messages each behind its length: the
//! buffer is framed here. What the copy or the stream cut is counted,
//! never guessed at. Pure.

/// Messages taken from one buffer: a resolver sends A and AAAA at once;
/// more would be a forwarder's pipeline.
pub const MAX_MESSAGES: usize = 4;

/// What one buffer holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed<'a> {
    /// Each message, whole or as far as the buffer holds it.
    pub messages: Vec<&'a [u8]>,
    /// Messages the buffer holds only part of (the kernel's copy ended,
    /// or the stream split it across reads: the rest is not seen), and
    /// messages past [`MAX_MESSAGES`] or past the copy, not looked at.
    pub cut: u64,
}

/// Whether `b` starts like a DNS message: QR as `query` says, a standard
/// query's opcode, one question (the kernel's own test).
fn looks_like_message(b: &[u8], query: bool) -> bool {
    b.len() >= 12 && (b[2] & 0xf8) == if query { 0 } else { 0x80 } && b[4] == 0 && b[5] == 1
}

/// The messages of a buffer of `wire_len` bytes whose first `copied.len()`
/// the kernel copied.
pub fn frame(copied: &[u8], wire_len: usize, query: bool) -> Framed<'_> {
    let mut f = Framed::default();
    let beyond = wire_len > copied.len();
    if looks_like_message(copied, query) {
        // glibc's: the message alone (its length was read or written apart).
        f.messages.push(copied);
        f.cut += u64::from(beyond);
        return f;
    }
    let mut rest = copied;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        if f.messages.len() == MAX_MESSAGES || !looks_like_message(body, query) {
            // Past the bound, or not a message behind its length: the
            // rest of the buffer is not read.
            f.cut += 1;
            return f;
        }
        if body.len() < len {
            f.messages.push(body);
            f.cut += 1;
            return f;
        }
        f.messages.push(&body[..len]);
        rest = &body[len..];
    }
    // Bytes past the copy: at least one more message or part of one.
    f.cut += u64::from(beyond || rest.len() == 1);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::answer::wire::*;

    fn prefixed(m: &[u8]) -> Vec<u8> {
        let mut out = (m.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(m);
        out
    }

    #[test]
    fn glibcs_message_alone_is_one_message() {
        let a = response(&name("big.test"), 1, &[rr(&QNAME, 1, 9, &[192, 0, 2, 1])]);
        let f = frame(&a, a.len(), false);
        assert_eq!((f.messages, f.cut), (vec![&a[..]], 0));
        // The read got less than the kernel would copy: the same message,
        // cut, which the answer's parser reports as partial.
        let f = frame(&a[..512.min(a.len())], 700, false);
        assert_eq!(f.cut, 1);
        let q = query(&name("big.test"), 1);
        assert_eq!(frame(&q, q.len(), true).messages, vec![&q[..]]);
        assert!(
            frame(&q, q.len(), false).messages.is_empty(),
            "not an answer"
        );
    }

    #[test]
    fn messages_behind_their_lengths_are_framed_and_cuts_counted() {
        let q4 = query(&name("api.test"), 1);
        let q6 = query(&name("api.test"), 28);
        let mut buf = prefixed(&q4);
        buf.extend(prefixed(&q6));
        let f = frame(&buf, buf.len(), true);
        assert_eq!((f.messages, f.cut), (vec![&q4[..], &q6[..]], 0));
        // The second one split across reads (or past the copy).
        let short = &buf[..buf.len() - 5];
        let f = frame(short, buf.len(), true);
        assert_eq!(f.messages.len(), 2);
        assert_eq!((f.messages[1].len(), f.cut), (q6.len() - 5, 1));
        // Just its length, then nothing: cut too.
        let f = frame(&buf[..q4.len() + 3], buf.len(), true);
        assert_eq!((f.messages.len(), f.cut), (1, 1));
        // More than the bound: counted, not read.
        let many: Vec<u8> = (0..6).flat_map(|_| prefixed(&q4)).collect();
        let f = frame(&many, many.len(), true);
        assert_eq!((f.messages.len(), f.cut), (MAX_MESSAGES, 1));
    }

    #[test]
    fn what_is_no_message_is_counted_not_parsed() {
        let q4 = query(&name("api.test"), 1);
        let mut buf = prefixed(&q4);
        buf.extend_from_slice(b"\x00\x20garbage that is no dns message..");
        let f = frame(&buf, buf.len(), true);
        assert_eq!((f.messages.len(), f.cut), (1, 1));
        assert_eq!(frame(b"", 0, true), Framed::default());
        assert_eq!(frame(&[0xff; 40], 40, false).cut, 1);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_frame_within_bounds(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), q: bool, extra in 0usize..100) {
            let f = frame(&bytes, bytes.len() + extra, q);
            proptest::prop_assert!(f.messages.len() <= MAX_MESSAGES);
            let total: usize = f.messages.iter().map(|m| m.len()).sum();
            proptest::prop_assert!(total <= bytes.len());
        }
    }
}

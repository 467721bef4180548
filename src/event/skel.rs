//! The generated BPF skeleton and the records it carries from
//! src/bpf/tcpstate.h. A leaf: the pure event types and the loader both
//! use it without depending on each other.

mod generated {
    #![allow(
        clippy::all,
        clippy::pedantic,
        dead_code,
        unused_imports,
        non_camel_case_types
    )]
    include!(concat!(env!("OUT_DIR"), "/tcpstate.skel.rs"));
}

pub use generated::{TcpstateSkel, TcpstateSkelBuilder};

/// The record the BPF program submits, as the skeleton generated it.
pub type RawEvent = generated::types::tcpstate_event;
/// Key of the destination LPM trie.
pub type LpmKey = generated::types::tcpstate_lpm_key;
/// A cgroup's names, leaf first, sent the first time its id is seen.
pub type RawCgroupNames = generated::types::tcpstate_cgroup_names;
/// A DNS answer an application received, as the kernel handed it over.
pub type RawDns = generated::types::tcpstate_dns;
/// One socket in SYN_SENT at start, as the iter/tcp program writes it.
pub type RawSeed = generated::types::tcpstate_seed;

// SAFETY: generated from a C struct of fixed-width integers and byte arrays
// with no padding and no pointers; every bit pattern is a valid value.
unsafe impl plain::Plain for RawEvent {}
// SAFETY: as above: a u32 and a [u8; 16], 20 bytes without padding.
unsafe impl plain::Plain for LpmKey {}
// SAFETY: as RawEvent: fixed-width integers and byte arrays, no holes.
unsafe impl plain::Plain for RawSeed {}
// SAFETY: as RawEvent: a u64, two u32 and byte arrays, no holes.
unsafe impl plain::Plain for RawCgroupNames {}
// SAFETY: as RawEvent: u64, u32 and u16 fields, a byte array and u64
// words, laid out without holes (592 bytes).
unsafe impl plain::Plain for RawDns {}

impl RawDns {
    /// The answer's bytes as copied (at most TCPSTATE_DNS_MAX).
    pub fn payload(&self) -> Vec<u8> {
        let n = usize::from(self.len).min(self.data.len() * 8);
        let mut out: Vec<u8> = self.data.iter().flat_map(|w| w.to_ne_bytes()).collect();
        out.truncate(n);
        out
    }
}

impl RawCgroupNames {
    /// The path the names spell, as under the cgroup v2 mount: `/a/b/c`;
    /// `/…/b/c` when the kernel's path was deeper than the record holds.
    pub fn path(&self) -> String {
        let depth = (self.depth as usize).min(self.names.len());
        let mut parts: Vec<String> = self.names[..depth]
            .iter()
            .map(|words| {
                let n: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
                let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                crate::event::escape::text_of(&n[..end]).into_owned()
            })
            .filter(|n| !n.is_empty())
            .collect();
        parts.reverse();
        let head = if self.truncated != 0 { "/…" } else { "" };
        format!("{head}/{}", parts.join("/"))
    }
}

#[cfg(feature = "synthetic")]
pub type SynthArgs = generated::types::tcpstate_synth;
// SAFETY: a u64 and two u32, 16 bytes without padding.
#[cfg(feature = "synthetic")]
unsafe impl plain::Plain for SynthArgs {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(parts: &[&str], truncated: bool) -> RawCgroupNames {
        let mut r = RawCgroupNames {
            cgroup_id: 7,
            depth: parts.len() as u32,
            truncated: u32::from(truncated),
            ..Default::default()
        };
        for (i, p) in parts.iter().enumerate() {
            let mut bytes = [0u8; 96];
            bytes[..p.len()].copy_from_slice(p.as_bytes());
            for (w, chunk) in r.names[i].iter_mut().zip(bytes.chunks(8)) {
                *w = u64::from_ne_bytes(chunk.try_into().unwrap());
            }
        }
        r
    }

    #[test]
    fn names_spell_the_path_from_the_root() {
        // Leaf first, the root's empty name last, as the kernel walks it.
        let r = names(&["x.service", "system.slice", ""], false);
        assert_eq!(r.path(), "/system.slice/x.service");
        assert_eq!(names(&[""], false).path(), "/");
        assert_eq!(names(&["c", "b"], true).path(), "/…/b/c");
    }
}

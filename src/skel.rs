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
/// One socket in SYN_SENT at start, as the iter/tcp program writes it.
pub type RawSeed = generated::types::tcpstate_seed;

// SAFETY: generated from a C struct of fixed-width integers and byte arrays
// with no padding and no pointers; every bit pattern is a valid value.
unsafe impl plain::Plain for RawEvent {}
// SAFETY: as above: a u32 and a [u8; 16], 20 bytes without padding.
unsafe impl plain::Plain for LpmKey {}
// SAFETY: as RawEvent: fixed-width integers and byte arrays, no holes.
unsafe impl plain::Plain for RawSeed {}

#[cfg(feature = "synthetic")]
pub type SynthArgs = generated::types::tcpstate_synth;
// SAFETY: a u64 and two u32, 16 bytes without padding.
#[cfg(feature = "synthetic")]
unsafe impl plain::Plain for SynthArgs {}

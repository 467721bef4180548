//! The per-event path, pure: `engine` decodes each drained record, pairs
//! it with its attempt (`correlate`), names its caller and destination,
//! formats its line, runs the alert policy and counts it. No I/O and no
//! clock of its own.

pub mod correlate;
pub mod dns_failures;
pub mod engine;
pub mod established;
pub mod verdict;

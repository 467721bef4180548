//! Destinations by name: the DNS answers applications on this host
//! receive (seen by the BPF program where each is delivered), parsed
//! (`answer`), paired with the queries their sockets sent (`pending`),
//! remembered per source (`memory`), and shown on failures as untrusted
//! text (`name`); DNS over TCP framed (`tcp`). Pure: no I/O.

pub mod answer;
pub mod lookup;
pub mod memory;
pub mod name;
pub mod outcome;
pub mod pending;
pub mod resolvconf;
pub mod tcp;
pub mod watch;

pub use memory::{Memory, MemoryStats, Scope};
pub use name::Dname;

//! Alerts, decided: the policy (pure) turns failures into alerts in the
//! event loop (`policy`, with its `types`), `resolve` decides when a
//! destination's Alertmanager alert fires and resolves (`dns_fleet`: a
//! name's), and `wording` says each in words every sink shares. Delivery
//! is in `crate::sinks`.

pub mod dns;
pub mod dns_fleet;
pub mod policy;
pub mod resolve;
pub mod types;
pub mod wording;

//! Alerts, decided: the policy (pure) turns failures into alerts in the
//! event loop (`policy`, with its `types`), `resolve` decides when a
//! destination's Alertmanager alert fires and resolves (`dns_fleet`: a
//! name's; both keep their firing alerts in `firing`'s table), and `wording` says each in words every sink shares. Delivery
//! is in `crate::sinks`.

pub mod dns;
pub mod dns_fleet;
mod firing;
pub mod policy;
pub mod resolve;
pub mod types;
pub mod wording;

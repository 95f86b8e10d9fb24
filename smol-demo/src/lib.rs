//! tailguard at work: the pieces behind the `tailguard-demo` binary.
//!
//! Everything here is a library too, so the end-to-end tests in `tests/` drive the same server,
//! backends and experiments the binary runs.

pub mod args;
pub mod backend;
pub mod client;
pub mod deadline;
pub mod experiment;
pub mod fleet;
pub mod gateway;
pub mod herd;
pub mod load;
pub mod metrics;
pub mod ms;
pub mod overload;
pub mod percentile;
pub mod respond;
pub mod rt;
pub mod server;
pub mod signals;
pub mod tail_at_scale;
pub mod tour;
pub mod verdict;
pub mod wire_deadline;

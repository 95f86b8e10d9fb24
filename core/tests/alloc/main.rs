//! What the core allocates on its happy paths: nothing. One test binary, so the counting
//! allocator in [`support`] is defined and installed once.
//!
//! Each module holds the tests of one part of the core; `support` counts the allocations of
//! the current thread only, so tests running in parallel do not disturb each other's counts.

mod support;

mod balance;
mod breaker;
mod hedge;
mod latency;
mod limit;
mod limits;
mod pipeline;
mod retry;
mod timeout_io_tracker;

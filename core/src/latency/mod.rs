//! Latency histograms: record durations from many threads at once, ask for percentiles.
//!
//! Tail latency is invisible in averages. To see it, and to act on it (hedging at the recent p95,
//! say), you need percentiles, and you need them cheaply on the hot path of every call.
//!
//! - [`LatencyHistogram`] records a [`Duration`](std::time::Duration) with one relaxed atomic
//!   increment: no lock, no allocation after construction, and threads recording at once
//!   mostly touch different counters. It answers
//!   [`quantile`](LatencyHistogram::quantile), [`min`](LatencyHistogram::min),
//!   [`max`](LatencyHistogram::max), [`mean`](LatencyHistogram::mean) and
//!   [`count`](LatencyHistogram::count), and can be [`merge`](LatencyHistogram::merge)d and
//!   [`reset`](LatencyHistogram::reset).
//! - [`RollingHistogram`] answers for a recent window only: a ring of histograms, one per slice
//!   of time, where the oldest slice is cleared as time moves on. It is sans-IO: you pass `now`.
//!
//! ## How precise
//!
//! Buckets are log-linear, as in HdrHistogram: every power of two of nanoseconds is split into
//! 64 equal sub-buckets, and values below 64 ns are exact. A quantile is reported as the middle
//! of the bucket holding the sample of that rank, clamped to the recorded min and max, so it is
//! within [`MAX_RELATIVE_ERROR`] (1/128, under 0.8 %) of the exact sample quantile, from
//! nanoseconds to centuries.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::latency::LatencyHistogram;
//!
//! let histogram = LatencyHistogram::new();
//! for ms in 1..=100 {
//!     histogram.record(Duration::from_millis(ms));
//! }
//! let p99 = histogram.quantile(0.99).unwrap();
//! let exact = Duration::from_millis(99);
//! assert!(p99.max(exact) - p99.min(exact) <= exact / 128);
//! assert_eq!(histogram.max(), Some(Duration::from_millis(100)));
//! ```

mod buckets;
mod histogram;
mod rolling;

pub use self::buckets::MAX_RELATIVE_ERROR;
pub use self::histogram::LatencyHistogram;
pub use self::rolling::{RollingHistogram, MAX_SLOTS};

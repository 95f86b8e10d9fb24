//! The pipeline's attempt timeout: none, a fixed one, or an [`AdaptiveTimeout`] that learns it
//! from the attempts it bounds.

use std::time::{Duration, Instant};

use crate::adaptive_timeout::AdaptiveTimeout;

/// How long each attempt may run, from its start.
#[derive(Debug, Clone, Default)]
pub(super) enum AttemptLimit {
    /// No limit of its own (the call's deadline still bounds it).
    #[default]
    None,
    /// [`attempt_timeout`](super::PipelineBuilder::attempt_timeout).
    Fixed(Duration),
    /// [`attempt_timeout_adaptive`](super::PipelineBuilder::attempt_timeout_adaptive).
    Adaptive(AdaptiveTimeout),
}

impl AttemptLimit {
    /// Whether attempts have a limit of their own (their start must then be read).
    #[inline]
    pub(super) fn is_set(&self) -> bool {
        !matches!(self, AttemptLimit::None)
    }

    /// The limit of the attempt starting now. The adaptive timeout's is its value as last
    /// computed ([`AdaptiveTimeout::attempt_timeout`]: two atomic loads, no clock), which
    /// [`record_at`](Self::record_at) keeps current as attempts end.
    #[inline]
    pub(super) fn limit(&self) -> Option<Duration> {
        match self {
            AttemptLimit::None => None,
            AttemptLimit::Fixed(limit) => Some(*limit),
            AttemptLimit::Adaptive(adaptive) => Some(adaptive.attempt_timeout()),
        }
    }

    /// An attempt that waited ended on its own at `now` after `latency`: in time, or `cut` by
    /// its limit (then `latency` is a lower bound on what it would have taken). The same sample
    /// the pipeline's prediction records. The adaptive timeout is then brought up to date at
    /// `now` (a percentile is computed once per slice of its window; otherwise a slice index
    /// and a load): off the path of an attempt ready at once, which records at the coarse time.
    #[inline]
    pub(super) fn record_at(&self, now: Instant, latency: Duration, cut: bool) {
        if let AttemptLimit::Adaptive(adaptive) = self {
            if cut {
                adaptive.record_timeout_at(now, latency);
            } else {
                adaptive.record_at(now, latency);
            }
            adaptive.timeout_at(now);
        }
    }

    /// An attempt was ready on its first poll: zero latency, recorded at `now_nanos`, the
    /// timer's coarse time ([`Timer::now_coarse_nanos`](crate::time::Timer::now_coarse_nanos)).
    #[inline]
    pub(super) fn record_ready_at(&self, now_nanos: u64) {
        if let AttemptLimit::Adaptive(adaptive) = self {
            adaptive.record_nanos_at(now_nanos, Duration::ZERO);
        }
    }

    /// The fixed limit, if that is what it is.
    pub(super) fn fixed(&self) -> Option<Duration> {
        match self {
            AttemptLimit::Fixed(limit) => Some(*limit),
            _ => None,
        }
    }

    /// The adaptive timeout, if that is what it is.
    pub(super) fn adaptive(&self) -> Option<&AdaptiveTimeout> {
        match self {
            AttemptLimit::Adaptive(adaptive) => Some(adaptive),
            _ => None,
        }
    }
}

//! One endpoint's load: a peak-EWMA of its latency and the calls it has outstanding.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What the balancer knows of one endpoint, shared with the [`Load`](super::Load)s out on it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The decay time constant, in nanoseconds.
    tau: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The latency estimate, in nanoseconds, as of `stamp`.
    rtt: f64,
    /// When `rtt` was last updated; `None` before the first call.
    stamp: Option<Instant>,
    /// Calls outstanding.
    pending: u32,
    /// The sum of the outstanding calls' start times, in nanoseconds after `origin`.
    started_sum: u128,
    /// The instant start times are counted from (the first call's start).
    origin: Option<Instant>,
}

impl State {
    /// The estimate decayed to `now`, towards zero, with time constant `tau`.
    fn decayed(&self, now: Instant, tau: f64) -> f64 {
        match self.stamp {
            Some(stamp) => {
                let idle = now.saturating_duration_since(stamp).as_nanos() as f64;
                self.rtt * (-idle / tau).exp()
            }
            None => self.rtt,
        }
    }

    /// How long, on average, the outstanding calls have been out at `now` (zero without any).
    fn outstanding_age(&self, now: Instant) -> f64 {
        match (self.pending, self.origin) {
            (0, _) | (_, None) => 0.0,
            (pending, Some(origin)) => {
                let now = now.saturating_duration_since(origin).as_nanos();
                let mean_start = self.started_sum / u128::from(pending);
                now.saturating_sub(mean_start) as f64
            }
        }
    }

    fn offset(&mut self, at: Instant) -> u128 {
        let origin = *self.origin.get_or_insert(at);
        at.saturating_duration_since(origin).as_nanos()
    }
}

impl Endpoint {
    pub(crate) fn new(initial_rtt: Duration, tau: Duration) -> Endpoint {
        Endpoint {
            tau: tau.as_nanos() as f64,
            state: Mutex::new(State {
                rtt: initial_rtt.as_nanos() as f64,
                stamp: None,
                pending: 0,
                started_sum: 0,
                origin: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few numbers updated in one step each: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latency this endpoint is expected to have at `now`: the decayed peak-EWMA, or the
    /// mean age of its outstanding calls if that is longer (a stalled endpoint answers nothing,
    /// so only the age of what it holds shows the stall).
    pub(crate) fn latency_at(&self, now: Instant) -> f64 {
        let state = self.lock();
        state.decayed(now, self.tau).max(state.outstanding_age(now))
    }

    /// The cost of sending one more call at `now`: expected latency × (outstanding + 1).
    pub(crate) fn cost_at(&self, now: Instant) -> f64 {
        let state = self.lock();
        let latency = state.decayed(now, self.tau).max(state.outstanding_age(now));
        latency * f64::from(state.pending.saturating_add(1))
    }

    pub(crate) fn pending(&self) -> u32 {
        self.lock().pending
    }

    /// A call starts at `at`.
    pub(crate) fn start(&self, at: Instant) {
        let mut state = self.lock();
        let offset = state.offset(at);
        state.pending = state.pending.saturating_add(1);
        state.started_sum += offset;
    }

    /// A call that started at `started` ends at `now`; `observed` is the latency to learn
    /// from, if any, and whether it is only a lower bound.
    pub(crate) fn end(&self, started: Instant, now: Instant, observed: Observed) {
        let mut state = self.lock();
        let offset = state.offset(started);
        state.pending = state.pending.saturating_sub(1);
        state.started_sum = state.started_sum.saturating_sub(offset);
        if state.pending == 0 {
            state.started_sum = 0;
        }
        if observed == Observed::Nothing {
            return;
        }
        let rtt = now.saturating_duration_since(started).as_nanos() as f64;
        let current = state.decayed(now, self.tau);
        let next = match observed {
            // A peak is taken at once: a slow endpoint is avoided from its first slow answer.
            Observed::Exact | Observed::AtLeast if rtt > current => rtt,
            // A lower bound under the estimate says nothing new.
            Observed::AtLeast | Observed::Nothing => return,
            // Otherwise the estimate moves towards the sample, the more so the longer it has
            // been since the last one (Finagle's and tower's peak-EWMA).
            Observed::Exact => {
                let since = state
                    .stamp
                    .map_or(0.0, |s| now.saturating_duration_since(s).as_nanos() as f64);
                let weight = (-since / self.tau).exp();
                state.rtt * weight + rtt * (1.0 - weight)
            }
        };
        state.rtt = next;
        state.stamp = Some(now);
    }
}

/// What the end of a call teaches about the endpoint's latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// The call finished: its latency is exact.
    Exact,
    /// The call was cancelled after being out this long: its latency is at least that.
    AtLeast,
    /// Nothing (dropped without a time).
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ms_of(nanos: f64) -> f64 {
        nanos / 1e6
    }

    #[test]
    fn a_peak_is_taken_at_once_and_decays_away() {
        let t0 = Instant::now();
        let e = Endpoint::new(ms(1), Duration::from_secs(1));
        e.start(t0);
        e.end(t0, t0 + ms(100), Observed::Exact);
        assert_eq!(ms_of(e.latency_at(t0 + ms(100))), 100.0);
        // One time constant later, e^-1 of it is left.
        let left = ms_of(e.latency_at(t0 + ms(1100)));
        assert!((left - 100.0 / std::f64::consts::E).abs() < 0.01, "{left}");
    }

    #[test]
    fn a_faster_sample_moves_the_estimate_by_elapsed_time() {
        let t0 = Instant::now();
        let e = Endpoint::new(ms(10), Duration::from_secs(1));
        // An answer right after the last one barely moves it...
        e.start(t0);
        e.end(t0, t0 + ms(1), Observed::Exact);
        let first = ms_of(e.latency_at(t0 + ms(1)));
        assert!(first > 9.0, "{first}");
        // ...one much later nearly replaces it.
        let later = t0 + Duration::from_secs(10);
        e.start(later);
        e.end(later, later + ms(1), Observed::Exact);
        let second = ms_of(e.latency_at(later + ms(1)));
        assert!((second - 1.0).abs() < 0.01, "{second}");
    }

    #[test]
    fn outstanding_calls_age_and_multiply_the_cost() {
        let t0 = Instant::now();
        let e = Endpoint::new(ms(2), Duration::from_secs(10));
        assert_eq!(ms_of(e.cost_at(t0)), 2.0);
        e.start(t0);
        e.start(t0);
        // Two outstanding for 30 ms: the age (30) beats the estimate (2), times 3.
        assert!((ms_of(e.cost_at(t0 + ms(30))) - 90.0).abs() < 1e-6);
        assert_eq!(e.pending(), 2);
        e.end(t0, t0 + ms(30), Observed::Nothing);
        e.end(t0, t0 + ms(30), Observed::Nothing);
        assert_eq!(e.pending(), 0);
        assert!((ms_of(e.latency_at(t0 + ms(30))) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn a_lower_bound_only_ever_raises_the_estimate() {
        let t0 = Instant::now();
        let e = Endpoint::new(ms(20), Duration::from_secs(10));
        e.start(t0);
        e.end(t0, t0 + ms(5), Observed::AtLeast);
        assert!((ms_of(e.latency_at(t0 + ms(5))) - 20.0).abs() < 0.01);
        e.start(t0);
        e.end(t0, t0 + ms(50), Observed::AtLeast);
        assert_eq!(ms_of(e.latency_at(t0 + ms(50))), 50.0);
    }
}

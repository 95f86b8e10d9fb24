//! The seam for deciding from outside: tripping a closed breaker on counts it did not see
//! itself (a fleet's, shared by another crate), judged by the breaker's own thresholds.

use std::time::Instant;

use super::super::state::{Reason, State};
use super::super::window::Counts;
use super::{Notes, StateMachine, CLOSED, CODE_MASK};

impl StateMachine {
    /// Opens the breaker at `now` as if its own window had crossed its threshold, with the
    /// reason [`Reason::Fleet`]: only from closed (an open, half-open, forced-open or disabled
    /// breaker is left alone). The open period is the usual one (the next step of the open
    /// backoff); afterwards the breaker probes the dependency itself, as after any trip.
    /// Returns whether this call opened it.
    ///
    /// This is what a sharing layer calls when the *fleet* has seen enough failures; nothing
    /// on the call path changes (it reads the same state word).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tailguard::breaker::{CircuitBreakerBuilder, State};
    ///
    /// let start = Instant::now();
    /// let machine = CircuitBreakerBuilder::new()
    ///     .open_duration(Duration::from_secs(10))
    ///     .build_state_machine_at(start)?;
    /// assert!(machine.trip_at(start));
    /// assert_eq!(machine.state(), State::Open);
    /// assert!(!machine.trip_at(start)); // already open
    /// let probe = machine.try_acquire_at(start + Duration::from_secs(10)).unwrap();
    /// assert!(probe.is_probe());
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn trip_at(&self, now: Instant) -> bool {
        let mut notes = Notes::default();
        let tripped = {
            let mut control = self.lock();
            let word = self.state.load(std::sync::atomic::Ordering::Acquire);
            if word & CODE_MASK == CLOSED {
                self.enter(
                    &mut control,
                    word,
                    State::Open,
                    Reason::Fleet,
                    now,
                    &mut notes,
                );
                true
            } else {
                false
            }
        };
        self.notify(notes);
        tripped
    }

    /// The window's counts at `now`, over at most its newest `calls` calls: `(calls,
    /// failures, slow_calls)`, like [`metrics_at`](Self::metrics_at)'s but cut to the newest
    /// calls. A sharing layer publishes each instance's newest `window / instances` calls so
    /// that the fleet judges the last `window` calls *across the fleet*, as one breaker would.
    /// A time window is not cut (its calls have no order): it gives its whole counts. Reads
    /// what the window keeps (under the transition lock, briefly, as `metrics_at` does).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tailguard::breaker::{CircuitBreakerBuilder, Outcome};
    ///
    /// let now = Instant::now();
    /// let machine = CircuitBreakerBuilder::new()
    ///     .count_window(10)
    ///     .minimum_calls(10)
    ///     .build_state_machine_at(now)?;
    /// for outcome in [Outcome::Success, Outcome::Success, Outcome::Failure] {
    ///     let ticket = machine.try_acquire_at(now).unwrap();
    ///     machine.record_at(ticket, outcome, now);
    /// }
    /// assert_eq!(machine.newest_counts_at(now, 2), (2, 1, 0));
    /// assert_eq!(machine.newest_counts_at(now, 100), (3, 1, 0));
    /// assert_eq!(machine.window_calls(), Some(10));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn newest_counts_at(&self, now: Instant, calls: u64) -> (u64, u64, u64) {
        let epoch = self.lock().window_epoch;
        let counts = self.window.newest_counts(epoch, self.nanos(now), calls);
        (counts.calls, counts.failures, counts.slow)
    }

    /// The calls a count window holds (`count_window`), or `None` for a time window.
    pub fn window_calls(&self) -> Option<u64> {
        self.window.count_size()
    }

    /// Whether a window holding these counts would open this breaker by its own rules: at
    /// least `minimum_calls` calls, and the failure rate (or, if slow calls are measured, the
    /// slow-call rate) at its threshold. For judging counts summed over several instances.
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreakerBuilder;
    ///
    /// let machine = CircuitBreakerBuilder::new()
    ///     .failure_rate(0.5)
    ///     .minimum_calls(10)
    ///     .build_state_machine_at(std::time::Instant::now())?;
    /// assert!(machine.crosses_threshold(10, 5, 0));
    /// assert!(!machine.crosses_threshold(10, 4, 0));
    /// assert!(!machine.crosses_threshold(9, 9, 0)); // fewer than minimum_calls
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn crosses_threshold(&self, calls: u64, failures: u64, slow_calls: u64) -> bool {
        self.trip_reason(Counts {
            calls,
            failures: failures.min(calls),
            slow: slow_calls.min(calls),
        })
        .is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backoff::{Backoff, Jitter};
    use crate::breaker::{CircuitBreakerBuilder, Outcome};

    const SEC: Duration = Duration::from_secs(1);

    fn machine(start: Instant) -> StateMachine {
        CircuitBreakerBuilder::new()
            .count_window(4)
            .minimum_calls(4)
            .failure_rate(0.5)
            .open_backoff(
                Backoff::exponential(10 * SEC)
                    .max_delay(40 * SEC)
                    .jitter(Jitter::None)
                    .build()
                    .unwrap(),
            )
            .half_open_calls(1)
            .stripes(1)
            .build_state_machine_at(start)
            .unwrap()
    }

    #[test]
    fn a_trip_opens_a_closed_breaker_for_the_open_duration_then_it_probes_itself() {
        let t0 = Instant::now();
        let m = machine(t0);
        assert!(m.trip_at(t0));
        assert_eq!(m.state(), State::Open);
        let rejected = m.try_acquire_at(t0 + 9 * SEC).unwrap_err();
        assert_eq!(rejected.retry_after(), Some(SEC));
        // After the open duration: a local probe, which closes it on success.
        let probe = m.try_acquire_at(t0 + 10 * SEC).unwrap();
        assert!(probe.is_probe());
        m.record_at(probe, Outcome::Success, t0 + 10 * SEC);
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn a_trip_is_refused_unless_closed() {
        let t0 = Instant::now();
        let m = machine(t0);
        assert!(m.trip_at(t0));
        assert!(!m.trip_at(t0 + SEC), "open: left alone");
        let probe = m.try_acquire_at(t0 + 10 * SEC).unwrap();
        assert_eq!(m.state(), State::HalfOpen);
        assert!(!m.trip_at(t0 + 10 * SEC), "half-open: left alone");
        m.release(probe);
        m.force_open_at(t0 + 11 * SEC);
        assert!(!m.trip_at(t0 + 11 * SEC), "forced open: left alone");
        assert_eq!(m.state(), State::ForcedOpen);
        m.disable_at(t0 + 12 * SEC);
        assert!(!m.trip_at(t0 + 12 * SEC), "disabled: left alone");
        assert_eq!(m.state(), State::Disabled);
    }

    #[test]
    fn repeated_trips_step_the_open_backoff_like_failed_probe_rounds() {
        let t0 = Instant::now();
        let m = machine(t0);
        assert!(m.trip_at(t0));
        // A failed probe round: the next open period is the backoff's next step (20 s).
        let probe = m.try_acquire_at(t0 + 10 * SEC).unwrap();
        m.record_at(probe, Outcome::Failure, t0 + 10 * SEC);
        let rejected = m.try_acquire_at(t0 + 10 * SEC).unwrap_err();
        assert_eq!(rejected.retry_after(), Some(20 * SEC));
        // Closing starts the backoff over: a later trip is 10 s again.
        let probe = m.try_acquire_at(t0 + 30 * SEC).unwrap();
        m.record_at(probe, Outcome::Success, t0 + 30 * SEC);
        assert!(m.trip_at(t0 + 31 * SEC));
        let rejected = m.try_acquire_at(t0 + 31 * SEC).unwrap_err();
        assert_eq!(rejected.retry_after(), Some(10 * SEC));
    }

    #[test]
    fn a_trip_reports_a_fleet_transition_and_makes_old_permits_stale() {
        let t0 = Instant::now();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        let m = CircuitBreakerBuilder::new()
            .count_window(4)
            .minimum_calls(4)
            .on_transition(move |t| log.lock().unwrap().push((t.from, t.to, t.reason)))
            .build_state_machine_at(t0)
            .unwrap();
        let before = m.try_acquire_at(t0).unwrap();
        assert!(m.trip_at(t0));
        // The permit from before the trip is ignored: it cannot change the open breaker.
        m.record_at(before, Outcome::Failure, t0);
        assert_eq!(m.metrics_at(t0).failures, 0);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(State::Closed, State::Open, Reason::Fleet)]
        );
    }

    #[test]
    fn newest_counts_cut_a_count_window_to_its_newest_calls() {
        let t0 = Instant::now();
        let m = CircuitBreakerBuilder::new()
            .count_window(8)
            .minimum_calls(8)
            .failure_rate(0.9)
            .stripes(1)
            .build_state_machine_at(t0)
            .unwrap();
        let record = |outcome| {
            let ticket = m.try_acquire_at(t0).unwrap();
            m.record_at(ticket, outcome, t0);
        };
        for _ in 0..6 {
            record(Outcome::Success);
        }
        for _ in 0..4 {
            record(Outcome::Failure);
        }
        assert_eq!(m.newest_counts_at(t0, 3), (3, 3, 0));
        assert_eq!(m.newest_counts_at(t0, 6), (6, 4, 0));
        assert_eq!(m.newest_counts_at(t0, 100), (8, 4, 0), "at most the window");
        assert_eq!(m.newest_counts_at(t0, 0), (0, 0, 0));
        assert_eq!(m.window_calls(), Some(8));
        // A time window is not cut.
        let timed = CircuitBreakerBuilder::new()
            .time_window(10 * SEC, 10)
            .build_state_machine_at(t0)
            .unwrap();
        for _ in 0..3 {
            let ticket = timed.try_acquire_at(t0).unwrap();
            timed.record_at(ticket, Outcome::Failure, t0);
        }
        assert_eq!(timed.newest_counts_at(t0, 1), (3, 3, 0));
        assert_eq!(timed.window_calls(), None);
    }

    #[test]
    fn thresholds_judge_outside_counts_by_the_breakers_own_rules() {
        let t0 = Instant::now();
        let m = machine(t0);
        assert!(m.crosses_threshold(4, 2, 0));
        assert!(!m.crosses_threshold(4, 1, 0));
        assert!(!m.crosses_threshold(3, 3, 0), "below minimum_calls");
        assert!(!m.crosses_threshold(0, 0, 0));
        assert!(
            m.crosses_threshold(4, 9, 0),
            "failures above calls count as calls"
        );
        // Judging counts changes nothing.
        assert_eq!(m.state(), State::Closed);
        let slow = CircuitBreakerBuilder::new()
            .minimum_calls(2)
            .slow_calls(SEC, 0.5)
            .build_state_machine_at(t0)
            .unwrap();
        assert!(slow.crosses_threshold(2, 0, 1));
        assert!(
            !m.crosses_threshold(4, 0, 4),
            "slow calls are not measured here"
        );
    }
}

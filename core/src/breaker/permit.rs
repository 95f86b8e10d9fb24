//! The permit guard: record an outcome, or drop it to release.

use std::fmt;

use super::ticket::{Outcome, Ticket};
use super::CircuitBreaker;
use crate::time::Timer;

/// Permission for one call, from [`CircuitBreaker::try_acquire`].
///
/// Report what the call did with [`success`](Self::success), [`failure`](Self::failure) or
/// [`record`](Self::record). Dropping the permit instead (the call was cancelled or abandoned)
/// releases it, counted as neither: a cancelled call never holds a half-open probe slot.
///
/// A slow call is measured from [`try_acquire`](CircuitBreaker::try_acquire) to the report, on
/// the breaker's timer.
///
/// It borrows the breaker; to hold a permit across tasks, or anywhere a `'static` value is
/// needed, take an [`OwnedPermit`] with
/// [`try_acquire_owned`](CircuitBreaker::try_acquire_owned).
///
/// ```
/// use tailguard::breaker::CircuitBreaker;
/// use tailguard::time::ManualTimer;
///
/// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
/// match breaker.try_acquire() {
///     Ok(permit) => {
///         let worked = true; // ... make the call ...
///         if worked { permit.success() } else { permit.failure() }
///     }
///     Err(rejected) => println!("not now: {rejected}"),
/// }
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "a permit records nothing unless you call success() or failure()"]
pub struct Permit<'a, T: Timer> {
    breaker: &'a CircuitBreaker<T>,
    ticket: Option<Ticket>,
}

impl<'a, T: Timer> Permit<'a, T> {
    #[inline]
    pub(crate) fn new(breaker: &'a CircuitBreaker<T>, ticket: Ticket) -> Self {
        Permit {
            breaker,
            ticket: Some(ticket),
        }
    }

    /// The call worked.
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Reports `outcome`.
    #[inline(always)]
    pub fn record(mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            record(self.breaker, ticket, outcome);
        }
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.as_ref().is_some_and(Ticket::is_probe)
    }
}

impl<T: Timer> Drop for Permit<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.state_machine().release(ticket);
        }
    }
}

#[inline(always)]
fn record<T: Timer>(breaker: &CircuitBreaker<T>, ticket: Ticket, outcome: Outcome) {
    breaker
        .state_machine()
        .record_with(ticket, outcome, &breaker.clocks());
}

impl<T: Timer> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

/// A [`Permit`] that owns a handle to its breaker (a clone: a reference count and the timer)
/// instead of borrowing it, from [`CircuitBreaker::try_acquire_owned`]: hold it across tasks,
/// move it into a spawned task, keep it in a `'static` struct.
///
/// It behaves exactly as a [`Permit`]: report with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record); dropping it releases it, counted as
/// neither, and frees a half-open probe slot at once.
///
/// ```
/// use tailguard::breaker::{CircuitBreaker, OwnedPermit};
/// use tailguard::time::ManualTimer;
///
/// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
/// let permit: OwnedPermit<ManualTimer> = breaker.try_acquire_owned().unwrap();
/// // Another thread (or task) makes the call and reports it.
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(breaker.metrics().calls, 1);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "a permit records nothing unless you call success() or failure()"]
pub struct OwnedPermit<T: Timer> {
    breaker: CircuitBreaker<T>,
    ticket: Option<Ticket>,
}

impl<T: Timer> OwnedPermit<T> {
    pub(crate) fn new(breaker: CircuitBreaker<T>, ticket: Ticket) -> Self {
        OwnedPermit {
            breaker,
            ticket: Some(ticket),
        }
    }

    /// The call worked.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Reports `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            record(&self.breaker, ticket, outcome);
        }
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.as_ref().is_some_and(Ticket::is_probe)
    }

    /// The breaker this permit was issued by.
    pub fn breaker(&self) -> &CircuitBreaker<T> {
        &self.breaker
    }
}

impl<T: Timer> Drop for OwnedPermit<T> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.state_machine().release(ticket);
        }
    }
}

impl<T: Timer> fmt::Debug for OwnedPermit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

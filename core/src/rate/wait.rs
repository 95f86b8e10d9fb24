//! Waiting for a token: the futures of [`RateLimiter::acquire_until`] and
//! [`KeyedRateLimiter::acquire_until`].
//!
//! Nothing is reserved while waiting: the future sleeps until the bucket says the token will be
//! there, then asks again (another caller may have taken it). So dropping it gives nothing back
//! because it holds nothing, and a wait whose token would only come after the deadline is
//! refused at once instead of slept through.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::handle::Permit;
use super::keyed::KeyedRateLimiter;
use super::rejected::{Reason, Rejected};
use super::RateLimiter;
use crate::time::Timer;

/// One attempt, then the sleep until the next: shared by both futures.
fn poll_wait<T: Timer>(
    timer: &T,
    deadline: Option<Instant>,
    sleep: &mut Option<T::Sleep>,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut(Instant) -> Result<Permit, Rejected>,
) -> Poll<Result<Permit, Rejected>> {
    loop {
        if let Some(s) = sleep {
            if Pin::new(s).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let now = timer.now();
        let refused = match attempt(now) {
            Ok(permit) => return Poll::Ready(Ok(permit)),
            Err(refused) if refused.reason == Reason::TooMany => return Poll::Ready(Err(refused)),
            Err(refused) => refused,
        };
        let ready_at = crate::time::deadline_after(now, Duration::from_nanos(refused.wait_nanos));
        if deadline.is_some_and(|deadline| ready_at > deadline) {
            return Poll::Ready(Err(Rejected {
                reason: Reason::Deadline,
                ..refused
            }));
        }
        match sleep {
            Some(s) => timer.reset(s, ready_at),
            None => *sleep = Some(timer.sleep_until(ready_at)),
        }
    }
}

/// The future of [`RateLimiter::acquire_until`] and [`RateLimiter::until_ready`]: a [`Permit`] once a
/// token is taken, or [`Reason::Deadline`] at once if the next token would come after the
/// deadline. It holds nothing while it waits.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, T: Timer> {
    limiter: &'a RateLimiter<T>,
    deadline: Option<Instant>,
    sleep: Option<T::Sleep>,
}

impl<'a, T: Timer> Acquire<'a, T> {
    pub(super) fn new(limiter: &'a RateLimiter<T>, deadline: Option<Instant>) -> Self {
        Acquire {
            limiter,
            deadline,
            sleep: None,
        }
    }
}

impl<T: Timer> Future for Acquire<'_, T> {
    type Output = Result<Permit, Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let limiter = this.limiter;
        let polled = poll_wait(limiter.timer(), this.deadline, &mut this.sleep, cx, |now| {
            limiter.take_at(now)
        });
        if let Poll::Ready(Err(_)) = polled {
            limiter.count_rejection();
        }
        polled
    }
}

impl<T: Timer> fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("deadline", &self.deadline)
            .field("sleeping", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`KeyedRateLimiter::acquire_until`]: as [`Acquire`], for one key.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireKey<'a, K, T: Timer> {
    limiter: &'a KeyedRateLimiter<K, T>,
    key: &'a K,
    deadline: Option<Instant>,
    sleep: Option<T::Sleep>,
}

impl<'a, K: Hash + Eq + Clone, T: Timer> AcquireKey<'a, K, T> {
    pub(super) fn new(
        limiter: &'a KeyedRateLimiter<K, T>,
        key: &'a K,
        deadline: Option<Instant>,
    ) -> Self {
        AcquireKey {
            limiter,
            key,
            deadline,
            sleep: None,
        }
    }
}

impl<K: Hash + Eq + Clone, T: Timer> Future for AcquireKey<'_, K, T> {
    type Output = Result<Permit, Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (limiter, key) = (this.limiter, this.key);
        let polled = poll_wait(limiter.timer(), this.deadline, &mut this.sleep, cx, |now| {
            limiter.take_n_at(key, 1, now)
        });
        if let Poll::Ready(Err(_)) = polled {
            limiter.count_rejection();
        }
        polled
    }
}

impl<K, T: Timer> fmt::Debug for AcquireKey<'_, K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKey")
            .field("deadline", &self.deadline)
            .field("sleeping", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

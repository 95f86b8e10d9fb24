//! Sending a hedge within a round: the deadline, the breaker, the limiter and the hedge budget
//! must all allow it at once.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::TryFuture;

use super::calls::Inner;
use super::future::HedgeLeg;
use super::leg::Leg;
use super::limiter::Limiter;
use super::Attempt;
use crate::hedge::{Hedge, HedgeState};
use crate::time::Timer;

/// What sending a hedge needs of its call.
pub(super) struct Round<'a, 'p, T: Timer, C, L: Limiter, Fut> {
    pub(super) inner: &'p Inner<T, C, L>,
    /// The call's deadline.
    pub(super) deadline: Option<Instant>,
    /// The round's hedging state.
    pub(super) hedge: &'a mut HedgeState<&'p Hedge>,
    /// The retry round it belongs to.
    pub(super) round: u32,
    /// The round's hedges so far.
    pub(super) hedges: &'a mut Vec<HedgeLeg<'p, T, L, Fut>>,
}

/// Sends the next hedge at `now` if the deadline leaves time for it, the breaker admits it, the
/// limiter has a slot at once and the hedge budget allows; `false` (and hedging stops for this
/// round) otherwise.
#[inline(never)]
pub(super) fn launch_hedge<'p, T, C, L, Fut>(
    round: Round<'_, 'p, T, C, L, Fut>,
    cx: &mut Context<'_>,
    now: Instant,
) -> bool
where
    T: Timer,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    let Round {
        inner,
        deadline,
        hedge,
        round,
        hedges,
    } = round;
    if let Some(deadline) = deadline {
        let remaining = deadline.saturating_duration_since(now);
        if remaining.is_zero() || remaining < inner.predictor.predict_at(now) {
            return false;
        }
    }
    let breaker = match &inner.breaker {
        Some(breaker) => match breaker.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => return false,
        },
        None => None,
    };
    let permit = if L::PRESENT {
        let acquire = pin!(inner.limiter.acquire_at(now, deadline));
        match acquire.poll(cx) {
            Poll::Ready(Ok(permit)) => Some(permit),
            _ => return false,
        }
    } else {
        None
    };
    let Some(number) = hedge.try_hedge_at(now) else {
        return false;
    };
    let mut leg = Box::pin(Leg::idle());
    leg.as_mut().start(
        inner,
        Attempt::new(round, number),
        breaker,
        permit,
        Some(now),
        deadline,
    );
    let index = number as usize - 2;
    if hedges.len() <= index {
        hedges.resize_with(index + 1, || None);
    }
    hedges[index] = Some(leg);
    true
}

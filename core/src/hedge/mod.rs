//! Hedged requests: send a backup copy of a slow call, take the first good answer.
//!
//! In a large fan-out, the slowest of many calls sets the pace, and a rare stall on one server
//! (a garbage-collection pause, a busy disk, a noisy neighbour) becomes the common case of the
//! whole request. "The Tail at Scale" (Dean & Barroso, 2013) answers with *hedged requests*:
//! when a call has been out longer than most calls take, send the same call to another replica
//! and use whichever answers first. Most calls never wait that long, so the extra load is small;
//! the ones that do are exactly the stalled ones.
//!
//! A [`Hedge`] policy decides:
//!
//! - **when** to hedge: a fixed delay, or (the default) adaptively, at a percentile (p95 by
//!   default) of recent primary latency, once at least `min_samples` are known, kept between
//!   a floor and a ceiling, and never earlier than the budget can pay for (see
//!   [below](#the-delay-the-budget-can-pay-for));
//! - **how many** attempts a call may make (`max_attempts`, the primary included), which also
//!   bounds how many are in flight;
//! - **how much** extra load in total: a [`HedgeBudget`] allows hedges ≤ ratio × primaries
//!   plus a small floor per second, shared by every clone of the policy. The floor is a reserve
//!   that starts full, so hedging works from the very first call (with the defaults, 10 hedges
//!   a second whatever the traffic, on top of 5 % of primaries).
//!
//! [`Hedge::run_with`] runs one call: `make_attempt(1)` starts the primary (attempts are numbered
//! from 1, as in [`retry`](crate::retry)), `make_attempt(2)` the first hedge, and so on. Whenever the delay
//! passes after the latest attempt started with no success, and the budget allows, the next
//! attempt starts; an attempt that fails starts the next one at once. The first `Ok` wins and
//! every other attempt is dropped on the spot (dropping is how Rust cancels). If all fail, the
//! caller gets every error in a [`HedgeError`]. Without an explicit timer, [`Hedge::run`] uses
//! the [`DefaultTimer`](crate::time::DefaultTimer).
//!
//! ```
//! use std::time::Duration;
//! use tailguard::hedge::Hedge;
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let hedge = Hedge::builder()
//!     .fixed_delay(Duration::from_millis(10))
//!     .budget_ratio(1.0)
//!     .build()?;
//!
//! // The primary (attempt 1) is stalled for a second; the hedge (attempt 2) answers in 2 ms.
//! let read = |attempt: u32| {
//!     let timer = timer.clone();
//!     async move {
//!         let took = if attempt == 1 { 1000 } else { 2 };
//!         timer.sleep(Duration::from_millis(took)).await;
//!         Ok::<_, std::io::Error>(attempt)
//!     }
//! };
//! let winner = timer.block_on(hedge.run_with(timer.clone(), read))?;
//! assert_eq!(winner, 2);
//! assert_eq!(timer.elapsed(), Duration::from_millis(12)); // 10 ms delay + 2 ms
//! assert_eq!(hedge.stats().hedges_won, 1);
//! assert_eq!(timer.pending_sleeps(), 0); // the stalled primary was dropped
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Sans-IO
//!
//! The decisions of one call live in [`HedgeState`], a state machine that takes the time as an
//! argument and does no I/O: when the next hedge is due, whether the attempt cap and the budget
//! allow it, what latency to record, and the statistics. [`HedgedRun`] drives it with a
//! [`Timer`](crate::time::Timer); the Python binding drives the same machine from its asyncio
//! loop.
//!
//! ## What is recorded, and why it is not biased
//!
//! An adaptive delay learns from a [`RollingHistogram`](crate::latency::RollingHistogram)
//! ([`Hedge::latency`]). Learning only from winners would be survivor bias: a hedged call's
//! winner is by construction fast, so the recorded tail would shrink, the delay would drop,
//! and hedging would feed on itself. So the policy records **the primary's latency of every
//! call, and nothing else**:
//!
//! - a primary that finishes (success or failure) records its exact latency; one that is ready
//!   on its first poll records zero (it kept nobody waiting), dated like any sample (the
//!   window must know when it was taken, or it would leave with an older slice);
//! - a primary cancelled because a hedge won, or because the caller dropped the call, records
//!   the time it had been out: a lower bound on its true latency.
//!
//! Primaries are an unconditional sample, one per call, whereas hedges are only sent when the
//! primary is already slow, so their latencies describe bad moments, not the backend. The
//! lower bounds do not distort the percentile the delay is set at: a hedge can only win after
//! the delay, so every primary it cancels is recorded at a value above the delay, which is
//! also below its true latency; a value above the percentile stays above it, and the count of
//! samples at or under the delay, hence that percentile, is exact. (A caller that drops a call
//! before the delay, say on its own deadline, adds a lower bound under it; that is rare, and it
//! errs towards hedging sooner.)
//!
//! ## A scarce budget goes to the calls that are stuck
//!
//! A budget spent first come, first served goes to the wrong calls. In the demo's live
//! experiment (`tailguard-demo tail-at-scale`: 8 replicas, each stalling about 40 ms every 2 s,
//! so about 2 % of calls meet a stall) adaptive hedging at p95 within a 2 % budget used to lose
//! to a fixed 10 ms delay at the same cost (p99 35–46 ms against 16 ms). Measured, the cause
//! was the budget: the p95 delay (about 5 ms) is crossed by 5 % of calls, most of them merely a
//! little slow, and they drained the 2 % budget; the stalled calls, which cross the delay a
//! moment later, found it empty, and a refused hedge was final, so they waited out the whole
//! stall. A fixed 10 ms delay is crossed almost only by stalled calls, so its budget went to
//! them.
//!
//! So the budget is **rationed by lateness** ([`HedgeState`] has the rules):
//!
//! - a hedge at its first chance (the delay has just passed) may take a hedge only while the
//!   budget keeps at least half of its `max_burst` saved
//!   ([`HedgeBudget::try_withdraw_keeping_at`]), or while the policy is young, half of what
//!   its primaries have earned so far (a fresh budget holds nothing: keeping 50 hedges from the
//!   start left the stalled calls of the first seconds to their second chance, live 70 keys
//!   against 15 for the fixed delay; test
//!   `hedge::state_tests::a_young_policy_keeps_half_of_what_it_has_earned`); the reserve (the
//!   per-second floor) still serves it, so a quiet client hedges from its first call;
//! - a refused hedge is not final: it gets another chance at 2, 4, 8 and 16 times the delay
//!   ([`HedgeState::MAX_CHANCES`]), and a later chance may take the last hedge.
//!
//! A call that was only a little slow ends before its second chance; a stalled one comes back
//! and is served from the half that was kept. The extra load is still bounded by the budget
//! (rationing only decides who gets it), and a policy whose budget is never short behaves
//! exactly as before. (Whoever drives a [`HedgeState`] must come back at
//! [`next_hedge_at`](HedgeState::next_hedge_at) after a refusal: the
//! [`pipeline`](crate::pipeline), which the demo's gateway hedges through, used to end hedging
//! at the first refusal, so that live no hedge was ever sent at a later chance — 0 against 736
//! refusals in a 20 s run — and a stalled key refused once waited out its stall: adaptive p99
//! 39 ms against 32 ms for the fixed delay on a loaded machine, 42 against 15 ms on an idle
//! one. Test: `pipeline::tests::a_hedge_the_budget_refuses_at_its_first_chance_is_sent_at_its_second`.)
//!
//! ## The delay the budget can pay for
//!
//! Rationing decides who gets a short budget; it cannot make an early delay cheap. p95 is
//! crossed by 5 % of calls: with a 2 % budget, the hedges go to the stalled calls at twice the
//! delay, and the extra load is the whole budget, its floor included. Live, once the pipeline
//! kept the later chances, adaptive p95 matched the fixed 10 ms delay's p99 (16.9 against
//! 16.6 ms) but for 2.86 % extra calls against 1.88 %.
//!
//! So an adaptive delay is **never earlier than the percentile the budget pays for**: with a
//! budget of `ratio` hedges per primary, `1 - ratio` of calls end before the `1 - ratio`
//! percentile and `ratio` cross it, exactly as many as the budget pays a hedge for. A percentile
//! asked for below it is raised to it ([`Hedge::delay_percentile`] says which is used): p95 within
//! a 2 % budget hedges at p98. Every call that crosses the delay can then have its hedge at its
//! first chance, and the delay is as early as that allows: hedging earlier only moves the
//! budget from the stalled calls to the little-slow ones. Where latency is bimodal (service,
//! then stalls in a few percent of calls), p(1 − ratio) for a budget the size of the stalls
//! lands in the gap between the two, where a hand-tuned fixed delay would be put; live, p98 was
//! 8.1–10 ms, next to the fixed 10 ms, with service at ~2 ms and stalls of 20–60 ms. A budget
//! of 0 (only the floor pays) or of one hedge per call and more leaves the percentile as asked.
//! Test: `hedge::rationing_tests::an_adaptive_delay_is_never_earlier_than_the_budget_can_pay_for`
//! (in virtual time, p95 asked within 2 %: 11 % of the stalled calls hedged at their first
//! chance; at p98, at least 95 %).
//!
//! ## Replica-aware hedges and retries
//!
//! A hedge sent to the replica that is still working on the primary queues behind it; one
//! sent to a replica that is slow right now, or whose breaker is half-open, is as likely to be
//! slow as the call it backs up. [`CallReplicas`] tracks the replicas one call is using and
//! picks the next one by [`ReplicaHealth`] and cost (a [`Balancer`](crate::balance::Balancer)'s,
//! say): never a replica running the call, a hedge only to a healthy one, a retry preferably to
//! one not tried yet.
//!
//! ## Zero cost on the happy path
//!
//! The primary is polled inline on the first poll, before anything else happens. If it is
//! ready, the call has allocated nothing and registered no timer: it cost two atomic increments
//! (the primaries counter and the budget deposit) and, for adaptive policies, one histogram
//! record at the time it ended (one clock read).

mod budget;
mod error;
mod policy;
mod replicas;
mod run;
mod state;
mod stats;

pub use self::budget::{HedgeBudget, HedgeBudgetBuilder};
pub use self::error::HedgeError;
pub use self::policy::{Hedge, HedgeBuilder, MAX_ATTEMPTS};
pub use self::replicas::{AttemptKind, CallReplicas, Candidate, ReplicaHealth};
pub use self::run::{HedgedRun, MakeAttempt};
pub use self::state::{AttemptOutcome, HedgeState};
pub(crate) use self::state::{CallTime, TimerTime};
pub use self::stats::HedgeStats;

#[cfg(test)]
mod delay_tests;
#[cfg(test)]
mod rationing_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tests;

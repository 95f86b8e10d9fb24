//! The `p2c` mode of the simulation: least-loaded replica choice and replica-aware hedging on
//! top of adaptive hedging.
//!
//! Each key has `max_attempts` copies (the replicas the other modes send attempt 1, 2, ... to).
//! Here:
//!
//! - the **primary** goes to the cheaper of two of the key's copies drawn at random (power of
//!   two choices), by a [`Balancer`]'s cost: its peak-EWMA latency, or the mean age of its
//!   outstanding reads if longer, × (outstanding + 1). A replica stalled for a while holds
//!   reads that age, or has answered late, so it is avoided;
//! - a **hedge** goes to the cheapest copy not running this read and not on probation for
//!   being slow ([`Balancer::is_slow_against_at`]), as
//!   [`CallReplicas`] picks; only if every copy left is slow
//!   does it go to the cheapest of those (the hedge was already paid for);
//! - each attempt's [`Load`] is finished when the read completes, and cancelled (the time out
//!   learnt as a lower bound) when a hedge wins first.
//!
//! The balancer is seeded from the run's seed and the simulation is single-threaded, so the
//! mode stays deterministic for a seed.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use tailguard::balance::{Balancer, Load};
use tailguard::hedge::{AttemptKind, CallReplicas, Candidate, ReplicaHealth};
use tailguard::time::{ManualTimer, Timer};
use tailguard::ConfigError;

use super::sim::{Read, ReadResult, SimConfig};
use crate::backend::mix;

/// The balancer of one run: every replica, by index, seeded from the run's seed.
pub(super) fn balancer(config: &SimConfig) -> Result<Balancer<usize>, ConfigError> {
    Balancer::builder()
        .seed(config.seed)
        .build(0..config.replicas)
}

/// One attempt in flight: its load on the replica, released (as cancelled, if it did not
/// finish) when the attempt ends or is dropped.
struct Attempt<'a> {
    load: Option<Load>,
    timer: &'a ManualTimer,
    call: Rc<RefCell<CallReplicas>>,
    replica: usize,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(load) = self.load.take() {
            load.cancel_at(self.timer.now());
        }
        self.call.borrow_mut().finish(self.replica);
    }
}

/// One key read: the primary by power of two choices among the key's copies, hedges by
/// [`CallReplicas`] (see the [module documentation](self)).
pub(super) fn read_key<'a>(
    read: Read<'a>,
    balancer: &'a Balancer<usize>,
) -> impl Future<Output = ReadResult> + 'a {
    let copies = read.run.config.max_attempts as usize;
    let call = Rc::new(RefCell::new(CallReplicas::new()));
    let timer = read.run.timer;
    read.run.hedge.run_with(timer.clone(), move |attempt| {
        let now = timer.now();
        let replica = if attempt == 1 {
            primary(read, balancer, copies)
        } else {
            hedge(read, balancer, copies, &call.borrow())
        };
        call.borrow_mut().start(replica);
        let guard = Attempt {
            load: balancer.start_at(replica, now),
            timer,
            call: call.clone(),
            replica,
        };
        let sleep = timer.sleep_until(read.serve(replica, attempt));
        async move {
            let mut guard = guard;
            sleep.await;
            if let Some(load) = guard.load.take() {
                load.finish_at(timer.now());
            }
            Ok::<(), std::convert::Infallible>(())
        }
    })
}

/// The cheaper of two of the key's copies, drawn from the read's hash.
fn primary(read: Read<'_>, balancer: &Balancer<usize>, copies: usize) -> usize {
    let now = read.run.timer.now();
    let r = mix(read.id() ^ 0x70_32_63);
    let a = (r % copies as u64) as usize;
    let b = ((r >> 32) % (copies as u64 - 1)) as usize;
    let b = if b >= a { b + 1 } else { b };
    let (a, b) = (read.copy(a), read.copy(b));
    let cost = |i: usize| balancer.cost_at(i, now).unwrap_or(f64::INFINITY);
    if cost(b) < cost(a) {
        b
    } else {
        a
    }
}

/// The copy a hedge goes to: healthy and not running this read, cheapest first; if none is
/// healthy, the cheapest not running it.
fn hedge(read: Read<'_>, balancer: &Balancer<usize>, copies: usize, call: &CallReplicas) -> usize {
    let now = read.run.timer.now();
    let mean = balancer.mean_latency_at(now);
    let candidates = (0..copies).map(|c| {
        let replica = read.copy(c);
        Candidate {
            replica,
            health: if balancer.is_slow_against_at(replica, now, mean) {
                ReplicaHealth::Slow
            } else {
                ReplicaHealth::Healthy
            },
            cost: balancer.cost_at(replica, now).unwrap_or(f64::INFINITY),
        }
    });
    call.pick(AttemptKind::Hedge, candidates.clone())
        .or_else(|| call.pick(AttemptKind::Retry, candidates))
        // Attempts never outnumber copies (validated), so one copy is always free.
        .unwrap_or_else(|| read.copy(0))
}

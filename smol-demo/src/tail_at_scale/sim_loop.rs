//! The event loop that runs the hedging modes (`none`, `fixed`, `adaptive`, `p2c`) of the
//! simulation in virtual time.
//!
//! Each key read is a [`HedgeState`] — the sans-IO core of [`Hedge::run_with`], making every
//! decision it makes: when a hedge is due, whether the budget allows it, what goes into the
//! adaptive window — driven here with explicit virtual time instead of futures on a
//! `ManualTimer`. An attempt's finish time is known when it is sent ([`Workers::serve`]), so
//! a key read waits on one event at a time: the earliest of its attempts' finishes and its
//! hedge's due time.
//!
//! The loop replays exactly what the futures-based driver it replaced (a `scatter_gather_with`
//! per request over one `Hedge::run_with` per key, on a `ManualTimer`) did, so a seed gives the
//! same output: events fire in order of time and then of registration (a sleep registered
//! when first polled, a hedge timer again each time its due time moves); those due at one
//! instant are handled request by request, in the order each request was first woken, and
//! within a request key by key in the order each key was first woken; within a key, a finished
//! attempt (the primary first) wins before a due hedge is sent; a request's 10 s deadline
//! comes after the keys that finish at that instant, and drops the rest in the order a
//! `FuturesUnordered` drops them (the most recently polled first). One corner differs in
//! principle: a primary that finishes the instant it is sent (a service time of 0, which needs
//! `service_base` 0 and a hash of exactly 1) has its hedge delay read here; `HedgedRun` read
//! none for it.
//!
//! [`Workers::serve`]: super::sim_world::Workers::serve

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use tailguard::balance::{Balancer, Load};
use tailguard::hedge::{AttemptOutcome, CallReplicas, Hedge, HedgeState};

use super::sim::{placement, service, SimConfig, Workers, World};
use super::sim_p2c::{self, Copies};
use crate::backend::nanos;

/// The `key` of an event that is request `request`'s arrival, or its deadline; other values
/// are key reads.
const ARRIVAL: u32 = u32::MAX;
const DEADLINE: u32 = u32::MAX - 1;

/// One attempt of a key read.
struct Attempt {
    /// When it finishes, in virtual nanoseconds.
    finish: u64,
    /// Its registration's place in order (0: not registered yet).
    seq: u64,
    replica: usize,
    /// Its load on the `p2c` mode's balancer.
    load: Option<Load>,
}

/// One key read in flight.
struct KeyRead<'h> {
    state: HedgeState<&'h Hedge>,
    copies: Copies,
    /// The primary, inline: most reads send nothing else.
    primary: Attempt,
    /// The hedges, in the order sent.
    hedges: Vec<Attempt>,
    /// The hedge timer, when registered: its due time and registration.
    timer: Option<(u64, u64)>,
    /// The replicas the `p2c` mode's attempts run on.
    call: CallReplicas,
    /// When it was last put at the head of its request's list of futures (see [`drop_rest`]).
    stamp: u64,
    done: bool,
}

impl KeyRead<'_> {
    /// Attempt `i + 1`: the primary, then the hedges.
    fn attempt(&mut self, i: usize) -> &mut Attempt {
        match i {
            0 => &mut self.primary,
            i => &mut self.hedges[i - 1],
        }
    }
}

enum Request<'h> {
    Waiting,
    Running {
        arrival: u64,
        keys: Vec<KeyRead<'h>>,
        remaining: usize,
    },
    Done,
}

/// The loop's shared state, apart from the requests.
struct Ctx<'a> {
    config: &'a SimConfig,
    world: &'a World,
    workers: &'a Workers,
    hedge: &'a Hedge,
    balancer: Option<&'a Balancer<usize>>,
    origin: Instant,
    /// The last registration's number.
    seq: u64,
    /// The last stamp given.
    stamp: u64,
    events: BinaryHeap<Reverse<(u64, u64, u32, u32)>>,
}

/// Runs every request of `world` under `hedge` (with `balancer`, the `p2c` mode) and returns
/// each one's latency and keys timed out, in arrival order.
pub(super) fn run(
    config: &SimConfig,
    world: &World,
    workers: &Workers,
    hedge: &Hedge,
    balancer: Option<&Balancer<usize>>,
) -> Vec<(Duration, u64)> {
    let mut ctx = Ctx {
        config,
        world,
        workers,
        hedge,
        balancer,
        origin: Instant::now(),
        seq: 0,
        stamp: 0,
        events: BinaryHeap::new(),
    };
    let mut requests: Vec<Request> = world.arrivals.iter().map(|_| Request::Waiting).collect();
    let mut outcomes = vec![(Duration::ZERO, 0); requests.len()];
    // Every arrival is registered before anything else happens: arrival `r` is registration
    // `r + 1`. Each is queued when the one before it comes, so the queue holds one arrival.
    ctx.seq = world.arrivals.len() as u64;
    ctx.arrival(0);
    let mut batch: Vec<(u32, u32)> = Vec::new();
    let mut order: Vec<u32> = Vec::new();
    while let Some(&Reverse((t, ..))) = ctx.events.peek() {
        batch.clear();
        while let Some(&Reverse((at, _, r, k))) = ctx.events.peek() {
            if at != t {
                break;
            }
            ctx.events.pop();
            if k == ARRIVAL {
                // The next arrival may be due now too: queued before the batch is complete.
                ctx.arrival(r as usize + 1);
            }
            // Sleeps dropped with their key read or request never fire.
            let live = match &requests[r as usize] {
                Request::Waiting => k == ARRIVAL,
                Request::Running { keys, .. } => k == DEADLINE || !keys[k as usize].done,
                Request::Done => false,
            };
            if live {
                batch.push((r, k));
            }
        }
        // Request by request, in the order each was first woken.
        order.clear();
        for &(r, _) in &batch {
            if !order.contains(&r) {
                order.push(r);
            }
        }
        for &r in &order {
            let events = batch.iter().filter(|e| e.0 == r).map(|e| e.1);
            if let Some(outcome) = ctx.handle(&mut requests[r as usize], r, t, events) {
                outcomes[r as usize] = outcome;
            }
        }
    }
    outcomes
}

impl<'a> Ctx<'a> {
    /// Queues the arrival of request `r`, if there is one, as registration `r + 1`.
    fn arrival(&mut self, r: usize) {
        if let Some(&t) = self.world.arrivals.get(r) {
            let seq = r as u64 + 1;
            self.events.push(Reverse((t, seq, r as u32, ARRIVAL)));
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn at(&self, t: u64) -> Instant {
        self.origin + Duration::from_nanos(t)
    }

    /// `instant` in virtual nanoseconds (saturating).
    fn nanos(&self, instant: Instant) -> u64 {
        u64::try_from((instant - self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Request `r`'s events at `t`, keys in the order first woken; returns its outcome if it
    /// ended.
    fn handle(
        &mut self,
        request: &mut Request<'a>,
        r: u32,
        t: u64,
        events: impl Iterator<Item = u32>,
    ) -> Option<(Duration, u64)> {
        let mut deadline = false;
        for k in events {
            match k {
                ARRIVAL => self.start(request, r, t),
                DEADLINE => deadline = true,
                k => {
                    let Request::Running {
                        keys, remaining, ..
                    } = request
                    else {
                        continue;
                    };
                    if self.poll(&mut keys[k as usize], t) {
                        *remaining -= 1;
                    } else {
                        self.wait(&mut keys[k as usize], r, k);
                    }
                }
            }
        }
        let Request::Running {
            arrival,
            keys,
            remaining,
        } = request
        else {
            return None;
        };
        let timed_out = if *remaining == 0 {
            0
        } else if deadline {
            self.drop_rest(keys, t)
        } else {
            return None;
        };
        let outcome = (Duration::from_nanos(t - *arrival), timed_out);
        *request = Request::Done;
        Some(outcome)
    }

    /// Request `r` arrives at `t`: every key read starts, in key order, then the request's
    /// deadline is registered.
    fn start(&mut self, request: &mut Request<'a>, r: u32, t: u64) {
        let n = self.config.keys_per_request;
        let replicas = self.world.replicas.len();
        let mut keys = Vec::with_capacity(n);
        for k in 0..n {
            let (id, home, stride) = placement(self.config, replicas, u64::from(r), k as u64);
            keys.push(KeyRead {
                state: HedgeState::new(self.hedge),
                copies: Copies {
                    id,
                    home,
                    stride,
                    replicas,
                },
                // Sent right below, before anything reads it.
                primary: Attempt {
                    finish: u64::MAX,
                    seq: 0,
                    replica: 0,
                    load: None,
                },
                hedges: Vec::new(),
                timer: None,
                call: CallReplicas::new(),
                // Each future goes to the head of the list as it is pushed.
                stamp: self.next_stamp(),
                done: false,
            });
        }
        let mut remaining = n;
        let now = self.at(t);
        for (k, key) in keys.iter_mut().enumerate() {
            key.state.begin_at(now);
            self.send(key, 1, t);
            if self.poll(key, t) {
                remaining -= 1;
            } else {
                self.wait(key, r, k as u32);
            }
        }
        if remaining > 0 {
            let deadline = t.saturating_add(nanos(self.config.request_deadline));
            let seq = self.next_seq();
            self.events.push(Reverse((deadline, seq, r, DEADLINE)));
        }
        *request = Request::Running {
            arrival: t,
            keys,
            remaining,
        };
    }

    /// Sends attempt `attempt` of `key` at `t`: attempt `n` goes to the key's `n`-th copy, or
    /// in the `p2c` mode where [`sim_p2c`] picks.
    fn send(&mut self, key: &mut KeyRead<'a>, attempt: u32, t: u64) {
        let (replica, load) = match self.balancer {
            None => (key.copies.copy(attempt as usize - 1), None),
            Some(balancer) => {
                let now = self.at(t);
                let copies = self.config.max_attempts as usize;
                let replica = if attempt == 1 {
                    sim_p2c::primary(&key.copies, balancer, copies, now)
                } else {
                    sim_p2c::hedge(&key.copies, balancer, copies, &key.call, now)
                };
                key.call.start(replica);
                (replica, balancer.start_at(replica, now))
            }
        };
        let work = service(self.config, key.copies.id, attempt);
        let finish = self.workers.serve(self.world, replica, t, work);
        let sent = Attempt {
            finish,
            seq: 0,
            replica,
            load,
        };
        if attempt == 1 {
            key.primary = sent;
        } else {
            key.hedges.push(sent);
        }
    }

    /// Polls `key` at `t`, as `HedgedRun` does: an attempt finished by now wins (the primary
    /// first); otherwise a due hedge is sent (or refused by the budget) and the hedge timer
    /// moves to the next due time. Returns whether the read is over.
    fn poll(&mut self, key: &mut KeyRead<'a>, t: u64) -> bool {
        let now = self.at(t);
        loop {
            for i in 0..=key.hedges.len() {
                let attempt = key.attempt(i);
                if attempt.finish <= t {
                    self.win(key, i, now);
                    return true;
                }
                if attempt.seq == 0 {
                    attempt.seq = self.next_seq();
                }
            }
            let Some(due) = key.state.next_hedge_at() else {
                key.timer = None;
                return false;
            };
            if now >= due {
                // Sent, or refused by the budget: either way the due time moves on.
                if let Some(attempt) = key.state.try_hedge_at(now) {
                    self.send(key, attempt, t);
                }
                continue;
            }
            let due = self.nanos(due);
            if key.timer.map(|(at, _)| at) != Some(due) {
                key.timer = Some((due, self.next_seq()));
            }
            return false;
        }
    }

    /// `key` (of request `r`, key `k`) waits for its next event: the earliest of its
    /// attempts' finishes and its hedge timer, in registration order at one instant.
    fn wait(&mut self, key: &mut KeyRead<'a>, r: u32, k: u32) {
        key.stamp = self.next_stamp();
        let mut next = key.timer.unwrap_or((u64::MAX, u64::MAX));
        for attempt in std::iter::once(&key.primary).chain(&key.hedges) {
            next = next.min((attempt.finish, attempt.seq));
        }
        self.events.push(Reverse((next.0, next.1, r, k)));
    }

    /// Attempt `i` of `key` answered at `now`: the read is won, the others are cancelled.
    fn win(&mut self, key: &mut KeyRead<'a>, i: usize, now: Instant) {
        let winner = key.attempt(i);
        let replica = winner.replica;
        if let Some(load) = winner.load.take() {
            load.finish_at(now);
        }
        key.call.finish(replica);
        key.state
            .attempt_done_at(now, i as u32 + 1, AttemptOutcome::Succeeded);
        Self::cancel(key, now);
    }

    /// Drops `key`'s attempts still out at `now`, the primary first.
    fn cancel(key: &mut KeyRead<'a>, now: Instant) {
        for attempt in std::iter::once(&mut key.primary).chain(&mut key.hedges) {
            if let Some(load) = attempt.load.take() {
                load.cancel_at(now);
            }
        }
        key.hedges = Vec::new();
        key.timer = None;
        key.done = true;
    }

    /// The request's deadline passed at `t`: every key read still out is dropped, the most
    /// recently polled first, as `FuturesUnordered` drops them. Returns how many.
    fn drop_rest(&mut self, keys: &mut [KeyRead<'a>], t: u64) -> u64 {
        let now = self.at(t);
        let mut rest: Vec<&mut KeyRead<'a>> = keys.iter_mut().filter(|k| !k.done).collect();
        rest.sort_unstable_by_key(|k| Reverse(k.stamp));
        let timed_out = rest.len() as u64;
        for key in rest {
            key.state.cancel_at(now);
            Self::cancel(key, now);
        }
        timed_out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::sim::{run_modes, Mode, SimConfig};

    #[test]
    fn the_loop_replays_the_futures_driver_through_deadlines() {
        // Stalls of 9-14 s against the 10 s deadline: keys time out and are dropped, budgets
        // run dry, hedges race primaries. The figures are what the futures-based driver (a
        // scatter-gather of `Hedge::run_with` on a `ManualTimer`) reported for this world, run
        // on the hedging policy of today (commit 1ec2b87 of branch wt4-adaptlive: cff9a80's
        // driver with issue 14's changes to the adaptive delay and the budget's first chance,
        // which moved the adaptive and p2c rows by a few hedges); the loop must replay its
        // every decision in the same order to match them. A change of the policy moves these
        // figures: re-derive them from a futures driver, not from the loop.
        let config = SimConfig {
            seed: 1,
            requests: 300,
            keys_per_request: 100,
            replicas: 10,
            stall_every: Duration::from_secs(100),
            stall_min: Duration::from_secs(9),
            stall_max: Duration::from_secs(14),
            request_deadline: Duration::from_secs(10),
            ..SimConfig::default()
        };
        let modes = [Mode::None, Mode::Fixed, Mode::Adaptive, Mode::P2c];
        let reports = run_modes(&config, &modes).unwrap();
        let got: Vec<_> = reports
            .iter()
            .map(|r| {
                let s = r.stats;
                let p50 = r.p50.unwrap();
                (
                    p50,
                    r.max,
                    s.hedges_sent,
                    s.hedges_won,
                    s.budget_refusals,
                    r.timed_out_keys,
                )
            })
            .collect();
        let ns = Duration::from_nanos;
        let s10 = Duration::from_secs(10);
        assert_eq!(
            got,
            [
                (ns(3_813_675_048), s10, 0, 0, 0, 345),
                (ns(20_509_905), ns(8_463_218_352), 11505, 5210, 0, 0),
                (ns(1_001_607_740), s10, 2321, 2131, 1679, 66),
                (ns(33_448_377), s10, 1433, 1264, 364, 6),
            ]
        );
    }
}

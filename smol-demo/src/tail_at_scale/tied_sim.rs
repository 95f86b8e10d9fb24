//! The `tied` mode of the simulation: tied requests over replicas that queue reads.
//!
//! The same world as the other modes ([`sim`](super::sim)): the same replicas, stalls,
//! arrivals, key placement and service times (a key's first copy is its primary's, the second
//! its first hedge's). What differs is the policy, and that each replica keeps its waiting
//! reads in a [`TiedQueue`] — tailguard's own, the one the demo backends use — so that a read
//! can be cancelled there:
//!
//! - a replica serves at most `workers` reads at once (as in the other modes), first come
//!   first served, and starts nothing while it is stalled: the others wait in its queue;
//! - each key read sends copy 1 to the key's home replica at once and copy 2 to its first
//!   copy `tied_delay` later (unless copy 1 has answered by then: [`TiedCall`]), each tagged
//!   with the other;
//! - when a copy starts, its replica sends a cancel for the twin, which reaches the twin's
//!   replica `cancel_delay` later: the twin is removed from that queue, or refused when it
//!   arrives after the cancel, or, if it has started already, both run (duplicate work);
//! - the first copy to finish answers the key; a copy that started runs to its end (its
//!   worker stays busy), as a hedge does in the other modes;
//! - the backup (`tied_backup`, 10 ms by default): a copy cancelled by its twin is answered
//!   at once (the client learns that the twin started), and if the twin has not answered
//!   `tied_backup` later, a third copy goes to the key's second copy's replica (the one a
//!   third hedge would go to), untied, within a budget of `budget_ratio` (the adaptive
//!   hedge's); when a key is answered, the client cancels its other copies (one hop,
//!   `cancel_delay`), so a backup still queued does no work. This is for what tying alone
//!   cannot fix: a copy frozen mid-service by a stall that began after it started, its twin
//!   already cancelled ([`Backup`]).
//!
//! It is a discrete-event simulation (events in virtual nanoseconds, ties in the order they
//! were scheduled: a heap, with FIFO lanes for the events due a fixed delay on), deterministic
//! for a seed like the rest.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tailguard::hedge::HedgeStats;
use tailguard::tied::{
    Backup, Cancelled, Leg, Refusal, Rejected, Settled, Tag, TiedCall, TiedQueue, Twin,
};
use tailguard::ConfigError;

use super::sim::{duplicate_pct, placement, service, Mode, ModeReport, SimConfig, World};
use super::sim_events::Events;
use crate::backend::nanos;
use crate::percentile;

/// Reads one replica may hold waiting: eight requests' worth of every copy (three per key) it
/// could be sent, and at least 256. The default world's queues hold 60 at most (seed 2013),
/// so 256 leaves a wide margin; a queue that fills anyway fails the run rather than drop
/// reads ([`run`]). The queue remembers as many ids as it holds: a cancel that overtakes its
/// copy does so by at most `tied_delay`, far fewer ids than that ago. Small queues matter:
/// every replica's queue is touched at random, and 100 queues sized for 4,096 reads (and
/// 16,384 ids) spilled out of the caches and took half the mode's time.
fn queue_capacity(config: &SimConfig) -> usize {
    let per_request = (3 * config.keys_per_request).div_ceil(config.replicas.max(1));
    (8 * per_request).clamp(256, tailguard::tied::MAX_QUEUE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Request `r` arrives: every key's first copy is sent.
    Request(u32),
    /// `tied_delay` after request `r`: the second copies of its unanswered keys are sent.
    Seconds(u32),
    /// A stall of this replica ends: start what waited.
    Drain(u32),
    /// A cancel for copy `id` reaches replica `replica`.
    Cancel { replica: u32, id: u64 },
    /// Copy `id` finishes on `replica`, and frees its worker.
    Finish { replica: u32, id: u64 },
    /// The backup of key read `pair` is due.
    Backup(u64),
}

/// The `tied` mode's policy, in a few words.
pub(super) fn setting(config: &SimConfig) -> String {
    match config.tied_backup {
        Some(after) => format!(
            "second copy after {:?}, backup {after:?} after a start, {}% budget",
            config.tied_delay,
            config.budget_ratio * 100.0
        ),
        None => format!("second copy after {:?}", config.tied_delay),
    }
}

/// Copy ids: three per key read (first, second, backup).
fn id_of(pair: u64, leg: Leg) -> u64 {
    3 * pair
        + match leg {
            Leg::First => 0,
            Leg::Second => 1,
            Leg::Backup => 2,
        }
}

fn leg_of(id: u64) -> Leg {
    match id % 3 {
        0 => Leg::First,
        1 => Leg::Second,
        _ => Leg::Backup,
    }
}

/// One key read in flight.
struct Pair {
    call: TiedCall<usize>,
    request: u32,
    /// The key's hash (for its service times).
    hash: u64,
}

/// The key reads in flight, by pair id. Ids are dense (`request × keys + key`) and key reads
/// end roughly in the order they began, so a window of slots from the oldest read still in
/// flight holds them: no hashing, and neighbours in id are neighbours in memory.
#[derive(Default)]
struct Pairs {
    /// The id of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<Pair>>,
}

impl Pairs {
    fn insert(&mut self, pair: u64, value: Pair) {
        if self.slots.is_empty() {
            self.base = pair;
        }
        while pair < self.base {
            self.slots.push_front(None);
            self.base -= 1;
        }
        let i = (pair - self.base) as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(value);
    }

    fn get(&self, pair: u64) -> Option<&Pair> {
        let i = usize::try_from(pair.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?.as_ref()
    }

    fn get_mut(&mut self, pair: u64) -> Option<&mut Pair> {
        let i = usize::try_from(pair.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.as_mut()
    }

    fn remove(&mut self, pair: u64) {
        let Some(i) = pair
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = None;
        }
        // Forget the ended reads at the front of the window.
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
    }
}

/// One request in flight.
#[derive(Clone, Copy, Default)]
struct Request {
    arrival: u64,
    remaining: usize,
    latest: u64,
}

/// The simulation's state.
struct Tied<'a> {
    config: &'a SimConfig,
    world: &'a World,
    keys: usize,
    queues: Vec<TiedQueue<u64, usize>>,
    draining: Vec<bool>,
    /// Reads in service, per replica.
    busy: Vec<usize>,
    /// Cancels (due `cancel_delay` on), second copies (`tied_delay` on) and backups (`after` on)
    /// in FIFO lanes, the rest in a heap ([`Events`]).
    events: Events<Event, 3>,
    seq: u64,
    pairs: Pairs,
    requests: Vec<Request>,
    latencies: Vec<(u32, u64)>,
    started: u64,
    seconds_sent: u64,
    won_by_second: u64,
    backup: Option<Backup>,
    /// The queues' `now` at time 0: only differences matter, so any fixed origin does.
    origin: Instant,
    /// A queue refused a read for being full: the run's figures would be wrong.
    overflowed: bool,
}

/// Runs the `tied` mode on `world`.
pub(super) fn run(config: &SimConfig, world: &World) -> Result<ModeReport, ConfigError> {
    let n = world.replicas.len();
    let capacity = queue_capacity(config);
    let queues = (0..n)
        .map(|_| TiedQueue::remembering(capacity, capacity))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sim = Tied {
        config,
        world,
        keys: config.keys_per_request,
        queues,
        draining: vec![false; n],
        busy: vec![0; n],
        events: Events::new(),
        seq: 0,
        pairs: Pairs::default(),
        requests: vec![Request::default(); world.arrivals.len()],
        latencies: Vec::with_capacity(world.arrivals.len()),
        started: 0,
        seconds_sent: 0,
        won_by_second: 0,
        backup: match config.tied_backup {
            Some(after) => Some(Backup::new(after, config.budget()?)?),
            None => None,
        },
        origin: Instant::now(),
        overflowed: false,
    };
    // Arrival `r` is event number `r + 1`, before any other: each is queued when the one before
    // it comes, so the queue holds one arrival, not all of them.
    sim.seq = world.arrivals.len() as u64;
    sim.arrival(0);
    while let Some((t, _, event)) = sim.events.pop() {
        sim.handle(t, event);
    }
    if sim.overflowed {
        return Err(ConfigError::new(
            "keys",
            format!(
                "the tied mode's replicas queue at most {capacity} reads each, and one \
                 overflowed: send fewer keys per replica"
            ),
        ));
    }

    let total_keys = (world.arrivals.len() * config.keys_per_request) as u64;
    let mut latencies: Vec<Duration> = sim
        .latencies
        .iter()
        .filter(|&&(r, _)| r as usize >= config.warmup_requests)
        .map(|&(_, ns)| Duration::from_nanos(ns))
        .collect();
    latencies.sort_unstable();
    let backups = sim.backup.as_ref().map(Backup::stats).unwrap_or_default();
    // Extra reads: second copies and backups; refusals: backups the budget refused.
    let stats = HedgeStats {
        primaries: total_keys,
        hedges_sent: sim.seconds_sent + backups.sent,
        hedges_won: sim.won_by_second + backups.won,
        budget_refusals: backups.refused,
    };
    Ok(ModeReport {
        mode: Mode::Tied,
        setting: Mode::Tied.setting(config),
        p50: percentile::of_sorted(&latencies, 0.5),
        p99: percentile::of_sorted(&latencies, 0.99),
        p999: percentile::of_sorted(&latencies, 0.999),
        max: *latencies.last().expect("at least one request"),
        extra_pct: stats.extra_load() * 100.0,
        duplicate_work_pct: duplicate_pct(sim.started, total_keys),
        stats,
        backups,
        timed_out_keys: 0,
        requests: latencies.len(),
    })
}

impl Tied<'_> {
    fn at(&mut self, t: u64, event: Event) {
        self.seq += 1;
        // Each lane's events are all due a fixed delay after the event that schedules them.
        match event {
            Event::Cancel { .. } => self.events.push_in(0, t, self.seq, event),
            Event::Seconds(_) => self.events.push_in(1, t, self.seq, event),
            Event::Backup(_) => self.events.push_in(2, t, self.seq, event),
            _ => self.events.push(t, self.seq, event),
        }
    }

    /// Queues the arrival of request `r`, if there is one, as event number `r + 1`.
    fn arrival(&mut self, r: usize) {
        if let Some(&t) = self.world.arrivals.get(r) {
            let seq = r as u64 + 1;
            self.events.push(t, seq, Event::Request(r as u32));
        }
    }

    fn handle(&mut self, t: u64, event: Event) {
        match event {
            Event::Request(r) => {
                self.arrival(r as usize + 1);
                self.request(t, r);
            }
            Event::Seconds(r) => self.seconds(t, r),
            Event::Drain(replica) => {
                self.draining[replica as usize] = false;
                self.start_waiting(t, replica as usize);
            }
            Event::Cancel { replica, id } => {
                // In the queue: removed (the copy is dropped), and its replica answers it:
                // the client learns that the twin started. Too late: both run. Not here yet:
                // the copy is refused when it arrives.
                if let Cancelled::InQueue(_) = self.queues[replica as usize].cancel(id) {
                    self.cancelled_by_twin(t, id);
                }
            }
            Event::Backup(pair) => self.send_backup(t, pair),
            Event::Finish { replica, id } => {
                self.busy[replica as usize] -= 1;
                self.finish(t, id);
                self.start_waiting(t, replica as usize);
            }
        }
    }

    fn request(&mut self, t: u64, r: u32) {
        let n = self.world.replicas.len();
        self.requests[r as usize] = Request {
            arrival: t,
            remaining: self.keys,
            latest: t,
        };
        for k in 0..self.keys {
            let (hash, home, stride) = placement(self.config, n, u64::from(r), k as u64);
            let pair = u64::from(r) * self.keys as u64 + k as u64;
            let mut call = TiedCall::new(
                [home, (home + stride) % n],
                [id_of(pair, Leg::First), id_of(pair, Leg::Second)],
            );
            if let Some(backup) = &self.backup {
                backup.deposit();
                call = call.with_backup((home + 2 * stride) % n, id_of(pair, Leg::Backup));
            }
            let first = call
                .send(Leg::First)
                .expect("a new call sends its first copy");
            self.pairs.insert(
                pair,
                Pair {
                    call,
                    request: r,
                    hash,
                },
            );
            self.arrive(t, first.replica, first.id, first.tied_to);
        }
        let delay = nanos(self.config.tied_delay);
        self.at(t + delay, Event::Seconds(r));
    }

    fn seconds(&mut self, t: u64, r: u32) {
        for k in 0..self.keys as u64 {
            let pair = u64::from(r) * self.keys as u64 + k;
            // Answered already (or never sent): no second copy.
            let Some(p) = self.pairs.get_mut(pair) else {
                continue;
            };
            if let Some(second) = p.call.send(Leg::Second) {
                self.seconds_sent += 1;
                self.arrive(t, second.replica, second.id, second.tied_to);
            }
        }
    }

    /// Copy `id` reaches `replica` at `t`, tied to `twin` (the backup to none).
    fn arrive(&mut self, t: u64, replica: usize, id: u64, twin: Option<Twin<usize>>) {
        let tag = Tag { id, twin };
        // Refused (its twin cancelled it first): no work, and the client hears so. Ids are
        // unique, so the only other refusal is a full queue, which fails the run.
        match self.queues[replica].push_at(self.origin + Duration::from_nanos(t), id, Some(tag)) {
            Ok(_) => self.start_waiting(t, replica),
            Err(Rejected {
                reason: Refusal::Cancelled(_),
                ..
            }) => self.cancelled_by_twin(t, id),
            Err(_) => self.overflowed = true,
        }
    }

    /// The client hears at `t` that copy `id` was cancelled by its twin, which started: the
    /// twin's backup is due `tied_backup` later.
    fn cancelled_by_twin(&mut self, t: u64, id: u64) {
        let pair = id / 3;
        let Some(p) = self.pairs.get_mut(pair) else {
            return; // answered already
        };
        if p.call.cancelled_by_twin(leg_of(id)).is_none() {
            return;
        }
        if let Some(backup) = &self.backup {
            let due = backup.due_at(self.origin + Duration::from_nanos(t)) - self.origin;
            self.at(nanos(due), Event::Backup(pair));
        }
    }

    /// The backup of key read `pair` is due at `t`: sent to its third replica if the copy
    /// that started is still running and the budget allows.
    fn send_backup(&mut self, t: u64, pair: u64) {
        let Some(backup) = &self.backup else {
            return;
        };
        let Some(p) = self.pairs.get_mut(pair) else {
            return; // answered
        };
        if p.call.running().is_none() || !backup.try_send_at(self.origin + Duration::from_nanos(t))
        {
            return;
        }
        if let Some(out) = p.call.send(Leg::Backup) {
            self.arrive(t, out.replica, out.id, out.tied_to);
        }
    }

    /// Starts every waiting read of `replica` unless it is stalled; then schedules this again
    /// for the stall's end.
    fn start_waiting(&mut self, t: u64, replica: usize) {
        let free = self.world.replicas[replica].finish(t, 0);
        if free > t {
            if !self.draining[replica] {
                self.draining[replica] = true;
                self.at(free, Event::Drain(replica as u32));
            }
            return;
        }
        while self.config.workers.is_none_or(|w| self.busy[replica] < w) {
            let now = self.origin + Duration::from_nanos(t);
            let Some(start) = self.queues[replica].start_next_at(now) else {
                break;
            };
            self.busy[replica] += 1;
            self.started += 1;
            let id = start.item;
            let hash = match self.pairs.get(id / 3) {
                Some(pair) => pair.hash,
                // The key was answered while this copy waited (its cancel is on the way):
                // it still runs, as a real server would.
                None => self.hash_of(id),
            };
            let attempt = (id % 3) as u32 + 1;
            let done = self.world.replicas[replica].finish(t, service(self.config, hash, attempt));
            self.at(
                done,
                Event::Finish {
                    replica: replica as u32,
                    id,
                },
            );
            if let Some(twin) = start.cancel_twin {
                let arrives = t + nanos(self.config.cancel_delay);
                self.at(
                    arrives,
                    Event::Cancel {
                        replica: twin.replica as u32,
                        id: twin.id,
                    },
                );
            }
        }
    }

    fn hash_of(&self, id: u64) -> u64 {
        let pair = id / 3;
        let (r, k) = (pair / self.keys as u64, pair % self.keys as u64);
        placement(self.config, self.world.replicas.len(), r, k).0
    }

    fn finish(&mut self, t: u64, id: u64) {
        let pair = id / 3;
        let Some(p) = self.pairs.get_mut(pair) else {
            return; // the loser of a pair that both ran
        };
        let leg = leg_of(id);
        let Settled::Won { cancel } = p.call.answered(leg) else {
            return;
        };
        let r = p.request as usize;
        self.pairs.remove(pair);
        match leg {
            Leg::Second => self.won_by_second += 1,
            Leg::Backup => {
                if let Some(backup) = &self.backup {
                    backup.won();
                }
            }
            Leg::First => {}
        }
        // The client cancels the other copies still out: a backup still queued is dropped
        // there.
        for loser in cancel.into_iter().flatten() {
            self.at(
                t + nanos(self.config.cancel_delay),
                Event::Cancel {
                    replica: loser.replica as u32,
                    id: loser.id,
                },
            );
        }
        let request = &mut self.requests[r];
        request.latest = request.latest.max(t);
        request.remaining -= 1;
        if request.remaining == 0 {
            let latency = request.latest - request.arrival;
            self.latencies.push((r as u32, latency));
        }
    }
}

#[cfg(test)]
#[path = "tied_sim_tests.rs"]
mod tests;

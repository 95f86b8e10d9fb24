//! The shared state: admission on atomics, samples under a lock.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::algorithm::{Algorithm, Sample};
use super::config::AdaptiveLimiterBuilder;
use super::permit::{Permit, Reason, Rejected};
use crate::metrics::{self, Counter, Gauge, PolicyName};
use crate::priority::{Criticality, Shares};

/// An adaptive concurrency limit: a cheap-to-clone, `Send + Sync`, sans-IO handle (the time
/// comes in as an argument). Clones share the limit. See the [module documentation](super).
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::limit::{AdaptiveLimiter, Fixed, Reason};
/// use tailguard::priority::{Criticality, Shares};
///
/// let limiter = AdaptiveLimiter::builder()
///     .algorithm(Fixed::new(10)?)
///     .shares(Shares::new(0.5, 0.8)?)
///     .build()?;
/// let now = Instant::now();
/// let permits: Vec<_> = (0..5).map(|_| limiter.try_acquire_at(now).unwrap()).collect();
/// // Five in flight fill sheddable work's half of the limit; critical work still gets in.
/// let shed = limiter.try_acquire_class_at(Criticality::Sheddable, now).unwrap_err();
/// assert_eq!(shed.reason(), Reason::Shed);
/// let critical = limiter.try_acquire_class_at(Criticality::Critical, now).unwrap();
/// critical.success_at(now + Duration::from_millis(3));
/// drop(permits);
/// assert_eq!(limiter.in_flight(), 0);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AdaptiveLimiter {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(super) in_flight: AtomicU32,
    /// Per class (by [`Criticality::index`]): admitted while in flight is below it.
    caps: [AtomicU32; 3],
    /// The integer limit, as published.
    limit: AtomicU32,
    /// Odd while a probe holds the limit low.
    epoch: AtomicU32,
    /// `[reason][class]`: refused calls (in monitor-only mode, calls that would have been).
    rejected: [[AtomicU64; 3]; 3],
    monitor_only: bool,
    /// The algorithm's limit never moves ([`Algorithm::fixed`]): samples take no lock.
    fixed: bool,
    /// Samples taken.
    samples: AtomicU64,
    shares: Shares,
    /// Per class: 1 / its share of the limit.
    scale: [f64; 3],
    state: Mutex<State>,
    /// `tailguard_limit_rejections_total`, by [`Reason::index`].
    rejections: [Counter; 3],
    /// `tailguard_limit_limit`: set when the published limit changes.
    limit_gauge: Gauge,
}

/// Probe settings: how often, how low, how many samples.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProbeConfig {
    pub(super) interval: Duration,
    pub(super) limit: u32,
    pub(super) samples: u32,
}

struct Probe {
    started: Instant,
    min: Option<Duration>,
    samples: u32,
}

struct State {
    algorithm: Box<dyn Algorithm>,
    limit: f64,
    min: u32,
    max: u32,
    slow_start: bool,
    probe: Option<ProbeConfig>,
    next_probe: Option<Instant>,
    probing: Option<Probe>,
    rng: fastrand::Rng,
    last_now: Option<Instant>,
    probes: u64,
}

/// A snapshot of a limiter, from [`AdaptiveLimiter::metrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// The current limit.
    pub limit: u32,
    /// Calls in flight.
    pub in_flight: u32,
    /// Calls refused, `[reason][class]` by [`Reason::index`] and [`Criticality::index`]; in
    /// monitor-only mode, the calls that would have been refused (they were admitted).
    pub rejected: [[u64; 3]; 3],
    /// Samples taken (reports and unreported drops; not ignored calls).
    pub samples: u64,
    /// Probes of the no-load latency started.
    pub probes: u64,
    /// Whether a probe is holding the limit low now.
    pub probing: bool,
    /// Whether the limit is still in slow start.
    pub slow_start: bool,
    /// Whether the limiter only reports and admits everything.
    pub monitor_only: bool,
}

impl Metrics {
    /// Calls refused (or that would have been) for `reason` and `class`.
    pub fn rejected(&self, reason: Reason, class: Criticality) -> u64 {
        self.rejected[reason.index()][class.index()]
    }

    /// Every refused call (or, in monitor-only mode, every call that would have been).
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().flatten().sum()
    }
}

impl AdaptiveLimiter {
    /// A builder (Gradient2, initial limit 20; see [`AdaptiveLimiterBuilder`]).
    pub fn builder() -> AdaptiveLimiterBuilder {
        AdaptiveLimiterBuilder::new()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_parts(
        algorithm: Box<dyn Algorithm>,
        initial: u32,
        min: u32,
        max: u32,
        slow_start: bool,
        shares: Shares,
        monitor_only: bool,
        probe: Option<ProbeConfig>,
        seed: u64,
        name: &PolicyName,
    ) -> Self {
        let fixed = algorithm.fixed().is_some();
        let initial = algorithm.fixed().unwrap_or(initial);
        let probe = probe.filter(|_| algorithm.wants_probe());
        let shared = Shared {
            in_flight: AtomicU32::new(0),
            caps: Default::default(),
            limit: AtomicU32::new(initial),
            epoch: AtomicU32::new(0),
            rejected: Default::default(),
            monitor_only,
            fixed,
            samples: AtomicU64::new(0),
            shares,
            scale: [
                1.0 / shares.sheddable_share(),
                1.0 / shares.default_share(),
                1.0,
            ],
            state: Mutex::new(State {
                algorithm,
                limit: f64::from(initial),
                min,
                max,
                slow_start: slow_start && !fixed,
                probe,
                next_probe: None,
                probing: None,
                rng: fastrand::Rng::with_seed(seed),
                last_now: None,
                probes: 0,
            }),
            rejections: Reason::ALL.map(|reason| {
                Counter::with_reason(metrics::LIMIT_REJECTIONS, name, reason.as_str())
            }),
            limit_gauge: Gauge::new(metrics::LIMIT_LIMIT, name),
        };
        shared.publish(initial);
        shared.limit_gauge.set(f64::from(initial));
        AdaptiveLimiter {
            shared: Arc::new(shared),
        }
    }

    /// Admits a [`Default`](Criticality::Default) call at `now`, or refuses it.
    #[inline]
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit, Rejected> {
        self.try_acquire_class_at(Criticality::Default, now)
    }

    /// Admits a call of `class` at `now` if the calls in flight are below its share of the
    /// limit, or refuses it with the [`Reason`]. In monitor-only mode every call is admitted
    /// and a refusal is only counted in [`metrics`](Self::metrics).
    #[inline]
    pub fn try_acquire_class_at(
        &self,
        class: Criticality,
        now: Instant,
    ) -> Result<Permit, Rejected> {
        let shared = &self.shared;
        let cap = shared.caps[class.index()].load(Ordering::Relaxed);
        let mut current = shared.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= cap {
                let rejected = shared.refusal(class, current);
                shared.rejected[rejected.reason.index()][class.index()]
                    .fetch_add(1, Ordering::Relaxed);
                shared.rejections[rejected.reason.index()].increment();
                if !shared.monitor_only {
                    return Err(rejected);
                }
            }
            match shared.in_flight.compare_exchange_weak(
                current,
                current.saturating_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        // A class that may fill only a share of the limit uses all of it at that share: its
        // in-flight count is scaled up by 1 / share, so shares never keep a limit from growing.
        let in_flight = current.saturating_add(1);
        let in_flight = match class {
            Criticality::Critical => in_flight,
            _ => (f64::from(in_flight) * shared.scale[class.index()]).ceil() as u32,
        };
        Ok(Permit {
            shared: Arc::clone(shared),
            started: now,
            in_flight,
            epoch: shared.epoch.load(Ordering::Relaxed),
            class,
            done: false,
        })
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Whether it only reports what it would refuse.
    pub fn is_monitor_only(&self) -> bool {
        self.shared.monitor_only
    }

    /// A snapshot of the limit, the calls in flight and the refusals by reason and class.
    pub fn metrics(&self) -> Metrics {
        let state = self.shared.lock();
        let mut rejected = [[0; 3]; 3];
        for (row, counts) in rejected.iter_mut().zip(&self.shared.rejected) {
            for (cell, count) in row.iter_mut().zip(counts) {
                *cell = count.load(Ordering::Relaxed);
            }
        }
        Metrics {
            limit: self.limit(),
            in_flight: self.in_flight(),
            rejected,
            samples: self.shared.samples.load(Ordering::Relaxed),
            probes: state.probes,
            probing: state.probing.is_some(),
            slow_start: state.slow_start,
            monitor_only: self.shared.monitor_only,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside an algorithm leaves numbers, never a broken invariant: carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal(&self, class: Criticality, in_flight: u32) -> Rejected {
        let limit = self.limit.load(Ordering::Relaxed);
        let reason = if self.epoch.load(Ordering::Relaxed) % 2 == 1 {
            Reason::Probe
        } else if in_flight >= limit {
            Reason::Limit
        } else {
            Reason::Shed
        };
        Rejected {
            reason,
            class,
            limit,
            in_flight,
        }
    }

    /// Sets the published limit and the class caps from it.
    fn publish(&self, limit: u32) {
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            self.limit_gauge.set(f64::from(limit));
        }
        for class in Criticality::ALL {
            let cap = self.shares.cap(class, limit);
            self.caps[class.index()].store(cap, Ordering::Relaxed);
        }
    }

    fn hold_for_probe(&self, limit: u32) {
        for cap in &self.caps {
            cap.store(limit, Ordering::Relaxed);
        }
    }

    /// One finished call: feed it to the probe, or to the algorithm.
    #[inline]
    pub(super) fn sample(&self, sample: Sample, epoch: u32) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        if !self.fixed {
            self.adapt(sample, epoch);
        }
    }

    fn adapt(&self, mut sample: Sample, epoch: u32) {
        let mut state = self.lock();
        match sample.rtt {
            Some(_) => {
                state.last_now = Some(state.last_now.map_or(sample.now, |l| l.max(sample.now)));
            }
            None => sample.now = state.last_now.unwrap_or(sample.now),
        }
        if state.probing.is_some() {
            self.probe_sample(&mut state, &sample, epoch);
            return;
        }
        if sample.rtt.is_some() && self.maybe_start_probe(&mut state, sample.now) {
            return;
        }
        let limit = state.limit;
        let proposed = state.algorithm.update(limit, &sample);
        let mut new = if proposed.is_finite() {
            proposed
        } else {
            limit
        };
        let used = f64::from(sample.in_flight) * 2.0 >= limit;
        if state.slow_start {
            if sample.dropped || new < limit {
                state.slow_start = false;
            } else if used {
                new = new.max(limit + 1.0); // one more per sample: doubles every round trip
            }
        }
        if new > limit && !used {
            new = limit; // never grow far past what is in flight
        }
        let new = new.clamp(f64::from(state.min), f64::from(state.max));
        state.limit = new;
        self.publish(new as u32);
    }

    /// Starts a probe if one is due; `true` if it did.
    fn maybe_start_probe(&self, state: &mut State, now: Instant) -> bool {
        let Some(probe) = state.probe else {
            return false;
        };
        let due = match state.next_probe {
            Some(due) => due,
            None => {
                let next = jittered(&mut state.rng, probe.interval);
                state.next_probe = Some(crate::time::deadline_after(now, next));
                return false;
            }
        };
        if now < due {
            return false;
        }
        state.probing = Some(Probe {
            started: now,
            min: None,
            samples: 0,
        });
        state.probes += 1;
        self.epoch.fetch_add(1, Ordering::Relaxed); // odd: probing
        self.hold_for_probe(probe.limit.min(state.limit as u32).max(1));
        true
    }

    /// A sample while probing: only calls admitted during the probe (at low concurrency) count.
    fn probe_sample(&self, state: &mut State, sample: &Sample, epoch: u32) {
        let Some(config) = state.probe else { return };
        let Some(probe) = state.probing.as_mut() else {
            return;
        };
        if epoch == self.epoch.load(Ordering::Relaxed) && !sample.dropped {
            if let Some(rtt) = sample.rtt {
                probe.min = Some(probe.min.map_or(rtt, |min| min.min(rtt)));
                probe.samples += 1;
            }
        }
        // A probe ends with enough samples, or after a tenth of the interval whatever it has.
        let expired = sample.now.saturating_duration_since(probe.started) >= config.interval / 10;
        if probe.samples < config.samples && !expired {
            return;
        }
        if let Some(min) = probe.min.filter(|_| probe.samples >= config.samples) {
            state.algorithm.rebase(min);
        }
        state.probing = None;
        let next = jittered(&mut state.rng, config.interval);
        state.next_probe = Some(crate::time::deadline_after(sample.now, next));
        self.epoch.fetch_add(1, Ordering::Relaxed); // even: done
        self.publish(state.limit as u32);
    }
}

/// `interval` × a factor in [0.9, 1.1), so a fleet does not probe in step.
fn jittered(rng: &mut fastrand::Rng, interval: Duration) -> Duration {
    // At most 584 years × 1.1: within `Duration`'s range (checked when built).
    interval.mul_f64(0.9 + 0.2 * rng.f64())
}

impl fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("monitor_only", &self.shared.monitor_only)
            .finish_non_exhaustive()
    }
}

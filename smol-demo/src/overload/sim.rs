//! The overload experiment in virtual time: a backend of fixed capacity behind no limit, a
//! fixed limit or the adaptive limit, offered a multiple of its capacity. Event-driven on a
//! [`ManualTimer`]'s clock, so every run with a seed is the same.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use tailguard::limit::{AdaptiveLimiter, Fixed, Permit};
use tailguard::priority::{Criticality, Shares};
use tailguard::time::{ManualTimer, Timer};
use tailguard::ConfigError;

use super::{Mode, Point};

/// The model: backend, load mix and deadline.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of arrivals, classes and service times (the same for every mode).
    pub seed: u64,
    /// Requests the backend works on at once.
    pub servers: u32,
    /// Mean service time: `service / 2` plus an exponential of mean `service / 2`.
    pub service: Duration,
    /// A request's deadline: an answer later than this is not goodput.
    pub deadline: Duration,
    /// How long each load level is offered.
    pub duration: Duration,
    /// Offered load as multiples of the capacity.
    pub loads: Vec<f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 12,
            servers: 10,
            service: Duration::from_millis(10),
            deadline: Duration::from_millis(100),
            duration: Duration::from_secs(10),
            loads: vec![0.5, 1.0, 2.0, 4.0],
        }
    }
}

/// The adaptive mode's shares: sheddable, default (see [`Shares`]).
pub const SHARES: (f64, f64) = (0.3, 0.6);

/// The share of offered requests in each class (sheddable, default, critical).
pub const MIX: [f64; 3] = [0.3, 0.6, 0.1];

impl SimConfig {
    /// Every value checked; an error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.servers == 0 || self.servers > 10_000 {
            return Err(ConfigError::new(
                "servers",
                format!("must be in 1..=10000, got {}", self.servers),
            ));
        }
        for (field, d) in [
            ("service", self.service),
            ("deadline", self.deadline),
            ("duration", self.duration),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(
                    field,
                    "must be greater than zero, got 0ns",
                ));
            }
        }
        if self.duration > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "duration",
                format!("must be at most 600s, got {:?}", self.duration),
            ));
        }
        let requests = self.capacity() * self.duration.as_secs_f64() * 4.0;
        if requests > 5e6 {
            return Err(ConfigError::new(
                "duration",
                format!("must keep the 4x run under 5,000,000 requests, got {requests:.0} (fewer --servers or a shorter --duration)"),
            ));
        }
        Ok(())
    }

    /// Requests per second the backend can serve: servers / mean service time.
    pub fn capacity(&self) -> f64 {
        f64::from(self.servers) / self.service.as_secs_f64()
    }

    /// The limiter of `mode`, or none.
    pub fn limiter(&self, mode: Mode) -> Option<AdaptiveLimiter> {
        match mode {
            Mode::None => None,
            Mode::Static => AdaptiveLimiter::builder()
                .algorithm(Fixed::new(self.servers).expect("servers ≥ 1"))
                .shares(Shares::equal())
                .build()
                .ok(),
            Mode::Adaptive => AdaptiveLimiter::builder()
                .seed(self.seed)
                .shares(Shares::new(SHARES.0, SHARES.1).expect("valid shares"))
                .build()
                .ok(),
        }
    }
}

struct Job {
    arrived: u64,
    service: u64,
    class: Criticality,
    permit: Option<Permit>,
}

#[derive(Default)]
struct Tally {
    offered: [u64; 3],
    good: [u64; 3],
    rejected: u64,
    latencies: Vec<u64>,
}

/// One phase of a run: offered `load` × capacity for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Multiple of the capacity.
    pub load: f64,
    /// How long.
    pub duration: Duration,
}

/// What a run measured, plus the limit sampled every 100 ms (`(seconds, limit)`).
pub struct RunResult {
    /// The figures of the whole run.
    pub point: Point,
    /// The limit over time (empty without a limiter).
    pub limits: Vec<(f64, u32)>,
}

/// Runs `phases` in turn against the backend behind `mode`'s limiter.
pub fn run(config: &SimConfig, mode: Mode, phases: &[Phase]) -> RunResult {
    let timer = ManualTimer::new();
    let origin = timer.now();
    let limiter = config.limiter(mode);
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let service_ns = config.service.as_nanos() as f64;
    let deadline = config.deadline.as_nanos() as u64;
    // Events: (time, seq, kind) where kind 0 = a server finishes, 1 = an arrival.
    let mut events: BinaryHeap<Reverse<(u64, u64, u8)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut in_service: Vec<Option<Job>> = (0..config.servers).map(|_| None).collect();
    let mut finishing: VecDeque<usize> = VecDeque::new();
    let mut tally = Tally::default();
    let mut limits = Vec::new();
    let mut next_sample = 0u64;

    // Arrivals, phase by phase (Poisson).
    let mut t = 0f64;
    let mut phase_end = 0f64;
    let mut arrivals: Vec<(u64, Criticality, u64)> = Vec::new();
    for phase in phases {
        phase_end += phase.duration.as_nanos() as f64;
        let rate = config.capacity() * phase.load / 1e9;
        loop {
            t += -(1.0 - rng.f64()).ln() / rate;
            if t >= phase_end {
                t = phase_end;
                break;
            }
            let u = rng.f64();
            let class = if u < MIX[0] {
                Criticality::Sheddable
            } else if u < MIX[0] + MIX[1] {
                Criticality::Default
            } else {
                Criticality::Critical
            };
            let service = service_ns / 2.0 * (1.0 - (1.0 - rng.f64()).ln());
            arrivals.push((t as u64, class, service as u64));
        }
    }
    for (at, _, _) in &arrivals {
        events.push(Reverse((*at, seq, 1)));
        seq += 1;
    }
    let mut next_arrival = 0usize;
    let mut free: Vec<usize> = (0..config.servers as usize).rev().collect();
    let mut done_at: Vec<u64> = vec![0; config.servers as usize];

    while let Some(Reverse((now_ns, _, kind))) = events.pop() {
        timer.advance_to(origin + Duration::from_nanos(now_ns));
        let now = timer.now();
        if let Some(limiter) = &limiter {
            while next_sample <= now_ns {
                limits.push((next_sample as f64 / 1e9, limiter.limit()));
                next_sample += 100_000_000;
            }
        }
        if kind == 1 {
            let (arrived, class, service) = arrivals[next_arrival];
            next_arrival += 1;
            tally.offered[class.index()] += 1;
            let permit = match &limiter {
                None => None,
                Some(limiter) => match limiter.try_acquire_class_at(class, now) {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        tally.rejected += 1;
                        continue;
                    }
                },
            };
            queue.push_back(Job {
                arrived,
                service,
                class,
                permit,
            });
        } else {
            // The server whose job ends now.
            let server = finishing.pop_front().expect("a finishing server");
            let job = in_service[server].take().expect("a job in service");
            let latency = now_ns - job.arrived;
            if latency <= deadline {
                tally.good[job.class.index()] += 1;
            }
            tally.latencies.push(latency);
            if let Some(permit) = job.permit {
                permit.success_at(now);
            }
            free.push(server);
        }
        while let (Some(server), false) = (free.last().copied(), queue.is_empty()) {
            free.pop();
            let job = queue.pop_front().expect("not empty");
            done_at[server] = now_ns + job.service.max(1);
            events.push(Reverse((done_at[server], seq, 0)));
            seq += 1;
            in_service[server] = Some(job);
            // Finishes pop in time order; keep the servers in the same order.
            let pos = finishing
                .iter()
                .position(|&s| done_at[s] > done_at[server])
                .unwrap_or(finishing.len());
            finishing.insert(pos, server);
        }
    }
    let seconds = phases.iter().map(|p| p.duration.as_secs_f64()).sum::<f64>();
    RunResult {
        point: Point::from_tally(
            tally.offered,
            tally.good,
            tally.rejected,
            tally.latencies,
            seconds,
        ),
        limits,
    }
}

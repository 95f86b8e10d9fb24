//! The experiment of "The Tail at Scale", in virtual time.
//!
//! Dean and Barroso read 1,000 keys spread over 100 servers; a hedge sent after 10 ms cut the
//! 99.9th percentile of the whole read from 1,800 ms to 74 ms for 2 % more requests. This module
//! rebuilds that setting as a deterministic discrete-event simulation in virtual nanoseconds,
//! with tailguard's own policy code making every decision: each key read of a request is a
//! [`HedgeState`](tailguard::hedge::HedgeState) — the sans-IO core of [`Hedge::run_with`] — of
//! the mode's [`Hedge`] policy (its delay, budget and adaptive window), driven with explicit
//! time by an event loop (the `sim_loop` module) that replays what a
//! [`scatter_gather_with`](tailguard::fanout::scatter_gather_with) of the request's key reads,
//! each a `Hedge::run_with` on a [`ManualTimer`](tailguard::time::ManualTimer), did (it ran the
//! sim until issue 15), so a seed gives the same output; the `p2c` mode adds a
//! [`Balancer`](tailguard::balance::Balancer) and [`CallReplicas`](tailguard::hedge::CallReplicas),
//! the `tied` mode tailguard's tied-request cores, each replica's queue a
//! [`TiedQueue`](tailguard::tied::TiedQueue).
//!
//! ## The model
//!
//! - **Replicas** (100): each serves a read in `service_base` plus an exponential time with mean
//!   `service_mean_extra` (0.2 ms + Exp(1 ms) by default: a median of 0.9 ms, a p99 of 4.8 ms).
//! - **Stalls**: each replica independently pauses, as a stop-the-world garbage collection
//!   would, at exponential intervals (mean `stall_every`, 2,000 s) for a uniform time in
//!   `stall_min..stall_max` (200 ms to 2 s). A paused replica serves nothing: a read arriving
//!   during a pause waits for its end, and a read in service is frozen for the pause. Each
//!   replica is paused 0.055 % of the time, so a read of 1,000 keys, which touches nearly every
//!   replica, meets a pause about 5 % of the time: the median request never sees one, the
//!   99.9th percentile always does.
//! - **Keys**: each key of a request lives on a replica picked at random, and has copies on
//!   other replicas; attempt `n` of a read goes to the `n`-th copy.
//! - **Requests** arrive at random (Poisson, mean `request_interval`, 2 s): far apart, so the
//!   tail comes from stalls, not queueing, and each request meets stalls independently of the
//!   last (10,000 requests span 5.5 hours and about 1,000 stalls). The first 20 requests warm
//!   up the adaptive window and the budget and are not measured.
//!
//! Service times are drawn from a hash of (seed, request, key, attempt), so every mode sees
//! the same replicas, the same stalls and the same service times: only the policy differs.
//!
//! ## The modes
//!
//! - `none`: no hedging.
//! - `fixed`: hedge each key read after a fixed 10 ms, as in the paper, without a budget.
//! - `adaptive`: hedge at the p99 of recent primary latency (tailguard's adaptive delay), within
//!   a budget of 2 % extra reads.
//! - `p2c`: the same adaptive hedging, but each read picks its replica among the key's copies
//!   by power of two choices over a peak-EWMA of latency ([`tailguard::balance`]), and each
//!   hedge goes to the cheapest copy that is healthy and not already running the read
//!   ([`CallReplicas`](tailguard::hedge::CallReplicas)); see [`p2c`](super::sim_p2c).
//! - `tied`: tied requests (the `tied_sim` module): each key read goes to its home
//!   replica now and to its first copy `tied_delay` (1 ms) later, each copy tagged with the
//!   other; each replica holds its reads in a [`TiedQueue`](tailguard::tied::TiedQueue), which
//!   a stall stops draining; when one copy starts, its replica's cancel reaches the twin's
//!   replica `cancel_delay` (0.1 ms, a network hop in a data centre) later and removes the
//!   twin from its queue (or refuses it when it arrives); a copy that started and has not
//!   answered `tied_backup` (10 ms) later is backed up on the key's third copy, within the
//!   adaptive mode's budget ratio.
//!
//! ## Duplicate work
//!
//! `duplicate_work_pct` counts the reads that *started service* beyond one per key, in percent
//! of keys: a hedge or a tied copy that began work on a replica although another attempt
//! answered the key. A read cancelled (or dropped) while it waited out a stall did no work and
//! does not count; one dropped part-way counts as a whole read, so this is an upper bound on
//! the work wasted. It is 0 without hedging.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tailguard::hedge::{Hedge, HedgeBudget, HedgeStats};
use tailguard::ConfigError;

pub(super) use super::sim_world::{placement, service, Workers, World};
use crate::percentile;

/// Everything that defines one run of the experiment. [`SimConfig::default`] is the
/// experiment the demo runs and the tests assert on.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed for stalls, placement, arrivals and service times.
    pub seed: u64,
    /// Number of replicas (servers).
    pub replicas: usize,
    /// Keys read by each request.
    pub keys_per_request: usize,
    /// Number of requests measured.
    pub requests: usize,
    /// Requests run before measuring starts, so adaptive policies have a full window of
    /// latencies and budgets have savings, as in a service that has been up for a while.
    pub warmup_requests: usize,
    /// Mean time between request arrivals (Poisson arrivals).
    pub request_interval: Duration,
    /// The fixed part of a read's service time.
    pub service_base: Duration,
    /// The mean of the exponential part of a read's service time.
    pub service_mean_extra: Duration,
    /// Mean time between the starts of two stalls of one replica (exponential).
    pub stall_every: Duration,
    /// Shortest stall.
    pub stall_min: Duration,
    /// Longest stall.
    pub stall_max: Duration,
    /// Delay of the `fixed` mode.
    pub fixed_delay: Duration,
    /// Whether the `fixed` mode gets the `adaptive` mode's budget, to compare the two at equal
    /// extra load (by default it has none, as in the paper).
    pub equal_budget: bool,
    /// Percentile of recent primary latency the `adaptive` mode hedges at.
    pub adaptive_percentile: f64,
    /// Budget of the `adaptive` mode: hedges ≤ ratio × primaries.
    pub budget_ratio: f64,
    /// Attempts per key read in the hedging modes, the primary included.
    pub max_attempts: u32,
    /// Deadline of each request's scatter-gather; keys not read by then count as timed out.
    pub request_deadline: Duration,
    /// Workers per replica: the most reads it serves at once; more wait in its queue, first
    /// come first served. `None`: a worker for every read, so reads only wait out stalls.
    pub workers: Option<usize>,
    /// The `tied` mode: how long after the first copy of a read the second is sent.
    pub tied_delay: Duration,
    /// The `tied` mode: how long a replica's cancel takes to reach the twin's replica.
    pub cancel_delay: Duration,
    /// The `tied` mode: a backup goes to the key's third copy when the copy that started has
    /// not answered this long after it started, within `budget_ratio`; `None`: no backups.
    pub tied_backup: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 2013,
            replicas: 100,
            keys_per_request: 1000,
            requests: 10_000,
            warmup_requests: 20,
            request_interval: Duration::from_secs(2),
            service_base: Duration::from_micros(200),
            service_mean_extra: Duration::from_millis(1),
            stall_every: Duration::from_secs(2000),
            stall_min: Duration::from_millis(200),
            stall_max: Duration::from_secs(2),
            fixed_delay: Duration::from_millis(10),
            equal_budget: false,
            adaptive_percentile: 0.99,
            budget_ratio: 0.02,
            max_attempts: 3,
            request_deadline: Duration::from_secs(10),
            workers: Some(1),
            tied_delay: Duration::from_millis(1),
            cancel_delay: Duration::from_micros(100),
            tied_backup: Some(Duration::from_millis(10)),
        }
    }
}

impl SimConfig {
    /// Checks the sizes and the stall model; the hedging values are checked by the policies.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas < 2 {
            return Err(ConfigError::new(
                "replicas",
                format!(
                    "must be at least 2 (a hedge goes to another replica), got {}",
                    self.replicas
                ),
            ));
        }
        if self.keys_per_request == 0 {
            return Err(ConfigError::new("keys", "must be at least 1, got 0"));
        }
        if self.requests == 0 {
            return Err(ConfigError::new("requests", "must be at least 1, got 0"));
        }
        if self.stall_max < self.stall_min {
            return Err(ConfigError::new(
                "stall_max",
                format!(
                    "must be at least stall_min ({:?}), got {:?}",
                    self.stall_min, self.stall_max
                ),
            ));
        }
        if self.stall_every.is_zero() {
            return Err(ConfigError::new("stall_every", "must be positive, got 0"));
        }
        if self.max_attempts as usize > self.replicas {
            return Err(ConfigError::new(
                "max_attempts",
                format!(
                    "must be at most the number of replicas ({}), got {}",
                    self.replicas, self.max_attempts
                ),
            ));
        }
        tailguard::tied::Tied::new(self.tied_delay)?;
        // The hedging policies check the percentile, budget and delay: before any work.
        for mode in Mode::ALL {
            mode.policy(self)?;
        }
        Ok(())
    }

    /// The hedging budget of the adaptive mode (and of the fixed mode with `equal_budget`).
    pub(super) fn budget(&self) -> Result<HedgeBudget, ConfigError> {
        // Save up to ten requests' worth of hedges: a request that meets a stall needs ~10 on
        // top of its usual ~1 %, and stalls come in clusters.
        HedgeBudget::with_max_burst(
            self.budget_ratio,
            (self.keys_per_request as f64 * self.budget_ratio * 10.0)
                .ceil()
                .max(1.0) as u32,
        )
    }

    /// The share of time a replica is stalled, on average.
    pub fn stall_fraction(&self) -> f64 {
        let mean_stall = (self.stall_min + self.stall_max).as_secs_f64() / 2.0;
        mean_stall / (self.stall_every.as_secs_f64() + mean_stall)
    }
}

/// The hedging policies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No hedging.
    None,
    /// A hedge after a fixed delay, no budget.
    Fixed,
    /// A hedge at a percentile of recent latency, within a budget.
    Adaptive,
    /// Adaptive hedging, with each read's replica picked by power of two choices over a
    /// peak-EWMA of latency, and hedges sent only to healthy replicas not running the read.
    P2c,
    /// Tied requests: two copies, each cancelling the other when it starts.
    Tied,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 5] = [
        Mode::None,
        Mode::Fixed,
        Mode::Adaptive,
        Mode::P2c,
        Mode::Tied,
    ];

    /// The mode's name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Fixed => "fixed",
            Mode::Adaptive => "adaptive",
            Mode::P2c => "p2c",
            Mode::Tied => "tied",
        }
    }

    /// The mode's policy under `config`, in a few words.
    pub fn setting(self, config: &SimConfig) -> String {
        match self {
            Mode::None => "off".into(),
            Mode::Fixed if config.equal_budget => format!(
                "{:?}, {}% budget",
                config.fixed_delay,
                config.budget_ratio * 100.0
            ),
            Mode::Fixed => format!("{:?}, no budget", config.fixed_delay),
            Mode::Adaptive => format!(
                "p{}, {}% budget",
                config.adaptive_percentile * 100.0,
                config.budget_ratio * 100.0
            ),
            Mode::P2c => format!(
                "p2c + p{}, {}% budget",
                config.adaptive_percentile * 100.0,
                config.budget_ratio * 100.0
            ),
            Mode::Tied => super::tied_sim::setting(config),
        }
    }

    fn policy(self, config: &SimConfig) -> Result<Hedge, ConfigError> {
        match self {
            // Tied requests use no hedge: their policy is checked in `tied_sim`.
            Mode::None | Mode::Tied => Hedge::builder()
                .fixed_delay(Duration::MAX)
                .max_attempts(1)
                .unbudgeted()
                .build(),
            Mode::Fixed if config.equal_budget => Hedge::builder()
                .fixed_delay(config.fixed_delay)
                .max_attempts(config.max_attempts)
                .budget(config.budget()?)
                .build(),
            Mode::Fixed => Hedge::builder()
                .fixed_delay(config.fixed_delay)
                .max_attempts(config.max_attempts)
                .unbudgeted()
                .build(),
            Mode::Adaptive | Mode::P2c => Hedge::builder()
                .adaptive_delay(config.adaptive_percentile)
                .min_samples(config.keys_per_request.max(100) as u64)
                .delay_floor(Duration::from_micros(100))
                .delay_ceiling(Duration::from_secs(1))
                .window(Duration::from_secs(10), 10)
                .max_attempts(config.max_attempts)
                .budget(config.budget()?)
                .build(),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one mode achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeReport {
    /// The mode.
    pub mode: Mode,
    /// The policy, in a few words (`10 ms, no budget`).
    pub setting: String,
    /// Median whole-request latency. Like every percentile here, `None` without at least 10
    /// requests beyond it ([the rule](crate::percentile)).
    pub p50: Option<Duration>,
    /// 99th percentile of whole-request latency (needs 1,000 requests).
    pub p99: Option<Duration>,
    /// 99.9th percentile of whole-request latency (needs 10,000 requests).
    pub p999: Option<Duration>,
    /// The slowest request.
    pub max: Duration,
    /// Extra reads sent, as a percentage of primary reads (over the whole run, warm-up
    /// included, as the budget sees it).
    pub extra_pct: f64,
    /// The hedging policy's counters.
    pub stats: HedgeStats,
    /// Reads that started service beyond one per key, in percent of keys (see the module
    /// documentation, "Duplicate work").
    pub duplicate_work_pct: f64,
    /// The `tied` mode's backups (zero in the other modes).
    pub backups: tailguard::tied::BackupStats,
    /// Key reads that missed the request deadline.
    pub timed_out_keys: u64,
    /// Number of requests measured.
    pub requests: usize,
}

/// Runs one mode of the experiment and reports on it.
pub fn run_mode(config: &SimConfig, mode: Mode) -> Result<ModeReport, ConfigError> {
    config.validate()?;
    run_in(config, &World::generate(config), mode)
}

/// Runs `modes` of the experiment on the same world, one thread each, and reports in order.
pub fn run_modes(config: &SimConfig, modes: &[Mode]) -> Result<Vec<ModeReport>, ConfigError> {
    config.validate()?;
    let world = World::generate(config);
    std::thread::scope(|scope| {
        let runs: Vec<_> = modes
            .iter()
            .map(|&mode| {
                let world = &world;
                scope.spawn(move || run_in(config, world, mode))
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Runs every mode on the same world (in parallel) and reports in [`Mode::ALL`] order.
pub fn run_all(config: &SimConfig) -> Result<Vec<ModeReport>, ConfigError> {
    run_modes(config, &Mode::ALL)
}

fn run_in(config: &SimConfig, world: &World, mode: Mode) -> Result<ModeReport, ConfigError> {
    if mode == Mode::Tied {
        return super::tied_sim::run(config, world);
    }
    let hedge = mode.policy(config)?;
    let workers = Workers::new(config);
    let balancer = match mode {
        Mode::P2c => Some(super::sim_p2c::balancer(config)?),
        _ => None,
    };
    let outcomes = super::sim_loop::run(config, world, &workers, &hedge, balancer.as_ref());

    let mut latencies = Vec::with_capacity(config.requests);
    let mut timed_out_keys = 0;
    for (latency, timed_out) in outcomes.into_iter().skip(config.warmup_requests) {
        latencies.push(latency);
        timed_out_keys += timed_out;
    }
    latencies.sort_unstable();
    let stats = hedge.stats();
    let keys = world.arrivals.len() as u64 * config.keys_per_request as u64;
    Ok(ModeReport {
        mode,
        setting: mode.setting(config),
        p50: percentile::of_sorted(&latencies, 0.5),
        p99: percentile::of_sorted(&latencies, 0.99),
        p999: percentile::of_sorted(&latencies, 0.999),
        max: *latencies.last().expect("at least one request"),
        extra_pct: stats.extra_load() * 100.0,
        duplicate_work_pct: duplicate_pct(workers.served.load(Relaxed), keys),
        stats,
        backups: Default::default(),
        timed_out_keys,
        requests: latencies.len(),
    })
}

/// Reads that started beyond one per key, in percent of `keys`.
pub(super) fn duplicate_pct(started: u64, keys: u64) -> f64 {
    if keys == 0 {
        0.0
    } else {
        100.0 * started.saturating_sub(keys) as f64 / keys as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_stall_model_is_as_documented() {
        let f = SimConfig::default().stall_fraction();
        assert!((f - 0.00055).abs() < 0.00001, "{f}");
    }

    #[test]
    fn equal_budget_is_in_the_fixed_mode_setting() {
        let paper = SimConfig::default();
        assert_eq!(Mode::Fixed.setting(&paper), "10ms, no budget");
        let equal = SimConfig {
            equal_budget: true,
            ..SimConfig::default()
        };
        assert_eq!(Mode::Fixed.setting(&equal), "10ms, 2% budget");
        assert_eq!(Mode::Adaptive.setting(&equal), "p99, 2% budget");
        assert!(Mode::Fixed.policy(&equal).is_ok());
    }

    #[test]
    fn bad_sizes_are_refused() {
        let bad = SimConfig {
            replicas: 1,
            ..SimConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "replicas");
        let bad = SimConfig {
            stall_min: Duration::from_secs(3),
            ..SimConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "stall_max");
    }
}

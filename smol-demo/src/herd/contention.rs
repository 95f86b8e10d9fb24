//! N clients, one resource, optimistic concurrency: the AWS jitter study in virtual time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::Retry;
use tailguard::time::{ManualTimer, Timer};

/// A backoff strategy of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Retry at once.
    None,
    /// `min(cap, base·2ⁿ)`, no randomness.
    Exponential,
    /// Exponential with full jitter.
    Full,
    /// Exponential with equal jitter.
    Equal,
    /// Decorrelated jitter.
    Decorrelated,
}

impl Strategy {
    /// Every strategy, in table order.
    pub const ALL: [Strategy; 5] = [
        Strategy::None,
        Strategy::Exponential,
        Strategy::Full,
        Strategy::Equal,
        Strategy::Decorrelated,
    ];

    /// The key used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Exponential => "exponential",
            Strategy::Full => "full",
            Strategy::Equal => "equal",
            Strategy::Decorrelated => "decorrelated",
        }
    }

    /// The backoff for this strategy.
    pub fn backoff(self, config: &ContentionConfig) -> Backoff {
        let (builder, jitter) = match self {
            Strategy::None => (Backoff::constant(Duration::ZERO), Jitter::None),
            Strategy::Exponential => (Backoff::exponential(config.base), Jitter::None),
            Strategy::Full => (Backoff::exponential(config.base), Jitter::Full),
            Strategy::Equal => (Backoff::exponential(config.base), Jitter::Equal),
            Strategy::Decorrelated => (Backoff::exponential(config.base), Jitter::Decorrelated),
        };
        let builder = match self {
            Strategy::None => builder,
            _ => builder.max_delay(config.cap),
        };
        builder
            .jitter(jitter)
            .seed(config.seed)
            .build()
            .expect("the study's backoffs are valid")
    }
}

/// Settings of the contention experiment.
#[derive(Debug, Clone)]
pub struct ContentionConfig {
    /// How many clients contend (default 100).
    pub clients: u32,
    /// Seed of every backoff's randomness.
    pub seed: u64,
    /// Mean one-way network delay (default 10 ms). Each attempt is four trips: the read request,
    /// its reply, the write request, its reply; each takes `|normal(mean, sd)|`, as in the
    /// study's simulator.
    pub network_mean: Duration,
    /// Standard deviation of the network delay (default 2 ms).
    pub network_sd: Duration,
    /// Independent runs averaged into each result (default 10), each with its own seed.
    pub trials: u32,
    /// The backoff's base delay (default 5 ms).
    pub base: Duration,
    /// The backoff's cap (default 2 s).
    pub cap: Duration,
}

impl Default for ContentionConfig {
    fn default() -> Self {
        ContentionConfig {
            clients: 100,
            seed: 1,
            network_mean: Duration::from_millis(10),
            network_sd: Duration::from_millis(2),
            trials: 10,
            base: Duration::from_millis(5),
            cap: Duration::from_secs(2),
        }
    }
}

/// What one strategy cost, averaged over the trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContentionResult {
    /// Writes attempted by all clients together (the work the resource did), per trial.
    pub calls: f64,
    /// Virtual time until the last client's write succeeded, in milliseconds, per trial.
    pub completion_ms: f64,
}

/// The shared resource: a version number bumped by every successful write.
#[derive(Debug, Default)]
struct Resource {
    version: Cell<u64>,
    writes_attempted: Cell<u64>,
}

/// A write lost the race.
#[derive(Debug)]
struct Conflict;

/// Runs the clients under `strategy` until every one has written once, `trials` times, and
/// averages.
pub fn run_contention(strategy: Strategy, config: &ContentionConfig) -> ContentionResult {
    let trials = config.trials.max(1);
    let (mut calls, mut completion) = (0u64, Duration::ZERO);
    for trial in 0..trials {
        let (c, t) = one_trial(strategy, config, trial);
        calls += c;
        completion += t;
    }
    ContentionResult {
        calls: calls as f64 / f64::from(trials),
        completion_ms: crate::ms::rounded(completion / trials),
    }
}

/// One run: (writes attempted, time until the last client is done).
fn one_trial(strategy: Strategy, config: &ContentionConfig, trial: u32) -> (u64, Duration) {
    let seed = config.seed ^ u64::from(trial).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let timer = ManualTimer::new();
    let mut backoff = strategy.backoff(config);
    backoff.reseed(seed);
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(u32::MAX)
        .backoff(backoff)
        .build()
        .expect("the study's policy is valid");
    let resource = Rc::new(Resource::default());
    let network = Network {
        mean: config.network_mean.as_secs_f64(),
        sd: config.network_sd.as_secs_f64(),
    };
    let start = timer.now();

    let clients: FuturesUnordered<_> = (0..config.clients)
        .map(|client| {
            let (timer, resource, policy) = (timer.clone(), resource.clone(), &policy);
            let rng = Rc::new(RefCell::new(fastrand::Rng::with_seed(
                seed.wrapping_add(u64::from(client))
                    .wrapping_mul(0xD6E8_FEB8_6659_FD93),
            )));
            async move {
                policy
                    .run(|| {
                        let (timer, resource, rng) = (timer.clone(), resource.clone(), rng.clone());
                        async move {
                            let trip = || network.delay(&mut rng.borrow_mut());
                            timer.sleep(trip()).await;
                            let read = resource.version.get();
                            timer.sleep(trip() + trip()).await;
                            resource
                                .writes_attempted
                                .set(resource.writes_attempted.get() + 1);
                            let written = resource.version.get() == read;
                            if written {
                                resource.version.set(read + 1);
                            }
                            timer.sleep(trip()).await;
                            if written {
                                Ok(())
                            } else {
                                Err(Conflict)
                            }
                        }
                    })
                    .await
                    .expect("unlimited attempts always succeed in the end");
                timer.now()
            }
        })
        .collect();
    let last = timer.block_on(clients.fold(start, |last, done| async move { last.max(done) }));
    (resource.writes_attempted.get(), last - start)
}

/// One-way network delays: `|normal(mean, sd)|`, drawn with the Box–Muller transform.
#[derive(Debug, Clone, Copy)]
struct Network {
    mean: f64,
    sd: f64,
}

impl Network {
    fn delay(&self, rng: &mut fastrand::Rng) -> Duration {
        let u1 = 1.0 - rng.f64(); // (0, 1]: ln is finite
        let u2 = rng.f64();
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        Duration::from_secs_f64((self.mean + self.sd * normal).abs())
    }
}

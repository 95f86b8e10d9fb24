//! N instances in threads, each with its own rate limiter shared through one fleet, calling as
//! fast as their demand says: how many calls the fleet admitted over a window against its
//! configured rate. Shared by `tests/rates.rs` and `examples/rate_overshoot.rs`.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use tailguard::rate::RateLimiter;
use tailguard_fleet::{Fleet, Mode, RateFallback};

/// What to run.
#[derive(Debug, Clone)]
pub struct Load {
    /// The Redis to share through.
    pub url: String,
    /// The fleet's rate, tokens per second.
    pub rate: u32,
    /// Each instance's burst.
    pub burst: u32,
    /// The fleets' merge interval.
    pub interval: Duration,
    /// Calls each instance attempts per millisecond (one entry per instance).
    pub attempts_per_ms: Vec<u32>,
    /// Calls before the window counts (the fleets find their shares).
    pub warm_up: Duration,
    /// The window measured.
    pub window: Duration,
    /// Keys' namespace (one per run).
    pub namespace: String,
}

/// What it measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Calls the fleet admitted within the window.
    pub admitted: u64,
    /// The fleet's rate times the window.
    pub allowed: f64,
    /// `admitted / allowed - 1`, in percent (negative: under the rate).
    pub overshoot_pct: f64,
    /// Calls admitted within the window, per instance.
    pub per_instance: Vec<u64>,
    /// Each instance's share at the end.
    pub shares: Vec<f64>,
}

/// Runs the load and measures it.
pub fn run(load: &Load) -> Measured {
    let fleets: Vec<(Fleet, RateLimiter)> = (0..load.attempts_per_ms.len())
        .map(|i| {
            let fleet = Fleet::builder(&load.url)
                .namespace(&load.namespace)
                .instance_id(&format!("i{i}"))
                .interval(load.interval)
                .io_timeout(load.interval.min(Duration::from_millis(40)))
                .on_log(|_| {})
                .build()
                .expect("valid fleet settings");
            let limiter = RateLimiter::builder()
                .rate(load.rate, Duration::from_secs(1))
                .burst(load.burst)
                .build()
                .expect("valid limiter settings");
            fleet
                .share_rate("load", &limiter, RateFallback::LastShare)
                .expect("one limiter per fleet");
            (fleet, limiter)
        })
        .collect();
    let n = fleets.len();
    let give_up = Instant::now() + Duration::from_secs(10);
    while !fleets
        .iter()
        .all(|(f, _)| f.status().mode == Mode::Shared && f.status().peers + 1 == n)
    {
        assert!(Instant::now() < give_up, "the fleets did not all sync");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let from = start + load.warm_up;
    let to = from + load.window;
    let per_instance: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = fleets
            .iter()
            .zip(&load.attempts_per_ms)
            .map(|((_, limiter), &attempts)| {
                scope.spawn(move || {
                    let mut admitted = 0;
                    let mut tick = Instant::now();
                    while tick < to {
                        for _ in 0..attempts {
                            if limiter.try_acquire().is_ok() {
                                let now = Instant::now();
                                if now >= from && now < to {
                                    admitted += 1;
                                }
                            }
                        }
                        tick += Duration::from_millis(1);
                        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    admitted
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread"))
            .collect()
    });
    let admitted: u64 = per_instance.iter().sum();
    let allowed = f64::from(load.rate) * load.window.as_secs_f64();
    Measured {
        admitted,
        allowed,
        overshoot_pct: (admitted as f64 / allowed - 1.0) * 100.0,
        per_instance,
        shares: fleets
            .iter()
            .map(|(f, _)| f.rate_share("load").expect("shared"))
            .collect(),
    }
}

//! How a simulated replica behaves: a latency distribution, stalls, errors, capacity.
//!
//! Everything here is pure: sampling takes a seeded [`fastrand::Rng`], and the stall schedule is
//! a function of the seed and the time since the backends started, so it can be tested without
//! a clock and replayed exactly.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tailguard::ConfigError;

use crate::args::parse_duration;

/// The longest latency a distribution hands out; longer samples are cut to this. It keeps a
/// heavy-tailed draw from holding a request for minutes.
pub const MAX_SAMPLE: Duration = Duration::from_secs(10);

/// The service time of one request, before stalls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyDist {
    /// Always this long.
    Fixed(Duration),
    /// Exponentially distributed with this mean (memoryless: most calls are quick, a few slow).
    Exponential {
        /// The mean latency.
        mean: Duration,
    },
    /// Log-normal around `median`: `median × e^(sigma × N(0,1))`. sigma 0.5 puts p99 near
    /// 3.2 × the median; a realistic service time.
    LogNormal {
        /// The median latency.
        median: Duration,
        /// The spread, in (0, 4].
        sigma: f64,
    },
}

impl Default for LatencyDist {
    /// Log-normal, median 5 ms, sigma 0.5.
    fn default() -> Self {
        LatencyDist::LogNormal {
            median: Duration::from_millis(5),
            sigma: 0.5,
        }
    }
}

impl LatencyDist {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            LatencyDist::Fixed(d) if d > MAX_SAMPLE => Err(ConfigError::new(
                "latency",
                format!("must be at most {MAX_SAMPLE:?}, got {d:?}"),
            )),
            LatencyDist::Exponential { mean } | LatencyDist::LogNormal { median: mean, .. }
                if mean.is_zero() || mean > MAX_SAMPLE =>
            {
                Err(ConfigError::new(
                    "latency",
                    format!("the mean or median must be in (0, {MAX_SAMPLE:?}], got {mean:?}"),
                ))
            }
            LatencyDist::LogNormal { sigma, .. } if !(sigma > 0.0 && sigma <= 4.0) => {
                Err(ConfigError::new(
                    "latency",
                    format!("the log-normal sigma must be in (0, 4], got {sigma}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Draws one latency, at most [`MAX_SAMPLE`].
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        let seconds = match *self {
            LatencyDist::Fixed(d) => return d.min(MAX_SAMPLE),
            LatencyDist::Exponential { mean } => {
                // 1 - f64() is in (0, 1], so the log is finite.
                -mean.as_secs_f64() * (1.0 - rng.f64()).ln()
            }
            LatencyDist::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * standard_normal(rng)).exp()
            }
        };
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(MAX_SAMPLE)
            .min(MAX_SAMPLE)
    }
}

/// One draw of N(0, 1) by the Box-Muller transform.
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64(); // (0, 1]
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyDist::Fixed(d) => write!(f, "fixed:{}ms", crate::ms::of(*d)),
            LatencyDist::Exponential { mean } => write!(f, "exp:{}ms", crate::ms::of(*mean)),
            LatencyDist::LogNormal { median, sigma } => {
                write!(f, "lognormal:{}ms,{sigma}", crate::ms::of(*median))
            }
        }
    }
}

impl FromStr for LatencyDist {
    type Err = String;

    /// `fixed:20ms`, `exp:5ms` (mean) or `lognormal:5ms,0.5` (median, sigma).
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "write fixed:20ms, exp:5ms (mean) or lognormal:5ms,0.5 (median, sigma)";
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not a latency distribution: {usage}"))?;
        let dist = match kind {
            "fixed" => LatencyDist::Fixed(parse_duration(rest)?),
            "exp" => LatencyDist::Exponential {
                mean: parse_duration(rest)?,
            },
            "lognormal" => {
                let (median, sigma) = rest.split_once(',').unwrap_or((rest, "0.5"));
                LatencyDist::LogNormal {
                    median: parse_duration(median)?,
                    sigma: sigma
                        .trim()
                        .parse()
                        .map_err(|_| format!("`{sigma}` is not a number (the sigma): {usage}"))?,
                }
            }
            other => return Err(format!("unknown distribution `{other}`: {usage}")),
        };
        dist.validate().map_err(|e| e.to_string())?;
        Ok(dist)
    }
}

/// Pauses like a garbage collector: about every `every`, the replica stops for about `length`,
/// and every request in it waits.
///
/// Stall `k` of a replica starts at `phase + k × every + u × every / 2` and lasts
/// `length × (0.5 + v)`, where `phase` (in `[0, every)`), `u` and `v` (in `[0, 1)`) are drawn
/// from the seed, the replica's index and `k`. So stalls are irregular, replicas stall at
/// different times, and two stalls never overlap (`length` is at most a third of `every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalls {
    /// The average time from one stall to the next.
    pub every: Duration,
    /// The average length of a stall.
    pub length: Duration,
}

impl Stalls {
    /// Checks that stalls are possible and cannot overlap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.every < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "stall_every",
                format!("must be at least 1ms, got {:?}", self.every),
            ));
        }
        if self.length.is_zero() || self.length > self.every / 3 {
            return Err(ConfigError::new(
                "stall_for",
                format!(
                    "must be in (0, stall_every / 3] = (0, {:?}] so that stalls never overlap, got {:?}",
                    self.every / 3,
                    self.length
                ),
            ));
        }
        Ok(())
    }
}

/// The stall windows of one replica, as a pure function of the seed.
#[derive(Debug, Clone, Copy)]
pub struct StallSchedule {
    every: u64,
    length: u64,
    phase: u64,
    seed: u64,
}

impl StallSchedule {
    /// The schedule of replica `replica` under `seed`.
    pub fn new(stalls: Stalls, seed: u64, replica: usize) -> Self {
        let seed = mix(seed ^ mix(replica as u64 + 1));
        let every = nanos(stalls.every).max(1);
        StallSchedule {
            every,
            length: nanos(stalls.length),
            phase: (unit(mix(seed)) * every as f64) as u64,
            seed,
        }
    }

    /// Stall `k`: its start and end, in nanoseconds since the origin.
    pub fn window(&self, k: u64) -> (u64, u64) {
        let draw = mix(self.seed ^ mix(k.wrapping_add(0x9e37)));
        let start = self.phase + k * self.every + (unit(draw) * (self.every / 2) as f64) as u64;
        let length = (self.length as f64 * (0.5 + unit(mix(draw)))) as u64;
        (start, start + length)
    }

    /// When work of `work` nanoseconds that arrives at `arrival` finishes, if the replica does
    /// no work during its stalls. Both in nanoseconds since the origin.
    pub fn finish(&self, arrival: u64, work: u64) -> u64 {
        let mut t = arrival;
        let mut remaining = work;
        // The stall that may contain `arrival` is the one of this period or the last.
        let mut k = (arrival.saturating_sub(self.phase) / self.every).saturating_sub(1);
        loop {
            let (start, end) = self.window(k);
            k += 1;
            if end <= t {
                continue;
            }
            if start >= t + remaining {
                return t + remaining;
            }
            remaining -= start.saturating_sub(t);
            t = end;
        }
    }
}

/// `d` in whole nanoseconds, saturating (the stall arithmetic's unit).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// SplitMix64's finaliser: a good 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash as a number in [0, 1).
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// What one replica does with a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The service time before stalls.
    pub latency: LatencyDist,
    /// Pauses, if any.
    pub stalls: Option<Stalls>,
    /// The fraction of requests answered with HTTP 500 (after their latency), in [0, 1].
    pub error_rate: f64,
    /// The most requests served at once; more are answered 503 at once. `None`: no limit.
    pub capacity: Option<usize>,
    /// Workers: the most requests in service at once; more wait in the replica's queue (where
    /// a tied request's twin can cancel them). `None`: a worker for every request, so requests
    /// only wait out stalls.
    pub workers: Option<usize>,
}

impl Default for Profile {
    /// Log-normal latency around 5 ms, no stalls, no errors, no capacity limit.
    fn default() -> Self {
        Profile {
            latency: LatencyDist::default(),
            stalls: None,
            error_rate: 0.0,
            capacity: None,
            workers: None,
        }
    }
}

impl Profile {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.latency.validate()?;
        if let Some(stalls) = &self.stalls {
            stalls.validate()?;
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(ConfigError::new(
                "error_rate",
                format!("must be in [0, 1], got {}", self.error_rate),
            ));
        }
        if self.workers == Some(0) {
            return Err(ConfigError::new(
                "workers",
                "must be at least 1 (or one per request), got 0",
            ));
        }
        if self.capacity == Some(0) {
            return Err(ConfigError::new(
                "capacity",
                "must be at least 1 (or no limit), got 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn parse_and_print_distributions() {
        assert_eq!(
            "fixed:20ms".parse::<LatencyDist>(),
            Ok(LatencyDist::Fixed(Duration::from_millis(20)))
        );
        assert_eq!(
            "exp:5ms".parse::<LatencyDist>(),
            Ok(LatencyDist::Exponential {
                mean: Duration::from_millis(5)
            })
        );
        let lognormal: LatencyDist = "lognormal:4ms,0.25".parse().unwrap();
        assert_eq!(lognormal.to_string(), "lognormal:4ms,0.25");
        assert_eq!(lognormal.to_string().parse::<LatencyDist>(), Ok(lognormal));
        assert!("lognormal:4ms,9"
            .parse::<LatencyDist>()
            .unwrap_err()
            .contains("sigma"));
        assert!("gauss:4ms"
            .parse::<LatencyDist>()
            .unwrap_err()
            .contains("unknown"));
        assert!("exp:0ms".parse::<LatencyDist>().is_err());
        assert!("20ms".parse::<LatencyDist>().is_err());
    }

    #[test]
    fn samples_match_their_distribution() {
        let mut rng = fastrand::Rng::with_seed(7);
        let median = |dist: LatencyDist, rng: &mut fastrand::Rng| {
            let mut v: Vec<Duration> = (0..20_001).map(|_| dist.sample(rng)).collect();
            v.sort();
            v[10_000]
        };
        let fixed = LatencyDist::Fixed(Duration::from_millis(20));
        assert_eq!(median(fixed, &mut rng), Duration::from_millis(20));
        // Exponential: median = mean × ln 2.
        let exp = LatencyDist::Exponential {
            mean: Duration::from_millis(10),
        };
        let m = crate::ms::of(median(exp, &mut rng));
        assert!((6.4..7.5).contains(&m), "exp median {m} ms");
        let lognormal = LatencyDist::LogNormal {
            median: Duration::from_millis(10),
            sigma: 0.5,
        };
        let m = crate::ms::of(median(lognormal, &mut rng));
        assert!((9.5..10.5).contains(&m), "lognormal median {m} ms");
    }

    #[test]
    fn samples_are_capped() {
        let mut rng = fastrand::Rng::with_seed(1);
        let wild = LatencyDist::LogNormal {
            median: MAX_SAMPLE,
            sigma: 4.0,
        };
        assert!((0..1000).all(|_| wild.sample(&mut rng) <= MAX_SAMPLE));
    }

    fn schedule() -> StallSchedule {
        let stalls = Stalls {
            every: Duration::from_millis(100),
            length: Duration::from_millis(20),
        };
        StallSchedule::new(stalls, 42, 0)
    }

    #[test]
    fn stall_windows_are_ordered_and_bounded() {
        let s = schedule();
        let mut last_end = 0;
        for k in 0..1000 {
            let (start, end) = s.window(k);
            assert!(start >= last_end, "stall {k} overlaps the previous one");
            let length = end - start;
            assert!((10 * MS..=30 * MS).contains(&length), "{length}");
            last_end = end;
        }
        // About one stall per period.
        assert!((95_000 * MS..=105_000 * MS).contains(&s.window(1000).0));
    }

    #[test]
    fn replicas_and_seeds_stall_at_different_times() {
        let stalls = Stalls {
            every: Duration::from_millis(100),
            length: Duration::from_millis(20),
        };
        let a = StallSchedule::new(stalls, 42, 0).window(3);
        assert_eq!(StallSchedule::new(stalls, 42, 0).window(3), a);
        assert_ne!(StallSchedule::new(stalls, 42, 1).window(3), a);
        assert_ne!(StallSchedule::new(stalls, 43, 0).window(3), a);
    }

    #[test]
    fn work_pauses_during_a_stall() {
        let s = schedule();
        let (start, end) = s.window(5);
        // Arriving inside the stall: wait for its end, then work.
        assert_eq!(s.finish(start + MS, 2 * MS), end + 2 * MS);
        // Starting 1 ms before it with 3 ms of work: 1 ms before, 2 ms after.
        assert_eq!(s.finish(start - MS, 3 * MS), end + 2 * MS);
        // Finishing just before it: untouched.
        assert_eq!(s.finish(start - 3 * MS, 3 * MS), start);
        // Right after it: untouched.
        assert_eq!(s.finish(end, 3 * MS), end + 3 * MS);
        // Zero work inside a stall still waits for it.
        assert_eq!(s.finish(start + 1, 0), end);
    }

    #[test]
    fn work_done_outside_stalls_is_exactly_the_work() {
        let s = schedule();
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2000 {
            let arrival = rng.u64(0..5_000 * MS);
            let work = rng.u64(0..1_000 * MS);
            let finish = s.finish(arrival, work);
            // Time spent stalled within [arrival, finish].
            let stalled: u64 = (0..80)
                .map(|k| s.window(k))
                .map(|(a, b)| b.min(finish).saturating_sub(a.max(arrival)))
                .sum();
            assert_eq!(
                finish - arrival - stalled,
                work,
                "arrival {arrival} work {work}"
            );
            // Work never finishes inside a stall.
            assert!((0..80).all(|k| {
                let (a, b) = s.window(k);
                !(a < finish && finish < b)
            }));
        }
    }

    #[test]
    fn profiles_are_validated_by_field() {
        let bad = Profile {
            error_rate: 1.5,
            ..Profile::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "error_rate");
        let bad = Profile {
            stalls: Some(Stalls {
                every: Duration::from_millis(100),
                length: Duration::from_millis(50),
            }),
            ..Profile::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "stall_for");
        let bad = Profile {
            capacity: Some(0),
            ..Profile::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "capacity");
        assert!(Profile::default().validate().is_ok());
    }
}

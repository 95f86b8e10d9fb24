//! One run of the fleet experiment: N client instances in this process, each with its own
//! breaker per replica (and, shared, its own `Fleet`), calling backend replicas in an open loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use tailguard::breaker::{CircuitBreaker, State};
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode};

use super::FleetConfig;
use crate::backend::{BackendConfig, Backends, Profile};
use crate::client::{ClientConfig, Pool};
use crate::percentile;
use crate::rt::Exec;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Calls sent to the dead replica across the fleet, from the moment it went down.
    pub dead_replica_calls: u64,
    /// From the replica going down until every instance's breaker for it rejects, if they all
    /// did.
    pub open_all_ms: Option<f64>,
    /// From the first instance's breaker opening until the last one's.
    pub spread_ms: Option<f64>,
    /// User requests that failed on every replica tried, per phase.
    pub errors: [u64; 3],
    /// User requests per phase.
    pub requests: [u64; 3],
    /// p99 of the user requests' latency, per phase (ms).
    pub p99_ms: [Option<f64>; 3],
    /// p99 over the whole run (ms).
    pub p99_all_ms: Option<f64>,
    /// Syncs that failed, over the instances' fleets.
    pub syncs_failed: u64,
    /// The fleets' modes seen during the middle phase (Redis killed): every one local.
    pub local_during: bool,
    /// The fleets' modes at the end: every one shared.
    pub shared_after: bool,
}

/// Which phase a request fell in: thirds of the run.
fn phase(config: &FleetConfig, at: Duration) -> usize {
    let third = config.duration / 3;
    if at < third {
        0
    } else if at < third * 2 {
        1
    } else {
        2
    }
}

fn breaker(config: &FleetConfig, replica: usize) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name(&format!("replica-{replica}"))
        .count_window(config.window)
        .minimum_calls(u64::from(config.minimum_calls))
        .failure_rate(0.5)
        // One exact global window: the newest calls are the newest, whichever thread made
        // them (with per-thread stripes the window's order is approximate, see count_window).
        .stripes(0)
        .open_duration(Duration::from_secs(60))
        .build()
        .expect("the experiment's breaker settings are valid")
}

/// One run: `shared` with a fleet per instance on `redis`; `kill_redis` stops Redis for the
/// middle third; `down` takes replica 0 down at the first third.
pub async fn run(
    ex: &Exec,
    config: &FleetConfig,
    redis: Option<&Arc<Mutex<LocalRedis>>>,
    namespace: &str,
    down: bool,
    kill_redis: bool,
) -> std::io::Result<RunResult> {
    let backends = Backends::start(
        BackendConfig::uniform(config.replicas, Profile::default()),
        ex,
    )
    .await?;
    let pools: Vec<Pool> = backends
        .addrs()
        .iter()
        .map(|addr| {
            let client = ClientConfig {
                connect_timeout: Duration::from_millis(200),
                max_idle: 64,
            };
            Pool::new(*addr, client, ex.clone())
        })
        .collect();
    let instances: Vec<Vec<CircuitBreaker>> = (0..config.instances)
        .map(|_| (0..config.replicas).map(|r| breaker(config, r)).collect())
        .collect();
    let url = redis.map(|r| r.lock().expect("redis handle").url());
    let fleets: Vec<Fleet> = match &url {
        Some(url) => instances
            .iter()
            .enumerate()
            .map(|(i, breakers)| {
                let fleet = Fleet::builder(url)
                    .namespace(namespace)
                    .instance_id(&format!("gw-{i}"))
                    .interval(config.interval)
                    .on_log(|_| {})
                    .build()
                    .expect("the experiment's fleet settings are valid");
                for b in breakers {
                    fleet.share(b).expect("one breaker per replica");
                }
                fleet
            })
            .collect(),
        None => Vec::new(),
    };
    // Let every fleet sync once before the load starts.
    let ready = Instant::now() + config.interval * 20;
    while !fleets.iter().all(|f| f.status().mode == Mode::Shared) && Instant::now() < ready {
        Timer::after(Duration::from_millis(5)).await;
    }

    let start = Instant::now();
    let dead_calls = Arc::new(AtomicU64::new(0));
    let samples: Arc<Mutex<[Vec<Duration>; 3]>> = Arc::default();
    let errors: Arc<[AtomicU64; 3]> = Arc::default();
    let down_at = config.duration / 3;
    let period = Duration::from_secs_f64(1.0 / config.rate);
    let total = (config.rate * config.duration.as_secs_f64()) as usize;
    let mut tasks = Vec::with_capacity(total * config.instances);
    let mut watched: Option<(Option<Duration>, Option<Duration>)> = None;
    // Meaningful for the run that kills Redis: whether every fleet said local while it was down.
    let mut local_during = true;
    let mut redis_down = false;
    let mut control: Vec<std::thread::JoinHandle<()>> = Vec::new();
    for n in 0..total {
        let due = start + period * u32::try_from(n).unwrap_or(u32::MAX);
        while Instant::now() < due {
            Timer::at(due.min(Instant::now() + Duration::from_millis(2))).await;
            let at = start.elapsed();
            if down && at >= down_at && watched.is_none() {
                backends.set_down(0, true).expect("replica 0 exists");
                watched = Some((None, None));
            }
            if let Some((first, all)) = &mut watched {
                let open = instances
                    .iter()
                    .filter(|b| b[0].state() != State::Closed)
                    .count();
                if open > 0 && first.is_none() {
                    *first = Some(at);
                }
                if open == instances.len() && all.is_none() {
                    *all = Some(at);
                }
            }
            if kill_redis {
                let ph = phase(config, at);
                // Killing and restarting Redis block (a process to reap, then to start and
                // wait for): done on a thread of their own, not the executor's, so the
                // requests' latencies measure the fleet, not the experiment's bookkeeping.
                if ph == 1 && !redis_down {
                    let redis = Arc::clone(redis.expect("shared"));
                    control.push(std::thread::spawn(move || {
                        redis.lock().expect("redis").stop();
                    }));
                    redis_down = true;
                }
                if ph == 1 && at > down_at + config.interval * 4 + Duration::from_millis(250) {
                    local_during &= fleets.iter().all(|f| f.status().mode == Mode::Local);
                }
                if ph == 2 && redis_down {
                    redis_down = false;
                    let redis = Arc::clone(redis.expect("shared"));
                    control.push(std::thread::spawn(move || {
                        let _ = redis.lock().expect("redis").restart();
                    }));
                }
            }
        }
        for (k, breakers) in instances.iter().enumerate() {
            let breakers = breakers.clone();
            let pools = pools.clone();
            let dead_calls = Arc::clone(&dead_calls);
            let samples = Arc::clone(&samples);
            let errors = Arc::clone(&errors);
            // Round robin per instance, each instance starting from another replica.
            let first = n + k;
            let is_down = down;
            tasks.push(ex.spawn(async move {
                let began = Instant::now();
                let ph = phase_at(began.duration_since(start), down_at);
                let mut ok = false;
                for k in 0..breakers.len() {
                    let r = (first + k) % breakers.len();
                    let Ok(permit) = breakers[r].try_acquire() else {
                        continue;
                    };
                    if is_down && r == 0 && began.duration_since(start) >= down_at {
                        dead_calls.fetch_add(1, Ordering::Relaxed);
                    }
                    match pools[r].get("/fleet").await {
                        Ok(reply) if reply.status.is_success() => {
                            permit.success();
                            ok = true;
                            break;
                        }
                        _ => permit.failure(),
                    }
                }
                let took = began.elapsed();
                if !ok {
                    errors[ph].fetch_add(1, Ordering::Relaxed);
                }
                samples.lock().expect("samples")[ph].push(took);
            }));
        }
    }
    for task in tasks {
        task.await;
    }
    for thread in control {
        let _ = thread.join();
    }
    let mut result = RunResult {
        dead_replica_calls: if down {
            dead_calls.load(Ordering::Relaxed)
        } else {
            0
        },
        local_during,
        shared_after: fleets.iter().all(|f| f.status().mode == Mode::Shared),
        syncs_failed: fleets.iter().map(|f| f.status().syncs_failed).sum(),
        ..RunResult::default()
    };
    if let Some((first, all)) = watched {
        result.open_all_ms = all.map(|all| ms(all.saturating_sub(down_at)));
        result.spread_ms = first.zip(all).map(|(f, a)| ms(a.saturating_sub(f)));
    }
    let mut samples = std::mem::take(&mut *samples.lock().expect("samples"));
    let mut all = Vec::new();
    for (ph, phase_samples) in samples.iter_mut().enumerate() {
        phase_samples.sort_unstable();
        result.requests[ph] = phase_samples.len() as u64;
        result.errors[ph] = errors[ph].load(Ordering::Relaxed);
        result.p99_ms[ph] = percentile::of_sorted(phase_samples, 0.99).map(ms);
        all.extend_from_slice(phase_samples);
    }
    all.sort_unstable();
    result.p99_all_ms = percentile::of_sorted(&all, 0.99).map(ms);
    drop(fleets);
    backends.stop().await;
    Ok(result)
}

/// The phase of a request by when it began: before the event (a third of the run), during,
/// after. (`down_at` is a third of the run.)
fn phase_at(at: Duration, third: Duration) -> usize {
    if at < third {
        0
    } else if at < third * 2 {
        1
    } else {
        2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_thirds() {
        let third = Duration::from_secs(1);
        assert_eq!(phase_at(Duration::ZERO, third), 0);
        assert_eq!(phase_at(third, third), 1);
        assert_eq!(phase_at(third * 2, third), 2);
        let config = FleetConfig {
            duration: Duration::from_secs(3),
            ..FleetConfig::default()
        };
        assert_eq!(phase(&config, Duration::from_millis(2500)), 2);
    }
}
